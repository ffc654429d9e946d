import { execFileSync } from 'node:child_process'
import { chmodSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PassThrough } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { parseArgs } from '../../src/cli/dispatch.js'
import type { RunOptions } from '../../src/launch/options.js'
import { submitBatch, type SubmitOptions } from '../../src/launch/submit.js'
import { batchScript, checkBatchRequest } from '../../src/node/batch-script.js'
import { refusal } from './refusal.js'

const run = async (argv: string[], env: Record<string, string> = {}, cwd = '/work/proj'): Promise<RunOptions> => {
  const p = await parseArgs(argv, cwd, 100, env)
  if (p.kind !== 'run') throw new Error(`expected a run, got ${p.kind}`)
  return p.options
}
const refused = (argv: string[], env: Record<string, string> = {}) =>
  refusal(() => parseArgs(argv, '/work/proj', 100, env), 'USAGE')

describe('--via sbatch: parsing', () => {
  it('the sbatch flags become the request; fanout in the job gets every other word as typed', async () => {
    const o = await run([
      '--via',
      'sbatch',
      '--nodes',
      '3',
      '--gpus-per-node=8',
      '--time',
      '4:00:00',
      '--partition',
      'gpu',
      '--account',
      'lab-1',
      '--wait',
      '--env',
      'A=--x y',
      '--timeout',
      '2h',
      'train.py',
      '--nodes',
      '5',
      '--wait',
    ])
    expect(o.submit).toEqual({
      request: { nodes: 3, gpusPerNode: 8, time: '4:00:00', partition: 'gpu', account: 'lab-1' },
      wait: true,
      dir: '/work/proj',
      // The script's own --nodes and --wait are its own.
      words: ['--env', 'A=--x y', '--timeout', '2h', 'train.py', '--nodes', '5', '--wait'],
      script: 'train.py',
      scriptIsFile: true,
    })
  })

  it('a module is not a file to look for', async () => {
    expect((await run(['--via=sbatch', '-m', 'pkg.train'])).submit?.scriptIsFile).toBe(false)
  })

  it.each<[string, string[], RegExp]>([
    ['an sbatch flag without --via sbatch', ['--hosts', 'a', '--nodes', '2', 't.py'], /--nodes is for --via sbatch/],
    ['--wait without --via sbatch', ['--hosts', 'a', '--wait', 't.py'], /--wait is for --via sbatch/],
    ['a bad time limit', ['--via', 'sbatch', '--time', '2 hours', 't.py'], /--time must be a SLURM time limit/],
    [
      'a partition with a space',
      ['--via', 'sbatch', '--partition', 'a b', 't.py'],
      /--partition must be a SLURM partition name/,
    ],
    ['a host list', ['--via', 'sbatch', '--hosts', 'a,b', 't.py'], /not on --hostfile\/--hosts/],
    ['--sync', ['--via', 'sbatch', '--sync', 't.py'], /--via sbatch makes no SSH connection/],
    ['--dry-run', ['--via', 'sbatch', '--dry-run', 't.py'], /--dry-run with --via sbatch/],
    ['zero nodes', ['--via', 'sbatch', '--nodes', '0', 't.py'], /--nodes must be a whole number from 1/],
  ])('refuses %s (exit 2, nothing submitted)', async (_, argv, message) => {
    expect((await refused(argv)).message).toMatch(message)
  })
})

describe('the batch script', () => {
  it('directives for what was asked, one task per node, then fanout exec’d with every word quoted', () => {
    const text = batchScript({
      nodes: 2,
      time: '30',
      jobName: 'fanout-train',
      dir: '/work/proj',
      fanout: ['/usr/bin/node', '--', '/opt/fanout/bin/fanout.js', '--env', "X=it's $HOME", 'train.py'],
    })
    expect(text.split('\n').filter((l) => l.startsWith('#SBATCH'))).toEqual([
      '#SBATCH --job-name=fanout-train',
      '#SBATCH --nodes=2',
      '#SBATCH --ntasks-per-node=1',
      '#SBATCH --time=30',
      '#SBATCH --chdir=/work/proj',
      '#SBATCH --output=/work/proj/fanout-%j.out',
    ])
    // sh reads back exactly the words given.
    const dir = mkdtempSync(join(tmpdir(), 'fanout-batch-'))
    const file = join(dir, 'job.sh')
    writeFileSync(file, text.replace(/^exec /m, "exec printf '%s\\n' "))
    expect(execFileSync('/bin/sh', [file], { encoding: 'utf8' })).toBe(
      ['/usr/bin/node', '--', '/opt/fanout/bin/fanout.js', '--env', "X=it's $HOME", 'train.py', ''].join('\n'),
    )
  })

  it('refuses a directory an #SBATCH line cannot carry', () => {
    expect(() => batchScript({ jobName: 'j', dir: '/my proj', fanout: ['x'] })).toThrow(
      /cannot be written on an #SBATCH line/,
    )
  })

  it.each(['30', '4:00:00', '1-12', '2-00:30:00', 'UNLIMITED'])('takes the time limit %s', (time) => {
    expect(checkBatchRequest({ time })).toEqual({ time })
  })
})

