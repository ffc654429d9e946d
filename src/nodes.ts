import { readFileSync, statSync } from 'node:fs'
import { FanoutError, usageError } from './errors.js'
import { parseHostfile, type HostEntry } from './hostfile.js'
import type { SshFlags, SshTarget } from './ssh/config.js'
import { LOCAL_HOSTS } from './transport/local.js'

/** A node of the job: its rank, how to reach it, and what the hostfile said about it. */
export interface NodeSpec {
  rank: number
  entry: HostEntry
  /** Absent for a node run through the local transport. */
  ssh?: SshTarget
}

/** Reads and parses the hostfile, turning file-system errors into messages that name the file. */
export function readHostfile(path: string): { hosts: HostEntry[]; warnings: string[] } {
  let text: string
  try {
    if (statSync(path).isDirectory()) throw new FanoutError(`${path}: is a directory, not a hostfile`, 'HOSTFILE')
    text = readFileSync(path, 'utf8')
  } catch (e) {
    if (e instanceof FanoutError) throw e
    const code = (e as NodeJS.ErrnoException).code
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (e as Error).message
    throw new FanoutError(`${path}: cannot read hostfile: ${why}`, 'HOSTFILE')
  }
  return parseHostfile(text, path)
}

/** `localhost` without user@ or :port runs locally: the built-in default needs no sshd. */
const isLocal = (entry: HostEntry): boolean => LOCAL_HOSTS.has(entry.host.toLowerCase()) && entry.user === undefined && entry.port === undefined

/** Resolves every entry before any connection, so that a bad setting fails the whole launch up front. */
export async function resolveNodes(hosts: readonly HostEntry[], flags: SshFlags): Promise<NodeSpec[]> {
  for (const file of flags.identity ?? []) {
    try {
      readFileSync(file)
    } catch (e) {
      throw usageError(`--identity ${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`)
    }
  }
  if (hosts.every(isLocal)) return hosts.map((entry, rank) => ({ rank, entry }))
  // Loaded only when a node needs SSH, keeping the all-local path and --help fast.
  const { loadSshConfig, resolveTarget } = await import('./ssh/config.js')
  const config = loadSshConfig(flags.configFile)
  return hosts.map((entry, rank) => (isLocal(entry) ? { rank, entry } : { rank, entry, ssh: resolveTarget(entry, config, flags) }))
}
