import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { HostEntry } from '../../src/hosts/hostfile.js'
import { loadHosts, readHostfile, resolveHostList, slurmHosts, type SourceIo } from '../../src/hosts/hostsource.js'
import { refusal } from './refusal.js'

let dir = ''
beforeAll(() => void (dir = mkdtempSync(join(tmpdir(), 'fanout-hostsource-'))))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const file = (name: string, content: string | Buffer): string => {
  const path = join(dir, name)
  writeFileSync(path, content)
  return path
}

/** An io whose stdin holds `stdin` and records how much it was asked for. */
function io(env: Record<string, string> = {}, stdin: string | Buffer = ''): SourceIo & { asked: number[] } {
  const asked: number[] = []
  return { env, asked, readStdin: async (max) => (asked.push(max), Buffer.from(stdin)) }
}

const names = (hosts: HostEntry[]): string[] =>
  hosts.map((h) => `${h.host}${h.slots === undefined ? '' : `=${h.slots}`}`)

describe('readHostfile', () => {
  it('reads and parses a file', () => {
    const path = file('ok', 'a slots=2\nb[1-2]\n')
    expect(readHostfile(path).hosts.map((h) => `${h.host}@${h.where}`)).toEqual([
      `a@${path}:1`,
      `b1@${path}:2`,
      `b2@${path}:2`,
    ])
  })

  it.each<[string, () => string, RegExp]>([
    ['missing', () => join(dir, 'nope'), /nope: cannot read hostfile: no such file$/],
    ['a directory', () => dir, /: is a directory, not a hostfile$/],
    [
      'over 8 MiB (not read)',
      () => {
        const path = file('huge', '')
        truncateSync(path, 1024 * 1024 * 1024) // sparse: refused by its size, before reading
        return path
      },
      /huge: too large for a hostfile \(over 8388608 bytes\)$/,
    ],
    ['a device that never ends', () => '/dev/zero', /^\/dev\/zero: too large for a hostfile/],
    [
      'not UTF-8',
      () => file('latin1', Buffer.from([0x6e, 0x6f, 0x64, 0xe9, 0x0a])),
      /latin1: not a text file \(not UTF-8\)$/,
    ],
    [
      'binary with NUL bytes',
      () => file('elf', Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0, 0, 0x0a])),
      /elf:1: not a text file \(contains NUL bytes\)$/,
    ],
    ['empty', () => file('empty', ''), /empty: no hosts/],
  ])('%s → HOSTFILE error naming the file', async (_name, path, message) => {
    const e = await refusal(() => readHostfile(path()))
    expect(e.code).toBe('HOSTFILE')
    expect(e.exitCode).toBe(2)
    expect(e.message).toMatch(message)
  })
})

describe('slurmHosts', () => {
  it.each<[string, Record<string, string>, string[] | undefined]>([
    ['outside an allocation', {}, undefined],
    ['an empty node list', { SLURM_JOB_NODELIST: ' ' }, undefined],
    [
      'the compressed node list, GPUs left to the probe',
      { SLURM_JOB_NODELIST: 'node[001-004,010]' },
      ['node001', 'node002', 'node003', 'node004', 'node010'],
    ],
    ['several groups', { SLURM_JOB_NODELIST: 'gpu[1-2],login1' }, ['gpu1', 'gpu2', 'login1']],
    ['SLURM_GPUS_ON_NODE as slots', { SLURM_JOB_NODELIST: 'n[1-2]', SLURM_GPUS_ON_NODE: '4' }, ['n1=4', 'n2=4']],
    ['SLURM_JOB_GPUS counted', { SLURM_JOB_NODELIST: 'n[1-2]', SLURM_JOB_GPUS: '0,1,2' }, ['n1=3', 'n2=3']],
    [
      'SLURM_GPUS_ON_NODE wins',
      { SLURM_JOB_NODELIST: 'n1', SLURM_GPUS_ON_NODE: '2', SLURM_JOB_GPUS: '0,1,2,3' },
      ['n1=2'],
    ],
    ['no GPUs on the node: the probe decides', { SLURM_JOB_NODELIST: 'n1', SLURM_GPUS_ON_NODE: '0' }, ['n1']],
  ])('%s', (_name, env, expected) => {
    const parsed = slurmHosts(env)
    expect(parsed && names(parsed.hosts)).toEqual(expected)
  })

  it("through srun (a job id to reach the nodes by), each node's probe counts its GPUs: no slots from here", async () => {
    const env = { SLURM_JOB_NODELIST: 'n[1-2]', SLURM_GPUS_ON_NODE: '4', SLURM_JOB_ID: '7' }
    expect(names(slurmHosts(env, false)?.hosts ?? [])).toEqual(['n1', 'n2'])
    const io = { env, readStdin: async () => Buffer.alloc(0) }
    expect(names((await loadHosts({ slurmJobId: '7' }, io)).hosts)).toEqual(['n1', 'n2'])
    expect(names((await loadHosts({}, io)).hosts)).toEqual(['n1=4', 'n2=4'])
  })

  it('entries name SLURM_JOB_NODELIST; a GPU count that is not one is a warning', () => {
    const parsed = slurmHosts({ SLURM_JOB_NODELIST: 'n[1-2]', SLURM_GPUS_ON_NODE: 'gpu:2', SLURM_JOB_GPUS: '0' })
    expect(parsed?.hosts[1]).toEqual({ host: 'n2', slots: 1, where: 'SLURM_JOB_NODELIST:1' })
    expect(parsed?.warnings).toEqual(['ignoring SLURM_GPUS_ON_NODE="gpu:2" (not a GPU count)'])
  })
})

