import { execFileSync, spawnSync } from 'node:child_process'
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { IgnoreRules, type IgnoreFile } from '../../src/sync/ignore.js'
import { mulberry32 } from './prng.js'
import { refusal } from './refusal.js'

/** Ignore files by directory ('' is the root). */
type Files = Record<string, string>

function rulesOf(git: Files, fanout: Files = {}): IgnoreRules {
  const rules = new IgnoreRules()
  const add = (files: Files, kind: IgnoreFile): void => {
    for (const [dir, text] of Object.entries(files)) rules.add(dir, text, kind)
  }
  add(git, '.gitignore')
  add(fanout, '.fanoutignore')
  return rules
}

const F = false // isDir
const D = true

describe('IgnoreRules: gitignore(5), rule by rule', () => {
  it.each<[string, Files, string, boolean, boolean]>([
    // blank lines, comments, escapes
    ['blank lines and comments are no patterns', { '': '\n\n# foo\n   \n' }, 'foo', F, false],
    ['a comment line is not a pattern for "# foo"', { '': '# foo' }, '# foo', F, false],
    ['\\# is a literal #', { '': '\\#foo' }, '#foo', F, true],
    ['a # later in the line is literal', { '': 'a#b' }, 'a#b', F, true],
    ['\\! is a literal !', { '': '\\!imp' }, '!imp', F, true],
    ['\\! does not negate', { '': 'imp\n\\!imp' }, 'imp', F, true],
    // trailing spaces
    ['trailing spaces are trimmed', { '': 'foo   ' }, 'foo', F, true],
    ['trimmed spaces do not match', { '': 'foo   ' }, 'foo ', F, false],
    ['an escaped trailing space stays', { '': 'foo\\ ' }, 'foo ', F, true],
    ['an escaped trailing space is needed', { '': 'foo\\ ' }, 'foo', F, false],
    ['only unescaped spaces after the last escaped one go', { '': 'foo\\  ' }, 'foo ', F, true],
    ['a trailing tab is not trimmed', { '': 'foo\t' }, 'foo', F, false],
    ['CRLF line ends', { '': 'foo\r\nbar\r\n' }, 'bar', F, true],
    ['a UTF-8 BOM is skipped', { '': '\ufefffoo' }, 'foo', F, true],
    ['a last line without newline counts', { '': 'a\nfoo' }, 'foo', F, true],
    // negation
    ['! re-includes', { '': '*.log\n!keep.log' }, 'keep.log', F, false],
    ['! re-includes at any depth', { '': '*.log\n!keep.log' }, 'x/keep.log', F, false],
    ['others stay ignored', { '': '*.log\n!keep.log' }, 'x/a.log', F, true],
    ['the last matching line wins', { '': '!keep.log\n*.log' }, 'keep.log', F, true],
    ['a lone ! ignores nothing', { '': '!' }, '!', F, false],
    ['no re-including inside an excluded directory', { '': 'build/\n!build/keep.txt' }, 'build/keep.txt', F, true],
    ['…nor deeper', { '': 'build/\n!keep.txt' }, 'build/x/keep.txt', F, true],
    ['build/* leaves the directory itself, so ! works', { '': 'build/*\n!build/keep.txt' }, 'build/keep.txt', F, false],
    ['build/* still ignores the rest', { '': 'build/*\n!build/keep.txt' }, 'build/other', F, true],
    ['a negated directory pattern', { '': 'build/\n!build/' }, 'build', D, false],
    // anchoring
    ['a leading slash anchors', { '': '/foo' }, 'foo', F, true],
    ['…to the top only', { '': '/foo' }, 'a/foo', F, false],
    ['a middle slash anchors', { '': 'a/b' }, 'a/b', F, true],
    ['…so it does not match deeper', { '': 'a/b' }, 'x/a/b', F, false],
    ['no slash: any depth', { '': 'foo' }, 'x/y/foo', D, true],
    ['no slash: a directory too', { '': 'foo' }, 'foo', D, true],
    ['no slash matches the name, not a parent prefix', { '': 'foo' }, 'foox', F, false],
    // trailing slash
    ['a trailing slash matches a directory', { '': 'out/' }, 'out', D, true],
    ['…not a file', { '': 'out/' }, 'out', F, false],
    ['…at any depth', { '': 'out/' }, 'x/out', D, true],
    ['…and what is inside it', { '': 'out/' }, 'x/out/f', F, true],
    ['a/b/ is anchored and directory-only', { '': 'a/b/' }, 'a/b', D, true],
    ['a/b/ not a file', { '': 'a/b/' }, 'a/b', F, false],
    // wildcards
    ['* within a name', { '': '*.txt' }, 'a/b.txt', F, true],
    ['* does not cross /', { '': 'doc/*.txt' }, 'doc/x/a.txt', F, false],
    ['* in an anchored pattern', { '': 'doc/*.txt' }, 'doc/a.txt', F, true],
    ['* matches an empty run', { '': 'a*' }, 'a', F, true],
    ['? is one character', { '': 'a?c' }, 'abc', F, true],
    ['? is not zero characters', { '': 'a?c' }, 'ac', F, false],
    ['? is not /', { '': 'x/a?c' }, 'x/a/c', F, false],
    ['* and ? match a newline in a name', { '': 'a*b?' }, 'a\nb\n', F, true],
    ['\\* is a literal *', { '': '\\*' }, '*', F, true],
    ['\\* only', { '': '\\*' }, 'a', F, false],
    ['a trailing backslash matches nothing', { '': 'foo\\' }, 'foo\\', F, false],
    ['? is one byte (like git): é is two', { '': '?' }, 'é', F, false],
    ['?? is é', { '': '??' }, 'é', F, true],
    ['unicode literal', { '': 'données/' }, 'x/données', D, true],
    // character classes
    ['[a-c]', { '': '[a-c]x' }, 'bx', F, true],
    ['[a-c] not d', { '': '[a-c]x' }, 'dx', F, false],
    ['[!a-c]', { '': '[!a-c]x' }, 'dx', F, true],
    ['[!a-c] not b', { '': '[!a-c]x' }, 'bx', F, false],
    ['[^a] is [!a]', { '': '[^a]x' }, 'bx', F, true],
    ['] first is literal', { '': '[]]x' }, ']x', F, true],
    ['- last is literal', { '': '[a-]x' }, '-x', F, true],
    ['- first is literal', { '': '[-a]x' }, '-x', F, true],
    ['a backwards range matches nothing', { '': '[c-a]x' }, 'bx', F, false],
    ['[[:digit:]]', { '': '[[:digit:]]x' }, '5x', F, true],
    ['[[:digit:]] not a letter', { '': '[[:digit:]]x' }, 'ax', F, false],
    ['[[:upper:][:digit:]]', { '': '[[:upper:][:digit:]]' }, 'Q', F, true],
    ['an unknown class matches nothing', { '': '[[:nope:]]' }, 'n', F, false],
    ['\\] inside a class', { '': '[\\]]' }, ']', F, true],
    ['a class never matches /', { '': 'a[/]b' }, 'a/b', F, false],
    ['a negated class never matches /', { '': 'a[!x]b' }, 'a/b', F, false],
    ['an unterminated [ matches nothing, not even itself', { '': '[ab' }, '[ab', F, false],
    ['a literal [', { '': '\\[ab' }, '[ab', F, true],
    ['case matters', { '': 'Build' }, 'build', D, false],
    // **
    ['**/x at the top', { '': '**/foo' }, 'foo', F, true],
    ['**/x deep', { '': '**/foo' }, 'a/b/foo', F, true],
    ['**/a/b anchors nothing', { '': '**/a/b' }, 'x/y/a/b', F, true],
    ['x/** is what is inside x', { '': 'x/**' }, 'x/a/b', F, true],
    ['x/** is not x itself', { '': 'x/**' }, 'x', D, false],
    ['x/** is anchored', { '': 'x/**' }, 'y/x/a', F, false],
    ['x/** lets ! re-include inside', { '': 'x/**\n!x/keep' }, 'x/keep', F, false],
    ['a/**/b: zero directories', { '': 'a/**/b' }, 'a/b', F, true],
    ['a/**/b: several', { '': 'a/**/b' }, 'a/x/y/b', F, true],
    ['a/**/b: not a suffix of a name', { '': 'a/**/b' }, 'a/xb', F, false],
    ['** alone: everything', { '': '**' }, 'a/b', F, true],
    ['** inside a name is like * (does not cross /)', { '': 'x/foo**bar' }, 'x/foo/bar', F, false],
    ['** inside a name matches within it', { '': 'x/foo**bar' }, 'x/fooZbar', F, true],
    [
      "git's quirk: **/ right after an anchored pattern's literal prefix acts as at the start",
      { '': 'a**/b' },
      'ab',
      F,
      true,
    ],
    ['**foo is like *foo', { '': 'x/**foo' }, 'x/a/foo', F, false],
    ['**foo still matches within a name', { '': 'x/**foo' }, 'x/afoo', F, true],
    // one file per directory, each for its own subtree
    ['a nested .gitignore applies below it', { sub: 'foo' }, 'sub/x/foo', F, true],
    ['…not beside it', { sub: 'foo' }, 'foo', F, false],
    ['…nor to a sibling', { sub: 'foo' }, 'other/foo', F, false],
    ['a nested anchored pattern is anchored to its directory', { sub: '/foo' }, 'sub/foo', F, true],
    ['…only there', { sub: '/foo' }, 'sub/x/foo', F, false],
    ['a nested middle-slash pattern', { sub: 'x/y' }, 'sub/x/y', F, true],
    ['…is relative to its directory', { sub: 'x/y' }, 'x/y', F, false],
    ['a deeper file overrides a shallower one', { '': '*.txt', sub: '!*.txt' }, 'sub/a.txt', F, false],
    ['…only below it', { '': '*.txt', sub: '!*.txt' }, 'a.txt', F, true],
    ['a deeper file cannot re-include in an excluded directory', { '': 'sub/', sub: '!a' }, 'sub/a', F, true],
    ['a deeper file ignores again', { '': '!*.txt', 'a/b': '*.txt' }, 'a/b/c/d.txt', F, true],
    // .git
    ['.git is always ignored', {}, '.git', D, true],
    ['.git below', {}, 'a/.git', D, true],
    ['inside .git', {}, '.git/config', F, true],
    ['a .git file (submodule link)', {}, 'sub/.git', F, true],
    ['.git cannot be re-included', { '': '!.git\n!.git/' }, '.git', D, true],
    ['.gitignore is not .git', {}, '.gitignore', F, false],
    ['x.git is not .git', {}, 'x.git', D, false],
  ])('%s', (_name, git, path, isDir, expected) => {
    expect(rulesOf(git).ignored(path, isDir)).toBe(expected)
  })
})