/** A stand-in sbatch: records the script it was given, prints a job id, and with --wait writes the output and exits 3. */
function fakeSlurm(): { bin: string; dir: string } {
  const bin = mkdtempSync(join(tmpdir(), 'fanout-sbatch-bin-'))
  const dir = mkdtempSync(join(tmpdir(), 'fanout-sbatch-dir-'))
  writeFileSync(
    join(bin, 'sbatch'),
    `#!/bin/sh
for a do last=$a; done
cp "$last" "${dir}/submitted.sh"
echo "4242;cluster"
case " $* " in *" --wait "*)
  sleep 0.3; printf 'line one\\n' > "${dir}/fanout-4242.out"
  sleep 0.5; printf 'line two\\n' >> "${dir}/fanout-4242.out"
  exit 3 ;;
esac
`,
  )
  chmodSync(join(bin, 'sbatch'), 0o755)
  return { bin, dir }
}

async function submit(o: Partial<SubmitOptions>, dir: string, bin: string) {
  const stdout = new PassThrough()
  const stderr = new PassThrough()
  let out = ''
  let err = ''
  stdout.on('data', (b: Buffer) => (out += b.toString()))
  stderr.on('data', (b: Buffer) => (err += b.toString()))
  writeFileSync(join(dir, 'train.py'), 'print(1)\n')
  const code = await submitBatch(
    { request: { nodes: 2 }, wait: false, dir, words: ['train.py'], script: 'train.py', scriptIsFile: true, ...o },
    {
      stdout,
      stderr,
      env: { ...process.env, PATH: `${bin}:${process.env.PATH}` },
      self: ['/usr/bin/node', '--', '/opt/fanout/bin/fanout.js'],
      onStop: () => () => {},
      now: () => new Date('2026-12-06T10:20:30Z'),
    },
  )
  return { code, out, err }
}

describe('submitBatch (a stand-in sbatch)', () => {
  it('writes the script into the submit directory, submits it, prints the job id and where its output goes', async () => {
    const { bin, dir } = fakeSlurm()
    const r = await submit({}, dir, bin)
    expect(r.code).toBe(0)
    expect(r.out).toBe('4242\n')
    expect(r.err).toContain(`submitted batch job 4242 (${dir}/fanout-train-20261206-102030.sbatch)`)
    expect(r.err).toContain(`its output: ${dir}/fanout-4242.out`)
    expect(r.err).toContain('scancel --signal=INT --batch 4242')
    expect(readFileSync(join(dir, 'submitted.sh'), 'utf8')).toContain(
      'exec /usr/bin/node -- /opt/fanout/bin/fanout.js train.py',
    )
    expect(readdirSync(dir)).toContain('fanout-train-20261206-102030.sbatch')
    expect(statSync(join(dir, 'fanout-train-20261206-102030.sbatch')).mode & 0o777).toBe(0o600)
  })

  it('--wait follows the output file until the job ends, and exits with its code', async () => {
    const { bin, dir } = fakeSlurm()
    const r = await submit({ wait: true }, dir, bin)
    expect(r.code).toBe(3)
    expect(r.out).toBe('line one\nline two\n')
  })

  it('a script that is not in the submit directory is refused before submitting', async () => {
    const { bin, dir } = fakeSlurm()
    await refusal(() => submit({ script: 'nope.py', words: ['nope.py'] }, dir, bin), 'USAGE')
    expect(readdirSync(dir)).not.toContain('submitted.sh')
  })
})
