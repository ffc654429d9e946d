import { spawn } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { parseArgs } from '../../src/cli/dispatch.js'
import { loadJobEnv } from '../../src/launch/job-env.js'
import { commandFloor } from '../../src/plan/launcher.js'
import { shellQuote } from '../../src/node/quote.js'
import { MAX_COMMAND_BYTES } from '../../src/node/job.js'
import { mulberry32 } from '../unit/prng.js'
import {
  cluster,
  clusterArgs,
  connectionCount,
  describeCluster,
  fanoutEnv,
  host,
  runFanout,
  waitNoSurvivors,
  writeWork,
  type FanoutRun,
} from './cluster.js'

/**
 * No injection (issue 8): script arguments, environment values, --setup lines and paths reach the
 * processes on real hosts byte for byte. Strings come from a seeded generator over a weighted alphabet
 * of what shells, dotenv parsers and launchers treat specially; the remote program reports what it got
 * as hex (argv, os.environb, its working directory), compared with the expected UTF-8 bytes. A failing
 * case names its seed and index. Few fanout runs, as each costs seconds: --launcher none runs python3
 * directly for the bulk, and one torchrun run covers torchrun and the rank tagger.
 */

const NODES = ['h1', 'h2', 'h3'].map(host)
const BIN = fileURLToPath(new URL('../../bin/fanout.js', import.meta.url))

// --- The generator ---------------------------------------------------------------------------------

const CONTROLS = [
  ...Array.from({ length: 0x1f }, (_, i) => String.fromCharCode(i + 1)).filter((c) => !'\t\n\r'.includes(c)),
  '\x7f',
]
const PIECES: ReadonlyArray<readonly [string, number]> = [
  ["'", 8],
  ['"', 6],
  ['\\', 6],
  ['$', 5],
  ['$(id)', 3],
  ['`', 4],
  [';', 3],
  ['&&', 2],
  ['|', 2],
  ['*', 3],
  ['?', 2],
  ['~', 2],
  ['!', 2],
  ['#', 3],
  ['%', 2],
  ['{}', 2],
  ['[]', 2],
  ['\n', 4],
  ['\r', 2],
  ['\t', 3],
  [' ', 8],
  ['=', 3],
  ['-', 2],
  ['--', 1],
  ['é', 2],
  ['中', 2],
  ['😀', 2],
  ['\uFEFF', 1],
  ['\u2028', 1],
  ['a', 8],
  ['Z', 2],
  ['0', 2],
  ['_', 1],
  ['/', 1],
  ['.', 1],
  ...CONTROLS.map((c) => [c, 0.3] as const),
]
const TOTAL_WEIGHT = PIECES.reduce((n, [, w]) => n + w, 0)

function piece(rand: () => number): string {
  let r = rand() * TOTAL_WEIGHT
  for (const [p, w] of PIECES) if ((r -= w) < 0) return p
  return 'a'
}

/** A string of about `length` UTF-16 units from the alphabet; sometimes starting with - or --. */
function nasty(rand: () => number, length: number): string {
  const lead = rand()
  let s = lead < 0.1 ? '-' : lead < 0.15 ? '--' : ''
  while (s.length < length) s += piece(rand)
  return s
}

/** Lengths from 0 to ~5000, most of them short. */
function someLength(rand: () => number): number {
  const r = rand()
  if (r < 0.5) return Math.floor(rand() * 12)
  if (r < 0.8) return 12 + Math.floor(rand() * 90)
  if (r < 0.95) return 100 + Math.floor(rand() * 500)
  return 600 + Math.floor(rand() * 4400)
}

// Fixed cases first, so that every run has them whatever the seed does.
const EDGES = [
  '',
  ' ',
  '-',
  '--',
  '-h',
  '--help',
  '-c',
  "'",
  '"',
  '\\',
  '$',
  '$(id)',
  '`id`',
  '\n',
  '\r\n',
  '\t',
  '~',
  '~/x',
  '#',
  '*',
  '!',
  '=',
  'a=b',
  '\uFEFF',
  '\u2028',
  '😀',
  '\x01',
  '\x7f',
  "'\\''",
  '"$HOME"',
]

