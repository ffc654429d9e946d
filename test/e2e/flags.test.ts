import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, expect, it } from 'vitest'
import {
  cluster,
  clusterArgs,
  describeCluster,
  runFanout,
  sshdLogCount,
  host,
  waitNoSurvivors,
  writeWork,
} from './cluster.js'

// Flags that no other end-to-end test exercised, each against the cluster's real sshd hosts and
// Debian 12's torchrun: one test a flag, asserting what the flag changes where it lands.

const hostfile = (name: string, lines: string[]): string => writeWork(name, lines.join('\n') + '\n')
const work = (): string => cluster?.work ?? ''

afterEach(async () => {
  expect(await waitNoSurvivors(cluster?.hosts ?? [], 10_000)).toEqual([])
})

describeCluster('flags, one at a time', () => {
  it("a non-22 SSH port: host:port in the host list, or --ssh-port, reach h3's sshd on 2222 (its key known as [addr]:2222)", async () => {
    const show = ['--launcher', 'none', '--', 'sh', '-c', 'echo "reached on port ${SSH_CONNECTION##* }"']
    const before = sshdLogCount(host('h3'), /Connection from \S+ port \d+ on 10\.99\.0\.13 port 2222/g)
    const listed = await runFanout(['-H', hostfile('hosts-port', ['h3:2222']), ...clusterArgs(), ...show])
    expect(listed.code, listed.stderr).toBe(0)
    expect(listed.stdout).toBe('[n0 h3]  reached on port 2222\n')
    const flagged = await runFanout(['--hosts', 'h3', ...clusterArgs(), '--ssh-port', '2222', ...show])
    expect(flagged.code, flagged.stderr).toBe(0)
    expect(flagged.stdout).toBe('[n0 h3]  reached on port 2222\n')
    expect(sshdLogCount(host('h3'), /Connection from \S+ port \d+ on 10\.99\.0\.13 port 2222/g) - before).toBe(2)
  })

  it('-i FILE: a key no ssh config names is offered, and without it the same login is refused', async () => {
    // The cluster's ssh config without its IdentityFile: only -i can give the key (no agent either).
    const config = join(work(), 'ssh_config-no-identity')
    writeFileSync(config, readFileSync(cluster?.sshConfig ?? '', 'utf8').replace(/^\s*IdentityFile .*$/m, ''), {
      mode: 0o644,
    })
    const args = ['--hosts', 'h1', '--ssh-config', config, '--launcher', 'none', '--', 'echo', 'in']
    const without = await runFanout(args)
    expect(without.code).toBe(255)
    expect(without.stderr).toMatch(/h1: authentication failed for user fanout-test/)
    const withKey = await runFanout(['-i', cluster?.key ?? '', ...args])
    expect(withKey.code, withKey.stderr).toBe(0)
    expect(withKey.stdout).toBe('[n0 h1]  in\n')
  })

  it("--no-python: torchrun runs an executable in each worker's place, with the rank in its environment", async () => {
    const script = writeWork('ranks.sh', '#!/bin/sh\necho "rank $RANK of $WORLD_SIZE args $*"\n')
    chmodSync(script, 0o755)
    const run = await runFanout(['--hosts', 'h1,h2', ...clusterArgs(), '--no-python', './ranks.sh', 'a b'])
    expect(run.code, run.stderr).toBe(0)
    for (const r of [0, 1, 2, 3]) expect(run.stdout).toContain(`r${r}]  rank ${r} of 4 args a b\n`)
  })

  it('--use-env (launch): LOCAL_RANK in the environment, no --local_rank argument', async () => {
    writeWork(
      'local_rank.py',
      'import os, sys\nsys.stdout.write(f"argv {sys.argv[1:]} LOCAL_RANK {os.environ[\'LOCAL_RANK\']}\\n")\n',
    )
    const run = await runFanout([
      '--hosts',
      'h1',
      ...clusterArgs(),
      '--launcher',
      'launch',
      '--use-env',
      'local_rank.py',
      '--lr',
      '1',
    ])
    expect(run.code, run.stderr).toBe(0)
    expect(run.stdout).toContain("r0]  argv ['--lr', '1'] LOCAL_RANK 0\n")
    expect(run.stdout).toContain("r1]  argv ['--lr', '1'] LOCAL_RANK 1\n")
  })

  it("--max-restarts 1: torchrun restarts a node's failed workers in place, and the job succeeds", async () => {
    writeWork(
      'fails_once.py',
      [
        'import os, sys',
        'count = os.environ["TORCHELASTIC_RESTART_COUNT"]',
        'sys.stdout.write(f"rank {os.environ[\'RANK\']} restart {count}\\n")',
        'sys.exit(1 if count == "0" else 0)',
      ].join('\n') + '\n',
    )
    const run = await runFanout([
      '--hosts',
      'h1',
      ...clusterArgs(),
      '--nproc-per-node',
      '1',
      '--max-restarts',
      '1',
      'fails_once.py',
    ])
    expect(run.code, run.stderr).toBe(0)
    expect(run.stdout).toContain('rank 0 restart 0\n')
    expect(run.stdout).toContain('rank 0 restart 1\n')
    // torchrun reports the first failure as it would a final one; fanout says it restarts, and stops nothing.
    expect(run.stderr).toContain(
      'node 0 (h1): local rank 0 exited with code 1; torchrun restarts its workers (restart 1 of 1, --max-restarts)',
    )
    expect(run.stderr).not.toContain('stopping all')
  })

  it("--conda ENV: conda's hook is evaluated and the environment activated on every node before the probe and the job", async () => {
    const env = join(cluster?.dir ?? '', 'conda/envs/train-env/bin')
    mkdirSync(env, { recursive: true })
    writeFileSync(join(env, 'python3'), '#!/bin/sh\nexec /usr/bin/python3 "$@"\n', { mode: 0o755 })
    try {
      writeWork(
        'which_env.py',
        "import os, shutil, sys\nsys.stdout.write(f\"env {os.environ.get('CONDA_DEFAULT_ENV')} python3 {shutil.which('python3')}\\n\")\n",
      )
      const run = await runFanout([
        '--hosts',
        'h1,h2',
        '--ssh-config',
        cluster?.sshConfig ?? '',
        '--conda',
        'train-env',
        '--nproc-per-node',
        '1',
        'which_env.py',
      ])
      expect(run.code, run.stderr).toBe(0)
      expect(run.stdout.match(new RegExp(`env train-env python3 ${env}/python3\\n`, 'g'))).toHaveLength(2)
      const missing = await runFanout([
        '--hosts',
        'h1',
        '--ssh-config',
        cluster?.sshConfig ?? '',
        '--conda',
        'no-such-env',
        'which_env.py',
      ])
      expect(missing.code).toBe(2)
      expect(missing.stderr).toMatch(
        /node 0 \(h1\): set-up step 1 failed with exit 1: eval "\$\(conda shell\.posix hook\)" && conda activate no-such-env\n(fanout: .*\n)*fanout: +EnvironmentNameNotFound: Could not find conda environment: no-such-env/,
      )
    } finally {
      rmSync(join(cluster?.dir ?? '', 'conda/envs/train-env'), { recursive: true, force: true })
    }
  })

  it('--venv DIR: a real virtualenv is active on the node (VIRTUAL_ENV, sys.prefix), its python the one the workers run', async () => {
    const venv = join(work(), 'real venv')
    rmSync(venv, { recursive: true, force: true })
    // Debian's python3 makes one without pip; its site-packages see the system's, where torch is.
    const made = await import('node:child_process').then(({ spawnSync }) =>
      spawnSync('/usr/bin/python3', ['-m', 'venv', '--system-site-packages', '--without-pip', venv]),
    )
    expect(made.status, made.stderr?.toString()).toBe(0)
    writeWork(
      'venv_report.py',
      'import os, sys\nsys.stdout.write(f"VIRTUAL_ENV {os.environ.get(\'VIRTUAL_ENV\')} prefix {sys.prefix} base {sys.base_prefix}\\n")\n',
    )
    const run = await runFanout([
      '--hosts',
      'h1,h2',
      '--ssh-config',
      cluster?.sshConfig ?? '',
      '--venv',
      venv,
      '--nproc-per-node',
      '1',
      'venv_report.py',
    ])
    expect(run.code, run.stderr).toBe(0)
    expect(run.stdout.match(new RegExp(`VIRTUAL_ENV ${venv} prefix ${venv} base /usr\\n`, 'g'))).toHaveLength(2)
  })

  it('--strict: torch versions that differ only in patch level are a warning, and with --strict an error', async () => {
    // h3 finds a torch 1.13.9 first on its path (its set-up step says so; the probe reads version.py, imports nothing).
    const fake = join(work(), 'fake-torch-site/torch')
    mkdirSync(fake, { recursive: true, mode: 0o755 })
    writeFileSync(join(fake, '__init__.py'), '')
    writeFileSync(join(fake, 'version.py'), "__version__ = '1.13.9'\n")
    writeWork('hello.py', 'print("hello")\n')
    const setup = [
      '--setup',
      `[ "$(hostname)" != fo-h3 ] || export PYTHONPATH=${join(work(), 'fake-torch-site')}:$PYTHONPATH`,
    ]
    const loose = await runFanout(['check', '--hosts', 'h1,h2,h3', ...clusterArgs(), ...setup, 'hello.py'])
    expect(loose.code, loose.stderr).toBe(0)
    expect(loose.stderr).toMatch(/warning: nodes run different torch versions: 1\.13\S*, 1\.13\.9/)
    const strict = await runFanout(['check', '--hosts', 'h1,h2,h3', ...clusterArgs(), ...setup, '--strict', 'hello.py'])
    expect(strict.code).toBe(2)
    expect(strict.stderr).toMatch(
      /pre-flight failed, nothing was launched:\nfanout: nodes run different torch versions: 1\.13\S*, 1\.13\.9/,
    )
  })

  it('colour: --color always colours the prefixes and the summary; never, NO_COLOR and a pipe do not', async () => {
    const args = ['--hosts', 'h1', ...clusterArgs(), '--launcher', 'none', '--', 'echo', 'tinted']
    const always = await runFanout(['--color', 'always', ...args])
    expect(always.code, always.stderr).toBe(0)
    // The prefix is coloured (an SGR sequence before it, a reset after), the job's text is not.
    expect(always.stdout).toMatch(/^\x1b\[[0-9;]*m\[n0 h1\][^\n]*\x1b\[[0-9;]*m[^\n\x1b]*tinted\n$/)
    expect(always.stderr).toMatch(/\x1b\[1mnode +host/)
    const forced = await runFanout(args, { env: { NO_COLOR: '', FORCE_COLOR: '1' } })
    expect(forced.stdout).toContain('\x1b[')
    for (const run of [
      await runFanout(['--color', 'never', ...args], { env: { FORCE_COLOR: '1' } }),
      await runFanout(args),
    ]) {
      expect(run.stdout).toBe('[n0 h1]  tinted\n')
      expect(run.stderr).not.toContain('\x1b[')
    }
  })
})
