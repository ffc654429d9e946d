import { join } from 'node:path'
import { hashCommand } from '../node/job.js'
import { capture, type Transport } from '../transport/types.js'
import { syncTree, type SyncProgress, type SyncStats } from './apply.js'
import { listRemote } from './remote-tree.js'
import type { SyncOptions } from './options.js'
import { formatBytes } from './limits.js'
import { scanTree, type Manifest } from './scan.js'
import { sha256File, treeHash, type TreeHashEntry } from './tree-hash.js'

/** The local tree, read and hashed once before any connection: what every node must end up with. */
export interface LocalTree {
  options: SyncOptions
  manifest: Manifest
  /** Content hash of each local file, by relative path. */
  hashes: Map<string, string>
  /** The whole tree's hash (tree-hash.ts): what the pre-flight compares every node with. */
  hash: string
}

/** What a node holds after the sync. */
export interface NodeSync {
  stats: SyncStats
  /** The hash of the node's copy of the synced paths. */
  hash: string
  /** Files on the node inside the tree that are not in the local one (kept without --sync-delete). */
  extras: string[]
}

/** Scans and hashes the local tree; refusals (limits, links out of the tree) are usage errors, before any connection. */
export async function readLocalTree(options: SyncOptions): Promise<LocalTree> {
  const manifest = await scanTree(options.dir, options.limits)
  const hashes = new Map<string, string>()
  for (const e of manifest.entries)
    if (e.kind === 'file') hashes.set(e.path, await sha256File(join(manifest.root, e.path)))
  const hash = treeHash(manifest.entries.map((e) => entryForHash(e.path, e.kind, e.mode, hashes.get(e.path), e.target)))
  return { options, manifest, hashes, hash }
}

function entryForHash(
  path: string,
  kind: TreeHashEntry['kind'],
  mode: number,
  contentHash?: string,
  target?: string,
): TreeHashEntry {
  const entry: TreeHashEntry = { path, kind, mode }
  if (contentHash !== undefined) entry.contentHash = contentHash
  if (target !== undefined) entry.target = target
  return entry
}

/** sha256 of each file (paths relative to root), computed on the node (remote.ts hashCommand). */
async function hashOnNode(transport: Transport, root: string, paths: string[]): Promise<Map<string, string>> {
  const hashes = new Map<string, string>()
  if (paths.length === 0) return hashes
  const { stdout, stderr, status } = await capture(transport, hashCommand(root), paths.map((p) => `${p}\0`).join(''))
  if (status.code !== 0)
    throw new Error(
      `hashing files on the node failed (exit ${status.code ?? status.signal}): ${stderr.trim().slice(0, 300)}`,
    )
  for (const record of stdout.split('\0')) {
    const m = /^([0-9a-f]{64}) [ *](.*)$/s.exec(record)
    if (m?.[1] && m[2] !== undefined) hashes.set(m[2], m[1])
  }
  return hashes
}

/** `~` and `~/x` (as --chdir allows) against the home directory SFTP starts in. */
async function absoluteRoot(dir: string, home: () => Promise<string>): Promise<string> {
  if (dir === '~') return home()
  if (dir.startsWith('~/')) return `${(await home()).replace(/\/$/, '')}/${dir.slice(2)}`
  return dir
}

/**
 * Brings one node's copy of the tree up to date over its open connection (SFTP, or the file system
 * for the local transport), then hashes what the node now holds, for the pre-flight to compare.
 */
export async function syncNode(
  transport: Transport,
  tree: LocalTree,
  remoteDir: string,
  onProgress?: (p: SyncProgress) => void,
): Promise<NodeSync> {
  const fs = await transport.files()
  const root = await absoluteRoot(remoteDir, () => fs.realpath('.'))
  const { manifest, options } = tree
  const isIgnored = (rel: string, isDir: boolean): boolean => manifest.ignore.ignored(rel, isDir)
  const stats = await syncTree({
    fs,
    localRoot: manifest.root,
    remoteRoot: root,
    manifest,
    deleteExtra: options.deleteExtra,
    isIgnored,
    hashRemote: (paths) => hashOnNode(transport, root, paths),
    hashLocal: async (abs) => tree.hashes.get(abs.slice(manifest.root.length + 1)) ?? sha256File(abs),
    ...(onProgress ? { onProgress } : {}),
  })
  // What the node holds now, for the synced paths: the hash covers exactly the local tree's entries.
  const real = await fs.realpath(root)
  const listed = await listRemote(fs, real, { descend: (dir) => !isIgnored(dir, true) })
  const byPath = new Map(listed.map((e) => [e.path, e]))
  const wanted = new Set(manifest.entries.map((e) => e.path))
  const files = manifest.entries
    .filter((e) => e.kind === 'file' && byPath.get(e.path)?.kind === 'file')
    .map((e) => e.path)
  const hashes = await hashOnNode(transport, real, files)
  const entries: TreeHashEntry[] = []
  for (const local of manifest.entries) {
    const remote = byPath.get(local.path)
    if (!remote || remote.kind === 'other') continue
    entries.push(
      entryForHash(
        local.path,
        remote.kind,
        remote.mode,
        remote.kind === 'file' ? (hashes.get(local.path) ?? 'unreadable') : undefined,
        remote.kind === 'symlink' ? (remote.target ?? (await fs.readlink(`${real}/${local.path}`))) : undefined,
      ),
    )
  }
  const extras = listed
    .filter((e) => !wanted.has(e.path) && e.kind !== 'dir' && !isIgnored(e.path, false))
    .map((e) => e.path)
  return { stats, hash: treeHash(entries), extras }
}

/** `/home/me/proj (120 files, 3.1 MiB; tree 3f9a2c1d)`: what is about to be synced. */
export const describeTree = (tree: LocalTree): string =>
  `${tree.manifest.root} (${tree.manifest.files} files, ${formatBytes(tree.manifest.bytes)}; tree ${tree.hash.slice(0, 8)})`

/** `sent 3 files (12 KiB), 1 link; 120 unchanged; tree 3f9a2c1d` — a node's one-line result. */
export function describeSync(sync: NodeSync): string {
  const { stats } = sync
  const parts = [`sent ${stats.files} ${stats.files === 1 ? 'file' : 'files'} (${formatBytes(stats.bytes)})`]
  if (stats.links > 0) parts.push(`${stats.links} ${stats.links === 1 ? 'link' : 'links'}`)
  if (stats.deleted > 0) parts.push(`${stats.deleted} deleted`)
  return `${parts.join(', ')}; ${stats.unchanged} unchanged; tree ${sync.hash.slice(0, 8)}`
}

/** `412/1200 files, 3.1/8.0 MiB`: a node's progress while it syncs. */
export const describeProgress = (p: SyncProgress): string =>
  `${p.files}/${p.totalFiles} files, ${formatBytes(p.bytes)}/${formatBytes(p.totalBytes)}`
