import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { createHmac, generateKeyPairSync, randomBytes } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import ssh2 from 'ssh2'
import {
  checkHostKey,
  fingerprint,
  knownHostsLine,
  knownKeyTypes,
  type KnownHostsFile,
} from '../../src/transport/ssh/known-hosts.js'

// --- Real keys, encoded to the SSH wire format ssh2's hostVerifier receives ---------------

function sshString(data: Buffer | string): Buffer {
  const body = typeof data === 'string' ? Buffer.from(data) : data
  const len = Buffer.alloc(4)
  len.writeUInt32BE(body.length)
  return Buffer.concat([len, body])
}

function mpint(unsigned: Buffer): Buffer {
  let i = 0
  while (i < unsigned.length - 1 && unsigned[i] === 0) i++
  const trimmed = unsigned.subarray(i)
  return sshString((trimmed[0] ?? 0) & 0x80 ? Buffer.concat([Buffer.from([0]), trimmed]) : trimmed)
}

const b64url = (s: string | undefined): Buffer => Buffer.from(s ?? '', 'base64url')

interface Key {
  type: string
  blob: Buffer
  /** "type base64" as in a .pub file or known_hosts line */
  pub: string
}

function makeKey(kind: 'ed25519' | 'ecdsa' | 'rsa'): Key {
  let type: string
  let blob: Buffer
  if (kind === 'ed25519') {
    const jwk = generateKeyPairSync('ed25519').publicKey.export({ format: 'jwk' })
    type = 'ssh-ed25519'
    blob = Buffer.concat([sshString(type), sshString(b64url(jwk.x))])
  } else if (kind === 'ecdsa') {
    const jwk = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' })
    type = 'ecdsa-sha2-nistp256'
    const point = Buffer.concat([Buffer.from([4]), b64url(jwk.x), b64url(jwk.y)])
    blob = Buffer.concat([sshString(type), sshString('nistp256'), sshString(point)])
  } else {
    const jwk = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ format: 'jwk' })
    type = 'ssh-rsa'
    blob = Buffer.concat([sshString(type), mpint(b64url(jwk.e)), mpint(b64url(jwk.n))])
  }
  return { type, blob, pub: `${type} ${blob.toString('base64')}` }
}

const ed = makeKey('ed25519')
const ed2 = makeKey('ed25519')
const ec = makeKey('ecdsa')
const rsa = makeKey('rsa')

const file = (text: string, path = '/home/u/.ssh/known_hosts'): KnownHostsFile => ({ path, text })

function hashedName(name: string, salt = randomBytes(20)): string {
  const hash = createHmac('sha1', salt).update(name).digest()
  return `|1|${salt.toString('base64')}|${hash.toString('base64')}`
}

let hasSshKeygen = true
try {
  execFileSync('ssh-keygen', ['-?'], { stdio: 'ignore' })
} catch (e) {
  // `ssh-keygen -?` exits non-zero by design; only a missing binary matters.
  hasSshKeygen = (e as NodeJS.ErrnoException).code !== 'ENOENT'
}

// --- Tests ----------------------------------------------------------------------------------

describe('test key encoding', () => {
  it.each([ed, ec, rsa])('$type blob agrees with ssh2.utils.parseKey', (k) => {
    const parsed = ssh2.utils.parseKey(k.pub)
    if (parsed instanceof Error) throw parsed
    expect(parsed.type).toBe(k.type)
    expect(parsed.getPublicSSH().equals(k.blob)).toBe(true)
  })
})

