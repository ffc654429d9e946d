// Which nodes joined a rendezvous that did not complete: the TCP connections established to the
// master port on node 0 (torch's store, static or c10d, is there; each agent keeps a connection to
// it), read from node 0's /proc/net/tcp and tcp6 — one short command, no tool needed on the node.

/** The command that prints node 0's TCP tables. */
export const STORE_PEERS_COMMAND = 'cat /proc/net/tcp /proc/net/tcp6 2>/dev/null'

/** An address of /proc/net/tcp{,6} (hex, in the kernel's byte order) in its usual notation. */
function procAddress(hex: string): string | undefined {
  if (hex.length === 8) {
    const n = Number.parseInt(hex, 16)
    return [n & 255, (n >>> 8) & 255, (n >>> 16) & 255, n >>> 24].join('.')
  }
  if (hex.length !== 32) return undefined
  // Four 32-bit words, each in host (little-endian) order.
  const bytes = [0, 1, 2, 3].flatMap((w) => {
    const n = Number.parseInt(hex.slice(w * 8, w * 8 + 8), 16)
    return [n & 255, (n >>> 8) & 255, (n >>> 16) & 255, n >>> 24]
  })
  if (bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 255 && bytes[11] === 255)
    return bytes.slice(12).join('.') // ::ffff:a.b.c.d
  const groups = [0, 2, 4, 6, 8, 10, 12, 14].map((i) => (((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0)).toString(16))
  return groups.join(':').replace(/(^|:)0(:0)+(:|$)/, '::')
}

/** The remote addresses of the connections established to local port `port` in /proc/net/tcp{,6} text. */
export function storePeers(procNetTcp: string, port: number): string[] {
  const peers = new Set<string>()
  for (const line of procNetTcp.split('\n')) {
    const [, local, remote, state] = line.trim().split(/\s+/)
    if (state !== '01' || !local || !remote) continue // 01: ESTABLISHED
    const [, localPort] = local.split(':')
    if (localPort === undefined || Number.parseInt(localPort, 16) !== port) continue
    const addr = procAddress(remote.split(':')[0] ?? '')
    if (addr) peers.add(addr)
  }
  return [...peers]
}

/** What the store's connections say: which nodes are connected to it and which are not. */
export interface Joined {
  text: string
  /** The nodes with no connection to the store (empty when nothing is known). */
  missing: number[]
}

/**
 * Says which nodes have a connection to the store and which have none, given each node's addresses
 * (how it reaches the master, how fanout reached it).
 */
export function describeJoined(
  peers: readonly string[],
  nodes: ReadonlyArray<{ rank: number; addrs: readonly string[] }>,
  store: string,
): Joined {
  if (peers.length === 0) return { text: `nothing is connected to the rendezvous store at ${store}`, missing: [] }
  const joined = nodes.filter((n) => n.addrs.some((a) => peers.includes(a))).map((n) => n.rank)
  const missing = nodes.filter((n) => !joined.includes(n.rank)).map((n) => n.rank)
  if (missing.length === 0) return { text: `every node is connected to the rendezvous store at ${store}`, missing }
  const list = (ranks: number[]): string => ranks.join(', ')
  return {
    text: `connected to the rendezvous store at ${store}: ${joined.length > 0 ? `node(s) ${list(joined)}` : 'no node'}; not connected: node(s) ${list(missing)}`,
    missing,
  }
}
