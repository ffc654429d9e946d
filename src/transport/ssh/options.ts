import type ssh2 from 'ssh2'
import type { SshFlags } from './config.js'

/** How fanout opens each SSH connection: timeouts, keepalive, and the credentials it was given. */
export interface SshOptions {
  connectTimeoutS: number
  /** Seconds between keepalives; the connection counts as lost after `keepaliveCountMax` unanswered. */
  keepaliveS: number
  keepaliveCountMax: number
  agentSocket?: string
  /** `--accept-new`: record the key of a host never seen in the first known_hosts file (a changed key is still refused). */
  acceptNew?: boolean
  /** Encrypted identity files' keys, decrypted once before connecting, when their passphrases were checked (ssh/credentials.ts). */
  unlocked?: ReadonlyMap<string, ssh2.ParsedKey>
  /** Why some identity files stay locked (no terminal, wrong passphrase): said when authentication fails. */
  locked?: ReadonlyMap<string, string>
  /** `--ask-password`: tried after the keys. */
  password?: string
  /** Tells the user something worth knowing (a host key recorded). */
  notice?: (message: string) => void
}

/** How the nodes are reached: the SSH flags (SshFlags: user, port, identity, config file, jump) and the connection's own. */
export interface SshConnectOptions extends SshFlags {
  /** `--accept-new`: record keys of hosts never seen before. */
  acceptNew: boolean
  /** `--ask-password`: ask once for a password. */
  askPassword: boolean
  connectTimeoutS: number
  maxHandshakes: number
  keepaliveS: number
}
