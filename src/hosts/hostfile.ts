import { isIPv4, isIPv6 } from 'node:net'
import { FanoutError, quote, usageError } from '../errors.js'
import { expandHostRange, MAX_HOSTS, splitHostList } from './hostrange.js'

/** One line of a host list: the node's rank is its position in the list. */
export interface HostEntry {
  /** The host as written (without user and port): what output prefixes and messages show. */
  host: string
  user?: string
  port?: number
  /** Processes to start on this node (DeepSpeed/OpenMPI `slots=N`); unset means "probe the GPUs". */
  slots?: number
  /**
   * GPU indices chosen by --include/--exclude/--num-gpus: the node's CUDA_VISIBLE_DEVICES and, unless
   * --nproc-per-node says otherwise, its process count. Unset: the node uses its GPUs as it sees them.
   */
  gpus?: number[]
  /** Where the entry came from, for messages: `file:line`. */
  where: string
}

export interface ParsedHostfile {
  hosts: HostEntry[]
  warnings: string[]
}

// RFC 1123 labels (underscore tolerated: it occurs in /etc/hosts and ssh config aliases).
const HOSTNAME = /^[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?)*\.?$/
// DNS limits (RFC 1035): longer names can never resolve, so they are typos or garbage.
const MAX_NAME = 253
const MAX_LABEL = 63
const USER = /^[A-Za-z0-9._][A-Za-z0-9._-]*$/
export const MAX_BYTES = 8 * 1024 * 1024
/** A garbage file would print thousands of lines; the first ones say enough. */
const MAX_ERRORS = 50

type Field = { host: string; user?: string; port?: number }

/** An IPv6 address, with an optional `%zone` (`fe80::1%eth0`). */
const isIpv6Address = (text: string): boolean => {
  const [address = '', zone, ...more] = text.split('%')
  return more.length === 0 && isIPv6(address) && (zone === undefined || /^[A-Za-z0-9_.-]+$/.test(zone))
}

/**
 * What is wrong with a host name, if anything. A name of digits and dots is read as an IPv4 address by
 * the resolver (`10.1` is 10.0.0.1, `123` is 0.0.0.123), so it must be a whole, valid one.
 */
export function hostNameProblem(host: string): string | undefined {
  if (host === '') return 'empty host name'
  if (!HOSTNAME.test(host)) return `invalid host name ${quote(host)}`
  const name = host.replace(/\.$/, '')
  if (name.length > MAX_NAME || name.split('.').some((label) => label.length > MAX_LABEL))
    return `invalid host name ${quote(host)} (longer than DNS allows: ${MAX_LABEL} characters a label, ${MAX_NAME} in all)`
  if (/^[0-9.]+$/.test(host) && !isIPv4(host)) return `invalid IPv4 address ${quote(host)}`
  return undefined
}

/** Whether `text` names a host: a host name, an IPv4 or an IPv6 address (`--master-addr`). */
export const isHostOrAddress = (text: string): boolean => hostNameProblem(text) === undefined || isIpv6Address(text)

/**
 * Parses `[user@]host[:port]`, `[user@][v6addr]:port` and a bare IPv6 address. Returns an error
 * message instead of throwing, so that every bad line of a file is reported at once.
 */
function parseHostSpec(spec: string): Field | string {
  let rest = spec
  let user: string | undefined
  const at = rest.lastIndexOf('@')
  if (at >= 0) {
    user = rest.slice(0, at)
    rest = rest.slice(at + 1)
    if (!USER.test(user)) return `invalid user name ${quote(user)}`
  }
  let host = rest
  let portText: string | undefined
  const bracketed = /^\[([^\]]*)\](?::(.*))?$/.exec(rest)
  if (bracketed) {
    host = bracketed[1] ?? ''
    portText = bracketed[2]
    if (!isIpv6Address(host) && hostNameProblem(host) !== undefined)
      return `invalid ${host.includes(':') ? 'IPv6 address' : 'host'} ${quote(host)}`
  } else if ((rest.match(/:/g) ?? []).length > 1) {
    if (!isIpv6Address(rest)) return `invalid IPv6 address ${quote(rest)}`
  } else {
    const colon = rest.indexOf(':')
    if (colon >= 0) {
      host = rest.slice(0, colon)
      portText = rest.slice(colon + 1)
    }
    const problem = hostNameProblem(host)
    if (problem) return problem
  }
  if (portText === undefined) return user === undefined ? { host } : { host, user }
  const port = parsePort(portText)
  if (port === undefined) return `invalid port ${quote(portText)} (expected 1-65535)`
  return user === undefined ? { host, port } : { host, user, port }
}