describe('IgnoreRules: .fanoutignore', () => {
  it.each<[string, Files, Files, string, boolean, boolean]>([
    ['ignores on its own', {}, { '': 'data/' }, 'data', D, true],
    ['re-includes what .gitignore ignores', { '': '*.bin' }, { '': '!model.bin' }, 'model.bin', F, false],
    ['…only that', { '': '*.bin' }, { '': '!model.bin' }, 'x.bin', F, true],
    ['beats a deeper .gitignore', { sub: 'keep.txt' }, { '': '!keep.txt' }, 'sub/keep.txt', F, false],
    ['re-includes a directory .gitignore excludes', { '': 'vendor/' }, { '': '!vendor/' }, 'vendor/lib.py', F, false],
    ['a nested one is scoped to its directory', {}, { sub: '*.ckpt' }, 'sub/a.ckpt', F, true],
    ['…and not above', {}, { sub: '*.ckpt' }, 'a.ckpt', F, false],
    ['cannot re-include inside a directory it excludes', {}, { '': 'runs/\n!runs/keep' }, 'runs/keep', F, true],
    ['a later .gitignore line does not beat it', { '': '!*.pt' }, { '': '*.pt' }, 'w.pt', F, true],
  ])('%s', (_name, git, fanout, path, isDir, expected) => {
    expect(rulesOf(git, fanout).ignored(path, isDir)).toBe(expected)
  })

  it('rules added later for a directory change verdicts already asked about (no stale cache)', () => {
    const rules = rulesOf({ '': 'a/' })
    expect(rules.ignored('a/b', F)).toBe(true)
    rules.add('', '!a/', '.fanoutignore')
    expect(rules.ignored('a/b', F)).toBe(false)
  })
})

