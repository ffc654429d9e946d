import { spawn } from 'node:child_process'
import { createServer, type AddressInfo } from 'node:net'
import { describe, expect, it } from 'vitest'
import { REACH_PYTHON } from '../../src/node/reach.js'
import { readProbeLines } from '../../src/node/probe.js'

/** Runs the reachability program as a held shell does (python3 -S -c SOURCE ARGS…) and collects its stdout. */
function reach(args: string[]): Promise<{ out: Map<string, string>; ms: number }> {
  const started = Date.now()
  const child = spawn('python3', ['-S', '-c', REACH_PYTHON, ...args], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout.on('data', (b: Buffer) => (out += b.toString()))
  return new Promise((resolve) =>
    child.on('close', () => resolve({ out: readProbeLines(out), ms: Date.now() - started })),
  )
}

const freePort = async (): Promise<number> => {
  const s = createServer()
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r))
  const port = (s.address() as AddressInfo).port
  await new Promise((r) => s.close(r))
  return port
}

describe('the reachability check (node/reach.ts), with the real python3', () => {
  it('node 0 listens on the port; the others connect, each told its source address; the listener ends once all came', async () => {
    const port = await freePort()
    const listener = reach(['listen', '127.0.0.1', String(port), '10', '2'])
    // The connectors may start first: a refused connection is tried again until the listener is up.
    const [a, b] = await Promise.all([
      reach(['connect', '127.0.0.1', String(port), '10']),
      reach(['connect', '127.0.0.1', String(port), '10']),
    ])
    const l = await listener
    expect([a.out.get('reach'), b.out.get('reach')]).toEqual(['ok 127.0.0.1', 'ok 127.0.0.1'])
    expect(l.out.get('reach_listen')).toBe('ok')
    expect(l.out.get('reach_accepted')).toBe('2')
    expect(l.ms).toBeLessThan(8000) // not the time limit: it stopped once both had come
  }, 20_000)

  it('nothing listening: refused until the time limit, then the reason', async () => {
    const r = await reach(['connect', '127.0.0.1', String(await freePort()), '1'])
    expect(r.out.get('reach')).toBe('fail Connection refused')
    expect(r.ms).toBeGreaterThanOrEqual(900)
  }, 10_000)

  it('a port the listener cannot take is said, not waited on', async () => {
    const held = createServer()
    await new Promise<void>((r) => held.listen(0, '0.0.0.0', r))
    try {
      const r = await reach(['listen', '127.0.0.1', String((held.address() as AddressInfo).port), '5', '1'])
      expect(r.out.get('reach_listen')).toBe('error Address already in use')
      expect(r.ms).toBeLessThan(4000)
    } finally {
      held.close()
    }
  }, 10_000)
})
