import { describe, it, expect } from 'vitest'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, realpathSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { FanoutError } from '../../src/errors.js'
import {
  describeCommand,
  masterAddress,
  parseProbe,
  planLaunch,
  type NodeFacts,
  type PlanNode,
  type PlanOptions,
} from '../../src/plan/plan.js'

const lines = (...l: string[]): string => l.join('\n') + '\n'

describe('parseProbe: GPU count', () => {
  it.each<[string, string, number]>([
    ['no nvidia-smi, nothing else', lines(), 0],
    ['gpus=4, CUDA_VISIBLE_DEVICES unset', lines('fanout.gpus=4', 'fanout.cuda_visible_devices=<unset>'), 4],
    ['gpus=4, no cvd line at all', lines('fanout.gpus=4'), 4],
    ['gpus=4, cvd empty → 0', lines('fanout.gpus=4', 'fanout.cuda_visible_devices='), 0],
    ['gpus=4, cvd 0,1 → 2', lines('fanout.gpus=4', 'fanout.cuda_visible_devices=0,1'), 2],
    ['gpus=4, cvd "0, 1" (spaces) → 2', lines('fanout.gpus=4', 'fanout.cuda_visible_devices=0, 1'), 2],
    ['gpus=4, cvd 0,-1,2 → 1 (CUDA stops at -1)', lines('fanout.gpus=4', 'fanout.cuda_visible_devices=0,-1,2'), 1],
    ['gpus=4, cvd -1 → 0', lines('fanout.gpus=4', 'fanout.cuda_visible_devices=-1'), 0],
    ['gpus=4, cvd 3 → 1', lines('fanout.gpus=4', 'fanout.cuda_visible_devices=3'), 1],
    ['gpus=2, cvd 0,1,2,3 → capped at 2', lines('fanout.gpus=2', 'fanout.cuda_visible_devices=0,1,2,3'), 2],
    ['gpus=8, cvd GPU UUIDs', lines('fanout.gpus=8', 'fanout.cuda_visible_devices=GPU-aaaa,GPU-bbbb'), 2],
    ['no nvidia-smi, cvd 0,1 → 0', lines('fanout.cuda_visible_devices=0,1'), 0],
    ['gpus=0', lines('fanout.gpus=0'), 0],
    ['gpus empty (nvidia-smi printed nothing)', lines('fanout.gpus='), 0],
    ['gpus garbage', lines('fanout.gpus=lots'), 0],
    ['CRLF line endings', 'fanout.gpus=4\r\nfanout.cuda_visible_devices=0,1\r\n', 2],
    [
      'noise from start-up files around the lines',
      lines(
        'Welcome to node1!',
        'fanout.gpus=9 is not a fact when not at line start',
        'fanout.gpus=3',
        'Last login: yesterday',
        ' fanout.gpus=7',
        'fanout.cuda_visible_devices=<unset>',
        'bye',
      ),
      3,
    ],
  ])('%s', (_name, stdout, gpus) => {
    expect(parseProbe(stdout, true).gpus).toBe(gpus)
  })
})

