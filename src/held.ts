import type { Readable } from 'node:stream'
import { PROBE_END } from './remote-probe.js'
import type { ExitStatus, RemoteProcess, Transport } from './transport/types.js'

/** A node's probe run as the start of its job (heldProbeCommand): what it printed, and the shell now waiting for the job. */
export interface HeldProbe {
  stdout: string
  stderr: string
  /** The node's shell, waiting on stdin for heldJobInput; absent when it ended instead (then `status`). */
  proc?: RemoteProcess
  status?: ExitStatus
}

const MARK = Buffer.from(`${PROBE_END}\n`)

/** Where the marker line starts in `data` (a line of its own), searching from `from`; -1 when it is not there. */
function markAt(data: Buffer, from: number): number {
  for (let at = data.indexOf(MARK, from); at >= 0; at = data.indexOf(MARK, at + 1)) {
    if (at === 0 || data[at - 1] === 0x0a) return at
  }
  return -1
}

/**
 * Reads `stream` up to the marker line, then leaves it paused with anything after the marker put back,
 * for the job's output to read from there (NodeOutput.pipe resumes it). Ends without the marker when
 * the stream ends first.
 */
function readToMark(stream: Readable): Promise<{ text: string; marked: boolean }> {
  return new Promise((resolve) => {
    let data = Buffer.alloc(0)
    const stop = (): void => {
      stream.off('data', onData)
      stream.off('end', onEnd)
      stream.off('close', onEnd)
    }
    const onData = (chunk: Buffer): void => {
      const searched = Math.max(0, data.length - MARK.length)
      data = Buffer.concat([data, chunk])
      const at = markAt(data, searched)
      if (at < 0) return
      stop()
      stream.pause()
      const rest = data.subarray(at + MARK.length)
      if (rest.length > 0) stream.unshift(rest)
      resolve({ text: data.subarray(0, at).toString('utf8'), marked: true })
    }
    const onEnd = (): void => {
      stop()
      resolve({ text: data.toString('utf8'), marked: false })
    }
    stream.on('data', onData)
    stream.on('end', onEnd)
    stream.on('close', onEnd)
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
