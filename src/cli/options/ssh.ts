import { resolve } from 'node:path'
import type { Argv } from 'yargs'
import { usageError } from '../../errors.js'
import { parseJumpHost } from '../../hosts/hostfile.js'
import type { SshConnectOptions } from '../../launch/options.js'
import { int, parseDuration, text } from '../parser.js'
import { portFlag } from './job.js'

// The SSH flags: how the nodes are reached (transport/).

export function withSshOptions<T>(y: Argv<T>) {
  return y
    .option('ssh-port', {
      type: 'string',
      describe: 'SSH port for nodes without host:port (overrides ssh config)',
      group: 'SSH:',
    })
    .option('user', {
      alias: 'l',
      type: 'string',
      describe: 'remote user for nodes without user@ (overrides ssh config)',
      group: 'SSH:',
    })
    .option('identity', {
      alias: 'i',
      type: 'string',
      describe: "private key file, tried before ssh config's (repeatable)",
      group: 'SSH:',
    })
    .option('ssh-config', {
      alias: 'F',
      type: 'string',
      describe: 'ssh config file to use instead of ~/.ssh/config',
      group: 'SSH:',
    })
    .option('jump', {
      alias: 'J',
      type: 'string',
      describe:
        'reach the nodes through this jump host ([user@]host[:port], a,b for a chain; "none": ignore ProxyJump), over one shared connection, like ssh -J',
      group: 'SSH:',
    })
    .option('accept-new', {
      type: 'boolean',
      default: false,
      describe:
        'record the host key of a node never seen before (never a changed one), like StrictHostKeyChecking=accept-new',
      group: 'SSH:',
    })
    .option('ask-password', {
      type: 'boolean',
      default: false,
      describe: 'ask once for a password, tried after the keys',
      group: 'SSH:',
    })
    .option('connect-timeout', {
      type: 'string',
      default: '10',
      describe: 'give up on a node not connected after this long',
      group: 'SSH:',
    })
    .option('max-handshakes', {
      type: 'string',
      default: '8',
      describe: 'SSH handshakes in flight at once to one sshd (it drops some above 10)',
      group: 'SSH:',
    })
    .option('keepalive', {
      type: 'string',
      default: '5',
      describe: 'SSH keepalive interval; a node is lost after 3 unanswered',
      group: 'SSH:',
    })
}

/** `--jump`: each hop must be a `[user@]host[:port]`, or the whole is `none`. */
function jumpSpec(spec: string | undefined): string | undefined {
  if (spec === undefined || spec.toLowerCase() === 'none') return spec
  for (const hop of spec.split(',')) parseJumpHost(hop.trim(), '--jump')
  return spec
}

/** The SSH flags, validated; key files and the config file made absolute. */
export function readSshOptions(a: Record<string, unknown>, cwd: string): SshConnectOptions {
  const user = text('user', a.user)
  if (user !== undefined && !/^[A-Za-z0-9._][A-Za-z0-9._-]*$/.test(user))
    throw usageError(`--user ${JSON.stringify(user)} is not a valid user name`)
  const ssh: SshConnectOptions = {
    // Repeats are collected by duplicate-arguments-array; `array: true` would swallow SCRIPT too.
    identity: [a.identity ?? []].flat().map((f) => resolve(cwd, String(f))),
    acceptNew: a['accept-new'] === true,
    askPassword: a['ask-password'] === true,
    connectTimeoutS: parseDuration('connect-timeout', a['connect-timeout']),
    maxHandshakes: int('max-handshakes', a['max-handshakes'], 1, 1000) ?? 8,
    keepaliveS: parseDuration('keepalive', a.keepalive),
  }
  const configFile = text('ssh-config', a['ssh-config'])
  const optional = {
    user,
    port: portFlag('ssh-port', a['ssh-port']),
    configFile: configFile === undefined ? undefined : resolve(cwd, configFile),
    jump: jumpSpec(text('jump', a.jump)),
  }
  for (const [k, v] of Object.entries(optional)) if (v !== undefined) Object.assign(ssh, { [k]: v })
  return ssh
}
