import ssh2 from 'ssh2'
import { describe, expect, it, vi } from 'vitest'
import { skipHostKeysProof } from '../../src/transport/ssh-client.js'

type Handler = (p: unknown, name: string, wantReply: boolean, data: unknown) => void
const fake = (): { client: ssh2.Client; original: ReturnType<typeof vi.fn>; success: ReturnType<typeof vi.fn>; handler: () => Handler } => {
  const original = vi.fn()
  const success = vi.fn()
  const protocol = { _handlers: { GLOBAL_REQUEST: original as Handler }, requestSuccess: success }
  return { client: { _protocol: protocol } as unknown as ssh2.Client, original, success, handler: () => protocol._handlers.GLOBAL_REQUEST }
}

describe('skipHostKeysProof: no proof asked of the host keys a server announces', () => {
  it('ignores hostkeys-00@openssh.com (answering only if a reply is wanted), passes every other request on', () => {
    const f = fake()
    skipHostKeysProof(f.client)
    f.handler()('p', 'hostkeys-00@openssh.com', false, Buffer.alloc(0))
    expect(f.original).not.toHaveBeenCalled()
    expect(f.success).not.toHaveBeenCalled()
    f.handler()('p', 'hostkeys-00@openssh.com', true, Buffer.alloc(0))
    expect(f.success).toHaveBeenCalledTimes(1)
    f.handler()('p', 'keepalive@openssh.com', true, null)
    expect(f.original).toHaveBeenCalledWith('p', 'keepalive@openssh.com', true, null)
  })

  it('takes hold of a real ssh2 client as soon as it connects (an ssh2 of another shape would make this a no-op)', () => {
    const client = new ssh2.Client()
    client.on('error', () => {})
    client.connect({ host: '127.0.0.1', port: 1, username: 'nobody' })
    const handlers = (client as unknown as { _protocol: { _handlers: { GLOBAL_REQUEST: Handler } } })._protocol._handlers
    const before = handlers.GLOBAL_REQUEST
    expect(typeof before).toBe('function')
    skipHostKeysProof(client)
    expect(handlers.GLOBAL_REQUEST).not.toBe(before)
    client.end()
  })

  it('leaves a client without the expected protocol object alone', () => {
    expect(() => skipHostKeysProof({} as ssh2.Client)).not.toThrow()
  })
})