describe('IgnoreRules.loadDir', () => {
  let dir: string
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fanout-ignore-'))
  })
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('reads both files of a directory, and none is fine', async () => {
    await mkdir(join(dir, 'sub'))
    await writeFile(join(dir, 'sub', '.gitignore'), '*.log\n')
    await writeFile(join(dir, 'sub', '.fanoutignore'), '!keep.log\n')
    const rules = new IgnoreRules()
    await rules.loadDir(dir, '')
    await rules.loadDir(dir, 'sub')
    expect([rules.ignored('sub/a.log', F), rules.ignored('sub/keep.log', F), rules.ignored('a.log', F)]).toEqual([
      true,
      false,
      false,
    ])
  })

  it.each([
    ['a link', (p: string) => symlink('elsewhere', p)],
    ['a directory', (p: string) => mkdir(p)],
  ])('refuses a .gitignore that is %s, naming it', async (kind, make) => {
    await mkdir(join(dir, 'sub'))
    await make(join(dir, 'sub', '.gitignore'))
    const e = await refusal(() => new IgnoreRules().loadDir(dir, 'sub'), 'USAGE')
    expect(e.message).toBe(
      `--sync: "sub/.gitignore" is ${kind}; fanout, like git, reads an ignore file only when it is a plain file: replace it with one, or remove it`,
    )
  })
})

// ---------------------------------------------------------------------------------------------------
// Against git itself: random trees and random .gitignore files, every path's verdict compared with
// `git check-ignore --no-index`. Seeded: a failure prints the seed, the files and the path.