/** One `[user@]host[:port]` (or `ssh://[user@]host[:port]`) of a ProxyJump / `--jump` list. */
export function parseJumpHost(text: string, forHost?: string): Pick<HostEntry, 'host' | 'user' | 'port'> {
  const spec = text.replace(/^ssh:\/\//i, '')
  const parsed = spec === '' ? 'empty jump host' : parseHostSpec(spec)
  if (typeof parsed === 'string')
    throw usageError(`${forHost ? `${forHost}: ` : ''}jump host ${JSON.stringify(text)}: ${parsed}`)
  return parsed
}

export function parsePort(text: string): number | undefined {
  if (!/^[0-9]{1,5}$/.test(text)) return undefined
  const port = Number(text)
  return port >= 1 && port <= 65535 ? port : undefined
}

/** `slots=N` fields; other `key=value` fields of the MPI dialects are ignored with a warning. */
function parseField(field: string, entry: { slots?: number }, warn: (m: string) => void): string | undefined {
  const eq = field.indexOf('=')
  if (eq <= 0) return `unexpected ${quote(field)} (expected key=value after the host)`
  const key = field.slice(0, eq)
  const value = field.slice(eq + 1)
  if (key !== 'slots') {
    warn(`ignoring ${quote(field)}`)
    return undefined
  }
  if (!/^[0-9]+$/.test(value) || Number(value) < 1 || Number(value) > 4096)
    return `invalid slots ${quote(value)} (expected a whole number from 1 to 4096)`
  // Two counts for one line: whichever was taken, the other would be silently wrong.
  if (entry.slots !== undefined) return `slots= given twice (slots=${entry.slots} and slots=${Number(value)})`
  entry.slots = Number(value)
  return undefined
}

/** One line (or `--hosts` item): a host pattern, then `key=value` fields that apply to every host it names. */
function parseLine(line: string, where: string, warn: (m: string) => void): HostEntry[] | string {
  const [pattern = '', ...fields] = line.split(/\s+/)
  let specs: string[]
  try {
    specs = expandHostRange(pattern)
  } catch (e) {
    if (e instanceof FanoutError) return e.message
    throw e
  }
  const entries: HostEntry[] = []
  for (const spec of specs) {
    const parsed = parseHostSpec(spec)
    if (typeof parsed === 'string') return specs.length > 1 ? `${parsed} (from ${quote(pattern)})` : parsed
    entries.push({ ...parsed, where })
  }
  const extra: { slots?: number } = {}
  for (const field of fields) {
    const problem = parseField(field, extra, warn)
    if (problem) return problem
  }
  return entries.map((entry) => ({ ...entry, ...extra }))
}

/** Parses numbered lines, collecting every error (duplicates after range expansion included). */
function parseLines(lines: Array<[where: string, content: string]>, empty: string): ParsedHostfile {
  const hosts: HostEntry[] = []
  const warnings: string[] = []
  const errors: string[] = []
  const seen = new Map<string, string>()
  for (const [where, content] of lines) {
    const parsed = parseLine(content, where, (m) => warnings.push(`${where}: ${m}`))
    if (typeof parsed === 'string') {
      errors.push(`${where}: ${parsed}`)
      continue
    }
    const duplicates: string[] = []
    for (const entry of parsed) {
      const key = `${entry.host.toLowerCase()}:${entry.port ?? ''}`
      const first = seen.get(key)
      if (first) duplicates.push(`duplicate host ${quote(entry.host)} (first at ${first})`)
      else seen.set(key, where)
      hosts.push(entry)
    }
    // A repeated range would name every host again: one line of the report is enough.
    if (duplicates.length > 0)
      errors.push(`${where}: ${duplicates[0]}${duplicates.length > 1 ? ` and ${duplicates.length - 1} more` : ''}`)
    if (hosts.length > MAX_HOSTS) {
      errors.push(`${where}: more than ${MAX_HOSTS} hosts`)
      break
    }
  }
  if (errors.length === 0 && hosts.length === 0) errors.push(empty)
  if (errors.length > MAX_ERRORS) errors.splice(MAX_ERRORS, Infinity, `… and ${errors.length - MAX_ERRORS} more errors`)
  if (errors.length > 0) throw new FanoutError(errors.join('\n'), 'HOSTFILE')
  return { hosts, warnings }
}

/**
 * Parses a hostfile: one node (or host range) per line, line order is node rank, `#` starts a
 * comment. Every error in the file is collected and thrown as one FanoutError naming `file:line`.
 */
export function parseHostfile(text: string, file: string): ParsedHostfile {
  if (text.length > MAX_BYTES)
    throw new FanoutError(`${file}: too large for a hostfile (over ${MAX_BYTES} bytes)`, 'HOSTFILE')
  const nul = text.indexOf('\0')
  if (nul >= 0) {
    const line = text.slice(0, nul).split('\n').length
    throw new FanoutError(`${file}:${line}: not a text file (contains NUL bytes)`, 'HOSTFILE')
  }
  const lines = text
    .split(/\r?\n/)
    .map((raw, i): [string, string] => [`${file}:${i + 1}`, raw.replace(/#.*/, '').trim()])
  return parseLines(
    lines.filter(([, line]) => line !== ''),
    `${file}: no hosts (every line is blank or a comment)`,
  )
}

/**
 * Parses a comma-separated host list (`--hosts a,gpu[1-4]`, `SLURM_JOB_NODELIST`): each item is what a
 * hostfile line may hold, and is named `SOURCE:N` (its position) in messages.
 */
export function parseHostList(text: string, source: string): ParsedHostfile {
  const lines = splitHostList(text).map((item, i): [string, string] => [`${source}:${i + 1}`, item])
  return parseLines(lines, `${source}: no hosts`)
}
