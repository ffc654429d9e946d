import { describe, it, expect } from 'vitest'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  checkGpuSelection,
  defaultForwarded,
  forwardedByDefault,
  isSecretName,
  parseEnvFile,
  parseEnvFlag,
  resolveJobEnv,
} from '../../src/plan/env.js'
import { loadJobEnv } from '../../src/launch/job-env.js'
import { FanoutError } from '../../src/errors.js'

function refusal(f: () => unknown): FanoutError {
  try {
    f()
  } catch (e) {
    expect(e).toBeInstanceOf(FanoutError)
    expect((e as FanoutError).exitCode).toBe(2)
    return e as FanoutError
  }
  throw new Error('expected a usage error')
}

describe('forwardedByDefault', () => {
  it.each<[string, boolean]>([
    ['NCCL_DEBUG', true],
    ['NCCL_SOCKET_IFNAME', true],
    ['GLOO_SOCKET_IFNAME', true],
    ['TORCH_DISTRIBUTED_DEBUG', true],
    ['CUDA_LAUNCH_BLOCKING', true],
    ['CUDA_HOME', true],
    ['CUDA_VISIBLE_DEVICES', false],
    ['PYTHONPATH', true],
    ['PYTHONUNBUFFERED', true],
    ['PYTHONHASHSEED', true],
    ['OMP_NUM_THREADS', true],
    ['OMP_PROC_BIND', false],
    ['HF_HOME', true],
    ['HF_TOKEN', true],
    ['WANDB_API_KEY', true],
    ['PYENV_VERSION', false],
    ['TORCHINDUCTOR_CACHE_DIR', false],
    ['nccl_debug', false],
    ['NCCL', false],
    ['HOME', false],
    ['PATH', false],
    ['LD_LIBRARY_PATH', false],
    ['SSH_AUTH_SOCK', false],
    ['MY_NCCL_DEBUG', false],
  ])('%s → %s', (name, forwarded) => {
    expect(forwardedByDefault(name)).toBe(forwarded)
  })

  it('takes the matching variables of this machine, sorted, skipping unset ones', () => {
    const local = {
      PATH: '/bin',
      NCCL_DEBUG: 'INFO',
      HF_HOME: '/data/hf',
      CUDA_VISIBLE_DEVICES: '3',
      A: 'x',
      OMP_NUM_THREADS: '4',
      PYTHONPATH: undefined,
      PYENV_ROOT: '/r',
    }
    expect(Object.entries(defaultForwarded(local))).toEqual([
      ['HF_HOME', '/data/hf'],
      ['NCCL_DEBUG', 'INFO'],
      ['OMP_NUM_THREADS', '4'],
    ])
  })
})

describe('isSecretName', () => {
  it.each<[string, boolean]>([
    ['HF_TOKEN', true],
    ['HUGGING_FACE_HUB_TOKEN', true],
    ['WANDB_API_KEY', true],
    ['AWS_SECRET_ACCESS_KEY', true],
    ['DB_PASSWORD', true],
    ['SMTP_PASSWD', true],
    ['GOOGLE_APPLICATION_CREDENTIALS', true],
    ['BASIC_AUTH', true],
    ['my_token', true],
    ['NCCL_DEBUG', false],
    ['HF_HOME', false],
    ['PYTHONPATH', false],
    ['CUDA_VISIBLE_DEVICES', false],
  ])('%s → %s', (name, secret) => {
    expect(isSecretName(name)).toBe(secret)
  })
})

describe('parseEnvFlag', () => {
  const LOCAL = { HF_HOME: '/data/hf', EMPTY: '' }
  it.each<[string, string, [string, string]]>([
    ['NAME=VALUE', 'A=b', ['A', 'b']],
    ['the value is everything after the first =', 'A=b=c==', ['A', 'b=c==']],
    ['an empty value', 'A=', ['A', '']],
    [
      'spaces, quotes, $, backslashes, newlines kept',
      'A= x "y" \'z\' $HOME \\n\n\t',
      ['A', ' x "y" \'z\' $HOME \\n\n\t'],
    ],
    ['non-ASCII', 'A=naïve 日本語', ['A', 'naïve 日本語']],
    ['NAME forwards the local value', 'HF_HOME', ['HF_HOME', '/data/hf']],
    ['NAME set to the empty string here', 'EMPTY', ['EMPTY', '']],
    ['underscores and digits', '_a1=x', ['_a1', 'x']],
  ])('%s', (_name, word, pair) => {
    expect(parseEnvFlag(word, LOCAL)).toEqual(pair)
  })

  it.each<[string, string, RegExp]>([
    ['NAME not set here', 'NOPE', /--env NOPE: NOPE is not set here.*--env NOPE=VALUE/],
    ['empty name', '=x', /"" is not a valid variable name/],
    ['leading digit', '1A=x', /"1A" is not a valid variable name/],
    ['a dash', 'MY-VAR=x', /"MY-VAR" is not a valid/],
    ['a space', 'A B=x', /"A B" is not a valid/],
    ['a NUL byte', 'A=x\0y', /value of A contains a NUL byte/],
  ])('%s → usage error', (_name, word, message) => {
    expect(refusal(() => parseEnvFlag(word, LOCAL)).message).toMatch(message)
  })

  it('an error never shows the value', () => {
    expect(refusal(() => parseEnvFlag('BAD-TOKEN=hunter2', {})).message).not.toContain('hunter2')
  })
})

