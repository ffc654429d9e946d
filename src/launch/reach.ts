import { readToMark } from './held.js'
import { REACH_END, reachWords } from '../node/reach.js'
import { wordsBlock } from '../node/job.js'
import { readProbeLines, readProbeList } from '../node/probe.js'
import type { RemoteProcess } from '../transport/types.js'
import type { Ui } from '../output/ui.js'
import { endpoint } from '../plan/endpoint.js'
import { within } from './within.js'

/**
 * Proves, before anything is launched, that every node can open a TCP connection to the master
 * address and port the job will use: node 0 listens there, the others connect, through the shells
 * their probes left waiting (no session of their own; node/reach.ts has the program). A node that
 * cannot is named with the address, the port and the interface it routed through, instead of a job
 * that prints nothing and hangs in rendezvous.
 */
export interface ReachNode {
  rank: number
  host: string
  /** The node's held shell (its probe's, waiting for the plan). */
  proc: RemoteProcess
  /** The interpreter the probe found (the check is a short Python program). */
  python: string
  /** The interface that routes to the master on this node, for the message. */
  iface?: string
}

export interface ReachCheck {
  master: { addr: string; port: number }
  timeoutS: number
  /**
   * torch 1.x's c10d rendezvous hands its workers the host name of the node whose agent got rank 0:
   * that name must resolve on every node to one of `addrs` (none: no name to check).
   */
  masterName?: { name: string; rank: number; addrs: readonly string[] }
}

/** What one node's check printed: its outcome as lines, or undefined when it never answered. */
async function runCheck(
  node: ReachNode,
  words: string[],
  waitMs: number,
): Promise<(Map<string, string> & { resolved: string[] }) | undefined> {
  node.proc.write(wordsBlock(words))
  const answer = await within(
    Promise.all([readToMark(node.proc.stdout, REACH_END), readToMark(node.proc.stderr, REACH_END)]),
    waitMs,
  )
  if (!answer || !answer[0].marked) return undefined
  return Object.assign(readProbeLines(answer[0].text), { resolved: readProbeList(answer[0].text, 'resolve') })
}

/** Runs the check on every node at once; the problems found, one line each, naming the node. */
export async function checkReach(ui: Ui, nodes: readonly ReachNode[], check: ReachCheck): Promise<string[]> {
  const { addr, port } = check.master
  const target = endpoint(addr, port)
  const name = check.masterName
  // The master's own shell answers once every other node has connected, or at the time limit.
  const waitMs = (check.timeoutS + 15) * 1000
  const results = await ui.phase(
    'reach',
    nodes.map((n, i) => ({
      label: `n${n.rank} ${n.host}`,
      run: async () => {
        const names = name && name.rank !== n.rank ? [name.name] : []
        const role =
          i === 0 ? { role: 'listen' as const, expected: nodes.length - 1 } : { role: 'connect' as const, names }
        const words = reachWords(n.python, role, addr, port, check.timeoutS)
        if (role.role === 'listen') words.push(...names)
        const found = await runCheck(n, words, waitMs)
        const who = `node ${n.rank} (${n.host})`
        if (!found) throw new Error(`${who}: the reachability check did not answer within ${waitMs / 1000} s`)
        const mine: string[] = []
        const listen = found.get('reach_listen')
        if (listen !== undefined && listen !== 'ok')
          mine.push(`${who}: cannot listen on the master port ${port} for the check: ${listen.replace(/^error /, '')}`)
        const reach = found.get('reach')
        if (reach !== undefined && !reach.startsWith('ok')) {
          const why = reach.replace(/^fail /, '')
          const via = `${who}: cannot connect to the master at ${target} (node 0's rendezvous port)${n.iface ? ` through ${n.iface}` : ''}`
          mine.push(
            /timed out/.test(why)
              ? `${via}: timed out after ${check.timeoutS} s (a firewall that lets SSH through but drops other connections?); open this port between the nodes, or pass --master-port with one that is open`
              : `${via}: ${why}`,
          )
        }
        if (name) for (const line of found.resolved) mine.push(...nameProblems(who, line, name))
        if (mine.length > 0) throw new Error(mine.join('\n'))
      },
    })),
  )
  return results.flatMap((r) =>
    r.status === 'rejected' ? [r.reason instanceof Error ? r.reason.message : String(r.reason)] : [],
  )
}

/** What a node's lookup of the rank-0 host name (`NAME ADDRESS...`) says is wrong, if anything. */
function nameProblems(who: string, line: string, name: NonNullable<ReachCheck['masterName']>): string[] {
  const [, ...found] = line.split(' ').filter(Boolean)
  const whose = `node ${name.rank}'s host name ${name.name}, which torch's c10d rendezvous gives the workers as their master's address`
  const fix = 'add it to DNS or /etc/hosts on every node, or use the static rendezvous (leave out --rdzv-backend c10d)'
  if (found.length === 0) return [`${who}: cannot resolve ${whose}: ${fix}`]
  if (!found.some((a) => name.addrs.includes(a)))
    return [
      `${who}: ${whose} resolves to ${found.join(', ')} there, not to node ${name.rank}'s address (${name.addrs.join(', ')}): ${fix}`,
    ]
  return []
}
