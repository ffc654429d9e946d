import { createHash } from 'node:crypto'
import { constants } from 'node:fs'
import { open } from 'node:fs/promises'

const CHUNK = 1024 * 1024

/**
 * The SHA-256 of a file's content, hex, read in chunks (any size, constant memory). Hashes only a regular
 * file: a final link is not followed (ELOOP) and a fifo or device is refused rather than waited on.
 */
export async function sha256File(path: string): Promise<string> {
  const file = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK)
  try {
    if (!(await file.stat()).isFile()) throw new Error(`cannot hash ${JSON.stringify(path)}: not a regular file`)
    const hash = createHash('sha256')
    const buffer = Buffer.allocUnsafe(CHUNK)
    for (;;) {
      const { bytesRead } = await file.read(buffer, 0, CHUNK, null)
      if (bytesRead === 0) return hash.digest('hex')
      hash.update(buffer.subarray(0, bytesRead))
    }
  } finally {
    await file.close()
  }
}

export interface TreeHashEntry {
  path: string
  kind: 'file' | 'dir' | 'symlink'
  mode: number
  /** Files: the content's hash (sha256File), hex; compared case-insensitively. */
  contentHash?: string
  /** Links: the link's text. */
  target?: string
}

const VERSION = 'fanout-tree-v1'

/**
 * One hash for a whole tree, the same on every node that holds the same tree, whatever the order of
 * `entries`. Each entry contributes its path, its kind, for a file whether it is executable and its
 * content hash, for a link its text. Every field is length-prefixed, so no choice of names (newlines,
 * NUL, separators) can make two different trees encode alike.
 *
 * Executable means the owner's execute bit, as git has it: the rest of the mode (group and other bits,
 * which a node's umask decides, 0o022 vs 0o027) and a directory's or link's mode never make nodes differ.
 */
export function treeHash(entries: ReadonlyArray<TreeHashEntry>): string {
  const sorted = entries
    .map((e) => ({ key: Buffer.from(e.path, 'utf8'), e }))
    .sort((a, b) => Buffer.compare(a.key, b.key))
  const hash = createHash('sha256')
  const field = (value: Buffer | string): void => {
    const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value
    const length = Buffer.alloc(4)
    length.writeUInt32BE(bytes.length)
    hash.update(length)
    hash.update(bytes)
  }
  field(VERSION)
  let previous: Buffer | undefined
  for (const { key, e } of sorted) {
    if (previous?.equals(key)) throw new Error(`treeHash: ${JSON.stringify(e.path)} is listed twice`)
    previous = key
    field(key)
    field(e.kind)
    if (e.kind === 'file') {
      if (typeof e.contentHash !== 'string' || e.contentHash === '')
        throw new Error(`treeHash: the file ${JSON.stringify(e.path)} has no content hash`)
      field(e.mode & 0o100 ? 'x' : '-')
      field(e.contentHash.toLowerCase())
    } else if (e.kind === 'symlink') {
      if (typeof e.target !== 'string') throw new Error(`treeHash: the link ${JSON.stringify(e.path)} has no target`)
      field(e.target)
    } else if (e.kind !== 'dir')
      throw new Error(`treeHash: ${JSON.stringify(e.path)} has an unknown kind ${JSON.stringify(e.kind)}`)
  }
  return hash.digest('hex')
}
