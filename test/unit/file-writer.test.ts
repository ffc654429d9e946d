import { execFileSync } from 'node:child_process'
import { closeSync, mkdtempSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PassThrough, Writable } from 'node:stream'
import { afterEach, describe, expect, it } from 'vitest'
import { directWriter, writesNow } from '../../src/output/file-writer.js'

const dir = mkdtempSync(join(tmpdir(), 'fanout-file-writer-'))
const opened: number[] = []
const open = (path: string, flags: string): number => {
  const fd = openSync(path, flags)
  opened.push(fd)
  return fd
}
afterEach(() => {
  for (const fd of opened.splice(0)) closeSync(fd)
})

/** A stand-in for process.stdout: a stream that says which descriptor it writes to. */
const streamOn = (fd: number): Writable & { fd: number } => Object.assign(new PassThrough(), { fd })

describe('directWriter', () => {
  it('writes latin1 strings and buffers to a file byte for byte, in order with other writes to the descriptor', () => {
    const file = join(dir, 'out')
    const fd = open(file, 'w')
    const stream = streamOn(fd)
    const writer = directWriter(stream)
    expect(writer).not.toBe(stream)
    expect(writer.write('a\xff\xfe\x00b\n', 'latin1')).toBe(true)
    writeSync(fd, 'summary\n') // written straight to the descriptor, as fanout's summary is
    expect(writer.write(Buffer.from([0xc3, 0xa9, 0x0a]))).toBe(true)
    expect(
      readFileSync(file).equals(
        Buffer.from([0x61, 0xff, 0xfe, 0x00, 0x62, 0x0a, ...Buffer.from('summary\n'), 0xc3, 0xa9, 0x0a]),
      ),
    ).toBe(true)
    expect(writer.writableNeedDrain).toBe(false)
  })

  it('takes /dev/null (a character device, not a terminal) as a file', () => {
    const stream = streamOn(open('/dev/null', 'w'))
    expect(directWriter(stream)).not.toBe(stream)
  })

  it('leaves a stream on a pipe, or with no descriptor, as it is', () => {
    const fifo = join(dir, 'fifo')
    execFileSync('mkfifo', [fifo])
    const onPipe = streamOn(open(fifo, 'r+')) // read-write: opening does not wait for a reader
    expect(directWriter(onPipe)).toBe(onPipe)
    const plain = new PassThrough()
    expect(directWriter(plain)).toBe(plain)
  })

  it("reports a failed write as the stream's error", async () => {
    writeFileSync(join(dir, 'ro'), '')
    const readOnly = open(join(dir, 'ro'), 'r') // a file, but not open for writing
    const writer = directWriter(streamOn(readOnly))
    const failed = new Promise<Error>((resolve) => writer.on('error', resolve))
    writer.write('x', 'latin1')
    expect((await failed).message).toMatch(/EBADF/)
  })

  it('writeNow writes bytes before it returns: the caller may reuse them at once; in order with write()', () => {
    const file = join(dir, 'now')
    const writer = directWriter(streamOn(open(file, 'w')))
    if (!writesNow(writer)) throw new Error('a file writer writes now')
    const scratch = Buffer.from('first\n')
    expect(writer.write('a\xff\n', 'latin1')).toBe(true)
    expect(writer.writeNow(scratch)).toBe(true)
    scratch.fill(0x3f) // reused by the caller: what was written stays
    expect(writer.writeNow(new Uint8Array(Buffer.from('\xfe\x00\n', 'latin1')))).toBe(true)
    expect(readFileSync(file).equals(Buffer.from('a\xff\nfirst\n\xfe\x00\n', 'latin1'))).toBe(true)
  })

  it("writeNow reports a failed write as the stream's error, and false from then on", async () => {
    writeFileSync(join(dir, 'ro2'), '')
    const writer = directWriter(streamOn(open(join(dir, 'ro2'), 'r')))
    if (!writesNow(writer)) throw new Error('a file writer writes now')
    const failed = new Promise<Error>((resolve) => writer.on('error', resolve))
    expect(writer.writeNow(Buffer.from('x'))).toBe(false)
    expect((await failed).message).toMatch(/EBADF/)
    expect(writer.writeNow(Buffer.from('y'))).toBe(false)
  })

  it('a stream left as it is (a pipe, a terminal) does not write now', () => {
    expect(writesNow(new PassThrough())).toBe(false)
  })
})
