import type { Argv } from 'yargs'
import { quote, usageError } from '../errors.js'

/** How fanout runs yargs, and the readers of its values that every command's options share. */

/** The environment variables parsing may look at (main.ts passes process.env). */
export type { Env } from '../plan/env.js'

/** Words after the script are the script's; numbers stay text (`007` is not 7). */
export const PARSER = {
  'halt-at-non-option': true,
  'parse-positional-numbers': false,
  'parse-numbers': false,
  'populate--': true,
  'boolean-negation': true,
  'dot-notation': false,
  'duplicate-arguments-array': true,
}

export const int = (flag: string, value: unknown, min: number, max: number): number | undefined => {
  if (value === undefined) return undefined
  // Digits only: Number() would also take `1e3`, `0x10`, ` 4`, `+4` and `1.0`, which are typos here.
  const n = typeof value === 'string' && /^[0-9]+$/.test(value) ? Number(value) : NaN
  if (!Number.isInteger(n) || n < min || n > max)
    throw usageError(
      `--${flag} must be a whole number from ${min} to ${max} (got ${typeof value === 'string' ? quote(value) : JSON.stringify(value)})`,
    )
  return n
}

export const text = (flag: string, v: unknown): string | undefined => {
  if (v === undefined) return undefined
  if (Array.isArray(v)) throw usageError(`--${flag} was given more than once`)
  if (typeof v !== 'string' || v.trim() === '') throw usageError(`--${flag} needs a value`)
  return v
}

type Parsed = { a: Record<string, unknown> & { _: Array<string | number> }; output: string }

/** yargs' messages in fanout's words: one line per problem, naming the flag as it is typed. */
export function yargsMessage(message: string): string {
  const unknown = /^Unknown arguments?: (.*)$/s.exec(message)
  if (unknown) {
    const names = (unknown[1] ?? '').split(', ').map((n) => (n.length === 1 ? `-${n}` : `--${n}`))
    return `unknown option${names.length > 1 ? 's' : ''} ${names.join(', ')}; see fanout --help`
  }
  if (message.startsWith('Invalid values:')) {
    const lines = message
      .split('\n')
      .slice(1)
      .map((line) => {
        const m = /^\s*Argument: (.+?), Given: (.*), Choices: (.*)$/s.exec(line)
        return m ? `--${m[1]} must be one of ${m[3]} (got ${m[2]})` : line.trim()
      })
    return lines.filter((l) => l !== '').join('\n')
  }
  return message
}

/**
 * yargs reads `--no-X` as "X is false" (boolean-negation) even where `no-X` is an option of its own:
 * `--no-python` would leave `no-python` unset and make `python` false. Given back to the option it names.
 */
function ownNegations(a: Parsed['a']): void {
  for (const key of Object.keys(a)) {
    if (!key.startsWith('no-') || !(key.slice(3) in a)) continue
    const base = key.slice(3)
    const values = [a[base]].flat()
    if (!values.includes(false)) continue
    const rest = values.filter((v) => v !== false)
    a[key] = true
    if (rest.length === 0) delete a[base]
    else a[base] = rest.length === 1 ? rest[0] : rest
  }
}

async function parseOnce<T>(parser: Argv<T>, argv: string[]): Promise<Parsed> {
  let output = ''
  parser.fail((message, error) => {
    throw usageError(yargsMessage(message || error?.message || 'invalid arguments'))
  })
  const a = (await parser.parseAsync(argv, {}, (_e, _a, out) => void (output = out))) as Parsed['a']
  ownNegations(a)
  return { a, output }
}

/**
 * Runs a yargs parser, turning its failures into USAGE errors and capturing what --help printed.
 * `--hostfile -` (stdin) is parsed again as `--hostfile=-`: yargs gives the long option an empty value
 * and halts at the lone `-` as if it were the script (`-H -` works as it is).
 */
export async function runParser<T>(build: (argv: string[]) => Argv<T>, argv: string[]): Promise<Parsed> {
  const first = await parseOnce(build(argv), argv)
  const words = [...first.a._, ...((first.a['--'] as string[] | undefined) ?? [])]
  if (first.a.hostfile !== '' || words[0] !== '-') return first
  // Nothing after the word yargs halted at was parsed, so the first `--hostfile -` is that one.
  const i = argv.findIndex((w, k) => w === '-' && argv[k - 1] === '--hostfile')
  if (i < 1) return first
  const again = [...argv.slice(0, i - 1), '--hostfile=-', ...argv.slice(i + 1)]
  return parseOnce(build(again), again)
}

