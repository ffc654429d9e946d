import { FanoutError } from '../errors.js'
import { resolveHostList } from '../hosts/hostsource.js'
import { resolveNodes } from '../hosts/nodes.js'
import { processCounts } from '../output/fold-rows.js'
import type { JsonEvents } from '../output/json.js'
import type { RunLog } from '../output/logdir.js'
import { reportingUi } from '../output/ui.js'
import { checkGpuSelection, type JobEnv } from '../plan/env.js'
import { checkCommandFits } from '../plan/launcher.js'
import { describeCommand, parseProbe, planLaunch, type LaunchPlan, type PlanOptions } from '../plan/plan.js'
import { formatAttempts, stopCode } from '../supervise/summary.js'
import type { StopReason } from '../supervise/types.js'
import type { LocalTree } from '../sync/run-sync.js'
import type { RemoteProcess } from '../transport/types.js'
import { runAttempt, type AttemptOutcome } from './attempt.js'
import type { ProbedNode } from './cluster.js'
import { connectNodes } from './connect-nodes.js'
import type { RunIo } from './io.js'
import { loadJobEnv } from './job-env.js'
import type { RunOptions } from './options.js'
import { failPhase } from './phase.js'
import { probe, probeNodes } from './probe-nodes.js'
import { syncNodes } from './sync-nodes.js'

/**
 * The launch pipeline: host list → nodes → connect → sync → probe and pre-flight → then what the
 * command asks: the pre-flight table only (checkCluster), each node's command (dryRun), or the job,
 * supervised, with its summary (launchJob). Each opens the cluster and always closes it.
 */

/** An open cluster: every node connected, synced and probed, with what the run reports to. */
export interface Cluster {
  nodes: ProbedNode[]
  runId: string
  startedAt: number
  jobEnv: JobEnv
  log?: RunLog
  json?: JsonEvents
  /** `--only-node`, as node ranks. */
  onlyNodes?: Set<number>
  io: RunIo
}

/**
 * Opens the cluster for `use` and closes it after, whatever happens (citty's cleanup): the shells
 * no attempt took get EOF (on which they run nothing), every connection is closed, the log flushed.
 * Everything that can be refused without a node is refused before the first connection.
 */
export async function withCluster<T>(
  options: RunOptions,
  io: RunIo,
  use: (cluster: Cluster) => Promise<T>,
): Promise<T> {
  const { job, launcher, output } = options
  const startedAt = Date.now()
  const jobEnv = loadJobEnv(job.env, io.env)
  const { hosts, warnings } = await resolveHostList(options.hosts, io)
  checkGpuSelection(jobEnv, hosts)
  // A command over Linux's per-argument limit is refused here, before any connection (plan/launcher.ts).
  checkCommandFits({ launcher, job, rankTags: output.rankTags, teardown: options.teardown }, jobEnv)
  const { newRunId, RunLog } = await import('../output/logdir.js')
  const runId = newRunId(new Date(startedAt), Math.random)
  const onlyNodes =
    output.onlyNodes &&
    (await import('../output/options.js')).resolveOnlyNodes(
      output.onlyNodes,
      hosts.map((h) => h.host),
    )
  const specs = await resolveNodes(hosts, options.ssh, options.hosts.slurmJobId)
  // The tree to sync is read and hashed first: one over the limit, or with a link out of it, is bad input.
  const tree: LocalTree | undefined =
    options.sync && (await (await import('../sync/run-sync.js')).readLocalTree(options.sync))
  const named = specs.map((n) => ({ node: n.rank, host: n.entry.host }))
  // Both are opened before any connection: a log directory that cannot be created is bad input.
  const log =
    output.logDir === undefined || options.mode !== 'run' ? undefined : await RunLog.create(output.logDir, runId, named)
  const json = output.json ? new (await import('../output/json.js')).JsonEvents(io.stdout) : undefined
  const ui = reportingUi(io.ui, {
    ...(log ? { record: (line: string) => log.event(line) } : {}),
    ...(json
      ? {
          nodeState: (n: { rank: number; host: string }, state: string) =>
            void json.emit('node-state', { node: n.rank, host: n.host, state }),
        }
      : {}),
  })
  const run: RunIo = { ...io, ui }
  const shells: RemoteProcess[] = []
  let connected: Awaited<ReturnType<typeof connectNodes>> = []
  try {
    for (const w of warnings) ui.warn(w)
    ui.info(`run ${runId}${log ? `; logs in ${log.dir}` : ''}`)
    json?.emit('start', {
      run_id: runId,
      nodes: named.map((n) => ({ node: n.node, host: n.host })),
      ...(log ? { log_dir: log.dir } : {}),
    })
    if (tree) ui.info(`sync: ${(await import('../sync/run-sync.js')).describeTree(tree)} to ${job.chdir} on every node`)
    connected = await connectNodes(specs, options.ssh, run)
    if (tree) await syncNodes(connected, tree, job.chdir, run)
    // Each probe leaves its node's shell waiting for the plan (held): the reachability check runs there,
    // and the first attempt's job starts there.
    const nodes = await probeNodes({
      nodes: connected,
      job,
      launcher,
      preflight: options.preflight,
      connectTimeoutS: options.ssh.connectTimeoutS,
      jobEnv,
      hold: true,
      onHeld: (shell) => shells.push(shell),
      io: run,
    })
    return await use({
      nodes,
      runId,
      startedAt,
      jobEnv,
      ...(log ? { log } : {}),
      ...(json ? { json } : {}),
      ...(onlyNodes ? { onlyNodes } : {}),
      io: run,
    })
  } finally {
    // A held shell no attempt took (the launch was called off) gets EOF, on which it runs nothing; the
    // ones an attempt took have ended with their job.
    for (const shell of shells) shell.end()
    for (const { transport } of connected) transport.close()
    await log?.close()
  }
}

