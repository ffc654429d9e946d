import { FanoutError } from '../errors.js'
import type { NodeSpec } from '../hosts/nodes.js'

/** How a node is named in the phases' per-node rows. */
export const label = (n: NodeSpec): string => `n${n.rank} ${n.entry.host}`

const message = (e: unknown): string => (e instanceof Error ? e.message : String(e))

/** Fails the launch with every node's error listed (results by node, in `nodes`' order). */
export function failPhase(results: readonly PromiseSettledResult<unknown>[], nodes: readonly NodeSpec[]): void {
  const errors = results.flatMap((r, i) =>
    r.status === 'rejected' ? [{ node: nodes[i], error: r.reason as unknown }] : [],
  )
  if (errors.length === 0) return
  const first = errors[0]?.error
  const text = errors.map(({ node, error }) => `${node ? `node ${node.rank}: ` : ''}${message(error)}`).join('\n')
  throw new FanoutError(text, first instanceof FanoutError ? first.code : 'CONNECT')
}
