import { readFileSync } from 'node:fs'

let version: string | undefined

/**
 * fanout's version, from its own package.json: two folders above this module in src/cli/ and dist/cli/,
 * and above the bundle in dist/cli/ (its import.meta.url is the bundle's). yargs' own guess looks for
 * a package.json above the running script or the working directory, and prints `unknown` for an
 * installed fanout (npm install -g of the package).
 */
export function packageVersion(): string {
  if (version !== undefined) return version
  try {
    const parsed = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
      version?: unknown
    }
    version = typeof parsed.version === 'string' ? parsed.version : 'unknown'
  } catch {
    version = 'unknown'
  }
  return version
}
