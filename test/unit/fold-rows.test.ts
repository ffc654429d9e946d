import { describe, it, expect } from 'vitest'
import { foldRows, processCounts, type NodeRow } from '../../src/output/fold-rows.js'
import { expandHostList } from '../../src/hosts/hostrange.js'
import { alignColumns } from '../../src/output/table.js'

describe('processCounts', () => {
  it.each<[number[], string]>([
    [Array<number>(32).fill(1), '32 × 1'],
    [[2, 2, 2], '3 × 2'],
    [[2, 1, 3], '2 + 1 + 3'],
    [[8, 8, 4], '2 × 8 + 4'],
    [[4, 8, 8], '4 + 2 × 8'],
    [[8, 8], '2 × 8'],
    [[8], '8'],
    [[8, 4, 8], '8 + 4 + 8'], // only neighbours: the order of the nodes is kept
    [[8, 8, 4, 4, 4, 8], '2 × 8 + 3 × 4 + 8'],
    [[...Array<number>(255).fill(8), 4], '255 × 8 + 4'],
    [[0, 0], '2 × 0'],
    [[], '0'],
  ])('%j → %s', (counts, text) => {
    expect(processCounts(counts)).toBe(text)
  })
})

describe('foldRows', () => {
  const row = (node: number, cells: string[], host = `gpu${String(node).padStart(3, '0')}`): NodeRow => ({
    node,
    host,
    cells,
  })
  const OK = ['3.11.9', '2.5.1', '8', 'ok']

  it('256 rows, 2 of them different: five rows', () => {
    const rows = Array.from({ length: 256 }, (_v, i) =>
      row(i, i === 7 ? ['3.11.9', '2.5.1', '7', 'ok'] : i === 200 ? ['3.10.4', '2.5.1', '8', 'ok'] : OK),
    )
    expect(foldRows(rows)).toEqual([
      ['n0-n6 (7 nodes)', 'gpu[000-006]', ...OK],
      ['n7', 'gpu007', '3.11.9', '2.5.1', '7', 'ok'],
      ['n8-n199 (192 nodes)', 'gpu[008-199]', ...OK],
      ['n200', 'gpu200', '3.10.4', '2.5.1', '8', 'ok'],
      ['n201-n255 (55 nodes)', 'gpu[201-255]', ...OK],
    ])
  })

  it('all the same: one row', () => {
    const rows = Array.from({ length: 32 }, (_v, i) => row(i, OK))
    expect(foldRows(rows)).toEqual([['n0-n31 (32 nodes)', 'gpu[000-031]', ...OK]])
  })

  it('runs of 2 stay as they are; 3 fold', () => {
    const rows = [row(0, OK), row(1, OK), row(2, ['x']), row(3, OK), row(4, OK), row(5, OK)]
    expect(foldRows(rows)).toEqual([
      ['n0', 'gpu000', ...OK],
      ['n1', 'gpu001', ...OK],
      ['n2', 'gpu002', 'x'],
      ['n3-n5 (3 nodes)', 'gpu[003-005]', ...OK],
    ])
  })

  it('the node numbers must be consecutive: a gap ends a run', () => {
    const rows = [0, 1, 2, 5, 6, 7, 9, 10].map((n) => row(n, OK))
    expect(foldRows(rows).map((r) => r.slice(0, 2))).toEqual([
      ['n0-n2 (3 nodes)', 'gpu[000-002]'],
      ['n5-n7 (3 nodes)', 'gpu[005-007]'],
      ['n9', 'gpu009'],
      ['n10', 'gpu010'],
    ])
  })

  it('rows out of node order do not fold (consecutive means ascending by one)', () => {
    const rows = [2, 1, 0].map((n) => row(n, OK))
    expect(foldRows(rows).map((r) => r[0])).toEqual(['n2', 'n1', 'n0'])
  })

  it('only the other cells decide: hosts may differ, and are compressed back to a list that expands to them', () => {
    const hosts = ['a01', 'a02', 'a03', 'b7', 'login', 'a05']
    const rows = hosts.map((h, i) => row(i, OK, h))
    const [folded] = foldRows(rows)
    expect(folded).toEqual(['n0-n5 (6 nodes)', 'a[01-03],b7,login,a05', ...OK])
    expect(expandHostList(folded![1]!)).toEqual(hosts)
  })

  it('a host that neighbouring nodes share is named once', () => {
    const rows = [0, 1, 2, 3].map((n) => row(n, OK, n < 2 ? 'big' : 'box1'))
    expect(foldRows(rows)[0]?.slice(0, 2)).toEqual(['n0-n3 (4 nodes)', 'big,box1'])
    expect(foldRows([0, 1, 2].map((n) => row(n, OK, 'localhost')))[0]?.slice(0, 2)).toEqual([
      'n0-n2 (3 nodes)',
      'localhost',
    ])
  })

  it('cells must be equal one by one, their number too', () => {
    const rows = [row(0, ['a', 'b']), row(1, ['a', 'b']), row(2, ['a', 'b', '']), row(3, ['ab']), row(4, ['a', 'b'])]
    expect(foldRows(rows).map((r) => r[0])).toEqual(['n0', 'n1', 'n2', 'n3', 'n4'])
  })

  it('minRun', () => {
    const rows = [row(0, OK), row(1, OK), row(2, ['x']), row(3, OK), row(4, OK), row(5, OK)]
    expect(foldRows(rows, { minRun: 2 }).map((r) => r[0])).toEqual(['n0-n1 (2 nodes)', 'n2', 'n3-n5 (3 nodes)'])
    expect(foldRows(rows, { minRun: 4 }).map((r) => r[0])).toEqual(['n0', 'n1', 'n2', 'n3', 'n4', 'n5'])
    for (const minRun of [1, 0, 2.5, Number.NaN]) expect(() => foldRows(rows, { minRun })).toThrow(RangeError)
  })

  it('no rows: none', () => {
    expect(foldRows([])).toEqual([])
  })

  it('ready for alignColumns under a header', () => {
    const rows = Array.from({ length: 40 }, (_v, i) =>
      row(i, i === 2 ? ['3.11.9', '-', '8', 'torch cannot be imported'] : OK),
    )
    const table = alignColumns([['node', 'host', 'python', 'torch', 'gpus', 'pre-flight'], ...foldRows(rows)])
    expect(table).toEqual([
      'node               host          python  torch  gpus  pre-flight',
      'n0                 gpu000        3.11.9  2.5.1  8     ok',
      'n1                 gpu001        3.11.9  2.5.1  8     ok',
      'n2                 gpu002        3.11.9  -      8     torch cannot be imported',
      'n3-n39 (37 nodes)  gpu[003-039]  3.11.9  2.5.1  8     ok',
    ])
  })
})