describe('parseProbe: other facts', () => {
  const FULL = lines(
    'motd: be nice',
    'fanout.ssh_connection=10.0.0.5 50000 10.0.0.11 22',
    'fanout.cuda_visible_devices=<unset>',
    'fanout.gloo_socket_ifname=eth1',
    'fanout.nccl_socket_ifname=ib0',
    'fanout.gpus=8',
    'fanout.python=/opt/venv/bin/python3',
    'fanout.torch=yes',
    'fanout.free_port=29512',
  )

  it('a full probe', () => {
    expect(parseProbe(FULL, true)).toEqual({
      remote: true,
      gpus: 8,
      clientAddr: '10.0.0.5',
      serverAddr: '10.0.0.11',
      python: '/opt/venv/bin/python3',
      torch: true,
      freePort: 29512,
      presetIfnames: { GLOO_SOCKET_IFNAME: 'eth1', NCCL_SOCKET_IFNAME: 'ib0' },
    } satisfies NodeFacts)
  })

  it('a bare local probe (no ssh, no GPU, no python)', () => {
    const stdout = lines(
      'fanout.ssh_connection=',
      'fanout.cuda_visible_devices=<unset>',
      'fanout.gloo_socket_ifname=',
      'fanout.nccl_socket_ifname=',
    )
    expect(parseProbe(stdout, false)).toEqual({ remote: false, gpus: 0, presetIfnames: {} } satisfies NodeFacts)
  })

  it.each<[string, string, Partial<NodeFacts>]>([
    [
      'IPv6 SSH_CONNECTION',
      'fanout.ssh_connection=fe80::5 50000 fe80::11 22',
      { clientAddr: 'fe80::5', serverAddr: 'fe80::11' },
    ],
    ['torch=no', 'fanout.torch=no', { torch: false }],
    ['torch=garbage', 'fanout.torch=maybe', { torch: false }],
    ['free_port=0 ignored', 'fanout.free_port=0', {}],
    ['free_port=abc ignored', 'fanout.free_port=abc', {}],
    ['free_port empty ignored', 'fanout.free_port=', {}],
    ['only gloo preset', 'fanout.gloo_socket_ifname=eth0', { presetIfnames: { GLOO_SOCKET_IFNAME: 'eth0' } }],
    [
      'only nccl preset',
      'fanout.nccl_socket_ifname=^docker,lo',
      { presetIfnames: { NCCL_SOCKET_IFNAME: '^docker,lo' } },
    ],
    ['python with a space', 'fanout.python=/opt/my env/bin/python', { python: '/opt/my env/bin/python' }],
    ['last line wins', 'fanout.python=/a\nfanout.python=/b', { python: '/b' }],
    ['the route to the expected master', 'fanout.iface=ens3', { routeIface: 'ens3' }],
    ['no route to it: asked, and none found', 'fanout.iface=', { routeIface: '' }],
  ])('%s', (_name, stdout, partial) => {
    expect(parseProbe(stdout, true)).toEqual({ remote: true, gpus: 0, presetIfnames: {}, ...partial })
  })
})

const facts = (over: Partial<NodeFacts> = {}): NodeFacts => ({ remote: true, gpus: 0, presetIfnames: {}, ...over })

describe('masterAddress', () => {
  it.each<[string, NodeFacts[], string | undefined, string]>([
    ['the flag wins', [facts({ serverAddr: '10.0.0.11' })], '192.168.1.1', '192.168.1.1'],
    ['the flag wins even over a local node 0', [facts({ remote: false })], 'head', 'head'],
    [
      'node 0 serverAddr',
      [facts({ serverAddr: '10.0.0.11', clientAddr: '10.0.0.5' }), facts({ serverAddr: '10.0.0.12' })],
      undefined,
      '10.0.0.11',
    ],
    [
      'local node 0 → first other node clientAddr',
      [facts({ remote: false }), facts({ clientAddr: '10.0.0.5' }), facts({ clientAddr: '10.0.0.6' })],
      undefined,
      '10.0.0.5',
    ],
    [
      'local node 0, skips nodes without clientAddr',
      [facts({ remote: false }), facts({ remote: false }), facts({ clientAddr: '10.0.0.7' })],
      undefined,
      '10.0.0.7',
    ],
    ['all local → loopback', [facts({ remote: false }), facts({ remote: false })], undefined, '127.0.0.1'],
    ['a single local node → loopback', [facts({ remote: false })], undefined, '127.0.0.1'],
    ['empty flag falls through', [facts({ serverAddr: '10.0.0.11' })], '', '10.0.0.11'],
  ])('%s', (_name, list, flag, addr) => {
    expect(masterAddress(list, flag)).toBe(addr)
  })

  it.each<[string, NodeFacts[]]>([
    ['ssh node 0 without SSH_CONNECTION', [facts(), facts({ serverAddr: '10.0.0.12' })]],
    ['ssh node 0 with only a clientAddr', [facts({ clientAddr: '10.0.0.5' })]],
    ['no nodes at all', []],
  ])('%s → PROBE error', (_name, list) => {
    expect(() => masterAddress(list, undefined)).toThrow(FanoutError)
    try {
      masterAddress(list, undefined)
    } catch (e) {
      expect((e as FanoutError).code).toBe('PROBE')
      expect((e as FanoutError).exitCode).toBe(1)
      expect((e as FanoutError).message).toMatch(/--master-addr/)
    }
  })
})

