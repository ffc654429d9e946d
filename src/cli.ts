import { Chalk, type ChalkInstance } from 'chalk'
import { parseArgs, type Options } from './args.js'
import { FanoutError } from './errors.js'
import type { StopReason } from './supervisor.js'

/** NO_COLOR / FORCE_COLOR / --color, deciding per stream (a pipe gets no escape codes). */
function colourFor(stream: NodeJS.WriteStream, choice: Options['color'], env: NodeJS.ProcessEnv): ChalkInstance {
  if (choice === 'never') return new Chalk({ level: 0 })
  if (choice === 'always') return new Chalk({ level: 1 })
  if (env.NO_COLOR) return new Chalk({ level: 0 })
  if (env.FORCE_COLOR !== undefined) return new Chalk({ level: env.FORCE_COLOR === '0' ? 0 : 1 })
  return new Chalk({ level: stream.isTTY ? 1 : 0 })
}

/** Subscribes to the signals that mean "stop the job": Ctrl-C, SIGTERM, SIGHUP (terminal closed). */
function onStop(handler: (reason: StopReason) => void): () => void {
  const listeners = (['SIGINT', 'SIGTERM', 'SIGHUP'] as const).map((sig) => {
    const listener = (): void => handler(sig.slice(3) as StopReason)
    process.on(sig, listener)
    return [sig, listener] as const
  })
  return () => listeners.forEach(([sig, l]) => process.off(sig, l))
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

/** The entry point: the only place that reads argv, the environment and stdin, and decides the exit code. */
export async function main(argv: string[]): Promise<number> {
  const { stdout, stderr, env } = process
  try {
    const parsed = await parseArgs(argv, process.cwd(), stdout.columns ?? 100, env)
    if (parsed.kind === 'hosts') {
      const { runHostsCommand } = await import('./hosts-command.js')
      return await runHostsCommand(parsed.options, { stdout, stderr, env, readStdin })
    }
    if (parsed.kind !== 'run') {
      stdout.write(parsed.text + '\n')
      return 0
    }
    const { options } = parsed
    const chalk = colourFor(stdout, options.color, env)
    const errChalk = colourFor(stderr, options.color, env)
    const { plainUi, listrUi } = await import('./ui.js')
    const ui = stderr.isTTY && !options.plain ? await listrUi(stderr, errChalk) : plainUi(stderr, errChalk)
    const { runJob } = await import('./run.js')
    return await runJob(options, { stdout, stderr, env, readStdin, chalk, ui, onStop })
  } catch (e) {
    if (e instanceof FanoutError) {
      stderr.write(`fanout: ${e.message.replace(/\n/g, '\nfanout: ')}\n`)
      return e.exitCode
    }
    stderr.write(`fanout: internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`)
    return 1
  }
}
