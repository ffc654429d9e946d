import { FanoutError, quote } from '../errors.js'

/**
 * pdsh / ClusterShell / SLURM host ranges: `gpu[01-16]`, `gpu[1-3,7]`, `rack[1-2]-node[01-04]`,
 * and comma-separated lists of them (`node[001-004,010],login1`, SLURM's compressed form).
 */

/** More hosts than any cluster fanout could launch on: a typo like `n[1-99999999]` must not eat memory. */
export const MAX_HOSTS = 65536

/**
 * A range's bracket holds digits, `,` and `-`. A bracket that opens the host (after any `user@`) and
 * holds a `:` is an IPv6 literal (`[fe80::1]:22`) instead.
 */
const isIpv6Bracket = (pattern: string, at: number, inside: string): boolean =>
  (at === 0 || pattern[at - 1] === '@') && inside.includes(':')

const fail = (message: string): never => {
  throw new FanoutError(message, 'HOSTFILE')
}

/** Zero padding is taken from the start of each item, as ClusterShell does: `08-10` → 08 09 10. */
const widthOf = (start: string): number => (start.length > 1 && start.startsWith('0') ? start.length : 0)

/**
 * Expands the inside of one bracket (`1-3,7`, `01-04`) into its numbers as text, in the order written.
 * Also serves GPU index lists (`0-3,6`). Throws a HOSTFILE FanoutError saying what is wrong with it.
 */
export function expandRangeItems(inside: string, limit = MAX_HOSTS): string[] {
  if (inside === '') fail('empty brackets')
  const out: string[] = []
  for (const item of inside.split(',')) {
    const m = /^([0-9]+)(?:-([0-9]+))?$/.exec(item)
    if (!m) return fail(`${quote(item)} is not N or N-M`)
    const [, from = '', to = from] = m
    const start = BigInt(from)
    const end = BigInt(to)
    if (end < start) fail(`${quote(item)} runs backwards`)
    if (end - start + BigInt(out.length) >= BigInt(limit)) fail(`more than ${limit} numbers`)
    const width = widthOf(from)
    for (let n = start; n <= end; n++) out.push(n.toString().padStart(width, '0'))
  }
  return out
}

type Part = string | string[]

/** Splits a pattern into literal text and bracket ranges (already expanded). */
function parts(pattern: string): Part[] {
  const bad = (why: string): never => fail(`invalid host range ${quote(pattern)}: ${why}`)
  const out: Part[] = []
  let literal = ''
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string
    if (c === ']') bad('"]" without "["')
    if (c !== '[') {
      literal += c
      continue
    }
    const close = pattern.indexOf(']', i)
    const inside = pattern.slice(i + 1, close < 0 ? undefined : close)
    if (isIpv6Bracket(pattern, i, inside)) {
      // Left for the host parser, which knows `[v6addr]:port` (and says what is wrong with it).
      literal += close < 0 ? pattern.slice(i) : `[${inside}]`
      i = close < 0 ? pattern.length : close
      continue
    }
    if (close < 0) bad('"[" without "]"')
    if (inside.includes('[')) bad('nested "["')
    try {
      out.push(literal, expandRangeItems(inside))
    } catch (e) {
      bad((e as Error).message)
    }
    literal = ''
    i = close
  }
  out.push(literal)
  return out
}

/**
 * Expands one pattern (no top-level commas) into host names, in order: the leftmost range varies
 * slowest, as pdsh and SLURM write them. A pattern without ranges is itself. Throws a HOSTFILE
 * FanoutError (its message names the problem, not the file: the caller adds that).
 */
export function expandHostRange(pattern: string): string[] {
  let names = ['']
  for (const part of parts(pattern)) {
    const values = typeof part === 'string' ? [part] : part
    if (names.length * values.length > MAX_HOSTS)
      fail(`invalid host range ${quote(pattern)}: more than ${MAX_HOSTS} hosts`)
    names = names.flatMap((prefix) => values.map((v) => prefix + v))
  }
  return names
}

/** Splits `a,gpu[1-3,7],b` at the commas outside brackets; items are trimmed. */
export function splitHostList(text: string): string[] {
  const items: string[] = []
  let depth = 0
  let item = ''
  for (const c of text) {
    if (c === '[') depth++
    if (c === ']') depth = Math.max(0, depth - 1)
    if (c === ',' && depth === 0) {
      items.push(item.trim())
      item = ''
    } else item += c
  }
  items.push(item.trim())
  return items
}

/** Expands a comma-separated list of patterns (`--hosts`, `SLURM_JOB_NODELIST`) into host names. */
export const expandHostList = (text: string): string[] => splitHostList(text).flatMap(expandHostRange)

interface Group {
  prefix: string
  suffix: string
  /** Runs of consecutive numbers: [first as written, last as written]. */
  runs: Array<[string, string]>
}

/** Splits a name at its last run of digits: `rack1-node04` → `rack1-node`, `04`, ``. */
function splitName(name: string): [string, string, string] | undefined {
  const m = /^(.*?)([0-9]+)([^0-9]*)$/s.exec(name)
  return m ? [m[1] ?? '', m[2] ?? '', m[3] ?? ''] : undefined
}

/** Whether `next` is what expanding the run that ends at `last` would produce after it. */
function follows(run: [string, string], next: string): boolean {
  return next === (BigInt(run[1]) + 1n).toString().padStart(widthOf(run[0]), '0')
}

/**
 * The inverse of expandHostList: a compressed list (`gpu[01-04,07],login1`) that expands to exactly
 * `names`, in the same order. Only neighbours are merged, so the order (the node ranks) survives.
 */
export function compressHosts(names: readonly string[]): string {
  const groups: Array<Group | string> = []
  for (const name of names) {
    const split = splitName(name)
    const last = groups[groups.length - 1]
    if (!split) {
      groups.push(name)
      continue
    }
    const [prefix, digits, suffix] = split
    if (typeof last === 'object' && last.prefix === prefix && last.suffix === suffix) {
      const run = last.runs[last.runs.length - 1] as [string, string]
      if (follows(run, digits)) run[1] = digits
      else last.runs.push([digits, digits])
    } else groups.push({ prefix, suffix, runs: [[digits, digits]] })
  }
  return groups
    .map((g) => {
      if (typeof g === 'string') return g
      const only = g.runs.length === 1 ? g.runs[0] : undefined
      if (only && only[0] === only[1]) return g.prefix + only[0] + g.suffix
      return `${g.prefix}[${g.runs.map(([a, b]) => (a === b ? a : `${a}-${b}`)).join(',')}]${g.suffix}`
    })
    .join(',')
}
