import { FanoutError } from '../errors.js'
import type { NodeSpec } from '../hosts/nodes.js'
import type { SshConnectOptions } from '../transport/ssh/options.js'
import type { Transport } from '../transport/types.js'
import type { ConnectedNode } from './cluster.js'
import { limitHandshakes } from './connect.js'
import type { RunIo } from './io.js'
import { failPhase, label } from './phase.js'

/**
 * Connects to every node at once (SSH, or the local transport for localhost; io.openTransport in tests),
 * asking first for the secrets it needs: one prompt per encrypted key file, one password for all. A node
 * that cannot be reached fails the launch with every such node named; the ones that connected are closed.
 */
export async function connectNodes(
  specs: readonly NodeSpec[],
  options: SshConnectOptions,
  io: RunIo,
): Promise<ConnectedNode[]> {
  const results = await connectEach(specs, options, io)
  const failed = results.some((r) => r.status === 'rejected')
  if (failed) for (const r of results) if (r.status === 'fulfilled') r.value.close()
  failPhase(results, specs)
  return specs.map((spec, i) => ({ spec, transport: (results[i] as PromiseFulfilledResult<Transport>).value }))
}

/** Connects to every node at once, each node's connection or why it failed (by node, in `specs`' order). */
export async function connectEach(
  specs: readonly NodeSpec[],
  options: SshConnectOptions,
  io: RunIo,
): Promise<PromiseSettledResult<Transport>[]> {
  const open = io.openTransport ?? (await realTransports(specs, options, io))
  return io.ui.phase(
    'connect',
    specs.map((n) => ({ label: label(n), node: { rank: n.rank, host: n.entry.host }, run: () => open(n) })),
    'connected',
  )
}

/**
 * srun for the nodes of a SLURM allocation (--via srun), SSH for the nodes that have a target, the
 * local transport for the others, handshakes capped per sshd.
 */
async function realTransports(
  specs: readonly NodeSpec[],
  options: SshConnectOptions,
  io: RunIo,
): Promise<(n: NodeSpec) => Promise<Transport>> {
  const { localTransport } = await import('../transport/local.js')
  const srun = specs.flatMap((n) => (n.srun ? [n.srun] : []))
  if (srun.length > 0) {
    const { nodeAddresses, srunHasOverlap, srunTransport } = await import('../transport/srun.js')
    const [addresses, overlap] = await Promise.all([nodeAddresses(srun.map((t) => t.node)), srunHasOverlap()])
    return async (n) => {
      if (!n.srun) return localTransport()
      const address = addresses.get(n.srun.node)
      return srunTransport(n.srun, { env: io.env, overlap, ...(address ? { address } : {}) })
    }
  }
  const hasSsh = specs.some((n) => n.ssh)
  const ssh = hasSsh ? await import('../transport/ssh.js') : undefined
  // Secrets are asked for once, before any connection: one prompt per key file, not one per node.
  const { unlockIdentities } = await import('../transport/ssh/credentials.js')
  // With an agent, its keys come first (as in ssh), so an encrypted file is usually loaded there already: no prompt.
  const agent = Boolean(io.env.SSH_AUTH_SOCK)
  const { unlocked, locked } = await unlockIdentities(
    specs.flatMap((n) => (n.ssh && (n.ssh.identitiesOnly || !agent) ? n.ssh.identityFiles : [])),
    io.askSecret,
  )
  let password: string | undefined
  if (options.askPassword && hasSsh) {
    if (!io.askSecret)
      throw new FanoutError('--ask-password needs a terminal to ask for the password on (stdin is not one)', 'USAGE')
    const users = [...new Set(specs.flatMap((n) => (n.ssh ? [n.ssh.user] : [])))].join(', ')
    password = await io.askSecret(`Password for ${users} on ${specs.filter((n) => n.ssh).length} node(s): `)
  }
  const connector = ssh?.sshConnector({
    connectTimeoutS: options.connectTimeoutS,
    keepaliveS: options.keepaliveS,
    keepaliveCountMax: 3,
    agentSocket: io.env.SSH_AUTH_SOCK,
    acceptNew: options.acceptNew,
    unlocked,
    locked,
    ...(password === undefined ? {} : { password }),
    notice: (m: string) => io.ui.warn(m),
  })
  return limitHandshakes(
    (n: NodeSpec) => (n.ssh && connector ? connector.connect(n.ssh) : Promise.resolve(localTransport())),
    {
      maxInFlight: options.maxHandshakes,
      targetOf: (n) => (n.ssh && ssh ? ssh.sshdOf(n.ssh) : 'local'),
      retries: 4,
      backoffMs: 200,
      isRetryable: (e) => ssh?.isDroppedHandshake(e) ?? false,
    },
  )
}
