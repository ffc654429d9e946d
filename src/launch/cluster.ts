import type { NodeSpec } from '../hosts/nodes.js'
import type { PlanNode } from '../plan/plan.js'
import type { RemoteProcess, Transport } from '../transport/types.js'

/**
 * One node of a launch, as one record through the stages: its host-list entry and SSH target
 * (connect), its transport (from connect on), what its probe found (the plan's view of it), and the
 * shell its probe left waiting for the plan (held: the reachability check and the first attempt's job
 * run there; the attempt that takes it clears it).
 */
export interface ConnectedNode {
  spec: NodeSpec
  transport: Transport
}

export interface ProbedNode extends ConnectedNode {
  /** The node as the plan sees it: facts, slots, selected GPUs, the interface to the master. */
  plan: PlanNode
  /** Its probe's shell, waiting for the plan; undefined once taken, or when the probe was not held. */
  held?: RemoteProcess
  /** What the node printed on stderr while probing (its set-up steps' output). */
  probeStderr: string
}
