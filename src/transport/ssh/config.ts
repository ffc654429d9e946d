import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { homedir, userInfo } from 'node:os'
import { basename, dirname, isAbsolute, join } from 'node:path'
import SSHConfig from 'ssh-config'
import { FanoutError, usageError } from '../../errors.js'
import { parseJumpHost, parsePort, type HostEntry } from '../../hosts/hostfile.js'

/** Everything needed to open one node's SSH connection, after ssh_config and flags are applied. */
export interface SshTarget {
  /** The host as written in the hostfile (the name messages use). */
  alias: string
  hostname: string
  port: number
  user: string
  /** Private key files to offer, in order (agent keys are offered first). */
  identityFiles: string[]
  identitiesOnly: boolean
  knownHostsFiles: string[]
  /** The name looked up in known_hosts: HostKeyAlias, else the HostName. */
  hostKeyName: string
  /** ssh config's StrictHostKeyChecking: accept-new (or no/off, which fanout treats as accept-new: a changed key is never accepted) records keys of hosts never seen. */
  acceptNewHostKeys: boolean
  connectTimeoutS?: number
  /**
   * The jump host this one is reached through (ProxyJump / `--jump`), itself resolved like a node and
   * possibly behind another: one connection to it is shared by every node behind it.
   */
  via?: SshTarget
}

export interface SshFlags {
  user?: string
  port?: number
  identity?: string[]
  /** `--ssh-config FILE`: replaces ~/.ssh/config and /etc/ssh/ssh_config, like `ssh -F`. */
  configFile?: string
  /** `--jump SPEC` (like `ssh -J`): replaces every node's ProxyJump; `none` turns it off. */
  jump?: string
}

/** Longest chain of jump hosts followed: a longer one is almost surely a loop in the config. */
const MAX_HOPS = 8

/** What names an SSH server: a hostfile entry, or one hop of a jump chain. */
type HostAddress = Pick<HostEntry, 'host' | 'user' | 'port'>

type Computed = Record<string, string | string[]>

const DEFAULT_IDENTITIES = ['id_rsa', 'id_ecdsa', 'id_ecdsa_sk', 'id_ed25519', 'id_ed25519_sk']

// OpenSSH inlines Include files where they appear; textual inlining gives the same first-match-wins
// result for the directives fanout uses. Relative paths are relative to ~/.ssh, as in ssh_config(5).
function readWithIncludes(file: string, depth = 0): string {
  if (depth > 16) throw usageError(`${file}: Include nested too deeply`)
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (e) {
    throw usageError(`cannot read ssh config ${file}: ${(e as Error).message}`)
  }
  return text.replace(/^[ \t]*Include[ \t=]+(.+)$/gim, (_, patterns: string) =>
    patterns
      .trim()
      .split(/\s+/)
      .flatMap((pattern) => {
        const path = expandTilde(pattern.replace(/^"|"$/g, ''))
        const full = isAbsolute(path) ? path : join(homedir(), '.ssh', path)
        return globOneLevel(full).map((f) => readWithIncludes(f, depth + 1))
      })
      .join('\n'),
  )
}

function globOneLevel(path: string): string[] {
  const name = basename(path)
  if (!/[*?]/.test(name)) return existsSync(path) ? [path] : []
  const re = new RegExp(
    `^${name
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.')}$`,
  )
  const dir = dirname(path)
  if (!existsSync(dir)) return []
  return readdirSync(dir)
    .filter((f) => re.test(f))
    .sort()
    .map((f) => join(dir, f))
}

const expandTilde = (p: string): string => (p === '~' || p.startsWith('~/') ? join(homedir(), p.slice(1)) : p)

/** Loads the ssh configuration fanout honours: `--ssh-config`, else ~/.ssh/config then /etc/ssh/ssh_config. */
export function loadSshConfig(configFile: string | undefined): SSHConfig {
  const files = configFile
    ? [configFile]
    : [join(homedir(), '.ssh', 'config'), '/etc/ssh/ssh_config'].filter((f) => existsSync(f))
  if (configFile && !existsSync(configFile)) throw usageError(`--ssh-config: ${configFile} does not exist`)
  return SSHConfig.parse(files.map((f) => readWithIncludes(f)).join('\n'))
}

const first = (c: Computed, key: string): string | undefined => {
  const v = c[key.toLowerCase()]
  return Array.isArray(v) ? v[0] : v
}
const all = (c: Computed, key: string): string[] => {
  const v = c[key.toLowerCase()]
  return v === undefined ? [] : Array.isArray(v) ? v.flatMap((s) => s.split(/\s+/)) : v.split(/\s+/)
}

/** The ssh config's settings for a host name, first match wins (Match exec is not run). */
const settingsFor = (config: SSHConfig, host: string): Computed =>
  config.compute(host, { ignoreCase: true, matchExec: false }) as Computed

/**
 * Resolves one hostfile entry against ssh_config and the flags. Precedence, most specific first:
 * the hostfile's own `user@` and `:port`, then the flags, then ssh_config, then OpenSSH's defaults.
 */
export function resolveTarget(entry: HostEntry, config: SSHConfig, flags: SshFlags): SshTarget {
  return resolveWithJumps(entry, config, flags, [])
}

