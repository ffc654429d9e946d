import SSHConfig from 'ssh-config'
import { userInfo } from 'node:os'
import { describe, expect, it } from 'vitest'
import { resolveTarget } from '../../src/transport/ssh/config.js'

const target = (config: string, host = 'gpu01') =>
  resolveTarget({ host, line: 1 } as never, SSHConfig.parse(config), {})

describe('resolveTarget: StrictHostKeyChecking', () => {
  it.each<[string, boolean]>([
    ['', false],
    ['StrictHostKeyChecking yes', false],
    ['StrictHostKeyChecking ask', false],
    ['StrictHostKeyChecking accept-new', true],
    // fanout never accepts a changed key: "no" and "off" mean accept-new here.
    ['StrictHostKeyChecking no', true],
    ['StrictHostKeyChecking off', true],
  ])('%j → records new host keys: %s', (line, accept) => {
    expect(target(`Host gpu*\n  ${line}\n`).acceptNewHostKeys).toBe(accept)
  })

  it('applies per host, first match wins', () => {
    const config = 'Host gpu01\n  StrictHostKeyChecking accept-new\nHost *\n  StrictHostKeyChecking yes\n'
    expect(target(config, 'gpu01').acceptNewHostKeys).toBe(true)
    expect(target(config, 'gpu02').acceptNewHostKeys).toBe(false)
  })
})

describe('resolveTarget: values the ssh config gets wrong are refused before connecting', () => {
  it.each<[string, RegExp]>([
    ['Port 99999', /gpu01: the ssh config sets Port 99999, which is not a port/],
    ['Port 22x', /Port 22x/],
    ['ConnectTimeout soon', /ConnectTimeout soon, which is not a whole number/],
    ['ConnectTimeout 0', /ConnectTimeout 0/],
  ])('%s', (line, message) => {
    expect(() => target(`Host *\n  ${line}\n`)).toThrow(message)
  })

  it('a good Port and ConnectTimeout are used', () => {
    expect(target('Host *\n  Port 2222\n  ConnectTimeout 7\n')).toMatchObject({ port: 2222, connectTimeoutS: 7 })
  })
})

/** The chain of jump hosts in front of a target, nearest the node last: "user@host:port" each. */
const chain = (t: ReturnType<typeof resolveTarget>): string[] => {
  const hops: string[] = []
  for (let v = t.via; v; v = v.via) hops.unshift(`${v.user}@${v.hostname}:${v.port}`)
  return hops
}
const resolve = (config: string, host: string, flags: Parameters<typeof resolveTarget>[2] = {}) =>
  resolveTarget({ host, where: 'x:1' }, SSHConfig.parse(config), { user: 'me', ...flags })

