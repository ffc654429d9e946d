import type { ChalkInstance } from 'chalk'
import type { Options } from '../cli/parse.js'
import { checkGpuSelection, loadJobEnv } from '../plan/env.js'
import { checkCommandFits } from '../plan/launcher.js'
import { FanoutError } from '../errors.js'
import { describeCommand, parseProbe, planLaunch } from '../plan/plan.js'
import { failPhase, label } from './phase.js'
import { probe, probeNodes } from './probe-nodes.js'
import { resolveHostList, type SourceIo } from '../hosts/hostsource.js'
import { resolveNodes, type NodeSpec } from '../hosts/nodes.js'
import { runAttempt, type AttemptOutcome } from './attempt.js'
import { formatAttempts, stopCode } from '../supervise/summary.js'
import type { StopReason } from '../supervise/supervisor.js'
import type { RemoteProcess, Transport } from '../transport/types.js'
import { reportingUi, type Ui } from '../output/ui.js'
import { processCounts } from '../output/fold-rows.js'
import type { LiveRegion } from '../output/live.js'
import type { AskSecret } from '../transport/ssh/credentials.js'
import type { LocalTree } from '../sync/run-sync.js'
import type { JsonEvents } from '../output/json.js'
import type { RunLog } from '../output/logdir.js'

export interface RunIo extends SourceIo {
  stdout: NodeJS.WriteStream
  stderr: NodeJS.WriteStream
  env: NodeJS.ProcessEnv
  chalk: ChalkInstance
  ui: Ui
  /** Reads a secret (passphrase, password) from the terminal without echo; absent without a terminal. */
  askSecret?: AskSecret
  /** On a TTY: the rows under the job's output that show progress bars and the job's status. */
  live?: LiveRegion
  /** Subscribes to the user's stop requests (Ctrl-C, SIGTERM, SIGHUP); returns the unsubscribe. */
  onStop: (handler: (reason: StopReason) => void) => () => void
  /** Subscribes to the user's requests for the ranks' stacks (SIGQUIT, Ctrl-\); returns the unsubscribe. */
  onStacks?: (handler: () => void) => () => void
}

async function connectNodes(nodes: NodeSpec[], options: Options, io: RunIo): Promise<Transport[]> {
  const { localTransport } = await import('../transport/local.js')
  const hasSsh = nodes.some((n) => n.ssh)
  const ssh = hasSsh ? await import('../transport/ssh.js') : undefined
  const { limitHandshakes } = await import('./connect.js')
  // Secrets are asked for once, before any connection: one prompt per key file, not one per node.
  const { unlockIdentities } = await import('../transport/ssh/credentials.js')
  // With an agent, its keys come first (as in ssh), so an encrypted file is usually loaded there already: no prompt.
  const agent = Boolean(io.env.SSH_AUTH_SOCK)
  const { unlocked, locked } = await unlockIdentities(nodes.flatMap((n) => (n.ssh && (n.ssh.identitiesOnly || !agent) ? n.ssh.identityFiles : [])), io.askSecret)
  let password: string | undefined
  if (options.askPassword && hasSsh) {
    if (!io.askSecret) throw new FanoutError('--ask-password needs a terminal to ask for the password on (stdin is not one)', 'USAGE')
    const users = [...new Set(nodes.flatMap((n) => (n.ssh ? [n.ssh.user] : [])))].join(', ')
    password = await io.askSecret(`Password for ${users} on ${nodes.filter((n) => n.ssh).length} node(s): `)
  }
  const sshOptions = {
    connectTimeoutS: options.connectTimeoutS, keepaliveS: options.keepaliveS, keepaliveCountMax: 3, agentSocket: io.env.SSH_AUTH_SOCK,
    acceptNew: options.acceptNew, unlocked, locked, ...(password === undefined ? {} : { password }), notice: (m: string) => io.ui.warn(m),
  }
  const connector = ssh?.sshConnector(sshOptions)
  const connect = limitHandshakes((n: NodeSpec) => (n.ssh && connector ? connector.connect(n.ssh) : Promise.resolve(localTransport())), {
    maxInFlight: options.maxHandshakes,
    targetOf: (n) => (n.ssh && ssh ? ssh.sshdOf(n.ssh) : 'local'),
    retries: 4,
    backoffMs: 200,
    isRetryable: (e) => ssh?.isDroppedHandshake(e) ?? false,
  })
  const results = await io.ui.phase('connect', nodes.map((n) => ({ label: label(n), node: { rank: n.rank, host: n.entry.host }, run: () => connect(n) })), 'connected')
  const transports = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []))
  failPhase(results, nodes, transports)
  return transports
}

/**
 * --sync: every node's working directory brought up to date in parallel, then checked: a node whose
 * copy does not hash like the local tree stops the launch (nodes running different code).
 */
