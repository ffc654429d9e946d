import * as fsp from 'node:fs/promises'
import { posix } from 'node:path'
import type { SFTPWrapper, Stats } from 'ssh2'
import { quote } from '../errors.js'
import { kindOf, pathError, tempName, type RemoteFs, type RemoteStat } from './remote-fs.js'

/** SSH_FX_NO_SUCH_FILE: OpenSSH's sftp-server also answers it for ENOTDIR and ELOOP. */
const SFTP_NO_SUCH_FILE = 2

const sftpStat = (attrs: Stats): RemoteStat => ({
  kind: kindOf(attrs.mode),
  size: attrs.size ?? 0,
  mtimeMs: (attrs.mtime ?? 0) * 1000,
  mode: (attrs.mode ?? 0) & 0o7777,
})

/**
 * How the SSH_FXP_SYMLINK request that ssh2 sends is read by the server:
 * - 'documented': ssh2's `symlink(targetPath, linkPath)` creates `linkPath` pointing at `targetPath`;
 * - 'swapped': it creates `targetPath` pointing at `linkPath` (so fanout passes the two the other way round).
 */
export type SymlinkOrder = 'documented' | 'swapped'

export interface SftpFsOptions {
  /** Skips the probe (see probeSymlinkOrder) where the caller already knows the answer. */
  symlinkOrder?: SymlinkOrder
}

/**
 * THE SYMLINK ARGUMENT ORDER. The SFTP draft (filexfer-02, 6.10) sends SSH_FXP_SYMLINK as
 * (linkpath, targetpath), but OpenSSH's sftp-server has always read it as (targetpath, linkpath) and,
 * being everywhere, kept that (openssh-portable PROTOCOL, "SSH_FXP_SYMLINK arguments"); every client
 * copes somehow. ssh2 (lib/protocol/SFTP.js, `symlink`) already swaps the two on the wire when the
 * server's identification string starts with "SSH-2.0-OpenSSH" or "SSH-2.0-dropbear" — so swapping
 * again here would break the common case. But that guess from the banner is wrong for an OpenSSH
 * sftp-server behind another banner (hardened builds that rewrite the version string, other sshds
 * that exec OpenSSH's sftp-server) and for a spec-following server that claims to be OpenSSH. A link
 * created the wrong way round is not just wrong: the server creates a link at a path named by the
 * link's *text*, which may lie outside the synced tree.
 *
 * So fanout asks the server itself, once per SFTP session, before the first link: it creates a probe
 * link whose two paths are both fresh temporary names in the directory the real link goes into (so
 * whichever way the server reads them, nothing is created outside that directory), lstat's both, and
 * removes them. The answer (the SymlinkOrder) decides which way round ssh2's `symlink` is called.
 */
export async function probeSymlinkOrder(sftp: SFTPWrapper, dir: string): Promise<SymlinkOrder> {
  const first = posix.join(dir, tempName())
  const second = posix.join(dir, tempName())
  // In ssh2's documented terms: create the link `second` whose text is `first`.
  await call<void>('symlink', second, (cb) => sftp.symlink(first, second, cb))
  try {
    const [atSecond, atFirst] = await Promise.all([rawLstat(sftp, second), rawLstat(sftp, first)])
    if (
      atSecond?.kind === 'symlink' &&
      (await call<string>('readlink', second, (cb) => sftp.readlink(second, cb))) === first
    )
      return 'documented'
    if (
      atFirst?.kind === 'symlink' &&
      (await call<string>('readlink', first, (cb) => sftp.readlink(first, cb))) === second
    )
      return 'swapped'
    throw new Error(`symlink ${quote(second)}: the server created no link where either reading of the request puts it`)
  } finally {
    for (const path of [first, second]) await call<void>('unlink', path, (cb) => sftp.unlink(path, cb)).catch(() => {})
  }
}

/** Runs one ssh2 callback-style request as a promise; errors (thrown or called back) name the path. */
function call<T>(
  op: string,
  path: string,
  start: (cb: (err: Error | undefined | null, value?: T) => void) => void,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    try {
      start((err, value) => (err ? reject(pathError(op, path, err)) : resolve(value as T)))
    } catch (e) {
      reject(pathError(op, path, e))
    }
  })
}

async function rawLstat(sftp: SFTPWrapper, path: string): Promise<RemoteStat | undefined> {
  try {
    return sftpStat(await call<Stats>('lstat', path, (cb) => sftp.lstat(path, cb)))
  } catch (e) {
    if ((e as { code?: unknown }).code === SFTP_NO_SUCH_FILE) return undefined
    throw e
  }
}

/** Bytes per WRITE request, and requests kept in flight per upload (what bounds memory and fills the pipe). */
const CHUNK = 32 * 1024
const WINDOW = 16

