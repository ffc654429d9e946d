import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import ssh2 from 'ssh2'
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest'
import type { SshTarget } from '../../src/transport/ssh/config.js'
import { unlockIdentities } from '../../src/transport/ssh/credentials.js'
import { openClient } from '../../src/transport/ssh/client.js'
import type { SshOptions } from '../../src/transport/ssh/options.js'

const dir = mkdtempSync(join(tmpdir(), 'fanout-keys-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
afterEach(() => void vi.restoreAllMocks())
const key = (name: string, passphrase: string): string => {
  const file = join(dir, name)
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', passphrase, '-f', file])
  return file
}
const locked = key('locked', 'open sesame')
const plain = key('plain', '')

/** A fake terminal that answers with the given passphrases in turn and records each prompt. */
function answers(...replies: string[]): { ask: (prompt: string) => Promise<string>; prompts: string[] } {
  const prompts: string[] = []
  return { prompts, ask: async (prompt) => (prompts.push(prompt), replies.shift() ?? '') }
}

describe('unlockIdentities', () => {
  it('asks once per encrypted file, however many nodes offer it, and never for a plain key', async () => {
    const t = answers('open sesame')
    const r = await unlockIdentities([locked, plain, locked, locked, join(dir, 'missing')], t.ask)
    expect(t.prompts).toEqual([`Enter passphrase for key ${locked}: `])
    expect([...r.unlocked.keys()]).toEqual([locked])
    expect(r.unlocked.get(locked)?.isPrivateKey()).toBe(true)
    expect(r.locked.size).toBe(0)
  })

  it('asks again after a wrong passphrase, and gives up after three', async () => {
    const again = answers('wrong', 'open sesame')
    expect((await unlockIdentities([locked], again.ask)).unlocked.get(locked)?.isPrivateKey()).toBe(true)
    expect(again.prompts[1]).toBe(`Wrong passphrase; try again for ${locked}: `)
    const never = answers('a', 'b', 'c', 'open sesame')
    const r = await unlockIdentities([locked], never.ask)
    expect(never.prompts).toHaveLength(3)
    expect(r.unlocked.size).toBe(0)
    expect(r.locked.get(locked)).toBe('encrypted; wrong passphrase 3 times')
  })

  it('without a terminal, an encrypted key stays locked, with the reason said', async () => {
    const r = await unlockIdentities([locked, plain], undefined)
    expect(r.unlocked.size).toBe(0)
    expect([...r.locked.keys()]).toEqual([locked])
    expect(r.locked.get(locked)).toMatch(/no terminal to ask for its passphrase: load it into ssh-agent/)
  })
})

// Port 1 on loopback refuses at once: what is tested happens before any byte is sent.
const target = (alias: string): SshTarget => ({
  alias,
  hostname: '127.0.0.1',
  port: 1,
  user: 'nobody',
  identityFiles: [locked, plain, join(dir, 'missing')],
  identitiesOnly: true,
  knownHostsFiles: [],
  hostKeyName: '127.0.0.1',
  acceptNewHostKeys: false,
})
const run = (): SshOptions => ({ connectTimeoutS: 5, keepaliveS: 5, keepaliveCountMax: 3 })

describe('identity files', () => {
  it('are read and parsed once per run, not once per node (an encrypted one still locked is skipped each time without another parse)', async () => {
    const parse = vi.spyOn(ssh2.utils, 'parseKey')
    const options = run()
    for (const alias of ['n1', 'n2', 'n3'])
      await expect(openClient(target(alias), options)).rejects.toThrow(/n\d .*connection refused/)
    expect(parse).toHaveBeenCalledTimes(2)
    expect(parse.mock.calls.map(([, passphrase]) => passphrase)).toEqual([undefined, undefined])
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
