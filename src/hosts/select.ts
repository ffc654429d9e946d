import { quote, usageError } from '../errors.js'
import type { HostEntry } from './hostfile.js'
import { compressHosts, expandHostRange, expandRangeItems } from './hostrange.js'

/** DeepSpeed's resource filters, plus the node and GPU counts; applied in this order. */
export interface Selection {
  /** `host[:gpu,gpu]@host…`: only these hosts (a bare host: all of it), ranks in host-list order. */
  include?: string
  /** `host[:gpu,gpu]@host…`: without these hosts (a bare host) or GPUs. */
  exclude?: string
  /** The first N nodes. */
  numNodes?: number
  /** The first N GPUs of each node. */
  numGpus?: number
}

/** One host a filter names, with the GPU indices after its `:` (none: the whole host). */
interface Filter {
  host: string
  gpus?: number[]
}

const MAX_GPU_INDEX = 4095
const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i)
const key = (host: string): string => host.toLowerCase()

/** Splits `NAME[:SLOTS]` at the first `:` outside brackets (`[fe80::1]:0` is an IPv6 host with GPU 0). */
function splitSpec(spec: string): [string, string | undefined] {
  let depth = 0
  for (let i = 0; i < spec.length; i++) {
    if (spec[i] === '[') depth++
    else if (spec[i] === ']') depth--
    else if (spec[i] === ':' && depth === 0) return [spec.slice(0, i), spec.slice(i + 1)]
  }
  return [spec, undefined]
}

/** Parses DeepSpeed's `NAME[:SLOT[,SLOT…]][@NAME…]`, with host ranges in NAME and `0-3` in SLOTs. */
function parseFilter(text: string, flag: string, errors: string[]): Filter[] {
  const problem = (message: string): Filter[] => {
    errors.push(`${flag}: ${message}`)
    return []
  }
  return text.split('@').flatMap((raw): Filter[] => {
    const spec = raw.trim()
    const [name, slots] = splitSpec(spec)
    if (name === '') return problem(`empty host name in ${quote(text)}`)
    let gpus: number[] | undefined
    if (slots !== undefined) {
      try {
        if (slots === '') throw new Error('no GPU index after ":"')
        gpus = [...new Set(expandRangeItems(slots, MAX_GPU_INDEX + 1).map(Number))].sort((a, b) => a - b)
        if (gpus.some((g) => g > MAX_GPU_INDEX)) throw new Error(`GPU indices go up to ${MAX_GPU_INDEX}`)
      } catch (e) {
        return problem(`invalid GPU list in ${quote(spec)}: ${(e as Error).message}`)
      }
    }
    try {
      // `[fe80::1]` names the IPv6 host fe80::1, as in the host list.
      const hosts = expandHostRange(name).map((h) => h.replace(/^\[(.*)\]$/, '$1'))
      return hosts.map((host) => (gpus ? { host, gpus } : { host }))
    } catch (e) {
      return problem((e as Error).message)
    }
  })
}

/** The GPU indices a node has, as far as known without probing it: chosen ones, else 0..slots-1. */
const available = (entry: HostEntry): number[] | undefined =>
  entry.gpus ?? (entry.slots === undefined ? undefined : range(entry.slots))

const withGpus = (entry: HostEntry, gpus: number[]): HostEntry => ({ ...entry, slots: gpus.length, gpus })

/**
 * Checks a filter against the host list: every host must be in it, every GPU index on its host. Returns
 * the filters by host (merged as DeepSpeed merges `h:0@h:1`; a bare mention means the whole host).
 */
function match(hosts: readonly HostEntry[], filters: Filter[], flag: string, errors: string[]): Map<string, Filter> {
  const known = new Set(hosts.map((h) => key(h.host)))
  const unknown = [...new Set(filters.map((f) => f.host).filter((h) => !known.has(key(h))))]
  if (unknown.length > 0)
    errors.push(
      `${flag}: unknown host${unknown.length > 1 ? 's' : ''} ${compressHosts(unknown)} (not in the host list)`,
    )
  const merged = new Map<string, Filter>()
  for (const f of filters) {
    const previous = merged.get(key(f.host))
    const whole = !f.gpus || (previous !== undefined && !previous.gpus)
    const gpus = [...new Set([...(previous?.gpus ?? []), ...(f.gpus ?? [])])].sort((x, y) => x - y)
    merged.set(key(f.host), whole ? { host: f.host } : { host: f.host, gpus })
  }
  for (const entry of hosts) {
    const f = merged.get(key(entry.host))
    const has = available(entry)
    const missing = f?.gpus && has ? f.gpus.filter((g) => !has.includes(g)) : []
    if (missing.length > 0)
      errors.push(`${flag}: ${entry.host} has no GPU ${missing.join(',')} (its GPUs: ${has?.join(',')})`)
  }
  return merged
}

function include(hosts: HostEntry[], text: string, errors: string[]): HostEntry[] {
  const wanted = match(hosts, parseFilter(text, '--include', errors), '--include', errors)
  return hosts.flatMap((entry) => {
    const f = wanted.get(key(entry.host))
    if (!f) return []
    return [f.gpus ? withGpus(entry, f.gpus) : entry]
  })
}

/** Checked against the whole list (`all`): excluding what --include already left out is no mistake. */
function exclude(hosts: HostEntry[], all: readonly HostEntry[], text: string, errors: string[]): HostEntry[] {
  const unwanted = match(all, parseFilter(text, '--exclude', errors), '--exclude', errors)
  return hosts.flatMap((entry) => {
    const f = unwanted.get(key(entry.host))
    if (!f) return [entry]
    if (!f.gpus) return []
    const has = available(entry)
    if (!has) {
      errors.push(
        `--exclude: cannot exclude GPU ${f.gpus.join(',')} of ${entry.host}: its GPU count is unknown (give it slots=N in the host list)`,
      )
      return [entry]
    }
    const left = has.filter((g) => !f.gpus?.includes(g))
    return left.length === 0 ? [] : [withGpus(entry, left)]
  })
}

/**
 * Applies --include, --exclude, --num-nodes and --num-gpus, in that order, to the host list. Ranks
 * keep host-list order. Every problem is reported at once, as one USAGE error, before any connection.
 */
export function selectHosts(hosts: readonly HostEntry[], selection: Selection): HostEntry[] {
  const errors: string[] = []
  let selected = [...hosts]
  if (selection.include !== undefined) selected = include(selected, selection.include, errors)
  if (selection.exclude !== undefined) selected = exclude(selected, hosts, selection.exclude, errors)
  const { numNodes, numGpus } = selection
  if (numNodes !== undefined && errors.length === 0) {
    if (numNodes > selected.length)
      errors.push(`--num-nodes ${numNodes}: only ${selected.length} node(s) to choose from`)
    selected = selected.slice(0, numNodes)
  }
  if (numGpus !== undefined) {
    selected = selected.map((entry) => {
      // Without slots= the node's GPUs are unknown until probed: take 0..N-1, as DeepSpeed does; the
      // plan checks them against the probe.
      const has = available(entry) ?? range(numGpus)
      if (has.length < numGpus)
        errors.push(`--num-gpus ${numGpus}: ${entry.host} has only ${has.length} GPU(s) (${has.join(',')})`)
      return withGpus(entry, has.slice(0, numGpus))
    })
  }
  if (errors.length === 0 && selected.length === 0) errors.push('no hosts left after --include/--exclude')
  // `--include @` finds the same mistake twice: say it once.
  if (errors.length > 0) throw usageError([...new Set(errors)].join('\n'))
  return selected
}
