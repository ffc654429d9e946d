// Fan-out latency: `true` on 8, 32 and 128 hosts; wall and client CPU (children included), peak RSS.
import { compare } from './measure.mjs'
import { nodes, tools } from './tools.mjs'

const PEERS = ['fanout', 'ssh2 floor', 'pdsh', 'clush', 'pssh']

export async function latency(sizes, runs, log) {
  const out = {}
  for (const n of sizes) {
    log(`latency: ${n} hosts, ${runs(n)} runs each`)
    // `true` through `sh -c` for fanout only: --launcher none runs argv, the others hand a shell a string.
    const t = tools(nodes(n), 'true', { only: PEERS })
    out[n] = await compare(t, runs(n), log)
  }
  return out
}
