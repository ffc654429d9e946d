import { usageError } from '../errors.js'

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

const MAX_INDEX = 1_000_000

/** `0`, `0,4-7`, `3-3` → sorted, distinct indices; anything else is the user's mistake, named. */
export function parseIndexList(flag: string, value: string): number[] {
  const out = new Set<number>()
  for (const item of value.split(',')) {
    const m = /^\s*(\d{1,7})\s*(?:-\s*(\d{1,7})\s*)?$/.exec(item)
    const from = Number(m?.[1])
    const to = m?.[2] === undefined ? from : Number(m[2])
    if (!m || to < from || to > MAX_INDEX)
      throw usageError(
        `--${flag}: ${JSON.stringify(item.trim())} is not a number or range such as 0 or 4-7 (in ${JSON.stringify(value)})`,
      )
    for (let i = from; i <= to; i++) out.add(i)
  }
  return [...out].sort((a, b) => a - b)
}

/** `--only-node` items (node ranks, ranges, or hosts) → node ranks; an item matching no node is an error. */
export function resolveOnlyNodes(items: readonly string[], hosts: readonly string[]): Set<number> {
  const nodes = new Set<number>()
  for (const item of items) {
    // A host's own name wins over reading it as numbers (a host may be called 10-0-0-1).
    if (/^\d[\d-]*$/.test(item) && !hosts.includes(item)) {
      for (const i of parseIndexList('only-node', item)) {
        if (i >= hosts.length)
          throw usageError(`--only-node: there is no node ${i} (the job has ${hosts.length}: 0 to ${hosts.length - 1})`)
        nodes.add(i)
      }
      continue
    }
    const matches = hosts.flatMap((h, i) => (h === item ? [i] : []))
    if (matches.length === 0)
      throw usageError(
        `--only-node: no node is host ${JSON.stringify(item)} (hosts: ${hosts.slice(0, 8).join(', ')}${hosts.length > 8 ? ', …' : ''})`,
      )
    for (const i of matches) nodes.add(i)
  }
  return nodes
}
