import { readFileSync, statSync } from 'node:fs'

/**
 * `fanout --help` and `--version` without loading yargs: the texts are rendered at build time by the
 * same yargs definition (scripts/render-help.mjs, run after tsc, so they cannot go stale) and printed
 * here only when they are exactly what yargs would print now: the same words, a terminal width rendered
 * for, and a locale in which yargs speaks English. Anything else goes through the CLI as before.
 * Kept free of imports beyond node:fs: this module is all that `fanout --help` loads.
 */

/** The command lines answered here. */
export const FAST_ARGV: readonly (readonly string[])[] = [['--help'], ['-h'], ['--version'], ['hosts', '--help'], ['hosts', '-h']]

/** The wrap widths rendered: a common terminal, no terminal (main assumes 100 columns), and 110+ (args.ts wraps at most there). */
export const FAST_WIDTHS: readonly number[] = [80, 100, 110]

/** The width args.ts wraps at, given what main passes it (`stdout.columns ?? 100`). */
export const wrapWidth = (columns: number | undefined): number => Math.min(columns ?? 100, 110)

/** The locale yargs picks (yargs-factory's guessLocale reads these variables in this order). */
export function yargsLocale(env: NodeJS.ProcessEnv): string {
  return (env.LC_ALL || env.LC_MESSAGES || env.LANG || env.LANGUAGE || 'en_US').replace(/[.:].*/, '')
}

/** Locales in which yargs prints its English strings: English ones, and C/POSIX (it has no file for those). */
export const isEnglishLocale = (locale: string): boolean => locale === 'C' || locale === 'POSIX' || /^en(_|$)/.test(locale)

/** The key of a pre-rendered text for this command line, or undefined when yargs has to answer it. */
export function fastKey(argv: readonly string[], columns: number | undefined, env: NodeJS.ProcessEnv): string | undefined {
  if (!FAST_ARGV.some((a) => a.length === argv.length && a.every((w, k) => w === argv[k]))) return undefined
  const width = wrapWidth(columns)
  if (!FAST_WIDTHS.includes(width) || !isEnglishLocale(yargsLocale(env))) return undefined
  return `${argv.join(' ')}@${width}`
}

/**
 * The files whose change makes the texts stale, relative to dist/: the parser (tsc rewrites every
 * output on a build, so a build without the render step changes its time) and package.json (--version).
 */
export const STAMPED = ['parse.js', '../../package.json'] as const

/** The modification times of the STAMPED files in `dir`, as recorded next to the texts. */
export const stamp = (dir: URL): number[] => STAMPED.map((f) => statSync(new URL(f, dir)).mtimeMs)

export interface RenderedTexts {
  stamp: number[]
  texts: Record<string, string>
}

/** What the CLI would write on stdout for this command line, when it was rendered at build time. */
export function fastOutput(argv: readonly string[], columns: number | undefined, env: NodeJS.ProcessEnv, dir = new URL('./', import.meta.url)): string | undefined {
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
