// The credentials a connection offers, in OpenSSH's order, from the run's SshOptions.
import { readFileSync } from 'node:fs'
import ssh2 from 'ssh2'
import type { SshTarget } from './config.js'
import { isEncrypted } from './credentials.js'
import type { SshOptions } from './options.js'

// An identity file is read and parsed once per run (per SshOptions), not once per node: parsing an
// OpenSSH key builds its DER form and a crypto key object, and ssh2 takes a parsed key as it is.
type Identity = { key: ssh2.ParsedKey } | { skip: string }
const identities = new WeakMap<SshOptions, Map<string, Identity>>()

function identity(file: string, options: SshOptions): Identity {
  let known = identities.get(options)
  if (!known) identities.set(options, (known = new Map()))
  let found = known.get(file)
  if (!found) known.set(file, (found = readIdentity(file, options)))
  return found
}

/** A usable key, or why the file is skipped (named in the authentication error). */
function readIdentity(file: string, options: SshOptions): Identity {
  const unlocked = options.unlocked?.get(file)
  if (unlocked) return { key: unlocked }
  let key: Buffer
  try {
    key = readFileSync(file)
  } catch (e) {
    return { skip: `${file} (${(e as NodeJS.ErrnoException).code ?? 'unreadable'})` }
  }
  const parsed = ssh2.utils.parseKey(key)
  if (!(parsed instanceof Error)) return { key: parsed }
  const why = options.locked?.get(file) ?? (isEncrypted(parsed) ? 'encrypted; load it into ssh-agent' : parsed.message)
  return { skip: `${file} (${why})` }
}

/** Credentials in OpenSSH's order: the agent's keys, then each identity file that can be used, then a password if asked for. */
export function authMethods(
  target: SshTarget,
  options: SshOptions,
): { methods: object[]; tried: string[]; skipped: string[] } {
  const methods: object[] = []
  const tried: string[] = []
  const skipped: string[] = []
  if (options.agentSocket && !target.identitiesOnly) {
    methods.push({ type: 'agent', username: target.user, agent: options.agentSocket })
    tried.push('ssh-agent')
  }
  for (const file of target.identityFiles) {
    const found = identity(file, options)
    if ('skip' in found) {
      skipped.push(found.skip)
      continue
    }
    methods.push({ type: 'publickey', username: target.user, key: found.key })
    tried.push(file)
  }
  if (options.password !== undefined) {
    const password = options.password
    methods.push({ type: 'password', username: target.user, password })
    // PAM servers often take passwords only through keyboard-interactive: every prompt gets the password.
    methods.push({
      type: 'keyboard-interactive',
      username: target.user,
      prompt: (_n: string, _i: string, _l: string, prompts: unknown[], finish: (answers: string[]) => void) =>
        finish(prompts.map(() => password)),
    })
    tried.push('password', 'keyboard-interactive')
  }
  return { methods, tried, skipped }
}
