import { describe, it, expect } from 'vitest'
import { parseArgs } from '../../src/cli/dispatch.js'
import { FanoutError } from '../../src/errors.js'
import { parseHostfile, parseHostList, type HostEntry } from '../../src/hosts/hostfile.js'
import { selectHosts } from '../../src/hosts/select.js'
import { parseEnvFile } from '../../src/plan/env.js'
import { mulberry32 } from './prng.js'

/**
 * The parsers meet whatever a user, a script or a corrupted file hands them: they must either return
 * or throw their own FanoutError (exit 2 with a message), never anything else (an internal error and a
 * stack trace) and never hang. Seeded, so that a failure names an input that can be replayed; a crash
 * found here is fixed in the product and kept as a regression case in the module's own unit test.
 */

// A longer hunt: FANOUT_FUZZ_SEED=7 FANOUT_FUZZ_SCALE=20 npx vitest run --project unit test/unit/fuzz.test.ts
const SEED = Number(process.env.FANOUT_FUZZ_SEED ?? 0x5eed_f00d)
const SCALE = Number(process.env.FANOUT_FUZZ_SCALE ?? 1)
const CWD = '/home/me/proj'
// A few thousand inputs in all, within ~10 s on a loaded 2-core machine (parseArgs builds yargs: ~5 ms).
const ARGV_INPUTS = 1000 * SCALE
const HOSTFILE_INPUTS = 2000 * SCALE
const ENV_INPUTS = 1000 * SCALE
/** Far above what any input needs (most take well under a millisecond): a slower one is a bug. */
const MAX_MS_PER_INPUT = 2000

type Rand = () => number

const pick = <T>(rand: Rand, items: readonly T[]): T => items[Math.floor(rand() * items.length)] as T
const int = (rand: Rand, max: number): number => Math.floor(rand() * max)

// Characters that mean something to some parser, plus control characters, NUL, lookalikes and emoji.
const SPECIAL = [
  '[',
  ']',
  '@',
  ':',
  ',',
  '-',
  '=',
  '#',
  ' ',
  '\t',
  '\r',
  '\n',
  '\0',
  '\x1b',
  '\x7f',
  '%',
  '.',
  '_',
  ';',
  '$',
  '`',
  '"',
  "'",
  '\\',
  '/',
  '~',
  '*',
  '{',
  '}',
  'һ',
  'é',
  '🙂',
  '\u202e',
  '\ufeff',
  '\ud800',
]
const ALNUM = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'

function randomText(rand: Rand, maxLength: number): string {
  let s = ''
  const n = int(rand, maxLength + 1)
  for (let i = 0; i < n; i++) s += rand() < 0.5 ? (ALNUM[int(rand, ALNUM.length)] as string) : pick(rand, SPECIAL)
  return s
}

const NUMBERS = [
  '0',
  '1',
  '-1',
  '2',
  '007',
  '1.5',
  '1e3',
  '0x10',
  '+4',
  ' 4',
  '4 ',
  '65535',
  '65536',
  '70000',
  '4096',
  '4097',
  '99999999999999999999',
  '1e308',
  'Infinity',
  'NaN',
  '-0',
  '',
]
const DURATIONS = ['10', '10s', '500ms', '2m', '1h', '0', '-1', '1y', '169h', '0.001ms', '1e9', '.5', 's', 'ms']
const HOSTISH = [
  'h1',
  'h[1-3]',
  'gpu[5-1]',
  'a@h1:22',
  '[fe80::1]:22',
  'h1:0',
  'h1:65536',
  'host;rm -rf ~',
  '$(id)',
  '`id`',
  'a b',
  'h[1-100000]',
  'h1:0,1@h2',
  'h1:99999',
  'h1@',
  '@',
  '[',
  ']',
  '::',
  'h1,h1',
  'w0@w1:0,2',
]
const WORDS = [
  '--',
  '-',
  '-H',
  '-H -',
  '--hostfile',
  '--hostfile=-',
  'hosts',
  'check',
  'completion',
  'train.py',
  '-m',
  '--no-python',
  '-n',
  '-q',
  '-C',
  '-i',
  '-F',
  '-l',
  'none',
  'launch',
  'torchrun',
  'c10d',
  'auto',
  '{host}',
  '{nope}',
  '--get-yargs-completions',
  'A=1',
  'BAD NAME=1',
  '=1',
  '/abs/dir',
  'rel/dir',
  '~',
  '\0',
  'x'.repeat(10_000),
  '🙂'.repeat(100),
]

