import { describe, expect, it } from 'vitest'
import { FanoutError } from '../../src/errors.js'
import { checkPreflight, type PreflightContext, type PreflightNode } from '../../src/plan/preflight.js'
import { setupSteps } from '../../src/cli/options/job.js'
import type { NodeFacts } from '../../src/plan/plan.js'

const facts = (f: Partial<NodeFacts> = {}): NodeFacts => ({
  remote: true,
  gpus: 2,
  presetIfnames: {},
  python: '/usr/bin/python3',
  torch: true,
  torchVersion: '2.4.0',
  pythonVersion: '3.11.2',
  cwd: true,
  script: true,
  ...f,
})
const node = (rank: number, f: Partial<NodeFacts> = {}, stderr = ''): PreflightNode => ({
  rank,
  host: `h${rank + 1}`,
  facts: facts(f),
  stderr,
})
const CTX: PreflightContext = {
  launcher: 'torchrun',
  scriptIsFile: true,
  script: 'train.py',
  cwd: '/proj',
  python: 'python3',
  setup: [],
  strict: false,
}

describe('checkPreflight', () => {
  it.each<[string, PreflightNode[], Partial<PreflightContext>, string[]]>([
    ['all good', [node(0), node(1)], {}, []],
    [
      'missing directory',
      [node(0), node(1, { cwd: false, script: undefined })],
      {},
      ['node 1 (h2): working directory /proj does not exist'],
    ],
    ['missing script', [node(0, { script: false })], {}, ['node 0 (h1): script train.py not found in /proj']],
    ['no script check for -m', [node(0, { script: undefined })], { scriptIsFile: false }, []],
    [
      'no python',
      [node(0, { python: undefined, torch: undefined })],
      {},
      ['node 0 (h1): python3 not found (pass --python, --venv or --conda)'],
    ],
    ['no torch', [node(0, { torch: false })], {}, ['node 0 (h1): torch cannot be imported by /usr/bin/python3']],
    ['launcher none needs neither', [node(0, { python: undefined, torch: undefined })], { launcher: 'none' }, []],
    [
      'port taken on node 0',
      [node(0, { portFree: false })],
      { masterPort: 29500 },
      ['node 0 (h1): master port 29500 is in use'],
    ],
    [
      'set-up failure, with its output',
      [node(0, { setupFailed: { step: 2, code: 7 } }, 'activating\nno such env\n')],
      { setup: ['true', 'conda activate x'] },
      ['node 0 (h1): set-up step 2 failed with exit 7: conda activate x\n    activating\n    no such env'],
    ],
    [
      'different torch patch level: an error with --strict',
      [node(0), node(1, { torchVersion: '2.4.1' })],
      { strict: true },
      ['nodes run different torch versions: 2.4.0, 2.4.1'],
    ],
    [
      'different torch major.minor: an error, naming every version and its nodes',
      [
        node(0, { torchVersion: '1.13.1' }),
        node(1, { torchVersion: '2.6.0+debian' }),
        node(2, { torchVersion: '2.6.0' }),
        node(3, { torchVersion: '1.13.1' }),
      ],
      {},
      [
        'nodes run different torch versions, which cannot rendezvous with each other: torch 1.13 on n0,n3 (1.13.1); torch 2.6 on n1-n2 (2.6.0+debian, 2.6.0). Install the same torch on every node, or pass --allow-version-skew to launch anyway',
      ],
    ],
    [
      'torch major.minor skew with --allow-version-skew: no error',
      [node(0, { torchVersion: '1.13.1' }), node(1, { torchVersion: '2.6.0' })],
      { allowVersionSkew: true },
      [],
    ],
    [
      'a node without torch does not count as skew (its own error says it)',
      [node(0), node(1, { torch: false, torchVersion: undefined })],
      {},
      ['node 1 (h2): torch cannot be imported by /usr/bin/python3'],
    ],
  ])('%s', (_name, nodes, ctx, errors) => {
    expect(checkPreflight(nodes, { ...CTX, ...ctx }).errors).toEqual(errors)
  })

  it('different versions are a warning without --strict, and the table shows every node', () => {
    const r = checkPreflight([node(0), node(1, { pythonVersion: '3.10.12', cwd: false })], CTX)
    expect(r.warnings).toEqual(['nodes run different Python versions: 3.11.2, 3.10.12'])
    expect(r.table.split('\n')).toEqual([
      'node  host  python   torch  gpus  pre-flight',
      'n0    h1    3.11.2   2.4.0  2     ok',
      'n1    h2    3.10.12  2.4.0  2     working directory /proj does not exist',
      '',
    ])
  })
})

