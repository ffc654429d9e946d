import { describe, expect, it } from 'vitest'
import { FanoutError } from '../../src/errors.js'
import { execFileSync } from 'node:child_process'
import {
  checkCommandFits,
  commandFloor,
  escapeMacros,
  launcherCommand,
  type CommandFitInput,
  type LauncherOptions,
} from '../../src/plan/launcher.js'
import { readLauncherOptions, splitWords } from '../../src/cli/options/launcher.js'
import { RANK_TAGGER } from '../../src/node/rank-tag.js'
import type { JobEnv } from '../../src/plan/env.js'
import { planLaunch, type NodeFacts, type PlanNode, type PlanOptions } from '../../src/plan/plan.js'
import { jobCommandSize, MAX_COMMAND_BYTES } from '../../src/node/job.js'
import { probeCommandSize } from '../../src/node/probe.js'
import { mulberry32 } from './prng.js'

const TORCHRUN: LauncherOptions = { kind: 'torchrun', module: false, noPython: false, useEnv: false, launcherArgs: [] }
const CTX = {
  python: 'py',
  nnodes: 3,
  nodeRank: 1,
  nproc: 2,
  masterAddr: '10.0.0.1',
  masterPort: 29500,
  runId: 'run1',
  script: 'train.py',
  scriptArgs: ['--x', 'a b'],
}
const argv = (o: Partial<LauncherOptions>, ctx: Partial<typeof CTX> & { torchVersion?: string } = {}): string =>
  launcherCommand({ ...TORCHRUN, ...o }, { ...CTX, ...ctx }).argv.join(' ')

