import type { Options } from './args.js'
import { makePrefixes } from './output.js'
import type { LaunchPlan } from './plan.js'
import { jobCommand } from './remote.js'
import type { NodeSpec } from './nodes.js'
import { formatSummary, jobExitCode } from './summary.js'
import { Supervisor, type Failure, type Job } from './supervisor.js'
import type { Transport } from './transport/types.js'
import type { RunIo } from './run.js'

export interface AttemptOutcome {
  exitCode: number
  /** The user stopped the job, or --timeout ran out: never restarted. */
  stopped: boolean
  failure?: Failure
  /** How each node's launch went: a rejected one could not even start the job. */
  started: PromiseSettledResult<unknown>[]
}

/** Launches one attempt of the job on every node, supervises it to its end, and prints its summary. */
export async function runAttempt(plan: LaunchPlan, nodes: NodeSpec[], transports: Transport[], options: Options, io: RunIo, timeoutMs?: number): Promise<AttemptOutcome> {
  const prefixes = makePrefixes(nodes.map((n) => ({ rank: n.rank, host: n.entry.host })), io.chalk)
  const started = await io.ui.phase('launch', plan.nodes.map((n, i) => ({
    label: `n${n.rank} ${n.host}`,
    run: () => (transports[i] as Transport).exec(jobCommand({ cwd: n.cwd, env: n.env, setup: options.setup, argv: n.argv, heartbeatTimeoutS: options.heartbeatTimeoutS, graceS: Math.ceil(options.graceS) })),
  })))
  const jobs: Job[] = started.flatMap((r, i) => r.status === 'fulfilled'
    ? [{ rank: i, host: nodes[i]?.entry.host ?? '', proc: r.value, transport: transports[i] as Transport, prefix: prefixes.get(i) ?? { out: Buffer.alloc(0), err: Buffer.alloc(0) } }]
    : [])
  const supervisor = new Supervisor(jobs, {
    stdout: io.stdout,
    stderr: io.stderr,
    heartbeatMs: 1000,
    graceMs: options.graceS * 1000,
    killOnFailure: options.killOnFailure,
    timeoutMs,
    log: (m) => io.ui.info(m),
  })
  // Nothing is half-launched: if a node could not start, the ones that did are stopped at once.
  if (jobs.length < started.length) supervisor.abort(`${started.length - jobs.length} node(s) could not start the job`)
  const unsubscribe = io.onStop((reason) => supervisor.interrupt(reason))
  const results = await supervisor.results.finally(unsubscribe)
  io.stderr.write(formatSummary(results, supervisor.firstFailure, io.chalk))
  const outcome: AttemptOutcome = { exitCode: jobExitCode(results, supervisor.firstFailure, supervisor.stopReason), stopped: supervisor.stopReason !== undefined, started }
  if (supervisor.firstFailure) outcome.failure = supervisor.firstFailure
  return outcome
}
