import { FanoutError } from '../errors.js'
import { refuseNul } from '../node/quote.js'
import type { StopReason } from '../supervise/types.js'
import type { CliIo, Command } from './command.js'
import { commandOf } from './dispatch.js'

/** Subscribes to the signals that mean "stop the job": Ctrl-C, SIGTERM, SIGHUP (terminal closed). */
function onStop(handler: (reason: StopReason) => void): () => void {
  const listeners = (['SIGINT', 'SIGTERM', 'SIGHUP'] as const).map((sig) => {
    const listener = (): void => handler(sig.slice(3) as StopReason)
    process.on(sig, listener)
    return [sig, listener] as const
  })
  return () => listeners.forEach(([sig, l]) => process.off(sig, l))
}

/** Subscribes to SIGQUIT (Ctrl-\); while a listener is there, SIGQUIT does not end the process. */
function onQuit(handler: () => void): () => void {
  process.on('SIGQUIT', handler)
  return () => void process.off('SIGQUIT', handler)
}

/** All of stdin (`--hostfile -`), stopping once more than maxBytes came: the caller refuses that. */
async function readStdin(maxBytes: number): Promise<Buffer> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    chunks.push(chunk)
    size += chunk.length
    if (size > maxBytes) break
  }
  return Buffer.concat(chunks)
}

/**
 * The entry point: the only place that reads argv, the environment and stdin, touches the process's
 * signals, and decides the exit code. Each command (cli/commands/) parses its own words and runs.
 */
export async function main(argv: string[]): Promise<number> {
  const { stdout, stderr, env } = process
  try {
    refuseNul(argv) // quote.ts: no word with a NUL can reach a node intact
    const { command, words } = commandOf(argv)
    const cmd = command as Command<unknown>
    const parsed = await cmd.parse(words, { cwd: process.cwd(), width: stdout.columns ?? 100, env })
    if (parsed.kind !== 'options') {
      stdout.write(parsed.text + '\n')
      return 0
    }
    const self = [process.execPath, '--', process.argv[1] ?? 'fanout']
    const io: CliIo = { stdout, stderr, env, stdin: process.stdin, readStdin, onStop, onQuit, self }
    return await cmd.run(parsed.options, io)
  } catch (e) {
    if (e instanceof FanoutError) {
      stderr.write(`fanout: ${e.message.replace(/\n/g, '\nfanout: ')}\n`)
      return e.exitCode
    }
    stderr.write(`fanout: internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`)
    return 1
  }
}
