import { resolve } from 'node:path'
import type { Argv } from 'yargs'
import { usageError } from '../../errors.js'
import { MAX_HOSTS } from '../../hosts/hostrange.js'
import { NO_HOSTS, type HostListOptions } from '../../hosts/hostsource.js'
import { int, text, type Env } from '../parser.js'

// The flags that name and select the nodes, which `fanout`, `fanout check` and `fanout hosts` share.

/** The options both commands share: the host list and the selection. */
export function withHostOptions<T>(y: Argv<T>) {
  return y
    .option('hostfile', {
      alias: 'H',
      type: 'string',
      describe: 'file listing the nodes, one per line (node 0 first); - reads stdin',
      group: 'Nodes:',
    })
    .option('hosts', {
      type: 'string',
      describe: 'the nodes as a list instead of a file: a,b,gpu[01-16]',
      group: 'Nodes:',
    })
    .option('via', {
      type: 'string',
      describe:
        "how to reach the nodes: ssh; srun (the allocation's nodes, no SSH: the default inside salloc/sbatch); sbatch (submit a batch job that runs this)",
      group: 'Nodes:',
    })
    .option('include', {
      type: 'string',
      describe: 'only these hosts or GPUs: "w0@w1:0,2" (a bare host: all of it)',
      group: 'Selection:',
    })
    .option('exclude', {
      type: 'string',
      describe: 'all but these hosts or GPUs: "w1:0" (a bare host: all of it)',
      group: 'Selection:',
    })
    .option('num-nodes', { type: 'string', describe: 'the first N nodes', group: 'Selection:' })
    .option('num-gpus', { type: 'string', describe: 'the first N GPUs of each node', group: 'Selection:' })
}

/** The host list and selection flags, validated; every command takes them. */
export function readHostOptions(a: Record<string, unknown>, cwd: string, env: Env): HostListOptions {
  const hostfile = text('hostfile', a.hostfile)
  const hosts = text('hosts', a.hosts)
  if (hostfile !== undefined && hosts !== undefined) throw usageError('--hostfile and --hosts cannot be used together')
  const given = {
    hostfile: hostfile === undefined || hostfile === '-' ? hostfile : resolve(cwd, hostfile),
    hosts,
    include: text('include', a.include),
    exclude: text('exclude', a.exclude),
    numNodes: int('num-nodes', text('num-nodes', a['num-nodes']), 1, MAX_HOSTS),
    numGpus: int('num-gpus', text('num-gpus', a['num-gpus']), 1, 4096),
  }
  const via = text('via', a.via)
  if (via === 'sbatch') {
    // The batch job's nodes are its allocation: fanout inside it reads them, and selects with the same flags.
    if (hostfile !== undefined || hosts !== undefined)
      throw usageError('--via sbatch runs on the nodes SLURM allocates (--nodes N), not on --hostfile/--hosts')
    return Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined))
  }
  // Said before anything is read; with SLURM_JOB_NODELIST set, hostsource.ts reads the allocation's list.
  if (hostfile === undefined && hosts === undefined && !env.SLURM_JOB_NODELIST?.trim()) throw usageError(NO_HOSTS)
  const slurmJobId = readVia(via, hostfile ?? hosts, env)
  return Object.fromEntries(Object.entries({ ...given, slurmJobId }).filter(([, v]) => v !== undefined))
}

/**
 * --via: the allocation's job id when the nodes are reached through srun, else undefined (SSH). Inside
 * an allocation (SLURM_JOB_ID set) without a host list, srun is the default: on most SLURM clusters
 * SSH between nodes is refused, or only allowed into one's own allocation (--via ssh then).
 */
function readVia(via: string | undefined, hostList: string | undefined, env: Env): string | undefined {
  if (via !== undefined && via !== 'ssh' && via !== 'srun')
    throw usageError(`--via must be ssh, srun or sbatch (got ${JSON.stringify(via)})`)
  const jobId = env.SLURM_JOB_ID?.trim()
  if (via === 'ssh' || (via === undefined && (hostList !== undefined || !jobId))) return undefined
  if (hostList !== undefined)
    throw usageError(
      `--via srun runs on the nodes of the SLURM allocation, not on --hostfile/--hosts: select among them with --include, --exclude or --num-nodes`,
    )
  if (!jobId || !/^[0-9]+(_[0-9]+)?$/.test(jobId))
    throw usageError(
      jobId
        ? `--via srun: SLURM_JOB_ID=${JSON.stringify(jobId)} is not a job id`
        : '--via srun runs inside a SLURM allocation (salloc or sbatch), and SLURM_JOB_ID is not set here',
    )
  if (!env.SLURM_JOB_NODELIST?.trim()) throw usageError(`--via srun: SLURM_JOB_NODELIST is not set in job ${jobId}`)
  return jobId
}
