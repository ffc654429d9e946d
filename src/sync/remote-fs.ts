import { randomBytes } from 'node:crypto'
import { quote } from '../errors.js'

export interface RemoteStat {
  kind: 'file' | 'dir' | 'symlink' | 'other'
  size: number
  mtimeMs: number
  mode: number
}

/** The file operations sync needs, on a node (SFTP) or on this machine (the local transport). Paths are absolute. */
export interface RemoteFs {
  /** The entry itself (a link is not followed); undefined when it does not exist. */
  lstat(path: string): Promise<RemoteStat | undefined>
  /** The entries of a directory without '.' and '..', each lstat'ed (one round trip per directory on SFTP). */
  readdir(path: string): Promise<Array<{ name: string; stat: RemoteStat }>>
  readlink(path: string): Promise<string>
  mkdir(path: string, mode: number): Promise<void>
  /** Streams a local file to `path` (created with `mode` or truncated), returns bytes written; reports progress. */
  upload(localPath: string, path: string, mode: number, onBytes?: (n: number) => void): Promise<number>
  /** Renames `from` to `to`, atomically replacing `to` where the server can (SFTP: posix-rename@openssh.com). */
  rename(from: string, to: string): Promise<void>
  /** Creates the link `path` whose text is `target` (POSIX `ln -s target path`). */
  symlink(target: string, path: string): Promise<void>
  unlink(path: string): Promise<void>
  rmdir(path: string): Promise<void>
  chmod(path: string, mode: number): Promise<void>
  /** Sets the modification time (whole seconds on SFTP); the access time becomes now. */
  utimes(path: string, mtimeMs: number): Promise<void>
  realpath(path: string): Promise<string>
}

/** Prefix of the names sync writes before renaming into place: an interrupted sync leaves only such names behind. */
const TEMP_PREFIX = '.fanout-sync-'
const TEMP_NAME = /^\.fanout-sync-[0-9a-f]{24}$/

/** A fresh temporary file name (no directory) for an upload, a link or a probe. */
export const tempName = (): string => `${TEMP_PREFIX}${randomBytes(12).toString('hex')}`

/** Whether `name` (one path segment) is one of sync's temporary names. */
export const isTempName = (name: string): boolean => TEMP_NAME.test(name)

const S_IFMT = 0o170000
const S_IFDIR = 0o040000
const S_IFREG = 0o100000
const S_IFLNK = 0o120000

/** File kind from the type bits of st_mode. */
export function kindOf(mode: number | undefined): RemoteStat['kind'] {
  switch ((mode ?? 0) & S_IFMT) {
    case S_IFDIR:
      return 'dir'
    case S_IFREG:
      return 'file'
    case S_IFLNK:
      return 'symlink'
    default:
      return 'other'
  }
}

/** An error that names the operation and the path, keeping the original's `code` (errno name or SFTP status). */
export function pathError(op: string, path: string, cause: unknown): Error {
  const message = cause instanceof Error ? cause.message : String(cause)
  const err = new Error(`${op} ${quote(path)}: ${message}`, { cause }) as Error & { code?: unknown }
  const code = (cause as { code?: unknown } | null)?.code
  if (code !== undefined) err.code = code
  return err
}
