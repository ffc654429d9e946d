// Host-key verification with OpenSSH known_hosts semantics (sshd(8), "SSH_KNOWN_HOSTS FILE FORMAT").
// ssh2 accepts any host key unless its hostVerifier says otherwise; this module supplies the verdict.
// It is pure: callers read the files, so tests and the CLI decide which files count.
import { createHash, createHmac, timingSafeEqual } from 'node:crypto'

export interface KnownHostsFile {
  path: string
  text: string
}

export type HostKeyVerdict =
  | { kind: 'match' }
  /** `certAuthority`: a @cert-authority line covers the host (fanout does not verify host certificates). */
  | { kind: 'unknown'; fingerprint: string; keyType: string; certAuthority?: string }
  | { kind: 'changed'; fingerprint: string; keyType: string; knownFingerprint: string; where: string }
  | { kind: 'revoked'; fingerprint: string; keyType: string; where: string }

interface Entry {
  revoked: boolean
  certAuthority: boolean
  keyType: string
  blob: Buffer
  where: string
}

/** "SHA256:" + unpadded base64, the form `ssh-keygen -l` and `ssh` print. */
export function fingerprint(key: Buffer): string {
  return 'SHA256:' + createHash('sha256').update(key).digest('base64').replace(/=+$/, '')
}

// The wire blob starts with an SSH string naming the key type. Note ssh-rsa: servers that
// sign with rsa-sha2-256/512 still present an 'ssh-rsa' blob, so a known ssh-rsa entry
// covers them without any special casing here.
function blobKeyType(blob: Buffer): string | undefined {
  if (blob.length < 4) return undefined
  const len = blob.readUInt32BE(0)
  if (len === 0 || len > 64 || 4 + len > blob.length) return undefined
  const name = blob.subarray(4, 4 + len).toString('latin1')
  return /^[\x21-\x7e]+$/.test(name) ? name : undefined
}

// Glob with OpenSSH's two wildcards; iterative with single-star backtracking so hostile
// patterns like "*a*a*a*b" cannot blow up.
function globMatch(text: string, pattern: string): boolean {
  let t = 0
  let p = 0
  let starP = -1
  let starT = 0
  while (t < text.length) {
    const c = pattern[p]
    if (c === '*') {
      starP = p++
      starT = t
    } else if (c !== undefined && (c === '?' || c === text[t])) {
      p++
      t++
    } else if (starP >= 0) {
      p = starP + 1
      t = ++starT
    } else {
      return false
    }
  }
  while (pattern[p] === '*') p++
  return p === pattern.length
}

// Mirrors match_hostname(): any negated match vetoes the line, otherwise one positive match suffices.
// A hashed field ("|1|salt|hash") is a single name, never a list, as in OpenSSH's hostfile.c. The field
// is read once (a hashed one's salt and hash decoded), and the matcher then used for every name.
function hostMatcher(field: string): (name: string) => boolean {
  if (field.startsWith('|')) {
    const parts = field.split('|')
    if (parts.length !== 4 || parts[1] !== '1' || !parts[2] || !parts[3]) return () => false
    const salt = Buffer.from(parts[2], 'base64')
    const want = Buffer.from(parts[3], 'base64')
    return (name) => {
      const got = createHmac('sha1', salt).update(name).digest()
      return want.length === got.length && timingSafeEqual(want, got)
    }
  }
  const patterns = field.split(',').map((raw) => {
    const negated = raw.startsWith('!')
    return { negated, pattern: (negated ? raw.slice(1) : raw).toLowerCase() }
  })
  return (name) => {
    let positive = false
    for (const { negated, pattern } of patterns) {
      if (pattern === '' || !globMatch(name, pattern)) continue
      if (negated) return false
      positive = true
    }
    return positive
  }
}

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/

interface Line extends Entry {
  matches: (name: string) => boolean
}

interface ParsedFile {
  text: string
  lines: Line[]
  /** The lines found for each name so far: a connection looks its host up twice (key types, then the key). */
  found: Map<string, Line[]>
}

// The valid lines of a file, parsed once per text: every connection of a launch looks its node up in
// the same files (128 nodes × a 140-line file, parsed per lookup, cost 150 ms of CPU; hashed, the HMAC
// of every line for every lookup, 310 ms). Only each path's latest text is kept: a file that changes
// (--accept-new appends to it) is parsed again.
const parsed = new Map<string, ParsedFile>()

