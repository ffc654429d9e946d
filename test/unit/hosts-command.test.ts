import { describe, it, expect } from 'vitest'
import { PassThrough } from 'node:stream'
import type { HostEntry } from '../../src/hosts/hostfile.js'
import { formatHosts, hostRows, runHostsCommand, type HostRow } from '../../src/cli/commands/hosts.js'

const HOSTS: HostEntry[] = [
  { host: 'gpu01', slots: 1, gpus: [1], where: 'f:1' },
  { host: 'fe80::1', user: 'alice', port: 2222, where: 'f:2' },
  { host: 'gpu03', slots: 8, where: 'f:3' },
]

describe('fanout hosts: formats', () => {
  it('rows: every key present, null where unknown', () => {
    expect(hostRows(HOSTS)).toEqual([
      { rank: 0, host: 'gpu01', user: null, port: null, slots: 1, gpus: [1] },
      { rank: 1, host: 'fe80::1', user: 'alice', port: 2222, slots: null, gpus: null },
      { rank: 2, host: 'gpu03', user: null, port: null, slots: 8, gpus: null },
    ] satisfies HostRow[])
  })

  it('--json: a JSON array of exactly those keys, in that order', () => {
    const parsed = JSON.parse(formatHosts(HOSTS, true)) as HostRow[]
    expect(parsed).toEqual(hostRows(HOSTS))
    for (const row of parsed) expect(Object.keys(row)).toEqual(['rank', 'host', 'user', 'port', 'slots', 'gpus'])
  })

  it('an empty list is an empty array', () => {
    expect(formatHosts([], true)).toBe('[]\n')
  })

  it('the table: aligned columns, - where unknown', () => {
    expect(formatHosts(HOSTS, false)).toBe(
      [
        'rank  host     user   port  slots  gpus',
        '0     gpu01    -      -     1      1',
        '1     fe80::1  alice  2222  -      -',
        '2     gpu03    -      -     8      -',
        '',
      ].join('\n'),
    )
  })

  it('the table shows several GPUs comma-separated', () => {
    expect(formatHosts([{ host: 'a', slots: 2, gpus: [0, 2], where: 'f:1' }], false).split('\n')[1]).toBe(
      '0     a     -     -     2      0,2',
    )
  })
})

describe('runHostsCommand', () => {
  const collect = (s: PassThrough): (() => string) => {
    let text = ''
    s.on('data', (b: Buffer) => (text += b.toString()))
    return () => text
  }

  it('prints the selection to stdout and the warnings to stderr', async () => {
    const stdout = new PassThrough()
    const stderr = new PassThrough()
    const [out, err] = [collect(stdout), collect(stderr)]
    const io = { stdout, stderr, env: {}, readStdin: async () => Buffer.from('h[1-3] slots=2 max_slots=2\n') }
    expect(await runHostsCommand({ hostfile: '-', include: 'h1:1@h3', json: true }, io)).toBe(0)
    expect(JSON.parse(out())).toEqual([
      { rank: 0, host: 'h1', user: null, port: null, slots: 1, gpus: [1] },
      { rank: 1, host: 'h3', user: null, port: null, slots: 2, gpus: null },
    ])
    expect(err()).toBe('fanout: warning: <stdin>:1: ignoring "max_slots=2"\n')
  })
})
