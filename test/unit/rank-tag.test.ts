import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, writeFileSync, chmodSync, rmSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { RANK_TAGGER, taggedWorkerArgv, type WorkerSpec } from '../../src/node/rank-tag.js'
import { FrameDemux, type Segment } from '../../src/output/frames.js'
import { WORKER_BOOT } from '../../src/node/worker-boot.js'
import { expectStuckDump, reEscape, STUCK } from './stuck-worker.js'

const PY = '/usr/bin/python3'
const sq = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`

interface Run {
  code: number | null
  signal: NodeJS.Signals | null
  pid: number
  out: Segment[]
  err: Segment[]
  rawOut: Buffer
  rawErr: Buffer
}

interface RunOptions {
  rank?: string
  localRank?: string
  cwd?: string
  detached?: boolean
  /** Called after every stdout chunk with what arrived so far. */
  onOut?: (out: Segment[], child: ChildProcess) => void
  /** Called once the process is started. */
  onSpawn?: (child: ChildProcess) => void
  timeoutMs?: number
}

/** Spawns argv with stdout/stderr on pipes, demultiplexes both, and resolves when the process and both streams are done. */
function runArgv(argv: string[], o: RunOptions = {}): Promise<Run> {
  const env: NodeJS.ProcessEnv = { ...process.env }
  delete env.RANK
  delete env.LOCAL_RANK
  if (o.rank !== undefined) env.RANK = o.rank
  if (o.localRank !== undefined) env.LOCAL_RANK = o.localRank
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), {
      env,
      cwd: o.cwd,
      detached: o.detached,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error('tagger run timed out'))
    }, o.timeoutMs ?? 5000)
    o.onSpawn?.(child)
    const outD = new FrameDemux()
    const errD = new FrameDemux()
    const out: Segment[] = []
    const err: Segment[] = []
    const rawOut: Buffer[] = []
    const rawErr: Buffer[] = []
    child.stdout!.on('data', (c: Buffer) => {
      rawOut.push(c)
      out.push(...outD.push(c))
      o.onOut?.(out, child)
    })
    child.stderr!.on('data', (c: Buffer) => {
      rawErr.push(c)
      err.push(...errD.push(c))
    })
    child.on('error', reject)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      out.push(...outD.end())
      err.push(...errD.end())
      resolve({ code, signal, pid: child.pid!, out, err, rawOut: Buffer.concat(rawOut), rawErr: Buffer.concat(rawErr) })
    })
  })
}

const runTagger = (worker: WorkerSpec, o: RunOptions = {}): Promise<Run> =>
  runArgv(taggedWorkerArgv(PY, worker), { rank: '0', localRank: '0', ...o })

/** Each stream's bytes by 'rank,localRank' ('u' for untagged), checking that an end frame comes last and only once. */
function streams(segs: Segment[]): { data: Record<string, Buffer>; ended: string[] } {
  const parts: Record<string, Buffer[]> = {}
  const ended: string[] = []
  for (const s of segs) {
    if (s.start) continue // the worker's start (its own test below)
    const key = s.rank === undefined && s.localRank === undefined ? 'u' : `${s.rank},${s.localRank}`
    expect(ended, `data after the end of ${key}`).not.toContain(key)
    if (s.end) ended.push(key)
    else (parts[key] ??= []).push(s.data)
  }
  return { data: Object.fromEntries(Object.entries(parts).map(([k, v]) => [k, Buffer.concat(v)])), ended }
}

const text = (segs: Segment[], key = '0,0'): string => streams(segs).data[key]?.toString() ?? ''

/** Strict parse of a stream that must hold nothing but frames: their sizes and each rank's bytes. */
function strictFrames(raw: Buffer): { sizes: number[]; data: Record<string, Buffer> } {
  const sizes: number[] = []
  const parts: Record<string, Buffer[]> = {}
  let p = 0
  while (p < raw.length) {
    const sep = raw.indexOf(0x1f, p)
    const start = /^\x1eS\d*,\d*:0$/.test(raw.subarray(p, sep).toString('latin1'))
    if (sep >= 0 && start) {
      p = sep + 1 // the worker's start: no payload
      continue
    }
    const m = /^\x1eF(\d*),(\d*):(\d{1,5})$/.exec(raw.subarray(p, sep).toString('latin1'))
    if (sep < 0 || !m)
      throw new Error(`no frame at byte ${p}: ${JSON.stringify(raw.subarray(p, p + 40).toString('latin1'))}`)
    const len = Number(m[3])
    const end = sep + 1 + len
    if (end > raw.length) throw new Error(`frame at byte ${p} cut short`)
    sizes.push(end - p)
    ;(parts[`${m[1]},${m[2]}`] ??= []).push(raw.subarray(sep + 1, end))
    p = end
  }
  return { sizes, data: Object.fromEntries(Object.entries(parts).map(([k, v]) => [k, Buffer.concat(v)])) }
}

let dir: string
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'fanout-rank-tag-'))
  writeFileSync(join(dir, 'show_argv.py'), 'import sys, json\nprint(json.dumps(sys.argv))\n')
  writeFileSync(join(dir, 'show_argv_mod.py'), 'import sys, json\nprint(json.dumps(sys.argv[1:]))\n')
  writeFileSync(
    join(dir, 'show_cmdline.py'),
    'import sys, json\nprint(json.dumps([sys.executable, open("/proc/self/cmdline","rb").read().decode().split("\\0")[:-1], sys.argv, getattr(sys, "orig_argv", None)]))\n',
  )
  writeFileSync(join(dir, 'stuck.py'), STUCK)
  writeFileSync(join(dir, 'boom.py'), 'def inner():\n    raise ValueError("boom")\nprint("before")\ninner()\n')
  writeFileSync(join(dir, 'ki.py'), 'def f():\n    raise KeyboardInterrupt\nf()\n')
  writeFileSync(join(dir, 'run.sh'), '#!/bin/sh\nprintf "%s\\n" "$0" "$@"\n')
  chmodSync(join(dir, 'run.sh'), 0o755)
})
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('taggedWorkerArgv', () => {
  it('puts the tagger, its mode, flag and the argv after --no_python', () => {
    expect(taggedWorkerArgv('python3', { mode: 'python', argv: ['train.py', '--epochs', '3'] })).toEqual([
      'python3',
      '-S',
      `-c${RANK_TAGGER}`,
      'train.py',
      'python',
      '-1',
      '',
      '--',
      'train.py',
      '--epochs',
      '3',
    ])
    expect(taggedWorkerArgv('python3', { mode: 'python', argv: ['-m', 'pkg.train', 'x'] })[3]).toBe('pkg.train')
    expect(
      taggedWorkerArgv('py', {
        mode: 'exec',
        argv: ['./run.sh'],
        localRankFlag: { flag: '--local-rank', insertAt: 1 },
      }),
    ).toEqual(['py', '-S', `-c${RANK_TAGGER}`, './run.sh', 'exec', '1', '--local-rank', '--', './run.sh'])
  })

  it('refuses a worker without a program (or -m without a module) and a flag position outside the argv', () => {
    expect(() => taggedWorkerArgv('py', { mode: 'exec', argv: [] })).toThrow(/program/)
    expect(() => taggedWorkerArgv('py', { mode: 'python', argv: [] })).toThrow(/program/)
    expect(() => taggedWorkerArgv('py', { mode: 'python', argv: ['-m'] })).toThrow(/module/)
    expect(() =>
      taggedWorkerArgv('py', { mode: 'python', argv: ['a.py'], localRankFlag: { flag: '--local_rank', insertAt: 2 } }),
    ).toThrow(RangeError)
    expect(() =>
      taggedWorkerArgv('py', { mode: 'python', argv: ['a.py'], localRankFlag: { flag: '--local_rank', insertAt: 0 } }),
    ).toThrow(RangeError)
  })

  it('the tagger source has no single quote (it travels inside shell single quotes as is)', () => {
    expect(RANK_TAGGER).not.toContain("'")
  })
})

describe('rank tagger (real python3)', () => {
  it('tags stdout and stderr byte for byte with the rank, then ends both streams', async () => {
    const code =
      'import sys\nw=sys.stdout.buffer.write\ne=sys.stderr.buffer.write\nw(b"line 1\\n\\xff\\xfe\\x1e\\x00 binary\\n")\ne(b"warn \\x80\\n")\nw(b"last line without newline")\ne(b"err tail")'
    const r = await runTagger({ mode: 'python', argv: ['-c', code] }, { rank: '13', localRank: '5' })
    expect(r.code).toBe(0)
    const out = streams(r.out)
    const err = streams(r.err)
    expect(out.data).toEqual({
      '13,5': Buffer.from('line 1\n\xff\xfe\x1e\x00 binary\nlast line without newline', 'latin1'),
    })
    expect(err.data).toEqual({ '13,5': Buffer.from('warn \x80\nerr tail', 'latin1') })
    expect(out.ended).toEqual(['13,5'])
    expect(err.ended).toEqual(['13,5'])
  })

  it('tags an exec-mode shell worker', async () => {
    const r = await runTagger(
      { mode: 'exec', argv: ['/bin/sh', '-c', 'echo out; echo err >&2; printf tail'] },
      { rank: '2', localRank: '0' },
    )
    expect(r.code).toBe(0)
    expect(streams(r.out)).toEqual({ data: { '2,0': Buffer.from('out\ntail') }, ended: ['2,0'] })
    expect(streams(r.err)).toEqual({ data: { '2,0': Buffer.from('err\n') }, ended: ['2,0'] })
  })

  it('sends empty rank fields when RANK and LOCAL_RANK are unset or not numbers', async () => {
    const unset = await runArgv(taggedWorkerArgv(PY, { mode: 'exec', argv: ['/bin/echo', 'x'] }))
    expect(unset.rawOut.toString('latin1')).toBe('\x1eS,:0\x1f\x1eF,:2\x1fx\n\x1eF,:0\x1f')
    const bad = await runArgv(taggedWorkerArgv(PY, { mode: 'exec', argv: ['/bin/echo', 'x'] }), {
      rank: '1x',
      localRank: '12345678901',
    })
    expect(bad.rawOut.toString('latin1')).toBe('\x1eS,:0\x1f\x1eF,:2\x1fx\n\x1eF,:0\x1f')
  })

  it('says first that the worker started (a start frame with its ranks), before anything the worker prints', async () => {
    const r = await runArgv(taggedWorkerArgv(PY, { mode: 'exec', argv: ['/bin/echo', 'x'] }), {
      rank: '5',
      localRank: '1',
    })
    expect(r.rawOut.toString('latin1').startsWith('\x1eS5,1:0\x1f\x1eF5,1:2\x1fx\n')).toBe(true)
    expect(r.out[0]).toEqual({ rank: 5, localRank: 1, data: Buffer.alloc(0), start: true })
  })

  it("python mode runs [sys.executable, -u, ...argv], with site (the tagger's own -S is not passed on)", async () => {
    const code =
      'import sys, json\nprint(json.dumps([sys.executable, open("/proc/self/cmdline","rb").read().decode().split("\\0")[:-1], sys.flags.no_site, "site" in sys.modules]))'
    const r = await runTagger({ mode: 'python', argv: ['-c', code, 'a', '--b'] })
    const [exe, cmdline, noSite, site] = JSON.parse(text(r.out)) as [string, string[], number, boolean]
    expect(cmdline).toEqual([exe, '-u', '-c', code, 'a', '--b'])
    expect([noSite, site]).toEqual([0, true])
  })

  it('python mode runs a script or -m module through the worker bootstrap: [sys.executable, -u, -c, WORKER_BOOT, ...argv]', async () => {
    const script = await runTagger({ mode: 'python', argv: ['show_cmdline.py', 'a', '--b'] }, { cwd: dir })
    const [exe, cmdline, argv, orig] = JSON.parse(text(script.out)) as [string, string[], string[], string[] | null]
    expect(cmdline).toEqual([exe, '-u', '-c', WORKER_BOOT, 'show_cmdline.py', 'a', '--b'])
    expect(argv).toEqual(['show_cmdline.py', 'a', '--b'])
    // What `python -u show_cmdline.py a --b` would have in sys.orig_argv (3.10+).
    expect(orig).toEqual([exe, '-u', 'show_cmdline.py', 'a', '--b'])
    const mod = await runTagger({ mode: 'python', argv: ['-m', 'show_cmdline', 'x'] }, { cwd: dir })
    const [exe2, cmdline2, argv2, orig2] = JSON.parse(text(mod.out)) as [string, string[], string[], string[] | null]
    expect(cmdline2).toEqual([exe2, '-u', '-c', WORKER_BOOT, '-m', 'show_cmdline', 'x'])
    expect(argv2).toEqual([join(dir, 'show_cmdline.py'), 'x'])
    expect(orig2).toEqual([exe2, '-u', '-m', 'show_cmdline', 'x'])
  })

  it('python mode runs -m modules', async () => {
    const r = await runTagger({ mode: 'python', argv: ['-m', 'show_argv_mod', 'x', 'y'] }, { cwd: dir })
    expect(r.code).toBe(0)
    expect(JSON.parse(text(r.out))).toEqual(['x', 'y'])
  })

  it.each<[string, WorkerSpec, string[]]>([
    [
      'a python script',
      { mode: 'python', argv: ['show_argv.py', 'a', 'b'], localRankFlag: { flag: '--local_rank', insertAt: 1 } },
      ['show_argv.py', '--local_rank=3', 'a', 'b'],
    ],
    [
      'a python module',
      { mode: 'python', argv: ['-m', 'show_argv_mod', 'a', 'b'], localRankFlag: { flag: '--local-rank', insertAt: 2 } },
      ['--local-rank=3', 'a', 'b'],
    ],
    [
      'a script as the last word',
      { mode: 'python', argv: ['show_argv.py'], localRankFlag: { flag: '--local_rank', insertAt: 1 } },
      ['show_argv.py', '--local_rank=3'],
    ],
  ])('inserts the local-rank flag after %s', async (_name, worker, argv) => {
    const r = await runTagger(worker, { cwd: dir, rank: '7', localRank: '3' })
    expect(r.code).toBe(0)
    expect(JSON.parse(text(r.out, '7,3'))).toEqual(argv)
  })

  it('inserts the local-rank flag after the script or module, behind the bootstrap', async () => {
    const script = await runTagger(
      { mode: 'python', argv: ['show_cmdline.py', 'a'], localRankFlag: { flag: '--local_rank', insertAt: 1 } },
      { cwd: dir, localRank: '2' },
    )
    const [exe, cmdline] = JSON.parse(text(script.out, '0,2')) as [string, string[]]
    expect(cmdline).toEqual([exe, '-u', '-c', WORKER_BOOT, 'show_cmdline.py', '--local_rank=2', 'a'])
    const mod = await runTagger(
      { mode: 'python', argv: ['-m', 'show_cmdline', 'a'], localRankFlag: { flag: '--local-rank', insertAt: 2 } },
      { cwd: dir, localRank: '2' },
    )
    const [exe2, cmdline2] = JSON.parse(text(mod.out, '0,2')) as [string, string[]]
    expect(cmdline2).toEqual([exe2, '-u', '-c', WORKER_BOOT, '-m', 'show_cmdline', '--local-rank=2', 'a'])
  })

  it('inserts the local-rank flag after an exec-mode program', async () => {
    const r = await runTagger(
      { mode: 'exec', argv: ['./run.sh', 'a', 'b'], localRankFlag: { flag: '--local_rank', insertAt: 1 } },
      { cwd: dir, localRank: '3' },
    )
    expect(text(r.out, '0,3')).toBe('./run.sh\n--local_rank=3\na\nb\n')
  })

  it('the worker keeps the PID, process group and session, has no child, and its exit code is the result', async () => {
    const code = [
      'import os, sys, json',
      'try:',
      '    os.waitpid(-1, os.WNOHANG); kids = True',
      'except ChildProcessError:',
      '    kids = False',
      'print(json.dumps([os.getpid(), kids, os.getpgrp() == os.getpgid(os.getppid()), os.getsid(0) == os.getsid(os.getppid())]))',
      'sys.exit(7)',
    ].join('\n')
    const r = await runTagger({ mode: 'python', argv: ['-c', code] })
    expect(r.code).toBe(7)
    expect(JSON.parse(text(r.out))).toEqual([r.pid, false, true, true])
  })

  it("the worker is killed when its launcher dies (torch 2 gives workers their own session, out of the watchdog's reach)", async () => {
    // sh stands in for torchrun: it starts the tagger, prints the worker's pid, and is then SIGKILLed.
    const launcher = spawn(
      '/bin/sh',
      ['-c', '"$@" & echo "$!"; wait', 'sh', ...taggedWorkerArgv(PY, { mode: 'exec', argv: ['/bin/sleep', '30'] })],
      { stdio: ['ignore', 'pipe', 'ignore'] },
    )
    const pid = await new Promise<number>((resolve) =>
      launcher.stdout.once('data', (b: Buffer) => resolve(Number(/^\d+/.exec(b.toString())?.[0]))),
    )
    const alive = (): boolean => {
      try {
        return !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))
      } catch {
        return false
      }
    }
    // comm turns from python3 into sleep at the exec, after the tagger has armed the parent-death signal.
    for (let i = 0; i < 50 && readFileSync(`/proc/${pid}/comm`, 'utf8').trim() !== 'sleep'; i++)
      await new Promise((r) => setTimeout(r, 50))
    expect(alive()).toBe(true)
    launcher.kill('SIGKILL')
    for (let i = 0; i < 40 && alive(); i++) await new Promise((r) => setTimeout(r, 50))
    expect(alive()).toBe(false)
  })

  it('a worker killed by SIGTERM ends the process with SIGTERM, and what it printed before arrives', async () => {
    let sent = false
    const r = await runTagger(
      { mode: 'python', argv: ['-c', 'import time\nprint("ready")\ntime.sleep(30)'] },
      {
        onOut: (out, child) => {
          if (!sent && text(out).includes('ready\n')) {
            sent = true
            child.kill('SIGTERM')
          }
        },
      },
    )
    expect(r.signal).toBe('SIGTERM')
    expect(streams(r.out)).toEqual({ data: { '0,0': Buffer.from('ready\n') }, ended: ['0,0'] })
  })

  it('a SIGINT to the whole process group does not lose the worker last words', async () => {
    let sent = false
    const code =
      'import sys, time\nprint("ready")\ntry:\n    time.sleep(30)\nexcept KeyboardInterrupt:\n    print("bye")\n    sys.stderr.write("last words\\n")\n    sys.exit(3)'
    const r = await runTagger(
      { mode: 'python', argv: ['-c', code] },
      {
        detached: true,
        onOut: (out, child) => {
          if (!sent && text(out).includes('ready\n')) {
            sent = true
            process.kill(-child.pid!, 'SIGINT')
          }
        },
      },
    )
    expect(r.code).toBe(3)
    expect(streams(r.out)).toEqual({ data: { '0,0': Buffer.from('ready\nbye\n') }, ended: ['0,0'] })
    expect(streams(r.err)).toEqual({ data: { '0,0': Buffer.from('last words\n') }, ended: ['0,0'] })
  })

  it('SIGPIPE and SIGXFSZ are default again in an exec-mode worker (python itself leaves them ignored)', async () => {
    const ignored = (status: string): bigint => BigInt('0x' + /SigIgn:\s*([0-9a-f]+)/.exec(status)![1])
    const bit = (sig: number): bigint => 1n << BigInt(sig - 1)
    const r = await runTagger({ mode: 'exec', argv: ['cat', '/proc/self/status'] })
    const mask = ignored(text(r.out))
    expect(mask & bit(13)).toBe(0n)
    expect(mask & bit(25)).toBe(0n)
    // The control: without the reset, a program exec'd by Python inherits SIGPIPE ignored.
    const plain = await runArgv([PY, '-c', 'import os\nos.execvp("cat", ["cat", "/proc/self/status"])'])
    expect(ignored(plain.rawOut.toString()) & bit(13)).toBe(bit(13))
  })

  it('a program that cannot be run gives exit 127 and a message', async () => {
    const r = await runTagger({ mode: 'exec', argv: ['/nonexistent/prog', 'x'] })
    expect(r.code).toBe(127)
    expect(text(r.err)).toBe('fanout: cannot run /nonexistent/prog: No such file or directory\n')
    expect(streams(r.out)).toEqual({ data: {}, ended: ['0,0'] })
  })

  it('large output arrives complete in frames of at most 4096 bytes', async () => {
    const code =
      'import sys\nw=sys.stdout.buffer.write\nfor i in range(4800):\n    w(b"%07d " % i + b"x" * 1000 + b"\\n")\nw(b"y" * 200000)\nsys.stderr.buffer.write(b"e" * 300000)'
    const r = await runTagger({ mode: 'python', argv: ['-c', code] }, { rank: '1', localRank: '1' })
    const lines = Array.from({ length: 4800 }, (_, i) => `${String(i).padStart(7, '0')} ${'x'.repeat(1000)}\n`).join('')
    const expected = Buffer.from(lines + 'y'.repeat(200000))
    const out = strictFrames(r.rawOut)
    expect(Math.max(...out.sizes)).toBeLessThanOrEqual(4096)
    expect(out.data['1,1']!.equals(expected)).toBe(true)
    expect(streams(r.out).data['1,1']!.equals(expected)).toBe(true)
    const err = strictFrames(r.rawErr)
    expect(Math.max(...err.sizes)).toBeLessThanOrEqual(4096)
    expect(err.data['1,1']!.equals(Buffer.from('e'.repeat(300000)))).toBe(true)
  })

  /** A worker that writes its rank's pattern to stdout and another to stderr, in writes of assorted sizes. */
  const pattern = (rank: number, stream: string): Buffer =>
    Buffer.from(Array.from({ length: 3000 }, (_, i) => `${stream}${rank}:${i}:${'abcdefgh'.repeat(i % 50)}\n`).join(''))
  const patternWorker = (rank: number): string[] =>
    taggedWorkerArgv(PY, {
      mode: 'python',
      argv: [
        '-c',
        `import sys\nfor i in range(3000):\n    b = b":%d:%s\\n" % (i, b"abcdefgh" * (i % 50))\n    sys.stdout.buffer.write(b"o${rank}" + b)\n    sys.stderr.buffer.write(b"e${rank}" + b)`,
      ],
    })

  it('two taggers writing to the same pipe produce whole frames and complete streams', async () => {
    const [a, b] = [patternWorker(0), patternWorker(1)]
    // stdout: a pipe of the shell's shared by both taggers; stderr: the one stderr pipe of the shell, shared too.
    const script = `{ RANK=0 LOCAL_RANK=0 ${a.map(sq).join(' ')} & RANK=1 LOCAL_RANK=1 ${b.map(sq).join(' ')} & wait; } | cat`
    const r = await runArgv(['/bin/sh', '-c', script])
    expect(r.code).toBe(0)
    for (const [raw, segs, stream] of [
      [r.rawOut, r.out, 'o'],
      [r.rawErr, r.err, 'e'],
    ] as const) {
      const f = strictFrames(raw)
      expect(Math.max(...f.sizes)).toBeLessThanOrEqual(4096)
      expect(Object.keys(f.data).sort()).toEqual(['0,0', '1,1'])
      const s = streams(segs)
      expect(s.ended.sort()).toEqual(['0,0', '1,1'])
      for (const rank of [0, 1]) {
        expect(f.data[`${rank},${rank}`]!.equals(pattern(rank, stream))).toBe(true)
        expect(s.data[`${rank},${rank}`]!.equals(pattern(rank, stream))).toBe(true)
      }
    }
  })

  it('waits for room when its stdout is non-blocking and full (EAGAIN), losing nothing', async () => {
    const argv = taggedWorkerArgv(PY, {
      mode: 'python',
      argv: ['-c', 'import sys\nsys.stdout.buffer.write(b"z" * 1000000)'],
    })
    const nonblocking = [
      PY,
      '-c',
      'import os, sys\nos.set_blocking(1, False)\nos.execv(sys.argv[1], sys.argv[1:])',
      ...argv,
    ]
    const r = await runArgv([
      '/bin/sh',
      '-c',
      `RANK=4 LOCAL_RANK=0 ${nonblocking.map(sq).join(' ')} | { sleep 0.3; cat; }`,
    ])
    expect(r.code).toBe(0)
    expect(r.rawErr.toString('latin1')).toBe('\x1eF4,0:0\x1f')
    const f = strictFrames(r.rawOut)
    expect(f.data['4,0']!.equals(Buffer.alloc(1000000, 'z'))).toBe(true)
  })

  describe('tagger -> worker bootstrap -> worker', () => {
    it("a SIGURG makes the worker dump every thread's stack to its stderr, framed with its rank, and go on", async () => {
      let sent = false
      const r = await runTagger(
        { mode: 'python', argv: ['stuck.py'] },
        {
          cwd: dir,
          rank: '3',
          localRank: '1',
          timeoutMs: 30_000,
          onOut: (out, child) => {
            if (!sent && text(out, '3,1').includes('ready\n')) {
              sent = true
              child.kill('SIGURG')
            }
          },
        },
      )
      expect([r.code, r.signal]).toEqual([0, null])
      expect(streams(r.out)).toEqual({ data: { '3,1': Buffer.from('ready\ndone True\n') }, ended: ['3,1'] })
      // Nothing outside the frames: the dump is the rank's stderr, like anything else it writes.
      const err = strictFrames(r.rawErr)
      expect(Object.keys(err.data)).toEqual(['3,1'])
      expectStuckDump(err.data['3,1']!.toString('latin1'), `${reEscape(dir)}/stuck\\.py`)
    }, 40_000)

    it('a SIGURG while the tagger is still starting (nothing registered yet) is ignored', async () => {
      const r = await runTagger(
        { mode: 'python', argv: ['boom.py'] },
        { cwd: dir, onSpawn: (child) => child.kill('SIGURG') },
      )
      expect(r.code).toBe(1)
      expect(text(r.out)).toBe('before\n')
      expect(text(r.err)).not.toContain('most recent call first')
    })

    it("an uncaught exception: the rank's stderr is what python3 -u SCRIPT prints, byte for byte, and exit 1", async () => {
      const r = await runTagger({ mode: 'python', argv: ['boom.py'] }, { cwd: dir, rank: '5', localRank: '0' })
      const plain = await runArgv([PY, '-u', 'boom.py'], { cwd: dir })
      expect(plain.code).toBe(1)
      expect(plain.rawErr.toString()).toMatch(
        /^Traceback \(most recent call last\):\n {2}File "[^"]*boom\.py", line 4, in <module>\n/,
      )
      expect(r.code).toBe(1)
      expect(streams(r.out)).toEqual({ data: { '5,0': plain.rawOut }, ended: ['5,0'] })
      expect(streams(r.err)).toEqual({ data: { '5,0': plain.rawErr }, ended: ['5,0'] })
    })

    it('an uncaught KeyboardInterrupt: its traceback, then the worker ends by SIGINT, as under python3 itself', async () => {
      const r = await runTagger({ mode: 'python', argv: ['ki.py'] }, { cwd: dir })
      const plain = await runArgv([PY, '-u', 'ki.py'], { cwd: dir })
      expect([plain.code, plain.signal]).toEqual([null, 'SIGINT'])
      expect([r.code, r.signal]).toEqual([null, 'SIGINT'])
      expect(text(r.err)).toBe(plain.rawErr.toString())
    })
  })
})