const OPTIONS: PlanOptions = {
  python: '/opt/venv/bin/python',
  cwd: '/shared/proj',
  script: 'train.py',
  scriptArgs: ['--epochs', '3', '--name', 'two words', "it's", '--', '007'],
}

const THREE: PlanNode[] = [
  { rank: 0, host: 'n0', facts: facts({ gpus: 8, serverAddr: '10.0.0.10', freePort: 29511 }), iface: 'eth0' },
  { rank: 1, host: 'n1', facts: facts({ gpus: 8, serverAddr: '10.0.0.11' }), iface: 'eth0' },
  { rank: 2, host: 'n2', facts: facts({ gpus: 8, serverAddr: '10.0.0.12' }), iface: 'ib0' },
]

describe('planLaunch', () => {
  it('the exact argv and env for a 3-node plan', () => {
    const plan = planLaunch(THREE, OPTIONS)
    expect(plan.masterAddr).toBe('10.0.0.10')
    expect(plan.masterPort).toBe(29511)
    expect(plan.nodes).toEqual(
      THREE.map((n) => ({
        rank: n.rank,
        host: n.host,
        nproc: 8,
        firstRank: n.rank * 8,
        addrs: [n.facts.serverAddr],
        cwd: '/shared/proj',
        env: { PYTHONUNBUFFERED: '1', GLOO_SOCKET_IFNAME: n.iface, NCCL_SOCKET_IFNAME: n.iface },
        argv: [
          '/opt/venv/bin/python',
          '-m',
          'torch.distributed.run',
          '--nnodes=3',
          `--node_rank=${n.rank}`,
          '--nproc_per_node=8',
          '--master_addr=10.0.0.10',
          '--master_port=29511',
          'train.py',
          '--epochs',
          '3',
          '--name',
          'two words',
          "it's",
          '--',
          '007',
        ],
      })),
    )
  })

  it('c10d: a node whose torchrun has --local-addr is given its own address on the route to the master; one without is not', () => {
    const nodes: PlanNode[] = [
      {
        ...(THREE[0] as PlanNode),
        facts: facts({
          gpus: 8,
          serverAddr: '10.0.0.10',
          freePort: 29511,
          torchVersion: '2.6.0',
          localAddrFlag: true,
          srcAddr: '10.0.0.10',
        }),
      },
      {
        ...(THREE[1] as PlanNode),
        facts: facts({
          gpus: 8,
          serverAddr: '192.168.9.1',
          torchVersion: '2.6.0',
          localAddrFlag: true,
          srcAddr: '10.0.0.11',
        }),
      },
      {
        ...(THREE[2] as PlanNode),
        facts: facts({
          gpus: 8,
          serverAddr: '10.0.0.12',
          torchVersion: '1.13.1',
          localAddrFlag: false,
          srcAddr: '10.0.0.12',
        }),
      },
    ]
    const plan = planLaunch(nodes, {
      ...OPTIONS,
      launcher: {
        kind: 'torchrun',
        module: false,
        noPython: false,
        useEnv: false,
        launcherArgs: [],
        rdzvBackend: 'c10d',
      },
    })
    expect(plan.nodes.map((n) => n.argv.find((a) => /^--local.addr/.test(a)))).toEqual([
      '--local-addr=10.0.0.10',
      '--local-addr=10.0.0.11',
      undefined,
    ])
    // Its addresses: the route's source first, then the one SSH reached.
    expect(plan.nodes[1]?.addrs).toEqual(['10.0.0.11', '192.168.9.1'])
    // Not for the static rendezvous, which never asks the agents' addresses.
    expect(planLaunch(nodes, OPTIONS).nodes.some((n) => n.argv.some((a) => /local.addr/.test(a)))).toBe(false)
  })

  it('passes --monitor_interval only when asked, before the script', () => {
    expect(planLaunch(THREE, OPTIONS).nodes[0]?.argv.some((a) => a.startsWith('--monitor_interval'))).toBe(false)
    const argv =
      planLaunch(THREE, {
        ...OPTIONS,
        launcher: {
          kind: 'torchrun',
          module: false,
          noPython: false,
          useEnv: false,
          launcherArgs: [],
          monitorIntervalS: 0.5,
        },
      }).nodes[1]?.argv ?? []
    expect(argv.slice(7, 10)).toEqual(['--master_port=29511', '--monitor_interval=0.5', 'train.py'])
  })

  it('master flags override the probe', () => {
    const plan = planLaunch(THREE, { ...OPTIONS, masterAddr: 'head.example', masterPort: 1234 })
    expect(plan.masterAddr).toBe('head.example')
    expect(plan.masterPort).toBe(1234)
    for (const node of plan.nodes) {
      expect(node.argv).toContain('--master_addr=head.example')
      expect(node.argv).toContain('--master_port=1234')
    }
  })

  it.each<[string, number | undefined, number | undefined, number, number]>([
    // name, option nprocPerNode, node slots, facts.gpus, expected nproc
    ['option beats slots and gpus', 2, 3, 8, 2],
    ['slots beat gpus', undefined, 3, 8, 3],
    ['gpus when nothing else', undefined, undefined, 8, 8],
    ['1 without a GPU', undefined, undefined, 0, 1],
    ['option beats a GPU-less node', 4, undefined, 0, 4],
    ['slots on a GPU-less node', undefined, 6, 0, 6],
  ])('nproc: %s', (_name, nprocPerNode, slots, gpus, nproc) => {
    const node: PlanNode = { rank: 0, host: 'n0', facts: facts({ gpus, serverAddr: '10.0.0.10', freePort: 29500 }) }
    if (slots !== undefined) node.slots = slots
    const options: PlanOptions = nprocPerNode === undefined ? OPTIONS : { ...OPTIONS, nprocPerNode }
    const [cmd] = planLaunch([node], options).nodes
    expect(cmd?.nproc).toBe(nproc)
    expect(cmd?.argv).toContain(`--nproc_per_node=${nproc}`)
  })

  it('nproc is decided per node', () => {
    const nodes: PlanNode[] = [
      { rank: 0, host: 'a', slots: 2, facts: facts({ gpus: 8, serverAddr: '10.0.0.1', freePort: 29500 }) },
      { rank: 1, host: 'b', facts: facts({ gpus: 4 }) },
      { rank: 2, host: 'c', facts: facts({ gpus: 0 }) },
    ]
    expect(planLaunch(nodes, OPTIONS).nodes.map((n) => n.nproc)).toEqual([2, 4, 1])
  })

  it.each<[string, string | undefined, NodeFacts['presetIfnames'], Record<string, string>]>([
    ['no iface → no ifname vars', undefined, {}, { PYTHONUNBUFFERED: '1' }],
    [
      'no iface, even with presets → no ifname vars',
      undefined,
      { GLOO_SOCKET_IFNAME: 'eth9' },
      { PYTHONUNBUFFERED: '1' },
    ],
    [
      'iface → both vars',
      'eth0',
      {},
      { PYTHONUNBUFFERED: '1', GLOO_SOCKET_IFNAME: 'eth0', NCCL_SOCKET_IFNAME: 'eth0' },
    ],
    [
      'preset gloo kept',
      'eth0',
      { GLOO_SOCKET_IFNAME: 'eth9' },
      { PYTHONUNBUFFERED: '1', GLOO_SOCKET_IFNAME: 'eth9', NCCL_SOCKET_IFNAME: 'eth0' },
    ],
    [
      'preset nccl kept',
      'eth0',
      { NCCL_SOCKET_IFNAME: 'ib0' },
      { PYTHONUNBUFFERED: '1', GLOO_SOCKET_IFNAME: 'eth0', NCCL_SOCKET_IFNAME: 'ib0' },
    ],
    [
      'both presets kept',
      'eth0',
      { GLOO_SOCKET_IFNAME: 'a', NCCL_SOCKET_IFNAME: 'b' },
      { PYTHONUNBUFFERED: '1', GLOO_SOCKET_IFNAME: 'a', NCCL_SOCKET_IFNAME: 'b' },
    ],
  ])('env: %s', (_name, iface, presetIfnames, env) => {
    const node: PlanNode = {
      rank: 0,
      host: 'n0',
      facts: facts({ serverAddr: '10.0.0.10', freePort: 29500, presetIfnames }),
    }
    if (iface !== undefined) node.iface = iface
    expect(planLaunch([node], OPTIONS).nodes[0]?.env).toEqual(env)
  })

  it.each<[string, number[], number | undefined, number | undefined, number, number, string]>([
    // name, gpus, option nprocPerNode, node slots, facts.gpus, expected nproc, CUDA_VISIBLE_DEVICES
    ['one GPU chosen', [1], undefined, 1, 2, 1, '1'],
    ["GPUs chosen: their count, not the probe's", [0, 2], undefined, 2, 8, 2, '0,2'],
    ['chosen GPUs beat slots', [3], undefined, 8, 8, 1, '3'],
    ['--nproc-per-node still wins, the GPUs stay visible', [0, 1], 4, 2, 8, 4, '0,1'],
    ['no nvidia-smi on the node: nothing to check against', [0, 1, 2], undefined, undefined, 0, 3, '0,1,2'],
  ])('selected GPUs: %s', (_name, gpus, nprocPerNode, slots, gpuCount, nproc, cvd) => {
    const node: PlanNode = {
      rank: 0,
      host: 'n0',
      gpus,
      facts: facts({ gpus: gpuCount, serverAddr: '10.0.0.10', freePort: 29500 }),
      iface: 'eth0',
    }
    if (slots !== undefined) node.slots = slots
    const [cmd] = planLaunch([node], nprocPerNode === undefined ? OPTIONS : { ...OPTIONS, nprocPerNode }).nodes
    expect(cmd?.nproc).toBe(nproc)
    expect(cmd?.argv).toContain(`--nproc_per_node=${nproc}`)
    expect(cmd?.env).toEqual({
      PYTHONUNBUFFERED: '1',
      CUDA_VISIBLE_DEVICES: cvd,
      GLOO_SOCKET_IFNAME: 'eth0',
      NCCL_SOCKET_IFNAME: 'eth0',
    })
  })

  it('only the nodes with chosen GPUs get CUDA_VISIBLE_DEVICES', () => {
    const nodes: PlanNode[] = [
      { rank: 0, host: 'a', slots: 1, gpus: [1], facts: facts({ gpus: 2, serverAddr: '10.0.0.1', freePort: 29500 }) },
      { rank: 1, host: 'b', slots: 2, facts: facts({ gpus: 2 }) },
    ]
    const plan = planLaunch(nodes, OPTIONS)
    expect(plan.nodes.map((n) => [n.nproc, n.env.CUDA_VISIBLE_DEVICES])).toEqual([
      [1, '1'],
      [2, undefined],
    ])
    expect(describeCommand(plan.nodes[0] ?? (undefined as never))).toContain(
      'PYTHONUNBUFFERED=1 CUDA_VISIBLE_DEVICES=1 /opt/venv/bin/python',
    )
  })

  it.each<[string, number[], number, RegExp]>([
    ['an index past the probed count', [0, 2], 2, /^n0: GPU 2 was selected, but the node has 2 GPU\(s\) \(0-1\)$/],
    ['--num-gpus 0..N-1 on a smaller node', [0, 1, 2, 3], 2, /GPU 2,3 was selected, but the node has 2 GPU/],
  ])('selected GPUs the node does not have → PROBE error: %s', (_name, gpus, gpuCount, message) => {
    const node: PlanNode = {
      rank: 0,
      host: 'n0',
      gpus,
      facts: facts({ gpus: gpuCount, serverAddr: '10.0.0.10', freePort: 29500 }),
    }
    let error: unknown
    try {
      planLaunch([node], OPTIONS)
    } catch (e) {
      error = e
    }
    expect(error).toBeInstanceOf(FanoutError)
    expect((error as FanoutError).code).toBe('PROBE')
    expect((error as FanoutError).message).toMatch(message)
  })

  it('a local single node plan uses loopback', () => {
    const plan = planLaunch([{ rank: 0, host: 'localhost', facts: facts({ remote: false, freePort: 40000 }) }], OPTIONS)
    expect(plan.masterAddr).toBe('127.0.0.1')
    expect(plan.nodes[0]?.argv.slice(3, 8)).toEqual([
      '--nnodes=1',
      '--node_rank=0',
      '--nproc_per_node=1',
      '--master_addr=127.0.0.1',
      '--master_port=40000',
    ])
  })

  it('a script arg that looks like a torchrun flag stays after the script', () => {
    const plan = planLaunch(THREE, { ...OPTIONS, scriptArgs: ['--nnodes=99', '--master_port=1'] })
    const argv = plan.nodes[1]?.argv ?? []
    expect(argv.slice(argv.indexOf('train.py'))).toEqual(['train.py', '--nnodes=99', '--master_port=1'])
    expect(argv.filter((a) => a.startsWith('--nnodes='))).toEqual(['--nnodes=3', '--nnodes=99'])
  })

  it.each<[string, PlanNode[]]>([
    ['node 0 reported no free port', [{ rank: 0, host: 'n0', facts: facts({ serverAddr: '10.0.0.10' }) }]],
    [
      'a free port on node 1 only does not count',
      [
        { rank: 0, host: 'n0', facts: facts({ serverAddr: '10.0.0.10' }) },
        { rank: 1, host: 'n1', facts: facts({ freePort: 29500 }) },
      ],
    ],
  ])('missing port → FanoutError: %s', (_name, nodes) => {
    let error: unknown
    try {
      planLaunch(nodes, OPTIONS)
    } catch (e) {
      error = e
    }
    expect(error).toBeInstanceOf(FanoutError)
    expect((error as FanoutError).code).toBe('PROBE')
    expect((error as FanoutError).message).toMatch(/--master-port/)
  })

  it('missing master address → FanoutError PROBE', () => {
    expect(() => planLaunch([{ rank: 0, host: 'n0', facts: facts({ freePort: 1 }) }], OPTIONS)).toThrow(/--master-addr/)
  })
})

