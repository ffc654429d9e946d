import { describe, it, expect } from 'vitest'
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { FanoutError } from '../../src/errors.js'
import { refuseNul, shellJoin, shellQuote } from '../../src/node/quote.js'
import { parseArgs } from '../../src/cli/dispatch.js'
import { mulberry32 } from './prng.js'

/** What the shell makes of the quoted words: each argument it received, NUL-terminated. */
function roundTrip(words: readonly string[], shell = '/bin/sh'): Buffer {
  return execFileSync(shell, ['-c', 'printf "%s\\0" ' + shellJoin(words)])
}

// sshd hands the command line to the user's login shell: bash is the usual one besides sh.
const OTHER_SHELLS = ['/bin/bash', '/bin/ksh', '/bin/mksh', '/bin/zsh'].filter((s) => existsSync(s))

const expected = (words: readonly string[]): Buffer => Buffer.concat(words.map((w) => Buffer.from(w + '\0', 'utf8')))

const TRICKY: string[] = [
  '',
  ' ',
  'plain',
  'two words',
  '  leading and trailing  ',
  "it's",
  "'",
  "''",
  '"',
  '"double"',
  `both ' and "`,
  `'"'"'`,
  '$HOME',
  '${HOME}',
  '$(id)',
  '$(echo $(id))',
  '`id`',
  '$((1+1))',
  'a;b',
  ';',
  'a && b || c',
  'a | b',
  '*',
  '*.py',
  '?',
  '[abc]',
  '{a,b}',
  'a\nb',
  '\n',
  'trailing newline\n',
  'tab\there',
  '\t',
  '\\',
  '\\\\',
  'back\\slash',
  "\\'",
  '\\n',
  'end\\',
  'héllo wörld',
  '日本語',
  '😀 emoji 🚀',
  'Ω≈ç√',
  '-',
  '--',
  '-rf',
  '--flag=value',
  '-n',
  '-e',
  '~',
  '~/x',
  '~root',
  'a=~',
  'A=b',
  '#not a comment',
  'a#b',
  '!',
  '!!',
  '%',
  '%1',
  '&',
  '<in',
  '>out',
  '2>&1',
  '(sub)',
  ')',
  '^',
  'a\rb',
  '\x01\x1b[31m\x7f',
  '\u00a0nbsp',
  'ends with space ',
  'x'.repeat(10000),
  "'".repeat(50),
]

describe('shellQuote / shellJoin through a real /bin/sh', () => {
  it.each(TRICKY.map((w) => [w]))('%j arrives byte for byte', (word) => {
    expect(roundTrip([word])).toEqual(expected([word]))
  })

  it('all the tricky words at once keep their boundaries', () => {
    expect(roundTrip(TRICKY)).toEqual(expected(TRICKY))
  })

  const POOL: string[] = [
    ...Array.from({ length: 0x7f - 0x20 }, (_, i) => String.fromCharCode(0x20 + i)), // all printable ASCII
    '\n',
    '\t',
    '\r',
    '\x01',
    '\x1b',
    '\x7f',
    'é',
    'ß',
    'Ω',
    '中',
    '日',
    '\u00a0',
    '\u200b',
    '😀',
    '🚀',
    '𝄞',
  ]

  function randomWords(seed: number, count: number): string[] {
    const rand = mulberry32(seed)
    return Array.from({ length: count }, () => {
      const length = Math.floor(rand() * 24)
      let word = ''
      for (let i = 0; i < length; i++) word += POOL[Math.floor(rand() * POOL.length)] ?? ''
      return word
    })
  }

  it.each([1, 2, 3])('300 random words (seed %i), one shell call', (seed) => {
    const words = randomWords(seed, 300)
    expect(roundTrip(words)).toEqual(expected(words))
  })

  it.each(OTHER_SHELLS.map((s) => [s]))('%s agrees on the tricky and random words', (shell) => {
    const words = [...TRICKY, ...randomWords(7, 300)]
    expect(roundTrip(words, shell)).toEqual(expected(words))
  })

  it('random words one by one (seed 42)', () => {
    for (const word of randomWords(42, 60)) expect(roundTrip([word]), JSON.stringify(word)).toEqual(expected([word]))
  })
})

