import type { Argv } from 'yargs'
import { usageError } from '../errors.js'
import { text } from '../cli/flags.js'
import { checkPrefixFormat } from './prefix.js'

/** How the job's output is shown and kept (the Output flags). */
export interface OutputOptions {
  color: 'auto' | 'always' | 'never'
  plain: boolean
  /** `--prefix FORMAT`; false for `--no-prefix`; undefined for the default. */
  prefix?: string | false
  timestamps: boolean
  /** `--only`: global ranks whose lines are shown. */
  onlyRanks?: number[]
  /** `--only-node`: node ranks or host names whose lines are shown (resolved against the host list). */
  onlyNodes?: string[]
  quiet: boolean
  logDir?: string
  json: boolean
  /** Tag each worker's output with its rank (the rank tagger); off: torchrun's shared streams as they are. */
  rankTags: boolean
}

export function withOutputOptions<T>(y: Argv<T>) {
  return y
    .option('prefix', { type: 'string', describe: 'line prefix with {host} {node} {rank} {local_rank} (default "[n{node} {host} r{rank}]"); --no-prefix: none', group: 'Output:' })
    .option('timestamps', { type: 'boolean', default: false, describe: 'start each line with the time it arrived', group: 'Output:' })
    .option('only', { type: 'string', describe: 'show only these global ranks, e.g. 0 or 0,4-7 (the log files still get every line)', group: 'Output:' })
    .option('only-node', { type: 'string', describe: 'show only these nodes: node ranks or hosts, e.g. 0,2-3 or gpu01', group: 'Output:' })
    .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: "show only fanout's own status and failures, not the job's output", group: 'Output:' })
    .option('log-dir', { type: 'string', describe: 'keep every line, fanout\'s messages and summary.json in DIR/<run-id>/ (0700)', group: 'Output:' })
    .option('json', { type: 'boolean', default: false, describe: 'newline-delimited JSON events on stdout (line, node-state, exit, summary)', group: 'Output:' })
    .option('rank-tags', { type: 'boolean', default: true, describe: "tag each worker's output with its rank (--no-rank-tags: torchrun's shared streams, per node)", group: 'Output:' })
    .option('color', { type: 'string', choices: ['auto', 'always', 'never'], default: 'auto', describe: 'colour output (NO_COLOR and FORCE_COLOR are honoured with auto)', group: 'Output:' })
    .option('plain', { type: 'boolean', default: false, describe: 'plain status lines instead of the animated task list and progress rows', group: 'Output:' })
}

const MAX_INDEX = 1_000_000

/** `0`, `0,4-7`, `3-3` → sorted, distinct indices; anything else is the user's mistake, named. */
export function parseIndexList(flag: string, value: string): number[] {
  const out = new Set<number>()
  for (const item of value.split(',')) {
    const m = /^\s*(\d{1,7})\s*(?:-\s*(\d{1,7})\s*)?$/.exec(item)
    const from = Number(m?.[1])
    const to = m?.[2] === undefined ? from : Number(m[2])
    if (!m || to < from || to > MAX_INDEX) throw usageError(`--${flag}: ${JSON.stringify(item.trim())} is not a number or range such as 0 or 4-7 (in ${JSON.stringify(value)})`)
    for (let i = from; i <= to; i++) out.add(i)
  }
  return [...out].sort((a, b) => a - b)
}

export function readOutputOptions(a: Record<string, unknown>): OutputOptions {
  const options: OutputOptions = {
    color: (a.color as OutputOptions['color']) ?? 'auto',
    plain: a.plain === true,
    timestamps: a.timestamps === true,
    quiet: a.quiet === true,
    json: a.json === true,
    rankTags: a['rank-tags'] !== false,
  }
  if (a.prefix === false) options.prefix = false
  else if (a.prefix !== undefined) options.prefix = checkPrefixFormat(text('prefix', a.prefix) ?? '')
  const only = text('only', a.only)
  if (only !== undefined) options.onlyRanks = parseIndexList('only', only)
  const onlyNode = text('only-node', a['only-node'])
  if (onlyNode !== undefined) options.onlyNodes = onlyNode.split(',').map((s) => s.trim())
  if (options.onlyNodes?.some((s) => s === '')) throw usageError(`--only-node: empty item in ${JSON.stringify(onlyNode)}`)
  const logDir = text('log-dir', a['log-dir'])
  if (logDir !== undefined) options.logDir = logDir
  if (options.quiet && (only !== undefined || onlyNode !== undefined)) throw usageError('--quiet shows no job output: it cannot be combined with --only or --only-node')
  if (options.json && typeof options.prefix === 'string') throw usageError('--prefix has no effect with --json (each event names its node and rank)')
  return options
}

/** `--only-node` items (node ranks, ranges, or hosts) → node ranks; an item matching no node is an error. */
export function resolveOnlyNodes(items: readonly string[], hosts: readonly string[]): Set<number> {
  const nodes = new Set<number>()
  for (const item of items) {
    // A host's own name wins over reading it as numbers (a host may be called 10-0-0-1).
    if (/^\d[\d-]*$/.test(item) && !hosts.includes(item)) {
      for (const i of parseIndexList('only-node', item)) {
        if (i >= hosts.length) throw usageError(`--only-node: there is no node ${i} (the job has ${hosts.length}: 0 to ${hosts.length - 1})`)
        nodes.add(i)
      }
      continue
    }
    const matches = hosts.flatMap((h, i) => (h === item ? [i] : []))
    if (matches.length === 0) throw usageError(`--only-node: no node is host ${JSON.stringify(item)} (hosts: ${hosts.slice(0, 8).join(', ')}${hosts.length > 8 ? ', …' : ''})`)
    for (const i of matches) nodes.add(i)
  }
  return nodes
}