describe('launcherCommand', () => {
  it.each<[string, Partial<LauncherOptions>, Record<string, unknown>, string]>([
    [
      'torchrun, torch 1.x: underscores',
      {},
      { torchVersion: '1.13.1' },
      'py -m torch.distributed.run --nnodes=3 --node_rank=1 --nproc_per_node=2 --master_addr=10.0.0.1 --master_port=29500 train.py --x a b',
    ],
    [
      'torchrun, torch 2.x: dashes',
      {},
      { torchVersion: '2.4.0+cu121' },
      'py -m torch.distributed.run --nnodes=3 --node-rank=1 --nproc-per-node=2 --master-addr=10.0.0.1 --master-port=29500 train.py --x a b',
    ],
    [
      'unknown version: underscores (both accept them)',
      {},
      {},
      'py -m torch.distributed.run --nnodes=3 --node_rank=1 --nproc_per_node=2 --master_addr=10.0.0.1 --master_port=29500 train.py --x a b',
    ],
    [
      'monitor interval',
      { monitorIntervalS: 0.25 },
      {},
      'py -m torch.distributed.run --nnodes=3 --node_rank=1 --nproc_per_node=2 --master_addr=10.0.0.1 --master_port=29500 --monitor_interval=0.25 train.py --x a b',
    ],
    [
      'legacy launch',
      { kind: 'launch' },
      {},
      'py -m torch.distributed.launch --nnodes=3 --node_rank=1 --nproc_per_node=2 --master_addr=10.0.0.1 --master_port=29500 train.py --x a b',
    ],
    [
      'legacy launch --use-env',
      { kind: 'launch', useEnv: true },
      {},
      'py -m torch.distributed.launch --nnodes=3 --node_rank=1 --nproc_per_node=2 --master_addr=10.0.0.1 --master_port=29500 --use_env train.py --x a b',
    ],
    [
      'module',
      { module: true },
      {},
      'py -m torch.distributed.run --nnodes=3 --node_rank=1 --nproc_per_node=2 --master_addr=10.0.0.1 --master_port=29500 --module train.py --x a b',
    ],
    [
      'no python, restarts, raw args',
      { noPython: true, maxRestarts: 2, launcherArgs: ['--log_dir', '/tmp/l'] },
      {},
      'py -m torch.distributed.run --nnodes=3 --node_rank=1 --nproc_per_node=2 --master_addr=10.0.0.1 --master_port=29500 --max_restarts=2 --no_python --log_dir /tmp/l train.py --x a b',
    ],
    [
      'c10d: endpoint and run id, no node rank',
      { rdzvBackend: 'c10d' },
      {},
      'py -m torch.distributed.run --nnodes=3 --nproc_per_node=2 --rdzv_backend=c10d --rdzv_endpoint=10.0.0.1:29500 --rdzv_id=run1 --rdzv_conf=is_host=false train.py --x a b',
    ],
    [
      'c10d over IPv6',
      { rdzvBackend: 'c10d' },
      { masterAddr: 'fd00::1' },
      'py -m torch.distributed.run --nnodes=3 --nproc_per_node=2 --rdzv_backend=c10d --rdzv_endpoint=[fd00::1]:29500 --rdzv_id=run1 --rdzv_conf=is_host=false train.py --x a b',
    ],
    ['none: the command itself', { kind: 'none' }, {}, 'train.py --x a b'],
  ])('%s', (_name, o, ctx, expected) => expect(argv(o, ctx)).toBe(expected))

  // With rank tags the launcher runs the tagger (--no_python), which execs the worker as the launcher would have.
  // The tagger's first argument names the script for torch's failure report (rank-tag.ts).
  const TAG = 'py -S -c<tagger> train.py'
  it.each<[string, Partial<LauncherOptions>, Record<string, unknown>, string]>([
    [
      'torchrun: the script under python -u',
      {},
      {},
      `--master_port=29500 --no_python ${TAG} python -1  -- train.py --x a b`,
    ],
    [
      'torch 2 spelling',
      {},
      { torchVersion: '2.1.0' },
      `--master-port=29500 --no-python ${TAG} python -1  -- train.py --x a b`,
    ],
    [
      '-m: python -u -m MODULE',
      { module: true },
      {},
      `--master_port=29500 --no_python ${TAG} python -1  -- -m train.py --x a b`,
    ],
    [
      '--no-python: the executable itself',
      { noPython: true },
      {},
      `--master_port=29500 --no_python ${TAG} exec -1  -- train.py --x a b`,
    ],
    [
      'launch: --local_rank after the script, launch told --use_env',
      { kind: 'launch' },
      {},
      `--master_port=29500 --use_env --no_python ${TAG} python 1 --local_rank -- train.py --x a b`,
    ],
    [
      'launch, torch 2: --local-rank',
      { kind: 'launch' },
      { torchVersion: '2.0.1' },
      `--master-port=29500 --use-env --no-python ${TAG} python 1 --local-rank -- train.py --x a b`,
    ],
    [
      'launch -m: after the module name',
      { kind: 'launch', module: true },
      {},
      `--master_port=29500 --use_env --no_python ${TAG} python 2 --local_rank -- -m train.py --x a b`,
    ],
    [
      'launch --use-env: no flag inserted',
      { kind: 'launch', useEnv: true },
      {},
      `--master_port=29500 --use_env --no_python ${TAG} python -1  -- train.py --x a b`,
    ],
    [
      'launcher args before the tagger',
      { launcherArgs: ['--tee', '3'] },
      {},
      `--master_port=29500 --no_python --tee 3 ${TAG} python -1  -- train.py --x a b`,
    ],
  ])('rank tags, %s', (_name, o, ctx, tail) => {
    const words = launcherCommand({ ...TORCHRUN, ...o }, { ...CTX, ...ctx, rankTags: true }).argv.map((w) =>
      w === `-c${RANK_TAGGER}` ? '-c<tagger>' : w,
    )
    const text = words.join(' ')
    expect(text.slice(text.search(/--master.port/))).toBe(tail)
  })

  it('none: rank and rendezvous in the environment', () => {
    expect(launcherCommand({ ...TORCHRUN, kind: 'none' }, CTX).env).toEqual({
      NODE_RANK: '1',
      NNODES: '3',
      MASTER_ADDR: '10.0.0.1',
      MASTER_PORT: '29500',
      NPROC_PER_NODE: '2',
    })
  })
})