describe('describeCommand', () => {
  it.each<[string, Parameters<typeof describeCommand>[0], string]>([
    [
      'plain',
      {
        rank: 0,
        host: 'n0',
        nproc: 1,
        cwd: '/shared/proj',
        env: { PYTHONUNBUFFERED: '1' },
        argv: ['python3', '-m', 'torch.distributed.run', 'train.py'],
      },
      'cd /shared/proj && PYTHONUNBUFFERED=1 python3 -m torch.distributed.run train.py',
    ],
    [
      'quoting in cwd, env and argv',
      {
        rank: 1,
        host: 'n1',
        nproc: 1,
        cwd: '/home/me/my proj',
        env: { PYTHONUNBUFFERED: '1', NCCL_SOCKET_IFNAME: 'eth0' },
        argv: ['python3', 'train.py', "it's", '$HOME'],
      },
      `cd '/home/me/my proj' && PYTHONUNBUFFERED=1 NCCL_SOCKET_IFNAME=eth0 python3 train.py 'it'\\''s' '$HOME'`,
    ],
    [
      'the whole plan line',
      planLaunch(THREE, OPTIONS).nodes[2] ?? (undefined as never),
      "cd /shared/proj && PYTHONUNBUFFERED=1 GLOO_SOCKET_IFNAME=ib0 NCCL_SOCKET_IFNAME=ib0 /opt/venv/bin/python -m torch.distributed.run --nnodes=3 --node_rank=2 --nproc_per_node=8 --master_addr=10.0.0.10 --master_port=29511 train.py --epochs 3 --name 'two words' 'it'\\''s' -- 007",
    ],
  ])('%s', (_name, node, text) => {
    expect(describeCommand(node)).toBe(text)
  })

  // An env value that needs quoting (a space, a quote, or NCCL's usual `^docker0,lo`) must still be an
  // assignment when the line is pasted into a shell: `NAME='value'`, not `'NAME=value'`.
  it('what it shows runs as shown in /bin/sh, env values that need quoting included', () => {
    const dir = realpathSync(mkdtempSync(join(tmpdir(), 'fanout plan ')))
    try {
      const line = describeCommand({
        rank: 0,
        host: 'n0',
        nproc: 1,
        cwd: dir,
        env: { PYTHONUNBUFFERED: '1', A: 'x y', B: "it's $HOME", NCCL_SOCKET_IFNAME: '^docker0,lo' },
        argv: [
          '/bin/sh',
          '-c',
          'pwd; printf "%s|" "$PYTHONUNBUFFERED" "$A" "$B" "$NCCL_SOCKET_IFNAME" "$@"',
          'sh',
          'a b',
          '$(x)',
          '',
        ],
      })
      const out = execFileSync('/bin/sh', ['-c', line], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
      expect(out).toBe(`${dir}\n1|x y|it's $HOME|^docker0,lo|a b|$(x)||`)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('planLaunch: the job environment', () => {
  const node = (over: Partial<PlanNode> = {}, preset: NodeFacts['presetIfnames'] = {}): PlanNode => ({
    rank: 0,
    host: 'n0',
    facts: facts({ gpus: 4, serverAddr: '10.0.0.10', freePort: 29500, presetIfnames: preset }),
    iface: 'eth0',
    ...over,
  })
  const OWN = { PYTHONUNBUFFERED: '1', GLOO_SOCKET_IFNAME: 'eth0', NCCL_SOCKET_IFNAME: 'eth0' }
  const withoutRoute = (preset: NodeFacts['presetIfnames'] = {}): PlanNode => {
    const n = node({}, preset)
    delete n.iface
    return n
  }

  // name, node, forwarded, explicit, expected env (in order)
  it.each<[string, PlanNode, Record<string, string>, Record<string, string>, Record<string, string>]>([
    [
      "forwarded variables come after fanout's own",
      node(),
      { NCCL_DEBUG: 'INFO', HF_HOME: '/hf' },
      {},
      { ...OWN, NCCL_DEBUG: 'INFO', HF_HOME: '/hf' },
    ],
    ["a forwarded PYTHONUNBUFFERED does not beat fanout's", node(), { PYTHONUNBUFFERED: '0' }, {}, OWN],
    [
      'a forwarded *_SOCKET_IFNAME does not beat the probed route',
      node(),
      { NCCL_SOCKET_IFNAME: 'head0', GLOO_SOCKET_IFNAME: 'head0' },
      {},
      OWN,
    ],
    [
      "nor the node's own setting, without a route",
      withoutRoute({ NCCL_SOCKET_IFNAME: 'ib0' }),
      { NCCL_SOCKET_IFNAME: 'head0' },
      {},
      { PYTHONUNBUFFERED: '1' },
    ],
    [
      'without a route or a node setting, it is forwarded',
      withoutRoute(),
      { NCCL_SOCKET_IFNAME: '^docker,lo' },
      {},
      { PYTHONUNBUFFERED: '1', NCCL_SOCKET_IFNAME: '^docker,lo' },
    ],
    [
      'explicit variables come last',
      node(),
      { NCCL_DEBUG: 'INFO' },
      { X: 'a b' },
      { ...OWN, NCCL_DEBUG: 'INFO', X: 'a b' },
    ],
    [
      'explicit PYTHONUNBUFFERED and *_SOCKET_IFNAME win',
      node(),
      {},
      { PYTHONUNBUFFERED: '0', NCCL_SOCKET_IFNAME: 'ib0' },
      { PYTHONUNBUFFERED: '0', GLOO_SOCKET_IFNAME: 'eth0', NCCL_SOCKET_IFNAME: 'ib0' },
    ],
    [
      "explicit beats the node's own setting too",
      node({}, { GLOO_SOCKET_IFNAME: 'eth9' }),
      {},
      { GLOO_SOCKET_IFNAME: 'ib1' },
      { PYTHONUNBUFFERED: '1', GLOO_SOCKET_IFNAME: 'ib1', NCCL_SOCKET_IFNAME: 'eth0' },
    ],
    [
      'explicit CUDA_VISIBLE_DEVICES without a selection',
      node(),
      {},
      { CUDA_VISIBLE_DEVICES: '2,3' },
      { ...OWN, CUDA_VISIBLE_DEVICES: '2,3' },
    ],
    [
      "the selection's CUDA_VISIBLE_DEVICES wins (run.ts refuses both)",
      node({ gpus: [1] }),
      {},
      { CUDA_VISIBLE_DEVICES: '2,3' },
      { PYTHONUNBUFFERED: '1', CUDA_VISIBLE_DEVICES: '1', GLOO_SOCKET_IFNAME: 'eth0', NCCL_SOCKET_IFNAME: 'eth0' },
    ],
    [
      'values are kept byte for byte',
      node(),
      {},
      { X: ` it's "q" $HOME \\ =\n\t` },
      { ...OWN, X: ` it's "q" $HOME \\ =\n\t` },
    ],
  ])('%s', (_name, n, forwarded, explicit, env) => {
    const cmd = planLaunch([n], { ...OPTIONS, jobEnv: { forwarded, explicit } }).nodes[0]
    expect(Object.entries(cmd?.env ?? {})).toEqual(Object.entries(env))
  })

  // name, explicit CUDA_VISIBLE_DEVICES, node slots, option nprocPerNode, probed GPUs, expected nproc
  it.each<[string, string, number | undefined, number | undefined, number]>([
    ["two devices → 2 processes, not the probe's 4", '0,1', undefined, undefined, 2],
    ['UUIDs count too', 'GPU-aaaa,GPU-bbbb,GPU-cccc', undefined, undefined, 3],
    ['CUDA stops at -1', '0,-1,2', undefined, undefined, 1],
    ['no device → 1 (CPU)', '', undefined, undefined, 1],
    ["slots= still win, as over the node's own value", '0,1', 3, undefined, 3],
    ['--nproc-per-node still wins', '0,1', undefined, 4, 4],
  ])('nproc with an explicit CUDA_VISIBLE_DEVICES: %s', (_name, cvd, slots, nprocPerNode, nproc) => {
    const n = node(slots === undefined ? {} : { slots })
    const options: PlanOptions = {
      ...OPTIONS,
      jobEnv: { forwarded: {}, explicit: { CUDA_VISIBLE_DEVICES: cvd } },
      ...(nprocPerNode === undefined ? {} : { nprocPerNode }),
    }
    expect(planLaunch([n], options).nodes[0]?.nproc).toBe(nproc)
  })
})

describe('describeCommand: secret-looking values are masked', () => {
  const line = describeCommand({
    rank: 0,
    host: 'n0',
    nproc: 1,
    cwd: '/p',
    env: {
      PYTHONUNBUFFERED: '1',
      HF_TOKEN: 'hunter2',
      WANDB_API_KEY: "it's secret",
      DB_PASSWORD: 'p w',
      NCCL_DEBUG: 'INFO',
      HF_HOME: '/hf',
    },
    argv: ['python3', 'train.py'],
  })
  it('shows NAME=*** for them, the other values quoted', () => {
    expect(line).toBe(
      'cd /p && PYTHONUNBUFFERED=1 HF_TOKEN=*** WANDB_API_KEY=*** DB_PASSWORD=*** NCCL_DEBUG=INFO HF_HOME=/hf python3 train.py',
    )
  })
  it.each([['hunter2'], ['secret'], ['p w']])('never shows %s', (value) => {
    expect(line).not.toContain(value)
  })
})
