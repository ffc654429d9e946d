import { describe, it, expect } from 'vitest'
import { parseArgs, type HostsOptions, type ParsedArgs } from '../../src/cli/dispatch.js'
import type { HostListOptions } from '../../src/hosts/hostsource.js'
import type { RunOptions } from '../../src/launch/options.js'
import type { FanoutError } from '../../src/errors.js'
import { refusal } from './refusal.js'

const CWD = '/home/me/proj'
const SLURM = { SLURM_JOB_NODELIST: 'n[1-4]' }

async function parsed(argv: string[], env: Record<string, string> = {}): Promise<ParsedArgs> {
  return parseArgs(argv, CWD, 100, env)
}

async function run(argv: string[], env: Record<string, string> = {}): Promise<RunOptions> {
  const p = await parsed(argv, env)
  if (p.kind !== 'run') throw new Error(`expected a run, got ${p.kind}`)
  return p.options
}

async function hosts(argv: string[], env: Record<string, string> = {}): Promise<HostsOptions> {
  const p = await parsed(argv, env)
  if (p.kind !== 'hosts') throw new Error(`expected hosts, got ${p.kind}`)
  return p.options
}

const refused = (argv: string[], env: Record<string, string> = {}): Promise<FanoutError> =>
  refusal(() => parsed(argv, env), 'USAGE')

const HOST_KEYS = ['hostfile', 'hosts', 'include', 'exclude', 'numNodes', 'numGpus'] as const
const hostPart = (o: HostListOptions | HostsOptions): Record<string, unknown> =>
  Object.fromEntries(HOST_KEYS.filter((k) => k in o).map((k) => [k, o[k]]))

describe('parseArgs: host list and selection flags', () => {
  it.each<[string, string[], Record<string, string>, Record<string, unknown>]>([
    ['--hostfile, resolved', ['--hostfile', 'h.txt'], {}, { hostfile: '/home/me/proj/h.txt' }],
    ['--hostfile - is stdin', ['--hostfile', '-'], {}, { hostfile: '-' }],
    ['-H - is stdin', ['-H', '-'], {}, { hostfile: '-' }],
    ['--hostfile=- is stdin', ['--hostfile=-'], {}, { hostfile: '-' }],
    ['-H - then more flags', ['-H', '-', '--include', 'a', '-n'], {}, { hostfile: '-', include: 'a' }],
    ['--hostfile - then more flags', ['--hostfile', '-', '--include', 'a', '-n'], {}, { hostfile: '-', include: 'a' }],
    ['--hosts', ['--hosts', 'a,gpu[1-3,7]'], {}, { hosts: 'a,gpu[1-3,7]' }],
    ['--include', ['-H', 'h', '--include', 'w0@w1:0,2'], {}, { hostfile: '/home/me/proj/h', include: 'w0@w1:0,2' }],
    ['--exclude=', ['-H', 'h', '--exclude=w1:0'], {}, { hostfile: '/home/me/proj/h', exclude: 'w1:0' }],
    [
      '--num-nodes and --num-gpus',
      ['-H', 'h', '--num-nodes', '2', '--num-gpus', '4'],
      {},
      { hostfile: '/home/me/proj/h', numNodes: 2, numGpus: 4 },
    ],
    ['neither flag inside a SLURM allocation', ['--num-nodes', '2'], SLURM, { numNodes: 2 }],
  ])('%s', async (_name, flags, env, expected) => {
    expect(hostPart((await run([...flags, 'train.py'], env)).hosts)).toEqual(expected)
  })

  it("a lone - after the script is the script's", async () => {
    const o = await run(['-H', 'h', 'train.py', '-H', '-'])
    expect(o.hosts.hostfile).toBe('/home/me/proj/h')
    expect(o.job.scriptArgs).toEqual(['-H', '-'])
  })

  it.each<[string, string[], Record<string, string>, RegExp]>([
    [
      '--hostfile with --hosts',
      ['--hostfile', 'a', '--hosts', 'b', 'train.py'],
      {},
      /^--hostfile and --hosts cannot be used together$/,
    ],
    ['no host list and no SLURM allocation', ['train.py'], {}, /missing --hostfile FILE or --hosts LIST/],
    [
      'an empty SLURM node list does not count',
      ['train.py'],
      { SLURM_JOB_NODELIST: '' },
      /missing --hostfile FILE or --hosts LIST/,
    ],
    ['--hosts empty', ['--hosts', '', 'train.py'], {}, /--hosts needs a value/],
    ['--hostfile= then a lone -', ['--hostfile=', '-'], {}, /--hostfile needs a value/],
    [
      '--include twice',
      ['-H', 'h', '--include', 'a', '--include', 'b', 'train.py'],
      {},
      /--include was given more than once/,
    ],
    [
      '--num-nodes 0',
      ['-H', 'h', '--num-nodes', '0', 'train.py'],
      {},
      /--num-nodes must be a whole number from 1 to 65536/,
    ],
    [
      '--num-gpus x',
      ['-H', 'h', '--num-gpus', 'x', 'train.py'],
      {},
      /--num-gpus must be a whole number from 1 to 4096/,
    ],
    ['--num-gpus 4097', ['-H', 'h', '--num-gpus', '4097', 'train.py'], {}, /--num-gpus/],
  ])('%s', async (_name, argv, env, message) => {
    expect((await refused(argv, env)).message).toMatch(message)
  })
})

