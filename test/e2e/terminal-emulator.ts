/**
 * Just enough of a terminal to tell what a transcript leaves on the screen: printable text, \r, \n,
 * cursor up/down/column, erase in line and erase below, with every other escape sequence ignored.
 * Returns every row ever scrolled past, as a terminal with unlimited scrollback would show it.
 */
export function renderTerminal(transcript: string): string[] {
  const rows: string[] = ['']
  let row = 0
  let col = 0
  const put = (ch: string): void => {
    const line = rows[row] ?? ''
    rows[row] = line.padEnd(col).slice(0, col) + ch + line.slice(col + 1)
    col++
  }
  for (let i = 0; i < transcript.length; i++) {
    const ch = transcript[i] as string
    if (ch === '\x1b') {
      const csi = /^\x1b\[([?0-9;]*)([@-~])/.exec(transcript.slice(i, i + 16))
      if (csi) {
        const n = Number(csi[1] || 1)
        const cmd = csi[2]
        if (cmd === 'A') row = Math.max(0, row - n)
        else if (cmd === 'B') row += n
        else if (cmd === 'G') col = n - 1
        else if (cmd === 'K') rows[row] = csi[1] === '2' ? '' : (rows[row] ?? '').slice(0, col)
        else if (cmd === 'J') {
          rows[row] = (rows[row] ?? '').slice(0, col)
          rows.length = row + 1
        }
        i += csi[0].length - 1
        continue
      }
      const other = /^\x1b(?:\][^\x07]*\x07|[()][0-9A-Za-z]|.)/.exec(transcript.slice(i, i + 64))
      i += (other?.[0].length ?? 1) - 1
      continue
    }
    if (ch === '\r') col = 0
    else if (ch === '\n') {
      row++
      col = 0
    } else if (ch >= ' ') put(ch)
    while (rows.length <= row) rows.push('')
  }
  return rows.map((r) => r.trimEnd()).filter((r, i, all) => r !== '' || i < all.length - 1)
}
