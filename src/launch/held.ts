import type { Readable } from 'node:stream'
import { PROBE_END } from '../node/probe.js'
import type { ExitStatus, RemoteProcess, Transport } from '../transport/types.js'

/** A node's probe run as the start of its job (heldProbeCommand): what it printed, and the shell now waiting for the job. */
export interface HeldProbe {
  stdout: string
  stderr: string
  /** The node's shell, waiting on stdin for heldJobInput; absent when it ended instead (then `status`). */
  proc?: RemoteProcess
  status?: ExitStatus
}

/**
 * Reads `stream` up to the marker line (PROBE_END unless told), then leaves it paused with anything
 * after the marker put back, for what follows to read from there (NodeOutput.pipe resumes it). Ends
 * without the marker when the stream ends first. Each chunk is searched once, with the few bytes
 * before it in which a marker could begin (the set-up steps may print megabytes here).
 */
export function readToMark(stream: Readable, marker = PROBE_END): Promise<{ text: string; marked: boolean }> {
  const MARK = Buffer.from(`${marker}\n`)
  // The marker as a line of its own: the newline before it is part of what is searched for.
  const LINE_MARK = Buffer.from(`\n${marker}\n`)
  return new Promise((resolve) => {
    const chunks: Buffer[] = []
    // The bytes before the next chunk, and where they begin in the stream: at first a newline at -1,
    // as the stream's first byte starts a line too.
    let before = Buffer.from('\n')
    let beforeAt = -1
    const stop = (): void => {
      stream.off('data', onData)
      stream.off('end', onEnd)
      stream.off('close', onEnd)
    }
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk)
      const window = Buffer.concat([before, chunk])
      const at = window.indexOf(LINE_MARK)
      if (at < 0) {
        before = window.subarray(Math.max(0, window.length - (LINE_MARK.length - 1)))
        beforeAt += window.length - before.length
        return
      }
      stop()
      stream.pause()
      const data = Buffer.concat(chunks)
      const markAt = beforeAt + at + 1
      const rest = data.subarray(markAt + MARK.length)
      if (rest.length > 0) stream.unshift(rest)
      resolve({ text: data.subarray(0, markAt).toString('utf8'), marked: true })
    }
    const onEnd = (): void => {
      stop()
      resolve({ text: Buffer.concat(chunks).toString('utf8'), marked: false })
    }
    stream.on('data', onData)
    stream.on('end', onEnd)
    stream.on('close', onEnd)
    // A stream left paused by an earlier read does not start again for a new 'data' listener.
    stream.resume()
  })
}

/** Runs a held probe (its set-up lines, `input`, on stdin) and returns once its output is complete on both streams. */
export async function holdProbe(transport: Transport, command: string, input: string): Promise<HeldProbe> {
  const proc = await transport.exec(command)
  proc.write(input)
  const [out, err] = await Promise.all([readToMark(proc.stdout), readToMark(proc.stderr)])
  if (out.marked && err.marked) return { stdout: out.text, stderr: err.text, proc }
  // The shell ended (or broke) before waiting for the job: what it printed is the probe's result.
  proc.end()
  proc.stdout.resume()
  proc.stderr.resume()
  return { stdout: out.text, stderr: err.text, status: await proc.done }
}
