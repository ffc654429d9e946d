import { usageError } from '../errors.js'
import type { RunIo } from '../launch/io.js'
import { stopperCommand } from '../node/run-files.js'
import { capture } from '../transport/types.js'
import { printSummary } from './attach.js'
import { closeRun, nodeStatus, reachRun } from './nodes.js'
import { nodeRunDir, type Registry, type RunRecord } from './registry.js'
import { describeEnd } from './summary.js'

/** What the stopper (node/run-files.ts) reports of one node. */
interface Stopped {
  missing?: boolean
  was?: string
  running?: boolean
  killed?: string[]
  left?: number
}

/**
 * `fanout stop RUN`: every node's supervisor is told to stop (SIGTERM: SIGINT to the job, --grace, then
 * SIGKILL, as Ctrl-C does; node 0's stops every node), fanout waits for each to end and then checks
 * that nothing of the job's process group is left (killing it, exactly that group, if something is).
 * The summary follows. A run that ended already is refused (exit 2).
 */
export async function stopRun(record: RunRecord, registry: Registry, io: RunIo): Promise<number> {
  const cached = registry.ended(record.id)
  if (cached) throw usageError(`run ${record.id} has already ended (${describeEnd(cached)}): there is nothing to stop`)
  const nodes = await reachRun(record, io)
  try {
    const before = await Promise.all(
      nodes.map((n) => (n.transport ? nodeStatus(n.transport, record, n.rank).catch(() => undefined) : undefined)),
    )
    const summary = before[0]?.summary
    if (summary) {
      registry.markEnded(record.id, summary)
      throw usageError(`run ${record.id} has already ended (${describeEnd(summary)}): there is nothing to stop`)
    }
    if (nodes.every((n, i) => n.transport && before[i] && !before[i]?.alive))
      throw usageError(
        `run ${record.id} is not running: no node has its supervisor any more (fanout ps says what is known of it)`,
      )
    const waitS = Math.ceil(record.graceS) + 15
    io.ui.info(
      `stopping run ${record.id} on ${nodes.length} node(s): SIGINT, then SIGKILL after ${record.graceS} s (its --grace)`,
    )
    const results = await io.ui.phase(
      'stop',
      nodes.map((n) => ({
        label: `n${n.rank} ${n.host}`,
        node: { rank: n.rank, host: n.host },
        run: async (): Promise<Stopped> => {
          if (!n.transport) throw new Error(`cannot be reached: ${n.error}`)
          const { stdout, stderr } = await capture(
            n.transport,
            stopperCommand(record.python, nodeRunDir(record.dir, n.rank), waitS),
          )
          const line = stdout.trim().split('\n').pop() ?? ''
          try {
            return JSON.parse(line) as Stopped
          } catch {
            throw new Error(stderr.trim() || `the stopper said ${JSON.stringify(line)}`)
          }
        },
        result: (s: Stopped) =>
          s.missing
            ? `no ${nodeRunDir(record.dir, n.rank)} there`
            : `${s.running ? 'stopped' : `had ended (${s.was})`}${s.killed && s.killed.length > 0 ? `; killed ${s.killed.join(', ')}` : ''}; ${s.left ?? 0} process(es) left`,
      })),
      'stopped',
    )
    let ok = true
    results.forEach((r, i) => {
      const n = nodes[i]
      if (r.status === 'rejected') {
        ok = false
        io.ui.warn(
          `node ${n?.rank} (${n?.host}): ${r.reason instanceof Error ? r.reason.message : String(r.reason)}; its supervisor stops the job by itself once it has not heard from node 0 for ${record.heartbeatTimeoutS} s`,
        )
      } else if ((r.value.left ?? 0) > 0) {
        ok = false
        io.ui.warn(`node ${n?.rank} (${n?.host}): ${r.value.left} process(es) of the job are still there`)
      }
    })
    const after = nodes[0]?.transport && (await nodeStatus(nodes[0].transport, record, 0).catch(() => undefined))
    if (after?.summary) {
      registry.markEnded(record.id, after.summary)
      printSummary(after.summary, io)
    }
    if (ok) io.ui.info(`run ${record.id} stopped: nothing of it is left on any of its ${nodes.length} node(s)`)
    return ok ? 0 : 1
  } finally {
    closeRun(nodes)
  }
}
