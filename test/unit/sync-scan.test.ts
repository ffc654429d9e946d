import { execFileSync, spawnSync } from 'node:child_process'
import { chmod, mkdir, mkdtemp, readFile, rm, symlink, utimes, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import ts from 'typescript'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { DEFAULT_LIMITS, parseSyncMax, type ScanLimits } from '../../src/sync/limits.js'
import { scanTree, type FileEntry, type Manifest } from '../../src/sync/scan.js'
import { mulberry32 } from './prng.js'
import { refusal } from './refusal.js'

let root: string
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'fanout-scan-'))
})
afterEach(async () => {
  await rm(root, { recursive: true, force: true })
})

/** Writes `rel` (and its parents) under root. */
async function file(rel: string, content: string | Buffer = '', mode?: number): Promise<void> {
  await mkdir(dirname(join(root, rel)), { recursive: true })
  await writeFile(join(root, rel), content)
  if (mode !== undefined) await chmod(join(root, rel), mode)
}
async function link(rel: string, target: string): Promise<void> {
  await mkdir(dirname(join(root, rel)), { recursive: true })
  await symlink(target, join(root, rel))
}
const dir = (rel: string): Promise<unknown> => mkdir(join(root, rel), { recursive: true })
const paths = (m: Manifest): string[] => m.entries.map((e) => e.path)
const scan = (limits: ScanLimits = DEFAULT_LIMITS): Promise<Manifest> => scanTree(root, limits)
const refused = async (limits: ScanLimits = DEFAULT_LIMITS): Promise<string> =>
  (await refusal(() => scan(limits), 'USAGE')).message

describe('scanTree: the manifest', () => {
  it('lists files, directories and links with size, whole-second mtime, mode and link text', async () => {
    await file('run.sh', '#!/bin/sh\necho hi\n', 0o755)
    await file('src/model.py', 'x = 1\n', 0o640)
    await link('src/latest', 'model.py')
    await link('uni', 'é') // link size is the text's bytes: 2
    await utimes(join(root, 'run.sh'), 1_700_000_000.789, 1_700_000_000.789)
    await chmod(join(root, 'src'), 0o750)
    const m = await scan()
    const byPath = new Map(m.entries.map((e) => [e.path, e]))
    expect(byPath.get('run.sh')).toEqual<FileEntry>({
      path: 'run.sh',
      kind: 'file',
      size: 18,
      mtimeMs: 1_700_000_000_000,
      mode: 0o755,
    })
    expect(byPath.get('src/model.py')).toMatchObject({ kind: 'file', size: 6, mode: 0o640 })
    expect(byPath.get('src')).toMatchObject({ kind: 'dir', size: 0, mode: 0o750 })
    expect(byPath.get('src/latest')).toMatchObject({ kind: 'symlink', size: 8, target: 'model.py' })
    expect(byPath.get('uni')).toMatchObject({ kind: 'symlink', size: 2, target: 'é' })
    for (const e of m.entries) expect(e.mtimeMs % 1000).toBe(0)
    expect(m).toMatchObject({ root, files: 4, bytes: 24 })
    expect(paths(m)).toEqual(['run.sh', 'src', 'src/latest', 'src/model.py', 'uni'])
  })

  it('sorts by UTF-8 byte order, not by JS string order', async () => {
    // '-' < '.' < '/' puts a/b after a.b; 'ｚ' (EF BD 9A) comes before '🙂' (F0 …) in bytes, after it in UTF-16
    for (const name of ['z', 'é', '🙂', 'ｚ', 'B', 'a-b', 'a.b', 'a/b']) await file(name)
    expect(paths(await scan())).toEqual(['B', 'a', 'a-b', 'a.b', 'a/b', 'z', 'é', 'ｚ', '🙂'])
  })

  it('keeps the executable bit (and the rest of the permission bits)', async () => {
    await file('exec', '', 0o755)
    await file('plain', '', 0o644)
    await file('owner-only', '', 0o700)
    const modes = Object.fromEntries((await scan()).entries.map((e) => [e.path, e.mode]))
    expect(modes).toEqual({ exec: 0o755, plain: 0o644, 'owner-only': 0o700 })
  })

  it('an empty tree is an empty manifest', async () => {
    expect(await scan()).toMatchObject({ entries: [], files: 0, bytes: 0 })
  })

  it('follows a root given as a link, and never a link inside', async () => {
    await file('real/a.txt', 'a')
    await link('real/to-dir', '.')
    const viaLink = join(root, 'root-link')
    await symlink(join(root, 'real'), viaLink)
    const m = await scanTree(viaLink, DEFAULT_LIMITS)
    expect(paths(m)).toEqual(['a.txt', 'to-dir'])
    expect(m.root).toBe(viaLink)
  })

  it.each([
    ['missing', async () => join(root, 'nope'), 'does not exist'],
    ['a file', async () => (await file('f'), join(root, 'f')), 'is not a directory'],
  ])('refuses a root that is %s, naming it', async (_what, make, says) => {
    const where = await make()
    const e = await refusal(() => scanTree(where, DEFAULT_LIMITS), 'USAGE')
    expect(e.message).toBe(
      `--sync: ${where} ${says}${says === 'is not a directory' ? '; --sync copies a directory (default: the current one)' : ''}`,
    )
  })
})

