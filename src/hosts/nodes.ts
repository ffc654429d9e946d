import { readFileSync } from 'node:fs'
import { usageError } from '../errors.js'
import type { HostEntry } from './hostfile.js'
import type { SshFlags, SshTarget } from '../transport/ssh/config.js'
import { LOCAL_HOSTS } from '../transport/types.js'
import type { SrunTarget } from '../transport/srun.js'

/** A node of the job: its rank, how to reach it, and what the hostfile said about it. */
export interface NodeSpec {
  rank: number
  entry: HostEntry
  /** Absent for a node run through the local transport or srun. */
  ssh?: SshTarget
  /** Set for a node of a SLURM allocation reached through srun (--via srun). */
  srun?: SrunTarget
}

/** `localhost` without user@ or :port runs locally: the built-in default needs no sshd. */
const isLocal = (entry: HostEntry): boolean =>
  LOCAL_HOSTS.has(entry.host.toLowerCase()) && entry.user === undefined && entry.port === undefined

/** Resolves every entry before any connection, so that a bad setting fails the whole launch up front. */
export async function resolveNodes(
  hosts: readonly HostEntry[],
  flags: SshFlags,
  slurmJobId?: string,
): Promise<NodeSpec[]> {
  if (slurmJobId !== undefined)
    return hosts.map((entry, rank) => ({ rank, entry, srun: { jobId: slurmJobId, node: entry.host } }))
  for (const file of flags.identity ?? []) {
    try {
      readFileSync(file)
    } catch (e) {
      throw usageError(
        `--identity ${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`,
      )
    }
  }
  if (hosts.every(isLocal)) return hosts.map((entry, rank) => ({ rank, entry }))
  // Loaded only when a node needs SSH, keeping the all-local path and --help fast.
  const { loadSshConfig, resolveTarget } = await import('../transport/ssh/config.js')
  const config = loadSshConfig(flags.configFile)
  return hosts.map((entry, rank) =>
    isLocal(entry) ? { rank, entry } : { rank, entry, ssh: resolveTarget(entry, config, flags) },
  )
}
