import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Script } from 'node:vm'

// Node 20 has no compile cache for modules (module.enableCompileCache is Node 22), and compiling the
// CLI's code is a good part of every start: the build bundles the CLI, ssh2 included, into one
// CommonJS file (dist/cli.cjs, scripts/bundle.mjs) and records V8's code cache for it after a run
// (dist/cli.cjs.cache, scripts/code-cache.mjs). Compiled here from that cache, a launch skips parsing
// and compiling what the run compiled: ~0.1 s less CPU per start (bench/, npm run bench).

type Cli = typeof import('./main.js')

/**
 * How the bundle was compiled: from its cache, or not: no cache for this build, a cache whose data is
 * not what was written (`damaged`), or one V8 refused (another Node, other V8 flags).
 */
export type CacheUse = 'used' | 'rejected' | 'damaged' | 'none'

export interface CompiledCli {
  /** Runs the bundle's top level and returns what it exports. */
  run: () => Cli
  cache: CacheUse
  /** V8's code cache for the bundle as compiled so far (the build writes it after a run). */
  createCache: () => Buffer
  /** The build the bundle is: what its cache file must start with. */
  buildId: string
}

/**
 * The bundle's first line names its build (`/*fanout-build:ID*\/`, written by bundle.mjs). Its cache
 * file starts with a line of the same ID and the SHA-256 of the data after that line (cacheHeader).
 * V8 checks only that the source has the length the cache was made for, so a cache of another build
 * of the same length would be taken for this one; and a release build of V8 does not checksum the
 * data (--verify-snapshot-checksum is off): damaged data can crash the process, or run other code.
 */
const BUILD_LINE = /^\/\*fanout-build:([0-9a-f]+)\*\/\n/

const sha256 = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex')

/** The first line of the cache file for `data`, V8's code cache of the bundle of build `buildId`. */
export const cacheHeader = (buildId: string, data: Uint8Array): string => `${buildId} ${sha256(data)}\n`

// Node's own wrapper for a CommonJS module, on the bundle's first line, which is the build line.
const WRAP_START = '(function (exports, require, module, __filename, __dirname) {'
const WRAP_END = '\n})'

/** The cache recorded for this build, without its header line, when its data is what was recorded. */
function readCache(file: string, buildId: string): { data?: Buffer; damaged?: true } {
  let text: Buffer
  try {
    text = readFileSync(file)
  } catch {
    return {}
  }
  const end = text.indexOf(10)
  const [id, hash] = text.subarray(0, Math.max(end, 0)).toString('latin1').split(' ')
  if (end < 0 || id !== buildId) return {}
  const data = text.subarray(end + 1)
  return hash === sha256(data) ? { data } : { damaged: true }
}

/**
 * Compiles dist/cli.cjs in `dir`, from its code cache when that belongs to it; undefined when there is
 * no bundle (src/ under a test runner, or dist/ built by tsc alone). The bundle is ASCII (the build
 * checks): read as latin1, which is what V8 keeps it as anyway, without decoding UTF-8.
 */
export function compileCli(dir: URL): CompiledCli | undefined {
  const file = fileURLToPath(new URL('cli.cjs', dir))
  let source: string
  try {
    source = readFileSync(file, 'latin1')
  } catch {
    return undefined
  }
  const buildId = BUILD_LINE.exec(source)?.[1] ?? ''
  const { data: cachedData, damaged } = buildId === '' ? {} : readCache(`${file}.cache`, buildId)
  const script = new Script(WRAP_START + source + WRAP_END, { filename: file, ...(cachedData ? { cachedData } : {}) })
  const run = (): Cli => {
    const module = { exports: {} }
    const wrapper = script.runInThisContext() as (e: object, r: NodeJS.Require, m: object, f: string, d: string) => void
    wrapper.call(module.exports, module.exports, createRequire(file), module, file, dirname(file))
    return module.exports as Cli
  }
  const cache: CacheUse = damaged
    ? 'damaged'
    : cachedData === undefined
      ? 'none'
      : script.cachedDataRejected === true
        ? 'rejected'
        : 'used'
  return { run, cache, createCache: () => script.createCachedData(), buildId }
}

/** The CLI: the bundle next to this module when the build made one, else its modules one by one. */
export async function loadCli(dir = new URL('./', import.meta.url)): Promise<Cli> {
  return compileCli(dir)?.run() ?? import('./main.js')
}
