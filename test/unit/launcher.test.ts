import { describe, expect, it } from 'vitest'
import { FanoutError } from '../../src/errors.js'
import { launcherCommand, readLauncherOptions, splitWords, type LauncherOptions } from '../../src/launcher.js'
import { RANK_TAGGER } from '../../src/output/rank-tag.js'

const TORCHRUN: LauncherOptions = { kind: 'torchrun', module: false, noPython: false, useEnv: false, launcherArgs: [] }
const CTX = { python: 'py', nnodes: 3, nodeRank: 1, nproc: 2, masterAddr: '10.0.0.1', masterPort: 29500, runId: 'run1', script: 'train.py', scriptArgs: ['--x', 'a b'] }
const argv = (o: Partial<LauncherOptions>, ctx: Partial<typeof CTX> & { torchVersion?: string; monitorIntervalS?: number } = {}): string =>
  launcherCommand({ ...TORCHRUN, ...o }, { ...CTX, ...ctx }).argv.join(' ')

describe('launcherCommand', () => {
  it.each<[string, Partial<LauncherOptions>, Record<string, unknown>, string]>([
    ['torchrun, torch 1.x: underscores', {}, { torchVersion: '1.13.1' }, 'py -m torch.distributed.run --nnodes=3 --node_rank=1 --nproc_per_node=2 --master_addr=10.0.0.1 --master_port=29500 train.py --x a b'],
    ['torchrun, torch 2.x: dashes', {}, { torchVersion: '2.4.0+cu121' }, 'py -m torch.distributed.run --nnodes=3 --node-rank=1 --nproc-per-node=2 --master-addr=10.0.0.1 --master-port=29500 train.py --x a b'],
    ['unknown version: underscores (both accept them)', {}, {}, 'py -m torch.distributed.run --nnodes=3 --node_rank=1 --nproc_per_node=2 --master_addr=10.0.0.1 --master_port=29500 train.py --x a b'],
    ['monitor interval', {}, { monitorIntervalS: 0.25 }, 'py -m torch.distributed.run --nnodes=3 --node_rank=1 --nproc_per_node=2 --master_addr=10.0.0.1 --master_port=29500 --monitor_interval=0.25 train.py --x a b'],
    ['legacy launch', { kind: 'launch' }, {}, 'py -m torch.distributed.launch --nnodes=3 --node_rank=1 --nproc_per_node=2 --master_addr=10.0.0.1 --master_port=29500 train.py --x a b'],
    ['legacy launch --use-env', { kind: 'launch', useEnv: true }, {}, 'py -m torch.distributed.launch --nnodes=3 --node_rank=1 --nproc_per_node=2 --master_addr=10.0.0.1 --master_port=29500 --use_env train.py --x a b'],
    ['module', { module: true }, {}, 'py -m torch.distributed.run --nnodes=3 --node_rank=1 --nproc_per_node=2 --master_addr=10.0.0.1 --master_port=29500 --module train.py --x a b'],
    ['no python, restarts, raw args', { noPython: true, maxRestarts: 2, launcherArgs: ['--log_dir', '/tmp/l'] }, {}, 'py -m torch.distributed.run --nnodes=3 --node_rank=1 --nproc_per_node=2 --master_addr=10.0.0.1 --master_port=29500 --max_restarts=2 --no_python --log_dir /tmp/l train.py --x a b'],
    ['c10d: endpoint and run id, no node rank', { rdzvBackend: 'c10d' }, {}, 'py -m torch.distributed.run --nnodes=3 --nproc_per_node=2 --rdzv_backend=c10d --rdzv_endpoint=10.0.0.1:29500 --rdzv_id=run1 --rdzv_conf=is_host=false train.py --x a b'],
    ['c10d over IPv6', { rdzvBackend: 'c10d' }, { masterAddr: 'fd00::1' }, 'py -m torch.distributed.run --nnodes=3 --nproc_per_node=2 --rdzv_backend=c10d --rdzv_endpoint=[fd00::1]:29500 --rdzv_id=run1 --rdzv_conf=is_host=false train.py --x a b'],
    ['none: the command itself', { kind: 'none' }, {}, 'train.py --x a b'],
  ])('%s', (_name, o, ctx, expected) => expect(argv(o, ctx)).toBe(expected))

  // With rank tags the launcher runs the tagger (--no_python), which execs the worker as the launcher would have.
  const TAG = 'py -c <tagger>'
  it.each<[string, Partial<LauncherOptions>, Record<string, unknown>, string]>([
    ['torchrun: the script under python -u', {}, {}, `--master_port=29500 --no_python ${TAG} python -1  -- train.py --x a b`],
    ['torch 2 spelling', {}, { torchVersion: '2.1.0' }, `--master-port=29500 --no-python ${TAG} python -1  -- train.py --x a b`],
    ['-m: python -u -m MODULE', { module: true }, {}, `--master_port=29500 --no_python ${TAG} python -1  -- -m train.py --x a b`],
    ['--no-python: the executable itself', { noPython: true }, {}, `--master_port=29500 --no_python ${TAG} exec -1  -- train.py --x a b`],
    ['launch: --local_rank after the script, launch told --use_env', { kind: 'launch' }, {}, `--master_port=29500 --use_env --no_python ${TAG} python 1 --local_rank -- train.py --x a b`],
    ['launch, torch 2: --local-rank', { kind: 'launch' }, { torchVersion: '2.0.1' }, `--master-port=29500 --use-env --no-python ${TAG} python 1 --local-rank -- train.py --x a b`],
    ['launch -m: after the module name', { kind: 'launch', module: true }, {}, `--master_port=29500 --use_env --no_python ${TAG} python 2 --local_rank -- -m train.py --x a b`],
    ['launch --use-env: no flag inserted', { kind: 'launch', useEnv: true }, {}, `--master_port=29500 --use_env --no_python ${TAG} python -1  -- train.py --x a b`],
    ['launcher args before the tagger', { launcherArgs: ['--tee', '3'] }, {}, `--master_port=29500 --no_python --tee 3 ${TAG} python -1  -- train.py --x a b`],
  ])('rank tags, %s', (_name, o, ctx, tail) => {
    const words = launcherCommand({ ...TORCHRUN, ...o }, { ...CTX, ...ctx, rankTags: true }).argv.map((w) => (w === RANK_TAGGER ? '<tagger>' : w))
    const text = words.join(' ')
    expect(text.slice(text.search(/--master.port/))).toBe(tail)
  })

  it('none: rank and rendezvous in the environment', () => {
    expect(launcherCommand({ ...TORCHRUN, kind: 'none' }, CTX).env).toEqual({ NODE_RANK: '1', NNODES: '3', MASTER_ADDR: '10.0.0.1', MASTER_PORT: '29500', NPROC_PER_NODE: '2' })
  })
})

