import type { Writable } from 'node:stream'

// Callbacks waiting for a full stream to drain; one 'drain' listener per stream serves them all
// (a listener per node would trip Node's listener-leak warning on a big cluster).
const waiting = new WeakMap<Writable, Array<() => void>>()

/** Calls `resume` once `stream` has drained: at once when there is no stream or nothing waits to drain. */
export function whenDrained(stream: Writable | undefined, resume: () => void): void {
  if (!stream?.writableNeedDrain) return resume()
  let list = waiting.get(stream)
  if (!list) {
    const callbacks: Array<() => void> = []
    waiting.set(stream, (list = callbacks))
    stream.once('drain', () => {
      waiting.delete(stream)
      for (const cb of callbacks) cb()
    })
  }
  list.push(resume)
}