describe('loadHosts: one source', () => {
  const SLURM = { SLURM_JOB_NODELIST: 's[1-2]', SLURM_GPUS_ON_NODE: '8' }

  it.each<[string, () => Parameters<typeof loadHosts>[0], Record<string, string>, string[]]>([
    ['--hosts', () => ({ hosts: 'a,b[1-2]' }), {}, ['a', 'b1', 'b2']],
    ['--hostfile', () => ({ hostfile: file('h', 'x slots=2\n') }), {}, ['x=2']],
    ['SLURM, with neither flag', () => ({}), SLURM, ['s1=8', 's2=8']],
    ['--hosts beats SLURM', () => ({ hosts: 'a' }), SLURM, ['a']],
    ['--hostfile beats SLURM', () => ({ hostfile: file('h', 'x\n') }), SLURM, ['x']],
  ])('%s', async (_name, source, env, expected) => {
    expect(names((await loadHosts(source(), io(env))).hosts)).toEqual(expected)
  })

  it('--hostfile - reads stdin, asking for at most 8 MiB', async () => {
    const stdin = io({}, '# from a pipe\nu@a:22 slots=1\nb\n')
    const { hosts } = await loadHosts({ hostfile: '-' }, stdin)
    expect(hosts).toEqual([
      { host: 'a', user: 'u', port: 22, slots: 1, where: '<stdin>:2' },
      { host: 'b', where: '<stdin>:3' },
    ])
    expect(stdin.asked).toEqual([8 * 1024 * 1024])
  })

  it.each<[string, string | Buffer, RegExp]>([
    ['too much on stdin', Buffer.alloc(8 * 1024 * 1024 + 1, 0x61), /^<stdin>: too large for a hostfile/],
    ['binary on stdin', Buffer.from([0xff, 0xfe, 0x0a]), /^<stdin>: not a text file \(not UTF-8\)$/],
    ['nothing on stdin', '', /^<stdin>: no hosts/],
    ['a bad line on stdin', 'a\nb:0\n', /^<stdin>:2: invalid port "0"/],
  ])('%s', async (_name, stdin, message) => {
    const e = await refusal(() => loadHosts({ hostfile: '-' }, io({}, stdin)))
    expect(e.code).toBe('HOSTFILE')
    expect(e.message).toMatch(message)
  })

  it('no source at all is a USAGE error naming both flags', async () => {
    const e = await refusal(() => loadHosts({}, io({ SLURM_JOB_ID: '1' })))
    expect(e.code).toBe('USAGE')
    expect(e.message).toMatch(/--hostfile FILE or --hosts LIST/)
  })
})

describe('resolveHostList', () => {
  it('applies the selection to the list, keeping the warnings', async () => {
    const path = file('sel', 'h[1-3] slots=2 max_slots=4\n')
    const { hosts, warnings } = await resolveHostList({ hostfile: path, include: 'h1:1@h3' }, io())
    expect(hosts).toEqual([
      { host: 'h1', slots: 1, gpus: [1], where: `${path}:1` },
      { host: 'h3', slots: 2, where: `${path}:1` },
    ])
    expect(warnings).toEqual([`${path}:1: ignoring "max_slots=4"`])
  })

  it('selects from a SLURM allocation too', async () => {
    const { hosts } = await resolveHostList(
      { exclude: 'n2:0', numNodes: 2 },
      io({ SLURM_JOB_NODELIST: 'n[1-3]', SLURM_JOB_GPUS: '0,1' }),
    )
    expect(hosts.map((h) => [h.host, h.gpus])).toEqual([
      ['n1', undefined],
      ['n2', [1]],
    ])
  })
})
