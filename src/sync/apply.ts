import { join } from 'node:path'
import { quote } from '../errors.js'
import {
  depthOf,
  parentOf,
  PERMISSIONS,
  planSync,
  safeRelPath,
  syncError,
  type FileEntry,
  type Manifest,
} from './plan.js'
import { tempName, type RemoteFs, type RemoteStat } from './remote-fs.js'
import { CONCURRENCY, eachLimited, joinRel, listRemote, prepareRoot } from './remote-tree.js'

export interface SyncStats {
  /** Files sent, and their bytes. */
  files: number
  bytes: number
  /** Links (re)created. */
  links: number
  /** Entries removed from the node: extras (--sync-delete) and what was in the way of a local entry. */
  deleted: number
  /** Local files and links that were already right on the node (at most their mode or mtime fixed). */
  unchanged: number
}

export interface SyncProgress {
  files: number
  bytes: number
  totalFiles: number
  totalBytes: number
}

export interface SyncTreeOptions {
  fs: RemoteFs
  localRoot: string
  /** Absolute; created if missing (0755). If it exists it must be a directory; a link to one is accepted for the root only (resolved). */
  remoteRoot: string
  manifest: Manifest
  deleteExtra: boolean
  isIgnored: (relPath: string, isDir: boolean) => boolean
  /** Content hashes of remote files (paths relative to remoteRoot), computed on the node (the caller runs sha256sum there). */
  hashRemote: (paths: string[]) => Promise<Map<string, string>>
  hashLocal: (absPath: string) => Promise<string>
  onProgress?: (p: SyncProgress) => void
}

/** Items grouped by path depth, in the given order of depths (for work that must go level by level). */
function byLevel<T>(items: readonly T[], pathOf: (item: T) => string, deepest: boolean): T[][] {
  const levels = new Map<number, T[]>()
  for (const item of items) {
    const d = depthOf(pathOf(item))
    const level = levels.get(d)
    if (level) level.push(item)
    else levels.set(d, [item])
  }
  return [...levels.keys()].sort((a, b) => (deepest ? b - a : a - b)).map((d) => levels.get(d) as T[])
}

const describe = (stat: RemoteStat | undefined): string =>
  stat ? `a ${stat.kind === 'symlink' ? 'link' : stat.kind === 'other' ? 'special file' : stat.kind}` : 'missing'

/**
 * Makes the node's copy of `manifest` under `remoteRoot` match the local tree: sends what changed,
 * recreates links, fixes modes and mtimes, and (deleteExtra) removes extras that are not ignored.
 *
 * Safety: every path written is `root + '/' + safeRelPath(rel)`; before anything is created, renamed,
 * changed or removed below a directory, each of its ancestors up to the root has been seen to be a
 * real directory on the node (lstat, or created by this sync), so a link on the node never leads a
 * write out of the tree; files and links are written under a temporary name in their directory and
 * renamed over the final name, so no reader (and no interrupted sync) leaves a half file under it.
 */