describe('scanTree: ignores', () => {
  it('applies .gitignore files at several depths, each to its subtree, and .fanoutignore after them', async () => {
    await file('.gitignore', '*.pyc\n/build/\nlogs/\n')
    await file('.fanoutignore', 'data/\n!keep.pyc\n')
    await file('a.py')
    await file('a.pyc')
    await file('keep.pyc')
    await file('build/out.o')
    await file('sub/build/kept.o') // /build/ is anchored to the root
    await file('sub/.gitignore', 'local.cfg\n!*.pyc\n')
    await file('sub/local.cfg')
    await file('sub/b.pyc') // re-included by sub/.gitignore
    await file('sub/deep/.gitignore', '*.txt\n')
    await file('sub/deep/notes.txt')
    await file('sub/deep/local.cfg')
    await file('sub/logs/x.log') // logs/ anywhere
    await file('notes.txt') // *.txt only below sub/deep
    await file('data/train.bin')
    const m = await scan()
    expect(paths(m)).toEqual([
      '.fanoutignore',
      '.gitignore',
      'a.py',
      'keep.pyc',
      'notes.txt',
      'sub',
      'sub/.gitignore',
      'sub/b.pyc',
      'sub/build',
      'sub/build/kept.o',
      'sub/deep',
      'sub/deep/.gitignore',
    ])
    // the rules travel with the manifest, for paths that exist only on a node
    expect(m.ignore.ignored('data/other.bin', false)).toBe(true)
    expect(m.ignore.ignored('sub/deep/new.txt', false)).toBe(true)
    expect(m.ignore.ignored('new.py', false)).toBe(false)
  })

  it('skips .git (a directory or a submodule .git file) at any depth, keeps .gitignore and x.git', async () => {
    await file('.git/config')
    await file('.git/objects/ab/cdef')
    await file('vendor/lib/.git', 'gitdir: ../../.git/modules/lib\n')
    await file('vendor/lib/lib.py')
    await file('.gitignore', '')
    await file('x.git')
    expect(paths(await scan())).toEqual(['.gitignore', 'vendor', 'vendor/lib', 'vendor/lib/lib.py', 'x.git'])
  })

  it('never reads an ignored directory (so one it could not read is no problem)', async () => {
    await file('.gitignore', 'venv/\n')
    await file('venv/lib/big.so', 'x'.repeat(5000))
    expect(paths(await scan({ maxBytes: 100, maxFiles: 1 }))).toEqual(['.gitignore'])
  })

  it('refuses a .fanoutignore that is a link', async () => {
    await link('.fanoutignore', '.gitignore')
    await file('.gitignore')
    expect(await refused()).toContain('".fanoutignore" is a link; ')
  })
})