describe('parseEnvFile', () => {
  it.each<[string, string, Record<string, string>]>([
    ['NAME=value', 'A=b\n', { A: 'b' }],
    ['no final newline', 'A=b', { A: 'b' }],
    ['export prefix', 'export A=b\n', { A: 'b' }],
    ['a variable named export', 'export=1\n', { export: '1' }],
    ['comments and blank lines', '# a comment\n\n   \n  # indented comment\nA=b\n', { A: 'b' }],
    ['spaces around = and the line', '  A = b  \n', { A: 'b' }],
    ['unquoted: inline comment after a space', 'A=b # note\n', { A: 'b' }],
    ['unquoted: # inside a word stays', 'A=b#c\n', { A: 'b#c' }],
    ['unquoted: a value that is only a comment', 'A=#x\n', { A: '' }],
    ['unquoted: = and quotes inside', `A=b=c it's "x"\n`, { A: `b=c it's "x"` }],
    ['unquoted: $ is not expanded', 'A=$HOME ${X} $(id) `id`\n', { A: '$HOME ${X} $(id) `id`' }],
    ['unquoted: backslashes literal', 'A=a\\nb\\\\\n', { A: 'a\\nb\\\\' }],
    ['empty value', 'A=\n', { A: '' }],
    ['empty quotes', `A=''\nB=""\n`, { A: '', B: '' }],
    ['single quotes: literal', `A='  x \\n "y" $HOME # not a comment '\n`, { A: '  x \\n "y" $HOME # not a comment ' }],
    ['single quotes: comment after', `A='x' # note\n`, { A: 'x' }],
    ['double quotes: escapes', 'A="a\\nb\\tc\\rd\\"e\\\\f"\n', { A: 'a\nb\tc\rd"e\\f' }],
    ['double quotes: other backslashes stay', 'A="\\$HOME \\x \\\'"\n', { A: "\\$HOME \\x \\'" }],
    ['double quotes: single quote inside', `A="it's"\n`, { A: "it's" }],
    ['double quotes: $ not expanded', 'A="$HOME"\n', { A: '$HOME' }],
    ['double quotes: trailing backslash escaped', 'A="x\\\\"\n', { A: 'x\\' }],
    ['multi-line double quotes', 'A="line1\nline2\n\nline4"\nB=c\n', { A: 'line1\nline2\n\nline4', B: 'c' }],
    ['multi-line single quotes', "A='x\n# not a comment\ny'\n", { A: 'x\n# not a comment\ny' }],
    ['CRLF line ends', 'A=b\r\nB="c\r\nd"\r\n', { A: 'b', B: 'c\nd' }],
    ['a later line wins', 'A=1\nA=2\n', { A: '2' }],
    ['non-ASCII', 'A=naïve – 日本語 🚀\n', { A: 'naïve – 日本語 🚀' }],
    ['tabs around an unquoted value are trimmed', 'A=\tx\t\n', { A: 'x' }],
    ['tabs inside double quotes kept', 'A="\tx\t"\n', { A: '\tx\t' }],
    ['an empty file', '', {}],
  ])('%s', (_name, text, env) => {
    expect(parseEnvFile(text, 'f.env')).toEqual(env)
  })

  it.each<[string, string, string[]]>([
    ['no =', 'A=1\nJUSTANAME\n', ['f.env:2: expected NAME=VALUE']],
    [
      'bad name',
      'MY-VAR=1\n',
      ['f.env:1: "MY-VAR" is not a valid variable name (letters, digits and _, not starting with a digit)'],
    ],
    ['unclosed double quote names its line', 'A=1\nB="open\nC=2\n', ['f.env:2: the quote opened here is never closed']],
    ['unclosed single quote', "A='x\n", ['f.env:1: the quote opened here is never closed']],
    ['text after a closing quote', 'A="x"y\n', ['f.env:1: unexpected text after the closing quote of A']],
    ['a NUL byte', 'A=x\0y\n', ['f.env:1: the value of A contains a NUL byte, which no process can receive']],
    [
      'every error at once, numbered after multi-line values',
      '1X=a\nB="x\ny"\nC\nD=ok\n',
      [
        'f.env:1: "1X" is not a valid variable name (letters, digits and _, not starting with a digit)',
        'f.env:4: expected NAME=VALUE',
      ],
    ],
  ])('%s → usage error', (_name, text, errors) => {
    expect(refusal(() => parseEnvFile(text, 'f.env')).message.split('\n')).toEqual(errors)
  })
})

