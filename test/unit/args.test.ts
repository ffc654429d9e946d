import { describe, it, expect } from 'vitest'
import { readdirSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { parseArgs } from '../../src/cli/dispatch.js'
import { parseDuration } from '../../src/cli/parser.js'
import type { RunOptions } from '../../src/launch/options.js'
import type { EnvOptions } from '../../src/plan/env.js'
import { FanoutError } from '../../src/errors.js'

const CWD = '/home/me/proj'

/** Any part of RunOptions, each group itself partial (what toMatchObject compares). */
type PartialRun = { [K in keyof RunOptions]?: Partial<RunOptions[K]> }

async function options(argv: string[]): Promise<RunOptions> {
  const parsed = await parseArgs(argv, CWD)
  if (parsed.kind !== 'run') throw new Error(`expected a run, got ${parsed.kind}`)
  return parsed.options
}

async function usageError(argv: string[]): Promise<FanoutError> {
  try {
    await parseArgs(argv, CWD)
  } catch (e) {
    expect(e).toBeInstanceOf(FanoutError)
    return e as FanoutError
  }
  throw new Error(`expected ${JSON.stringify(argv)} to be refused`)
}

describe('parseArgs: the script and its arguments', () => {
  it.each<[string, string[], string, string[]]>([
    ['script alone', ['-H', 'h', 'train.py'], 'train.py', []],
    ['args verbatim', ['--hostfile', 'h', 'train.py', '--epochs', '3'], 'train.py', ['--epochs', '3']],
    [
      'flags fanout also has belong to the script',
      ['--hostfile', 'h', 'train.py', '--hostfile', 'x', '--epochs', '3'],
      'train.py',
      ['--hostfile', 'x', '--epochs', '3'],
    ],
    [
      'short flags fanout also has',
      ['-H', 'h', 'train.py', '-H', 'y', '-n', '-C', 'rel', '-i', 'k'],
      'train.py',
      ['-H', 'y', '-n', '-C', 'rel', '-i', 'k'],
    ],
    ["--help after the script is the script's", ['-H', 'h', 'train.py', '--help'], 'train.py', ['--help']],
    ["--version after the script is the script's", ['-H', 'h', 'train.py', '--version'], 'train.py', ['--version']],
    ['a literal -- after the script', ['-H', 'h', 'train.py', '--', '--x'], 'train.py', ['--', '--x']],
    ['a literal -- as the last word', ['-H', 'h', 'train.py', 'a', '--'], 'train.py', ['a', '--']],
    ['two literal --', ['-H', 'h', 'train.py', '--', 'a', '--', 'b'], 'train.py', ['--', 'a', '--', 'b']],
    ['-- before the script', ['-H', 'h', '--', 'train.py', '--epochs', '3'], 'train.py', ['--epochs', '3']],
    ['-- before a script starting with -', ['-H', 'h', '--', '-weird.py', '-x'], '-weird.py', ['-x']],
    ['-- before the script, -- after it', ['-H', 'h', '--', 'train.py', '--', 'z'], 'train.py', ['--', 'z']],
    [
      'numbers stay strings',
      ['-H', 'h', 'train.py', '007', '1e3', '0x10', '3.0', '-1', '--lr=0.10'],
      'train.py',
      ['007', '1e3', '0x10', '3.0', '-1', '--lr=0.10'],
    ],
    ['a numeric script name', ['-H', 'h', '007'], '007', []],
    [
      '--no-x and --x=y forms',
      ['-H', 'h', 'train.py', '--no-cuda', '--a.b=c', '--list', 'a', '--list', 'b'],
      'train.py',
      ['--no-cuda', '--a.b=c', '--list', 'a', '--list', 'b'],
    ],
    ['empty and spaced args', ['-H', 'h', 'train.py', '', 'two words', "it's"], 'train.py', ['', 'two words', "it's"]],
    [
      "fanout options before the script are fanout's",
      ['-H', 'h', '--nproc-per-node', '2', 'train.py', '--nproc-per-node', '9'],
      'train.py',
      ['--nproc-per-node', '9'],
    ],
    ['-m style module launch', ['-H', 'h', 'pkg/train.py', '-m', 'x'], 'pkg/train.py', ['-m', 'x']],
  ])('%s', async (_name, argv, script, scriptArgs) => {
    const o = await options(argv)
    expect(o.job.script).toBe(script)
    expect(o.job.scriptArgs).toEqual(scriptArgs)
  })

  // --identity is repeatable, but one use of it must take one value: the script after it is not a key file.
  it.each<[string, string[]]>([
    ['-i KEY SCRIPT', ['-H', 'h', '-i', 'id_ed25519', 'train.py', '--epochs', '3']],
    ['--identity KEY SCRIPT', ['-H', 'h', '--identity', 'id_ed25519', 'train.py', '--epochs', '3']],
    ['--identity=KEY SCRIPT', ['-H', 'h', '--identity=id_ed25519', 'train.py', '--epochs', '3']],
  ])('%s: the script is not taken as another identity', async (_name, argv) => {
    const o = await options(argv)
    expect(o.ssh.identity).toEqual(['/home/me/proj/id_ed25519'])
    expect(o.job.script).toBe('train.py')
    expect(o.job.scriptArgs).toEqual(['--epochs', '3'])
  })

  it('options before the script are parsed, those after it are not', async () => {
    const o = await options(['-H', 'h', '--nproc-per-node', '2', 'train.py', '--nproc-per-node', '9'])
    expect(o.job.nprocPerNode).toBe(2)
  })
})

describe('parseArgs: defaults and values', () => {
  it('defaults', async () => {
    expect(await options(['--hostfile', 'hosts.txt', 'train.py'])).toEqual({
      mode: 'run',
      hosts: { hostfile: '/home/me/proj/hosts.txt' },
      ssh: {
        identity: [],
        acceptNew: false,
        askPassword: false,
        connectTimeoutS: 10,
        maxHandshakes: 8,
        keepaliveS: 5,
      },
      job: {
        script: 'train.py',
        scriptArgs: [],
        chdir: CWD,
        python: 'python3',
        setup: [],
        env: {},
      },
      preflight: {
        strict: false,
        allowVersionSkew: false,
        allowBusyGpus: false,
      },
      launcher: {
        kind: 'torchrun',
        monitorIntervalS: 0.25,
        module: false,
        noPython: false,
        useEnv: false,
        launcherArgs: [],
      },
      teardown: {
        killOnFailure: true,
        graceS: 10,
        heartbeatTimeoutS: 15,
        rdzvTimeoutS: 120,
      },
      output: {
        color: 'auto',
        plain: false,
        json: false,
        quiet: false,
        rankTags: true,
        timestamps: false,
      },
    } satisfies RunOptions)
  })

  it.each<[string, string[], PartialRun]>([
    ['--no-kill-on-failure', ['--no-kill-on-failure'], { teardown: { killOnFailure: false } }],
    ['--kill-on-failure', ['--kill-on-failure'], { teardown: { killOnFailure: true } }],
    ['--kill-on-failure=false', ['--kill-on-failure=false'], { teardown: { killOnFailure: false } }],
    ['-n', ['-n'], { mode: 'dry-run' }],
    ['--dry-run', ['--dry-run'], { mode: 'dry-run' }],
    ['--python', ['--python', '/opt/venv/bin/python'], { job: { python: '/opt/venv/bin/python' } }],
    ['--chdir absolute', ['--chdir', '/shared/proj'], { job: { chdir: '/shared/proj' } }],
    ['-C ~', ['-C', '~/proj'], { job: { chdir: '~/proj' } }],
    ['--nproc-per-node', ['--nproc-per-node', '4'], { job: { nprocPerNode: 4 } }],
    ['--nproc-per-node=1024', ['--nproc-per-node=1024'], { job: { nprocPerNode: 1024 } }],
    ['--master-addr', ['--master-addr', '10.0.0.1'], { job: { masterAddr: '10.0.0.1' } }],
    ['--master-addr IPv6', ['--master-addr', 'fe80::1%eth0'], { job: { masterAddr: 'fe80::1%eth0' } }],
    ['--master-port', ['--master-port', '29500'], { job: { masterPort: 29500 } }],
    ['--ssh-port', ['--ssh-port', '2222'], { ssh: { port: 2222 } }],
    ['--user / -l', ['-l', 'alice'], { ssh: { user: 'alice' } }],
    [
      '--identity repeatable, resolved',
      ['-i', 'k1', '--identity', '/abs/k2', '-n'],
      { ssh: { identity: ['/home/me/proj/k1', '/abs/k2'] } },
    ],
    [
      '--identity, then the script',
      ['-i', 'k1', '--identity', '/abs/k2'],
      { ssh: { identity: ['/home/me/proj/k1', '/abs/k2'] } },
    ],
    ['--ssh-config resolved', ['-F', 'cfg'], { ssh: { configFile: '/home/me/proj/cfg' } }],
    ['--grace 500ms', ['--grace', '500ms'], { teardown: { graceS: 0.5 } }],
    ['--grace 2m', ['--grace', '2m'], { teardown: { graceS: 120 } }],
    ['--heartbeat-timeout 2', ['--heartbeat-timeout', '2'], { teardown: { heartbeatTimeoutS: 2 } }],
    ['--heartbeat-timeout rounds up', ['--heartbeat-timeout', '2.5s'], { teardown: { heartbeatTimeoutS: 3 } }],
    ['--connect-timeout 1h', ['--connect-timeout', '1h'], { ssh: { connectTimeoutS: 3600 } }],
    ['--keepalive 1.5', ['--keepalive', '1.5'], { ssh: { keepaliveS: 1.5 } }],
    ['--max-handshakes', ['--max-handshakes', '20'], { ssh: { maxHandshakes: 20 } }],
    ['--color never', ['--color', 'never'], { output: { color: 'never' } }],
    ['--plain', ['--plain'], { output: { plain: true } }],
    ['--timeout 2h', ['--timeout', '2h'], { teardown: { timeoutS: 7200 } }],
    ['absolute --hostfile kept', ['-H', '/etc/hosts.fanout'], { hosts: { hostfile: '/etc/hosts.fanout' } }],
  ])('%s', async (_name, flags, expected) => {
    const argv = flags.includes('-H') ? [...flags, 'train.py'] : ['-H', 'hosts', ...flags, 'train.py']
    expect(await options(argv)).toMatchObject(expected)
  })
})

describe('parseArgs: errors are USAGE, exit code 2', () => {
  it.each<[string, string[], RegExp]>([
    ['missing --hostfile', ['train.py'], /--hostfile/],
    ['missing script', ['--hostfile', 'h'], /SCRIPT/],
    ['nothing at all', [], /--hostfile|SCRIPT/],
    ['--hostfile swallowing the script', ['--hostfile', 'train.py'], /SCRIPT/],
    ['--hostfile twice', ['-H', 'a', '-H', 'b', 'train.py'], /more than once/],
    ['--nproc-per-node 0', ['-H', 'h', '--nproc-per-node', '0', 'train.py'], /--nproc-per-node/],
    ['--nproc-per-node x', ['-H', 'h', '--nproc-per-node', 'x', 'train.py'], /--nproc-per-node/],
    ['--nproc-per-node 1.5', ['-H', 'h', '--nproc-per-node', '1.5', 'train.py'], /--nproc-per-node/],
    ['--nproc-per-node 1025', ['-H', 'h', '--nproc-per-node', '1025', 'train.py'], /--nproc-per-node/],
    ['--master-port 70000', ['-H', 'h', '--master-port', '70000', 'train.py'], /--master-port/],
    ['--master-port 0', ['-H', 'h', '--master-port', '0', 'train.py'], /--master-port/],
    ['--master-port abc', ['-H', 'h', '--master-port', 'abc', 'train.py'], /--master-port/],
    ['--ssh-port 0', ['-H', 'h', '--ssh-port', '0', 'train.py'], /--ssh-port/],
    ['--ssh-port 65536', ['-H', 'h', '--ssh-port', '65536', 'train.py'], /--ssh-port/],
    ['unknown flag', ['-H', 'h', '--bogus', 'train.py'], /bogus/],
    ['unknown short flag', ['-H', 'h', '-Z', 'train.py'], /Z/],
    ['relative --chdir', ['-H', 'h', '--chdir', 'rel/dir', 'train.py'], /--chdir/],
    ['relative -C .', ['-H', 'h', '-C', '.', 'train.py'], /--chdir/],
    ['--grace abc', ['-H', 'h', '--grace', 'abc', 'train.py'], /--grace/],
    ['--grace 0', ['-H', 'h', '--grace', '0', 'train.py'], /--grace/],
    ['--grace -1', ['-H', 'h', '--grace=-1', 'train.py'], /--grace/],
    ['--grace 10x', ['-H', 'h', '--grace', '10x', 'train.py'], /--grace/],
    ['--grace over a week', ['-H', 'h', '--grace', '200h', 'train.py'], /--grace/],
    ['--heartbeat-timeout 1', ['-H', 'h', '--heartbeat-timeout', '1', 'train.py'], /--heartbeat-timeout/],
    ['--heartbeat-timeout 500ms', ['-H', 'h', '--heartbeat-timeout', '500ms', 'train.py'], /--heartbeat-timeout/],
    ['--connect-timeout 0', ['-H', 'h', '--connect-timeout', '0', 'train.py'], /--connect-timeout/],
    ['--max-handshakes 0', ['-H', 'h', '--max-handshakes', '0', 'train.py'], /--max-handshakes/],
    ['--color purple', ['-H', 'h', '--color', 'purple', 'train.py'], /purple|color/],
    ['--user with a space', ['-H', 'h', '--user', 'bad user', 'train.py'], /--user/],
    ['--user starting with -', ['-H', 'h', '--user=-oProxy', 'train.py'], /--user/],
    ['--master-addr with ;', ['-H', 'h', '--master-addr', 'a;b', 'train.py'], /--master-addr/],
    ['--timeout 0', ['-H', 'h', '--timeout', '0', 'train.py'], /--timeout/],
    ['--timeout abc', ['-H', 'h', '--timeout', 'abc', 'train.py'], /--timeout/],
    ['--python empty', ['-H', 'h', '--python', '', 'train.py'], /--python/],
  ])('%s', async (_name, argv, message) => {
    const err = await usageError(argv)
    expect(err.code).toBe('USAGE')
    expect(err.exitCode).toBe(2)
    expect(err.message).toMatch(message)
  })
})

describe('parseArgs: --help and --version', () => {
  const read = (file: string): string =>
    readFileSync(fileURLToPath(new URL(`../../src/${file}`, import.meta.url)), 'utf8')
  // The launch's own options: its parser (cli/commands/run.ts) and the option groups it is built from
  // (cli/options/), the host options it shares with `fanout hosts` among them (not that command's own).
  const groups = readdirSync(fileURLToPath(new URL('../../src/cli/options/', import.meta.url)))
    .filter((f) => f.endsWith('.ts'))
    .sort()
  const source = [read('cli/commands/run.ts'), ...groups.map((f) => read(`cli/options/${f}`))].join('\n')
  const optionNames = [...source.matchAll(/\.option\('([a-z-]+)'/g)].map((m) => m[1] ?? '')

  it('the option definitions were found', () => {
    expect(optionNames.length).toBeGreaterThan(10)
    expect(optionNames).toContain('hostfile')
  })

  it.each([['--help'], ['-h']])('%s lists every option and examples', async (flag) => {
    const parsed = await parseArgs([flag], CWD)
    expect(parsed.kind).toBe('help')
    if (parsed.kind === 'run') return
    for (const name of optionNames) expect(parsed.text, `--${name}`).toContain(`--${name}`)
    expect(parsed.text).toContain('Examples:')
    expect(parsed.text).toMatch(/Usage: fanout/)
  })

  it('--help wins even with other flags before it', async () => {
    const parsed = await parseArgs(['-H', 'h', '--nproc-per-node', '2', '--help'], CWD)
    expect(parsed.kind).toBe('help')
  })

  it('--version', async () => {
    const parsed = await parseArgs(['--version'], CWD)
    expect(parsed.kind).toBe('version')
    if (parsed.kind !== 'run') expect(parsed.text).toMatch(/[0-9]+\.[0-9]+\.[0-9]+/)
  })
})

describe('parseDuration', () => {
  it.each<[string, number]>([
    ['10', 10],
    ['10s', 10],
    [' 10s ', 10],
    ['500ms', 0.5],
    ['2m', 120],
    ['1h', 3600],
    ['1.5', 1.5],
    ['0.5m', 30],
    ['168h', 7 * 24 * 3600],
  ])('%j → %i s', (text, seconds) => {
    expect(parseDuration('x', text)).toBe(seconds)
  })

  it.each(['', '0', '0s', 'abc', '1d', '-1', '1 s', '.5', '169h', '1e3', 'NaN'])('%j is refused', (text) => {
    expect(() => parseDuration('x', text)).toThrow(FanoutError)
  })
})

describe('parseArgs: --env, --env-file, --no-default-env', () => {
  const LOCAL = { HF_HOME: '/data/hf', SLURM_JOB_NODELIST: '' }
  const parse = async (flags: string[]): Promise<RunOptions> => {
    const parsed = await parseArgs(['-H', 'hosts', ...flags, 'train.py', '--env', 'X=script'], CWD, 100, LOCAL)
    if (parsed.kind !== 'run') throw new Error(`expected a run, got ${parsed.kind}`)
    expect(parsed.options.job.scriptArgs).toEqual(['--env', 'X=script'])
    return parsed.options
  }

  it.each<[string, string[], Partial<EnvOptions>]>([
    ['none given: nothing set', [], {}],
    ['--env NAME=VALUE', ['--env', 'A=b'], { envFlags: [['A', 'b']] }],
    ['--env=NAME=VALUE', ['--env=A=b=c'], { envFlags: [['A', 'b=c']] }],
    ['--env NAME: the local value', ['--env', 'HF_HOME'], { envFlags: [['HF_HOME', '/data/hf']] }],
    [
      'repeatable, in order',
      ['--env', 'A=1', '--env', 'HF_HOME', '--env', 'A=2'],
      {
        envFlags: [
          ['A', '1'],
          ['HF_HOME', '/data/hf'],
          ['A', '2'],
        ],
      },
    ],
    ['hostile bytes kept', ['--env', 'A= "q" \'s\' $HOME \\ \n\t'], { envFlags: [['A', ' "q" \'s\' $HOME \\ \n\t']] }],
    ['a value that looks like a flag', ['--env', 'A=--x'], { envFlags: [['A', '--x']] }],
    ['a quoted value keeps its quotes', ['--env', 'A="x"'], { envFlags: [['A', '"x"']] }],
    [
      '--env-file resolved, repeatable',
      ['--env-file', '.env', '--env-file', '/abs/b.env'],
      { envFiles: ['/home/me/proj/.env', '/abs/b.env'] },
    ],
    ['--no-default-env', ['--no-default-env'], { defaultEnv: false }],
    ['--default-env', ['--default-env'], {}],
  ])('%s', async (_name, flags, expected) => {
    const o = await parse(flags)
    for (const key of ['envFlags', 'envFiles', 'defaultEnv'] as const) expect(o.job.env[key]).toEqual(expected[key])
  })

  it.each<[string, string[], RegExp]>([
    ['--env NAME not set here', ['--env', 'NOPE'], /--env NOPE: NOPE is not set here/],
    ['--env with a bad name', ['--env', 'MY-VAR=1'], /"MY-VAR" is not a valid variable name/],
    ['--env empty', ['--env', ''], /--env needs a value/],
    ['--no-env', ['--no-env'], /--env needs a value/],
    ['--env-file empty', ['--env-file='], /--env-file needs a value/],
  ])('%s → usage error', async (_name, flags, message) => {
    const error = await parseArgs(['-H', 'hosts', ...flags, 'train.py'], CWD, 100, LOCAL).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(error).toBeInstanceOf(FanoutError)
    expect((error as FanoutError).exitCode).toBe(2)
    expect((error as FanoutError).message).toMatch(message)
  })
})

describe('--restarts', () => {
  it.each([
    [['--restarts', '2'], 2],
    [['--restarts', '0'], 0],
    [[], undefined],
  ])('%j → %s', async (flags, expected) => {
    const parsed = await parseArgs(['-H', 'h', ...flags, 'train.py'], '/cwd')
    expect(parsed.kind === 'run' ? parsed.options.job.restarts : 'not run').toBe(expected)
  })
  it.each([['101'], ['-1'], ['x']])('--restarts %s is refused', async (value) => {
    await expect(parseArgs(['-H', 'h', '--restarts', value, 'train.py'], '/cwd')).rejects.toThrow(
      /--restarts must be a whole number from 0 to 100/,
    )
  })
})

describe('output flags', () => {
  const H = ['-H', 'hosts.txt']
  it.each<[string[], PartialRun]>([
    [['--only', '0,4-5'], { output: { onlyRanks: [0, 4, 5] } }],
    [['--only-node', '1,gpu01'], { output: { onlyNodes: ['1', 'gpu01'] } }],
    [['--prefix', '{host}:{rank}'], { output: { prefix: '{host}:{rank}' } }],
    [['--no-prefix'], { output: { prefix: false } }],
    [['-q', '--timestamps', '--log-dir', 'logs'], { output: { quiet: true, timestamps: true, logDir: 'logs' } }],
    [['--json', '--no-rank-tags'], { output: { json: true, rankTags: false } }],
  ])('%j', async (flags, expected) => {
    expect(await options([...H, ...flags, 'train.py'])).toMatchObject(expected)
  })

  it.each<[string[], RegExp]>([
    [['--only', 'x'], /--only: "x" is not a number or range/],
    [['--only', '5-3'], /--only: "5-3"/],
    [['--only', '0', '--launcher', 'none'], /--only needs the ranks of the lines/],
    [['--only', '0', '--no-rank-tags'], /--only needs the ranks/],
    [['--quiet', '--only', '0'], /--quiet shows no job output/],
    [['--json', '--prefix', '{host}'], /--prefix has no effect with --json/],
    [['--prefix', '{hostname}'], /--prefix: unknown field \{hostname\}/],
    [['--only-node', '1,,2'], /--only-node: empty item/],
    [['--color', 'sometimes'], /color/],
  ])('%j is refused', async (flags, message) => {
    expect((await usageError([...H, ...flags, 'train.py'])).message).toMatch(message)
  })

  it('fanout completion prints a bash completion script; the script asks for the words of a flag', async () => {
    const script = await parseArgs(['completion'], CWD)
    expect(script.kind).toBe('help')
    expect(script.kind === 'help' && script.text).toMatch(
      /###-begin-fanout-completions-###[\s\S]*--get-yargs-completions[\s\S]*complete .*fanout/,
    )
    const words = await parseArgs(['--get-yargs-completions', 'fanout', '--launcher', ''], CWD)
    expect(words.kind === 'help' && words.text.split('\n')).toEqual(['torchrun', 'launch', 'none'])
  })
})

describe('bad input found by the corpus (issue 8)', () => {
  it.each<[string, string[], RegExp]>([
    ['an empty SCRIPT after --', ['-H', 'h', '--', ''], /^SCRIPT is empty/],
    ['an empty SCRIPT', ['-H', 'h', '', 'x'], /^SCRIPT is empty/],
    ['an empty SCRIPT for fanout check', ['check', '-H', 'h', ''], /^SCRIPT is empty/],
    [
      '--master-addr starting with -',
      ['-H', 'h', '--master-addr=-x', 'train.py'],
      /^--master-addr "-x" is not a host name or address/,
    ],
    [
      '--master-addr of colons only',
      ['-H', 'h', '--master-addr', '::::', 'train.py'],
      /^--master-addr "::::" is not a host name or address/,
    ],
    [
      '--master-addr not an IPv4 address',
      ['-H', 'h', '--master-addr', '10.0.0.256', 'train.py'],
      /^--master-addr "10.0.0.256"/,
    ],
  ])('%s', async (_name, argv, message) => {
    const err = await usageError(argv)
    expect(err.exitCode).toBe(2)
    expect(err.message).toMatch(message)
  })

  it('fanout check without a SCRIPT still checks the nodes only', async () => {
    const parsed = await parseArgs(['check', '-H', 'h'], CWD)
    expect(parsed.kind === 'run' && [parsed.options.job.script, parsed.options.mode]).toEqual(['', 'check'])
  })

  it.each(['10.0.0.1', 'fe80::1%eth0', '::1', 'node-1.example.com', 'gpu01'])(
    '--master-addr %j is accepted',
    async (addr) => {
      expect((await options(['-H', 'h', '--master-addr', addr, 'train.py'])).job.masterAddr).toBe(addr)
    },
  )
})

describe('--sync flags', () => {
  const H = ['-H', 'hosts.txt']
  it.each<[string[], { dir: string; deleteExtra: boolean } | undefined, string, string[]]>([
    // argv, sync options, chdir, script + args
    [['train.py'], undefined, CWD, ['train.py']],
    [['--sync', 'train.py', '--sync=x'], { dir: CWD, deleteExtra: false }, CWD, ['train.py', '--sync=x']],
    [['--sync=../other', 'train.py'], { dir: '/home/me/other', deleteExtra: false }, '/home/me/other', ['train.py']],
    [
      ['--sync-dir', '/abs/p', '--sync-delete', '-C', '/scratch/p', 'train.py'],
      { dir: '/abs/p', deleteExtra: true },
      '/scratch/p',
      ['train.py'],
    ],
  ])('%j', async (argv, sync, chdir, words) => {
    const o = await options([...H, ...argv])
    expect(o.sync === undefined ? undefined : { dir: o.sync.dir, deleteExtra: o.sync.deleteExtra }).toEqual(sync)
    expect(o.job.chdir).toBe(chdir)
    expect([o.job.script, ...o.job.scriptArgs]).toEqual(words)
  })

  it.each<[string[], RegExp]>([
    [['--sync-delete', 'train.py'], /--sync-delete only makes sense with --sync/],
    [['--sync-max', '1GiB', 'train.py'], /--sync-max only makes sense with --sync/],
    [['--sync', '--sync-max', 'lots', 'train.py'], /--sync-max/],
  ])('%j is refused', async (argv, message) => {
    expect((await usageError([...H, ...argv])).message).toMatch(message)
  })

  it('sync limits: the default, and --sync-max', async () => {
    expect((await options([...H, '--sync', 'train.py'])).sync?.limits).toEqual({ maxBytes: 1024 ** 3, maxFiles: 20000 })
    expect((await options([...H, '--sync', '--sync-max', '5GiB,50000', 'train.py'])).sync?.limits).toEqual({
      maxBytes: 5 * 1024 ** 3,
      maxFiles: 50000,
    })
  })
})
