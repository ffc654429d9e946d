// The results as JSON and as a short Markdown table: measurement, fanout, each peer, ratios, target.
import { execFileSync } from 'node:child_process'
import { cpus, release } from 'node:os'

export function machine() {
  const openssh = execFileSync('sh', ['-c', 'ssh -V 2>&1'], { encoding: 'utf8' }).trim().split(',')[0]
  return { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, kernel: release(), openssh, node: process.version }
}

const PEERS = ['ssh2 floor', 'pdsh', 'clush', 'pssh', 'ssh']
const s = (x) => (Number.isFinite(x) ? `${x.toFixed(2)} s` : '–')
const ms = (x) => (Number.isFinite(x) ? `${(x * 1000).toFixed(0)} ms` : '–')
const mb = (x) => (Number.isFinite(x) ? `${x.toFixed(0)} MB` : '–')
const rate = (x) => (Number.isFinite(x) ? `${x.toFixed(0)} MB/s` : '–')
const cpuMb = (x) => (Number.isFinite(x) ? `${(x * 1000).toFixed(1)} ms/MB` : '–')
const ratio = (a, b) => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? a / b : NaN)
const r2 = (x) => (Number.isFinite(x) ? `${x.toFixed(2)}×` : '–')

/** Rows: { name, fanout, peers: {peer: text}, ratios: text, target: text, ok: boolean|undefined }. */
function rows(results) {
  const out = []
  const { latency = {}, throughput = {}, startup, teardown } = results
  for (const [n, t] of Object.entries(latency)) {
    const f = t.fanout
    const wallOk = n === '32' ? ratio(f.wall, t.pdsh?.wall) <= 0.35 : undefined
    const cpuOk = n === '32' ? ratio(f.cpu, t.pdsh?.cpu) <= 0.15 : undefined
    out.push({
      name: `launch \`true\`, ${n} hosts: wall`,
      fanout: s(f.wall),
      peers: Object.fromEntries(PEERS.map((p) => [p, s(t[p]?.wall)])),
      ratios: `${r2(ratio(f.wall, t.pdsh?.wall))} pdsh, ${r2(ratio(f.wall, t['ssh2 floor']?.wall))} floor`,
      target: n === '32' ? '≤ 0.35× pdsh' : '',
      ok: wallOk,
    })
    out.push({
      name: `launch \`true\`, ${n} hosts: client CPU`,
      fanout: s(f.cpu),
      peers: Object.fromEntries(PEERS.map((p) => [p, s(t[p]?.cpu)])),
      ratios: `${r2(ratio(f.cpu, t.pdsh?.cpu))} pdsh, ${r2(ratio(f.cpu, t['ssh2 floor']?.cpu))} floor`,
      target: n === '32' ? '≤ 0.15× pdsh' : '',
      ok: cpuOk,
    })
    // Where the wall goes on this machine: the hosts' work runs on the cores the client uses.
    const floorHosts = t['ssh2 floor']?.hosts
    out.push({
      name: `launch \`true\`, ${n} hosts: CPU on the hosts (sshd and what it runs)`,
      fanout: s(f.hosts),
      peers: Object.fromEntries(PEERS.map((p) => [p, s(t[p]?.hosts)])),
      ratios: Number.isFinite(f.hosts - floorHosts) ? `floor +${ms((f.hosts - floorHosts) / Number(n))} per host` : '',
      target: '',
      ok: undefined,
    })
    if (n === '128')
      out.push({
        name: 'coordinator peak RSS, 128 hosts',
        fanout: mb(f.rss),
        peers: Object.fromEntries(PEERS.map((p) => [p, mb(t[p]?.rss)])),
        ratios: '',
        target: '≤ 150 MB',
        ok: f.rss <= 150,
      })
  }
  for (const [n, t] of Object.entries(throughput)) {
    const f = t.fanout
    const vsPdsh = ratio(f.mbPerS, t.pdsh?.mbPerS)
    const vsFloor = ratio(f.mbPerS, t['ssh2 floor']?.mbPerS)
    out.push({
      name: `log throughput, ${n} host(s) × ${f.totalMb / Number(n)} MB`,
      fanout: rate(f.mbPerS),
      peers: Object.fromEntries(PEERS.map((p) => [p, rate(t[p]?.mbPerS)])),
      ratios: `${r2(vsPdsh)} pdsh, ${(vsFloor * 100).toFixed(0)} % floor`,
      target: '≥ 3× pdsh, ≥ 60 % floor',
      ok: vsPdsh >= 3 && vsFloor >= 0.6,
    })
    out.push({
      name: `client CPU per MB, ${n} host(s)`,
      fanout: cpuMb(f.cpuSPerMb),
      peers: Object.fromEntries(PEERS.map((p) => [p, cpuMb(t[p]?.cpuSPerMb)])),
      ratios: `${r2(ratio(f.cpuSPerMb, t.pdsh?.cpuSPerMb))} pdsh`,
      target: '',
      ok: undefined,
    })
  }
  if (startup) {
    const h = startup['fanout --help']
    const n = startup['node -e 0']
    out.push({
      name: '`fanout --help` cold start',
      fanout: ms(h.wall),
      peers: {},
      ratios: `\`node -e 0\`: ${ms(n.wall)} (fanout +${ms(h.wall - n.wall)})`,
      target: '≤ 150 ms',
      ok: h.wall <= 0.15,
    })
    const ca = startup['node -e 0 with NODE_EXTRA_CA_CERTS']
    if (ca)
      out.push({
        name: '`node -e 0` with NODE_EXTRA_CA_CERTS (not in any run above)',
        fanout: ms(ca.wall),
        peers: {},
        ratios: `+${ms(ca.wall - n.wall)} wall, +${ms(ca.cpu - n.cpu)} CPU per Node start`,
        target: '',
        ok: undefined,
      })
  }
  for (const r of teardown?.results ?? []) {
    out.push({
      name: `teardown: ${r.scenario}`,
      fanout: s(r.medianMs / 1000),
      peers: {},
      ratios: r.fanoutReactionMs === undefined ? '' : `reacted in ${r.fanoutReactionMs} ms`,
      target:
        r.targetMs === null || r.targetMs === undefined || r.targetMs === Infinity
          ? '(floor)'
          : `≤ ${(r.targetMs / 1000).toFixed(1)} s`,
      ok: r.targetMs === null || r.targetMs === undefined || r.targetMs === Infinity ? undefined : r.ok,
    })
  }
  return out
}