describe('shellQuote: form', () => {
  it.each([
    ['plain', 'plain'],
    ['train.py', 'train.py'],
    ['/usr/bin/python3', '/usr/bin/python3'],
    ['--epochs=3', '--epochs=3'],
    ['user@host:22', 'user@host:22'],
    ['a,b+c%d', 'a,b+c%d'],
    ['', "''"],
    ['two words', "'two words'"],
    ["it's", "'it'\\''s'"],
    ['~', "'~'"],
    ['$x', "'$x'"],
    ['*', "'*'"],
  ])('%j → %s', (word, quoted) => {
    expect(shellQuote(word)).toBe(quoted)
  })

  it('shellJoin joins with single spaces', () => {
    expect(shellJoin(['a', 'b c', ''])).toBe("a 'b c' ''")
    expect(shellJoin([])).toBe('')
  })

  it.each(['\0', 'a\0b', 'trailing\0'])('NUL in a word throws a USAGE FanoutError: %j', (word) => {
    expect(() => shellQuote(word)).toThrow(FanoutError)
    try {
      shellJoin(['ok', word])
      expect.unreachable()
    } catch (e) {
      expect(e).toBeInstanceOf(FanoutError)
      expect((e as FanoutError).code).toBe('USAGE')
      expect((e as FanoutError).exitCode).toBe(2)
      expect((e as FanoutError).message).toMatch(/NUL/)
    }
  })
})

describe('refuseNul: a NUL anywhere on the command line is refused before anything else', () => {
  it.each<[string, string[], RegExp]>([
    ['a script argument', ['-H', 'h', 'train.py', 'a', 'x\0y'], /^word 5 of the command line contains a NUL byte/],
    [
      'a --setup line',
      ['-H', 'h', '--setup', 'echo\0', 'train.py'],
      /^word 4 of the command line \(after --setup\) contains a NUL byte/,
    ],
    [
      'an --env value (not shown: it may be a secret)',
      ['--env', 'TOKEN=se\0cret', 'train.py'],
      /^word 2 of the command line \(after --env\) contains a NUL byte, which no process can receive: arguments and environment values are C strings/,
    ],
    ['--flag=value', ['--chdir=/a\0b', 'train.py'], /^word 1 of the command line \(after --chdir\)/],
  ])('%s', (_name, words, message) => {
    let err: unknown
    try {
      refuseNul(words)
    } catch (e) {
      err = e
    }
    expect(err).toBeInstanceOf(FanoutError)
    expect((err as FanoutError).exitCode).toBe(2)
    expect((err as FanoutError).message).toMatch(message)
    expect((err as FanoutError).message).not.toContain('cret')
  })

  it('lets everything else through, control characters and non-ASCII included', () => {
    expect(() => refuseNul(['\x01\x1f\x7f', 'é中😀\uFEFF\u2028', '', '\n'])).not.toThrow()
  })

  // A real command line cannot hold a NUL (execve ends each word at the first); a caller of parseArgs can.
  it.each<[string, string[]]>([
    ['script argument', ['-H', 'hosts', 'train.py', 'a\0b']],
    ['script', ['-H', 'hosts', 'tr\0ain.py']],
    ['--env value', ['-H', 'hosts', '--env', 'A=x\0y', 'train.py']],
    ['--setup line', ['-H', 'hosts', '--setup', 'export A=\0', 'train.py']],
    ['--chdir', ['-H', 'hosts', '--chdir', '/x\0', 'train.py']],
    ['--python', ['-H', 'hosts', '--python', 'py\0', 'train.py']],
    ['fanout hosts', ['hosts', '--hosts', 'a\0b']],
  ])('parseArgs refuses a NUL in a %s: USAGE, exit 2', async (_name, argv) => {
    await expect(parseArgs(argv, '/tmp')).rejects.toMatchObject({
      code: 'USAGE',
      exitCode: 2,
      message: expect.stringMatching(/contains a NUL byte/),
    })
  })
})
