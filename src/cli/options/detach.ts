import type { Argv } from 'yargs'
import { usageError } from '../../errors.js'
import type { DetachOptions } from '../../launch/options.js'
import { parseSize } from '../../sync/limits.js'

// The Detach flags: a run that goes on without this terminal (launch/detach.ts, runs/).

const DEFAULT_LOG_MAX = 1024 ** 3

export function withDetachOptions<T>(y: Argv<T>) {
  const group = 'Detached runs:'
  return y
    .option('detach', {
      alias: 'd',
      type: 'boolean',
      describe:
        'start the job, then return once every node runs it: it goes on without this terminal (fanout attach, logs, stop, ps)',
      group,
    })
    .option('detach-log-max', {
      type: 'string',
      describe:
        "with --detach: how much of the job's output each node keeps, e.g. 200MiB (default 1GiB; older output goes first)",
      group,
    })
}

/** --detach and its log cap; undefined without --detach. */
export function readDetachOptions(a: Record<string, unknown>): DetachOptions | undefined {
  const max = a['detach-log-max']
  if (a.detach !== true) {
    if (max !== undefined) throw usageError('--detach-log-max is for a detached run: add --detach')
    return undefined
  }
  if (max === undefined) return { logMaxBytes: DEFAULT_LOG_MAX }
  const bytes = typeof max === 'string' ? parseSize(max) : undefined
  if (bytes === undefined || bytes < 1024 * 1024)
    throw usageError(
      `--detach-log-max: ${JSON.stringify(String(max))} is not a size of at least 1MiB (such as 200MiB, 1GiB, 5G)`,
    )
  return { logMaxBytes: bytes }
}

/**
 * What --detach cannot go with: flags about this terminal's output (a detached run shows none here;
 * fanout attach and logs show it), and the ways to reach nodes whose job would end with this fanout.
 */
export function checkDetach(
  a: Record<string, unknown>,
  context: { check: boolean; srun: boolean; submit: boolean },
): void {
  const refuse = (what: string, why: string): never => {
    throw usageError(`--detach with ${what}: ${why}`)
  }
  if (context.check) refuse('fanout check', 'check launches nothing, so there is nothing to detach')
  if (a['dry-run'] === true) refuse('--dry-run', '--dry-run launches nothing, so there is nothing to detach')
  if (context.submit) refuse('--via sbatch', 'a batch job already goes on without this terminal (SLURM keeps it)')
  if (context.srun)
    refuse(
      '--via srun',
      "srun's job steps end with the srun that started them; use --via sbatch (SLURM keeps the job) or --via ssh",
    )
  for (const flag of ['json', 'log-dir', 'only', 'only-node', 'quiet'])
    if (a[flag] !== undefined && a[flag] !== false)
      refuse(
        `--${flag}`,
        `it shapes the output this terminal shows, and a detached run shows none here: every node keeps all of its output (fanout logs RUN, fanout attach RUN)`,
      )
}
