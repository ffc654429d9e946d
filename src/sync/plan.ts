import { FanoutError, quote } from '../errors.js'
import { isTempName, type RemoteStat } from './remote-fs.js'
import type { FileEntry, Manifest } from './scan.js'

export type { FileEntry, Manifest }

/** One entry of the listing of the node's copy, relative to its root. `target` is a link's text. */
export interface RemoteEntry extends RemoteStat {
  path: string
  target?: string
}

/** What to do on one node. Every path is relative to the synced root; each list is in the order to apply it. */
export interface SyncPlan {
  /** Directories to create, parents first. */
  mkdirs: FileEntry[]
  /** Files missing on the node, of another size, or of another kind there. */
  uploads: FileEntry[]
  /** Same size, another mtime: compare content hashes, send only if they differ (else just fix the mtime). */
  verify: FileEntry[]
  /** Links missing, of another text, or of another kind there. */
  links: FileEntry[]
  /** Same content, other permission bits (files and directories). */
  chmods: FileEntry[]
  /**
   * What is in the way of a local entry and goes before anything is written: an entry where a
   * directory must be, or a directory (with everything below it, deepest first) where a file or a
   * link must be. An entry of another kind where a file or a link must be is replaced by a rename.
   */
  removals: string[]
  /** Extras on the node, not ignored, deepest first (only with deleteExtra). */
  deletes: string[]
  /** Temporary files an interrupted sync left behind (sync's own names): always removed. */
  stale: string[]
  /** Files and links that need nothing at all. */
  unchanged: number
}

export interface PlanOptions {
  /** Remove entries on the node that the local tree lacks (--sync-delete). */
  deleteExtra: boolean
  /**
   * Whether a relative path is ignored by the local scan (so it is absent from the manifest on
   * purpose). Ignored entries on the node, and everything below an ignored directory, are never
   * deleted or replaced.
   */
  isIgnored: (relPath: string, isDir: boolean) => boolean
}

/** A refusal of sync. */
export const syncError = (message: string): FanoutError => new FanoutError(`sync: ${message}`, 'PREFLIGHT')

/**
 * `rel` itself, unless it is not a safe relative path: empty, absolute, holding NUL, or with an empty,
 * '.' or '..' segment. Any other character (newline, quote, backslash, unicode) is a normal name
 * character on a POSIX node, and '...' is a legal name.
 */
export function safeRelPath(rel: string): string {
  if (typeof rel !== 'string' || rel === '') throw syncError('an empty path in the synced tree')
  if (rel.includes('\0')) throw syncError(`a path with NUL in the synced tree: ${quote(rel)}`)
  if (rel.startsWith('/')) throw syncError(`an absolute path in the synced tree: ${quote(rel)}`)
  for (const segment of rel.split('/')) {
    if (segment === '' || segment === '.' || segment === '..')
      throw syncError(`an unsafe path in the synced tree: ${quote(rel)}`)
  }
  return rel
}

/** The permission bits sync mirrors: set-id and sticky bits are not carried to the nodes. */
export const PERMISSIONS = 0o777

const seconds = (ms: number): number => Math.floor(ms / 1000)
export const parentOf = (rel: string): string => {
  const i = rel.lastIndexOf('/')
  return i < 0 ? '' : rel.slice(0, i)
}
const baseName = (rel: string): string => rel.slice(rel.lastIndexOf('/') + 1)
export const depthOf = (rel: string): number => rel.split('/').length
const byPath = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0)
/** Deepest first, then by path: children before their directory. */
const deepestFirst = (a: string, b: string): number => depthOf(b) - depthOf(a) || byPath(a, b)

const kindWord = (kind: FileEntry['kind'] | RemoteStat['kind']): string =>
  kind === 'dir' ? 'directory' : kind === 'symlink' ? 'link' : kind

/**
 * What to send, fix and remove so that the node's tree (`remote`, a listing of the target directory)
 * matches `local`. Pure. Touches only paths of `local` and `remote`; refuses (throws) rather than
 * remove a non-empty directory that is in the way without deleteExtra, or one holding ignored entries.
 */
