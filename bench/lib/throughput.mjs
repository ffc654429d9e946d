// Log throughput: hosts streaming 100-byte lines (`yes … | head -c BYTES`) through each tool to
// /dev/null. The rate is the steady one: bytes / (wall with the data − wall of the same tool with none),
// so that a tool's fixed start-up (fanout's probe, ssh's handshake) is not counted as streaming time;
// CPU per MB likewise. The end-to-end wall is kept in the results too.
import { compare, median } from './measure.mjs'
import { nodes, tools } from './tools.mjs'

const LINE = '0123456789'.repeat(10).slice(0, 99) // + '\n' = 100 bytes
const generate = (bytes) => `yes ${LINE} | head -c ${bytes}`
const PEERS = ['fanout', 'ssh2 floor', 'ssh', 'pdsh']

export async function throughput(cases, runs, log) {
  const out = {}
  for (const { hosts, mbPerHost } of cases) {
    const bytes = mbPerHost * 1e6
    log(`throughput: ${hosts} host(s) × ${mbPerHost} MB, ${runs} runs each (and as many with 0 bytes)`)
    const list = nodes(hosts)
    const empty = await compare(tools(list, generate(0), { only: PEERS }), runs, log)
    const full = await compare(tools(list, generate(bytes), { only: PEERS, timeoutMs: 300_000 }), runs, log)
    const totalMb = (bytes * hosts) / 1e6
    out[hosts] = Object.fromEntries(
      PEERS.map((k) => {
        const stream = median(full[k].runs.map((r) => r.wall)) - empty[k].wall
        const cpu = median(full[k].runs.map((r) => r.cpu)) - empty[k].cpu
        return [
          k,
          {
            mbPerS: totalMb / stream,
            cpuSPerMb: cpu / totalMb,
            wall: full[k].wall,
            wallEmpty: empty[k].wall,
            rss: full[k].rss,
            totalMb,
            runs: full[k].runs,
          },
        ]
      }),
    )
    for (const k of PEERS)
      log(`  ${k}: ${out[hosts][k].mbPerS.toFixed(0)} MB/s, ${(out[hosts][k].cpuSPerMb * 1000).toFixed(1)} ms CPU/MB`)
  }
  return out
}
