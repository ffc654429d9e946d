import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, beforeAll, expect, it } from 'vitest'
import {
  cluster,
  clusterArgs,
  connectionCount,
  describeCluster,
  host,
  runFanout,
  waitNoSurvivors,
  writeWork,
  type FanoutRun,
} from './cluster.js'

const NODES = ['h1', 'h2', 'h3'].map(host)
const IFACES = ['ens3', 'enp1s0', 'eno1']
const hostfile = (): string => writeWork('hosts-env', 'h1\nh2\nh3\n')
const marker = (): string => join(cluster?.work ?? '', 'env-injected')

// Prints the named variables as one JSON line (ASCII, so a newline in a value stays inside it), in
// one write; a variable that is not set is null.
const SHOW_ENV =
  'import json, os, sys\nsys.stdout.write("ENV " + json.dumps({k: os.environ.get(k) for k in sys.argv[1:]}) + "\\n")\n'

/** Runs show_env.py with one process on each of h1–h3 and returns what each node saw, by node. */
async function nodeEnvs(
  flags: string[],
  names: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ run: FanoutRun; seen: Array<Record<string, string | null>> }> {
  writeWork('show_env.py', SHOW_ENV)
  const run = await runFanout(
    ['-H', hostfile(), ...clusterArgs(), '--nproc-per-node', '1', ...flags, 'show_env.py', ...names],
    { env },
  )
  expect(run.code, run.stderr).toBe(0)
  const seen = [0, 1, 2].map((i) => {
    const lines = run.stdout.split('\n').filter((l) => l.startsWith(`[n${i} h${i + 1} r${i}]  ENV `))
    expect(lines, run.stdout).toHaveLength(1)
    return JSON.parse((lines[0] ?? '').slice(lines[0]?.indexOf('ENV ') ?? 0).slice(4)) as Record<string, string | null>
  })
  return { run, seen }
}

// DeepSpeed writes values into a .deepspeed_env-style `export` line, where spaces and quotes break
// (deepspeedai/DeepSpeed#6997); these must arrive exactly as given.
const hostile = (): Record<string, string> => ({
  FO_SPACES: '  two  words  ',
  FO_QUOTES: `it's "quoted" ''`,
  FO_DOLLAR: '$HOME ${HOME} $1 $$ $',
  FO_SUBST: `$(touch ${marker()}) \`touch ${marker()}\` ; touch ${marker()} | x & y`,
  FO_BACKSLASH: 'a\\b\\\\c\\n\\',
  FO_EQUALS: 'a=b==c=',
  FO_NEWLINES: 'line1\nline2\n\nline4\n',
  FO_TABS: '\tx\t',
  FO_UNICODE: 'naïve – 日本語 🚀',
  FO_EMPTY: '',
  FO_GLOB: '* ? [a]',
  FO_DASH: '-n -e',
})

afterEach(async () => {
  expect(await waitNoSurvivors(cluster?.hosts ?? [])).toEqual([])
})