// What git itself would copy: `git ls-files --others --exclude-per-directory=.gitignore` in a fresh repo.
const NAMES = ['a', 'b', 'foo', 'foo.txt', 'x.log', 'build', 'doc', 'data', 'x y', 'é', '#c', 'sp ']
const PATTERNS = [
  'a',
  '/a',
  'build/',
  '!build/',
  '*.log',
  '!x.log',
  'doc/*',
  '**/b',
  'data/**',
  '!data/foo',
  'x y',
  'é',
  '*',
  '!foo*',
  'b/',
  '#c',
  '\\#c',
  'sp\\ ',
  '!*/',
]
const hasGit = spawnSync('git', ['--version']).status === 0

// Outside CI without git: skipped. Under CI it runs (.ci/run installs git), and a missing git fails it.
describe.skipIf(!hasGit && !process.env.CI)('scanTree agrees with git about which files a tree holds', () => {
  it.each([11, 12, 13, 14, 16])('random tree, seed %i', async (seed) => {
    const rand = mulberry32(seed)
    const pick = <T>(items: readonly T[]): T => items[Math.floor(rand() * items.length)] as T
    const dirs = new Set<string>([''])
    const files = new Set<string>()
    for (let n = 0; n < 80; n++) {
      const parts = Array.from({ length: 1 + Math.floor(rand() * 3) }, () => pick(NAMES))
      const prefixes = parts.slice(0, -1).map((_, i) => parts.slice(0, i + 1).join('/'))
      if (prefixes.some((p) => files.has(p)) || dirs.has(parts.join('/'))) continue
      prefixes.forEach((p) => dirs.add(p))
      files.add(parts.join('/'))
    }
    for (const d of dirs)
      if (d === '' || rand() < 0.3)
        await file(
          d === '' ? '.gitignore' : `${d}/.gitignore`,
          Array.from({ length: 1 + Math.floor(rand() * 4) }, () => pick(PATTERNS)).join('\n'),
        )
    for (const f of files) await file(f, f)
    execFileSync('git', ['init', '-q', root])
    const out = execFileSync(
      'git',
      ['-c', 'core.excludesFile=/dev/null', 'ls-files', '-z', '--others', '--exclude-per-directory=.gitignore'],
      { cwd: root },
    )
    const byGit = out.toString('utf8').split('\0').filter(Boolean).sort()
    const ours = (await scan()).entries
      .filter((e) => e.kind === 'file')
      .map((e) => e.path)
      .sort()
    expect(ours).toEqual(byGit)
    expect(byGit.length).toBeGreaterThan(0)
  })
})

