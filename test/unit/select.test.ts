import { describe, it, expect } from 'vitest'
import type { FanoutError } from '../../src/errors.js'
import type { HostEntry } from '../../src/hosts/hostfile.js'
import { selectHosts, type Selection } from '../../src/hosts/select.js'
import { refusal } from './refusal.js'

const entry = (spec: string): HostEntry => {
  const [host = '', slots] = spec.split('=')
  return slots === undefined ? { host, where: 'f:1' } : { host, slots: Number(slots), where: 'f:1' }
}
const list = (...specs: string[]): HostEntry[] => specs.map(entry)

/** `host`, `host=slots` or `host=slots:gpu,gpu`: one node of the result, compactly. */
const show = (hosts: HostEntry[]): string[] =>
  hosts.map((h) => `${h.host}${h.slots === undefined ? '' : `=${h.slots}`}${h.gpus ? `:${h.gpus.join(',')}` : ''}`)

const refused = (hosts: HostEntry[], selection: Selection): Promise<FanoutError> =>
  refusal(() => selectHosts(hosts, selection), 'USAGE')

// DeepSpeed's own examples (docs and tests/unit/launcher/test_run.py), on 4-slot workers.
const W1 = list('worker-0=4')
const W2 = list('worker-0=4', 'worker-1=4')

describe("selectHosts: DeepSpeed's documented examples", () => {
  it.each<[string, HostEntry[], Selection, string[]]>([
    ['no filter', W2, {}, ['worker-0=4', 'worker-1=4']],
    [
      '-i "worker-0@worker-1:0,2": all of worker-0, slots 0 and 2 of worker-1',
      W2,
      { include: 'worker-0@worker-1:0,2' },
      ['worker-0=4', 'worker-1=2:0,2'],
    ],
    ['-e "worker-1:0": all but slot 0 of worker-1', W2, { exclude: 'worker-1:0' }, ['worker-0=4', 'worker-1=3:1,2,3']],
    ['exclude one slot', W1, { exclude: 'worker-0:1' }, ['worker-0=3:0,2,3']],
    ['exclude two slots', W1, { exclude: 'worker-0:1,2' }, ['worker-0=2:0,3']],
    ['include one slot', W1, { include: 'worker-0:1' }, ['worker-0=1:1']],
    ['a slot included twice', W1, { include: 'worker-0:1,1' }, ['worker-0=1:1']],
    ['a host included twice merges its slots', W1, { include: 'worker-0:1@worker-0:0,1' }, ['worker-0=2:0,1']],
    ['a bare host includes all of it', W1, { include: 'worker-0' }, ['worker-0=4']],
    ['include a node with slots', W2, { include: 'worker-1:0,3' }, ['worker-1=2:0,3']],
    ['exclude a node', W2, { exclude: 'worker-1' }, ['worker-0=4']],
    ['exclude part of each node', W2, { exclude: 'worker-0:0,1@worker-1:3' }, ['worker-0=2:2,3', 'worker-1=3:0,1,2']],
    [
      'docs: --exclude="worker-2:0@worker-3:0,1"',
      list('worker-2=4', 'worker-3=4'),
      { exclude: 'worker-2:0@worker-3:0,1' },
      ['worker-2=3:1,2,3', 'worker-3=2:2,3'],
    ],
    [
      'docs: --include="worker-2:0,1"',
      list('worker-2=4', 'worker-3=4'),
      { include: 'worker-2:0,1' },
      ['worker-2=2:0,1'],
    ],
  ])('%s', (_name, hosts, selection, expected) => {
    expect(show(selectHosts(hosts, selection))).toEqual(expected)
  })

  it.each<[string, HostEntry[], Selection, RegExp]>([
    ['unknown host in --include', W2, { include: 'jeff' }, /^--include: unknown host jeff \(not in the host list\)$/],
    ['unknown host in --exclude', W2, { exclude: 'jeff' }, /^--exclude: unknown host jeff/],
    [
      'unknown slot in --include',
      W2,
      { include: 'worker-1:4' },
      /^--include: worker-1 has no GPU 4 \(its GPUs: 0,1,2,3\)$/,
    ],
    ['unknown slot in --exclude', W2, { exclude: 'worker-1:4' }, /^--exclude: worker-1 has no GPU 4/],
    ['formatting: a bare number is a host', W2, { exclude: 'worker-1@worker-0:1@5' }, /unknown host 5/],
    ['excluding a whole node leaves nothing', W1, { exclude: 'worker-0' }, /^no hosts left/],
    ['excluding every slot leaves nothing', W1, { exclude: 'worker-0:0,1,2,3' }, /^no hosts left/],
  ])('%s', async (_name, hosts, selection, message) => {
    expect((await refused(hosts, selection)).message).toMatch(message)
  })
})

