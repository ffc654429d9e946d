import { posix } from 'node:path'
import { quote } from '../errors.js'
import { syncError, type RemoteEntry } from './plan.js'
import type { RemoteFs } from './remote-fs.js'

/** Requests in flight per node: uploads (each keeping several writes in flight itself), listings, removals. */
export const CONCURRENCY = 8

/**
 * Runs `work` on every item, at most `limit` at a time. After the first failure no new item starts;
 * the ones running are waited for, then the first failure is thrown.
 */
export async function eachLimited<T>(
  items: readonly T[],
  limit: number,
  work: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0
  let failure: { error: unknown } | undefined
  const worker = async (): Promise<void> => {
    while (!failure && next < items.length) {
      const item = items[next++] as T
      try {
        await work(item)
      } catch (error) {
        failure ??= { error }
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
  if (failure) throw failure.error
}

export const joinRel = (dir: string, name: string): string => (dir === '' ? name : `${dir}/${name}`)

/** A name from a directory listing, refused unless it is one path segment. */
function checkName(dirRel: string, name: string): string {
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
    throw syncError(`the node listed a strange name in ${quote(dirRel === '' ? '.' : dirRel)}: ${quote(name)}`)
  }
  return name
}

/**
 * The tree below `root` on the node, relative paths, lstat'ed (links are listed, with their text, and
 * never followed). A missing root is an empty tree. `descend` says whether to list inside a directory
 * (sync skips ignored directories: what is inside them is never touched).
 */
export async function listRemote(
  fs: RemoteFs,
  root: string,
  options: { descend?: (relDir: string) => boolean } = {},
): Promise<RemoteEntry[]> {
  const top = await fs.lstat(root)
  if (!top) return []
  if (top.kind !== 'dir') throw syncError(`${quote(root)} on the node is not a directory`)
  const entries: RemoteEntry[] = []
  const visit = async (dirRel: string): Promise<string[]> => {
    const list = await fs.readdir(dirRel === '' ? root : `${root}/${dirRel}`)
    const subdirs: string[] = []
    await Promise.all(
      list.map(async ({ name, stat }) => {
        const path = joinRel(dirRel, checkName(dirRel, name))
        const entry: RemoteEntry = { path, ...stat }
        if (stat.kind === 'symlink') entry.target = await fs.readlink(`${root}/${path}`)
        entries.push(entry)
        if (stat.kind === 'dir' && (options.descend?.(path) ?? true)) subdirs.push(path)
      }),
    )
    return subdirs
  }
  // Breadth first, a level at a time, CONCURRENCY directories in flight.
  for (let level = ['']; level.length > 0;) {
    const next: string[] = []
    await eachLimited(level, CONCURRENCY, async (dir) => {
      for (const sub of await visit(dir)) next.push(sub)
    })
    level = next
  }
  return entries.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
}

/** The target directory, created (with missing parents, 0755) if it is not there; a link to a directory is resolved. */
export async function prepareRoot(fs: RemoteFs, remoteRoot: string): Promise<string> {
  if (!remoteRoot.startsWith('/') || remoteRoot.includes('\0'))
    throw syncError(`the target directory must be an absolute path: ${quote(remoteRoot)}`)
  const root = posix.normalize(remoteRoot).replace(/\/+$/, '')
  if (root === '') throw syncError('refusing to sync into /')
  const stat = await fs.lstat(root)
  if (stat?.kind === 'dir') return root
  if (stat?.kind === 'symlink') {
    const real = await fs.realpath(root)
    if (real === '/' || !real.startsWith('/'))
      throw syncError(`refusing to sync into ${quote(real)} (where ${quote(root)} leads)`)
    if ((await fs.lstat(real))?.kind === 'dir') return real
    throw syncError(`${quote(root)} on the node is a link to something that is not a directory`)
  }
  if (stat) throw syncError(`${quote(root)} on the node is not a directory`)
  // mkdir -p: the parents are the user's to choose (a link among them is followed, like mkdir -p does).
  let path = ''
  for (const segment of root.slice(1).split('/')) {
    path = `${path}/${segment}`
    const there = await fs.lstat(path)
    if (!there) await fs.mkdir(path, 0o755)
    else if (there.kind === 'file' || there.kind === 'other')
      throw syncError(`cannot create ${quote(root)} on the node: ${quote(path)} is not a directory`)
  }
  return root
}
