import { readFileSync } from 'node:fs'
import ssh2 from 'ssh2'

/** Reads a secret from the user's terminal without echo; absent when there is no terminal to ask on. */
export type AskSecret = (prompt: string) => Promise<string>

const TRIES = 3
/** Whether ssh2 refused to parse a key because it is encrypted (and no or a wrong passphrase came with it). */
export const isEncrypted = (e: Error): boolean => /encrypted|passphrase/i.test(e.message)

/**
 * Asks once for the passphrase of each encrypted identity file the nodes will offer, before any
 * connection (so 100 nodes sharing a key mean one prompt, not 100), and checks it by decrypting the
 * key. Returns the decrypted keys of the files it unlocked (decrypting one takes about half a second
 * of CPU: the connections take this one; the passphrases themselves are not kept), and why others
 * stay locked; a locked key is skipped as ssh skips it in batch mode, and the authentication error
 * says so.
 */
export async function unlockIdentities(
  files: readonly string[],
  ask: AskSecret | undefined,
): Promise<{ unlocked: Map<string, ssh2.ParsedKey>; locked: Map<string, string> }> {
  const unlocked = new Map<string, ssh2.ParsedKey>()
  const locked = new Map<string, string>()
  for (const file of new Set(files)) {
    let key: Buffer
    try {
      key = readFileSync(file)
    } catch {
      continue // authMethods reports unreadable files
    }
    const parsed = ssh2.utils.parseKey(key)
    if (!(parsed instanceof Error) || !isEncrypted(parsed)) continue
    if (!ask) {
      locked.set(file, 'encrypted, and no terminal to ask for its passphrase: load it into ssh-agent (ssh-add)')
      continue
    }
    for (let i = 0; i < TRIES && !unlocked.has(file); i++) {
      const passphrase = await ask(
        i === 0 ? `Enter passphrase for key ${file}: ` : `Wrong passphrase; try again for ${file}: `,
      )
      const opened = ssh2.utils.parseKey(key, passphrase)
      if (opened instanceof Error) continue
      unlocked.set(file, opened)
    }
    if (!unlocked.has(file)) locked.set(file, `encrypted; wrong passphrase ${TRIES} times`)
  }
  return { unlocked, locked }
}
