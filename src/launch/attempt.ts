import { Chalk } from 'chalk'
import type { JsonEvents } from '../output/json.js'
import type { JobOutput } from '../output/job-output.js'
import type { RunLog } from '../output/logdir.js'
import type { LaunchPlan } from '../plan/plan.js'
import { jobCommand, jobInput, type JobSpec } from '../node/job.js'
import { heldJobInput } from '../node/probe.js'
import { formatSummary, jobExitCode, nodeRecord, rankList, type NodeRecord } from '../supervise/summary.js'
import { Supervisor, type Failure, type Job } from '../supervise/supervisor.js'
import type { TeardownOptions } from '../supervise/options.js'
import { capture, type Transport } from '../transport/types.js'
import { endpoint } from '../plan/endpoint.js'
import type { LauncherOptions } from '../plan/launcher.js'
import type { ProbedNode } from './cluster.js'
import type { RunIo } from './io.js'
import { within } from './within.js'

export interface AttemptOutcome {
  exitCode: number
  /** The user stopped the job, or --timeout ran out: never restarted. */
  stopped: boolean
  failure?: Failure
  /** How each node's launch went: a rejected one could not even start the job. */
  started: PromiseSettledResult<unknown>[]
  /** Each node's result, as summary.json and --json report it. */
  records: NodeRecord[]
}

/** What stays the same across the attempts of one job: where output goes and where results are reported. */
interface JobReport {
  output: JobOutput
  json?: JsonEvents
  log?: RunLog
}

const STATUS_MS = 250
/** How long the workers get to print their stacks before a job that timed out is stopped. */
const STACKS_MS = 2000

/** Which nodes are connected to the rendezvous store on node 0 (supervise/store-peers.ts), for a rendezvous that did not complete. */
async function whoJoined(
  plan: LaunchPlan,
  node0: Transport | undefined,
): Promise<{ text: string; missing: number[] } | undefined> {
  if (!node0) return undefined
  const { STORE_PEERS_COMMAND, describeJoined, storePeers } = await import('../supervise/store-peers.js')
  const read = await within(capture(node0, STORE_PEERS_COMMAND), 5000)
  if (!read) return undefined
  return describeJoined(
    storePeers(read.stdout, plan.masterPort),
    plan.nodes.map((n) => ({ rank: n.rank, addrs: n.addrs })),
    endpoint(plan.masterAddr, plan.masterPort),
  )
}

export interface AttemptInput {
  plan: LaunchPlan
  /** The nodes, in plan order; a node's held shell is taken (cleared) to start its job. */
  nodes: readonly ProbedNode[]
  /** Run again in each job's shell before the launcher. */
  setup: readonly string[]
  launcher: LauncherOptions
  teardown: TeardownOptions
  io: RunIo
  report: JobReport
  /** 1 for the first attempt (--restarts counts on). */
  attempt: number
  /** What is left of --timeout for this attempt. */
  timeoutMs?: number
}

/**
 * Launches one attempt of the job on every node, supervises it to its end, and prints its summary. A
 * node with a held shell (its probe's, waiting) is started through it, and the shell taken (cleared).
 */
export async function runAttempt(input: AttemptInput): Promise<AttemptOutcome> {
  const { plan, nodes, launcher, teardown, io, report, attempt, timeoutMs } = input
  report.log?.startAttempt(attempt)
  // Every node's command is built first: one that cannot be sent (too long) stops the launch before any node starts.
  const specs = plan.nodes.map((n): JobSpec => ({
    cwd: n.cwd,
    env: n.env,
    setup: input.setup,
    argv: n.argv,
    heartbeatTimeoutS: teardown.heartbeatTimeoutS,
    graceS: Math.ceil(teardown.graceS),
    agent: launcher.kind !== 'none',
  }))
  const commands = specs.map(jobCommand)
  const started = await io.ui.phase(
    'launch',
    plan.nodes.map((n, i) => ({
      label: `n${n.rank} ${n.host}`,
      node: { rank: n.rank, host: n.host },
      run: async () => {
        const node = nodes[i] as ProbedNode
        const waiting = node.held
        if (waiting) {
          delete node.held
          waiting.write(heldJobInput(specs[i] as JobSpec))
          return waiting
        }
        const proc = await node.transport.exec(commands[i] as string)
        // The environment and the set-up lines, before any heartbeat: never on the node's command line.
        proc.write(jobInput(specs[i] as JobSpec))
        return proc
      },
    })),
    'launched',
  )
  const jobs: Job[] = started.flatMap((r, i) => {
    const node = nodes[i] as ProbedNode
    return r.status === 'fulfilled'
      ? [{ rank: node.spec.rank, host: node.spec.entry.host, proc: r.value, transport: node.transport }]
      : []
  })
  const ranks = (node: number): string => rankList(report.output.ranksOf(node))
  const supervisor = new Supervisor(jobs, {
    output: (job, hooks) => report.output.forNode(job, hooks),
    onExit: (result) =>
      report.json?.emit('exit', { attempt, ...nodeRecord(result, ranks(result.rank), supervisor.firstFailure) }),
    heartbeatMs: 1000,
    graceMs: teardown.graceS * 1000,
    killOnFailure: teardown.killOnFailure,
    timeoutMs,
    ...(launcher.maxRestarts === undefined ? {} : { workerRestarts: launcher.maxRestarts }),
    // Stacks and worker starts come from the rank tagger: without it there are neither.
    ...(report.output.tagged ? { stacksMs: STACKS_MS, rendezvousTimeoutMs: teardown.rdzvTimeoutS * 1000 } : {}),
    describeRendezvous: () => whoJoined(plan, nodes[0]?.transport),
    log: (m) => io.ui.info(m),
  })
  // Nothing is half-launched: if a node could not start, the ones that did are stopped at once.
  if (jobs.length < started.length) supervisor.abort(`${started.length - jobs.length} node(s) could not start the job`)
  const unsubscribe = io.onStop((reason) => supervisor.interrupt(reason))
  const unsubscribeStacks = io.onStacks?.(() => supervisor.dumpStacks('SIGQUIT (Ctrl-\\)'))
  const since = Date.now()
  const { live } = io
  const status =
    live &&
    setInterval(
      () =>
        live.setStatus(
          report.output.status(Date.now() - since, supervisor.runningCount, supervisor.isStopping, live.width),
        ),
      STATUS_MS,
    )
  const results = await supervisor.results.finally(() => {
    unsubscribe()
    unsubscribeStacks?.()
    clearInterval(status)
    live?.reset()
  })
  // On a terminal the table's result column is cut to its width, so that a long error does not wrap every
  // row of it (the block above the table still says it whole); the log gets every word.
  const width = io.stderr.isTTY && io.stderr.columns ? { width: io.stderr.columns } : {}
  io.stderr.write(formatSummary(results, supervisor.firstFailure, io.chalk, ranks, width))
  report.log?.event(formatSummary(results, supervisor.firstFailure, new Chalk({ level: 0 }), ranks).trimEnd())
  const outcome: AttemptOutcome = {
    exitCode: jobExitCode(results, supervisor.firstFailure, supervisor.stopReason),
    stopped: supervisor.stopReason !== undefined,
    started,
    records: results.map((r) => ({ ...nodeRecord(r, ranks(r.rank), supervisor.firstFailure), attempt })),
  }
  if (supervisor.firstFailure) outcome.failure = supervisor.firstFailure
  return outcome
}
