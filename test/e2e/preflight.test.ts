import { mkdirSync, writeFileSync, chmodSync } from 'node:fs'
import { join } from 'node:path'
import { spawn } from 'node:child_process'
import { expect, it } from 'vitest'
import { cluster, clusterArgs, describeCluster, host, runFanout, sessionCount, writeWork } from './cluster.js'

const hostfile = (): string => writeWork('hosts-pre', 'h1\nh2\nh3\n')
const HELLO =
  'import os, sys\nsys.stdout.write(f"hello from node {os.environ[\'GROUP_RANK\']} python {sys.executable}\\n")\n'

describeCluster('pre-flight and remote set-up', () => {
  it("fanout check prints every node's findings and launches nothing", async () => {
    writeWork('hello.py', HELLO)
    const run = await runFanout(['check', '-H', hostfile(), ...clusterArgs(), 'hello.py'])
    expect(run.code, run.stderr).toBe(0)
    // Three nodes that found the same are one row, as clubak folds them.
    expect(run.stderr).toMatch(
      /node\s+host\s+python\s+torch\s+gpus\s+pre-flight\nn0-n2 \(3 nodes\)\s+h\[1-3\]\s+3\.\d+\.\d+\s+1\.13\S*\s+2\s+ok\n/,
    )
    expect(run.stdout).not.toContain('hello from node')
  })

  it('at scale the table and the launch line stay short: identical rows fold, process counts read N × k', async () => {
    writeWork('hello.py', HELLO)
    // n3 is told apart by its own CUDA_VISIBLE_DEVICES: one GPU, one process.
    const run = await runFanout([
      '--hosts',
      'n[1-8]',
      ...clusterArgs(),
      '--setup',
      '[ "$(hostname)" != fo-n3 ] || export CUDA_VISIBLE_DEVICES=0',
      'hello.py',
    ])
    expect(run.code, run.stderr).toBe(0)
    expect(run.stderr).toMatch(
      /\nn0 +n1 +3\.\S+ +1\.13\S* +2 +ok\nn1 +n2 +3\.\S+ +1\.13\S* +2 +ok\nn2 +n3 +3\.\S+ +1\.13\S* +1 +ok\nn3-n7 \(5 nodes\) +n\[4-8\] +3\.\S+ +1\.13\S* +2 +ok\n/,
    )
    expect(run.stderr).toContain('8 node(s), 15 process(es): 2 × 2 + 1 + 5 × 2')
    expect(run.stdout.match(/hello from node/g)).toHaveLength(15)
  })

  it.each<[string, string[], RegExp]>([
    [
      'a missing working directory',
      ['--chdir', '/nonexistent/proj', 'hello.py'],
      /node 0 \(h1\): working directory \/nonexistent\/proj does not exist\n.*node 1 \(h2\): working directory/,
    ],
    ['a missing script', ['no_such_script.py'], /node 2 \(h3\): script no_such_script\.py not found in /],
    [
      'a missing interpreter',
      ['--python', 'python3.11-missing', 'hello.py'],
      /node 0 \(h1\): python3\.11-missing not found/,
    ],
  ])('stops before launching on %s, naming each node (exit 2)', async (_name, flags, message) => {
    writeWork('hello.py', HELLO)
    // The flags name their own --python where they test it.
    const python = flags.includes('--python') ? [] : ['--python', '/usr/bin/python3']
    const run = await runFanout(['-H', hostfile(), '--ssh-config', cluster?.sshConfig ?? '', ...python, ...flags])
    expect(run.code, run.stderr).toBe(2)
    expect(run.stderr).toContain('pre-flight failed, nothing was launched')
    expect(run.stderr).toMatch(message)
    expect(run.stdout).not.toContain('hello from node')
  })

  it('stops before launching when the master port is already taken on node 0', async () => {
    // Something else listens on 29999 on h1 (as the previous job's store would).
    const squatter = spawn(
      'ip',
      [
        'netns',
        'exec',
        'fo-h1',
        '/usr/bin/python3',
        '-c',
        'import socket, time; s = socket.socket(); s.bind(("", 29999)); s.listen(); print("up", flush=True); time.sleep(60)',
      ],
      { stdio: ['ignore', 'pipe', 'ignore'] },
    )
    try {
      await new Promise((r) => squatter.stdout.once('data', r))
      const run = await runFanout(['-H', hostfile(), ...clusterArgs(), '--master-port', '29999', 'hello.py'])
      expect(run.code).toBe(2)
      expect(run.stderr).toMatch(/node 0 \(h1\): master port 29999 is in use/)
      expect(run.stderr).not.toMatch(/node [12] \(h[23]\): master port/)
    } finally {
      squatter.kill('SIGKILL')
    }
  })

  it('torch missing for the chosen interpreter is reported per node', async () => {
    // A venv without system site-packages: python, but no torch.
    const venv = join(cluster?.work ?? '', 'bare-venv')
    mkdirSync(join(venv, 'bin'), { recursive: true })
    writeFileSync(join(venv, 'bin', 'python'), '#!/bin/sh\nexec /usr/bin/python3 -S "$@"\n')
    chmodSync(join(venv, 'bin', 'python'), 0o755)
    const run = await runFanout([
      '-H',
      hostfile(),
      '--ssh-config',
      cluster?.sshConfig ?? '',
      '--python',
      join(venv, 'bin', 'python'),
      'hello.py',
    ])
    expect(run.code).toBe(2)
    expect(run.stderr).toMatch(/node 1 \(h2\): torch cannot be imported by .*bare-venv\/bin\/python/)
  })

  it('--venv activates an environment on every node before the probe and the launch', async () => {
    // A minimal "virtualenv": bin/activate puts its bin first on PATH, where python3 is Debian's.
    const venv = join(cluster?.work ?? '', 'my env')
    mkdirSync(join(venv, 'bin'), { recursive: true })
    writeFileSync(join(venv, 'bin', 'activate'), `export VIRTUAL_ENV='${venv}'\nexport PATH="$VIRTUAL_ENV/bin:$PATH"\n`)
    writeFileSync(join(venv, 'bin', 'python3'), '#!/bin/sh\nexec /usr/bin/python3 "$@"\n')
    chmodSync(join(venv, 'bin', 'python3'), 0o755)
    writeWork('hello.py', HELLO)
    const run = await runFanout([
      '-H',
      hostfile(),
      '--ssh-config',
      cluster?.sshConfig ?? '',
      '--venv',
      venv,
      '--nproc-per-node',
      '1',
      'hello.py',
    ])
    expect(run.code, run.stderr).toBe(0)
    expect(run.stdout.match(/hello from node \d python/g)).toHaveLength(3)
  })

  it('a failing --setup step stops the launch, showing the step and its output', async () => {
    const before = sessionCount(host('h1'))
    const run = await runFanout([
      '-H',
      hostfile(),
      ...clusterArgs(),
      '--setup',
      'echo preparing; echo "no such module: cuda/12" >&2; exit 3',
      'hello.py',
    ])
    expect(run.code).toBe(2)
    expect(run.stderr).toMatch(
      /node 0 \(h1\): set-up step 1 failed with exit 3: echo preparing; .*\n(fanout: .*\n)*fanout: +no such module: cuda\/12/,
    )
    // One session, the probe's, whose shell then got EOF: no job ran.
    expect(sessionCount(host('h1'))).toBe(before + 1)
    expect(run.stdout).not.toContain('hello from node')
  })
})