describe('host matching', () => {
  const h = 'example.com'
  const cases: Array<{ name: string; text: string; host: string; port: number; match: boolean }> = [
    { name: 'plain host', text: `${h} ${ed.pub}`, host: h, port: 22, match: true },
    { name: 'other host', text: `other.com ${ed.pub}`, host: h, port: 22, match: false },
    { name: 'one of a list', text: `a.com,${h},10.0.0.1 ${ed.pub}`, host: h, port: 22, match: true },
    { name: 'bracketed port', text: `[${h}]:2222 ${ed.pub}`, host: h, port: 2222, match: true },
    { name: 'bracketed port, not port 22', text: `[${h}]:2222 ${ed.pub}`, host: h, port: 22, match: false },
    { name: 'bracketed port, not another port', text: `[${h}]:2222 ${ed.pub}`, host: h, port: 2200, match: false },
    { name: 'bare host, not port 2222', text: `${h} ${ed.pub}`, host: h, port: 2222, match: false },
    {
      name: 'bracketed :22 is not how ssh writes port 22',
      text: `[${h}]:22 ${ed.pub}`,
      host: h,
      port: 22,
      match: false,
    },
    { name: 'star wildcard', text: `*.example.com ${ed.pub}`, host: 'node1.example.com', port: 22, match: true },
    { name: 'star needs the dot', text: `*.example.com ${ed.pub}`, host: h, port: 22, match: false },
    { name: 'question mark', text: `node?.lan ${ed.pub}`, host: 'node7.lan', port: 22, match: true },
    { name: 'question mark is one char', text: `node?.lan ${ed.pub}`, host: 'node17.lan', port: 22, match: false },
    { name: 'wildcard in bracketed port', text: `[node*]:2222 ${ed.pub}`, host: 'node3', port: 2222, match: true },
    { name: 'negation excludes', text: `*.lan,!bad.lan ${ed.pub}`, host: 'bad.lan', port: 22, match: false },
    { name: 'negation order irrelevant', text: `!bad.lan,*.lan ${ed.pub}`, host: 'bad.lan', port: 22, match: false },
    { name: 'negation spares others', text: `*.lan,!bad.lan ${ed.pub}`, host: 'good.lan', port: 22, match: true },
    { name: 'negation alone matches nothing', text: `!bad.lan ${ed.pub}`, host: 'good.lan', port: 22, match: false },
    { name: 'host case-insensitive', text: `${h} ${ed.pub}`, host: 'Example.COM', port: 22, match: true },
    { name: 'pattern case-insensitive', text: `*.EXAMPLE.com ${ed.pub}`, host: 'n.example.com', port: 22, match: true },
    { name: 'hashed', text: `${hashedName(h)} ${ed.pub}`, host: h, port: 22, match: true },
    {
      name: 'hashed, uppercase lookup',
      text: `${hashedName(h)} ${ed.pub}`,
      host: 'EXAMPLE.com',
      port: 22,
      match: true,
    },
    { name: 'hashed other host', text: `${hashedName('x.com')} ${ed.pub}`, host: h, port: 22, match: false },
    { name: 'hashed with port', text: `${hashedName(`[${h}]:2222`)} ${ed.pub}`, host: h, port: 2222, match: true },
    {
      name: 'hashed with port, not 22',
      text: `${hashedName(`[${h}]:2222`)} ${ed.pub}`,
      host: h,
      port: 22,
      match: false,
    },
    { name: 'ipv6 on port', text: `[fe80::1]:2222 ${ed.pub}`, host: 'fe80::1', port: 2222, match: true },
  ]

  it.each(cases)('$name', ({ text, host, port, match }) => {
    expect(checkHostKey([file(text)], host, port, ed.blob)).toEqual(
      match ? { kind: 'match' } : { kind: 'unknown', fingerprint: fingerprint(ed.blob), keyType: 'ssh-ed25519' },
    )
    expect(knownKeyTypes([file(text)], host, port)).toEqual(match ? ['ssh-ed25519'] : [])
  })

  // Outside CI without ssh-keygen: skipped; under CI (.ci/run installs openssh-client) a missing one fails.
  describe.skipIf(!hasSshKeygen && !process.env.CI)('agrees with ssh-keygen -F', () => {
    let dir = ''
    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), 'known-hosts-F-'))
    })
    afterAll(() => rmSync(dir, { recursive: true, force: true }))

    it.each(cases)('$name', ({ text, host, port, match }) => {
      const path = join(dir, 'kh')
      writeFileSync(path, text + '\n')
      const name = port === 22 ? host.toLowerCase() : `[${host.toLowerCase()}]:${port}`
      let found = true
      try {
        execFileSync('ssh-keygen', ['-F', name, '-f', path], { stdio: 'ignore' })
      } catch {
        found = false
      }
      expect(found).toBe(match)
    })
  })
})

