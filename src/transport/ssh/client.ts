// One SSH client connection: host key verification (known_hosts, --accept-new), authentication in
// OpenSSH's order, and errors that name the host. transport/ssh.ts builds nodes' transports on it.
import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs'
import { dirname } from 'node:path'
import type { Duplex } from 'node:stream'
import type { ConnectConfig } from 'ssh2'
import ssh2 from 'ssh2'
import { FanoutError } from '../../errors.js'
import { authMethods } from './auth-methods.js'
import type { SshOptions } from './options.js'
import { checkHostKey, knownHostsLine, knownKeyTypes, type HostKeyVerdict, type KnownHostsFile } from './known-hosts.js'
import type { SshTarget } from './config.js'

// ssh2 names host key algorithms, not key types: a known ssh-rsa key is verified through rsa-sha2-*.
const ALGORITHMS_FOR_TYPE: Record<string, string[]> = { 'ssh-rsa': ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] }
const ALL_HOST_KEY_ALGORITHMS = [
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'rsa-sha2-512',
  'rsa-sha2-256',
  'ssh-rsa',
]

function readKnownHosts(paths: string[]): KnownHostsFile[] {
  return paths.flatMap((path) => {
    try {
      return [{ path, text: readFileSync(path, 'utf8') }]
    } catch {
      return []
    }
  })
}

/** Asks the server first for the key types known_hosts has for it, so that a known key can be checked. */
function hostKeyAlgorithms(known: string[]): string[] {
  const preferred = known
    .flatMap((t) => ALGORITHMS_FOR_TYPE[t] ?? [t])
    .filter((a) => ALL_HOST_KEY_ALGORITHMS.includes(a))
  return [...new Set([...preferred, ...ALL_HOST_KEY_ALGORITHMS])]
}

function hostKeyError(target: SshTarget, verdict: Exclude<HostKeyVerdict, { kind: 'match' }>): FanoutError {
  const name = target.port === 22 ? target.hostKeyName : `[${target.hostKeyName}]:${target.port}`
  const at = `${target.alias} (${target.hostname}:${target.port})`
  const files = target.knownHostsFiles.join(', ')
  switch (verdict.kind) {
    case 'unknown':
      return new FanoutError(
        `${at}: host key is not known (${verdict.keyType} ${verdict.fingerprint}); refusing to connect.\n` +
          (verdict.certAuthority
            ? `  ${verdict.certAuthority} trusts a certificate authority for this host, but fanout does not verify host certificates: record the host's own key.\n`
            : '') +
          `  Check the fingerprint with the node's administrator, then record it, e.g.\n` +
          `  ssh-keyscan -p ${target.port} ${target.hostname} >> ${target.knownHostsFiles[0] ?? '~/.ssh/known_hosts'}   (or connect once with: ssh -p ${target.port} ${target.user}@${target.hostname})\n` +
          `  Looked in: ${files}. Or let fanout record keys of hosts never seen before: --accept-new.`,
        'HOSTKEY',
      )
    case 'changed':
      return new FanoutError(
        `${at}: HOST KEY CHANGED — possible man-in-the-middle attack; refusing to connect.\n` +
          `  The server presented ${verdict.keyType} ${verdict.fingerprint}; ${verdict.where} records ${verdict.knownFingerprint}.\n` +
          `  If the node was reinstalled, remove the old key (ssh-keygen -R '${name}') and record the new one.`,
        'HOSTKEY',
      )
    case 'revoked':
      return new FanoutError(
        `${at}: host key ${verdict.fingerprint} is marked @revoked in ${verdict.where}; refusing to connect.`,
        'HOSTKEY',
      )
  }
}

function describeConnectError(
  target: SshTarget,
  err: Error & { code?: string; level?: string },
  timeoutS: number,
): FanoutError {
  const at = `${target.alias} (${target.user}@${target.hostname}:${target.port})`
  const causes: Record<string, string> = {
    ENOTFOUND: `cannot resolve host name ${target.hostname} (DNS)`,
    EAI_AGAIN: `cannot resolve host name ${target.hostname} (DNS temporarily unavailable)`,
    ECONNREFUSED: 'connection refused (is sshd running, and on this port?)',
    EHOSTUNREACH: 'host unreachable',
    ENETUNREACH: 'network unreachable',
    ETIMEDOUT: `connection timed out after ${timeoutS} s`,
  }
  const cause =
    (err.code && causes[err.code]) ??
    (err.level === 'client-timeout' ? `no SSH handshake within ${timeoutS} s (timeout)` : err.message)
  return new FanoutError(`${at}: ${cause}`, 'CONNECT')
}

/**
 * Appends a never-seen host's key to the first known_hosts file, as ssh's accept-new does (a new file
 * and its folder are made private to the user). Returns the file, or why it could not be written: a
 * key fanout cannot record is not accepted.
 */