async function syncNodes(tree: LocalTree, nodes: NodeSpec[], transports: Transport[], options: Options, io: RunIo): Promise<void> {
  const { syncNode, describeSync, describeProgress } = await import('../sync/run-sync.js')
  const synced = await io.ui.phase('sync', nodes.map((n, i) => ({
    label: label(n),
    node: { rank: n.rank, host: n.entry.host },
    run: (progress: (detail: string) => void) => syncNode(transports[i] as Transport, tree, options.chdir, (p) => progress(describeProgress(p))),
    result: describeSync,
  })), 'synced')
  failPhase(synced, nodes, [])
  const differ: string[] = []
  synced.forEach((r, i) => {
    if (r.status !== 'fulfilled') return
    const n = nodes[i] as NodeSpec
    if (r.value.hash !== tree.hash) differ.push(`node ${n.rank} (${n.entry.host}): tree ${r.value.hash.slice(0, 8)}, not ${tree.hash.slice(0, 8)}`)
    const extras = r.value.extras
    if (extras.length > 0) io.ui.warn(`node ${n.rank} (${n.entry.host}): ${extras.length} file(s) in ${options.chdir} are not in the local tree: ${extras.slice(0, 5).join(', ')}${extras.length > 5 ? ', …' : ''} (--sync-delete removes them)`)
  })
  if (differ.length > 0) throw new FanoutError(`after the sync, these nodes do not hold the local tree (${tree.hash.slice(0, 8)}):\n${differ.join('\n')}`, 'PREFLIGHT')
}

/** Waits `ms`, unless the user asks to stop meanwhile: then resolves with that request. */
function pause(ms: number, io: RunIo): Promise<StopReason | undefined> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => (unsubscribe(), resolve(undefined)), ms)
    const unsubscribe = io.onStop((reason) => (clearTimeout(timer), unsubscribe(), resolve(reason)))
  })
}

/** A port free on node 0 now: each attempt gets its own, as the last one's may still be in TIME_WAIT. */
async function freshPort(node0: Transport, python: string, setup: readonly string[]): Promise<number | undefined> {
  return parseProbe((await probe(node0, { python, wantPort: true, cwd: '/', setup })).stdout, node0.kind === 'ssh').freePort
}

/** The whole pipeline: hostfile → nodes → connect → probe → plan → launch → supervise → summary. */
export async function runJob(options: Options, io: RunIo): Promise<number> {
  const startedAt = Date.now()
  const jobEnv = loadJobEnv(options, io.env)
  const { hosts, warnings } = await resolveHostList(options, io)
  checkGpuSelection(jobEnv, hosts)
  // A command over Linux's per-argument limit is refused here, before any connection (launcher.ts).
  checkCommandFits(options, jobEnv)
  const { newRunId, RunLog } = await import('../output/logdir.js')
  const runId = newRunId(new Date(startedAt), Math.random)
  const onlyNodes = options.onlyNodes && (await import('../output/options.js')).resolveOnlyNodes(options.onlyNodes, hosts.map((h) => h.host))
  const flags = { user: options.user, port: options.sshPort, identity: options.identity, configFile: options.sshConfig, jump: options.jump }
  const nodes = await resolveNodes(hosts, flags)
  // The tree to sync is read and hashed first: one over the limit, or with a link out of it, is bad input.
  const tree = options.sync && (await (await import('../sync/run-sync.js')).readLocalTree(options.sync))
  const named = nodes.map((n) => ({ node: n.rank, host: n.entry.host }))
  // Both are opened before any connection: a log directory that cannot be created is bad input.
  const log = options.logDir === undefined || options.dryRun || options.checkOnly ? undefined : await RunLog.create(options.logDir, runId, named)
  const json = options.json ? new (await import('../output/json.js')).JsonEvents(io.stdout) : undefined
  const ui = reportingUi(io.ui, {
    ...(log ? { record: (line: string) => log.event(line) } : {}),
    ...(json ? { nodeState: (n: { rank: number; host: string }, state: string) => void json.emit('node-state', { node: n.rank, host: n.host, state }) } : {}),
  })
  const run: RunIo = { ...io, ui }
  try {
    for (const w of warnings) ui.warn(w)
    ui.info(`run ${runId}${log ? `; logs in ${log.dir}` : ''}`)
    json?.emit('start', { run_id: runId, nodes: named.map((n) => ({ node: n.node, host: n.host })), ...(log ? { log_dir: log.dir } : {}) })
    if (tree) ui.info(`sync: ${(await import('../sync/run-sync.js')).describeTree(tree)} to ${options.chdir} on every node`)
    const exitCode = await runNodes(options, run, nodes, { startedAt, runId, jobEnv, onlyNodes, log, json, tree })
    return exitCode
  } finally {
    await log?.close()
  }
}

interface RunContext {
  startedAt: number
  tree: LocalTree | undefined
  runId: string
  jobEnv: ReturnType<typeof loadJobEnv>
  onlyNodes: Set<number> | undefined
  log: RunLog | undefined
  json: JsonEvents | undefined
}

