import { execFileSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { sha256File, treeHash, type TreeHashEntry } from '../../src/sync/tree-hash.js'
import { mulberry32 } from './prng.js'

const H1 = 'a'.repeat(64)
const H2 = 'b'.repeat(64)
const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'

const f = (path: string, contentHash = H1, mode = 0o644): TreeHashEntry => ({ path, kind: 'file', mode, contentHash })
const d = (path: string, mode = 0o755): TreeHashEntry => ({ path, kind: 'dir', mode })
const l = (path: string, target: string): TreeHashEntry => ({ path, kind: 'symlink', mode: 0o777, target })

describe('sha256File', () => {
  let dir: string
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fanout-hash-'))
  })
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it.each<[string, Buffer]>([
    ['empty', Buffer.alloc(0)],
    ['small', Buffer.from('hello\n')],
    ['one byte over a read chunk', randomBytes(1024 * 1024 + 1)],
    ['several chunks', randomBytes(3 * 1024 * 1024 + 17)],
  ])('hashes a file (%s) like sha256sum', async (_name, content) => {
    const path = join(dir, 'f')
    await writeFile(path, content)
    const expected = createHash('sha256').update(content).digest('hex')
    expect(await sha256File(path)).toBe(expected)
    expect(execFileSync('sha256sum', [path], { encoding: 'utf8' }).split(' ')[0]).toBe(expected)
  })

  it('knows the empty file', async () => {
    await writeFile(join(dir, 'e'), '')
    expect(await sha256File(join(dir, 'e'))).toBe(EMPTY_SHA256)
  })

  it('does not follow a link', async () => {
    await writeFile(join(dir, 'target'), 'x')
    await symlink('target', join(dir, 'link'))
    await expect(sha256File(join(dir, 'link'))).rejects.toMatchObject({ code: 'ELOOP' })
  })

  it('refuses a fifo instead of waiting on it', async () => {
    execFileSync('mkfifo', [join(dir, 'p')])
    await expect(sha256File(join(dir, 'p'))).rejects.toThrow('not a regular file')
  })

  it('refuses a directory', async () => {
    await expect(sha256File(dir)).rejects.toThrow()
  })

  it('names a missing file', async () => {
    await expect(sha256File(join(dir, 'nope'))).rejects.toThrow(/ENOENT.*nope/)
  })
})

describe('treeHash', () => {
  const tree: TreeHashEntry[] = [
    d('src'),
    f('src/a.py', H1),
    f('run.sh', H2, 0o755),
    l('src/latest', 'a.py'),
    d('empty'),
  ]

  it('is 64 hex digits, and stable across versions of fanout (nodes compare it)', () => {
    expect(treeHash([])).toMatch(/^[0-9a-f]{64}$/)
    // Changing the encoding changes every tree's hash: do it on purpose (and bump VERSION), never by accident.
    expect(treeHash(tree)).toBe(GOLDEN)
  })

  it('does not depend on the order of the entries', () => {
    const rand = mulberry32(42)
    for (let i = 0; i < 20; i++) {
      const shuffled = [...tree].sort(() => rand() - 0.5)
      expect(treeHash(shuffled)).toBe(treeHash(tree))
    }
  })

  it('sorts by bytes, so a JS sort order is not needed by the caller', () => {
    const a = [f('ｚ'), f('🙂')]
    expect(treeHash(a)).toBe(treeHash([...a].reverse()))
  })

  it.each<[string, TreeHashEntry[], TreeHashEntry[]]>([
    // each field
    ['another content', [f('a', H1)], [f('a', H2)]],
    ['another path', [f('a')], [f('b')]],
    ['another link text', [l('a', 'x')], [l('a', 'y')]],
    ['file vs dir', [f('a')], [d('a')]],
    ['file vs link whose text is the hash', [f('a', H1)], [l('a', H1)]],
    ['dir vs link with empty text', [d('a')], [l('a', '')]],
    ['an extra empty directory', [f('a')], [f('a'), d('b')]],
    ['executable vs not', [f('a', H1, 0o755)], [f('a', H1, 0o644)]],
    ['owner-executable vs other-only executable', [f('a', H1, 0o744)], [f('a', H1, 0o655)]],
    // Pairs that encode alike under the naive encodings (fields concatenated, or separated by NUL or by
    // newline): only the length prefixes tell them apart.
    ['concatenated: two directories vs one named like both', [d('a'), d('b')], [d('adirb')]],
    ['concatenated: a file and a directory vs a file whose hash runs on', [f('a', H1), d('b')], [f('a', `${H1}bdir`)]],
    ['concatenated: a link and a directory vs a longer link text', [l('a', 'x'), d('b')], [l('a', 'xbdir')]],
    ['NUL-separated: two directories vs a name with NULs', [d('a'), d('b')], [d('a\0dir\0b')]],
    ['NUL-separated: a link and a directory vs a link text with NULs', [l('a', 'x'), d('b')], [l('a', 'x\0b\0dir')]],
    ['NUL-separated: a file and a directory vs a hash with NULs', [f('a', H1), d('b')], [f('a', `${H1}\0b\0dir`)]],
    ['newline-separated: two directories vs a name with newlines', [d('a'), d('b')], [d('a\ndir\nb')]],
    [
      'newline-separated: a link and a file vs a link text with newlines',
      [l('a', 'x'), f('b', H1, 0o755)],
      [l('a', `x\nb\nfile\nx\n${H1}`)],
    ],
  ])('tells apart: %s', (_name, a, b) => {
    expect(treeHash(a)).not.toBe(treeHash(b))
  })

  it.each<[string, TreeHashEntry[], TreeHashEntry[]]>([
    ['a umask difference in group/other bits', [f('a', H1, 0o755)], [f('a', H1, 0o750)]],
    ['read/write bits', [f('a', H1, 0o644)], [f('a', H1, 0o600)]],
    ['any owner-executable file', [f('a', H1, 0o700)], [f('a', H1, 0o755)]],
    ['set-id and sticky bits', [f('a', H1, 0o4755)], [f('a', H1, 0o755)]],
    ["a directory's mode", [d('a', 0o755)], [d('a', 0o700)]],
    ["a link's mode", [{ ...l('a', 'x'), mode: 0o777 }], [{ ...l('a', 'x'), mode: 0o755 }]],
    ['the case of the hex digits', [f('a', 'AB'.repeat(32))], [f('a', 'ab'.repeat(32))]],
    ['a content hash on a directory (ignored)', [d('a')], [{ ...d('a'), contentHash: H1 }]],
  ])('ignores: %s', (_name, a, b) => {
    expect(treeHash(a)).toBe(treeHash(b))
  })

  it.each<[string, TreeHashEntry[], RegExp]>([
    ['a path listed twice', [f('a'), d('a')], /"a" is listed twice/],
    ['a file without content hash', [{ path: 'a', kind: 'file', mode: 0o644 }], /the file "a" has no content hash/],
    ['a link without target', [{ path: 'a', kind: 'symlink', mode: 0o777 }], /the link "a" has no target/],
    ['an unknown kind', [{ path: 'a', kind: 'fifo' as 'file', mode: 0 }], /unknown kind "fifo"/],
  ])('refuses %s', (_name, entries, error) => {
    expect(() => treeHash(entries)).toThrow(error)
  })
})

/** treeHash of the tree above, computed apart from the code (Python: u32be length + bytes for each field, as documented). */
const GOLDEN = '15db09f5fd0cbf0e9f4350ec5f5467eb1ed5bc32894a1123fcb478524f6bdc03'