describe('checkPreflight: versions and busy GPUs', () => {
  it('torch major.minor skew is a warning with --allow-version-skew; patch and Python differences stay warnings', () => {
    const r = checkPreflight(
      [
        node(0, { torchVersion: '1.13.1', pythonVersion: '3.11.2' }),
        node(1, { torchVersion: '2.6.0', pythonVersion: '3.13.5' }),
      ],
      { ...CTX, allowVersionSkew: true },
    )
    expect(r.errors).toEqual([])
    expect(r.warnings).toEqual([
      expect.stringMatching(
        /^nodes run different torch versions, which cannot rendezvous with each other: torch 1\.13 on n0 \(1\.13\.1\); torch 2\.6 on n1/,
      ),
      'nodes run different Python versions: 3.11.2, 3.13.5',
    ])
    expect(r.table).toMatch(/n0 +h1 +3\.11\.2 +1\.13\.1 /)
    expect(r.table).toMatch(/n1 +h2 +3\.13\.5 +2\.6\.0 /)
  })

  const gpu = { index: 1, uuid: 'GPU-1', memoryUsed: 30000, memoryTotal: 81559 }
  const busy = [
    {
      gpu,
      process: { gpuUuid: 'GPU-1', pid: 4242, memory: 30000, user: 'alice', command: 'python old_train.py --resume' },
    },
  ]

  it('a GPU held by another process is an error naming node, GPU, pid, user, command and memory, with what to do', () => {
    const r = checkPreflight([node(0), { ...node(1), busy }], CTX)
    expect(r.errors).toEqual([
      'node 1 (h2): GPU 1 is held by pid 4242 (alice: python old_train.py --resume, 30000 MiB)',
      '1 node(s) have GPUs held by processes that are not part of this launch: stop them, choose other GPUs (--include host@0,1), wait for them (--wait-for-gpus 10m), or launch anyway (--allow-busy-gpus)',
    ])
    expect(r.table).toContain('GPU 1 is held by pid 4242')
  })

  it('--allow-busy-gpus: a warning, and the table still says so', () => {
    const r = checkPreflight([node(0), { ...node(1), busy }], { ...CTX, allowBusyGpus: true })
    expect(r.errors).toEqual([])
    expect(r.warnings).toEqual([
      'node 1 (h2): GPU 1 is held by pid 4242 (alice: python old_train.py --resume, 30000 MiB) (--allow-busy-gpus)',
    ])
    expect(r.table).toMatch(/n1 +h2 .* ok; GPU 1 is held by pid 4242/)
  })
})

describe('setupSteps', () => {
  it.each<[Record<string, unknown>, string[]]>([
    [{}, []],
    [{ venv: '~/venv/' }, ['. ~/venv/bin/activate']],
    [{ conda: 'torch' }, ['eval "$(conda shell.posix hook)" && conda activate torch']],
    [
      { setup: ['module load cuda', 'export X=1'], venv: '/v' },
      ['. /v/bin/activate', 'module load cuda', 'export X=1'],
    ],
    [{ venv: "/my envs/it's" }, [`. '/my envs/it'\\''s/bin/activate'`]],
  ])('%j', (a, steps) => expect(setupSteps(a)).toEqual(steps))
})

describe('setupSteps: empty values are refused', () => {
  // Regression: `--venv ''` sourced /bin/activate on every node, `--setup ''` ran nothing.
  it.each<[Record<string, unknown>, string]>([
    [{ venv: '' }, '--venv needs a value'],
    [{ conda: ' ' }, '--conda needs a value'],
    [{ setup: ['true', ''] }, '--setup needs a value'],
    [{ venv: false }, '--venv needs a value'],
  ])('%j', (a, message) => {
    expect(() => setupSteps(a)).toThrow(new FanoutError(message, 'USAGE'))
  })
})