async function runNodes(options: Options, io: RunIo, nodes: NodeSpec[], ctx: RunContext): Promise<number> {
  const transports = await connectNodes(nodes, options, io)
  // Each probe leaves its node's shell waiting for the plan (held): the reachability check runs there,
  // and the first attempt's job starts there. Without a job (check, --dry-run) the shells get EOF.
  const held = new Array<RemoteProcess | undefined>(nodes.length)
  try {
    if (ctx.tree) await syncNodes(ctx.tree, nodes, transports, options, io)
    const planNodes = await probeNodes({ nodes, transports, options, io, held, jobEnv: ctx.jobEnv })
    if (options.checkOnly) return 0
    // Without Python on node 0 (--launcher none) no free port can be probed: torch's default then.
    const masterPort = options.masterPort ?? (planNodes[0]?.facts.freePort === undefined && options.launcher.kind === 'none' ? 29500 : undefined)
    const tagged = options.rankTags && options.launcher.kind !== 'none'
    const planOptions = { ...options, cwd: options.chdir, runId: `fanout-${ctx.runId}`, jobEnv: ctx.jobEnv, rankTags: tagged, ...(masterPort === undefined ? {} : { masterPort }) }
    let plan = planLaunch(planNodes, planOptions)
    const procs = plan.nodes.map((n) => n.nproc)
    const world = procs.reduce((a, b) => a + b, 0)
    io.ui.info(`master ${plan.masterAddr}:${plan.masterPort} (node 0, ${nodes[0]?.entry.host}); ${nodes.length} node(s), ${world} process(es): ${processCounts(procs)}`)
    const unknown = options.onlyRanks?.filter((r) => r >= world) ?? []
    if (unknown.length > 0) throw new FanoutError(`--only: the job has ranks 0 to ${world - 1}, not ${unknown.join(',')}`, 'USAGE')
    if (options.dryRun) {
      for (const n of plan.nodes) io.stdout.write(`# node ${n.rank} (${n.host})\n${describeCommand(n)}\n`)
      return 0
    }
    const { JobOutput } = await import('../output/job-output.js')
    const sinks = { ...(ctx.json ? { json: ctx.json } : {}), ...(ctx.log ? { log: ctx.log } : {}) }
    const output = new JobOutput(plan.nodes, { ...options, tagged, staticRanks: options.launcher.rdzvBackend !== 'c10d', ...(ctx.onlyNodes ? { nodeFilter: ctx.onlyNodes } : {}) }, { ...io, ...sinks })
    const report = { output, ...sinks }
    const restarts = options.restarts ?? 0
    const deadline = options.timeoutS === undefined ? undefined : Date.now() + options.timeoutS * 1000
    const outcomes: AttemptOutcome[] = []
    let exitCode = 1
    for (let attempt = 1; ; attempt++) {
      // FANOUT_ATTEMPT only with --restarts: without them there is nothing to count.
      if (restarts > 0) for (const n of plan.nodes) n.env.FANOUT_ATTEMPT = String(attempt)
      const outcome = await runAttempt(plan, nodes, transports, options, io, report, attempt, deadline === undefined ? undefined : Math.max(0, deadline - Date.now()), attempt === 1 ? held : undefined)
      outcomes.push(outcome)
      exitCode = outcome.exitCode
      await writeResults(ctx, outcomes, exitCode)
      failPhase(outcome.started, nodes, [])
      if (outcome.exitCode === 0 || outcome.stopped || attempt > restarts) break
      // Backoff doubles from 1 s (at most 30 s); a Ctrl-C meanwhile ends the job without another attempt.
      const waitS = Math.min(30, 2 ** (attempt - 1))
      io.ui.info(`attempt ${attempt} of ${restarts + 1} failed (exit ${outcome.exitCode}); relaunching every node in ${waitS} s on a fresh port`)
      const stopped = await pause(waitS * 1000, io)
      if (stopped) {
        exitCode = stopCode(stopped)
        await writeResults(ctx, outcomes, exitCode)
        return exitCode
      }
      const port = options.masterPort ?? (await freshPort(transports[0] as Transport, options.python, options.setup))
      plan = planLaunch(planNodes, { ...planOptions, masterPort: port })
      io.ui.info(`attempt ${attempt + 1} of ${restarts + 1}: master ${plan.masterAddr}:${plan.masterPort}`)
    }
    if (restarts > 0) io.stderr.write(formatAttempts(outcomes))
    return exitCode
  } finally {
    // A held shell no attempt took (the launch was called off) gets EOF, on which it runs nothing.
    for (const proc of held ?? []) proc?.end()
    for (const t of transports) t.close()
  }
}

/** summary.json (--log-dir) and the --json summary event, rewritten after every attempt so a crash leaves the last. */
async function writeResults(ctx: RunContext, outcomes: readonly AttemptOutcome[], exitCode: number): Promise<void> {
  const last = outcomes[outcomes.length - 1]
  const cause = last?.failure && { node: last.failure.rank, host: last.failure.host, exit_code: last.failure.exitCode, what: last.failure.what, last_lines: last.failure.lastLines }
  const summary = { run_id: ctx.runId, started_at: new Date(ctx.startedAt).toISOString(), ended_at: new Date().toISOString(), exit_code: exitCode, attempts: outcomes.length, root_cause: cause ?? null, nodes: outcomes.flatMap((o) => o.records) }
  await ctx.log?.writeSummary(summary)
  if (ctx.json && outcomes.length > 0) ctx.json.emit('summary', { ...summary, nodes: last?.records ?? [] })
}
