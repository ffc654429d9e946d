import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { unlockIdentities } from '../../src/ssh/credentials.js'

const dir = mkdtempSync(join(tmpdir(), 'fanout-keys-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
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
    expect([...r.passphrases]).toEqual([[locked, 'open sesame']])
    expect([...r.unlocked.keys()]).toEqual([locked])
    expect(r.unlocked.get(locked)?.isPrivateKey()).toBe(true)
    expect(r.locked.size).toBe(0)
  })

  it('asks again after a wrong passphrase, and gives up after three', async () => {
    const again = answers('wrong', 'open sesame')
    expect((await unlockIdentities([locked], again.ask)).passphrases.get(locked)).toBe('open sesame')
    expect(again.prompts[1]).toBe(`Wrong passphrase; try again for ${locked}: `)
    const never = answers('a', 'b', 'c', 'open sesame')
    const r = await unlockIdentities([locked], never.ask)
    expect(never.prompts).toHaveLength(3)
    expect(r.passphrases.size).toBe(0)
    expect(r.locked.get(locked)).toBe('encrypted; wrong passphrase 3 times')
  })

  it('without a terminal, an encrypted key stays locked, with the reason said', async () => {
    const r = await unlockIdentities([locked, plain], undefined)
    expect(r.passphrases.size).toBe(0)
    expect([...r.locked.keys()]).toEqual([locked])
    expect(r.locked.get(locked)).toMatch(/no terminal to ask for its passphrase: load it into ssh-agent/)
  })
})