describe('parseArgs: fanout hosts', () => {
  it.each<[string, string[], Record<string, string>, HostsOptions]>([
    ['a hostfile', ['hosts', '-H', 'h.txt'], {}, { hostfile: '/home/me/proj/h.txt', json: false }],
    ['--json', ['hosts', '--hostfile', 'h.txt', '--json'], {}, { hostfile: '/home/me/proj/h.txt', json: true }],
    ['stdin', ['hosts', '-H', '-', '--json'], {}, { hostfile: '-', json: true }],
    ['stdin, long form', ['hosts', '--hostfile', '-', '--json'], {}, { hostfile: '-', json: true }],
    [
      '--hosts and every selection flag',
      [
        'hosts',
        '--hosts',
        'h[1-3]',
        '--include',
        'h1:1@h3',
        '--exclude',
        'h3:0',
        '--num-nodes',
        '2',
        '--num-gpus',
        '1',
      ],
      {},
      { hosts: 'h[1-3]', include: 'h1:1@h3', exclude: 'h3:0', numNodes: 2, numGpus: 1, json: false },
    ],
    ['SLURM', ['hosts', '--json'], SLURM, { json: true }],
  ])('%s', async (_name, argv, env, expected) => {
    expect(await hosts(argv, env)).toEqual(expected)
  })

  it.each<[string, string[], RegExp]>([
    [
      'a script word',
      ['hosts', '-H', 'h', 'train.py'],
      /fanout hosts takes no SCRIPT \(got "train.py"\); to run a script named hosts: fanout \[options\] -- hosts/,
    ],
    ['a run-only flag', ['hosts', '-H', 'h', '--nproc-per-node', '2'], /nproc-per-node/],
    ['no host list', ['hosts'], /missing --hostfile FILE or --hosts LIST/],
    ['both lists', ['hosts', '-H', 'a', '--hosts', 'b'], /cannot be used together/],
  ])('%s is refused', async (_name, argv, message) => {
    expect((await refused(argv)).message).toMatch(message)
  })

  it('hosts --help is its own', async () => {
    const p = await parsed(['hosts', '--help'])
    expect(p.kind).toBe('help')
    const text = p.kind === 'help' ? p.text : ''
    expect(text).toMatch(/^Usage: fanout hosts \[--hostfile FILE \| --hosts LIST\] \[selection\] \[--json\]/)
    for (const flag of ['--hostfile', '--hosts', '--include', '--exclude', '--num-nodes', '--num-gpus', '--json'])
      expect(text).toContain(flag)
    expect(text).not.toContain('--nproc-per-node')
  })

  it('the main --help names the hosts command and the new flags', async () => {
    const p = await parsed(['--help'])
    const text = p.kind === 'help' ? p.text : ''
    expect(text).toMatch(/^Usage: fanout --hostfile FILE \[options\] SCRIPT \[ARGS\.\.\.\]/)
    expect(text).toContain('fanout hosts [--hostfile FILE | --hosts LIST] [selection] [--json]')
    expect(text).toContain("fanout --hosts 'gpu[01-04]' train.py")
  })

  it.each<[string, string[], Record<string, string>]>([
    ['after a flag', ['-H', 'h', 'hosts', '--json'], {}],
    ['after --', ['-H', 'h', '--', 'hosts', '--json'], {}],
    ['after -- in a SLURM allocation', ['--', 'hosts', '--json'], SLURM],
  ])('a script named hosts runs when hosts is not the first word: %s', async (_name, argv, env) => {
    const o = await run(argv, env)
    expect(o.job.script).toBe('hosts')
    expect(o.job.scriptArgs).toEqual(['--json'])
  })
})