/**
 * Joins an option that takes a value with a value that starts with `-`: yargs would read
 * `--launcher-args "--log-dir /tmp/logs"` as two options and refuse the second, where the user
 * obviously meant the value (`--launcher-args="--log-dir /tmp/logs"` always worked). Only fanout's
 * own words are looked at: the scan stops at the first word that is not an option (the script) or
 * at `--`. `takesValue` says which option names (long or short, as typed without dashes) take a
 * value; `longName` gives the long name of a short alias.
 */
function joinDashValues(
  argv: readonly string[],
  takesValue: ReadonlySet<string>,
  longName: (name: string) => string,
): string[] {
  const out = [...argv]
  for (let i = 0; i < out.length; i++) {
    const word = out[i] as string
    if (word === '--' || !word.startsWith('-') || word === '-') break
    const name = word.replace(/^--?/, '')
    if (word.includes('=') || !takesValue.has(name)) continue
    const value = out[i + 1]
    if (value !== undefined && value.startsWith('-')) out.splice(i, 2, `--${longName(name)}=${value}`)
    else i++ // the value, whatever it is
  }
  return out
}

/** `10`, `10s`, `500ms`, `2m`, `1h` → seconds. */
export function parseDuration(flag: string, value: unknown): number {
  const m = /^([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)?$/.exec(String(value).trim())
  const scale: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600 }
  const seconds = m ? Number(m[1]) * (scale[m[2] ?? 's'] ?? 1) : NaN
  if (!(seconds > 0) || seconds > 7 * 24 * 3600)
    throw usageError(`--${flag} must be a duration such as 10, 10s, 500ms or 2m (got ${JSON.stringify(value)})`)
  return seconds
}

/** A duration flag without a default: undefined when not given. */
export const optionalDuration = (flag: string, value: unknown): number | undefined =>
  value === undefined ? undefined : parseDuration(flag, text(flag, value))

/** The values of a repeatable flag (duplicate-arguments-array collects them; `array: true` would swallow SCRIPT too), none empty. */
export function repeated(a: Record<string, unknown>, flag: string): string[] {
  return [a[flag] ?? []].flat().map((v) => {
    if (typeof v !== 'string' || v === '') throw usageError(`--${flag} needs a value`)
    return v
  })
}

/** The parser's declared options: those that take a value (`string`), and their short aliases. */
const declared = (parser: Argv<unknown>): { string: string[]; alias: Record<string, string[]> } =>
  // yargs has it; @types/yargs does not say so.
  (parser as unknown as { getOptions(): { string: string[]; alias: Record<string, string[]> } }).getOptions()

/** joinDashValues for this parser's options that take a value (its string options and their aliases). */
export function joinValues(argv: readonly string[], parser: Argv<unknown>): string[] {
  const { string, alias } = declared(parser)
  const longOf = new Map(
    Object.entries(alias).flatMap(([long, shorts]) => shorts.map((short) => [short, long] as const)),
  )
  return joinDashValues(argv, new Set(string), (name) => longOf.get(name) ?? name)
}

/**
 * fanout's own words without the options named in `drop` (and their values), for a command line run
 * again elsewhere (`--via sbatch`: fanout in the batch job). As in joinDashValues, only fanout's words
 * are looked at: from the script (the first word that is not an option) or `--` on, nothing changes.
 * Run it on joinValues' output, where an option's value that starts with `-` is joined to it.
 */
export function withoutOptions(argv: readonly string[], parser: Argv<unknown>, drop: ReadonlySet<string>): string[] {
  const takesValue = new Set(declared(parser).string)
  const out: string[] = []
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i] as string
    if (word === '--' || !word.startsWith('-') || word === '-') {
      out.push(...argv.slice(i))
      break
    }
    const name = word.replace(/^--?/, '').replace(/=.*$/s, '')
    const valueNext = !word.includes('=') && takesValue.has(name) && i + 1 < argv.length
    const dropped = drop.has(name) || (name.startsWith('no-') && drop.has(name.slice(3)))
    if (!dropped) out.push(word, ...(valueNext ? [argv[i + 1] as string] : []))
    if (valueNext) i++
  }
  return out
}
