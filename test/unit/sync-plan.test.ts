import { describe, expect, it } from 'vitest'
import { FanoutError } from '../../src/errors.js'
import {
  planSync,
  safeRelPath,
  type FileEntry,
  type PlanOptions,
  type RemoteEntry,
  type SyncPlan,
} from '../../src/sync/plan.js'

const T = 1_700_000_000_000
const file = (path: string, size = 10, o: Partial<FileEntry> = {}): FileEntry => ({
  path,
  kind: 'file',
  size,
  mtimeMs: T,
  mode: 0o644,
  ...o,
})
const dir = (path: string, o: Partial<FileEntry> = {}): FileEntry => ({
  path,
  kind: 'dir',
  size: 0,
  mtimeMs: T,
  mode: 0o755,
  ...o,
})
const link = (path: string, target: string): FileEntry => ({
  path,
  kind: 'symlink',
  size: target.length,
  mtimeMs: T,
  mode: 0o777,
  target,
})
/** The node's copy of a local entry (what listRemote would return for it). */
const there = (e: FileEntry, o: Partial<RemoteEntry> = {}): RemoteEntry => {
  const r: RemoteEntry = { path: e.path, kind: e.kind, size: e.size, mtimeMs: e.mtimeMs, mode: e.mode, ...o }
  if (e.target !== undefined && r.kind === 'symlink' && !('target' in o)) r.target = e.target
  return r
}
const rfile = (path: string, o: Partial<RemoteEntry> = {}): RemoteEntry => there(file(path), o)
const rdir = (path: string): RemoteEntry => there(dir(path))

const NONE: PlanOptions = { deleteExtra: false, isIgnored: () => false }
const DELETE: PlanOptions = { deleteExtra: true, isIgnored: () => false }

/** The plan as paths, leaving out the empty lists. */
function summary(plan: SyncPlan): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const key of ['mkdirs', 'uploads', 'verify', 'links', 'chmods'] as const)
    if (plan[key].length > 0) out[key] = plan[key].map((e) => e.path)
  for (const key of ['removals', 'deletes', 'stale'] as const) if (plan[key].length > 0) out[key] = plan[key]
  if (plan.unchanged > 0) out.unchanged = plan.unchanged
  return out
}

const TREE = [
  dir('src'),
  file('src/a.py'),
  file('run.sh', 20, { mode: 0o755 }),
  link('latest', 'src/a.py'),
  dir('src/deep'),
  file('src/deep/b.py'),
]
const SAME = TREE.map((e) => there(e))