function parse(file: KnownHostsFile): ParsedFile {
  const cached = parsed.get(file.path)
  if (cached?.text === file.text) return cached
  const lines: Line[] = []
  file.text.split(/\r?\n/).forEach((line, i) => {
    const fields = line.trim().split(/\s+/)
    if (!fields[0] || fields[0].startsWith('#')) return
    let revoked = false
    let certAuthority = false
    if (fields[0].startsWith('@')) {
      // @cert-authority lines are kept only to say why a host is unknown; other markers are invalid.
      if (fields[0] !== '@revoked' && fields[0] !== '@cert-authority') return
      revoked = fields[0] === '@revoked'
      certAuthority = !revoked
      fields.shift()
    }
    const [hosts, keyType, b64] = fields
    if (!hosts || !keyType || !b64 || !BASE64.test(b64)) return
    const blob = Buffer.from(b64, 'base64')
    // ssh rejects lines whose declared type disagrees with the blob (SSH_ERR_KEY_TYPE_MISMATCH).
    if (blobKeyType(blob) !== keyType) return
    lines.push({ matches: hostMatcher(hosts), revoked, certAuthority, keyType, blob, where: `${file.path}:${i + 1}` })
  })
  const result = { text: file.text, lines, found: new Map<string, Line[]>() }
  parsed.set(file.path, result)
  return result
}

// Every valid line whose host patterns match. Anything we cannot parse is skipped, as ssh does, so
// one bad line never locks the user out of every host.
function entriesFor(files: KnownHostsFile[], host: string, port: number): Entry[] {
  // ssh lowercases the host before lookup and before hashing.
  const h = host.toLowerCase()
  const name = port === 22 ? h : `[${h}]:${port}`
  return files.flatMap((file) => {
    const { lines, found } = parse(file)
    let matching = found.get(name)
    if (matching === undefined) found.set(name, (matching = lines.filter((line) => line.matches(name))))
    return matching
  })
}

export function checkHostKey(files: KnownHostsFile[], host: string, port: number, key: Buffer): HostKeyVerdict {
  const fp = fingerprint(key)
  const keyType = blobKeyType(key) ?? ''
  const all = entriesFor(files, host, port)
  const authority = all.find((e) => e.certAuthority)
  const entries = all.filter((e) => !e.certAuthority)
  const revoked = entries.find((e) => e.revoked && e.blob.equals(key))
  if (revoked) return { kind: 'revoked', fingerprint: fp, keyType, where: revoked.where }
  const known = entries.filter((e) => !e.revoked)
  if (known.some((e) => e.blob.equals(key))) return { kind: 'match' }
  // Only a same-type mismatch is evidence of a changed key; a server offering a type we have
  // never recorded is merely unknown (ssh behaves the same way).
  const clash = known.find((e) => e.keyType === keyType)
  if (clash) {
    return { kind: 'changed', fingerprint: fp, keyType, knownFingerprint: fingerprint(clash.blob), where: clash.where }
  }
  return authority
    ? { kind: 'unknown', fingerprint: fp, keyType, certAuthority: authority.where }
    : { kind: 'unknown', fingerprint: fp, keyType }
}

/** The known_hosts line that records `key` for host (and port), as `ssh` writes it with StrictHostKeyChecking=accept-new. */
export function knownHostsLine(host: string, port: number, key: Buffer): string {
  const name = port === 22 ? host.toLowerCase() : `[${host.toLowerCase()}]:${port}`
  return `${name} ${blobKeyType(key) ?? 'unknown'} ${key.toString('base64')}\n`
}

/**
 * Key types recorded for the host, so the caller can ask the server for one it can verify.
 * An 'ssh-rsa' entry also verifies rsa-sha2-256/512 host-key algorithms; mapping is the caller's job.
 */
export function knownKeyTypes(files: KnownHostsFile[], host: string, port: number): string[] {
  const types = new Set<string>()
  for (const e of entriesFor(files, host, port)) if (!e.revoked && !e.certAuthority) types.add(e.keyType)
  return [...types]
}
