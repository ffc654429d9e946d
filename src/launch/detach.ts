import { randomBytes } from 'node:crypto'
import { JOB } from '../node/job.js'
import { stopperCommand } from '../node/run-files.js'
import { readDetached, supervisorCommand, supervisorInput, type RunSupervisorConfig } from '../node/run-supervisor.js'
import { planLaunch, type LaunchPlan, type NodeCommand } from '../plan/plan.js'
import { nodeRunDir, Registry, type RunRecord } from '../runs/registry.js'
import { describeStatus } from '../supervise/exit-status.js'
import { formatBytes } from '../sync/limits.js'
import { capture } from '../transport/types.js'
import type { ProbedNode } from './cluster.js'
import type { RunIo } from './io.js'
import type { DetachOptions, RunOptions } from './options.js'
import { failPhase } from './phase.js'
import { planFor, planOptions, withCluster, type Cluster } from './run.js'

/** The run's directory on the nodes (each node's is in it: nodeRunDir). */
const runDirOf = (runId: string): string => `~/.fanout/runs/${runId}`

/**
 * Which argv words and environment values carry the master port: the plan made again with another
 * port, the words that changed. A restart on a fresh port (--restarts) replaces the port in exactly
 * these, on the node, without fanout.
 */
function portWords(plan: LaunchPlan, moved: LaunchPlan, i: number): { argv: number[]; env: string[] } {
  const a = plan.nodes[i] as NodeCommand
  const b = moved.nodes[i] as NodeCommand
  return {
    argv: a.argv.flatMap((w, k) => (w !== b.argv[k] ? [k] : [])),
    env: Object.keys(a.env).filter((k) => a.env[k] !== b.env[k]),
  }
}

/**
 * The job as a launch would run it, handed to a supervisor on each node (node/run-supervisor.ts):
 * node 0's first (the hub: it says the port it listens on), then the others, which each reach it
 * before starting their job. Once every node runs, the run is recorded here (runs/registry.ts) and
 * fanout returns: nothing of the run depends on it any more. A node that cannot start its supervisor
 * stops the launch, and the nodes that had started are stopped (nothing is half-launched).
 */