describe('resolveJobEnv: precedence', () => {
  const localEnv = { NCCL_DEBUG: 'WARN', HF_HOME: '/local/hf', PYTHONPATH: '/local/py', A: 'a' }
  it.each<
    [
      string,
      boolean,
      Array<Record<string, string>>,
      Array<[string, string]>,
      { forwarded: Record<string, string>; explicit: Record<string, string> },
    ]
  >([
    [
      'defaults only',
      true,
      [],
      [],
      { forwarded: { HF_HOME: '/local/hf', NCCL_DEBUG: 'WARN', PYTHONPATH: '/local/py' }, explicit: {} },
    ],
    ['--no-default-env', false, [], [['X', '1']], { forwarded: {}, explicit: { X: '1' } }],
    [
      'a file beats a default',
      true,
      [{ NCCL_DEBUG: 'INFO' }],
      [],
      { forwarded: { HF_HOME: '/local/hf', PYTHONPATH: '/local/py' }, explicit: { NCCL_DEBUG: 'INFO' } },
    ],
    [
      'the later file wins',
      false,
      [{ X: '1', Y: 'y' }, { X: '2' }],
      [],
      { forwarded: {}, explicit: { X: '2', Y: 'y' } },
    ],
    ['--env beats the files', false, [{ X: 'file' }], [['X', 'flag']], { forwarded: {}, explicit: { X: 'flag' } }],
    [
      'the later --env wins',
      false,
      [],
      [
        ['X', '1'],
        ['X', '2'],
      ],
      { forwarded: {}, explicit: { X: '2' } },
    ],
    [
      '--env beats a default',
      true,
      [],
      [['HF_HOME', '/x']],
      { forwarded: { NCCL_DEBUG: 'WARN', PYTHONPATH: '/local/py' }, explicit: { HF_HOME: '/x' } },
    ],
  ])('%s', (_name, defaults, files, flags, expected) => {
    expect(resolveJobEnv({ localEnv, defaults, files, flags })).toEqual(expected)
  })
})

describe('loadJobEnv', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fanout-env-'))
  const file = (name: string, content: string | Buffer): string => {
    const path = join(dir, name)
    writeFileSync(path, content)
    return path
  }

  it('reads the files in order, then the flags', () => {
    const a = file('a.env', 'X=a\nY=a\n')
    const b = file('b.env', 'Y=b\n')
    expect(
      loadJobEnv({ envFiles: [a, b], envFlags: [['Z', 'flag']], defaultEnv: false }, { NCCL_DEBUG: 'INFO' }),
    ).toEqual({ forwarded: {}, explicit: { X: 'a', Y: 'b', Z: 'flag' } })
    expect(loadJobEnv({}, { NCCL_DEBUG: 'INFO' })).toEqual({ forwarded: { NCCL_DEBUG: 'INFO' }, explicit: {} })
  })

  it.each<[string, () => string, RegExp]>([
    ['a missing file', () => join(dir, 'missing.env'), /--env-file .*missing\.env: cannot read it: no such file/],
    ['a directory', () => dir, /--env-file .*: cannot read it: is a directory/],
    [
      'not UTF-8',
      () => file('bin.env', Buffer.from([0x41, 0x3d, 0xff, 0xfe])),
      /--env-file .*bin\.env: not a text file/,
    ],
    ['a syntax error names file:line', () => file('bad.env', 'A=1\nB\n'), /bad\.env:2: expected NAME=VALUE/],
  ])('%s → usage error', (_name, path, message) => {
    expect(refusal(() => loadJobEnv({ envFiles: [path()] }, {})).message).toMatch(message)
  })
})

describe('checkGpuSelection', () => {
  const explicit = { forwarded: {}, explicit: { CUDA_VISIBLE_DEVICES: '0' } }
  it.each<
    [
      string,
      { forwarded: Record<string, string>; explicit: Record<string, string> },
      Array<{ host: string; gpus?: number[] }>,
      boolean,
    ]
  >([
    ['explicit CUDA_VISIBLE_DEVICES, no GPUs chosen', explicit, [{ host: 'a' }, { host: 'b' }], false],
    ['GPUs chosen, no explicit value', { forwarded: {}, explicit: {} }, [{ host: 'a', gpus: [0] }], false],
    ['both', explicit, [{ host: 'a' }, { host: 'b', gpus: [0, 1] }], true],
  ])('%s', (_name, env, hosts, refused) => {
    if (refused)
      expect(refusal(() => checkGpuSelection(env, hosts)).message).toMatch(
        /CUDA_VISIBLE_DEVICES .* already chose GPUs \(b: 0,1\)/,
      )
    else expect(() => checkGpuSelection(env, hosts)).not.toThrow()
  })
})

describe('env messages quote only the start of a huge name', () => {
  it('--env with a 100 000-character bad name', () => {
    const message = refusal(() => parseEnvFlag(`${'-'.repeat(100_000)}=1`, {})).message
    expect(message).toBe(
      `--env: "${'-'.repeat(80)}"… (100000 characters) is not a valid variable name (letters, digits and _, not starting with a digit)`,
    )
  })
})