describe('checkHostKey verdicts', () => {
  const p = '/etc/ssh/ssh_known_hosts'
  const u = '/home/u/.ssh/known_hosts'

  it('matches among several keys and files', () => {
    const files = [file(`h ${ec.pub}\nh ${rsa.pub}`, p), file(`h ${ed.pub}`, u)]
    for (const k of [ed, ec, rsa]) expect(checkHostKey(files, 'h', 22, k.blob)).toEqual({ kind: 'match' })
  })

  it('reports a changed key of the same type with where and both fingerprints', () => {
    const files = [file(`# header\nh ${ec.pub}`, p), file(`other ${ed.pub}\n\nh ${ed.pub}\nh ${ed.pub}`, u)]
    expect(checkHostKey(files, 'h', 22, ed2.blob)).toEqual({
      kind: 'changed',
      fingerprint: fingerprint(ed2.blob),
      keyType: 'ssh-ed25519',
      knownFingerprint: fingerprint(ed.blob),
      where: `${u}:3`,
    })
  })

  it('a file is read as its text is now: parsed once per text, again when it changes (--accept-new appends, a user edits)', () => {
    const path = '/home/u/.ssh/known_hosts.changing'
    expect(checkHostKey([file(`other ${ed.pub}`, path)], 'h', 22, ed.blob)).toMatchObject({ kind: 'unknown' })
    expect(checkHostKey([file(`other ${ed.pub}\nh ${ed.pub}`, path)], 'h', 22, ed.blob)).toEqual({ kind: 'match' })
    expect(checkHostKey([file(`other ${ed.pub}\nh ${ed2.pub}`, path)], 'h', 22, ed.blob)).toMatchObject({
      kind: 'changed',
      where: `${path}:2`,
    })
    expect(checkHostKey([file(`other ${ed.pub}\nh ${ed2.pub}`, path)], 'other', 22, ed.blob)).toEqual({ kind: 'match' })
  })

  it('the lines found for a name are kept per file text, not per key: the same file and name, another key, another verdict', () => {
    const files = [file(`${hashedName('h')} ${ed.pub}\nother ${ec.pub}`, '/home/u/.ssh/known_hosts.hashed')]
    expect(knownKeyTypes(files, 'h', 22)).toEqual(['ssh-ed25519'])
    expect(checkHostKey(files, 'h', 22, ed.blob)).toEqual({ kind: 'match' })
    expect(checkHostKey(files, 'h', 22, ed2.blob)).toMatchObject({
      kind: 'changed',
      where: '/home/u/.ssh/known_hosts.hashed:1',
    })
    expect(checkHostKey(files, 'other', 22, ed.blob)).toMatchObject({ kind: 'unknown' })
    expect(checkHostKey(files, 'H', 2222, ed.blob)).toMatchObject({ kind: 'unknown' })
  })

  it('a matching line wins over a stale same-type line', () => {
    const files = [file(`h ${ed2.pub}\nh ${ed.pub}`)]
    expect(checkHostKey(files, 'h', 22, ed.blob)).toEqual({ kind: 'match' })
  })

  it('a key of a type never recorded is unknown, not changed', () => {
    const files = [file(`h ${ec.pub}\nh ${rsa.pub}`)]
    expect(checkHostKey(files, 'h', 22, ed.blob)).toEqual({
      kind: 'unknown',
      fingerprint: fingerprint(ed.blob),
      keyType: 'ssh-ed25519',
    })
  })

  it('a different key for a different port is not a change', () => {
    const files = [file(`[h]:2222 ${ed2.pub}`)]
    expect(checkHostKey(files, 'h', 22, ed.blob).kind).toBe('unknown')
  })

  it.each([
    { name: 'for this host', pattern: 'h' },
    { name: 'for every host', pattern: '*' },
    { name: 'hashed', pattern: hashedName('h') },
  ])('revoked $name beats a match', ({ pattern }) => {
    const files = [file(`h ${ed.pub}`, u), file(`# revocations\n@revoked ${pattern} ${ed.pub}`, p)]
    expect(checkHostKey(files, 'h', 22, ed.blob)).toEqual({
      kind: 'revoked',
      fingerprint: fingerprint(ed.blob),
      keyType: 'ssh-ed25519',
      where: `${p}:2`,
    })
  })

  it('revocation for another host, or of another key, does not apply', () => {
    const files = [file(`@revoked other ${ed.pub}\n@revoked h ${ed2.pub}\nh ${ed.pub}`)]
    expect(checkHostKey(files, 'h', 22, ed.blob)).toEqual({ kind: 'match' })
    // A revoked line is not a known key, so it cannot make a fresh key look "changed".
    expect(checkHostKey([file(`@revoked h ${ed2.pub}`)], 'h', 22, ed.blob).kind).toBe('unknown')
  })

  it('a @cert-authority line never vouches for a key, but the unknown verdict says where it is', () => {
    const files = [file(`@cert-authority *.example ${ed.pub}\n@cert-authority h ${ed2.pub}`, u)]
    expect(checkHostKey(files, 'h', 22, ed.blob)).toEqual({
      kind: 'unknown',
      fingerprint: fingerprint(ed.blob),
      keyType: 'ssh-ed25519',
      certAuthority: `${u}:2`,
    })
    // The CA's key is not the host's, even when it is the key presented.
    expect(checkHostKey(files, 'h', 22, ed2.blob).kind).toBe('unknown')
    expect(checkHostKey(files, 'other', 22, ed.blob)).toEqual({
      kind: 'unknown',
      fingerprint: fingerprint(ed.blob),
      keyType: 'ssh-ed25519',
    })
    expect(knownKeyTypes(files, 'h', 22)).toEqual([])
  })

  it.each<[string, number, string]>([
    ['Gpu01.Example', 22, 'gpu01.example'],
    ['10.0.0.5', 2222, '[10.0.0.5]:2222'],
    ['fd00::1', 22, 'fd00::1'],
  ])('knownHostsLine(%s, %i) records the key under %s, and checkHostKey then matches it', (h, port, name) => {
    const line = knownHostsLine(h, port, ed.blob)
    expect(line).toBe(`${name} ${ed.pub}\n`)
    expect(checkHostKey([file(line)], h, port, ed.blob)).toEqual({ kind: 'match' })
  })

  it('ignores comments, blank and malformed lines without throwing', () => {
    const garbage = [
      '',
      '   ',
      '# h ' + ed2.pub,
      '   # indented comment',
      'h',
      'h ssh-ed25519',
      'h ssh-ed25519 !!!not-base64!!!',
      `h ssh-rsa ${ed2.blob.toString('base64')}`, // declared type disagrees with the blob
      `h ssh-ed25519 ${Buffer.from([0, 0, 0xff, 0xff, 1]).toString('base64')}`, // truncated blob
      `@bogus h ${ed2.pub}`,
      `@revoked`,
      `|1|bad|hash ${ed2.pub}`,
      `|1|||| ${ed2.pub}`,
      `h 1024 35 12345678901234567890`, // SSH1-era RSA line
      '\u0000\uffff',
    ]
    const text = [...garbage, `h ${ed.pub} trailing comment words`].join('\r\n')
    expect(checkHostKey([file(text)], 'h', 22, ed.blob)).toEqual({ kind: 'match' })
    expect(checkHostKey([file(text)], 'h', 22, ed2.blob).kind).toBe('changed')
    expect(checkHostKey([file(garbage.join('\n'))], 'h', 22, ed2.blob).kind).toBe('unknown')
    expect(knownKeyTypes([file(text)], 'h', 22)).toEqual(['ssh-ed25519'])
  })

  it('tolerates a presented key that is not a valid blob', () => {
    const junk = Buffer.from('nonsense')
    expect(checkHostKey([file(`h ${ed.pub}`)], 'h', 22, junk)).toEqual({
      kind: 'unknown',
      fingerprint: fingerprint(junk),
      keyType: '',
    })
  })

  it('empty file list yields unknown', () => {
    expect(checkHostKey([], 'h', 22, rsa.blob)).toEqual({
      kind: 'unknown',
      fingerprint: fingerprint(rsa.blob),
      keyType: 'ssh-rsa',
    })
  })
})