export const detachJob = (options: RunOptions, detach: DetachOptions, io: RunIo): Promise<number> =>
  withCluster(options, io, async (cluster) => {
    const { nodes, runId } = cluster
    const plan = planFor(options, cluster)
    const moved = planLaunch(
      nodes.map((n) => n.plan),
      planOptions(options, cluster, plan.masterPort === 65535 ? 65534 : plan.masterPort + 1),
    )
    const secret = randomBytes(32).toString('hex')
    const dir = runDirOf(runId)
    const tagged = options.output.rankTags && options.launcher.kind !== 'none'
    const { teardown, job } = options
    const config = (i: number, hub: Partial<RunSupervisorConfig>): RunSupervisorConfig => {
      const n = plan.nodes[i] as NodeCommand
      const port = portWords(plan, moved, i)
      return {
        run: runId,
        node: n.rank,
        host: n.host,
        nodes: plan.nodes.map((p) => ({ rank: p.rank, host: p.host })),
        dir: nodeRunDir(dir, n.rank),
        secret,
        hb: teardown.heartbeatTimeoutS,
        grace: teardown.graceS,
        timeout: teardown.timeoutS ?? null,
        kill_on_failure: teardown.killOnFailure,
        restarts: job.restarts ?? 0,
        worker_restarts: options.launcher.maxRestarts ?? 0,
        fresh_port: job.masterPort === undefined,
        log_max: detach.logMaxBytes,
        ...hub,
        job: {
          program: JOB,
          cwd: n.cwd,
          env: n.env,
          setup: job.setup,
          argv: n.argv,
          agent: options.launcher.kind !== 'none',
          tagged,
          port: plan.masterPort,
          port_argv: port.argv,
          port_env: port.env,
        },
      }
    }
    const start = async (i: number, hub: Partial<RunSupervisorConfig>): Promise<{ pid: number; port: number }> => {
      const node = nodes[i] as ProbedNode
      const { stdout, stderr, status } = await capture(
        node.transport,
        supervisorCommand(job.python, runId, node.spec.rank),
        supervisorInput(config(i, hub)),
      )
      const started = readDetached(stdout)
      if (started) return started
      const said = stderr.trim().replace(/^fanout: /, '')
      throw new Error(
        status.code === 127
          ? `${job.python} not found: a detached run's supervisor needs Python on every node (--python)`
          : said || `its run supervisor ${describeStatus(status)} before the job started`,
      )
    }
    // Recorded before any node starts: a registry that cannot be written is found before anything runs.
    const registry = Registry.of(io.env)
    registry.add(runRecord(options, cluster, plan, detach, dir, tagged))
    const label = (i: number): string => `n${nodes[i]?.spec.rank} ${nodes[i]?.spec.entry.host}`
    const [hub] = await io.ui.phase(
      'detach',
      [
        {
          label: label(0),
          node: { rank: 0, host: nodes[0]?.spec.entry.host ?? '' },
          run: () => start(0, { hub_bind: plan.masterAddr }),
          result: (s) => `supervisor ${s.pid}, hub on ${plan.masterAddr}:${s.port}`,
        },
      ],
      'detached',
    )
    if (hub?.status !== 'fulfilled') {
      registry.remove(runId)
      failPhase([hub as PromiseSettledResult<unknown>], [nodes[0]?.spec as ProbedNode['spec']])
      return 1
    }
    const others = await io.ui.phase(
      'detach',
      nodes.slice(1).map((node, k) => ({
        label: label(k + 1),
        node: { rank: node.spec.rank, host: node.spec.entry.host },
        run: () => start(k + 1, { hub_addr: plan.masterAddr, hub_port: hub.value.port }),
        result: (s: { pid: number }) => `supervisor ${s.pid}`,
      })),
      'detached',
    )
    const results = [hub, ...others]
    if (results.some((r) => r.status === 'rejected')) {
      await stopStarted(cluster, results, options.job.python, dir, teardown.graceS)
      registry.remove(runId)
      failPhase(
        results,
        nodes.map((n) => n.spec),
      )
    }
    const chalk = io.chalk
    io.stderr.write(
      `${chalk.bold(`run ${runId}`)} is running on ${nodes.length} node(s), on its own: this terminal can close.\n` +
        `  fanout attach ${runId}     follow it here (Ctrl-C detaches again)\n` +
        `  fanout logs ${runId}       its output so far, fetched here  (--follow, --summary)\n` +
        `  fanout stop ${runId}       stop it (as Ctrl-C would)\n` +
        `  fanout ps                  every run launched from here\n` +
        `Each node keeps its output in ${dir} (at most ${formatBytes(detach.logMaxBytes)}).\n`,
    )
    io.stdout.write(`${runId}\n`)
    return 0
  })

/** Stops the supervisors that started when another node could not: the launch is called off whole. */
async function stopStarted(
  cluster: Cluster,
  results: readonly PromiseSettledResult<unknown>[],
  python: string,
  dir: string,
  graceS: number,
): Promise<void> {
  const started = cluster.nodes.filter((_n, i) => results[i]?.status === 'fulfilled')
  if (started.length === 0) return
  cluster.io.ui.info(`stopping the run on the ${started.length} node(s) that had started it`)
  await Promise.all(
    started.map((n) =>
      capture(n.transport, stopperCommand(python, nodeRunDir(dir, n.spec.rank), graceS + 10)).catch(() => {
        cluster.io.ui.warn(
          `node ${n.spec.rank} (${n.spec.entry.host}): could not stop its run supervisor; it stops by itself once it loses node 0`,
        )
      }),
    ),
  )
}

/** What the registry keeps of a run, to reach it again and show its output as an attached run would. */
function runRecord(
  options: RunOptions,
  cluster: Cluster,
  plan: LaunchPlan,
  detach: DetachOptions,
  dir: string,
  tagged: boolean,
): RunRecord {
  return {
    id: cluster.runId,
    started_at: new Date(cluster.startedAt).toISOString(),
    command: [options.job.script, ...options.job.scriptArgs],
    dir,
    python: options.job.python,
    hosts: cluster.nodes.map((n) => n.spec.entry),
    ssh: options.ssh,
    nodes: plan.nodes.map((n) => ({ rank: n.rank, host: n.host, nproc: n.nproc, firstRank: n.firstRank })),
    tagged,
    staticRanks: options.launcher.rdzvBackend !== 'c10d',
    graceS: options.teardown.graceS,
    heartbeatTimeoutS: options.teardown.heartbeatTimeoutS,
    logMaxBytes: detach.logMaxBytes,
  }
}
