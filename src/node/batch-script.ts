import { usageError } from '../errors.js'
import { shellJoin } from './quote.js'

/** What `fanout --via sbatch` asks of SLURM for the batch job (each a flag of sbatch's own). */
export interface BatchRequest {
  nodes?: number
  gpusPerNode?: number
  /** `--time`, in SLURM's own forms (`30`, `4:00:00`, `1-12`). */
  time?: string
  partition?: string
  account?: string
}

export interface BatchScript extends BatchRequest {
  jobName: string
  /** Where the batch job runs and writes its output (`fanout-%j.out` there): the submit directory. */
  dir: string
  /** fanout's own command line on the batch host: the interpreter, fanout, and the user's words minus the sbatch flags. */
  fanout: readonly string[]
}

/** SLURM's time limits: minutes, [HH:]MM:SS, D-HH[:MM[:SS]], or UNLIMITED. */
const TIME = /^(UNLIMITED|infinite|[0-9]+(:[0-9]{1,2}){0,2}|[0-9]+-[0-9]{1,2}(:[0-9]{1,2}){0,2})$/
/** A partition's or account's name: what slurm.conf and sacctmgr allow, and nothing a directive could misread. */
const NAME = /^[A-Za-z0-9_][A-Za-z0-9_.+-]*$/
/** What a #SBATCH line can carry unquoted: no whitespace, quote, backslash or comment sign. */
const DIRECTIVE_VALUE = /^[^\s"'\\#]+$/

/** Validates the sbatch flags (exit 2 on a bad one, before anything is submitted). */
export function checkBatchRequest(r: BatchRequest): BatchRequest {
  if (r.time !== undefined && !TIME.test(r.time))
    throw usageError(`--time must be a SLURM time limit such as 30, 4:00:00 or 1-12 (got ${JSON.stringify(r.time)})`)
  for (const [flag, value] of [
    ['partition', r.partition],
    ['account', r.account],
  ] as const)
    if (value !== undefined && !NAME.test(value))
      throw usageError(`--${flag} must be a SLURM ${flag} name (got ${JSON.stringify(value)})`)
  return r
}

/**
 * The batch script `fanout --via sbatch` writes and submits: SLURM's directives, then fanout itself,
 * exec'd, on the batch host: inside the allocation it reaches every node through srun (--via srun is
 * the default there), with plain output (no terminal) in the job's output file. Every word of the
 * command line is quoted for sh (quote.ts): the script runs exactly what was typed.
 */
export function batchScript(b: BatchScript): string {
  for (const [what, value] of [
    ['the working directory', b.dir],
    ['the job name', b.jobName],
  ] as const)
    if (!DIRECTIVE_VALUE.test(value))
      throw usageError(
        `--via sbatch: ${what} ${JSON.stringify(value)} cannot be written on an #SBATCH line (it has a space, quote, backslash or #); run from another directory`,
      )
  const directives = [
    `--job-name=${b.jobName}`,
    ...(b.nodes === undefined ? [] : [`--nodes=${b.nodes}`]),
    // One task per node: fanout's srun steps take one each; torchrun starts the processes.
    '--ntasks-per-node=1',
    ...(b.gpusPerNode === undefined ? [] : [`--gpus-per-node=${b.gpusPerNode}`]),
    ...(b.time === undefined ? [] : [`--time=${b.time}`]),
    ...(b.partition === undefined ? [] : [`--partition=${b.partition}`]),
    ...(b.account === undefined ? [] : [`--account=${b.account}`]),
    `--chdir=${b.dir}`,
    `--output=${b.dir}/fanout-%j.out`,
  ]
  return [
    '#!/bin/sh',
    ...directives.map((d) => `#SBATCH ${d}`),
    '# Written by fanout --via sbatch. fanout runs on the batch host and reaches every node of the',
    '# allocation through srun; resubmit with: sbatch THIS_FILE',
    `exec ${shellJoin(b.fanout)}`,
    '',
  ].join('\n')
}