const NAMES = [
  'a',
  'b',
  'ab',
  'foo',
  'foo.txt',
  'bar.log',
  'build',
  'Build',
  'doc',
  'data',
  'x y',
  '#c',
  '!n',
  'sp ',
  'é',
  'a[1]',
  'a1',
  'z*',
  'q?',
  'back\\slash',
  '.hidden',
  'keep.log',
  'x',
]
const PATTERNS = [
  'a',
  '/a',
  'a/',
  '/a/',
  'foo*',
  '*.txt',
  '*.log',
  '!*.log',
  '!foo.txt',
  'build/',
  '!build/',
  'doc/*.txt',
  'doc/**',
  '**/b',
  'a/**/b',
  '**/data/',
  'b/**',
  '[ab]',
  '[!a]*',
  '[a-f]oo*',
  '?',
  '??',
  '\\#c',
  '#c',
  '\\!n',
  '!n',
  'sp\\ ',
  'sp ',
  'sp',
  'x y',
  'é',
  '?é',
  'a[1]',
  'a\\[1]',
  '*',
  '!a',
  '/b/a',
  'a/b',
  '**',
  '!**/',
  '*/',
  'z\\*',
  'z*',
  'q?',
  'Build',
  '[[:upper:]]*',
  '[[:digit:]]',
  'data/**/x',
  '!keep.log',
  'x/**',
  '!x/',
  '!*',
  'b/',
  '/**',
  'a**/x',
  '/x/*/b',
  'back\\\\slash',
  'back\\slash',
  '.*',
  '!.hidden',
  '*/*',
  '**/*.log',
  'foo/',
  '[!b-z]',
  '[]a]',
  'a/**',
  '**/a/**',
]

const pick = <T>(rand: () => number, items: readonly T[]): T => items[Math.floor(rand() * items.length)] as T

interface Tree {
  files: string[]
  dirs: string[]
  ignores: Record<string, string>
}

function randomTree(seed: number): Tree {
  const rand = mulberry32(seed)
  const files = new Set<string>()
  const dirs = new Set<string>()
  for (let n = 0; n < 120; n++) {
    const depth = 1 + Math.floor(rand() * 4)
    const parts = Array.from({ length: depth }, () => pick(rand, NAMES))
    // a name is a file or a directory, never both
    const prefix = parts.slice(0, -1)
    if (prefix.some((_, i) => files.has(prefix.slice(0, i + 1).join('/')))) continue
    if (dirs.has(parts.join('/'))) continue
    prefix.forEach((_, i) => dirs.add(prefix.slice(0, i + 1).join('/')))
    files.add(parts.join('/'))
  }
  const ignores: Record<string, string> = {}
  for (const dir of ['', ...dirs]) {
    if (dir !== '' && rand() > 0.3) continue
    const lines = Array.from({ length: 1 + Math.floor(rand() * 6) }, () => pick(rand, PATTERNS))
    ignores[dir] = lines.join('\n') + '\n'
  }
  return { files: [...files], dirs: [...dirs], ignores }
}

const hasGit = spawnSync('git', ['--version']).status === 0

// Outside CI without git: skipped. Under CI it runs (.ci/run installs git), and a missing git fails it.
describe.skipIf(!hasGit && !process.env.CI)('IgnoreRules agrees with git check-ignore', () => {
  let dir: string
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fanout-ignore-git-'))
  })
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it.each([1, 2, 3, 4, 5, 6, 7, 8])('random tree, seed %i', async (seed) => {
    const tree = randomTree(seed)
    execFileSync('git', ['init', '-q', dir])
    for (const d of tree.dirs) await mkdir(join(dir, d), { recursive: true })
    for (const f of tree.files) await writeFile(join(dir, f), '')
    const rules = new IgnoreRules()
    for (const [d, text] of Object.entries(tree.ignores)) {
      await writeFile(join(dir, d, '.gitignore'), text)
      rules.add(d, text)
    }
    const paths = [...tree.dirs.map((p) => [p, true] as const), ...tree.files.map((p) => [p, false] as const)]
    const out = spawnSync('git', ['-c', 'core.excludesFile=/dev/null', 'check-ignore', '--no-index', '--stdin', '-z'], {
      cwd: dir,
      input: paths.map(([p]) => `${p}\0`).join(''),
    })
    expect(out.status === 0 || out.status === 1, out.stderr.toString()).toBe(true)
    const byGit = new Set(out.stdout.toString('utf8').split('\0').filter(Boolean))
    expect(paths.length).toBeGreaterThan(100)
    const disagreements = paths
      .filter(([p, isDir]) => rules.ignored(p, isDir) !== byGit.has(p))
      .map(([p, isDir]) => ({ path: p, isDir, git: byGit.has(p) }))
    expect(disagreements, `seed ${seed}, .gitignore files: ${JSON.stringify(tree.ignores)}`).toEqual([])
    // the trees must exercise both verdicts, or the comparison proves little
    expect(byGit.size).toBeGreaterThan(0)
    expect(byGit.size).toBeLessThan(paths.length)
  })
})
