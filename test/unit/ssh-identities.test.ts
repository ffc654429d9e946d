import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import ssh2 from 'ssh2'
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest'
import type { SshTarget } from '../../src/ssh/config.js'
import { openClient, type SshOptions } from '../../src/transport/ssh-client.js'

const dir = mkdtempSync(join(tmpdir(), 'fanout-identities-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
afterEach(() => void vi.restoreAllMocks())
const key = (name: string, passphrase: string): string => {
  const file = join(dir, name)
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', passphrase, '-f', file])
  return file
}
const locked = key('locked', 'open sesame')
const plain = key('plain', '')

// Port 1 on loopback refuses at once: what is tested happens before any byte is sent.
const target = (alias: string): SshTarget => ({ alias, hostname: '127.0.0.1', port: 1, user: 'nobody', identityFiles: [locked, plain, join(dir, 'missing')], identitiesOnly: true, knownHostsFiles: [], hostKeyName: '127.0.0.1', acceptNewHostKeys: false })
const run = (): SshOptions => ({ connectTimeoutS: 5, keepaliveS: 5, keepaliveCountMax: 3, passphrases: new Map([[locked, 'open sesame']]) })

describe('identity files', () => {
  it('are read and parsed once per run, not once per node (an encrypted one costs ~0.5 s of CPU to open)', async () => {
    const parse = vi.spyOn(ssh2.utils, 'parseKey')
    const options = run()
    for (const alias of ['n1', 'n2', 'n3']) await expect(openClient(target(alias), options)).rejects.toThrow(/n\d .*connection refused/)
    expect(parse).toHaveBeenCalledTimes(2)
    expect(parse.mock.calls.map(([, passphrase]) => passphrase)).toEqual(['open sesame', undefined])
    // Another run reads them again: a key file may change between runs.
    await expect(openClient(target('n1'), run())).rejects.toThrow(/connection refused/)
    expect(parse).toHaveBeenCalledTimes(4)
  })

  it('a key decrypted when its passphrase was checked is not decrypted again', async () => {
    const unlocked = new Map([[locked, ssh2.utils.parseKey(readFileSync(locked), 'open sesame') as ssh2.ParsedKey]])
    const parse = vi.spyOn(ssh2.utils, 'parseKey')
    await expect(openClient(target('n1'), { ...run(), unlocked })).rejects.toThrow(/connection refused/)
    expect(parse.mock.calls.map(([, passphrase]) => passphrase)).toEqual([undefined])
  })
})
