import { describe, it, expect } from 'vitest'
import { parseArgs } from '../../src/cli/dispatch.js'
import { int, yargsMessage } from '../../src/cli/parser.js'
import type { RunOptions } from '../../src/launch/options.js'
import { refusal } from './refusal.js'

const CWD = '/home/me/proj'

/** Any part of RunOptions, each group itself partial (what toMatchObject compares). */
type PartialRun = { [K in keyof RunOptions]?: Partial<RunOptions[K]> }

async function options(argv: string[]): Promise<RunOptions> {
  const parsed = await parseArgs(['-H', 'hosts', ...argv], CWD)
  if (parsed.kind !== 'run') throw new Error(`expected a run, got ${parsed.kind}`)
  return parsed.options
}

describe('int: whole numbers are digits only', () => {
  it.each([
    ['0', 0],
    ['7', 7],
    ['007', 7],
    ['1024', 1024],
  ])('%j → %i', (text, n) => {
    expect(int('n', text, 0, 1024)).toBe(n)
  })

  // Number() takes all of these; each is a typo, not a count.
  it.each(['1e3', '0x10', ' 4', '4 ', '+4', '1.0', '-1', '', 'Infinity', '١'])('%j is refused', async (text) => {
    expect((await refusal(() => int('nproc-per-node', text, 1, 1024), 'USAGE')).message).toBe(
      `--nproc-per-node must be a whole number from 1 to 1024 (got ${JSON.stringify(text)})`,
    )
  })

  it('a flag given twice (an array) or as a boolean is refused, not counted', async () => {
    expect((await refusal(() => int('n', ['1', '2'], 1, 9), 'USAGE')).message).toBe(
      '--n must be a whole number from 1 to 9 (got ["1","2"])',
    )
    await refusal(() => int('n', true, 0, 9), 'USAGE')
  })

  it('through parseArgs: --nproc-per-node 1e3 and --max-handshakes 0x10 are refused before anything else', async () => {
    expect((await refusal(() => options(['--nproc-per-node', '1e3', 'train.py']), 'USAGE')).message).toMatch(
      /^--nproc-per-node must be a whole number/,
    )
    expect((await refusal(() => options(['--max-handshakes', '0x10', 'train.py']), 'USAGE')).message).toMatch(
      /^--max-handshakes must be a whole number/,
    )
  })
})

describe('--no-python is its own flag, not the negation of --python', () => {
  it.each<[string[], PartialRun]>([
    [['--no-python', 'run.sh'], { job: { python: 'python3' }, launcher: expect.objectContaining({ noPython: true }) }],
    [
      ['--python', '/opt/py', '--no-python', 'run.sh'],
      { job: { python: '/opt/py' }, launcher: expect.objectContaining({ noPython: true }) },
    ],
    [
      ['--no-python', '--python', '/opt/py', 'run.sh'],
      { job: { python: '/opt/py' }, launcher: expect.objectContaining({ noPython: true }) },
    ],
    [
      ['--launcher', 'launch', '--use-env', '--no-python', 'run.sh'],
      { launcher: expect.objectContaining({ kind: 'launch', noPython: true, useEnv: true }) },
    ],
    [
      ['run.sh', '--no-python'],
      {
        job: { python: 'python3', scriptArgs: ['--no-python'] },
        launcher: expect.objectContaining({ noPython: false }),
      },
    ],
  ])('%j', async (argv, expected) => {
    expect(await options(argv)).toMatchObject(expected)
  })

  // Regression: yargs read `--no-python` as python=false, so these said "--python needs a value".
  it.each<[string[], RegExp]>([
    [['-m', '--no-python', 'x'], /^-m\/--module and --no-python exclude each other/],
    [['--launcher', 'launch', '--no-python', 'x'], /^--launcher launch with --no-python needs --use-env/],
  ])('%j names the real conflict', async (argv, message) => {
    expect((await refusal(() => options(argv), 'USAGE')).message).toMatch(message)
  })
})

describe("yargs' messages in fanout's words", () => {
  it.each([
    ['Unknown argument: bogus', 'unknown option --bogus; see fanout --help'],
    ['Unknown argument: Z', 'unknown option -Z; see fanout --help'],
    ['Unknown arguments: a, bogus', 'unknown options -a, --bogus; see fanout --help'],
    [
      'Invalid values:\n  Argument: launcher, Given: "nope", Choices: "torchrun", "launch", "none"',
      '--launcher must be one of "torchrun", "launch", "none" (got "nope")',
    ],
    [
      'Invalid values:\n  Argument: color, Given: "x", Choices: "auto", "always", "never"\n  Argument: launcher, Given: "y", Choices: "none"',
      '--color must be one of "auto", "always", "never" (got "x")\n--launcher must be one of "none" (got "y")',
    ],
    ['Not enough arguments following: hostfile', 'Not enough arguments following: hostfile'],
  ])('%j', (message, expected) => {
    expect(yargsMessage(message)).toBe(expected)
  })

  it.each<[string[], string]>([
    [['--launcher', 'nope', 'x'], '--launcher must be one of "torchrun", "launch", "none" (got "nope")'],
    [['--rdzv-backend', 'etcd', 'x'], '--rdzv-backend must be one of "c10d", "static" (got "etcd")'],
    [['--bogus', 'x'], 'unknown option --bogus; see fanout --help'],
  ])('through parseArgs: %j is one line', async (argv, message) => {
    expect((await refusal(() => options(argv), 'USAGE')).message).toBe(message)
  })
})

describe("an option's value may start with -- in both spellings", () => {
  it.each<[string[], string[]]>([
    [
      ['--launcher-args', '--log-dir /tmp/logs', 'train.py'],
      ['--log-dir', '/tmp/logs'],
    ],
    [
      ['--launcher-args=--log-dir /tmp/logs', 'train.py'],
      ['--log-dir', '/tmp/logs'],
    ],
    [
      ['--launcher-args', '-r 3', 'train.py'],
      ['-r', '3'],
    ],
    [
      ['--dry-run', '--launcher-args', '--tee 3', '--python', '/opt/py', 'train.py'],
      ['--tee', '3'],
    ],
  ])('%j', async (argv, launcherArgs) => {
    expect((await options(argv)).launcher.launcherArgs).toEqual(launcherArgs)
  })

  it("--setup and a short alias (-C) take such a value too; the script's own words are left alone", async () => {
    const o = await options([
      '--setup',
      '--version-check-nothing || true',
      '-C',
      '/work',
      'train.py',
      '--launcher-args',
      '--x',
    ])
    expect(o.job.setup).toEqual(['--version-check-nothing || true'])
    expect(o.job.chdir).toBe('/work')
    expect(o.job.scriptArgs).toEqual(['--launcher-args', '--x'])
  })

  it('after --, nothing is joined', async () => {
    const o = await options(['--', 'train.py', '--setup', '--x'])
    expect([o.job.script, o.job.scriptArgs]).toEqual(['train.py', ['--setup', '--x']])
  })
})
