import { constants, type Stats } from 'node:fs'
import { access, lstat, readdir, readlink, stat } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { FanoutError, quote, usageError } from '../errors.js'
import { IgnoreRules } from './ignore.js'
import { formatBytes, type ScanLimits } from './limits.js'

/** One entry of the local tree. */
export interface FileEntry {
  /** Relative to the synced root, '/'-separated; never empty, '.', '..', absolute or containing NUL (any other character, newline included, is kept). */
  path: string
  kind: 'file' | 'dir' | 'symlink'
  /** Bytes: a file's size, 0 for a directory, the length of a link's text (in bytes) for a link. */
  size: number
  /** Modification time rounded down to whole seconds, in milliseconds: SFTP carries whole seconds, so a finer local time would never match the node's. */
  mtimeMs: number
  /** Permission bits: st_mode & 0o7777 (0o777 for a link on Linux). */
  mode: number
  /** A link's text, as stored (never followed). */
  target?: string
}

export interface Manifest {
  /** The synced directory, absolute. */
  root: string
  /** Files, directories and links, sorted by path (UTF-8 byte order). */
  entries: FileEntry[]
  /** Files and links (directories do not count). */
  files: number
  /** Bytes of the files (links and directories count 0). */
  bytes: number
  /** The ignore rules the scan applied (every .gitignore/.fanoutignore of the directories it entered): what the nodes must leave alone. */
  ignore: IgnoreRules
}

const decoder = new TextDecoder('utf-8', { fatal: true })
const byBytes = (a: Buffer, b: Buffer): number => Buffer.compare(a, b)
/** A path as messages show it: bare when it is plain, else JSON-quoted (control characters, spaces, quotes visible). */
const shown = (p: string): string => (/^[\p{L}\p{N}._@+=:~/-]+$/u.test(p) ? p : quote(p))
const filesWord = (n: number): string => `${n} ${n === 1 ? 'file' : 'files'}`
const errText = (e: unknown): string => (e as Error).message.split(', ')[0] as string

/** How many files a scan sees before it stops counting, once over a limit: enough for the offenders list, bounded work. */
const STOP_FACTOR = 2
const TOP = 5
/** lstat calls in flight while reading one directory. */
const CHUNK = 256
/** Most kernels give up after 40 links in a path. */
const MAX_HOPS = 40

/**
 * The manifest of `root`: every file, directory and link below it (lstat, links never followed), minus
 * what .gitignore/.fanoutignore ignore and any `.git`. Refuses (FanoutError USAGE) a missing root or not a
 * directory, an unreadable directory or file, a name that is not UTF-8, more than `limits`, special files
 * (fifos, sockets, devices: nothing to copy), and links that point outside the tree. Links inside the tree
 * are fine even when dangling (they are recreated as they are: `latest -> checkpoints/step_9` where
 * checkpoints/ is ignored is normal).
 *
 * Over a limit, entries are no longer kept (only totals, the 5 biggest files and per-directory totals), and
 * the walk stops after STOP_FACTOR × maxFiles files: the numbers and offenders are then those of what was
 * seen, and the message says so.
 */