describe('resolveTarget: ProxyJump and --jump', () => {
  const BASE =
    'Host bastion\n  HostName 10.0.0.1\n  User ops\n  ProxyJump none\nHost inner\n  HostName 192.168.0.9\n  User gate\n'
  it.each<[string, string, Parameters<typeof resolveTarget>[2], string[]]>([
    ['no jump', BASE, {}, []],
    ['ProxyJump from the config', `Host gpu*\n  ProxyJump bastion\n${BASE}`, {}, ['ops@10.0.0.1:22']],
    ['ProxyJump none', `Host gpu*\n  ProxyJump none\n${BASE}`, {}, []],
    [
      'a user and port in the spec win over the config',
      `Host gpu*\n  ProxyJump admin@bastion:2222\n${BASE}`,
      {},
      ['admin@10.0.0.1:2222'],
    ],
    [
      '--jump replaces the config',
      `Host gpu*\n  ProxyJump bastion\n${BASE}`,
      { jump: 'other' },
      [`${userInfo().username}@other:22`],
    ],
    ['--jump none turns the config off', `Host gpu*\n  ProxyJump bastion\n${BASE}`, { jump: 'none' }, []],
    [
      'a chain: each hop through the one before',
      BASE,
      { jump: 'bastion,inner' },
      ['ops@10.0.0.1:22', 'gate@192.168.0.9:22'],
    ],
    ['ssh:// form', BASE, { jump: 'ssh://root@bastion:2200' }, ['root@10.0.0.1:2200']],
    [
      'the first hop follows its own ProxyJump',
      `Host inner\n  ProxyJump bastion\n${BASE}`,
      { jump: 'inner' },
      ['ops@10.0.0.1:22', 'gate@192.168.0.9:22'],
    ],
    [
      'a later hop ignores its own ProxyJump (as ssh -J a,b does)',
      `Host inner\n  ProxyJump elsewhere\n${BASE}`,
      { jump: 'bastion,inner' },
      ['ops@10.0.0.1:22', 'gate@192.168.0.9:22'],
    ],
    ['an IPv6 jump host', BASE, { jump: '[fd00::1]:22' }, [`${userInfo().username}@fd00::1:22`]],
  ])('%s', (_name, config, flags, expected) => {
    const t = resolve(config, 'gpu01', flags)
    expect(chain(t)).toEqual(expected)
    expect(t.hostname).toBe('gpu01')
  })

  it('--user and --port apply to the nodes, not to the jump host', () => {
    const t = resolve('Host bastion\n  ProxyJump none\n', 'gpu01', { jump: 'bastion', port: 2022, user: 'alice' })
    expect(t).toMatchObject({ user: 'alice', port: 2022 })
    expect(t.via).toMatchObject({ hostname: 'bastion', port: 22 })
    expect(t.via?.user).not.toBe('alice')
  })

  it.each<[string, string, Parameters<typeof resolveTarget>[2], RegExp]>([
    [
      'a jump host that jumps through itself',
      'Host *\n  ProxyJump bastion\n',
      {},
      /gpu01: the jump hosts loop \(gpu01 → bastion → bastion\); give the jump host `ProxyJump none`/,
    ],
    [
      'two jump hosts through each other',
      'Host a\n  ProxyJump b\nHost b\n  ProxyJump a\nHost gpu*\n  ProxyJump a\n',
      {},
      /the jump hosts loop \(gpu01 → a → b → a\)/,
    ],
    ['a bad port', '', { jump: 'bastion:99999' }, /gpu01: jump host "bastion:99999": invalid port/],
    ['an empty hop', '', { jump: 'bastion,' }, /jump host "": empty jump host/],
    ['a bad name', '', { jump: 'bad host!' }, /jump host "bad host!": invalid host name/],
  ])('%s is refused (exit 2)', (_name, config, flags, message) => {
    let err: unknown
    try {
      resolve(config, 'gpu01', flags)
    } catch (e) {
      err = e
    }
    expect(err).toMatchObject({ code: 'USAGE', message: expect.stringMatching(message) })
  })

  it('ProxyCommand is still refused, naming the host; ProxyJump set before it wins', () => {
    expect(() => resolve('Host *\n  ProxyCommand nc %h %p\n', 'gpu01')).toThrow(
      /gpu01: ssh config sets ProxyCommand nc %h %p, which fanout does not support/,
    )
    const me = userInfo().username
    const config =
      'Host gpu*\n  ProxyJump bastion\nHost bastion\n  ProxyCommand none\nHost *\n  ProxyCommand nc %h %p\n'
    expect(chain(resolve(config, 'gpu01'))).toEqual([`${me}@bastion:22`])
    expect(chain(resolve(config, 'gpu01', { jump: 'bastion' }))).toEqual([`${me}@bastion:22`])
    // the jump host is resolved like any host: its own ProxyCommand is refused too
    expect(() => resolve('Host *\n  ProxyCommand nc %h %p\n', 'gpu01', { jump: 'bastion' })).toThrow(
      /^bastion: ssh config sets ProxyCommand/,
    )
  })
})
