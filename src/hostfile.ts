import { FanoutError } from './errors.js'

/** One line of a host list: the node's rank is its position in the list. */
export interface HostEntry {
  /** The host as written (without user and port): what output prefixes and messages show. */
  host: string
  user?: string
  port?: number
  /** Processes to start on this node (DeepSpeed/OpenMPI `slots=N`); unset means "probe the GPUs". */
  slots?: number
  /** Where the entry came from, for messages: `file:line`. */
  where: string
}

export interface ParsedHostfile {
  hosts: HostEntry[]
  warnings: string[]
}

// RFC 1123 labels (underscore tolerated: it occurs in /etc/hosts and ssh config aliases).
const HOSTNAME = /^[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?)*\.?$/
const IPV6 = /^[0-9A-Fa-f:.]+(%[A-Za-z0-9_.-]+)?$/
const USER = /^[A-Za-z0-9._][A-Za-z0-9._-]*$/
const MAX_BYTES = 8 * 1024 * 1024

type Field = { host: string; user?: string; port?: number }

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
    if (!USER.test(user)) return `invalid user name ${JSON.stringify(user)}`
  }
  let host = rest
  let portText: string | undefined
  const bracketed = /^\[([^\]]*)\](?::(.*))?$/.exec(rest)
  if (bracketed) {
    host = bracketed[1] ?? ''
    portText = bracketed[2]
    if (!IPV6.test(host) && !HOSTNAME.test(host)) return `invalid host ${JSON.stringify(host)}`
  } else if ((rest.match(/:/g) ?? []).length > 1) {
    if (!IPV6.test(rest)) return `invalid IPv6 address ${JSON.stringify(rest)}`
  } else {
    const colon = rest.indexOf(':')
    if (colon >= 0) {
      host = rest.slice(0, colon)
      portText = rest.slice(colon + 1)
    }
    if (host === '') return 'empty host name'
    if (!HOSTNAME.test(host)) return `invalid host name ${JSON.stringify(host)}`
  }
  if (portText === undefined) return user === undefined ? { host } : { host, user }
  const port = parsePort(portText)
  if (port === undefined) return `invalid port ${JSON.stringify(portText)} (expected 1-65535)`
  return user === undefined ? { host, port } : { host, user, port }
}

export function parsePort(text: string): number | undefined {
  if (!/^[0-9]{1,5}$/.test(text)) return undefined
  const port = Number(text)
  return port >= 1 && port <= 65535 ? port : undefined
}

/** `slots=N` fields; other `key=value` fields of the MPI dialects are ignored with a warning. */
function parseField(field: string, entry: HostEntry, warn: (m: string) => void): string | undefined {
  const eq = field.indexOf('=')
  if (eq <= 0) return `unexpected ${JSON.stringify(field)} (expected key=value after the host)`
  const key = field.slice(0, eq)
  const value = field.slice(eq + 1)
  if (key !== 'slots') {
    warn(`ignoring ${JSON.stringify(field)}`)
    return undefined
  }
  if (!/^[0-9]+$/.test(value) || Number(value) < 1 || Number(value) > 4096)
    return `invalid slots ${JSON.stringify(value)} (expected a whole number from 1 to 4096)`
  entry.slots = Number(value)
  return undefined
}

/**
 * Parses a hostfile: one node per line, line order is node rank, `#` starts a comment. Every error
 * in the file is collected and thrown as one FanoutError naming `file:line` for each.
 */
export function parseHostfile(text: string, file: string): ParsedHostfile {
  if (text.length > MAX_BYTES) throw new FanoutError(`${file}: too large for a hostfile (over ${MAX_BYTES} bytes)`, 'HOSTFILE')
  if (text.includes('\0')) throw new FanoutError(`${file}: not a text file (contains NUL bytes)`, 'HOSTFILE')
  const hosts: HostEntry[] = []
  const warnings: string[] = []
  const errors: string[] = []
  const seen = new Map<string, string>()
  text.split(/\r?\n/).forEach((raw, index) => {
    const where = `${file}:${index + 1}`
    const line = raw.replace(/#.*/, '').trim()
    if (line === '') return
    const [spec = '', ...fields] = line.split(/\s+/)
    const parsed = parseHostSpec(spec)
    if (typeof parsed === 'string') return void errors.push(`${where}: ${parsed}`)
    const entry: HostEntry = { ...parsed, where }
    for (const field of fields) {
      const problem = parseField(field, entry, (m) => warnings.push(`${where}: ${m}`))
      if (problem) return void errors.push(`${where}: ${problem}`)
    }
    const key = `${entry.host.toLowerCase()}:${entry.port ?? ''}`
    const first = seen.get(key)
    if (first) return void errors.push(`${where}: duplicate host ${JSON.stringify(entry.host)} (first at ${first})`)
    seen.set(key, where)
    hosts.push(entry)
  })
  if (errors.length === 0 && hosts.length === 0) errors.push(`${file}: no hosts (every line is blank or a comment)`)
  if (errors.length > 0) throw new FanoutError(errors.join('\n'), 'HOSTFILE')
  return { hosts, warnings }
}