describe('planSync', () => {
  it.each<[string, FileEntry[], RemoteEntry[], PlanOptions, Record<string, unknown>]>([
    [
      'new tree: everything, parents first',
      TREE,
      [],
      NONE,
      { mkdirs: ['src', 'src/deep'], uploads: ['run.sh', 'src/a.py', 'src/deep/b.py'], links: ['latest'] },
    ],
    ['unchanged: nothing', TREE, SAME, DELETE, { unchanged: 4 }],
    ['size change: upload', [file('a', 11)], [rfile('a')], NONE, { uploads: ['a'] }],
    [
      'size change and mtime change: upload, no hashing',
      [file('a', 11, { mtimeMs: T + 5000 })],
      [rfile('a')],
      NONE,
      { uploads: ['a'] },
    ],
    ['mtime-only change: verify', [file('a', 10, { mtimeMs: T + 1000 })], [rfile('a')], NONE, { verify: ['a'] }],
    [
      'sub-second difference is no change (SFTP carries seconds)',
      [file('a')],
      [rfile('a', { mtimeMs: T + 999 })],
      NONE,
      { unchanged: 1 },
    ],
    ['exec bit: chmod', [file('a', 10, { mode: 0o755 })], [rfile('a')], NONE, { chmods: ['a'] }],
    ['set-id bits are not mirrored', [file('a', 10, { mode: 0o4644 })], [rfile('a')], NONE, { unchanged: 1 }],
    ['directory mode: chmod', [dir('d', { mode: 0o700 })], [rdir('d')], NONE, { chmods: ['d'] }],
    [
      'file where a dir must be: removed, then mkdir',
      [dir('d'), file('d/x')],
      [rfile('d')],
      NONE,
      { mkdirs: ['d'], uploads: ['d/x'], removals: ['d'] },
    ],
    [
      'link where a dir must be: the link removed (not followed)',
      [dir('sub'), file('sub/passwd')],
      [{ path: 'sub', kind: 'symlink', size: 4, mtimeMs: T, mode: 0o777, target: '/etc' }],
      NONE,
      { mkdirs: ['sub'], uploads: ['sub/passwd'], removals: ['sub'] },
    ],
    [
      'empty dir where a file must be: rmdir, upload',
      [file('d')],
      [rdir('d')],
      NONE,
      { uploads: ['d'], removals: ['d'] },
    ],
    [
      'full dir where a file must be, --sync-delete: subtree deepest first',
      [file('d')],
      [rdir('d'), rdir('d/e'), rfile('d/e/f'), rfile('d/g')],
      DELETE,
      { uploads: ['d'], removals: ['d/e/f', 'd/e', 'd/g', 'd'] },
    ],
    ['dir where a link must be', [link('d', 'x')], [rdir('d')], NONE, { links: ['d'], removals: ['d'] }],
    [
      'link where a file must be: replaced by the rename, no removal',
      [file('a')],
      [there(link('a', 'b'))],
      NONE,
      { uploads: ['a'] },
    ],
    [
      'special file where a file must be: replaced by the rename',
      [file('a')],
      [rfile('a', { kind: 'other' })],
      NONE,
      { uploads: ['a'] },
    ],
    ['file where a link must be', [link('a', 'b')], [rfile('a')], NONE, { links: ['a'] }],
    ['symlink retarget', [link('a', 'new')], [there(link('a', 'old'))], NONE, { links: ['a'] }],
    ['symlink same text', [link('a', '../x')], [there(link('a', '../x'))], NONE, { unchanged: 1 }],
    [
      'extras kept without --sync-delete',
      [file('a')],
      [rfile('a'), rfile('b'), rdir('c'), rfile('c/d')],
      NONE,
      { unchanged: 1 },
    ],
    [
      'extras deleted with --sync-delete, deepest first',
      [file('a')],
      [rfile('a'), rfile('b'), rdir('c'), rdir('c/d'), rfile('c/d/e'), rfile('c/f')],
      DELETE,
      { deletes: ['c/d/e', 'c/d', 'c/f', 'b', 'c'], unchanged: 1 },
    ],
    [
      'nested extra inside a synced dir',
      [dir('d'), file('d/a')],
      [rdir('d'), rfile('d/a'), rfile('d/old')],
      DELETE,
      { deletes: ['d/old'], unchanged: 1 },
    ],
    [
      'stale temporaries always removed',
      [file('a')],
      [rfile('a'), rfile('.fanout-sync-0123456789abcdef01234567'), rfile('.fanout-sync-short')],
      NONE,
      { stale: ['.fanout-sync-0123456789abcdef01234567'], unchanged: 1 },
    ],
    [
      'a local file with a temporary-looking name is a file',
      [file('.fanout-sync-0123456789abcdef01234567')],
      [rfile('.fanout-sync-0123456789abcdef01234567')],
      DELETE,
      { unchanged: 1 },
    ],
  ])('%s', (_name, local, remote, options, expected) =>
    expect(summary(planSync(local, remote, options))).toEqual(expected),
  )

  describe('ignored extras are never deleted', () => {
    const remote = [
      rfile('a'),
      rdir('ckpt'),
      rfile('ckpt/1.pt'),
      rdir('ckpt/old'),
      rfile('ckpt/old/0.pt'),
      rdir('logs'),
      rfile('logs/x.log'),
      rfile('logs/keep.txt'),
      rfile('stray.txt'),
    ]
    // As a .gitignore with `ckpt/` and `*.log` would answer.
    const isIgnored = (rel: string, isDir: boolean): boolean => (rel === 'ckpt' && isDir) || rel.endsWith('.log')

    it('with --sync-delete: only the others go; a directory holding an ignored file stays', () => {
      expect(summary(planSync([file('a')], remote, { deleteExtra: true, isIgnored }))).toEqual({
        deletes: ['logs/keep.txt', 'stray.txt'],
        unchanged: 1,
      })
    })
    it('without: nothing goes', () => {
      expect(summary(planSync([file('a')], remote, { deleteExtra: false, isIgnored }))).toEqual({ unchanged: 1 })
    })
    it('the predicate is asked with isDir', () => {
      const asked: Array<[string, boolean]> = []
      planSync([], [rdir('x'), rfile('x/y')], {
        deleteExtra: true,
        isIgnored: (rel, isDir) => (asked.push([rel, isDir]), false),
      })
      expect(asked).toEqual([
        ['x', true],
        ['x/y', false],
      ])
    })
  })

  describe('refusals', () => {
    const refuses = (f: () => unknown, pattern: RegExp): void => {
      try {
        f()
      } catch (e) {
        expect(e).toBeInstanceOf(FanoutError)
        expect((e as Error).message).toMatch(pattern)
        return
      }
      expect.unreachable('no refusal')
    }
    it('a non-empty directory in the way, without --sync-delete', () =>
      refuses(() => planSync([file('d')], [rdir('d'), rfile('d/x')], NONE), /non-empty directory "d".*--sync-delete/))
    it('a directory in the way that holds ignored files, even with --sync-delete', () =>
      refuses(
        () =>
          planSync([file('d')], [rdir('d'), rfile('d/x.pt')], {
            deleteExtra: true,
            isIgnored: (p) => p.endsWith('.pt'),
          }),
        /holding ignored files/,
      ))
    it('an ignored directory in the way', () =>
      refuses(
        () => planSync([link('d', 'x')], [rdir('d')], { deleteExtra: true, isIgnored: (p, d) => p === 'd' && d }),
        /holding ignored files/,
      ))
    it.each<[string, FileEntry[], RegExp]>([
      ['an unsafe local path', [file('../x')], /unsafe path/],
      ['an absolute local path', [file('/etc/passwd')], /absolute path/],
      ['a duplicate', [file('a'), file('a')], /twice/],
      ['an entry without its directory', [file('d/x')], /no directory "d"/],
      ['an entry below a local link', [link('d', '/etc'), file('d/x')], /no directory "d"/],
      ['an entry below a local file', [file('d'), file('d/x')], /no directory "d"/],
      ['a link without text', [{ ...link('a', 'x'), target: undefined }], /no usable text/],
      ['a link with NUL in its text', [link('a', 'x\0y')], /no usable text/],
    ])('%s', (_name, local, pattern) => refuses(() => planSync(local, [], NONE), pattern))
    it('an unsafe remote path', () => refuses(() => planSync([], [rfile('a/../../b')], DELETE), /unsafe path/))
  })

  it('never lists a path outside local and remote', () => {
    const local = [dir('d'), file('d/a'), link('l', '/etc')]
    const remote = [rfile('d'), rdir('x'), rfile('x/y'), rfile('z')]
    const plan = planSync(local, remote, DELETE)
    const known = new Set([...local.map((e) => e.path), ...remote.map((e) => e.path)])
    const all = [...plan.mkdirs, ...plan.uploads, ...plan.verify, ...plan.links, ...plan.chmods]
      .map((e) => e.path)
      .concat(plan.removals, plan.deletes, plan.stale)
    for (const p of all) expect(known.has(p)).toBe(true)
  })
})

describe('safeRelPath', () => {
  it.each([
    'a',
    'a/b/c',
    '...',
    '..a',
    'a..',
    '.hidden',
    'a/.../b',
    'with space',
    'new\nline',
    `quote's "double"`,
    'back\\slash',
    '..\\..\\windows',
    'ünïcødé/日本語/🙂',
    '-rf',
    '$(rm -rf ~)',
    'tab\tand\rcr',
  ])('accepts %j', (rel) => expect(safeRelPath(rel)).toBe(rel))

  it.each(['', '.', '..', '../x', 'a/../../b', 'a/..', '/etc', '/', 'a//b', 'a/', './a', 'a/./b', 'a\0b', '\0', '//x'])(
    'refuses %j',
    (rel) => {
      expect(() => safeRelPath(rel)).toThrow(FanoutError)
    },
  )
})
