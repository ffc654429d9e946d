/** Lines of a plain-text table: each column as wide as its widest cell, two spaces between columns. */
export function alignColumns(rows: readonly string[][]): string[] {
  const widths: number[] = []
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)))
  return rows.map((cells) => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd())
}