/** `fanout check`: connect, probe and print the pre-flight table; launch nothing. */
export const checkCluster = (options: RunOptions, io: RunIo): Promise<number> => withCluster(options, io, async () => 0)

/** `--dry-run`: what each node would run, as a person would type it; launch nothing. */
export const dryRun = (options: RunOptions, io: RunIo): Promise<number> =>
  withCluster(options, io, async (cluster) => {
    for (const n of planFor(options, cluster).nodes)
      io.stdout.write(`# node ${n.rank} (${n.host})\n${describeCommand(n)}\n`)
    return 0
  })

/** How the plan is asked of plan/: the job's options, this run's id and environment, and a master port. */
export function planOptions(options: RunOptions, cluster: Cluster, masterPort: number | undefined): PlanOptions {
  const { job, launcher } = options
  return {
    python: job.python,
    cwd: job.chdir,
    script: job.script,
    scriptArgs: job.scriptArgs,
    launcher,
    runId: `fanout-${cluster.runId}`,
    jobEnv: cluster.jobEnv,
    rankTags: options.output.rankTags && launcher.kind !== 'none',
    ...(job.nprocPerNode === undefined ? {} : { nprocPerNode: job.nprocPerNode }),
    ...(job.masterAddr === undefined ? {} : { masterAddr: job.masterAddr }),
    ...(masterPort === undefined ? {} : { masterPort }),
  }
}

/** The plan of the first attempt, said in one line; --only's ranks checked against it. */
export function planFor(options: RunOptions, cluster: Cluster): LaunchPlan {
  const { nodes, io } = cluster
  // Without Python on node 0 (--launcher none) no free port can be probed: torch's default then.
  const port =
    options.job.masterPort ??
    (nodes[0]?.plan.facts.freePort === undefined && options.launcher.kind === 'none' ? 29500 : undefined)
  const plan = planLaunch(
    nodes.map((n) => n.plan),
    planOptions(options, cluster, port),
  )
  const procs = plan.nodes.map((n) => n.nproc)
  const world = procs.reduce((a, b) => a + b, 0)
  io.ui.info(
    `master ${plan.masterAddr}:${plan.masterPort} (node 0, ${nodes[0]?.spec.entry.host}); ${nodes.length} node(s), ${world} process(es): ${processCounts(procs)}`,
  )
  const unknown = options.output.onlyRanks?.filter((r) => r >= world) ?? []
  if (unknown.length > 0)
    throw new FanoutError(`--only: the job has ranks 0 to ${world - 1}, not ${unknown.join(',')}`, 'USAGE')
  return plan
}

/** Waits `ms`, unless the user asks to stop meanwhile: then resolves with that request. */
function pause(ms: number, io: RunIo): Promise<StopReason | undefined> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => (unsubscribe(), resolve(undefined)), ms)
    const unsubscribe = io.onStop((reason) => (clearTimeout(timer), unsubscribe(), resolve(reason)))
  })
}

