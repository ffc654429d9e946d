import { FanoutError } from '../errors.js'
import type { LauncherKind } from './launcher.js'
import type { NodeFacts } from './plan.js'
import { describeBusy, type Gpu, type GpuProcess } from './gpus.js'
import { foldRows } from '../output/fold-rows.js'
import { alignColumns, collapseRuns } from '../output/table.js'

/**
 * Pre-flight: what the probe found on every node, checked before anything is launched, so that the
 * boring reasons a first launch fails (no venv, wrong directory, missing script, port taken) are
 * reported by node, all at once, instead of as one node's traceback in the middle of a hung job.
 */
export interface PreflightNode {
  rank: number
  host: string
  facts: NodeFacts
  /** What the node printed on stderr while probing (set-up output). */
  stderr: string
  /** The processes holding the GPUs this node's job will use (plan/gpus.ts). */
  busy?: ReadonlyArray<{ gpu: Gpu; process: GpuProcess }>
}

export interface PreflightContext {
  launcher: LauncherKind
  /** The script is a file to look for (not -m, --no-python or --launcher none). */
  scriptIsFile: boolean
  script: string
  cwd: string
  python: string
  masterPort?: number
  setup: readonly string[]
  /** Different torch or Python versions across nodes are an error, not a warning. */
  strict: boolean
  /** `--allow-version-skew`: nodes whose torch major.minor differ are a warning, not an error. */
  allowVersionSkew?: boolean
  /** `--allow-busy-gpus`: a GPU held by another process is a warning, not an error. */
  allowBusyGpus?: boolean
}

function problems(node: PreflightNode, ctx: PreflightContext): string[] {
  const f = node.facts
  if (f.setupFailed) {
    const tail = node.stderr
      .trim()
      .split('\n')
      .slice(-5)
      .map((l) => `\n    ${l}`)
      .join('')
    return [
      `set-up step ${f.setupFailed.step} failed with exit ${f.setupFailed.code}: ${ctx.setup[f.setupFailed.step - 1] ?? ''}${tail}`,
    ]
  }
  const out: string[] = []
  if (f.cwd === false) out.push(`working directory ${ctx.cwd} does not exist`)
  else if (ctx.scriptIsFile && f.script === false) out.push(`script ${ctx.script} not found in ${ctx.cwd}`)
  if (ctx.launcher !== 'none') {
    if (!f.python) out.push(`${ctx.python} not found (pass --python, --venv or --conda)`)
    else if (f.torch === false) out.push(`torch cannot be imported by ${f.python}`)
  }
  if (node.rank === 0 && ctx.masterPort !== undefined && f.portFree === false)
    out.push(`master port ${ctx.masterPort} is in use`)
  return out
}

/** The table of every node's findings, and the first fatal problem per node (none: launch). */
export function checkPreflight(
  nodes: readonly PreflightNode[],
  ctx: PreflightContext,
): { table: string; errors: string[]; warnings: string[] } {
  const rows = nodes.map((n) => {
    const found = problems(n, ctx)
    const busy = (n.busy ?? []).map(describeBusy)
    if (!ctx.allowBusyGpus) found.push(...busy)
    const result =
      found.length === 0
        ? busy.length === 0
          ? 'ok'
          : `ok; ${busy.join('; ')}`
        : found.map((p) => p.split('\n')[0]).join('; ')
    return {
      n,
      found,
      busy,
      cells: [
        n.facts.pythonVersion ?? '-',
        n.facts.torchVersion ?? (n.facts.torch ? '?' : '-'),
        String(n.facts.gpus),
        result,
      ],
    }
  })
  // At 256 nodes the table would be 256 rows: runs of nodes that found the same are one row (clubak's way).
  const folded = foldRows(rows.map((r) => ({ node: r.n.rank, host: r.n.host, cells: r.cells })))
  const table = alignColumns([['node', 'host', 'python', 'torch', 'gpus', 'pre-flight'], ...folded]).join('\n') + '\n'
  const errors = rows.flatMap((r) => r.found.map((p) => `node ${r.n.rank} (${r.n.host}): ${p}`))
  const warnings: string[] = rows.flatMap((r) =>
    ctx.allowBusyGpus ? r.busy.map((b) => `node ${r.n.rank} (${r.n.host}): ${b} (--allow-busy-gpus)`) : [],
  )
  const busyNodes = rows.filter((r) => r.busy.length > 0).length
  if (busyNodes > 0 && !ctx.allowBusyGpus) {
    errors.push(
      `${busyNodes} node(s) have GPUs held by processes that are not part of this launch: stop them, choose other GPUs (--include host@0,1), wait for them (--wait-for-gpus 10m), or launch anyway (--allow-busy-gpus)`,
    )
  }
  const skew = versionSkew(nodes)
  if (skew) (ctx.allowVersionSkew ? warnings : errors).push(skew)
  for (const [what, get] of [
    ['torch', (f: NodeFacts) => f.torchVersion],
    ['Python', (f: NodeFacts) => f.pythonVersion],
  ] as const) {
    if (what === 'torch' && skew) continue
    const versions = [...new Set(nodes.map((n) => get(n.facts)).filter((v): v is string => v !== undefined))]
    if (versions.length > 1)
      (ctx.strict ? errors : warnings).push(`nodes run different ${what} versions: ${versions.join(', ')}`)
  }
  return { table, errors, warnings }
}

const majorMinor = (version: string): string | undefined => /^(\d+)\.(\d+)/.exec(version)?.slice(1, 3).join('.')

/**
 * Nodes whose torch major.minor differ: their c10d stores speak different protocols (1.13 against
 * 2.6: the 2.x nodes loop printing `TCPStore::ping … Connection reset by peer` until killed), so
 * nothing can work. Names every version with the nodes that run it.
 */
function versionSkew(nodes: readonly PreflightNode[]): string | undefined {
  const byMinor = new Map<string, Array<{ rank: number; version: string }>>()
  for (const n of nodes) {
    const v = n.facts.torchVersion
    const mm = v === undefined ? undefined : majorMinor(v)
    if (v === undefined || mm === undefined) continue
    byMinor.set(mm, [...(byMinor.get(mm) ?? []), { rank: n.rank, version: v }])
  }
  if (byMinor.size < 2) return undefined
  const groups = [...byMinor.entries()].map(
    ([mm, ns]) =>
      `torch ${mm} on ${nodeList(ns.map((x) => x.rank))} (${[...new Set(ns.map((x) => x.version))].join(', ')})`,
  )
  return `nodes run different torch versions, which cannot rendezvous with each other: ${groups.join('; ')}. Install the same torch on every node, or pass --allow-version-skew to launch anyway`
}

/** `n0`, `n0,n3`, `n1-n31`: node ranks, runs collapsed. */
const nodeList = (ranks: readonly number[]): string => collapseRuns(ranks, (r) => `n${r}`)

/** Fails the launch, exit 2, naming every node's problem. */
export function preflightError(errors: readonly string[]): FanoutError {
  return new FanoutError(`pre-flight failed, nothing was launched:\n${errors.join('\n')}`, 'PREFLIGHT')
}