describe('selectHosts: fixed and extended', () => {
  const H = list('h1=2', 'h2=2', 'h3=2')

  it.each<[string, HostEntry[], Selection, string[]]>([
    // DeepSpeed#6671: a bare host beside one with slots kept only the slotted one.
    ['a bare host beside one with GPUs keeps the whole host', H, { include: 'h1:1@h3' }, ['h1=1:1', 'h3=2']],
    ['a bare host and the same host with GPUs: the whole host', H, { include: 'h2:0@h2' }, ['h2=2']],
    ['the same, the other way round', H, { include: 'h2@h2:0' }, ['h2=2']],
    ['ranks follow the host list, not the filter', H, { include: 'h3@h1' }, ['h1=2', 'h3=2']],
    ['host ranges in a filter', H, { include: 'h[1-2]:1' }, ['h1=1:1', 'h2=1:1']],
    ['GPU ranges in a filter', list('a=8'), { include: 'a:0-2,6' }, ['a=4:0,1,2,6']],
    ['GPU indices are sorted and deduplicated', list('a=8'), { include: 'a:3,1,3' }, ['a=2:1,3']],
    ['host names match whatever their case', H, { exclude: 'H2' }, ['h1=2', 'h3=2']],
    ['spaces around filters are ignored', H, { include: ' h1 @ h2 ' }, ['h1=2', 'h2=2']],
    ['include with GPUs on a host of unknown size: taken as given', list('a', 'b'), { include: 'a:5' }, ['a=1:5']],
    ['exclude a whole host of unknown size', list('a', 'b'), { exclude: 'a' }, ['b']],
    ['include, then exclude', H, { include: 'h1@h2', exclude: 'h2:0' }, ['h1=2', 'h2=1:1']],
    ['exclude acts on what include chose', list('a=4'), { include: 'a:1,2', exclude: 'a:1' }, ['a=1:2']],
    [
      'excluding what include left out is no mistake',
      list('a=4', 'b'),
      { include: 'a:0,1', exclude: 'a:2@b' },
      ['a=2:0,1'],
    ],
    ['--num-nodes: the first N', H, { numNodes: 2 }, ['h1=2', 'h2=2']],
    ['--num-nodes after --exclude', H, { exclude: 'h1', numNodes: 1 }, ['h2=2']],
    ['--num-nodes all of them', H, { numNodes: 3 }, ['h1=2', 'h2=2', 'h3=2']],
    ['--num-gpus: the first N of each node', list('a=4', 'b=2'), { numGpus: 2 }, ['a=2:0,1', 'b=2:0,1']],
    ['--num-gpus after --exclude: the first N left', list('a=4'), { exclude: 'a:0', numGpus: 2 }, ['a=2:1,2']],
    ['--num-gpus on hosts of unknown size: 0..N-1', list('a', 'b'), { numGpus: 2 }, ['a=2:0,1', 'b=2:0,1']],
    ['--num-nodes and --num-gpus', H, { numNodes: 1, numGpus: 1 }, ['h1=1:0']],
    [
      'IPv6 hosts are bracketed in a filter',
      [{ host: 'fe80::1', slots: 2, where: 'f:1' }, entry('b')],
      { include: '[fe80::1]:1' },
      ['fe80::1=1:1'],
    ],
  ])('%s', (_name, hosts, selection, expected) => {
    expect(show(selectHosts(hosts, selection))).toEqual(expected)
  })

  it('keeps user, port and where; a host on two ports is matched by name on both', () => {
    const hosts: HostEntry[] = [
      { host: 'a', user: 'u', port: 2222, slots: 2, where: 'f:1' },
      { host: 'a', port: 2223, where: 'f:2' },
      { host: 'b', where: 'f:3' },
    ]
    expect(selectHosts(hosts, { include: 'a' })).toEqual(hosts.slice(0, 2))
    expect(selectHosts(hosts, { include: 'a:1', exclude: 'b' })).toEqual([
      { host: 'a', user: 'u', port: 2222, slots: 1, gpus: [1], where: 'f:1' },
      { host: 'a', port: 2223, slots: 1, gpus: [1], where: 'f:2' },
    ])
  })

  it('does not change its input', () => {
    const hosts = list('a=4')
    selectHosts(hosts, { exclude: 'a:0' })
    expect(hosts).toEqual(list('a=4'))
  })

  it.each<[string, HostEntry[], Selection, string]>([
    [
      'unknown hosts of a range, compressed',
      H,
      { include: 'h[1-5]' },
      '--include: unknown hosts h[4-5] (not in the host list)',
    ],
    [
      'an unknown GPU index, naming the host',
      H,
      { include: 'h1:0@h2:2' },
      '--include: h2 has no GPU 2 (its GPUs: 0,1)',
    ],
    ['several unknown GPU indices', H, { exclude: 'h1:2,3,0' }, '--exclude: h1 has no GPU 2,3 (its GPUs: 0,1)'],
    [
      'excluding a GPU of a host whose GPU count is unknown',
      list('a', 'b'),
      { exclude: 'a:0' },
      '--exclude: cannot exclude GPU 0 of a: its GPU count is unknown (give it slots=N in the host list)',
    ],
    ['an empty filter', H, { include: '' }, '--include: empty host name in ""'],
    ['an empty host between @', H, { include: 'h1@@h2' }, '--include: empty host name in "h1@@h2"'],
    ['a trailing @', H, { exclude: 'h1@' }, '--exclude: empty host name in "h1@"'],
    // Regression: each empty name of `@` was reported, the same line twice.
    ['only @', H, { include: '@' }, '--include: empty host name in "@"'],
    ['a colon without GPUs', H, { include: 'h1:' }, '--include: invalid GPU list in "h1:": no GPU index after ":"'],
    [
      'a GPU index that is not a number',
      H,
      { include: 'h1:x' },
      '--include: invalid GPU list in "h1:x": "x" is not N or N-M',
    ],
    ['a negative GPU index', H, { include: 'h1:-1' }, '--include: invalid GPU list in "h1:-1": "-1" is not N or N-M'],
    ['a reversed GPU range', H, { include: 'h1:3-1' }, '--include: invalid GPU list in "h1:3-1": "3-1" runs backwards'],
    [
      'a GPU index past 4095',
      list('a'),
      { include: 'a:4096' },
      '--include: invalid GPU list in "a:4096": GPU indices go up to 4095',
    ],
    ['a bad host range', H, { include: 'h[3-1]' }, '--include: invalid host range "h[3-1]": "3-1" runs backwards'],
    ['--num-nodes above the count', H, { numNodes: 4 }, '--num-nodes 4: only 3 node(s) to choose from'],
    [
      '--num-nodes above what --include left',
      H,
      { include: 'h1', numNodes: 2 },
      '--num-nodes 2: only 1 node(s) to choose from',
    ],
    ["--num-gpus above a node's GPUs", list('a=4', 'b=2'), { numGpus: 3 }, '--num-gpus 3: b has only 2 GPU(s) (0,1)'],
    [
      'include and exclude of the same whole host',
      H,
      { include: 'h1', exclude: 'h1' },
      'no hosts left after --include/--exclude',
    ],
  ])('%s', async (_name, hosts, selection, message) => {
    expect((await refused(hosts, selection)).message).toBe(message)
  })

  it('reports every problem of both filters at once', async () => {
    expect((await refused(H, { include: 'h1:7@nope', exclude: 'h2:9' })).message.split('\n')).toEqual([
      '--include: unknown host nope (not in the host list)',
      '--include: h1 has no GPU 7 (its GPUs: 0,1)',
      '--exclude: h2 has no GPU 9 (its GPUs: 0,1)',
    ])
  })
})
