import { describe, it, expect } from 'vitest'
import { PassThrough } from 'node:stream'
import { holdProbe } from '../../src/launch/held.js'
import { PROBE_END } from '../../src/node/probe.js'
import type { ExitStatus, RemoteProcess, Transport } from '../../src/transport/types.js'

/** A node whose shell prints the given chunks on stdout and stderr, then (with `exit`) ends. */
function fakeNode(
  stdout: string[],
  stderr: string[],
  exit?: ExitStatus,
): { transport: Transport; input: string[]; ended: () => boolean } {
  const input: string[] = []
  let ended = false
  const transport: Transport = {
    kind: 'local',
    exec: async () => {
      const out = new PassThrough()
      const err = new PassThrough()
      let finish: (s: ExitStatus) => void = () => {}
      const done = new Promise<ExitStatus>((resolve) => (finish = resolve))
      // The chunks arrive one by one, after the caller has attached its readers.
      setImmediate(() => {
        for (const c of stdout) out.write(c)
        for (const c of stderr) err.write(c)
        if (exit) {
          out.end()
          err.end()
          Promise.all([new Promise((r) => out.on('end', r)), new Promise((r) => err.on('end', r))]).then(
            () => finish(exit),
            () => {},
          )
        }
      })
      const proc: RemoteProcess = {
        stdout: out,
        stderr: err,
        write: (d) => void input.push(d),
        end: () => void (ended = true),
        done,
      }
      return proc
    },
    files: () => Promise.reject(new Error('no files')),
    onLost: () => {},
    close: () => {},
  }
  return { transport, input, ended: () => ended }
}

/** Everything a handed-over stream still yields, read the way the job's output reads it (a 'data' listener, then resume). */
function rest(stream: NodeJS.ReadableStream & PassThrough): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = []
    stream.on('data', (c: Buffer) => chunks.push(c))
    stream.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
    stream.resume()
    stream.end()
  })
}

const END = `${PROBE_END}\n`

describe("holdProbe: the probe part of a node's held command", () => {
  it.each<[string, string[], string[], string, string, string]>([
    ['marker alone', ['fanout.gpus=2\n', END], ['setup says hi\n', END], 'fanout.gpus=2\n', 'setup says hi\n', ''],
    ['marker split over chunks', ['fanout.gpus=2\nfanout.pro', 'be_end', '\n'], [END], 'fanout.gpus=2\n', '', ''],
    [
      "output after the marker in the same chunk is the job's, kept",
      [`fanout.gpus=1\n${END}job line\n`],
      [`${END}job err`],
      'fanout.gpus=1\n',
      '',
      'job line\n',
    ],
    [
      'the marker counts only as a line of its own',
      [`x${END}`, `${PROBE_END}x\n`, END],
      [END],
      `x${END}${PROBE_END}x\n`,
      '',
      '',
    ],
    [
      "noise of the login shell before the facts is the probe's",
      ['Welcome\n', `fanout.cwd=ok\n${END}`],
      [END],
      'Welcome\nfanout.cwd=ok\n',
      '',
      '',
    ],
  ])('%s', async (_name, stdout, stderr, probeOut, probeErr, after) => {
    const node = fakeNode(stdout, stderr)
    const held = await holdProbe(node.transport, 'cmd', 'setup words')
    expect(node.input).toEqual(['setup words'])
    expect(held).toMatchObject({ stdout: probeOut, stderr: probeErr })
    expect(held.proc).toBeDefined()
    expect(node.ended()).toBe(false) // still waiting for the job
    expect(await rest(held.proc?.stdout as PassThrough)).toBe(after)
  })

  it("a shell that ends before the marker: its output is the probe's result, with its exit status, and no process is held", async () => {
    const node = fakeNode(['fanout.cwd=missing\n'], ['sh: 1: cannot run\n'], { code: 127, signal: null })
    const held = await holdProbe(node.transport, 'cmd', '')
    expect(held).toEqual({
      stdout: 'fanout.cwd=missing\n',
      stderr: 'sh: 1: cannot run\n',
      status: { code: 127, signal: null },
    })
  })

  it('one stream marked and the other ended (the shell died between the two lines): not held, its input is closed', async () => {
    const node = fakeNode([`fanout.gpus=1\n${END}`], [], { code: null, signal: 'KILL' })
    const held = await holdProbe(node.transport, 'cmd', '')
    expect(held.proc).toBeUndefined()
    expect(held.status).toEqual({ code: null, signal: 'KILL' })
    expect(node.ended()).toBe(true)
  })
})