describe('scanTree: limits', () => {
  it('refuses a tree over the size limit, naming the 5 biggest files and directories', async () => {
    await file('src/train.py', 'x'.repeat(10))
    await file('data/big.bin', 'x'.repeat(3 * 1024))
    await file('data/sub/mid.bin', 'x'.repeat(1536))
    await file('data/sub/small.bin', 'x'.repeat(100))
    await file('ckpt/step1.pt', 'x'.repeat(2048))
    await file('ckpt/step2.pt', 'x'.repeat(2047))
    await file('ckpt/old/step0.pt', 'x'.repeat(50))
    await file('README.md', 'x'.repeat(20))
    const message = await refused({ maxBytes: 4096, maxFiles: 100 })
    expect(message).toBe(
      `--sync: ${root} holds 8 files / 8.7 KiB, over the limit of 4 KiB (raise it with --sync-max, or ignore these in .fanoutignore): ` +
        'biggest: data/big.bin (3 KiB), ckpt/step1.pt (2 KiB), ckpt/step2.pt (2 KiB), data/sub/mid.bin (1.5 KiB), data/sub/small.bin (100 B); ' +
        'biggest directories: data/ (4.6 KiB, 3 files), ckpt/ (4 KiB, 3 files), data/sub/ (1.6 KiB, 2 files), ckpt/old/ (50 B, 1 file), src/ (10 B, 1 file)',
    )
  })

  it('refuses a tree over the file limit, ranking directories by file count', async () => {
    for (let i = 0; i < 6; i++) await file(`many/f${i}`)
    await file('few/big.bin', 'x'.repeat(500))
    await file('few/other')
    const message = await refused({ maxBytes: DEFAULT_LIMITS.maxBytes, maxFiles: 5 })
    expect(message).toMatch(
      new RegExp(
        `^--sync: ${root} holds 8 files / 500 B, over the limit of 5 files \\(raise it with --sync-max, or ignore these in \\.fanoutignore\\): biggest: few/big\\.bin \\(500 B\\), `,
      ),
    )
    expect(message).toContain('; biggest directories: many/ (0 B, 6 files), few/ (500 B, 2 files)')
  })

  it('names both limits when both are over', async () => {
    await file('a', 'xx')
    await file('b', 'xx')
    expect(await refused({ maxBytes: 3, maxFiles: 1 })).toContain(
      'holds 2 files / 4 B, over the limit of 1 file and 3 B',
    )
  })

  it('stops counting at twice the file limit, and says so', async () => {
    for (let i = 0; i < 30; i++) await file(`d${i % 3}/f${String(i).padStart(2, '0')}`, 'x'.repeat(i))
    const message = await refused({ maxBytes: DEFAULT_LIMITS.maxBytes, maxFiles: 4 })
    expect(message).toContain('holds at least 8 files / ')
    expect(message).toContain('(it stopped counting there)')
  })

  it('accepts a tree exactly at the limits, and symlinks count as files but not bytes', async () => {
    await file('a', 'x'.repeat(60))
    await file('b', 'x'.repeat(40))
    await link('c', 'a')
    const m = await scan({ maxBytes: 100, maxFiles: 3 })
    expect(m).toMatchObject({ files: 3, bytes: 100 })
    expect(await refused({ maxBytes: 99, maxFiles: 3 })).toContain('over the limit of 99 B')
    const message = await refused({ maxBytes: 100, maxFiles: 2 })
    expect(message).toContain('holds 3 files / 100 B, over the limit of 2 files')
    expect(message).toMatch(/: biggest: a \(60 B\), b \(40 B\)$/) // a link is no offender; no directories here
  })

  it('does not count what is ignored', async () => {
    await file('.fanoutignore', '*.ckpt\n')
    await file('model.ckpt', 'x'.repeat(10_000))
    await file('train.py', 'print(1)\n')
    expect(await scan({ maxBytes: 1000, maxFiles: 10 })).toMatchObject({ files: 2 })
  })

  it('unlimited means no limit', async () => {
    await file('a', 'x'.repeat(10_000))
    expect(await scan(parseSyncMax('unlimited'))).toMatchObject({ files: 1, bytes: 10_000 })
  })
})

