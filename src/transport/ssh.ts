import { readFileSync } from 'node:fs'
import type { ClientChannel, ConnectConfig } from 'ssh2'
import ssh2 from 'ssh2'
import { FanoutError } from '../errors.js'
import { checkHostKey, knownKeyTypes, type HostKeyVerdict, type KnownHostsFile } from '../ssh/known-hosts.js'
import type { SshTarget } from '../ssh/config.js'
import type { ExitStatus, RemoteProcess, Transport } from './types.js'

export interface SshOptions {
  connectTimeoutS: number
  /** Seconds between keepalives; the connection counts as lost after `keepaliveCountMax` unanswered. */
  keepaliveS: number
  keepaliveCountMax: number
  agentSocket?: string
}

// ssh2 names host key algorithms, not key types: a known ssh-rsa key is verified through rsa-sha2-*.
const ALGORITHMS_FOR_TYPE: Record<string, string[]> = { 'ssh-rsa': ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] }
const ALL_HOST_KEY_ALGORITHMS = ['ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521', 'rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa']

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
  const preferred = known.flatMap((t) => ALGORITHMS_FOR_TYPE[t] ?? [t]).filter((a) => ALL_HOST_KEY_ALGORITHMS.includes(a))
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
          `  Check the fingerprint with the node's administrator, then record it, e.g.\n` +
          `  ssh-keyscan -p ${target.port} ${target.hostname} >> ${target.knownHostsFiles[0] ?? '~/.ssh/known_hosts'}   (or connect once with: ssh -p ${target.port} ${target.user}@${target.hostname})\n` +
          `  Looked in: ${files}`,
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
      return new FanoutError(`${at}: host key ${verdict.fingerprint} is marked @revoked in ${verdict.where}; refusing to connect.`, 'HOSTKEY')
  }
}

/** Credentials in OpenSSH's order: the agent's keys, then each identity file that can be used. */
function authMethods(target: SshTarget, agentSocket: string | undefined): { methods: object[]; tried: string[]; skipped: string[] } {
  const methods: object[] = []
  const tried: string[] = []
  const skipped: string[] = []
  if (agentSocket && !target.identitiesOnly) {
    methods.push({ type: 'agent', username: target.user, agent: agentSocket })
    tried.push('ssh-agent')
  }
  for (const file of target.identityFiles) {
    let key: Buffer
    try {
      key = readFileSync(file)
    } catch (e) {
      skipped.push(`${file} (${(e as NodeJS.ErrnoException).code ?? 'unreadable'})`)
      continue
    }
    const parsed = ssh2.utils.parseKey(key)
    if (parsed instanceof Error) {
      skipped.push(/encrypted|passphrase/i.test(parsed.message) ? `${file} (encrypted; load it into ssh-agent)` : `${file} (${parsed.message})`)
      continue
    }
    methods.push({ type: 'publickey', username: target.user, key })
    tried.push(file)
  }
  return { methods, tried, skipped }
}

function describeConnectError(target: SshTarget, err: Error & { code?: string; level?: string }, timeoutS: number): FanoutError {
  const at = `${target.alias} (${target.user}@${target.hostname}:${target.port})`
  const causes: Record<string, string> = {
    ENOTFOUND: `cannot resolve host name ${target.hostname} (DNS)`,
    EAI_AGAIN: `cannot resolve host name ${target.hostname} (DNS temporarily unavailable)`,
    ECONNREFUSED: 'connection refused (is sshd running, and on this port?)',
    EHOSTUNREACH: 'host unreachable',
    ENETUNREACH: 'network unreachable',
    ETIMEDOUT: `connection timed out after ${timeoutS} s`,
  }
  const cause = (err.code && causes[err.code]) ?? (err.level === 'client-timeout' ? `no SSH handshake within ${timeoutS} s (timeout)` : err.message)
  return new FanoutError(`${at}: ${cause}`, 'CONNECT')
}

