import { fstatSync, writeSync } from 'node:fs'
import { isatty } from 'node:tty'
import { Writable } from 'node:stream'

/**
 * `stream` itself, or, when it writes to a file (`fanout … > train.log`, /dev/null), a writer that
 * hands strings to fs.writeSync with their encoding. Node's own stream for a file encodes every string
 * into a new Buffer before its synchronous write; writeSync encodes natively into a scratch buffer.
 * Measured, 200 MB of prefixed 100-byte lines to /dev/null: 0.31 s against 0.52 s to encode and write
 * them (about 3 % of a whole 200 MB fanout run's CPU, with less garbage to collect). Writes
 * stay synchronous, as with Node's stream, so they keep their order with anything else written to the
 * same descriptor (the summary). Terminals and pipes are sockets, which already take strings natively.
 */
export function directWriter<S extends Writable>(stream: S & { fd?: number }): S | Writable {
  const fd = stream.fd
  if (typeof fd !== 'number' || !isFile(fd)) return stream
  return new Writable({
    decodeStrings: false,
    write(chunk: string | Uint8Array, encoding: BufferEncoding, done: (error?: Error | null) => void): void {
      try {
        if (typeof chunk === 'string') writeSync(fd, chunk, null, encoding)
        else writeSync(fd, chunk)
        done()
      } catch (e) {
        done(e as Error)
      }
    },
  })
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
