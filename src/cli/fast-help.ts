import { closeSync, openSync, readFileSync, readSync } from 'node:fs'

/**
 * `fanout --help` and `--version` without loading yargs: the texts are rendered at build time by the
 * same yargs definition (scripts/render-help.mjs, run after the bundle, so they cannot go stale) and
 * printed here only when they are exactly what yargs would print now: the bundle they were rendered
 * with (which the CLI runs), the same version, a terminal width rendered for, and a locale in which
 * yargs speaks English. Anything else goes through the CLI as before. Kept free of imports beyond
 * node:fs: this module is all that `fanout --help` loads.
 */

/** The command lines answered here. */
export const FAST_ARGV: readonly (readonly string[])[] = [
  ['--help'],
  ['-h'],
  ['--version'],
  ['hosts', '--help'],
  ['hosts', '-h'],
]

/** The wrap widths rendered: a common terminal, no terminal (main assumes 100 columns), and 110+ (args.ts wraps at most there). */
export const FAST_WIDTHS: readonly number[] = [80, 100, 110]

/** The width args.ts wraps at, given what main passes it (`stdout.columns ?? 100`). */
export const wrapWidth = (columns: number | undefined): number => Math.min(columns ?? 100, 110)

/** The locale yargs picks (yargs-factory's guessLocale reads these variables in this order). */
export function yargsLocale(env: NodeJS.ProcessEnv): string {
  return (env.LC_ALL || env.LC_MESSAGES || env.LANG || env.LANGUAGE || 'en_US').replace(/[.:].*/, '')
}

/** Locales in which yargs prints its English strings: English ones, and C/POSIX (it has no file for those). */
export const isEnglishLocale = (locale: string): boolean =>
  locale === 'C' || locale === 'POSIX' || /^en(_|$)/.test(locale)

/** The key of a pre-rendered text for this command line, or undefined when yargs has to answer it. */
export function fastKey(
  argv: readonly string[],
  columns: number | undefined,
  env: NodeJS.ProcessEnv,
): string | undefined {
  if (!FAST_ARGV.some((a) => a.length === argv.length && a.every((w, k) => w === argv[k]))) return undefined
  const width = wrapWidth(columns)
  if (!FAST_WIDTHS.includes(width) || !isEnglishLocale(yargsLocale(env))) return undefined
  return `${argv.join(' ')}@${width}`
}

/**
 * What the texts were rendered for, as recorded next to them: the build of the bundle (its first line
 * names it, scripts/bundle.mjs; the CLI runs the bundle when there is one) and the version in
 * package.json (--version). Not modification times: a package's files get npm's fixed date when it is
 * installed. Without a bundle (tsc alone) there is no build to name, and nothing is answered here.
 */
export function stamp(dir: URL): string[] {
  const head = Buffer.alloc(64)
  const fd = openSync(new URL('cli.cjs', dir), 'r')
  try {
    readSync(fd, head, 0, head.length, 0)
  } finally {
    closeSync(fd)
  }
  const build = /^\/\*fanout-build:([0-9a-f]+)\*\//.exec(head.toString('latin1'))?.[1]
  if (build === undefined) throw new Error('the bundle names no build')
  const { version } = JSON.parse(readFileSync(new URL('../../package.json', dir), 'utf8')) as { version?: unknown }
  return [build, String(version)]
}

interface RenderedTexts {
  stamp: string[]
  texts: Record<string, string>
}

/** What the CLI would write on stdout for this command line, when it was rendered at build time. */
export function fastOutput(
  argv: readonly string[],
  columns: number | undefined,
  env: NodeJS.ProcessEnv,
  dir = new URL('./', import.meta.url),
): string | undefined {
  const key = fastKey(argv, columns, env)
  if (key === undefined) return undefined
  try {
    const rendered = JSON.parse(readFileSync(new URL('help-text.json', dir), 'utf8')) as RenderedTexts
    if (stamp(dir).some((t, i) => t !== rendered.stamp[i])) return undefined // built again since: stale
    const text = rendered.texts[key]
    return typeof text === 'string' ? text : undefined
  } catch {
    return undefined // not built with the texts: the CLI answers
  }
}