/** True for failures worth another try: sshd dropping a handshake above its MaxStartups limit. */
export function isDroppedHandshake(err: unknown): boolean {
  const e = err as { code?: string; message?: string; dropped?: boolean }
  return e.dropped === true || e.code === 'ECONNRESET' || /lost before handshake|ECONNRESET|Connection reset/i.test(e.message ?? '')
}

function channelProcess(stream: ClientChannel): RemoteProcess {
  const done = new Promise<ExitStatus>((resolve) => {
    let status: ExitStatus | undefined
    stream.on('exit', (code: number | null, signal?: string) => {
      status = { code: code ?? null, signal: signal ?? null }
    })
    stream.on('close', () => resolve(status ?? { code: null, signal: null, lost: 'the channel closed without an exit status' }))
  })
  return {
    stdout: stream,
    stderr: stream.stderr,
    write: (data) => void (stream.writable && stream.write(data)),
    end: () => void stream.end(),
    done,
  }
}

/** Opens one verified, authenticated SSH connection. Rejects with a FanoutError naming the host. */
export function connectSsh(target: SshTarget, options: SshOptions): Promise<Transport> {
  const known = readKnownHosts(target.knownHostsFiles)
  const { methods, tried, skipped } = authMethods(target, options.agentSocket)
  const timeoutS = target.connectTimeoutS ?? options.connectTimeoutS
  let refusedKey: FanoutError | undefined
  let lostListener: ((reason: string) => void) | undefined
  let ready = false
  let closing = false

  return new Promise<Transport>((resolve, reject) => {
    const client = new ssh2.Client()
    const config: ConnectConfig = {
      host: target.hostname,
      port: target.port,
      username: target.user,
      readyTimeout: timeoutS * 1000,
      keepaliveInterval: options.keepaliveS * 1000,
      keepaliveCountMax: options.keepaliveCountMax,
      algorithms: { serverHostKey: hostKeyAlgorithms(knownKeyTypes(known, target.hostKeyName, target.port)) as never },
      hostVerifier: (key: Buffer) => {
        const verdict = checkHostKey(known, target.hostKeyName, target.port, key)
        if (verdict.kind === 'match') return true
        refusedKey = hostKeyError(target, verdict)
        return false
      },
      authHandler: (_left, _partial, next) => next((methods.shift() as never) ?? false),
    }
    client.on('ready', () => {
      ready = true
      resolve({
        kind: 'ssh',
        exec: (command) =>
          new Promise((res, rej) =>
            client.exec(command, (err, stream) => (err ? rej(new FanoutError(`${target.alias}: cannot start a command: ${err.message}`, 'CONNECT')) : res(channelProcess(stream))))),
        onLost: (listener) => void (lostListener = listener),
        close: () => {
          closing = true
          client.end()
        },
      })
    })
    client.on('error', (err: Error & { code?: string; level?: string }) => {
      if (ready) {
        if (!closing) lostListener?.(err.message)
        return
      }
      if (refusedKey) return reject(refusedKey)
      if (err.level === 'client-authentication') {
        const skippedNote = skipped.length > 0 ? `; not usable: ${skipped.join(', ')}` : ''
        return reject(new FanoutError(`${target.alias}: authentication failed for user ${target.user} (tried: ${tried.join(', ') || 'nothing — no agent and no identity file'}${skippedNote})`, 'AUTH'))
      }
      const described = describeConnectError(target, err, timeoutS)
      if (isDroppedHandshake(err)) Object.assign(described, { dropped: true })
      reject(described)
    })
    client.on('close', () => {
      if (ready && !closing) lostListener?.('connection closed')
      // A server that hangs up before the handshake without a protocol error must not leave us waiting.
      if (!ready) reject(refusedKey ?? Object.assign(describeConnectError(target, new Error('connection closed before the SSH handshake finished'), timeoutS), { dropped: true }))
    })
    client.connect(config)
  })
}
