import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { homedir, tmpdir } from 'node:os'
import { join } from 'node:path'
import { WORKER_BOOT } from '../../src/node/worker-boot.js'
import { RANK_TAGGER } from '../../src/node/rank-tag.js'
import { escapeMacros } from '../../src/plan/launcher.js'
import { expectStuckDump, reEscape, STUCK } from './stuck-worker.js'

// The interpreter the rest of the unit tests use (Debian 12: 3.11). The bootstrap mimics each version's
// own main (3.8 to 3.13 differ: __file__, the missing-file message), so with FANOUT_TEST_PYTHONS=all the
// same checks also run under every CPython 3.8-3.13 that pyenv has on this machine (this image has them
// all), or under the interpreters it lists (colon-separated). Not by default: that is 7 times the time.
const PY = '/usr/bin/python3'
const pyenvRoot = process.env.PYENV_ROOT ?? join(homedir(), '.pyenv')
const OTHERS = ((): string[] => {
  const want = process.env.FANOUT_TEST_PYTHONS
  if (!want) return []
  if (want !== 'all') return want.split(':').filter(Boolean)
  try {
    return readdirSync(join(pyenvRoot, 'versions'))
      .filter((v) => /^3\.(8|9|1[0-3])\.\d+$/.test(v))
      .map((v) => join(pyenvRoot, 'versions', v, 'bin', 'python3'))
      .filter((p) => existsSync(p))
  } catch {
    return []
  }
})()
const PYTHONS = [PY, ...OTHERS]

interface Result {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

interface RunOptions {
  cwd?: string
  /** Set PYTHONSAFEPATH (3.11+: nothing put on sys.path[0]); unset otherwise. */
  safePath?: boolean
  /** Called with what the child's stdout has said so far, and its pid, after every chunk. */
  onOut?: (out: string, pid: number) => void
}

function run(argv: string[], o: RunOptions = {}): Promise<Result> {
  const env: NodeJS.ProcessEnv = { ...process.env }
  delete env.PYTHONSAFEPATH
  if (o.safePath) env.PYTHONSAFEPATH = '1'
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { cwd: o.cwd, env, stdio: ['ignore', 'pipe', 'pipe'] })
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`timed out: ${argv.slice(-3).join(' ')}`))
    }, 30_000)
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('latin1').on('data', (s: string) => {
      stdout += s
      o.onOut?.(stdout, child.pid!)
    })
    child.stderr.setEncoding('latin1').on('data', (s: string) => (stderr += s))
    child.on('error', reject)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr })
    })
  })
}

/** The same program, as `python -u ARGV` and through the bootstrap; both at once. */
const both = (py: string, argv: string[], o: RunOptions = {}): Promise<Result[]> =>
  Promise.all([run([py, '-u', ...argv], o), run([py, '-u', '-c', WORKER_BOOT, ...argv], o)])