export async function scanTree(root: string, limits: ScanLimits): Promise<Manifest> {
  const absRoot = resolve(root)
  const where = shown(root)
  const refuse = (message: string): never => {
    throw usageError(`--sync: ${message}`)
  }
  const unreadable = (what: string, rel: string, e: unknown): never =>
    refuse(
      `cannot read the ${what} ${shown(rel)} in ${where} (${errText(e)}); make it readable, or ignore it in .fanoutignore`,
    )
  try {
    if (!(await stat(absRoot)).isDirectory())
      refuse(`${where} is not a directory; --sync copies a directory (default: the current one)`)
  } catch (e) {
    if (e instanceof FanoutError) throw e
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') refuse(`${where} does not exist`)
    refuse(`cannot read ${where} (${errText(e)})`)
  }

  const ignore = new IgnoreRules()
  const uid = process.getuid?.()
  let entries: FileEntry[] | undefined = []
  let files = 0
  let bytes = 0
  let stopped = false
  const stopAt = STOP_FACTOR * limits.maxFiles
  const over = (): boolean => files > limits.maxFiles || bytes > limits.maxBytes
  const biggest: Array<{ path: string; size: number }> = []
  const dirTotals = new Map<string, { bytes: number; files: number }>()
  const specials: string[] = []
  const links = new Map<string, string>()

  /** Counts a file (or, with size 0, a link) towards the limits and the offenders. */
  const count = (path: string, size: number, isFile: boolean): void => {
    files++
    bytes += size
    for (let i = path.indexOf('/'); i >= 0; i = path.indexOf('/', i + 1)) {
      const total = dirTotals.get(path.slice(0, i)) ?? { bytes: 0, files: 0 }
      total.bytes += size
      total.files++
      dirTotals.set(path.slice(0, i), total)
    }
    if (isFile && (biggest.length < TOP || size > (biggest[TOP - 1] as { size: number }).size)) {
      biggest.push({ path, size })
      biggest.sort((a, b) => b.size - a.size)
      biggest.length = Math.min(biggest.length, TOP)
    }
    if (over()) entries = undefined // refused anyway: keep only totals
  }

  const walk = async (dir: string): Promise<void> => {
    let raw: Buffer[]
    try {
      raw = await readdir(join(absRoot, dir), { encoding: 'buffer' })
    } catch (e) {
      return dir === '' ? refuse(`cannot read ${where} (${errText(e)})`) : unreadable('directory', dir, e)
    }
    await ignore.loadDir(absRoot, dir)
    const names = raw.sort(byBytes).map((name) => {
      try {
        return { name: decoder.decode(name), raw: name, utf8: true }
      } catch {
        return { name: name.toString('utf8'), raw: name, utf8: false } // lossy: only to ask the ignore rules
      }
    })
    for (let i = 0; i < names.length && !stopped; i += CHUNK) {
      const seen = await Promise.all(
        names.slice(i, i + CHUNK).map(async ({ name, raw, utf8 }): Promise<[string, Stats] | undefined> => {
          const rel = dir === '' ? name : `${dir}/${name}`
          const abs = join(absRoot, rel)
          let st: Stats
          try {
            st = await lstat(utf8 ? abs : Buffer.concat([Buffer.from(`${join(absRoot, dir)}/`), raw]))
          } catch (e) {
            if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined // gone since readdir: not part of the tree
            return unreadable('entry', rel, e)
          }
          if (ignore.ignored(rel, st.isDirectory())) return undefined
          if (!utf8) refuse(`the name ${quote(rel)} in ${where} is not UTF-8; rename it, or ignore it in .fanoutignore`)
          // Ours and owner-readable is readable (ACLs cannot take that away); anything else, ask the kernel.
          if (st.isFile() && !(st.uid === uid && st.mode & 0o400))
            await access(abs, constants.R_OK).catch((e: unknown) => unreadable('file', rel, e))
          return [rel, st]
        }),
      )
      for (const [rel, st] of seen.filter((s) => s !== undefined)) {
        if (files >= stopAt) {
          stopped = true
          return
        }
        const entry: FileEntry = {
          path: rel,
          kind: 'file',
          size: 0,
          mtimeMs: Math.floor(st.mtimeMs / 1000) * 1000,
          mode: st.mode & 0o7777,
        }
        if (st.isDirectory()) {
          entries?.push({ ...entry, kind: 'dir' })
          await walk(rel)
        } else if (st.isFile()) {
          entries?.push({ ...entry, size: st.size })
          count(rel, st.size, true)
        } else if (st.isSymbolicLink()) {
          const text = await readlink(join(absRoot, rel), { encoding: 'buffer' }).catch((e: unknown) =>
            unreadable('link', rel, e),
          )
          let target: string
          try {
            target = decoder.decode(text)
          } catch {
            return refuse(
              `the link ${shown(rel)} in ${where} has a target that is not UTF-8; replace it, or ignore it in .fanoutignore`,
            )
          }
          links.set(rel, target)
          entries?.push({ ...entry, kind: 'symlink', size: text.length, target })
          count(rel, 0, false)
        } else {
          const kind = st.isFIFO()
            ? 'fifo'
            : st.isSocket()
              ? 'socket'
              : st.isBlockDevice()
                ? 'block device'
                : 'character device'
          specials.push(`${shown(rel)} (${kind})`)
        }
      }
    }
  }
  await walk('')

  if (over() || stopped) refuse(overLimit(where, { files, bytes, stopped, limits, biggest, dirTotals }))
  if (specials.length > 0)
    refuse(
      `${where} holds ${specials.length === 1 ? 'a special file' : `${specials.length} special files`} that cannot be copied: ${list(specials)}; sync copies files, directories and links only: remove ${specials.length === 1 ? 'it' : 'them'}, or ignore ${specials.length === 1 ? 'it' : 'them'} in .fanoutignore`,
    )
  const outside = [...links]
    .filter(([path]) => escapes(links, path))
    .map(([path, target]) => `${shown(path)} -> ${shown(target)}`)
  if (outside.length === 1)
    refuse(
      `link ${outside[0]} points outside ${where}; sync copies the tree only: replace the link with the file, or ignore it in .fanoutignore`,
    )
  if (outside.length > 1)
    refuse(
      `${outside.length} links point outside ${where}: ${list(outside)}; sync copies the tree only: replace each link with the file, or ignore it in .fanoutignore`,
    )

  const sorted = (entries ?? []).map((e) => ({ key: Buffer.from(e.path), e })).sort((a, b) => byBytes(a.key, b.key))
  return { root: absRoot, entries: sorted.map((s) => s.e), files, bytes, ignore }
}