describe('parseSyncMax', () => {
  const G = 1024 ** 3
  it.each<[string, Partial<ScanLimits>]>([
    ['5GiB', { maxBytes: 5 * G }],
    ['2G', { maxBytes: 2 * G }],
    ['2g', { maxBytes: 2 * G }],
    ['500MB', { maxBytes: 500e6 }],
    ['500MiB', { maxBytes: 500 * 1024 ** 2 }],
    ['500M', { maxBytes: 500 * 1024 ** 2 }],
    ['1.5GiB', { maxBytes: 1.5 * G }],
    ['10KB', { maxBytes: 10_000 }],
    ['10k', { maxBytes: 10_240 }],
    ['2TB', { maxBytes: 2e12 }],
    ['4096B', { maxBytes: 4096 }],
    ['5 GiB', { maxBytes: 5 * G }],
    ['50000 files', { maxFiles: 50_000 }],
    ['50000files', { maxFiles: 50_000 }],
    ['1 file', { maxFiles: 1 }],
    ['50000', { maxFiles: 50_000 }],
    ['5GiB,50000', { maxBytes: 5 * G, maxFiles: 50_000 }],
    ['50000 files, 5GiB', { maxBytes: 5 * G, maxFiles: 50_000 }],
    ['unlimited', { maxBytes: Infinity, maxFiles: Infinity }],
    [' Unlimited ', { maxBytes: Infinity, maxFiles: Infinity }],
  ])('%j', (value, want) => {
    expect(parseSyncMax(value)).toEqual({ ...DEFAULT_LIMITS, ...want })
  })

  it.each<[string, string]>([
    ['', 'has an empty part'],
    ['lots', 'does not understand "lots"'],
    ['5XB', 'does not understand "5XB"'],
    ['5i', 'does not understand "5i"'],
    ['5iB', 'does not understand "5iB"'],
    ['-5GiB', 'does not understand "-5GiB"'],
    ['1.5 files', 'does not understand "1.5 files"'],
    ['0', 'must be more than 0'],
    ['0GiB', 'must be more than 0'],
    ['0.0001B', 'must be more than 0'],
    ['5GiB,6GiB', 'gives the size twice'],
    ['5,6', 'gives the file count twice'],
    ['1,2,3', 'has more than two parts'],
    ['5GiB,', 'has an empty part'],
    ['99999999999999999999', 'must be more than 0 and less than'],
    ['unlimited,5', 'does not understand "unlimited"'],
    ['Infinity', 'does not understand "Infinity"'],
    ['0x10', 'does not understand "0x10"'],
    ['1e9', 'does not understand "1e9"'],
  ])('refuses %j', async (value, says) => {
    const e = await refusal(() => parseSyncMax(value), 'USAGE')
    expect(e.message).toContain(`--sync-max: ${JSON.stringify(value)} ${says}`)
    expect(e.message).toContain('(expected a size (5GiB, 2G, 500MB), a file count')
  })
})

describe('scanTree: links', () => {
  it.each<[string, Array<[string, string]>]>([
    ['relative, in the same directory', [['src/latest', 'model.py']]],
    ['relative, up and down', [['src/cfg', '../conf/base.yaml']]],
    ['through .. that stays inside', [['src/deep/x', '../../src/../conf/base.yaml']]],
    ['to a directory (not descended)', [['conf-link', 'conf']]],
    ['to the root itself', [['src/top', '..']]],
    ['dangling, inside', [['latest', 'ckpt/step_9']]],
    [
      'through another link that stays inside',
      [
        ['src/deep/up', '../..'],
        ['src/deep/x', 'up/conf/base.yaml'],
      ],
    ],
    [
      'a loop (broken, but inside)',
      [
        ['loop1', 'loop2'],
        ['loop2', 'loop1'],
      ],
    ],
  ])('keeps a link %s as a link', async (_name, links) => {
    await file('conf/base.yaml', 'a: 1\n')
    await dir('src/deep')
    for (const [at, target] of links) await link(at, target)
    const m = await scan()
    for (const [at, target] of links)
      expect(m.entries.find((e) => e.path === at)).toMatchObject({ kind: 'symlink', target })
    expect(paths(m).filter((p) => p.startsWith('conf-link/'))).toEqual([])
  })

  it.each<[string, Array<[string, string]>, string]>([
    ['relative, climbing out', [['a/b', '../../etc']], 'a/b -> ../../etc'],
    ['absolute', [['passwd', '/etc/passwd']], 'passwd -> /etc/passwd'],
    ['absolute, even into the tree itself', [['self', '/']], 'self -> /'],
    ['.. from the root', [['up', '..']], 'up -> ..'],
    ['out and back in by name', [['a/x', '../../' + 'ROOTNAME' + '/a']], 'a/x -> '],
    [
      'through a link that climbs above its own place',
      [
        ['d1/d2/y', '../..'],
        ['d1/d2/x', 'y/..'],
      ],
      'd1/d2/x -> y/..',
    ],
  ])('refuses a link %s', async (_name, links, says) => {
    for (const [at, target] of links) await link(at, target.replace('ROOTNAME', root.split('/').pop() as string))
    const message = await refused()
    expect(message).toContain(`--sync: link ${says}`)
    expect(message).toContain(
      `points outside ${root}; sync copies the tree only: replace the link with the file, or ignore it in .fanoutignore`,
    )
  })

  it('names every link that points outside', async () => {
    await link('a', '/data')
    await link('b/c', '../../x')
    expect(await refused()).toBe(
      `--sync: 2 links point outside ${root}: a -> /data, b/c -> ../../x; sync copies the tree only: replace each link with the file, or ignore it in .fanoutignore`,
    )
  })

  it('accepts an outside link that is ignored, and one that reaches outside only through an ignored link', async () => {
    await file('.fanoutignore', 'scratch\n')
    await link('scratch', '/mnt/scratch')
    await link('latest', 'scratch/run1') // on the nodes, scratch is absent: it dangles inside
    expect(paths(await scan())).toEqual(['.fanoutignore', 'latest'])
  })
})