describe('knownKeyTypes', () => {
  it('lists types for this host in file order, deduplicated, skipping revoked and other hosts', () => {
    const files = [
      file(`h ${ec.pub}\nother ${ed.pub}\n@revoked h ${rsa.pub}\n*.x ${rsa.pub}`),
      file(`${hashedName('h')} ${ed.pub}\nh ${ec.pub}\nh,g ${rsa.pub}\nh ${ed2.pub}`),
    ]
    expect(knownKeyTypes(files, 'h', 22)).toEqual(['ecdsa-sha2-nistp256', 'ssh-ed25519', 'ssh-rsa'])
    expect(knownKeyTypes(files, 'H', 2222)).toEqual([])
  })
})

// Outside CI without ssh-keygen: skipped; under CI a missing one fails.
describe.skipIf(!hasSshKeygen && !process.env.CI)('cross-checks with ssh-keygen', () => {
  let dir = ''
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'known-hosts-'))
  })
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it.each([ed, ec, rsa])('fingerprint of $type equals ssh-keygen -lf', (k) => {
    const pub = join(dir, `${k.type}.pub`)
    writeFileSync(pub, `${k.pub} test@fixture\n`)
    const out = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', pub], { encoding: 'utf8' })
    const fp = out.split(/\s+/)[1]
    expect(fp).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/)
    expect(fingerprint(k.blob)).toBe(fp)
  })

  it('entries hashed by ssh-keygen -H are matched', () => {
    const path = join(dir, 'known_hosts_H')
    writeFileSync(path, `example.com ${ed.pub}\n[example.com]:2222 ${ec.pub}\n`)
    execFileSync('ssh-keygen', ['-H', '-f', path], { stdio: 'ignore' })
    const text = readFileSync(path, 'utf8')
    expect(text).not.toContain('example.com')
    expect(text).toMatch(/^\|1\|/)
    const files = [file(text, path)]
    expect(checkHostKey(files, 'example.com', 22, ed.blob)).toEqual({ kind: 'match' })
    expect(checkHostKey(files, 'example.com', 2222, ec.blob)).toEqual({ kind: 'match' })
    expect(checkHostKey(files, 'example.com', 22, ec.blob).kind).toBe('unknown')
    expect(checkHostKey(files, 'example.com', 22, ed2.blob)).toMatchObject({ kind: 'changed', where: `${path}:1` })
  })
})