export function markdown(results) {
  const m = results.machine
  const head = `fanout benchmarks, ${results.date.slice(0, 16).replace('T', ' ')} UTC, ${m.cores} × ${m.cpu}, Linux ${m.kernel}, ${m.openssh}, Node ${m.node}; test hosts are network namespaces on this machine (each with its own sshd), so the nodes' work shares its cores. Medians of ${results.runs.launch} runs per launch measurement (${results.runs.launch128} at 128 hosts), ${results.runs.throughput} per throughput measurement, ${results.runs.startup} for start-up; every tool in the same run on the same hosts, runs interleaved${results.startup?.['node -e 0 with NODE_EXTRA_CA_CERTS'] ? ', and without NODE_EXTRA_CA_CERTS, which this machine sets (its cost is the last start-up row)' : ''}.`
  const cols = ['measurement', 'fanout', ...PEERS, 'fanout vs', 'target', 'result']
  const lines = [head, '', `| ${cols.join(' | ')} |`, `| ${cols.map(() => '---').join(' | ')} |`]
  for (const r of rows(results)) {
    lines.push(
      `| ${[r.name, r.fanout, ...PEERS.map((p) => r.peers[p] ?? ''), r.ratios, r.target, r.ok === undefined ? '' : r.ok ? 'pass' : '**miss**'].join(' | ')} |`,
    )
  }
  return lines.join('\n') + '\n'
}