describe('scanTree: special files', () => {
  it('refuses a fifo, naming it', async () => {
    await dir('sub')
    execFileSync('mkfifo', [join(root, 'sub', 'pipe')])
    expect(await refused()).toBe(
      `--sync: ${root} holds a special file that cannot be copied: sub/pipe (fifo); sync copies files, directories and links only: remove it, or ignore it in .fanoutignore`,
    )
  })

  it('refuses a socket too, and every one is named', async () => {
    execFileSync('mkfifo', [join(root, 'p')])
    const server = createServer()
    await new Promise<void>((resolve) => server.listen(join(root, 's.sock'), resolve))
    try {
      expect(await refused()).toContain('holds 2 special files that cannot be copied: p (fifo), s.sock (socket); ')
    } finally {
      await new Promise((resolve) => server.close(resolve))
    }
  })

  it('an ignored one is no problem', async () => {
    execFileSync('mkfifo', [join(root, 'pipe')])
    await file('.fanoutignore', 'pipe\n')
    expect(paths(await scan())).toEqual(['.fanoutignore'])
  })
})

describe('scanTree: hostile names', () => {
  const NAMES = [
    'with space',
    "it's",
    'say "hi"',
    'new\nline',
    'tab\there',
    '..foo',
    '...',
    '-rf',
    '--help',
    'données',
    '🙂',
    'back\\slash',
    ' lead',
    'trail ',
    'esc\x1b[31m',
    '$(id)',
    '*',
    '#x',
    '!x',
  ]

  it('keeps every name as it is', async () => {
    for (const name of NAMES) await file(`d/${name}`, name)
    await link(`d/link\nto`, 'new\nline')
    const m = await scan()
    expect(
      paths(m)
        .filter((p) => p !== 'd')
        .sort(),
    ).toEqual([...NAMES, 'link\nto'].map((n) => `d/${n}`).sort())
    expect(m.entries.find((e) => e.path === 'd/link\nto')).toMatchObject({ kind: 'symlink', target: 'new\nline' })
    for (const e of m.entries) {
      expect(e.path.split('/')).not.toContain('..')
      expect(e.path.startsWith('/')).toBe(false)
    }
  })

  it('shows such names quoted in messages, a newline as \\n', async () => {
    await file('new\nline.bin', 'x'.repeat(100))
    await file('plain.bin', 'x'.repeat(50))
    const message = await refused({ maxBytes: 10, maxFiles: 100 })
    expect(message).not.toContain('\n')
    expect(message).toContain('biggest: "new\\nline.bin" (100 B), plain.bin (50 B)')
  })

  it('refuses a name that is not UTF-8, unless it is ignored', async () => {
    const bad = Buffer.concat([Buffer.from(`${root}/`), Buffer.from([0x66, 0xff, 0x2e, 0x62, 0x69, 0x6e])]) // "f\xff.bin"
    await writeFile(bad, 'x')
    expect(await refused()).toMatch(
      /--sync: the name "f\uFFFD\.bin" in .* is not UTF-8; rename it, or ignore it in \.fanoutignore/,
    )
    await file('.fanoutignore', '*.bin\n')
    expect(paths(await scan())).toEqual(['.fanoutignore'])
  })
})