let dir: string
const files: Record<string, string> = {
  'proj/show.py': [
    'import sys, json, atexit, inspect',
    'import helper',
    'def fn(): pass',
    'L = __loader__',
    'print(json.dumps([sys.argv, sys.path[0], __file__, __name__, __doc__, __spec__, __package__, __cached__, type(L).__name__, L.name, L.path,',
    '  list(globals()), getattr(sys, "orig_argv", [0, 0])[1:], sys.modules["__main__"].__dict__ is globals(), inspect.getsourcefile(fn),',
    '  fn.__code__.co_filename, helper.X, __builtins__ is __import__("builtins")]))',
    'atexit.register(lambda: print("atexit", globals().get("__file__"), "__cached__" in globals(), flush=True))',
    '',
  ].join('\n'),
  'proj/helper.py': 'X = "sibling imported"\n',
  'proj/boom.py':
    'class E(Exception): pass\ndef inner(x):\n    return 1 / x\ndef outer():\n    try:\n        inner(0)\n    except ZeroDivisionError as e:\n        raise E("wrapped") from e\nprint("before")\nouter()\n',
  'proj/exit3.py': 'import sys\nsys.exit(3)\n',
  'proj/exitmsg.py': 'import sys\nsys.exit("bad things")\n',
  'proj/ki.py':
    'import atexit\natexit.register(lambda: print("atexit ran", flush=True))\ndef f():\n    raise KeyboardInterrupt\nf()\n',
  'proj/syntax.py': 'x = 1\ndef (:\n',
  'proj/hook.py':
    'import sys, traceback\ndef h(t, v, tb):\n    print("HOOK", t.__name__, [f.name for f in traceback.extract_tb(tb)], v.__traceback__ is tb)\nsys.excepthook = h\ndef g():\n    raise ValueError("x")\ng()\n',
  'proj/lastvars.py':
    'import sys, atexit, traceback\natexit.register(lambda: print("last", sys.last_type.__name__, [f.name for f in traceback.extract_tb(sys.last_traceback)], flush=True))\ndef g():\n    raise ValueError("x")\ng()\n',
  'proj/mp.py':
    'import multiprocessing as mp\ndef work(x):\n    return x * 2\nif __name__ == "__main__":\n    with mp.get_context("spawn").Pool(2) as p:\n        print(p.map(work, [1, 2, 3]))\n',
  'proj/threads.py':
    'import threading, time, atexit\natexit.register(lambda: print("atexit", flush=True))\ndef w():\n    time.sleep(0.2)\n    print("thread done", flush=True)\nthreading.Thread(target=w).start()\nprint("main done", flush=True)\nraise RuntimeError("main")\n',
  'proj/pkg/__init__.py': 'import sys\nprint("init", sys.argv, flush=True)\n',
  'proj/pkg/__main__.py': 'import sys\nprint("main", sys.argv, sys.path[0], __file__, __name__, __spec__.name)\n',
  'proj/mod.py':
    'import sys, helper\nprint("mod", sys.argv, sys.path[0], __file__, __name__, helper.X)\nraise ValueError("from a module")\n',
  'dirmain/__main__.py': 'import sys\nprint("dirmain", sys.argv, sys.path[0], __file__, __name__)\n',
  // A thread and the main thread, each stuck in a function named stuck_here; SIGURG must stop neither.
  'proj/stuck.py': STUCK,
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'fanout-worker-boot-'))
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, name, '..'), { recursive: true })
    writeFileSync(join(dir, name), text)
  }
  mkdirSync(join(dir, 'other'))
  symlinkSync(join(dir, 'proj', 'show.py'), join(dir, 'other', 'link.py'))
  mkdirSync(join(dir, 'empty'))
})
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('WORKER_BOOT', () => {
  it('has no single quote, no $, no triple double quote (it sits in the tagger as r"""...""") and is in the tagger as is', () => {
    expect(WORKER_BOOT).not.toMatch(/['$]|"""|\\$/)
    expect(RANK_TAGGER).toContain(`B=r"""${WORKER_BOOT}"""`)
    expect(RANK_TAGGER).not.toMatch(/['$]/)
    // torchrun's ${local_rank} substitution (launcher.ts) leaves the tagger's word unchanged.
    expect(escapeMacros(RANK_TAGGER)).toBe(RANK_TAGGER)
  })
})

interface Case {
  name: string
  cwd: string
  argv: string[]
  /** What the plain run must show (the temporary directory written <dir>), so that each case tests what it says. */
  check: (r: Result) => void
  safePath?: boolean
}

const CASES: Case[] = [
  {
    name: 'a script: sys.argv, sys.path[0], __file__, __name__, __main__ as CPython sets them, a sibling module imported',
    cwd: 'proj',
    argv: ['show.py', 'a', 'b c'],
    check: (r) => expect(r.stdout).toContain('["show.py", "a", "b c"]'),
  },
  { name: './script', cwd: 'proj', argv: ['./show.py'], check: (r) => expect(r.code).toBe(0) },
  {
    name: 'a script in another directory (its own directory on sys.path)',
    cwd: 'other',
    argv: ['../proj/show.py', 'x'],
    check: (r) => expect(r.stdout).toContain('sibling imported'),
  },
  {
    name: 'a symbolic link (realpath on sys.path)',
    cwd: 'other',
    argv: ['link.py'],
    check: (r) => expect(r.stdout).toContain('sibling imported'),
  },
  {
    name: 'a script by absolute path',
    cwd: 'other',
    argv: ['<dir>/proj/show.py'],
    check: (r) => expect(r.code).toBe(0),
  },
  {
    name: 'a chained exception: the same traceback, exit 1',
    cwd: 'proj',
    argv: ['boom.py'],
    check: (r) => {
      expect([r.code, r.stdout]).toEqual([1, 'before\n'])
      expect(r.stderr).toMatch(/^Traceback \(most recent call last\):\n {2}File "[^"]*boom\.py", line 6, in outer\n/)
      expect(r.stderr).toMatch(
        /direct cause of the following exception:\n\nTraceback \(most recent call last\):\n {2}File "[^"]*boom\.py", line 10, in <module>\n/,
      )
    },
  },
  { name: 'SystemExit(3)', cwd: 'proj', argv: ['exit3.py'], check: (r) => expect([r.code, r.stderr]).toEqual([3, '']) },
  {
    name: 'SystemExit("msg")',
    cwd: 'proj',
    argv: ['exitmsg.py'],
    check: (r) => expect([r.code, r.stderr]).toEqual([1, 'bad things\n']),
  },
  {
    name: 'KeyboardInterrupt: traceback, atexit, then killed by SIGINT',
    cwd: 'proj',
    argv: ['ki.py'],
    check: (r) => {
      expect([r.code, r.signal, r.stdout]).toEqual([null, 'SIGINT', 'atexit ran\n'])
      expect(r.stderr).toMatch(/line 5, in <module>\n[^]*KeyboardInterrupt\n$/)
    },
  },
  {
    name: 'a syntax error',
    cwd: 'proj',
    argv: ['syntax.py'],
    check: (r) =>
      expect([r.code, r.stderr.includes('SyntaxError'), r.stderr.includes('Traceback')]).toEqual([1, true, false]),
  },
  {
    name: "the program's own sys.excepthook gets the traceback as CPython would give it",
    cwd: 'proj',
    argv: ['hook.py'],
    check: (r) => expect([r.code, r.stdout]).toEqual([1, "HOOK ValueError ['<module>', 'g'] True\n"]),
  },
  {
    name: 'sys.last_traceback after an uncaught exception',
    cwd: 'proj',
    argv: ['lastvars.py'],
    check: (r) => expect(r.stdout).toBe("last ValueError ['<module>', 'g']\n"),
  },
  {
    name: 'multiprocessing spawn of a function of __main__',
    cwd: 'proj',
    argv: ['mp.py'],
    check: (r) => expect([r.code, r.stdout]).toEqual([0, '[2, 4, 6]\n']),
  },
  {
    name: 'threads and atexit after an exception',
    cwd: 'proj',
    argv: ['threads.py'],
    check: (r) => expect([r.code, r.stdout]).toEqual([1, 'main done\nthread done\natexit\n']),
  },
  {
    name: '-m a module: cwd on sys.path, argv[0] the file',
    cwd: 'proj',
    argv: ['-m', 'mod', 'a'],
    check: (r) => {
      expect(r.stdout).toContain(
        `mod ['<dir>/proj/mod.py', 'a'] <dir>/proj <dir>/proj/mod.py __main__ sibling imported`,
      )
      expect(r.stderr).toContain('ValueError: from a module')
    },
  },
  {
    name: '-m a package (argv[0] is -m while it is found)',
    cwd: 'proj',
    argv: ['-m', 'pkg', 'a'],
    check: (r) => expect(r.stdout).toContain("init ['-m', 'a']"),
  },
  {
    name: '-m a missing module',
    cwd: 'proj',
    argv: ['-m', 'nonexistent'],
    check: (r) => expect([r.code, r.stderr]).toEqual([1, expect.stringMatching(/: No module named nonexistent\n$/)]),
  },
  {
    name: 'a directory with __main__.py',
    cwd: '.',
    argv: ['dirmain', 'q'],
    check: (r) => expect(r.stdout).toContain("dirmain ['dirmain', 'q']"),
  },
  {
    name: 'a directory without __main__.py',
    cwd: '.',
    argv: ['empty'],
    check: (r) => expect([r.code, r.stderr]).toEqual([1, expect.stringContaining("can't find '__main__' module")]),
  },
  {
    name: 'a missing script',
    cwd: 'proj',
    argv: ['missing.py'],
    check: (r) =>
      expect([r.code, r.stderr]).toEqual([
        2,
        expect.stringMatching(/^\S+: can't open file '[^']*missing\.py': \[Errno 2\] No such file or directory\n$/),
      ]),
  },
  {
    name: 'a missing script by absolute path',
    cwd: 'proj',
    argv: ['/nonexistent/x.py'],
    check: (r) =>
      expect([r.code, r.stderr]).toEqual([
        2,
        expect.stringMatching(/: can't open file '\/nonexistent\/x\.py': \[Errno 2\]/),
      ]),
  },
  { name: 'PYTHONSAFEPATH: a script', cwd: 'other', argv: ['../proj/show.py'], safePath: true, check: () => {} },
  { name: 'PYTHONSAFEPATH: -m', cwd: 'proj', argv: ['-m', 'pkg'], safePath: true, check: () => {} },
  {
    name: 'PYTHONSAFEPATH: a directory',
    cwd: '.',
    argv: ['dirmain'],
    safePath: true,
    check: (r) => expect(r.stdout).toContain('dirmain'),
  },
]

describe.each(PYTHONS)('the bootstrap runs the program as %s -u itself would', (py) => {
  it.concurrent.each(CASES.map((c) => [c.name, c] as const))('%s', { timeout: 60_000 }, async (_name, c) => {
    const argv = c.argv.map((w) => w.replace('<dir>', dir))
    const [plain, booted] = await both(py, argv, { cwd: join(dir, c.cwd), safePath: c.safePath ?? false })
    c.check({
      ...plain!,
      stdout: plain!.stdout.replaceAll(dir, '<dir>'),
      stderr: plain!.stderr.replaceAll(dir, '<dir>'),
    })
    expect(booted).toEqual(plain)
  })

  it.concurrent(
    "SIGURG: every thread's stack on stderr, and the program goes on and ends as it would",
    { timeout: 60_000 },
    async () => {
      let sent = false
      const r = await run([py, '-u', '-c', WORKER_BOOT, 'stuck.py'], {
        cwd: join(dir, 'proj'),
        onOut: (out, pid) => {
          if (!sent && out.includes('ready\n')) {
            sent = true
            process.kill(pid, 'SIGURG')
          }
        },
      })
      expect([r.code, r.signal, r.stdout]).toEqual([0, null, 'ready\ndone True\n'])
      // The script as __file__ names it: absolute from 3.9 on.
      expectStuckDump(r.stderr, `(?:${reEscape(dir)}/proj/)?stuck\\.py`)
    },
  )

  it.concurrent(
    'without the bootstrap a SIGURG is ignored (its default action): nothing is printed, nothing stops',
    { timeout: 60_000 },
    async () => {
      let sent = false
      const r = await run([py, '-u', 'stuck.py'], {
        cwd: join(dir, 'proj'),
        onOut: (out, pid) => {
          if (!sent && out.includes('ready\n')) {
            sent = true
            process.kill(pid, 'SIGURG')
          }
        },
      })
      expect([r.code, r.stdout, r.stderr]).toEqual([0, 'ready\ndone True\n', ''])
    },
  )
})
