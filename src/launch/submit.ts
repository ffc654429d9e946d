import { spawn } from 'node:child_process'
import { existsSync, openSync, readSync, closeSync, statSync, writeFileSync } from 'node:fs'
import { basename, join } from 'node:path'
import { FanoutError, usageError } from '../errors.js'
import { batchScript, type BatchRequest } from '../node/batch-script.js'
import type { StopReason } from '../supervise/types.js'

/** `fanout --via sbatch …`: what to submit. */
export interface SubmitOptions {
  request: BatchRequest
  /** Follow the job's output until it ends (--wait). */
  wait: boolean
  /** The submit directory: the batch job runs there, and writes its output there. */
  dir: string
  /** fanout's words for the batch job: the command line as typed, without the sbatch flags. */
  words: string[]
  script: string
  /** The script is a file on the (shared) file system, not a module or a command. */
  scriptIsFile: boolean
}

export interface SubmitIo {
  stdout: NodeJS.WritableStream
  stderr: NodeJS.WritableStream
  env: NodeJS.ProcessEnv
  /** How fanout itself was started here (the interpreter and fanout's path): what the batch job runs. */
  self: readonly string[]
  onStop: (handler: (reason: StopReason) => void) => () => void
  now?: () => Date
}

/** A job name SLURM and squeue show: fanout and the script's name. */
const jobName = (script: string): string =>
  `fanout-${
    basename(script)
      .replace(/\.py$/, '')
      .replace(/[^A-Za-z0-9_.-]/g, '_')
      .slice(0, 40) || 'job'
  }`

const stamp = (d: Date): string => d.toISOString().replace(/[-:]/g, '').replace(/\..*$/, '').replace('T', '-')

/**
 * Writes the batch script into the submit directory, submits it with sbatch, and says the job id,
 * where its output goes and how to follow or stop it. With --wait, follows the output file as the job
 * writes it, until sbatch --wait returns with the job's exit code; Ctrl-C (or SIGTERM) there asks
 * fanout in the job to stop (SIGINT to the batch step: its own teardown, every node), a second one
 * cancels the job outright.
 */
export async function submitBatch(o: SubmitOptions, io: SubmitIo): Promise<number> {
  if (o.scriptIsFile && !existsSync(join(o.dir, o.script)))
    throw usageError(
      `${o.script}: no such file in ${o.dir}, where the batch job runs (fanout runs it from the submit directory)`,
    )
  const name = jobName(o.script)
  const text = batchScript({ ...o.request, jobName: name, dir: o.dir, fanout: [...io.self, ...o.words] })
  const file = join(o.dir, `${name}-${stamp(io.now?.() ?? new Date())}.sbatch`)
  // 0600: the command line may carry --env values (tokens); sbatch reads it as this user.
  writeFileSync(file, text, { mode: 0o600 })
  const child = spawn('sbatch', ['--parsable', ...(o.wait ? ['--wait'] : []), file], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: io.env,
  })
  let out = ''
  let err = ''
  child.stderr.on('data', (b: Buffer) => (err += b.toString()))
  const ended = new Promise<{ code: number | null; missing: boolean }>((resolve) => {
    child.on('error', (e) => resolve({ code: null, missing: (e as NodeJS.ErrnoException).code === 'ENOENT' }))
    child.on('close', (code) => resolve({ code, missing: false }))
  })
  // sbatch --parsable prints the id (`1234`, or `1234;cluster`) as soon as the job is queued, --wait or not.
  const jobId = await new Promise<string | undefined>((resolve) => {
    child.stdout.on('data', (b: Buffer) => {
      out += b.toString()
      const m = /^([0-9]+(?:_[0-9]+)?)(;\S+)?\n/.exec(out)
      if (m) resolve(m[1])
    })
    void ended.then(() => resolve(/^([0-9]+)/.exec(out)?.[1]))
  })
  if (jobId === undefined) {
    const { missing, code } = await ended
    if (missing)
      throw new FanoutError('--via sbatch: sbatch not found (SLURM client commands are needed here)', 'USAGE')
    throw new FanoutError(
      `sbatch refused the job (exit ${code}): ${err.trim() || 'no message'}; the script is ${file}`,
      'USAGE',
    )
  }
  const output = join(o.dir, `fanout-${jobId}.out`)
  io.stderr.write(
    `fanout: submitted batch job ${jobId} (${file})\n` +
      `fanout: its output: ${output}\n` +
      (o.wait
        ? ''
        : `fanout: follow it: tail -f ${output}   state: squeue -j ${jobId}   stop it: scancel --signal=INT --batch ${jobId}\n`),
  )
  if (!o.wait) {
    io.stdout.write(`${jobId}\n`)
    return 0
  }
  return follow(jobId, output, ended, io)
}

/** Prints the output file's new bytes as the job writes them, until sbatch --wait ends; returns the job's exit code. */
async function follow(
  jobId: string,
  output: string,
  ended: Promise<{ code: number | null }>,
  io: SubmitIo,
): Promise<number> {
  let offset = 0
  const pump = (): void => {
    if (!existsSync(output)) return
    const size = statSync(output).size
    if (size <= offset) return
    const fd = openSync(output, 'r')
    try {
      const buffer = Buffer.alloc(Math.min(size - offset, 1 << 20))
      const n = readSync(fd, buffer, 0, buffer.length, offset)
      offset += n
      io.stdout.write(buffer.subarray(0, n))
    } finally {
      closeSync(fd)
    }
  }
  let stops = 0
  const unsubscribe = io.onStop(() => {
    stops++
    // The first: fanout in the job stops every node its way (SIGINT to the batch step, which it is); the second: SLURM's cancel.
    const args = stops === 1 ? ['--batch', '--signal=INT', jobId] : [jobId]
    io.stderr.write(
      stops === 1
        ? `fanout: stopping batch job ${jobId} (SIGINT to fanout in it; Ctrl-C again cancels it at once)\n`
        : `fanout: cancelling batch job ${jobId}\n`,
    )
    spawn('scancel', args, { stdio: 'ignore', env: io.env }).on('error', () => {})
  })
  const timer = setInterval(pump, 250)
  try {
    const { code } = await ended
    // The output file may still be growing on a shared file system: a last look.
    pump()
    return code ?? 1
  } finally {
    clearInterval(timer)
    unsubscribe()
  }
}
