import type { Duplex, Readable } from 'node:stream'
import type { ClientChannel } from 'ssh2'
import type ssh2 from 'ssh2'
import { FanoutError } from '../errors.js'
import type { SshTarget } from './ssh/config.js'
import { openClient } from './ssh/client.js'
import type { SshOptions } from './ssh/options.js'
import type { ExitStatus, RemoteProcess, Transport } from './types.js'

export { isDroppedHandshake } from './ssh/client.js'
export type { SshOptions } from './ssh/options.js'

const full = (s: Readable): boolean => s.readableLength >= s.readableHighWaterMark

/**
 * ssh2 gives a channel's stdout and stderr one flow-control window, and reopens it whenever either
 * stream takes data or is read — so with stdout paused (its reader is slow) and stderr still taking
 * data, the node keeps sending and stdout buffers here without bound (measured: 20 MB per channel and
 * growing). Here neither stream reopens the window while the other is full: a push reports "full",
 * which makes ssh2 hold the window, and a read request waits, until both have room again.
 */
function shareBackpressure(stream: Readable, other: Readable): void {
  const push = stream.push.bind(stream)
  stream.push = (chunk: unknown, encoding?: BufferEncoding): boolean => {
    // ssh2 hands out slices of its large receive buffers, and a paused stream counts only the slices'
    // bytes: 900 small stderr packets held 55 MB of backing buffers. A small slice is copied instead.
    if (Buffer.isBuffer(chunk) && chunk.buffer.byteLength > 4 * chunk.length + 4096) chunk = Buffer.from(chunk)
    const ok = push(chunk, encoding)
    return chunk === null ? ok : ok && !full(other)
  }
  const read = stream._read.bind(stream)
  stream._read = (size: number): void => {
    if (!full(other)) read(size)
  }
}

function channelProcess(stream: ClientChannel): RemoteProcess {
  shareBackpressure(stream, stream.stderr)
  shareBackpressure(stream.stderr, stream)
  const done = new Promise<ExitStatus>((resolve) => {
    let status: ExitStatus | undefined
    stream.on('exit', (code: number | null, signal?: string) => {
      status = { code: code ?? null, signal: signal ?? null }
    })
    stream.on('close', () =>
      resolve(status ?? { code: null, signal: null, lost: 'the channel closed without an exit status' }),
    )
  })
  return {
    stdout: stream,
    stderr: stream.stderr,
    write: (data) => void (stream.writable && stream.write(data)),
    end: () => void stream.end(),
    done,
  }
}

/** Names the sshd a target's handshake lands on (whatever the user): what MaxStartups counts. */
export function sshdOf(target: SshTarget): string {
  const here = `${target.hostname}:${target.port}`
  return target.via ? `${here} via ${targetKey(target.via)}` : here
}

/** Names a login as reached from here: the same jump host behind different chains, or as another user, is another connection. */
const targetKey = (target: SshTarget): string => `${target.user}@${sshdOf(target)}`

/** A jump host's connection, shared by every node behind it and closed when the last one closes. */
interface Hop {
  client: Promise<ssh2.Client>
  users: number
}

export interface SshConnector {
  /** Opens a node's connection: through its jump hosts (one shared connection each), else directly. */
  connect: (target: SshTarget) => Promise<Transport>
}

/** One connector per run: it keeps the jump host connections that nodes share. */
export function sshConnector(options: SshOptions): SshConnector {
  const hops = new Map<string, Hop>()

  // A hop no longer offered to new nodes (failed, closed, or unused); those still using it keep it.
  const forget = (key: string, hop: Hop): void => void (hops.get(key) === hop && hops.delete(key))
  // Each user releases the hop it took (not whatever the key names by then): the last one ends it.
  const release = (key: string, hop: Hop): void => {
    if (--hop.users > 0) return
    forget(key, hop)
    hop.client.then(
      (c) => c.end(),
      () => {},
    )
  }

  /** A client for `target`, opened through its own jump hosts (shared, and released when the client closes). */
  const open = async (target: SshTarget): Promise<ssh2.Client> => {
    if (!target.via) return openClient(target, options)
    const via = target.via
    const viaKey = targetKey(via)
    let hop = hops.get(viaKey)
    if (!hop) {
      const opened: Hop = { client: open(via), users: 0 }
      hops.set(viaKey, opened)
      // A jump host that cannot be reached fails every node behind it; a later try starts afresh.
      opened.client.then(
        (c) => c.on('close', () => forget(viaKey, opened)),
        () => forget(viaKey, opened),
      )
      hop = opened
    }
    const taken = hop
    taken.users++
    try {
      const sock = await tunnel(await taken.client, via, target, target.connectTimeoutS ?? options.connectTimeoutS)
      const client = await openClient(target, options, sock)
      client.on('close', () => release(viaKey, taken))
      return client
    } catch (e) {
      release(viaKey, taken)
      throw e
    }
  }

  return { connect: async (target) => sshTransport(target, await open(target)) }
}

/** A direct-tcpip channel from the jump host to the node's sshd: the node's connection runs inside it. */
function tunnel(jump: ssh2.Client, via: SshTarget, target: SshTarget, timeoutS: number): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () =>
        reject(
          new FanoutError(
            `${target.alias}: the jump host ${via.alias} did not connect to ${target.hostname}:${target.port} within ${timeoutS} s (timeout)`,
            'CONNECT',
          ),
        ),
      timeoutS * 1000,
    )
    jump.forwardOut('127.0.0.1', 0, target.hostname, target.port, (err, channel) => {
      clearTimeout(timer)
      if (err)
        reject(
          new FanoutError(
            `${target.alias} (${target.user}@${target.hostname}:${target.port}): the jump host ${via.alias} could not connect to it: ${err.message}`,
            'CONNECT',
          ),
        )
      else resolve(channel)
    })
  })
}

/** The Transport over an open client; a connection lost after this is reported through onLost. */
function sshTransport(target: SshTarget, client: ssh2.Client): Transport {
  let lostListener: ((reason: string) => void) | undefined
  let closing = false
  client.on('error', (err: Error) => void (closing || lostListener?.(err.message)))
  client.on('close', () => void (closing || lostListener?.('connection closed')))
  // ssh2 keeps its socket in `_sock` (it has no accessor); over a jump host it is a channel, with no address.
  const peerAddress = target.via
    ? undefined
    : (client as unknown as { _sock?: { remoteAddress?: string } })._sock?.remoteAddress
  return {
    kind: 'ssh',
    ...(peerAddress ? { peerAddress } : {}),
    exec: (command) =>
      new Promise((res, rej) =>
        client.exec(command, (err, stream) =>
          err
            ? rej(new FanoutError(`${target.alias}: cannot start a command: ${err.message}`, 'CONNECT'))
            : res(channelProcess(stream)),
        ),
      ),
    files: async () => {
      const { sftpFs } = await import('../sync/sftp-fs.js')
      return new Promise((res, rej) =>
        client.sftp((err, sftp) =>
          err
            ? rej(
                new FanoutError(
                  `${target.alias}: cannot open SFTP (is the sftp subsystem enabled in sshd?): ${err.message}`,
                  'CONNECT',
                ),
              )
            : res(sftpFs(sftp)),
        ),
      )
    },
    onLost: (listener) => void (lostListener = listener),
    close: () => {
      closing = true
      client.end()
    },
  }
}
