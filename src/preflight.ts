import type { Argv } from 'yargs'
import { FanoutError, usageError } from './errors.js'
import type { LauncherKind } from './launcher.js'
import type { NodeFacts } from './plan.js'
import { shellQuote } from './quote.js'
import { alignColumns } from './table.js'

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
}

/** Set-up steps from the flags, in the order they run: the environment first, then --setup lines. */
export function setupSteps(a: Record<string, unknown>): string[] {
  // `--venv ''` would source /bin/activate and `--setup ''` run nothing: an empty value is a slip.
  const list = (flag: string): string[] => [a[flag] ?? []].flat().map((v) => {
    if (typeof v !== 'string' || v.trim() === '') throw usageError(`--${flag} needs a value`)
    return v
  })
  // Quoted for the node's shell, keeping a leading ~/ for it to expand.
  const path = (p: string): string => (p.startsWith('~/') ? `~/${shellQuote(p.slice(2))}` : shellQuote(p))
  return [
    ...list('venv').map((dir) => `. ${path(`${dir.replace(/\/$/, '')}/bin/activate`)}`),
    ...list('conda').map((env) => `eval "$(conda shell.posix hook)" && conda activate ${shellQuote(env)}`),
    ...list('setup'),
  ]
}

export function withSetupOptions<T>(y: Argv<T>) {
  return y
    .option('setup', { type: 'string', describe: "shell line run on each node before the launcher, same shell (repeatable): 'source ~/venv/bin/activate'", group: 'Job:' })
    .option('venv', { type: 'string', describe: 'activate this virtualenv on each node first (DIR/bin/activate)', group: 'Job:' })
    .option('conda', { type: 'string', describe: 'activate this conda environment on each node first', group: 'Job:' })
    .option('strict', { type: 'boolean', default: false, describe: 'different torch or Python versions across nodes are an error', group: 'Job:' })
}

function problems(node: PreflightNode, ctx: PreflightContext): string[] {
  const f = node.facts
  if (f.setupFailed) {
    const tail = node.stderr.trim().split('\n').slice(-5).map((l) => `\n    ${l}`).join('')
    return [`set-up step ${f.setupFailed.step} failed with exit ${f.setupFailed.code}: ${ctx.setup[f.setupFailed.step - 1] ?? ''}${tail}`]
  }
  const out: string[] = []
  if (f.cwd === false) out.push(`working directory ${ctx.cwd} does not exist`)
  else if (ctx.scriptIsFile && f.script === false) out.push(`script ${ctx.script} not found in ${ctx.cwd}`)
  if (ctx.launcher !== 'none') {
    if (!f.python) out.push(`${ctx.python} not found (pass --python, --venv or --conda)`)
    else if (f.torch === false) out.push(`torch cannot be imported by ${f.python}`)
  }
  if (node.rank === 0 && ctx.masterPort !== undefined && f.portFree === false) out.push(`master port ${ctx.masterPort} is in use`)
  return out
}

/** The table of every node's findings, and the first fatal problem per node (none: launch). */
export function checkPreflight(nodes: readonly PreflightNode[], ctx: PreflightContext): { table: string; errors: string[]; warnings: string[] } {
  const rows = nodes.map((n) => {
    const found = problems(n, ctx)
    return { n, found, cells: [`n${n.rank}`, n.host, n.facts.pythonVersion ?? '-', n.facts.torchVersion ?? (n.facts.torch ? '?' : '-'), String(n.facts.gpus), found.length === 0 ? 'ok' : found.map((p) => p.split('\n')[0]).join('; ')] }
  })
  const table = alignColumns([['node', 'host', 'python', 'torch', 'gpus', 'pre-flight'], ...rows.map((r) => r.cells)]).join('\n') + '\n'
  const errors = rows.flatMap((r) => r.found.map((p) => `node ${r.n.rank} (${r.n.host}): ${p}`))
  const warnings: string[] = []
  for (const [what, get] of [['torch', (f: NodeFacts) => f.torchVersion], ['Python', (f: NodeFacts) => f.pythonVersion]] as const) {
    const versions = [...new Set(nodes.map((n) => get(n.facts)).filter((v): v is string => v !== undefined))]
    if (versions.length > 1) (ctx.strict ? errors : warnings).push(`nodes run different ${what} versions: ${versions.join(', ')}`)
  }
  return { table, errors, warnings }
}

/** Fails the launch, exit 2, naming every node's problem. */
export function preflightError(errors: readonly string[]): FanoutError {
  return new FanoutError(`pre-flight failed, nothing was launched:\n${errors.join('\n')}`, 'PREFLIGHT')
}
