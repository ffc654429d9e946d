/** Lines of a plain-text table: each column as wide as its widest cell, two spaces between columns. */
export function alignColumns(rows: readonly string[][]): string[] {
  const widths: number[] = []
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)))
  return rows.map((cells) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd(),
  )
}

/** Sorted, distinct numbers with consecutive runs collapsed: `0-3,8` (`n0-n3,n8` with `name: (r) => \`n${r}\``). */
export function collapseRuns(numbers: readonly number[], name: (n: number) => string = String): string {
  const sorted = [...new Set(numbers)].sort((a, b) => a - b)
  const runs: string[] = []
  for (let i = 0; i < sorted.length;) {
    let j = i
    while (j + 1 < sorted.length && sorted[j + 1] === (sorted[j] as number) + 1) j++
    runs.push(i === j ? name(sorted[i] as number) : `${name(sorted[i] as number)}-${name(sorted[j] as number)}`)
    i = j + 1
  }
  return runs.join(',')
}