describe('readLauncherOptions', () => {
  // What yargs always hands in: --monitor-interval's default (withWorkOptions), read with the launcher's flags.
  const DEFAULTS = { 'monitor-interval': '0.25' }
  it.each<[Record<string, unknown>, Partial<LauncherOptions>]>([
    [{}, TORCHRUN],
    [
      { launcher: 'launch', 'use-env': true, 'no-python': true },
      { kind: 'launch', useEnv: true, noPython: true },
    ],
    [
      { 'max-restarts': '3', 'rdzv-backend': 'c10d' },
      { maxRestarts: 3, rdzvBackend: 'c10d' },
    ],
    [{ 'launcher-args': `--log_dir '/tmp/a b' --tee=3` }, { launcherArgs: ['--log_dir', '/tmp/a b', '--tee=3'] }],
  ])('%j', (a, expected) =>
    expect(readLauncherOptions({ ...DEFAULTS, ...a })).toEqual({ ...TORCHRUN, monitorIntervalS: 0.25, ...expected }),
  )

  it.each<[Record<string, unknown>, RegExp]>([
    [{ launcher: 'none', module: true }, /-m\/--module: only for --launcher torchrun or launch, not none/],
    [{ launcher: 'none', 'launcher-args': '--x' }, /--launcher-args: only for/],
    [{ module: true, 'no-python': true }, /exclude each other/],
    [{ 'use-env': true }, /--use-env is for --launcher launch/],
    [{ launcher: 'launch', 'no-python': true }, /needs --use-env/],
    [{ 'max-restarts': '-1' }, /--max-restarts must be a whole number/],
    [{ 'launcher-args': `'unterminated` }, /unterminated ' quote/],
  ])('%j is refused', (a, message) => {
    expect(() => readLauncherOptions({ ...DEFAULTS, ...a })).toThrow(FanoutError)
    expect(() => readLauncherOptions({ ...DEFAULTS, ...a })).toThrow(message)
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

describe('commandFloor / checkCommandFits: the size check before connecting', () => {
  const facts = (over: Partial<NodeFacts> = {}): NodeFacts => ({ remote: true, gpus: 0, presetIfnames: {}, ...over })
  /** torchrun with its --monitor_interval, as a launch gives it by default. */
  const MONITORED: LauncherOptions = { ...TORCHRUN, monitorIntervalS: 0.25 }
  type FitOver = Partial<Pick<CommandFitInput, 'launcher' | 'rankTags'>> & {
    job?: Partial<CommandFitInput['job']>
    teardown?: Partial<CommandFitInput['teardown']>
  }
  const input = (over: FitOver = {}): CommandFitInput => ({
    launcher: over.launcher ?? MONITORED,
    job: {
      python: '/usr/bin/python3',
      script: 'train.py',
      scriptArgs: ['--x', "it's"],
      chdir: '/shared/proj',
      setup: [],
      ...over.job,
    },
    rankTags: over.rankTags ?? true,
    teardown: { heartbeatTimeoutS: 15, graceS: 10, ...over.teardown },
  })
  const noEnv: JobEnv = { forwarded: {}, explicit: {} }
  /** The real commands of every node of a plan, as run.ts and attempt.ts build them: the larger of its probe and its job. */
  const realSizes = (
    { launcher, job: j, rankTags, teardown }: CommandFitInput,
    jobEnv: JobEnv,
    nodes: PlanNode[],
  ): number[] =>
    planLaunch(nodes, {
      python: j.python,
      cwd: j.chdir,
      script: j.script,
      scriptArgs: [...j.scriptArgs],
      launcher,
      rankTags: rankTags && launcher.kind !== 'none',
      jobEnv,
      runId: 'fanout-20261127-101514-3f9a2c',
    }).nodes.map((n) => {
      const job = jobCommandSize({
        cwd: n.cwd,
        env: n.env,
        setup: j.setup,
        argv: n.argv,
        heartbeatTimeoutS: teardown.heartbeatTimeoutS,
        graceS: Math.ceil(teardown.graceS),
      }).total
      const scriptIsFile = launcher.kind !== 'none' && !launcher.module && !launcher.noPython
      const probe = probeCommandSize({
        python: j.python,
        wantPort: n.rank === 0,
        cwd: j.chdir,
        setup: j.setup,
        ...(scriptIsFile ? { script: j.script } : {}),
      }).total
      return Math.max(job, probe)
    })

  // The shortest nodes a plan can have: one local node, loopback, a one-digit port, no interface.
  const SMALLEST: PlanNode[] = [{ rank: 0, host: 'x', facts: facts({ remote: false, freePort: 1 }) }]
  const CLUSTER: PlanNode[] = [0, 1, 2].map((r) => ({
    rank: r,
    host: `h${r}`,
    facts: facts({ gpus: 2, serverAddr: `10.99.0.1${r}`, freePort: 34567, torchVersion: r === 1 ? '2.4.0' : '1.13.1' }),
    iface: ['ens3', 'enp1s0', 'eno1'][r] as string,
  }))

  it('is never more than a real node command, whatever the launcher (random options, seed 5)', () => {
    const rand = mulberry32(5)
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T
    const word = (): string =>
      Array.from({ length: Math.floor(rand() * 12) }, () => pick(['a', ' ', "'", '"', '$', 'é', '\n', '-', '='])).join(
        '',
      )
    for (let k = 0; k < 300; k++) {
      const kind = pick(['torchrun', 'launch', 'none'] as const)
      const launcher: LauncherOptions = { kind, module: false, noPython: false, useEnv: false, launcherArgs: [] }
      if (kind !== 'none') {
        const mode = pick(['plain', 'module', 'noPython'] as const)
        if (mode === 'module') launcher.module = true
        if (mode === 'noPython') launcher.noPython = true
        if (kind === 'launch' && (launcher.noPython || rand() < 0.5)) launcher.useEnv = true
        if (rand() < 0.3) launcher.rdzvBackend = 'c10d'
        if (rand() < 0.3) launcher.maxRestarts = 3
        if (rand() < 0.3) launcher.launcherArgs = ['--tee', word()]
      }
      // Drawn in the same order as when --monitor-interval was an option of its own: set half the time.
      const scriptArgs = Array.from({ length: Math.floor(rand() * 5) }, word)
      const setup = rand() < 0.5 ? [word()] : []
      const rankTags = rand() < 0.7
      if (rand() < 0.5) launcher.monitorIntervalS = 0.25
      const o = input({ launcher, job: { scriptArgs, setup }, rankTags })
      const jobEnv: JobEnv = {
        forwarded:
          rand() < 0.5
            ? { NCCL_DEBUG: word(), PYTHONUNBUFFERED: '0', GLOO_SOCKET_IFNAME: 'a-long-interface-name' }
            : {},
        explicit: rand() < 0.5 ? { FO: word(), NODE_RANK: '' } : {},
      }
      const floor = commandFloor(o, jobEnv)
      for (const nodes of [SMALLEST, CLUSTER]) {
        for (const real of realSizes(o, jobEnv, nodes))
          expect(floor.total, JSON.stringify({ o, jobEnv, floor })).toBeLessThanOrEqual(real)
      }
    }
  })

  it('is close to the real command: within a few hundred bytes on the test cluster', () => {
    const o = input({ job: { scriptArgs: ['x'.repeat(100_000)] } })
    const floor = commandFloor(o, noEnv).total
    for (const real of realSizes(o, noEnv, CLUSTER)) {
      expect(real).toBeGreaterThanOrEqual(floor)
      expect(real - floor).toBeLessThan(300)
    }
  })

  it('refuses a command that cannot fit, as a USAGE error naming the lower bound and the limit', () => {
    const big = input({ job: { scriptArgs: ['a', "'".repeat(40_000)] } }) // 160 KB once quoted
    expect(() => checkCommandFits(big, noEnv)).toThrow(FanoutError)
    expect(() => checkCommandFits(big, noEnv)).toThrow(
      new RegExp(
        `would be at least ${commandFloor(big, noEnv).total} bytes, over the limit of ${MAX_COMMAND_BYTES} bytes`,
      ),
    )
    // The environment and the set-up lines count too.
    expect(() =>
      checkCommandFits(input(), { forwarded: {}, explicit: { BIG: 'x'.repeat(MAX_COMMAND_BYTES) } }),
    ).toThrow(/the environment 131095,/) // and PYTHONUNBUFFERED=1
    expect(() => checkCommandFits(input({ job: { setup: ['x'.repeat(70_000), 'y'.repeat(70_000)] } }), noEnv)).toThrow(
      /the set-up lines 140002/,
    )
    // Up to the limit, it passes (and jobCommand decides on the real one). With a 10 kB argument the
    // job's command is the larger (the probe, which holds the job's wrapper, is about 7.4 kB).
    const withArg = (n: number): CommandFitInput => input({ job: { scriptArgs: ['x'.repeat(n)] } })
    const base = commandFloor(withArg(10_000), noEnv).total - 10_000
    expect(() => checkCommandFits(withArg(MAX_COMMAND_BYTES - base), noEnv)).not.toThrow()
    expect(commandFloor(withArg(MAX_COMMAND_BYTES - base), noEnv).total).toBe(MAX_COMMAND_BYTES)
    expect(() => checkCommandFits(withArg(MAX_COMMAND_BYTES - base + 1), noEnv)).toThrow(/at least 131072 bytes/)
  })

  it('with --launcher none there is no tagger, and the probe (larger with set-up lines alone) is checked too', () => {
    // A 10 kB argument makes the job's command the larger of the two, as above.
    const arg = { job: { scriptArgs: ['x'.repeat(10_000)] } }
    const none = input({ launcher: { ...MONITORED, kind: 'none' }, ...arg })
    expect(commandFloor(input(arg), noEnv).argv).toBeGreaterThan(RANK_TAGGER.length + 10_000)
    expect(commandFloor(input(arg), noEnv).total).toBeGreaterThan(commandFloor(none, noEnv).total)
    // Without it, the probe is: the one a launch sends, which also holds the job's wrapper.
    expect(commandFloor(input(), noEnv)).toEqual(
      probeCommandSize({
        python: input().job.python,
        wantPort: false,
        cwd: input().job.chdir,
        setup: [],
        script: input().job.script,
      }),
    )
    const setupOnly = input({
      launcher: { ...MONITORED, kind: 'none' },
      job: { script: 'x', scriptArgs: [], setup: ['s'.repeat(MAX_COMMAND_BYTES - 2000)] },
    })
    const floor = commandFloor(setupOnly, noEnv)
    expect(floor.env).toBe(0) // the probe's size: it carries no environment
    expect(floor.total).toBeGreaterThan(MAX_COMMAND_BYTES)
  })
})

describe("escapeMacros: torchrun's ${local_rank} substitution gives the arguments back unchanged", () => {
  const WORDS = [
    '$$',
    '$$(id)',
    '${local_rank}',
    '$local_rank',
    '$ $',
    '$',
    'a$',
    '$$$',
    '${x}',
    '$1',
    'no dollar',
    '',
    '€$😀',
  ]
  // What torch.distributed.elastic.utils.macros.substitute does to each worker argument.
  const substitute = (words: string[]): string[] =>
    JSON.parse(
      execFileSync(
        'python3',
        [
          '-c',
          'import json, sys; from string import Template; print(json.dumps([Template(a).safe_substitute(local_rank="7") for a in json.loads(sys.argv[1])]))',
          JSON.stringify(words),
        ],
        { encoding: 'utf8' },
      ),
    ) as string[]

  it('unescaped, torch would change them', () => {
    expect(substitute(['$$', '${local_rank}', '$local_rank'])).toEqual(['$', '7', '7'])
  })

  it('escaped, every word comes back as it was (the fixed cases and 200 random ones, seed 9)', () => {
    const rand = mulberry32(9)
    const random = Array.from({ length: 200 }, () =>
      Array.from(
        { length: Math.floor(rand() * 10) },
        () => ['$', '{', '}', 'local_rank', 'a', '$$', ' '][Math.floor(rand() * 7)],
      ).join(''),
    )
    const words = [...WORDS, ...random]
    expect(substitute(words.map(escapeMacros))).toEqual(words)
  })

  it.each<[string, Partial<LauncherOptions>, boolean]>([
    ['torchrun with rank tags', {}, true],
    ['launch with rank tags', { kind: 'launch' }, true],
    ['-m with rank tags', { module: true }, true],
    ['--no-python with rank tags', { noPython: true }, true],
    ['torchrun without rank tags', {}, false],
    ['--no-python without rank tags: the program itself is not substituted', { noPython: true }, false],
  ])(
    '%s: the script and its arguments are escaped, the launcher flags and the program are not',
    (_name, o, rankTags) => {
      const { argv } = launcherCommand(
        { ...TORCHRUN, ...o },
        {
          ...CTX,
          python: '/opt/$py',
          script: 'tr$ain.py',
          scriptArgs: ['$$', '${local_rank}'],
          rankTags,
          masterAddr: 'h$',
        },
      )
      expect(argv.slice(-2)).toEqual(['$$$$', '$${local_rank}'])
      expect(argv[0]).toBe('/opt/$py')
      expect(argv).toContain('--master_addr=h$')
      const scriptWord = argv[argv.length - 3]
      expect(scriptWord).toBe(!rankTags && o.noPython ? 'tr$ain.py' : 'tr$$ain.py')
      if (rankTags) expect(argv[argv.indexOf('--no_python') + 1]).toBe('/opt/$py') // the program torchrun runs
    },
  )

  it('--launcher none runs the command itself: nothing is escaped', () => {
    expect(launcherCommand({ ...TORCHRUN, kind: 'none' }, { ...CTX, script: '$x', scriptArgs: ['$$'] }).argv).toEqual([
      '$x',
      '$$',
    ])
  })
})