describe('readLauncherOptions', () => {
  it.each<[Record<string, unknown>, Partial<LauncherOptions>]>([
    [{}, TORCHRUN],
    [{ launcher: 'launch', 'use-env': true, 'no-python': true }, { kind: 'launch', useEnv: true, noPython: true }],
    [{ 'max-restarts': '3', 'rdzv-backend': 'c10d' }, { maxRestarts: 3, rdzvBackend: 'c10d' }],
    [{ 'launcher-args': `--log_dir '/tmp/a b' --tee=3` }, { launcherArgs: ['--log_dir', '/tmp/a b', '--tee=3'] }],
  ])('%j', (a, expected) => expect(readLauncherOptions(a)).toEqual({ ...TORCHRUN, ...expected }))

  it.each<[Record<string, unknown>, RegExp]>([
    [{ launcher: 'none', module: true }, /-m\/--module: only for --launcher torchrun or launch, not none/],
    [{ launcher: 'none', 'launcher-args': '--x' }, /--launcher-args: only for/],
    [{ module: true, 'no-python': true }, /exclude each other/],
    [{ 'use-env': true }, /--use-env is for --launcher launch/],
    [{ launcher: 'launch', 'no-python': true }, /needs --use-env/],
    [{ 'max-restarts': '-1' }, /--max-restarts must be a whole number/],
    [{ 'launcher-args': `'unterminated` }, /unterminated ' quote/],
  ])('%j is refused', (a, message) => {
    expect(() => readLauncherOptions(a)).toThrow(FanoutError)
    expect(() => readLauncherOptions(a)).toThrow(message)
  })
})

describe('splitWords', () => {
  it.each<[string, string[]]>([
    ['', []],
    ['  a  b ', ['a', 'b']],
    [`'a b' "c d" e\\ f`, ['a b', 'c d', 'e f']],
    [`"x \\"y\\" \\$z"`, ['x "y" $z']],
    [`a'b'"c"`, ['abc']],
    [`''`, ['']],
  ])('%j', (input, words) => expect(splitWords(input)).toEqual(words))
})
