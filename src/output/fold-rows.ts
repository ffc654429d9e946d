// What a launch on hundreds of nodes says about them, folded: the pre-flight table's identical rows
// become one, as ClusterShell's clubak folds nodes with identical output, and the launch line's
// per-node process counts are written by runs (`32 × 8`, not thirty-two 8s joined by `+`).
import { compressHosts } from '../hosts/hostrange.js'

/**
 * Per-node process counts, in node order, run-length written: a run of 2 or more equal neighbours is
 * `N × k` (N nodes with k each), and the runs are joined by ` + `: thirty-two 1s → `32 × 1`,
 * [8, 8, 4] → `2 × 8 + 4`, [2, 1, 3] → `2 + 1 + 3`. No nodes is `0`, the sum it stands for.
 */
export function processCounts(counts: readonly number[]): string {
  if (counts.length === 0) return '0'
  const runs: string[] = []
  for (let i = 0; i < counts.length;) {
    let j = i + 1
    while (j < counts.length && counts[j] === counts[i]) j++
    runs.push(j - i > 1 ? `${j - i} × ${counts[i]}` : String(counts[i]))
    i = j
  }
  return runs.join(' + ')
}

/** One node's row of a table: its node rank and host, and the cells of the other columns. */
export interface NodeRow {
  node: number
  host: string
  cells: readonly string[]
}

export interface FoldOptions {
  /** The fewest rows folded into one (default 3): two rows read as well as the one they would become. */
  minRun?: number
}

const sameCells = (a: readonly string[], b: readonly string[]): boolean =>
  a.length === b.length && a.every((c, i) => c === b[i])

/**
 * The rows of a table, in the order given, with every run of at least `minRun` neighbours that have
 * consecutive node numbers and the same other cells folded into one: its node cell `n3-n31 (29 nodes)`,
 * its host cell the run's hosts compressed (`gpu[03-31]`, see compressHosts; a host that neighbouring
 * nodes share is named once). Other rows are `n<node>`, host, cells. Ready for alignColumns, a
 * header row put before them.
 */
export function foldRows(rows: readonly NodeRow[], options: FoldOptions = {}): string[][] {
  const minRun = options.minRun ?? 3
  if (!Number.isInteger(minRun) || minRun < 2)
    throw new RangeError(`minRun must be an integer of at least 2, got ${minRun}`)
  const out: string[][] = []
  for (let i = 0; i < rows.length;) {
    const first = rows[i] as NodeRow
    let j = i + 1
    while (
      j < rows.length &&
      (rows[j] as NodeRow).node === (rows[j - 1] as NodeRow).node + 1 &&
      sameCells((rows[j] as NodeRow).cells, first.cells)
    )
      j++
    if (j - i >= minRun) {
      const run = rows.slice(i, j)
      const hosts = run.map((r) => r.host).filter((h, k, all) => k === 0 || h !== all[k - 1])
      out.push([
        `n${first.node}-n${(run[run.length - 1] as NodeRow).node} (${run.length} nodes)`,
        compressHosts(hosts),
        ...first.cells,
      ])
    } else for (const r of rows.slice(i, j)) out.push([`n${r.node}`, r.host, ...r.cells])
    i = j
  }
  return out
}