export async function syncTree(options: SyncTreeOptions): Promise<SyncStats> {
  const { fs, manifest, isIgnored } = options
  const root = await prepareRoot(fs, options.remoteRoot)
  const abs = (rel: string): string => (rel === '' ? root : `${root}/${safeRelPath(rel)}`)
  const localAbs = (rel: string): string => join(options.localRoot, ...safeRelPath(rel).split('/'))

  const localPaths = new Set(manifest.entries.map((e) => e.path))
  const remote = await listRemote(fs, root, { descend: (rel) => localPaths.has(rel) || !isIgnored(rel, true) })
  const plan = planSync(manifest.entries, remote, { deleteExtra: options.deleteExtra, isIgnored })
  const remoteByPath = new Map(remote.map((e) => [e.path, e]))

  // Directories (relative) known to be real directories on the node: checked by lstat, or made here.
  const realDirs = new Map<string, Promise<void>>([['', Promise.resolve()]])
  const realDir = (rel: string): Promise<void> => {
    let known = realDirs.get(rel)
    if (!known) {
      known = (async () => {
        await realDir(parentOf(rel))
        const stat = await fs.lstat(abs(rel))
        if (stat?.kind !== 'dir')
          throw syncError(`refusing to write below ${quote(rel)} on the node: it is ${describe(stat)}, not a directory`)
      })()
      realDirs.set(rel, known)
    }
    return known
  }
  const forget = (rel: string): void => {
    for (const key of realDirs.keys()) if (key === rel || key.startsWith(`${rel}/`)) realDirs.delete(key)
  }
  const remove = async (rel: string, kind: RemoteStat['kind'] | undefined): Promise<void> => {
    await realDir(parentOf(rel))
    if (kind === 'dir') await fs.rmdir(abs(rel))
    else await fs.unlink(abs(rel))
    forget(rel)
  }

  const stats: SyncStats = { files: 0, bytes: 0, links: 0, deleted: 0, unchanged: 0 }

  // 1. Leftovers of an interrupted sync, then what is in the way (in the plan's order: children first).
  await eachLimited(plan.stale, CONCURRENCY, (rel) => remove(rel, remoteByPath.get(rel)?.kind))
  for (const rel of plan.removals) {
    await remove(rel, remoteByPath.get(rel)?.kind)
    stats.deleted++
  }

  // 2. Directories, a level at a time. Owner rwx until the end, so that a read-only directory can be filled.
  for (const level of byLevel(plan.mkdirs, (e) => e.path, false)) {
    await eachLimited(level, CONCURRENCY, async (entry) => {
      await realDir(parentOf(entry.path))
      await fs.mkdir(abs(entry.path), (entry.mode & PERMISSIONS) | 0o700)
      realDirs.set(entry.path, Promise.resolve())
    })
  }
  const dirChmods = plan.chmods.filter((e) => e.kind === 'dir')
  const ownerRwx = (e: FileEntry): boolean => (e.mode & 0o700) === 0o700
  await eachLimited(dirChmods.filter(ownerRwx), CONCURRENCY, async (entry) => {
    await realDir(parentOf(entry.path))
    await fs.chmod(abs(entry.path), entry.mode & PERMISSIONS)
  })

  // 3. Same size, other mtime: send only if the content differs.
  const uploads = [...plan.uploads]
  const touchUps: FileEntry[] = []
  if (plan.verify.length > 0) {
    const theirs = await options.hashRemote(plan.verify.map((e) => e.path))
    const ours = new Map<string, string>()
    await eachLimited(
      plan.verify,
      CONCURRENCY,
      async (entry) => void ours.set(entry.path, await options.hashLocal(localAbs(entry.path))),
    )
    for (const entry of plan.verify) {
      const hash = theirs.get(entry.path)
      if (hash !== undefined && hash === ours.get(entry.path)) touchUps.push(entry)
      else uploads.push(entry)
    }
  }

  // 4. Files, links, modes and mtimes, CONCURRENCY at a time.
  const progress: SyncProgress = {
    files: 0,
    bytes: 0,
    totalFiles: uploads.length,
    totalBytes: uploads.reduce((n, e) => n + e.size, 0),
  }
  const report = (): void => options.onProgress?.({ ...progress })
  report()

  /** Writes a file or link under a temporary name next to `entry`, then renames it over the final name. */
  const putInPlace = async (entry: FileEntry, write: (tmpAbs: string) => Promise<void>): Promise<void> => {
    const dir = parentOf(entry.path)
    await realDir(dir)
    const tmp = abs(joinRel(dir, tempName()))
    try {
      await write(tmp)
      await fs.rename(tmp, abs(entry.path))
    } catch (e) {
      await fs.unlink(tmp).catch(() => {})
      throw e
    }
  }
  const upload = (entry: FileEntry): Promise<void> =>
    putInPlace(entry, async (tmp) => {
      const sent = await fs.upload(localAbs(entry.path), tmp, 0o600, (n) => {
        progress.bytes += n
        report()
      })
      await fs.chmod(tmp, entry.mode & PERMISSIONS)
      await fs.utimes(tmp, entry.mtimeMs)
      stats.bytes += sent
    }).then(() => {
      stats.files++
      progress.files++
      report()
    })
  const link = (entry: FileEntry): Promise<void> =>
    putInPlace(entry, (tmp) => fs.symlink(entry.target as string, tmp)).then(() => void stats.links++)
  const chmod = async (entry: FileEntry): Promise<void> => {
    await realDir(parentOf(entry.path))
    await fs.chmod(abs(entry.path), entry.mode & PERMISSIONS)
  }
  const touchUp = async (entry: FileEntry): Promise<void> => {
    await realDir(parentOf(entry.path))
    await fs.utimes(abs(entry.path), entry.mtimeMs)
    const there = remoteByPath.get(entry.path)
    if (!there || (there.mode & PERMISSIONS) !== (entry.mode & PERMISSIONS))
      await fs.chmod(abs(entry.path), entry.mode & PERMISSIONS)
  }
  const tasks: Array<() => Promise<void>> = [
    ...uploads.map((e) => () => upload(e)),
    ...plan.links.map((e) => () => link(e)),
    ...plan.chmods.filter((e) => e.kind !== 'dir').map((e) => () => chmod(e)),
    ...touchUps.map((e) => () => touchUp(e)),
  ]
  await eachLimited(tasks, CONCURRENCY, (task) => task())

  // 5. Extras (--sync-delete), children before their directory.
  for (const level of byLevel(plan.deletes, (rel) => rel, true)) {
    await eachLimited(level, CONCURRENCY, async (rel) => {
      await remove(rel, remoteByPath.get(rel)?.kind)
      stats.deleted++
    })
  }

  // 6. The exact modes of new directories and of the read-only ones, children first.
  const lastChmods = [...plan.mkdirs, ...dirChmods.filter((e) => !ownerRwx(e))]
  for (const level of byLevel(lastChmods, (e) => e.path, true)) {
    await eachLimited(level, CONCURRENCY, async (entry) => {
      await realDir(parentOf(entry.path))
      await fs.chmod(abs(entry.path), entry.mode & PERMISSIONS)
    })
  }

  const filesAndLinks = manifest.entries.filter((e) => e.kind !== 'dir').length
  stats.unchanged = filesAndLinks - stats.files - stats.links
  return stats
}