const list = (items: string[], max = 10): string =>
  items.slice(0, max).join(', ') + (items.length > max ? `, and ${items.length - max} more` : '')

/**
 * Whether link `path` resolves outside the tree: an absolute target, or `..` climbing above the root,
 * normalised against the link's own directory. A component that is itself a synced link is followed
 * (its target replaces it, as the kernel would do on the node), so `x -> y/..` with `y -> ../..` is caught;
 * anything else (missing, ignored) is taken as a plain name.
 */
function escapes(links: ReadonlyMap<string, string>, path: string): boolean {
  let hops = 0
  const follow = (stack: string[], target: string): boolean => {
    if (target.startsWith('/')) return true
    for (const part of target.split('/')) {
      if (part === '' || part === '.') continue
      if (part === '..') {
        if (stack.pop() === undefined) return true
        continue
      }
      stack.push(part)
      const next = links.get(stack.join('/'))
      if (next !== undefined && hops++ < MAX_HOPS) {
        stack.pop()
        if (follow(stack, next)) return true
      }
    }
    return false
  }
  return follow(path.split('/').slice(0, -1), links.get(path) as string)
}

interface Totals {
  files: number
  bytes: number
  stopped: boolean
  limits: ScanLimits
  biggest: ReadonlyArray<{ path: string; size: number }>
  dirTotals: ReadonlyMap<string, { bytes: number; files: number }>
}

/** The refusal of a tree over a limit: what it holds, the limit, how to go on, and the biggest files and directories (by bytes; by file count when only the count is over). */
function overLimit(where: string, t: Totals): string {
  const byCount = t.bytes <= t.limits.maxBytes
  const exceeded = [
    ...(t.files > t.limits.maxFiles || t.stopped ? [filesWord(t.limits.maxFiles)] : []),
    ...(t.bytes > t.limits.maxBytes ? [formatBytes(t.limits.maxBytes)] : []),
  ]
  const dirs = [...t.dirTotals]
    .sort(
      ([pa, a], [pb, b]) =>
        (byCount ? b.files - a.files || b.bytes - a.bytes : b.bytes - a.bytes || b.files - a.files) ||
        (pa < pb ? -1 : 1),
    )
    .slice(0, TOP)
    .map(([path, d]) => `${shown(`${path}/`)} (${formatBytes(d.bytes)}, ${filesWord(d.files)})`)
  const held = `${t.stopped ? 'at least ' : ''}${filesWord(t.files)} / ${formatBytes(t.bytes)}${t.stopped ? ' (it stopped counting there)' : ''}`
  return (
    `${where} holds ${held}, over the limit of ${exceeded.join(' and ')} (raise it with --sync-max, or ignore these in .fanoutignore)` +
    (t.biggest.length > 0
      ? `: biggest: ${t.biggest.map((f) => `${shown(f.path)} (${formatBytes(f.size)})`).join(', ')}`
      : '') +
    (dirs.length > 0 ? `; biggest directories: ${dirs.join(', ')}` : '')
  )
}