/** A port free on node 0 now: each attempt gets its own, as the last one's may still be in TIME_WAIT. */
async function freshPort(node0: ProbedNode, options: RunOptions): Promise<number | undefined> {
  const { python, setup } = options.job
  return parseProbe(
    (await probe(node0.transport, { python, wantPort: true, cwd: '/', setup })).stdout,
    node0.transport.kind === 'ssh',
  ).freePort
}

/**
 * The job: every node launched, supervised to its end, its summary printed; with --restarts, the
 * whole job again after a failure, on a fresh port, after a backoff.
 */
export const launchJob = (options: RunOptions, io: RunIo): Promise<number> =>
  withCluster(options, io, async (cluster) => {
    const { nodes } = cluster
    const { launcher, output, teardown } = options
    let plan = planFor(options, cluster)
    const { JobOutput } = await import('../output/job-output.js')
    const sinks = { ...(cluster.json ? { json: cluster.json } : {}), ...(cluster.log ? { log: cluster.log } : {}) }
    const tagged = output.rankTags && launcher.kind !== 'none'
    const jobOutput = new JobOutput(
      plan.nodes,
      {
        ...output,
        tagged,
        staticRanks: launcher.rdzvBackend !== 'c10d',
        ...(cluster.onlyNodes ? { nodeFilter: cluster.onlyNodes } : {}),
      },
      { ...io, ...sinks },
    )
    const report = { output: jobOutput, ...sinks }
    const restarts = options.job.restarts ?? 0
    const deadline = teardown.timeoutS === undefined ? undefined : Date.now() + teardown.timeoutS * 1000
    const outcomes: AttemptOutcome[] = []
    let exitCode = 1
    for (let attempt = 1; ; attempt++) {
      // FANOUT_ATTEMPT only with --restarts: without them there is nothing to count.
      if (restarts > 0) for (const n of plan.nodes) n.env.FANOUT_ATTEMPT = String(attempt)
      const timeoutMs = deadline === undefined ? undefined : Math.max(0, deadline - Date.now())
      const outcome = await runAttempt({
        plan,
        nodes,
        setup: options.job.setup,
        launcher,
        teardown,
        io: cluster.io,
        report,
        attempt,
        ...(timeoutMs === undefined ? {} : { timeoutMs }),
      })
      outcomes.push(outcome)
      exitCode = outcome.exitCode
      await writeResults(cluster, outcomes, exitCode)
      failPhase(
        outcome.started,
        nodes.map((n) => n.spec),
      )
      if (outcome.exitCode === 0 || outcome.stopped || attempt > restarts) break
      // Backoff doubles from 1 s (at most 30 s); a Ctrl-C meanwhile ends the job without another attempt.
      const waitS = Math.min(30, 2 ** (attempt - 1))
      cluster.io.ui.info(
        `attempt ${attempt} of ${restarts + 1} failed (exit ${outcome.exitCode}); relaunching every node in ${waitS} s on a fresh port`,
      )
      const stopped = await pause(waitS * 1000, io)
      if (stopped) {
        exitCode = stopCode(stopped)
        await writeResults(cluster, outcomes, exitCode)
        return exitCode
      }
      const port = options.job.masterPort ?? (await freshPort(nodes[0] as ProbedNode, options))
      plan = planLaunch(
        nodes.map((n) => n.plan),
        planOptions(options, cluster, port),
      )
      cluster.io.ui.info(`attempt ${attempt + 1} of ${restarts + 1}: master ${plan.masterAddr}:${plan.masterPort}`)
    }
    if (restarts > 0) io.stderr.write(formatAttempts(outcomes))
    return exitCode
  })

/** summary.json (--log-dir) and the --json summary event, rewritten after every attempt so a crash leaves the last. */
async function writeResults(cluster: Cluster, outcomes: readonly AttemptOutcome[], exitCode: number): Promise<void> {
  const last = outcomes[outcomes.length - 1]
  const cause = last?.failure && {
    node: last.failure.rank,
    host: last.failure.host,
    exit_code: last.failure.exitCode,
    what: last.failure.what,
    last_lines: last.failure.lastLines,
  }
  const summary = {
    run_id: cluster.runId,
    started_at: new Date(cluster.startedAt).toISOString(),
    ended_at: new Date().toISOString(),
    exit_code: exitCode,
    attempts: outcomes.length,
    root_cause: cause ?? null,
    nodes: outcomes.flatMap((o) => o.records),
  }
  await cluster.log?.writeSummary(summary)
  if (cluster.json && outcomes.length > 0) cluster.json.emit('summary', { ...summary, nodes: last?.records ?? [] })
}