/** Every long and short flag `fanout --help` lists: the real yargs options, not a copy of them. */
async function flagNames(): Promise<string[]> {
  const help = await parseArgs(['--help'], CWD)
  if (help.kind !== 'help') throw new Error('--help did not print help')
  const names = new Set<string>()
  for (const line of help.text.split('\n')) {
    // `  -H, --hostfile  …` or `      --hosts  …`; wrapped descriptions are indented further.
    const m = /^ {2}(?:(-[A-Za-z]), | {4})(--[a-z][a-z-]*)/.exec(line)
    if (m?.[1]) names.add(m[1])
    if (m?.[2]) names.add(m[2])
  }
  return [...names]
}

function randomValue(rand: Rand): string {
  const r = rand()
  if (r < 0.25) return pick(rand, NUMBERS)
  if (r < 0.4) return pick(rand, DURATIONS)
  if (r < 0.6) return pick(rand, HOSTISH)
  if (r < 0.75) return pick(rand, WORDS)
  return randomText(rand, 24)
}

function randomArgv(rand: Rand, flags: readonly string[]): string[] {
  const argv: string[] = []
  const n = int(rand, 10)
  // Printing the help takes ~100 ms (yargs lays it out): a few inputs ask for it, not one in ten.
  if (rand() < 0.01) argv.push(pick(rand, ['--help', '-h', '--version']))
  for (let i = 0; i < n; i++) {
    const kind = rand()
    const flag = pick(rand, flags)
    if (kind < 0.45) argv.push(flag, randomValue(rand))
    else if (kind < 0.6) argv.push(`${flag}=${randomValue(rand)}`)
    else if (kind < 0.7) argv.push(flag)
    else if (kind < 0.77) argv.push(flag.replace(/^--/, '--no-'))
    else if (kind < 0.85) argv.push(pick(rand, WORDS))
    else argv.push(randomValue(rand))
  }
  // Mostly with a host list and a script, so that the later checks are reached too.
  if (rand() < 0.7) argv.unshift(pick(rand, ['-H', '--hosts', '--hostfile']), pick(rand, ['h', '-', 'h[1-3]', 'a,b']))
  if (rand() < 0.7)
    argv.push(pick(rand, ['train.py', '--', '-x.py', 'hosts']), ...(rand() < 0.5 ? [randomValue(rand)] : []))
  // A command is one only as the first word.
  const r = rand()
  if (r < 0.1) argv.unshift('hosts')
  else if (r < 0.15) argv.unshift('check')
  else if (r < 0.16) argv.unshift('completion')
  return argv
}

const LINES = [
  'h1',
  'h1 slots=2',
  'alice@h2:2222',
  '[fe80::1]:22',
  'fe80::1',
  'gpu[01-16] slots=8',
  'rack[1-2]-node[01-04]',
  'alice@gpu[1-4]:2222',
  '10.0.0.[1-4]',
  'h3 max_slots=8',
  '# comment',
  '',
  'localhost',
  'node-1.example.com.',
  'h[1-3,7]',
]

/** A valid line, then a few mutations: inserted, deleted or replaced characters, brackets, huge numbers. */
function mutatedLine(rand: Rand): string {
  let line = pick(rand, LINES)
  const mutations = int(rand, 4)
  for (let m = 0; m < mutations; m++) {
    const at = int(rand, line.length + 1)
    const r = rand()
    const insert =
      r < 0.5
        ? pick(rand, SPECIAL)
        : r < 0.65
          ? pick(rand, [
              '99999999999999999999',
              '65536',
              '0',
              '-1',
              '[1-99999]',
              rand() < 0.1 ? '[0-65535]' : '[0-99]',
              '[1-2][1-2]',
              'slots=',
              ' slots=99999',
              ' slots=2 slots=3',
            ])
          : r < 0.85
            ? randomText(rand, 6)
            : ''
    const remove = r >= 0.85 ? int(rand, 4) : 0
    line = line.slice(0, at) + insert + line.slice(at + remove)
  }
  return line
}

function randomHostfile(rand: Rand): string {
  const lines = Array.from({ length: int(rand, 8) }, () => mutatedLine(rand))
  if (rand() < 0.05) lines.push('x'.repeat(int(rand, 100_000)))
  if (rand() < 0.05) lines.push(...Array.from({ length: 2000 }, (_, i) => `n${i}${rand() < 0.01 ? '[' : ''}`))
  return lines.join(pick(rand, ['\n', '\r\n', '\r', '\n\n']))
}