/** The file operations over an open SFTP session (one per node). */
export function sftpFs(sftp: SFTPWrapper, options: SftpFsOptions = {}): RemoteFs {
  let order: Promise<SymlinkOrder> | undefined = options.symlinkOrder
    ? Promise.resolve(options.symlinkOrder)
    : undefined
  const unit = (
    op: string,
    path: string,
    start: (cb: (err: Error | undefined | null) => void) => void,
  ): Promise<void> => call<void>(op, path, start)

  async function upload(localPath: string, path: string, mode: number, onBytes?: (n: number) => void): Promise<number> {
    const local = await fsp.open(localPath, 'r').catch((e: unknown) => Promise.reject(pathError('open', localPath, e)))
    let handle: Buffer | undefined
    try {
      handle = await call<Buffer>('open', path, (cb) => sftp.open(path, 'w', { mode }, cb))
      const h = handle
      // Reads the local file to its end (not to a size learned first: a file that shrinks or grows
      // while it is sent must not hang or be cut), keeping up to WINDOW writes in flight.
      let failure: unknown
      const inFlight = new Set<Promise<void>>()
      let position = 0
      while (failure === undefined) {
        const buf = Buffer.allocUnsafe(CHUNK)
        let bytesRead: number
        try {
          bytesRead = (await local.read(buf, 0, CHUNK, position)).bytesRead
        } catch (e) {
          failure = pathError('read', localPath, e)
          break
        }
        if (bytesRead === 0) break
        const at = position
        position += bytesRead
        const write: Promise<void> = unit('write', path, (cb) => sftp.write(h, buf, 0, bytesRead, at, cb)).then(
          () => {
            inFlight.delete(write)
            onBytes?.(bytesRead)
          },
          (e: unknown) => {
            inFlight.delete(write)
            failure ??= e
          },
        )
        inFlight.add(write)
        if (inFlight.size >= WINDOW) await Promise.race(inFlight)
      }
      await Promise.all(inFlight)
      if (failure !== undefined) throw failure
      handle = undefined
      await unit('close', path, (cb) => sftp.close(h, cb))
      return position
    } finally {
      if (handle) {
        const h = handle
        await unit('close', path, (cb) => sftp.close(h, cb)).catch(() => {})
      }
      await local.close().catch(() => {})
    }
  }

  async function rename(from: string, to: string): Promise<void> {
    // ssh2 throws at once (no round trip) when the server did not announce the extension.
    const posixRename = await new Promise<boolean>((resolve, reject) => {
      try {
        sftp.ext_openssh_rename(from, to, (err) => (err ? reject(pathError('rename', to, err)) : resolve(true)))
      } catch {
        resolve(false)
      }
    })
    if (posixRename) return
    // Plain SSH_FXP_RENAME refuses an existing target on OpenSSH: remove it first (not atomic, the best the server allows).
    await unit('unlink', to, (cb) => sftp.unlink(to, cb)).catch((e: unknown) => {
      if ((e as { code?: unknown }).code !== SFTP_NO_SUCH_FILE) throw e
    })
    await unit('rename', to, (cb) => sftp.rename(from, to, cb))
  }

  async function symlink(target: string, path: string): Promise<void> {
    if (!order) {
      const probe = probeSymlinkOrder(sftp, posix.dirname(path))
      order = probe
      probe.catch(() => {
        if (order === probe) order = undefined
      })
    }
    const o = await order
    // 'documented': ssh2's (targetPath, linkPath) means what it says; 'swapped': the server reads them the other way round.
    if (o === 'documented') await unit('symlink', path, (cb) => sftp.symlink(target, path, cb))
    else await unit('symlink', path, (cb) => sftp.symlink(path, target, cb))
  }

  return {
    lstat: (path) => rawLstat(sftp, path),
    readdir: async (path) => {
      const list = await call<Array<{ filename: string; attrs: Stats }>>('readdir', path, (cb) =>
        sftp.readdir(path, cb),
      )
      return list
        .filter((e) => e.filename !== '.' && e.filename !== '..')
        .map((e) => ({ name: e.filename, stat: sftpStat(e.attrs) }))
    },
    readlink: (path) => call<string>('readlink', path, (cb) => sftp.readlink(path, cb)),
    mkdir: (path, mode) => unit('mkdir', path, (cb) => sftp.mkdir(path, { mode }, cb)),
    upload,
    rename,
    symlink,
    unlink: (path) => unit('unlink', path, (cb) => sftp.unlink(path, cb)),
    rmdir: (path) => unit('rmdir', path, (cb) => sftp.rmdir(path, cb)),
    chmod: (path, mode) => unit('chmod', path, (cb) => sftp.chmod(path, mode, cb)),
    utimes: (path, mtimeMs) =>
      unit('utimes', path, (cb) => sftp.utimes(path, Math.floor(Date.now() / 1000), Math.floor(mtimeMs / 1000), cb)),
    realpath: (path) => call<string>('realpath', path, (cb) => sftp.realpath(path, cb)),
  }
}
