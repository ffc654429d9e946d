import type { ChalkInstance } from 'chalk'
import { usageError } from '../errors.js'

/** Where a line came from: its node, and the rank that printed it when workers are tagged. */
export interface LineOrigin {
  node: number
  host: string
  rank?: number
  localRank?: number
  stream: 'stdout' | 'stderr'
}

/** One key per process and stream: what caches, throttles and progress rows are kept by. */
export const originKey = (o: LineOrigin): string => `${o.node}/${o.rank ?? ''}/${o.localRank ?? ''}/${o.stream}`

export interface PrefixOptions {
  /** `--prefix FORMAT`; undefined for the default, false for `--no-prefix`. */
  format?: string | false
  nodes: ReadonlyArray<{ node: number; host: string }>
  /** Lines carry ranks (the rank tagger runs): the default format then shows the global rank. */
  tagged: boolean
  /** Largest global and local rank that can occur, so that every prefix is padded to one width. */
  maxRank: number
  maxLocalRank: number
  chalk: ChalkInstance
  timestamps: boolean
}

const FIELDS = ['host', 'node', 'rank', 'local_rank'] as const
type Field = (typeof FIELDS)[number]
const PALETTE = [
  'cyan',
  'green',
  'yellow',
  'magenta',
  'blue',
  'cyanBright',
  'greenBright',
  'yellowBright',
  'magentaBright',
  'blueBright',
] as const

/** Checks a `--prefix` format: text with {host} {node} {rank} {local_rank}; anything else in braces is a mistake. */
export function checkPrefixFormat(format: string): string {
  for (const m of format.matchAll(/\{([^}]*)\}/g)) {
    if (!FIELDS.includes(m[1] as Field))
      throw usageError(
        `--prefix: unknown field {${m[1]}} in ${JSON.stringify(format)}; use {host}, {node}, {rank} or {local_rank}`,
      )
  }
  if (/[\x00-\x1f\x7f]/.test(format)) throw usageError('--prefix must not contain control characters')
  return format
}

type Values = { node: number; host: string; rank?: number | undefined; localRank?: number | undefined }

function render(format: string | undefined, v: Values): string {
  if (format === undefined) return v.rank === undefined ? `[n${v.node} ${v.host}]` : `[n${v.node} ${v.host} r${v.rank}]`
  const field = (name: string): string => {
    if (name === 'host') return v.host
    if (name === 'node') return String(v.node)
    const n = name === 'rank' ? v.rank : v.localRank
    return n === undefined ? '-' : String(n)
  }
  return format.replace(/\{(host|node|rank|local_rank)\}/g, (_m, name: string) => field(name))
}

/** `10:15:14.123 `: the local time a line arrived. */
export function timestamp(at: number): string {
  const d = new Date(at)
  const two = (n: number): string => String(n).padStart(2, '0')
  return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}.${String(d.getMilliseconds()).padStart(3, '0')} `
}

/**
 * Builds the prefix of each line: `[n1 gpu02 r9]` by default, every one padded to the widest that
 * can occur so that the text columns line up, one colour per node, stderr marked with `!`.
 * Prefixes are cached per origin, so a line costs a map lookup, not a format.
 */
export class Prefixer {
  private readonly cache = new Map<string, string>()
  private readonly bytes = new Map<string, Buffer>()
  private readonly width: number
  private readonly format: string | undefined

  constructor(private readonly options: PrefixOptions) {
    this.format = options.format === false ? undefined : options.format
    this.width =
      options.format === false
        ? 0
        : Math.max(
            0,
            ...options.nodes.map(
              (n) =>
                render(this.format, {
                  ...n,
                  ...(options.tagged ? { rank: options.maxRank, localRank: options.maxLocalRank } : {}),
                }).length,
            ),
          )
  }

  /** The prefix for a line from `origin` that arrived at `at` (ms since the epoch). */
  prefix(origin: LineOrigin, at: number): string {
    const key = originKey(origin)
    let cached = this.cache.get(key)
    if (cached === undefined) {
      cached = this.build(origin)
      this.cache.set(key, cached)
    }
    return this.options.timestamps ? this.options.chalk.dim(timestamp(at)) + cached : cached
  }

  /** The same prefix as bytes, cached unless it holds a timestamp: what the terminal writes before every line. */
  prefixBytes(origin: LineOrigin, at: number): Buffer {
    if (this.options.timestamps) return Buffer.from(this.prefix(origin, at))
    const key = originKey(origin)
    let cached = this.bytes.get(key)
    if (cached === undefined) {
      cached = Buffer.from(this.prefix(origin, at))
      this.bytes.set(key, cached)
    }
    return cached
  }

  private build(origin: LineOrigin): string {
    const { chalk } = this.options
    if (this.options.format === false) return ''
    const label = render(this.format, origin)
    const colour = chalk[PALETTE[origin.node % PALETTE.length] ?? 'cyan']
    const pad = ' '.repeat(Math.max(0, this.width - label.length))
    return `${colour(label)}${pad}${origin.stream === 'stderr' ? `${chalk.red('!')} ` : '  '}`
  }
}
