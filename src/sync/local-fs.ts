import { createReadStream, createWriteStream, type Stats } from 'node:fs'
import * as fsp from 'node:fs/promises'
import { posix } from 'node:path'
import { Transform } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { kindOf, pathError, type RemoteFs, type RemoteStat } from './remote-fs.js'

const localStat = (s: Stats): RemoteStat => ({
  kind: kindOf(s.mode),
  size: s.size,
  mtimeMs: s.mtimeMs,
  mode: s.mode & 0o7777,
})

const missing = (e: unknown): boolean => {
  const code = (e as { code?: unknown } | null)?.code
  return code === 'ENOENT' || code === 'ENOTDIR'
}

/** Runs `f`, turning its error into one that names the operation and the path. */
async function named<T>(op: string, path: string, f: () => Promise<T>): Promise<T> {
  try {
    return await f()
  } catch (e) {
    throw pathError(op, path, e)
  }
}

/** The file operations on this machine (node:fs), for nodes reached through the local transport, and for tests. */
export function localFs(): RemoteFs {
  return {
    lstat: async (path) => {
      try {
        return localStat(await fsp.lstat(path))
      } catch (e) {
        if (missing(e)) return undefined
        throw pathError('lstat', path, e)
      }
    },
    readdir: (path) =>
      named('readdir', path, async () => {
        const names = await fsp.readdir(path)
        return Promise.all(
          names.map(async (name) => ({ name, stat: localStat(await fsp.lstat(posix.join(path, name))) })),
        )
      }),
    readlink: (path) => named('readlink', path, () => fsp.readlink(path)),
    mkdir: (path, mode) => named('mkdir', path, () => fsp.mkdir(path, { mode })),
    upload: (localPath, path, mode, onBytes) =>
      named('upload', path, async () => {
        let bytes = 0
        const count = new Transform({
          transform(chunk: Buffer, _enc, done) {
            bytes += chunk.length
            onBytes?.(chunk.length)
            done(null, chunk)
          },
        })
        await pipeline(createReadStream(localPath), count, createWriteStream(path, { flags: 'w', mode }))
        return bytes
      }),
    rename: (from, to) => named('rename', to, () => fsp.rename(from, to)),
    symlink: (target, path) => named('symlink', path, () => fsp.symlink(target, path)),
    unlink: (path) => named('unlink', path, () => fsp.unlink(path)),
    rmdir: (path) => named('rmdir', path, () => fsp.rmdir(path)),
    chmod: (path, mode) => named('chmod', path, () => fsp.chmod(path, mode)),
    utimes: (path, mtimeMs) => named('utimes', path, () => fsp.utimes(path, new Date(), new Date(mtimeMs))),
    realpath: (path) => named('realpath', path, () => fsp.realpath(path)),
  }
}
