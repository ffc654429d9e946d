import type { Argv } from 'yargs'
import { usageError } from '../../errors.js'
import { checkBatchRequest, type BatchRequest } from '../../node/batch-script.js'
import { int, text } from '../parser.js'

// The SLURM flags of `fanout --via sbatch`: what the batch job asks for. fanout inside the job gets
// every other flag as typed.

/** These flags' names, as typed: left out of the command line the batch job runs. */
export const SBATCH_FLAGS: ReadonlySet<string> = new Set([
  'via',
  'nodes',
  'gpus-per-node',
  'time',
  'partition',
  'account',
  'wait',
])

export function withSbatchOptions<T>(y: Argv<T>) {
  const group = 'SLURM batch (--via sbatch):'
  return y
    .option('nodes', { type: 'string', describe: 'nodes to allocate (sbatch --nodes)', group })
    .option('gpus-per-node', {
      type: 'string',
      describe: 'GPUs to allocate on each node (sbatch --gpus-per-node)',
      group,
    })
    .option('time', { type: 'string', describe: "the job's time limit, e.g. 30, 4:00:00, 1-12 (sbatch --time)", group })
    .option('partition', { type: 'string', describe: 'the partition to submit to (sbatch --partition)', group })
    .option('account', { type: 'string', describe: 'the account to charge (sbatch --account)', group })
    .option('wait', {
      type: 'boolean',
      describe: "follow the job's output until it ends, and exit with its code (Ctrl-C stops the job)",
      group,
    })
}

export interface SbatchFlags extends BatchRequest {
  wait: boolean
}

/** The sbatch flags, validated; any of them without --via sbatch is refused (it would be ignored). */
export function readSbatchOptions(a: Record<string, unknown>, submit: boolean): SbatchFlags | undefined {
  const given = ['nodes', 'gpus-per-node', 'time', 'partition', 'account', 'wait'].filter((f) => a[f] !== undefined)
  if (!submit) {
    if (given.length > 0)
      throw usageError(`--${given[0]} is for --via sbatch (it asks SLURM for the batch job); see fanout --help`)
    return undefined
  }
  const request: BatchRequest = {}
  const nodes = int('nodes', text('nodes', a.nodes), 1, 100_000)
  if (nodes !== undefined) request.nodes = nodes
  const gpus = int('gpus-per-node', text('gpus-per-node', a['gpus-per-node']), 0, 4096)
  if (gpus !== undefined) request.gpusPerNode = gpus
  for (const key of ['time', 'partition', 'account'] as const) {
    const value = text(key, a[key])
    if (value !== undefined) request[key] = value
  }
  return { ...checkBatchRequest(request), wait: a.wait === true }
}