function recordHostKey(target: SshTarget, key: Buffer): string | FanoutError {
  const file = target.knownHostsFiles[0]
  if (!file) return new FanoutError(`${target.alias}: no known_hosts file to record its new host key in`, 'HOSTKEY')
  try {
    if (!existsSync(dirname(file))) mkdirSync(dirname(file), { recursive: true, mode: 0o700 })
    appendFileSync(file, knownHostsLine(target.hostKeyName, target.port, key), { mode: 0o600 })
    return file
  } catch (e) {
    return new FanoutError(
      `${target.alias}: cannot record its new host key in ${file}: ${(e as Error).message}`,
      'HOSTKEY',
    )
  }
}

/** True for failures worth another try: sshd dropping a handshake above its MaxStartups limit. */
export function isDroppedHandshake(err: unknown): boolean {
  const e = err as { code?: string; message?: string; dropped?: boolean }
  return (
    e.dropped === true ||
    e.code === 'ECONNRESET' ||
    /lost before handshake|ECONNRESET|Connection reset/i.test(e.message ?? '')
  )
}

/**
 * Calls `done` once the server has answered one keepalive sent after authentication, so that a capped
 * handshake slot is freed only when sshd no longer counts the connection against MaxStartups. sshd's
 * listener counts it until the session's monitor closes a pipe to it, and the monitor does that only
 * after the client has been told it is authenticated; whatever the server says after that comes from
 * the session process the monitor forks later. Freed at 'ready' instead, the next handshake could
 * arrive while sshd still counted this one: with 10 in flight it dropped ~8 of 128, and with 8, now
 * and then one. A server that does not answer within `timeoutS` is not failed for it (only paced).
 */
function afterAuthentication(client: ssh2.Client, timeoutS: number, done: () => void): void {
  // ssh2 has no public request whose reply changes nothing; its own keepalive is one (ssh2 1.x internals).
  const inner = client as unknown as { _protocol?: { ping?: () => void }; _callbacks?: Array<() => void> }
  if (typeof inner._protocol?.ping !== 'function' || !Array.isArray(inner._callbacks)) return done()
  const timer = setTimeout(done, timeoutS * 1000).unref()
  inner._callbacks.push(() => {
    clearTimeout(timer)
    done()
  })
  inner._protocol.ping()
}

/**
 * Opens one verified, authenticated SSH client connection, over TCP or over `sock` (a channel of the
 * jump host in front of it). Rejects with a FanoutError naming the host. After 'ready' the caller
 * owns the client's 'error' and 'close' events.
 */
export function openClient(target: SshTarget, options: SshOptions, sock?: Duplex): Promise<ssh2.Client> {
  const known = readKnownHosts(target.knownHostsFiles)
  const { methods, tried, skipped } = authMethods(target, options)
  const timeoutS = target.connectTimeoutS ?? options.connectTimeoutS
  let refusedKey: FanoutError | undefined
  let ready = false

  return new Promise<ssh2.Client>((resolve, reject) => {
    const client = new ssh2.Client()
    const config: ConnectConfig = {
      host: target.hostname,
      port: target.port,
      ...(sock ? { sock } : {}),
      username: target.user,
      readyTimeout: timeoutS * 1000,
      keepaliveInterval: options.keepaliveS * 1000,
      keepaliveCountMax: options.keepaliveCountMax,
      algorithms: { serverHostKey: hostKeyAlgorithms(knownKeyTypes(known, target.hostKeyName, target.port)) as never },
      hostVerifier: (key: Buffer) => {
        const verdict = checkHostKey(known, target.hostKeyName, target.port, key)
        if (verdict.kind === 'match') return true
        if (verdict.kind === 'unknown' && (options.acceptNew || target.acceptNewHostKeys)) {
          const recorded = recordHostKey(target, key)
          if (recorded instanceof FanoutError) {
            refusedKey = recorded
            return false
          }
          options.notice?.(
            `${target.alias}: recorded the new host key ${verdict.keyType} ${verdict.fingerprint} in ${recorded}`,
          )
          return true
        }
        refusedKey = hostKeyError(target, verdict)
        return false
      },
      authHandler: (_left, _partial, next) => next((methods.shift() as never) ?? false),
    }
    client.on('ready', () =>
      afterAuthentication(client, timeoutS, () => {
        ready = true
        resolve(client)
      }),
    )
    client.on('error', (err: Error & { code?: string; level?: string }) => {
      if (ready) return
      if (refusedKey) return reject(refusedKey)
      if (err.level === 'client-authentication') {
        const skippedNote = skipped.length > 0 ? `; not usable: ${skipped.join(', ')}` : ''
        return reject(
          new FanoutError(
            `${target.alias}: authentication failed for user ${target.user} (tried: ${tried.join(', ') || 'nothing — no agent and no identity file'}${skippedNote})`,
            'AUTH',
          ),
        )
      }
      const described = describeConnectError(target, err, timeoutS)
      if (isDroppedHandshake(err)) Object.assign(described, { dropped: true })
      reject(described)
    })
    client.on('close', () => {
      // A server that hangs up before the handshake without a protocol error must not leave us waiting.
      if (!ready)
        reject(
          refusedKey ??
            Object.assign(
              describeConnectError(target, new Error('connection closed before the SSH handshake finished'), timeoutS),
              { dropped: true },
            ),
        )
    })
    client.connect(config)
  })
}
