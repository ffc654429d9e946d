import { fstatSync, writeSync } from 'node:fs'
import { isatty } from 'node:tty'
import { Writable } from 'node:stream'

/** A writer that writes at once: bytes handed to writeNow may be changed as soon as it returns. */
export interface WritesNow {
  /** Writes `bytes` before returning; false once the writer has failed (its 'error' says why). */
  writeNow(bytes: Uint8Array): boolean
}

export const writesNow = (stream: Writable): stream is Writable & WritesNow =>
  typeof (stream as Partial<WritesNow>).writeNow === 'function'

/**
 * `stream` itself, or, when it writes to a file (`fanout … > train.log`, /dev/null), a writer that
 * hands what it is given to fs.writeSync: strings with their encoding (Node's own stream for a file
 * encodes every string into a new Buffer before its synchronous write), and, through writeNow, bytes
 * the caller is about to reuse (the terminal's prefixed lines, straight from their WebAssembly memory:
 * no copy). Writes stay synchronous, as with Node's stream, so they keep their order with anything else
 * written to the same descriptor (the summary). Terminals and pipes are sockets, left as they are.
 */
export function directWriter<S extends Writable>(stream: S & { fd?: number }): S | (Writable & WritesNow) {
  const fd = stream.fd
  if (typeof fd !== 'number' || !isFile(fd)) return stream
  const writer = new Writable({
    decodeStrings: false,
    write(chunk: string | Uint8Array, encoding: BufferEncoding, done: (error?: Error | null) => void): void {
      try {
        if (typeof chunk === 'string') writeSync(fd, chunk, null, encoding)
        else writeAll(fd, chunk)
        done()
      } catch (e) {
        done(e as Error)
      }
    },
  })
  const writeNow = (bytes: Uint8Array): boolean => {
    if (writer.destroyed) return false
    try {
      writeAll(fd, bytes)
      return true
    } catch (e) {
      writer.destroy(e as Error) // as a failed write(): the stream's 'error'
      return false
    }
  }
  return Object.assign(writer, { writeNow })
}

// writeSync may write fewer bytes than asked (as write(2) may): the rest is written again.
function writeAll(fd: number, bytes: Uint8Array): void {
  for (let at = 0; at < bytes.length;) at += writeSync(fd, bytes, at)
}

// What Node itself writes to synchronously: a regular file or a character device that is not a terminal.
function isFile(fd: number): boolean {
  try {
    const st = fstatSync(fd)
    return st.isFile() || (st.isCharacterDevice() && !isatty(fd))
  } catch {
    return false
  }
}