/** `count` strings: the fixed cases first (unless `edges` is false), then generated ones. */
function generate(seed: number, count: number, edges = true): string[] {
  const rand = mulberry32(seed)
  return Array.from({ length: count }, (_, i) => (edges ? EDGES[i] : undefined) ?? nasty(rand, someLength(rand)))
}

const hex = (s: string): string => Buffer.from(s, 'utf8').toString('hex')
/** The bytes each word takes once quoted for the shell, with its space. */
const quotedBytes = (words: readonly string[]): number =>
  words.reduce((n, w) => n + Buffer.byteLength(shellQuote(w)) + 1, 0)

// --- The remote side -------------------------------------------------------------------------------

// Writes what this process received to $FO_OUT/<tag>.<hostname>.<RANK or ->.json: argv (after the
// script), argv[0], the working directory and the whole environment, all as hex of the raw bytes.
const REPORTER = `import json, os, socket, sys
out = os.environ["FO_OUT"]
name = "%s.%s.%s.json" % (os.environ.get("FO_TAG", "x"), socket.gethostname(), os.environ.get("RANK", "-"))
report = {
    "argv0": os.fsencode(sys.argv[0]).hex(),
    "argv": [os.fsencode(a).hex() for a in sys.argv[1:]],
    "cwd": os.getcwdb().hex(),
    "env": {k.hex(): v.hex() for k, v in os.environb.items()},
}
with open(os.path.join(out, name + ".tmp"), "w") as f:
    json.dump(report, f)
os.rename(os.path.join(out, name + ".tmp"), os.path.join(out, name))
print("reported " + name)
`

interface Report {
  argv0: string
  argv: string[]
  cwd: string
  env: Record<string, string>
}

const HOSTNAMES = ['fo-h1', 'fo-h2', 'fo-h3']

let root = ''
let out = ''
const hostfile = (): string => writeWork('hosts-injection', 'h1\nh2\nh3\n')

function readReport(tag: string, hostname: string, rank = '-'): Report {
  return JSON.parse(readFileSync(join(out, `${tag}.${hostname}.${rank}.json`), 'utf8')) as Report
}

/** A directory under the work directory that the test user can enter, with a file in it. */
function makeDir(name: string, file?: { name: string; content: string }): string {
  const dir = join(root, name)
  mkdirSync(dir)
  chmodSync(dir, 0o755)
  if (file) writeFileSync(join(dir, file.name), file.content, { mode: 0o644 })
  return dir
}

/** Expects every expected variable in a report's environment, byte for byte; names the first that differs. */
function expectEnv(report: Report, expected: Record<string, string>, where: string): void {
  for (const [name, value] of Object.entries(expected)) {
    expect(report.env[hex(name)], `${where}: ${name} = ${JSON.stringify(value).slice(0, 200)}`).toBe(hex(value))
  }
}

function expectArgv(report: Report, expected: readonly string[], where: string): void {
  expect(report.argv.length, where).toBe(expected.length)
  // Index by index, so that a failure names the case (seed, index) and shows the string.
  for (const [i, a] of expected.entries())
    expect(report.argv[i], `${where}: argument ${i} = ${JSON.stringify(a).slice(0, 200)}`).toBe(hex(a))
}

/**
 * Runs fanout through /bin/sh, so that a word or a variable can hold bytes that are not UTF-8 (spawn
 * takes strings: a Buffer argument would be decoded first). `prelude` is sh code run before the exec;
 * `tail` is sh words appended to fanout's arguments (e.g. "$(printf '\\377')").
 */
function runFanoutSh(args: string[], prelude: string, tail: string): Promise<FanoutRun> {
  const started = Date.now()
  const child = spawn('/bin/sh', ['-c', `${prelude}\nexec "$@" ${tail}`, 'sh', process.execPath, '--', BIN, ...args], {
    cwd: cluster?.work,
    env: fanoutEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (b: Buffer) => (stdout += b.toString()))
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()))
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000)
  return new Promise((resolve) => {
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr, ms: Date.now() - started })
    })
  })
}