/** One host, and the chain of jump hosts in front of it; `seen` holds the hosts already on the chain. */
function resolveWithJumps(entry: HostAddress, config: SSHConfig, flags: SshFlags, seen: string[]): SshTarget {
  const c = settingsFor(config, entry.host)
  // As in ssh, -J (here --jump) wins over the config, and the first of ProxyJump/ProxyCommand set wins.
  const jump = flags.jump ?? first(c, 'ProxyJump')
  const proxyCommand = first(c, 'ProxyCommand')
  if (
    flags.jump === undefined &&
    proxyCommand &&
    proxyCommand.toLowerCase() !== 'none' &&
    (!jump || Object.keys(c).indexOf('proxycommand') < Object.keys(c).indexOf('proxyjump'))
  )
    throw new FanoutError(
      `${entry.host}: ssh config sets ProxyCommand ${proxyCommand}, which fanout does not support (ProxyJump is supported); refusing to connect directly instead`,
      'CONNECT',
    )
  const target = resolveOne(entry, c, flags)
  if (jump && jump.toLowerCase() !== 'none')
    target.via = resolveJumpChain(jump, entry.host, config, flags, [...seen, entry.host.toLowerCase()])
  return target
}

/**
 * `a,b,c` means: connect to a, through it to b, through b to c, and through c to the node. As with
 * `ssh -J`, the first hop follows its own config (ProxyJump included); later hops go through the one
 * before them; only the config and the spec's user@ and :port apply to a jump host, not --user/--port.
 */
function resolveJumpChain(
  spec: string,
  forHost: string,
  config: SSHConfig,
  flags: SshFlags,
  seen: string[],
): SshTarget {
  let via: SshTarget | undefined
  for (const hop of spec.split(',')) {
    const parsed = parseJumpHost(hop.trim(), forHost)
    const name = parsed.host.toLowerCase()
    if (seen.includes(name) || seen.length >= MAX_HOPS)
      throw usageError(
        `${seen[0] ?? forHost}: the jump hosts loop (${[...seen, name].join(' → ')}); give the jump host \`ProxyJump none\` in the ssh config`,
      )
    const hopFlags: SshFlags = { ...(flags.identity ? { identity: flags.identity } : {}) }
    const target = via
      ? resolveOne(parsed, settingsFor(config, parsed.host), hopFlags)
      : resolveWithJumps(parsed, config, hopFlags, seen)
    if (via) target.via = via
    seen = [...seen, name]
    via = target
  }
  return via as SshTarget
}

function resolveOne(entry: HostAddress, c: Computed, flags: SshFlags): SshTarget {
  const hostname = first(c, 'HostName')?.replace(/%h/g, entry.host) ?? entry.host
  const user = entry.user ?? flags.user ?? first(c, 'User') ?? userInfo().username
  const portText = first(c, 'Port')
  const configPort = portText === undefined ? undefined : (parsePort(portText) ?? NaN)
  if (Number.isNaN(configPort))
    throw usageError(`${entry.host}: the ssh config sets Port ${portText}, which is not a port from 1 to 65535`)
  const port = entry.port ?? flags.port ?? configPort ?? 22
  const tokens = (p: string): string =>
    expandTilde(p).replace(
      /%(.)/g,
      (m, t: string) =>
        ({ '%': '%', d: homedir(), u: userInfo().username, r: user, h: hostname, n: entry.host, p: String(port) })[t] ??
        m,
    )
  const configured = all(c, 'IdentityFile').map(tokens)
  const fromFlags = (flags.identity ?? []).map(expandTilde)
  const defaults = DEFAULT_IDENTITIES.map((n) => join(homedir(), '.ssh', n))
  const identityFiles = [...fromFlags, ...(configured.length > 0 ? configured : defaults)].filter((f) => existsSync(f))
  const userKnown = all(c, 'UserKnownHostsFile')
  const knownHostsFiles = [
    ...(userKnown.length > 0 ? userKnown : ['~/.ssh/known_hosts', '~/.ssh/known_hosts2']),
    ...(all(c, 'GlobalKnownHostsFile').length > 0
      ? all(c, 'GlobalKnownHostsFile')
      : ['/etc/ssh/ssh_known_hosts', '/etc/ssh/ssh_known_hosts2']),
  ].map(tokens)
  const timeout = first(c, 'ConnectTimeout')
  const target: SshTarget = {
    alias: entry.host,
    hostname,
    port,
    user,
    identityFiles,
    identitiesOnly: first(c, 'IdentitiesOnly')?.toLowerCase() === 'yes',
    knownHostsFiles,
    hostKeyName: first(c, 'HostKeyAlias') ?? hostname,
    acceptNewHostKeys: ['accept-new', 'no', 'off'].includes(first(c, 'StrictHostKeyChecking')?.toLowerCase() ?? ''),
  }
  if (timeout !== undefined) {
    if (!/^\d+$/.test(timeout) || Number(timeout) === 0)
      throw usageError(
        `${entry.host}: the ssh config sets ConnectTimeout ${timeout}, which is not a whole number of seconds`,
      )
    target.connectTimeoutS = Number(timeout)
  }
  return target
}
