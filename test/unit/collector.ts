import { Writable } from 'node:stream'

/**
 * A Writable that keeps every chunk it gets (written synchronously, so order is exact), with what came
 * as text and as lines; `log` also gets each chunk, to check the order across several collectors.
 */
export function collector(log?: string[]): {
  stream: Writable
  chunks: Buffer[]
  text: () => string
  lines: () => string[]
} {
  const chunks: Buffer[] = []
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(Buffer.from(chunk))
      log?.push(Buffer.from(chunk).toString('utf8'))
      cb()
    },
  })
  const text = (): string => Buffer.concat(chunks).toString('utf8')
  return { stream, chunks, text, lines: () => text().split('\n').slice(0, -1) }
}