// Directory and script names with what a shell would act on; no / and no NUL, which no file name can hold.
const DIR_A = `a 'q' "dq" $HOME \`id\` ;|&*?~!#%{}[] é中😀\nnext`
const DIR_B = `-b $(id) \\ \t\r\uFEFF\u2028 x=y`
const DIR_C = `c "x" 'y'\n😀 $PATH ~ ;`
const SCRIPT_A = `rep 'o' "$x" \`y\` ;é\n.py`
const SCRIPT_C = `tr'ain "$1" \`z\`\n中.py`

afterEach(async () => {
  expect(await waitNoSurvivors(cluster?.hosts ?? [])).toEqual([])
})

describeCluster('no injection: what is given arrives byte for byte on h1–h3', () => {
  beforeAll(() => {
    root = mkdtempSync(join(cluster?.work ?? '', 'injection-'))
    chmodSync(root, 0o755)
    out = join(root, 'out')
    mkdirSync(out)
    chmodSync(out, 0o777)
  })

  it('200 generated script arguments (seed 1, one of 30 KB), in a --chdir and a script with such names; invalid UTF-8 becomes U+FFFD', async () => {
    const args = [...generate(1, 200), nasty(mulberry32(11), 30_000)]
    // Everything must fit in one command (see the limit test); this keeps the case honest about it.
    expect(quotedBytes(args)).toBeLessThan(MAX_COMMAND_BYTES - 10_000)
    expect(quotedBytes(args)).toBeGreaterThan(60_000)
    const dir = makeDir(DIR_A, { name: SCRIPT_A, content: REPORTER })
    // Bytes that are not UTF-8, as an argument and as a forwarded variable: Node decodes both as UTF-8,
    // each invalid sequence becoming U+FFFD, before fanout sees them. That is what arrives.
    const invalidArg = Buffer.from([0x61, 0xff, 0xfe, 0x62, 0xe4, 0xb8, 0x63, 0xed, 0xa0, 0x80, 0x64, 0xc0, 0xaf])
    const invalidEnv = Buffer.from([0x78, 0xff, 0x79, 0xe2, 0x82])
    const printf = (b: Buffer): string =>
      `"$(printf '${[...b].map((x) => `\\${x.toString(8).padStart(3, '0')}`).join('')}')"`
    const run = await runFanoutSh(
      [
        '-H',
        hostfile(),
        ...clusterArgs(),
        '--chdir',
        dir,
        '--env',
        `FO_OUT=${out}`,
        '--env',
        'FO_TAG=args',
        '--env',
        'FO_INVALID',
        '--launcher',
        'none',
        '--',
        '/usr/bin/python3',
        SCRIPT_A,
        ...args,
      ],
      `FO_INVALID=${printf(invalidEnv)}; export FO_INVALID`,
      printf(invalidArg),
    )
    expect(run.code, run.stderr).toBe(0)
    const replaced = (b: Buffer): string => new TextDecoder('utf-8').decode(b) // WHATWG: one U+FFFD per maximal invalid subpart
    expect(replaced(invalidArg)).toBe('a\uFFFD\uFFFDb\uFFFDc\uFFFD\uFFFD\uFFFDd\uFFFD\uFFFD')
    for (const h of HOSTNAMES) {
      const r = readReport('args', h)
      expectArgv(r, [...args, replaced(invalidArg)], `${h} (seed 1)`)
      expect(r.argv0).toBe(hex(SCRIPT_A))
      expect(r.cwd).toBe(hex(dir))
      expectEnv(r, { FO_INVALID: replaced(invalidEnv), FO_OUT: out }, h)
    }
  })

  it('--env, --env-file and --setup with generated values (seed 2, one of 30 KB); names the job wrapper once used for itself; set-up lines as code', async () => {
    const values = generate(2, 80)
    // One value of 30 KB, with --env only (twice would not fit in one command with the rest).
    const env = {
      ...Object.fromEntries(values.map((v, i) => [`FO_E_${i}`, v])),
      FO_LONG: nasty(mulberry32(12), 30_000),
    }
    // Lower-case names that the job wrapper used to keep its own state in (its export loop's counter, the
    // heartbeat and grace it gave the watchdog, the directory); the probe's variables. (i, m and step,
    // its set-up loop's, are assigned by a set-up line below: they are the user's to change there.)
    const wrapperNames = Object.fromEntries(
      ['n', 'hb', 'grace', 'dir', 'pg', 'py', 'port', 'script', 'want_port'].map((k, j) => [
        k,
        values[values.length - 1 - j] ?? '',
      ]),
    )
    // The env file says the same values in the dotenv forms that can express them, rotating between
    // unquoted (no surrounding blanks, no #, quote or line break), '…' (no ' and no CR LF, which is read
    // as LF) and "…" (any: backslash, " and CR escaped, the rest literal, newlines too).
    const forms = { bare: 0, single: 0, double: 0 }
    const lines = values.flatMap((v, i) => {
      const bare = v === v.trim() && !/[#'"\n\r]/.test(v) && !/^export\s/.test(v)
      const single = !v.includes("'") && !v.includes('\r\n')
      const choice = [bare && 'bare', single && 'single', 'double'].filter(Boolean)[i % 3] ?? 'double'
      forms[choice as keyof typeof forms]++
      const text =
        choice === 'bare'
          ? v
          : choice === 'single'
            ? `'${v}'`
            : `"${v.replace(/[\\"]/g, (c) => `\\${c}`).replace(/\r/g, '\\r')}"`
      return [...(i % 7 === 0 ? ['# a comment line', ''] : []), `${i % 2 ? 'export ' : ''}FO_F_${i}=${text}`]
    })
    expect(forms.bare).toBeGreaterThan(5)
    expect(forms.single).toBeGreaterThan(5)
    expect(forms.double).toBeGreaterThan(5)
    const envFile = join(root, 'generated.env')
    writeFileSync(envFile, lines.join('\n') + '\n', { mode: 0o644 })
    // Set-up lines: each generated string quoted into a printf to a file and into an export; and code.
    const setupStrings = generate(3, 40)
    const setup = [
      ...setupStrings.map(
        (s, j) => `printf '%s' ${shellQuote(s)} > ${shellQuote(join(out, `setup-${j}.`))}"$(uname -n)"`,
      ),
      ...setupStrings.map((s, j) => `export FO_S_${j}=${shellQuote(s)}`),
      `X='a b'; Y="$X \\"q\\" \\$HOME \\\`x\\\`"; export FO_CODE_1="$X|$Y"`,
      'for i in 1 2 3\ndo FO_CODE_2="${FO_CODE_2-}$i"\ndone\nexport FO_CODE_2',
      `export FO_CODE_3="$(cat <<'EOF'\n$x \`y\` 'z' "w" \\\nEOF\n)"`,
      'shift; shift; set -- clobbered; m=0 step=x', // the wrapper's set-up loop kept its state in i, m and step
    ]
    const args = generate(4, 12)
    expect(
      quotedBytes([
        ...Object.entries({ ...env, ...wrapperNames }).map(([k, v]) => `${k}=${v}`),
        ...values,
        ...setup,
        ...args,
      ]),
    ).toBeLessThan(MAX_COMMAND_BYTES - 5_000)
    const dir = makeDir(DIR_B, { name: 'report.py', content: REPORTER })
    const run = await runFanout([
      '-H',
      hostfile(),
      ...clusterArgs(),
      '--chdir',
      dir,
      '--env',
      `FO_OUT=${out}`,
      '--env',
      'FO_TAG=env',
      ...Object.entries({ ...env, ...wrapperNames }).flatMap(([k, v]) => ['--env', `${k}=${v}`]),
      '--env-file',
      envFile,
      ...setup.flatMap((s) => ['--setup', s]),
      '--launcher',
      'none',
      '--',
      '/usr/bin/python3',
      'report.py',
      ...args,
    ])
    expect(run.code, run.stderr).toBe(0)
    const fromFile = Object.fromEntries(values.map((v, i) => [`FO_F_${i}`, v]))
    const fromSetup = Object.fromEntries(setupStrings.map((s, j) => [`FO_S_${j}`, s]))
    const code = { FO_CODE_1: 'a b|a b "q" $HOME `x`', FO_CODE_2: '123', FO_CODE_3: `$x \`y\` 'z' "w" \\` }
    for (const h of HOSTNAMES) {
      const r = readReport('env', h)
      expectEnv(r, env, `${h} --env (seed 2)`)
      expectEnv(r, wrapperNames, `${h} --env, wrapper names`)
      expectEnv(r, fromFile, `${h} --env-file (seed 2)`)
      expectEnv(r, fromSetup, `${h} --setup export (seed 3)`)
      expectEnv(r, code, `${h} --setup code`)
      // shift and set -- in a set-up line do not take the launcher's arguments.
      expectArgv(r, args, `${h} argv (seed 4)`)
      expect(r.cwd).toBe(hex(dir))
      for (const [j, s] of setupStrings.entries()) {
        expect(
          readFileSync(join(out, `setup-${j}.${h}`)).toString('hex'),
          `${h} setup line ${j}: ${JSON.stringify(s).slice(0, 200)}`,
        ).toBe(hex(s))
      }
    }
  })

  it('torchrun and the rank tagger: the fixed cases and 30 generated arguments (seed 5), environment and a set-up line reach every rank', async () => {
    const args = [...EDGES, ...generate(5, 30, false)]
    const env = Object.fromEntries(generate(6, 10, false).map((v, i) => [`FO_T_${i}`, v]))
    const dir = makeDir(DIR_C, { name: SCRIPT_C, content: REPORTER })
    const line = nasty(mulberry32(7), 300)
    const run = await runFanout([
      '-H',
      hostfile(),
      ...clusterArgs(),
      '--nproc-per-node',
      '1',
      '--chdir',
      dir,
      '--env',
      `FO_OUT=${out}`,
      '--env',
      'FO_TAG=torch',
      ...Object.entries(env).flatMap(([k, v]) => ['--env', `${k}=${v}`]),
      '--setup',
      `export FO_SETUP_LINE=${shellQuote(line)}`,
      '--',
      SCRIPT_C,
      ...args,
    ])
    expect(run.code, run.stderr).toBe(0)
    for (const [rank, h] of HOSTNAMES.entries()) {
      expect(run.stdout).toContain(`[n${rank} h${rank + 1} r${rank}]  reported torch.${h}.${rank}.json`)
      const r = readReport('torch', h, String(rank))
      expectArgv(r, args, `${h} rank ${rank} (seed 5)`)
      expect(r.argv0).toBe(hex(SCRIPT_C))
      expect(r.cwd).toBe(hex(dir))
      expectEnv(r, { ...env, FO_SETUP_LINE: line, RANK: String(rank) }, `${h} rank ${rank}`)
    }
  })

  describe('the 128 KiB limit on one command (Linux MAX_ARG_STRLEN)', () => {
    const flags = (dir: string): string[] => [
      '-H',
      hostfile(),
      ...clusterArgs(),
      '--chdir',
      dir,
      '--launcher',
      'none',
      '--',
    ]
    const marker = (): string => join(out, 'over-limit-ran')
    const program = (): string[] => ['/bin/sh', '-c', 'touch "$1"; echo "LEN ${#2}"', 'sh', marker()]
    /** The lower bound fanout computes before connecting, for these arguments (as the CLI would parse them, and launch/run.ts check them). */
    async function floorOf(args: string[]): Promise<number> {
      const parsed = await parseArgs(args, cluster?.work ?? '', 100, fanoutEnv())
      if (parsed.kind !== 'run') throw new Error('not a launch')
      const { launcher, job, output, teardown } = parsed.options
      return commandFloor({ launcher, job, rankTags: output.rankTags, teardown }, loadJobEnv(job.env, fanoutEnv()))
        .total
    }
    /** The arguments with a last one sized so that the lower bound is `target` bytes. */
    const sized = async (target: number): Promise<string[]> => {
      // 10 000 bytes: enough for the job's command to be the larger one (the probe's is with short arguments).
      const base = await floorOf([...flags(root), ...program(), 'x'.repeat(10_000)])
      const args = [...flags(root), ...program(), 'x'.repeat(10_000 + target - base)]
      expect(await floorOf(args)).toBe(target)
      return args
    }

    it('over it: refused before connecting, exit 2, naming the limit and the size', async () => {
      const before = NODES.map(connectionCount)
      const run = await runFanout([...flags(root), ...program(), "'".repeat(40_000)])
      expect(run.code).toBe(2)
      expect(run.stderr).toMatch(
        /^fanout: the command for each node would be at least (\d+) bytes, over the limit of 131071 bytes \(Linux's MAX_ARG_STRLEN, 128 KiB/m,
      )
      expect(Number(/at least (\d+) bytes/.exec(run.stderr)?.[1])).toBeGreaterThan(160_000)
      expect(run.stderr).toMatch(
        /the program and its arguments take 16\d{4} bytes, the environment \d+, the set-up lines 0, and fanout's own wrapper \d+\. Pass large inputs in a file instead\./,
      )
      expect(NODES.map(connectionCount)).toEqual(before)
    })

    it("the lower bound fits but a node's real command does not: refused after the probe, before any node is launched", async () => {
      const args = await sized(MAX_COMMAND_BYTES - 5)
      const run = await runFanout(args)
      expect(run.code, run.stderr).toBe(2)
      const size = Number(
        /fanout: the command for each node would be (\d+) bytes, over the limit of 131071 bytes/.exec(run.stderr)?.[1],
      )
      expect(size).toBeGreaterThan(MAX_COMMAND_BYTES)
      expect(size).toBeLessThan(MAX_COMMAND_BYTES + 300) // the bound is close: only the probed values were missing
      expect(run.stderr).toContain('probe: 3/3 nodes ok')
      expect(run.stderr).not.toMatch(/launch:|Argument list too long/)
      expect(existsSync(marker())).toBe(false)
    })

    it('just under it: runs, and every node gets the whole argument', async () => {
      const args = await sized(MAX_COMMAND_BYTES - 250)
      const run = await runFanout(args)
      expect(run.code, run.stderr).toBe(0)
      const length = (args[args.length - 1] ?? '').length
      // fanout's own wrapper, watchdog included, and the launcher's words take the rest: about 4 KB.
      expect(length).toBeGreaterThan(126_500)
      for (const n of [0, 1, 2]) expect(run.stdout).toContain(`[n${n} h${n + 1}]  LEN ${length}`)
      expect(existsSync(marker())).toBe(true)
    })
  })

  it('a NUL or invalid UTF-8 in an --env-file is refused before connecting (exit 2, file:line)', async () => {
    const before = NODES.map(connectionCount)
    const nul = join(root, 'nul.env')
    writeFileSync(nul, 'FO_OK=1\nFO_NUL="a\0b"\n', { mode: 0o644 })
    const refusedNul = await runFanout([
      '-H',
      hostfile(),
      ...clusterArgs(),
      '--env-file',
      nul,
      '--launcher',
      'none',
      '--',
      'true',
    ])
    expect(refusedNul.code).toBe(2)
    expect(refusedNul.stderr).toContain(
      `fanout: ${nul}:2: the value of FO_NUL contains a NUL byte, which no process can receive`,
    )
    const latin1 = join(root, 'latin1.env')
    writeFileSync(latin1, Buffer.from('FO_X=caf\xe9\n', 'latin1'), { mode: 0o644 })
    const refusedLatin1 = await runFanout([
      '-H',
      hostfile(),
      ...clusterArgs(),
      '--env-file',
      latin1,
      '--launcher',
      'none',
      '--',
      'true',
    ])
    expect(refusedLatin1.code).toBe(2)
    expect(refusedLatin1.stderr).toContain(`fanout: --env-file ${latin1}: not a text file (not UTF-8)`)
    expect(NODES.map(connectionCount)).toEqual(before)
  })
})
