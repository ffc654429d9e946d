import { usageError } from '../errors.js'
import type { RunIo } from '../launch/io.js'
import { JobOutput } from '../output/job-output.js'
import type { NodeStatus, ReaderMessage } from './messages.js'
import { closeRun, noDirectory, reachRun, streamNode, type RunNode } from './nodes.js'
import type { Registry, RunRecord, RunSummary } from './registry.js'
import { Replay } from './replay.js'
import { describeEnd, formatRunSummary } from './summary.js'

/** How `attach` and `logs` show a run's lines (the Output flags they take). */
export interface ShowOptions {
  prefix?: string | false
  timestamps: boolean
}

/** A run's output shown as an attached run shows it: JobOutput (prefixes, progress rows) fed by a Replay. */
export function showRun(
  record: RunRecord,
  show: ShowOptions,
  io: Pick<RunIo, 'stdout' | 'stderr' | 'chalk' | 'live'>,
): { replay: Replay; output: JobOutput } {
  let replay: Replay | undefined
  const output = new JobOutput(
    record.nodes,
    {
      ...(show.prefix === undefined ? {} : { prefix: show.prefix }),
      timestamps: show.timestamps,
      quiet: false,
      json: false,
      tagged: record.tagged,
      staticRanks: record.staticRanks,
    },
    {
      stdout: io.stdout,
      stderr: io.stderr,
      chalk: io.chalk,
      ...(io.live ? { live: io.live } : {}),
      now: () => replay?.now() ?? Date.now(),
    },
  )
  const print = (text: string): void => void (io.live ? io.live.print(io.stderr, text) : io.stderr.write(text))
  replay = new Replay(
    output,
    record.nodes,
    record.tagged,
    (e) => print(`${io.chalk.dim('fanout:')} ${io.chalk.dim(`n${e.node}:`)} ${e.text}\n`),
    Boolean(io.live),
  )
  return { replay, output }
}

const STATUS_MS = 250

/**
 * `fanout attach RUN`: every node's last `lines` lines, then its output live, as an attached run shows
 * it, until the run ends (its summary, and its exit code) or the user detaches (Ctrl-C: the run goes
 * on). A run that had ended already is shown the same way, then refused (exit 2): there is nothing to
 * attach to.
 */
export async function attachRun(
  record: RunRecord,
  registry: Registry,
  options: ShowOptions & { lines: number },
  io: RunIo,
): Promise<number> {
  const nodes = await reachRun(record, io)
  const unreachable = nodes.filter((n) => !n.transport)
  const reachable = nodes.flatMap((n) => (n.transport ? [{ ...n, transport: n.transport }] : []))
  for (const n of unreachable) io.ui.warn(`node ${n.rank} (${n.host}) cannot be reached: ${n.error}`)
  const { replay, output } = showRun(record, options, io)
  const statuses = new Map<number, NodeStatus>()
  const firstStatus = new Map<number, NodeStatus>()
  let detached = false
  const onMessage =
    (node: RunNode) =>
    (m: ReaderMessage): void => {
      if (m.kind === 'chunk') replay.push(node.rank, m.data)
      else if (m.kind === 'state') {
        statuses.set(node.rank, m.status)
        if (!firstStatus.has(node.rank)) firstStatus.set(node.rank, m.status)
      } else if (m.kind === 'missing') io.ui.warn(noDirectory(record, node))
    }
  const started = Date.parse(record.started_at)
  const { live } = io
  const status =
    live &&
    setInterval(() => {
      const states = [...statuses.values()].map((s) => s.state?.state)
      const running = states.filter((s) => s === 'running').length
      live.setStatus(
        `${io.chalk.dim(`attached to ${record.id}`)} · ${output.status(Date.now() - started, running, states.includes('stopping'), live.width - record.id.length - 15)}`,
      )
    }, STATUS_MS)
  const stopWatching = io.onStop(() => {
    detached = true
    closeRun(nodes)
  })
  try {
    // Every node's reader at once: one SSH channel each, opened side by side.
    const readers = await Promise.all(
      reachable.map((node) =>
        streamNode(node.transport, record, node.rank, 'tail', { seq: 0, offset: 0 }, options.lines, onMessage(node)),
      ),
    )
    await Promise.all(readers.map((r) => r.done.catch(() => '')))
  } finally {
    stopWatching()
    clearInterval(status)
    replay.end()
    live?.reset()
    closeRun(nodes)
  }
  if (detached) {
    io.ui.info(
      `detached from run ${record.id}; it goes on (fanout attach ${record.id} to come back, fanout stop ${record.id} to stop it)`,
    )
    return 0
  }
  const summary = statuses.get(0)?.summary ?? registry.ended(record.id)
  if (summary) {
    registry.markEnded(record.id, summary)
    printSummary(summary, io)
  } else if (unreachable.some((n) => n.rank === 0))
    io.ui.warn(`node 0 (${record.nodes[0]?.host}) cannot be reached: the run's result is not known here`)
  const endedBefore = reachable.length > 0 && reachable.every((n) => firstStatus.get(n.rank)?.alive === false)
  if (endedBefore)
    throw usageError(
      `run ${record.id} had ended${summary ? ` (${describeEnd(summary)})` : ''}: there is nothing to attach to; its last lines and summary are above (fanout logs ${record.id} for all of them)`,
    )
  return summary?.exit_code ?? 1
}

export function printSummary(summary: RunSummary, io: Pick<RunIo, 'stderr' | 'chalk'>): void {
  const width = io.stderr.isTTY && io.stderr.columns ? io.stderr.columns : undefined
  io.stderr.write(formatRunSummary(summary, io.chalk, width))
}