export function planSync(local: readonly FileEntry[], remote: readonly RemoteEntry[], options: PlanOptions): SyncPlan {
  const plan: SyncPlan = {
    mkdirs: [],
    uploads: [],
    verify: [],
    links: [],
    chmods: [],
    removals: [],
    deletes: [],
    stale: [],
    unchanged: 0,
  }

  const localByPath = new Map<string, FileEntry>()
  for (const entry of local) {
    safeRelPath(entry.path)
    if (localByPath.has(entry.path)) throw syncError(`the local tree lists ${quote(entry.path)} twice`)
    localByPath.set(entry.path, entry)
  }
  for (const entry of localByPath.values()) {
    const parent = parentOf(entry.path)
    if (parent !== '' && localByPath.get(parent)?.kind !== 'dir')
      throw syncError(`the local tree lists ${quote(entry.path)} but no directory ${quote(parent)}`)
    if (
      entry.kind === 'symlink' &&
      (typeof entry.target !== 'string' || entry.target === '' || entry.target.includes('\0'))
    ) {
      throw syncError(`the local link ${quote(entry.path)} has no usable text`)
    }
  }

  const remoteByPath = new Map<string, RemoteEntry>()
  for (const entry of remote) {
    safeRelPath(entry.path)
    if (remoteByPath.has(entry.path)) throw syncError(`the node's listing holds ${quote(entry.path)} twice`)
    remoteByPath.set(entry.path, entry)
  }
  const remotePaths = [...remoteByPath.keys()].sort(byPath)

  /** Remote paths already dealt with by a removal. */
  const consumed = new Set<string>()
  const inTheWay = (want: FileEntry, there: RemoteEntry): void => {
    if (there.kind === 'dir') {
      const prefix = `${there.path}/`
      const below = remotePaths.filter((p) => p.startsWith(prefix))
      const ignored =
        options.isIgnored(there.path, true) ||
        below.some((p) => options.isIgnored(p, remoteByPath.get(p)?.kind === 'dir'))
      if (ignored) {
        throw syncError(
          `the node has a directory ${quote(there.path)} holding ignored files where the local tree has a ${kindWord(want.kind)}; move it away on the node`,
        )
      }
      if (below.length > 0 && !options.deleteExtra) {
        throw syncError(
          `the node has a non-empty directory ${quote(there.path)} where the local tree has a ${kindWord(want.kind)}; use --sync-delete to replace it`,
        )
      }
      for (const p of below.sort(deepestFirst)) {
        plan.removals.push(p)
        consumed.add(p)
      }
    }
    plan.removals.push(there.path)
    consumed.add(there.path)
  }

  for (const path of [...localByPath.keys()].sort(byPath)) {
    const want = localByPath.get(path) as FileEntry
    const there = remoteByPath.get(path)
    switch (want.kind) {
      case 'dir':
        if (!there) plan.mkdirs.push(want)
        else if (there.kind !== 'dir') {
          inTheWay(want, there)
          plan.mkdirs.push(want)
        } else if ((there.mode & PERMISSIONS) !== (want.mode & PERMISSIONS)) plan.chmods.push(want)
        break
      case 'file':
        if (!there) plan.uploads.push(want)
        else if (there.kind === 'dir') {
          inTheWay(want, there)
          plan.uploads.push(want)
        } else if (there.kind !== 'file' || there.size !== want.size) plan.uploads.push(want)
        else if (seconds(there.mtimeMs) !== seconds(want.mtimeMs)) plan.verify.push(want)
        else if ((there.mode & PERMISSIONS) !== (want.mode & PERMISSIONS)) plan.chmods.push(want)
        else plan.unchanged++
        break
      case 'symlink':
        if (!there) plan.links.push(want)
        else if (there.kind === 'dir') {
          inTheWay(want, there)
          plan.links.push(want)
        } else if (there.kind !== 'symlink' || there.target !== want.target) plan.links.push(want)
        else plan.unchanged++
        break
    }
  }

  // Extras: parents first, so that what is below a kept (ignored) directory is kept too.
  const kept = new Set<string>()
  const doomed: RemoteEntry[] = []
  for (const path of remotePaths) {
    if (localByPath.has(path) || consumed.has(path)) continue
    const there = remoteByPath.get(path) as RemoteEntry
    if (there.kind !== 'dir' && isTempName(baseName(path))) {
      plan.stale.push(path)
      continue
    }
    if (!options.deleteExtra || kept.has(parentOf(path)) || options.isIgnored(path, there.kind === 'dir')) {
      kept.add(path)
      continue
    }
    doomed.push(there)
  }
  // A directory that still holds a kept entry stays (its other extras go).
  const holding = new Set<string>()
  for (const path of kept) for (let p = parentOf(path); p !== '' && !holding.has(p); p = parentOf(p)) holding.add(p)
  plan.deletes = doomed
    .filter((e) => !(e.kind === 'dir' && holding.has(e.path)))
    .map((e) => e.path)
    .sort(deepestFirst)
  plan.stale.sort(deepestFirst)
  return plan
}
