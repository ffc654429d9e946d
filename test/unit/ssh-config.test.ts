import SSHConfig from 'ssh-config'
import { describe, expect, it } from 'vitest'
import { resolveTarget } from '../../src/ssh/config.js'

const target = (config: string, host = 'gpu01') => resolveTarget({ host, line: 1 } as never, SSHConfig.parse(config), {})

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