// Root reads anything: an unreadable directory or file can only be shown by a process that is not root.
// As root, the scan runs in a child process as nobody (uid 65534), on the real module compiled to
// JavaScript; otherwise it runs here, on a tree chmod-ed to 000.
describe('scanTree: unreadable entries', () => {
  const asRoot = process.getuid?.() === 0

  async function scanAsUser(
    roots: string[],
    skip: (why: string) => void,
  ): Promise<Array<{ message?: string; code?: string; paths?: string[] }>> {
    if (!asRoot) {
      return Promise.all(
        roots.map(async (r) => {
          try {
            return { paths: paths(await scanTree(r, DEFAULT_LIMITS)) }
          } catch (e) {
            return { message: (e as Error).message, code: (e as { code?: string }).code }
          }
        }),
      )
    }
    const build = join(root, 'build')
    for (const src of ['errors.ts', 'sync/ignore.ts', 'sync/limits.ts', 'sync/scan.ts']) {
      const out = ts.transpileModule(await readFile(join(import.meta.dirname, '../../src', src), 'utf8'), {
        compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: false },
      })
      await mkdir(dirname(join(build, 'src', src)), { recursive: true })
      await writeFile(join(build, 'src', src.replace(/\.ts$/, '.js')), out.outputText)
    }
    await writeFile(join(build, 'package.json'), '{"type":"module"}')
    await writeFile(
      join(build, 'driver.mjs'),
      `import { scanTree } from './src/sync/scan.js'
import { DEFAULT_LIMITS } from './src/sync/limits.js'
const out = []
for (const r of process.argv.slice(2)) {
  try { out.push({ paths: (await scanTree(r, DEFAULT_LIMITS)).entries.map((e) => e.path) }) }
  catch (e) { out.push({ message: e.message, code: e.code }) }
}
process.stdout.write(JSON.stringify(out))`,
    )
    await chmod(root, 0o755)
    await chmod(build, 0o755)
    const child = spawnSync(process.execPath, [join(build, 'driver.mjs'), ...roots], {
      uid: 65534,
      gid: 65534,
      encoding: 'utf8',
      timeout: 60_000,
    })
    // Only when no such process can start at all (no CAP_SETUID, or node itself unreachable by nobody).
    if (child.error && ['EPERM', 'EACCES'].includes((child.error as NodeJS.ErrnoException).code ?? ''))
      skip(`cannot run a process as nobody: ${child.error.message}`)
    expect(child.stderr).toBe('')
    return JSON.parse(child.stdout)
  }

  it('refuses an unreadable directory or file, naming it; an ignored one is fine', async (ctx) => {
    await file('t1/ok.py')
    await file('t1/secret/key')
    await chmod(join(root, 't1/secret'), 0o000)
    await file('t2/key.pem', 'k', 0o000)
    await file('t3/.fanoutignore', 'secret/\n')
    await file('t3/ok.py')
    await file('t3/secret/key')
    await chmod(join(root, 't3/secret'), 0o000)
    for (const d of ['t1', 't2', 't3']) await chmod(join(root, d), 0o755)
    try {
      const [t1, t2, t3] = await scanAsUser(
        ['t1', 't2', 't3'].map((d) => join(root, d)),
        (why) => ctx.skip(why),
      )
      expect(t1).toEqual({
        code: 'USAGE',
        message: `--sync: cannot read the directory secret in ${root}/t1 (EACCES: permission denied); make it readable, or ignore it in .fanoutignore`,
      })
      expect(t2).toEqual({
        code: 'USAGE',
        message: `--sync: cannot read the file key.pem in ${root}/t2 (EACCES: permission denied); make it readable, or ignore it in .fanoutignore`,
      })
      expect(t3).toEqual({ paths: ['.fanoutignore', 'ok.py'] })
    } finally {
      await chmod(join(root, 't1/secret'), 0o755)
      await chmod(join(root, 't3/secret'), 0o755)
    }
  })
})