/**
 * Runs one input: a return or a FanoutError is fine; anything else fails with the input to replay.
 * Returns whether it was accepted, so that a test can tell the inputs reach past the first check.
 */
async function check(what: string, input: unknown, f: () => unknown): Promise<boolean> {
  const started = performance.now()
  let accepted = true
  try {
    await f()
  } catch (e) {
    if (!(e instanceof FanoutError))
      throw new Error(`${what} threw ${e instanceof Error ? e.stack : String(e)}\ninput: ${JSON.stringify(input)}`)
    expect(e.exitCode, `${what}: ${JSON.stringify(input)}`).toBe(2)
    expect(e.message.trim(), `${what}: ${JSON.stringify(input)}`).not.toBe('')
    accepted = false
  }
  const ms = performance.now() - started
  expect(ms, `${what} took ${ms} ms: ${JSON.stringify(input).slice(0, 500)}`).toBeLessThan(MAX_MS_PER_INPUT)
  return accepted
}

describe('fuzz: the parsers return or throw a FanoutError, and never hang', () => {
  it(
    'parseArgs on random command lines made of real flags and odd values',
    async () => {
      const all = await flagNames()
      expect(all).toEqual(
        expect.arrayContaining([
          '--hostfile',
          '-H',
          '--hosts',
          '--nproc-per-node',
          '--no-python',
          '--env-file',
          '--only',
          '--help',
        ]),
      )
      const flags = all.filter((f) => !['--help', '-h', '--version'].includes(f))
      const rand = mulberry32(SEED)
      let accepted = 0
      for (let i = 0; i < ARGV_INPUTS; i++) {
        const argv = randomArgv(rand, flags)
        const env = rand() < 0.2 ? { SLURM_JOB_NODELIST: pick(rand, HOSTISH), A: 'x' } : {}
        if (await check('parseArgs', { argv, env }, () => parseArgs(argv, CWD, 100, env))) accepted++
      }
      // Mostly refused, as random flags should be, but not all: the later checks were reached too.
      expect(accepted).toBeGreaterThan(ARGV_INPUTS / 50)
    },
    30_000 * SCALE,
  )

  it(
    'parseHostfile, parseHostList and selectHosts on mutated host lists',
    async () => {
      const rand = mulberry32(SEED + 1)
      let accepted = 0
      for (let i = 0; i < HOSTFILE_INPUTS; i++) {
        const text = randomHostfile(rand)
        let hosts: HostEntry[] = []
        if (await check('parseHostfile', text, () => ({ hosts } = parseHostfile(text, 'f')))) accepted++
        const filter =
          rand() < 0.5 ? { include: mutatedLine(rand).replace(/\s.*/, '') } : { exclude: pick(rand, HOSTISH) }
        const selection = {
          ...filter,
          ...(rand() < 0.3 ? { numGpus: 1 + int(rand, 8) } : {}),
          ...(rand() < 0.3 ? { numNodes: 1 + int(rand, 8) } : {}),
        }
        if (hosts.length > 0) await check('selectHosts', { text, selection }, () => selectHosts(hosts, selection))
        await check('parseHostList', text, () => parseHostList(text.replace(/\n/g, ','), '--hosts'))
      }
      expect(accepted).toBeGreaterThan(HOSTFILE_INPUTS / 20)
    },
    30_000 * SCALE,
  )

  it(
    'parseEnvFile on mutated dotenv files',
    async () => {
      const rand = mulberry32(SEED + 2)
      const lines = ['A=1', 'export B="two\\nlines"', "C='x y'", 'D=v # comment', '# c', '', 'E="open', "F='", 'G']
      for (let i = 0; i < ENV_INPUTS; i++) {
        const text = Array.from({ length: int(rand, 6) }, () => {
          let line = pick(rand, lines)
          for (let m = int(rand, 3); m > 0; m--) {
            const at = int(rand, line.length + 1)
            line = line.slice(0, at) + pick(rand, SPECIAL) + line.slice(at)
          }
          return line
        }).join('\n')
        await check('parseEnvFile', text, () => parseEnvFile(text, '.env'))
      }
    },
    30_000 * SCALE,
  )
})
