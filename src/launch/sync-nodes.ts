import { FanoutError } from '../errors.js'
import type { LocalTree } from '../sync/run-sync.js'
import type { ConnectedNode } from './cluster.js'
import type { RunIo } from './io.js'
import { failPhase, label } from './phase.js'

/**
 * --sync: every node's working directory brought up to date in parallel, then checked: a node whose
 * copy does not hash like the local tree stops the launch (nodes running different code).
 */
export async function syncNodes(
  nodes: readonly ConnectedNode[],
  tree: LocalTree,
  chdir: string,
  io: RunIo,
): Promise<void> {
  const { syncNode, describeSync, describeProgress } = await import('../sync/run-sync.js')
  const synced = await io.ui.phase(
    'sync',
    nodes.map(({ spec, transport }) => ({
      label: label(spec),
      node: { rank: spec.rank, host: spec.entry.host },
      run: (progress: (detail: string) => void) =>
        syncNode(transport, tree, chdir, (p) => progress(describeProgress(p))),
      result: describeSync,
    })),
    'synced',
  )
  failPhase(
    synced,
    nodes.map((n) => n.spec),
  )
  const differ: string[] = []
  synced.forEach((r, i) => {
    const n = nodes[i]?.spec
    if (r.status !== 'fulfilled' || !n) return
    if (r.value.hash !== tree.hash)
      differ.push(`node ${n.rank} (${n.entry.host}): tree ${r.value.hash.slice(0, 8)}, not ${tree.hash.slice(0, 8)}`)
    const extras = r.value.extras
    if (extras.length > 0)
      io.ui.warn(
        `node ${n.rank} (${n.entry.host}): ${extras.length} file(s) in ${chdir} are not in the local tree: ${extras.slice(0, 5).join(', ')}${extras.length > 5 ? ', …' : ''} (--sync-delete removes them)`,
      )
  })
  if (differ.length > 0)
    throw new FanoutError(
      `after the sync, these nodes do not hold the local tree (${tree.hash.slice(0, 8)}):\n${differ.join('\n')}`,
      'PREFLIGHT',
    )
}
