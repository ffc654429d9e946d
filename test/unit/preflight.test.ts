import { describe, expect, it } from 'vitest'
import { FanoutError } from '../../src/errors.js'
import { checkPreflight, setupSteps, type PreflightContext, type PreflightNode } from '../../src/preflight.js'
import type { NodeFacts } from '../../src/plan.js'

const facts = (f: Partial<NodeFacts> = {}): NodeFacts => ({ viaSsh: true, gpus: 2, presetIfnames: {}, python: '/usr/bin/python3', torch: true, torchVersion: '2.4.0', pythonVersion: '3.11.2', cwd: true, script: true, ...f })
const node = (rank: number, f: Partial<NodeFacts> = {}, stderr = ''): PreflightNode => ({ rank, host: `h${rank + 1}`, facts: facts(f), stderr })
const CTX: PreflightContext = { launcher: 'torchrun', scriptIsFile: true, script: 'train.py', cwd: '/proj', python: 'python3', setup: [], strict: false }

describe('checkPreflight', () => {
  it.each<[string, PreflightNode[], Partial<PreflightContext>, string[]]>([
    ['all good', [node(0), node(1)], {}, []],
    ['missing directory', [node(0), node(1, { cwd: false, script: undefined })], {}, ['node 1 (h2): working directory /proj does not exist']],
    ['missing script', [node(0, { script: false })], {}, ['node 0 (h1): script train.py not found in /proj']],
    ['no script check for -m', [node(0, { script: undefined })], { scriptIsFile: false }, []],
    ['no python', [node(0, { python: undefined, torch: undefined })], {}, ['node 0 (h1): python3 not found (pass --python, --venv or --conda)']],
    ['no torch', [node(0, { torch: false })], {}, ['node 0 (h1): torch cannot be imported by /usr/bin/python3']],
    ['launcher none needs neither', [node(0, { python: undefined, torch: undefined })], { launcher: 'none' }, []],
    ['port taken on node 0', [node(0, { portFree: false })], { masterPort: 29500 }, ['node 0 (h1): master port 29500 is in use']],
    ['set-up failure, with its output', [node(0, { setupFailed: { step: 2, code: 7 } }, 'activating\nno such env\n')], { setup: ['true', 'conda activate x'] }, ['node 0 (h1): set-up step 2 failed with exit 7: conda activate x\n    activating\n    no such env']],
    ['different torch: an error with --strict', [node(0), node(1, { torchVersion: '2.3.1' })], { strict: true }, ['nodes run different torch versions: 2.4.0, 2.3.1']],
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

describe('setupSteps', () => {
  it.each<[Record<string, unknown>, string[]]>([
    [{}, []],
    [{ venv: '~/venv/' }, ['. ~/venv/bin/activate']],
    [{ conda: 'torch' }, ['eval "$(conda shell.posix hook)" && conda activate torch']],
    [{ setup: ['module load cuda', 'export X=1'], venv: '/v' }, ['. /v/bin/activate', 'module load cuda', 'export X=1']],
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