describeCluster('the job environment on a 3-host cluster', () => {
  // The dry runs name train.py: the pre-flight looks for it.
  beforeAll(() => void writeWork('train.py', 'raise SystemExit("a dry run must not run this")\n'))
  it('--env values with hostile bytes arrive byte for byte on every node, --env NAME forwards the local value', async () => {
    const values = hostile()
    const flags = Object.entries(values).flatMap(([k, v]) => ['--env', `${k}=${v}`])
    const local = `here: "q" 'q' $HOME \\ \n=`
    const { seen } = await nodeEnvs([...flags, '--env', 'FO_FROM_HERE'], [...Object.keys(values), 'FO_FROM_HERE'], {
      FO_FROM_HERE: local,
    })
    for (const s of seen) expect(s).toEqual({ ...values, FO_FROM_HERE: local })
    expect(existsSync(marker())).toBe(false)
  })

  it('--env-file: dotenv quoting, comments, multi-line values; later files and --env win', async () => {
    const first = writeWork(
      'first.env',
      [
        '# a dotenv file as people write them',
        '',
        "FO_SPACES='  two  words  '",
        'FO_QUOTES="it\'s \\"quoted\\" \'\'"',
        "FO_DOLLAR='$HOME ${HOME} $1 $$ $'",
        'FO_DOLLAR_BARE=$HOME',
        `FO_SUBST='$(touch ${marker()}) \`touch ${marker()}\` ; touch ${marker()} | x & y'`,
        "FO_BACKSLASH='a\\b\\\\c\\n\\'",
        'FO_ESCAPES="tab\\there\\nnewline \\\\ back"',
        'FO_MULTI="line1',
        'line2',
        '',
        'line4"',
        'export FO_EQUALS=a=b==c=',
        '   FO_UNICODE = naïve – 日本語 🚀   # a comment',
        'FO_EMPTY=',
        'FO_LATER=first',
        'FO_OVERRIDE=from the file',
      ].join('\n') + '\n',
    )
    const second = writeWork('second.env', 'FO_LATER=second\r\n')
    const { seen } = await nodeEnvs(
      ['--env-file', first, '--env-file', second, '--env', 'FO_OVERRIDE=from --env'],
      [
        'FO_SPACES',
        'FO_QUOTES',
        'FO_DOLLAR',
        'FO_DOLLAR_BARE',
        'FO_SUBST',
        'FO_BACKSLASH',
        'FO_ESCAPES',
        'FO_MULTI',
        'FO_EQUALS',
        'FO_UNICODE',
        'FO_EMPTY',
        'FO_LATER',
        'FO_OVERRIDE',
      ],
    )
    const { FO_SPACES, FO_QUOTES, FO_DOLLAR, FO_SUBST, FO_BACKSLASH, FO_EQUALS, FO_UNICODE, FO_EMPTY } = hostile()
    for (const s of seen) {
      expect(s).toEqual({
        FO_SPACES,
        FO_QUOTES,
        FO_DOLLAR,
        FO_SUBST,
        FO_BACKSLASH,
        FO_EQUALS,
        FO_UNICODE,
        FO_EMPTY,
        FO_DOLLAR_BARE: '$HOME',
        FO_ESCAPES: 'tab\there\nnewline \\ back',
        FO_MULTI: 'line1\nline2\n\nline4',
        FO_LATER: 'second',
        FO_OVERRIDE: 'from --env',
      })
    }
    expect(existsSync(marker())).toBe(false)
  })

  it('forwards NCCL_*, HF_*, CUDA_*, PYTHON*, … from here by default, not CUDA_VISIBLE_DEVICES; --no-default-env does not', async () => {
    const fix = join(cluster?.dir ?? '', 'torch-fix')
    const here = {
      NCCL_DEBUG: 'INFO',
      HF_HOME: '/tmp/hf home',
      CUDA_DEVICE_ORDER: 'PCI_BUS_ID',
      OMP_NUM_THREADS: '3',
      WANDB_MODE: 'offline',
      TORCH_SHOW_CPP_STACKTRACES: '1',
      GLOO_TIMEOUT_SECONDS: '60',
      // Replaces the hosts' own PYTHONPATH (sshd SetEnv); torchrun still needs their torch fix first.
      PYTHONPATH: `${fix}:/opt/fo extra`,
      CUDA_VISIBLE_DEVICES: '1',
      NCCL_SOCKET_IFNAME: 'head0',
      PYENV_VERSION: '3.11.9',
      FO_UNRELATED: 'x',
    }
    const names = Object.keys(here)
    const forwarded = await nodeEnvs([], names, here)
    for (const [i, s] of forwarded.seen.entries()) {
      expect(s).toEqual({
        ...here,
        CUDA_VISIBLE_DEVICES: null,
        // An interface name of this machine: the node's probed route wins.
        NCCL_SOCKET_IFNAME: IFACES[i],
        PYENV_VERSION: null,
        FO_UNRELATED: null,
      })
    }
    const off = await nodeEnvs(['--no-default-env', '--env', 'NCCL_DEBUG=WARN'], names, here)
    for (const [i, s] of off.seen.entries()) {
      expect(s).toEqual({
        ...Object.fromEntries(names.map((k) => [k, null])),
        NCCL_DEBUG: 'WARN',
        PYTHONPATH: fix, // the host's own, from sshd
        NCCL_SOCKET_IFNAME: IFACES[i],
      })
    }
  })

  it('--dry-run masks secret-looking values, shows the rest in precedence order, and prints no secret anywhere', async () => {
    const run = await runFanout(
      [
        '-H',
        hostfile(),
        ...clusterArgs(),
        '--dry-run',
        '--env',
        'HF_TOKEN=hunter2',
        '--env',
        "WANDB_API_KEY=s3cr3t 'value'",
        '--env',
        'NCCL_SOCKET_IFNAME=ib9',
        '--env',
        'FO_NOTE=a b',
        'train.py',
      ],
      { env: { HF_API_TOKEN: 'forwarded-token', NCCL_DEBUG: 'INFO' } },
    )
    expect(run.code, run.stderr).toBe(0)
    for (const [i, iface] of IFACES.entries()) {
      expect(run.stdout).toContain(
        `cd ${cluster?.work} && PYTHONUNBUFFERED=1 GLOO_SOCKET_IFNAME=${iface} NCCL_SOCKET_IFNAME=ib9 HF_API_TOKEN=*** NCCL_DEBUG=INFO ` +
          `HF_TOKEN=*** WANDB_API_KEY=*** FO_NOTE='a b' /usr/bin/python3 -m torch.distributed.run --nnodes=3 --node_rank=${i} `,
      )
    }
    for (const secret of ['hunter2', 's3cr3t', 'forwarded-token']) {
      expect(run.stdout).not.toContain(secret)
      expect(run.stderr).not.toContain(secret)
    }
  })

  it("an explicit CUDA_VISIBLE_DEVICES narrows the process count like the node's own", async () => {
    const run = await runFanout([
      '-H',
      hostfile(),
      ...clusterArgs(),
      '--dry-run',
      '--env',
      'CUDA_VISIBLE_DEVICES=1',
      'train.py',
    ])
    expect(run.code, run.stderr).toBe(0)
    expect(run.stderr).toContain('3 process(es): 3 × 1')
    expect(run.stdout.match(/ CUDA_VISIBLE_DEVICES=1 .* --nproc_per_node=1 /g)).toHaveLength(3)
  })

  it.each<[string, string[], RegExp]>([
    [
      'CUDA_VISIBLE_DEVICES with a GPU selection',
      ['--env', 'CUDA_VISIBLE_DEVICES=0', '--num-gpus', '1'],
      /CUDA_VISIBLE_DEVICES is given with --env\/--env-file, but the selection flags already chose GPUs \(h1: 0\)/,
    ],
    ['a bad name', ['--env', 'MY-VAR=1'], /--env: "MY-VAR" is not a valid variable name/],
    [
      '--env NAME not set here',
      ['--env', 'FO_NOT_SET_ANYWHERE'],
      /--env FO_NOT_SET_ANYWHERE: FO_NOT_SET_ANYWHERE is not set here/,
    ],
    [
      'a bad --env-file names file:line',
      ['--env-file', 'BAD_ENV_FILE'],
      /bad\.env:2: the quote opened here is never closed/,
    ],
  ])('refuses %s with exit 2 before connecting', async (_name, flags, message) => {
    const bad = writeWork('bad.env', 'A=1\nB="never closed\n')
    const before = NODES.map(connectionCount)
    const run = await runFanout([
      '-H',
      hostfile(),
      ...clusterArgs(),
      ...flags.map((f) => (f === 'BAD_ENV_FILE' ? bad : f)),
      'show_env.py',
    ])
    expect(run.code, run.stderr).toBe(2)
    expect(run.stderr).toMatch(message)
    expect(NODES.map(connectionCount)).toEqual(before)
  })

  // fanout's shebang is `node --`, so Node 20 cannot take --env-file for itself (nodejs/node#54232).
  it('a missing --env-file stops everything before connecting, naming the file', async () => {
    const before = NODES.map(connectionCount)
    const run = await runFanout(['-H', hostfile(), ...clusterArgs(), '--env-file', '/nonexistent/x.env', 'show_env.py'])
    expect(run.code, run.stderr).toBe(2)
    expect(run.stderr).toContain('--env-file /nonexistent/x.env: cannot read it: no such file')
    expect(NODES.map(connectionCount)).toEqual(before)
  })
})
