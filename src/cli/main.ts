import { Chalk, type ChalkInstance } from 'chalk'
import { parseArgs, type Options } from './parse.js'
import { askSecret } from './ask-secret.js'
import { FanoutError } from '../errors.js'
import type { StopReason } from '../supervise/supervisor.js'

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

/**
 * SIGQUIT (Ctrl-\): the running job shows where every rank is, without stopping anything (onStacks
 * subscribes it); before or between jobs `noJob` says there is nothing to show. Never fanout's end,
 * SIGQUIT's default, which would leave the nodes' shells waiting. `stop` removes the listener.
 */
function stacksSignal(noJob: () => void): { onStacks: (handler: () => void) => () => void; stop: () => void } {
  let current: (() => void) | undefined
  const listener = (): void => (current ?? noJob)()
  process.on('SIGQUIT', listener)
  return {
    onStacks: (handler) => {
      current = handler
      return () => void (current === handler && (current = undefined))
    },
    stop: () => void process.off('SIGQUIT', listener),
  }
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
    const { plainUi, listrUi } = await import('../output/ui.js')
    const animated = Boolean(stderr.isTTY) && !options.plain && !options.json
    // On a TTY the job's lines scroll above a few live rows (progress bars, status); fanout's own
    // messages go through the same region so that neither garbles the other.
    const live = animated ? new (await import('../output/live.js')).LiveRegion(stderr) : undefined
    const print = (text: string): void => void (live ? live.print(stderr, text) : stderr.write(text))
    const ui = animated ? await listrUi(stderr, errChalk, print) : plainUi(print, errChalk)
    const { runJob } = await import('../launch/run.js')
    try {
      // A prompt needs a terminal on stdin (not one that `--hostfile -` reads).
      const terminal = { input: process.stdin, output: stderr }
      const ask = process.stdin.isTTY && options.hostfile !== '-' ? { askSecret: (prompt: string) => askSecret(prompt, terminal) } : {}
      const stacks = stacksSignal(() => ui.info('SIGQUIT (Ctrl-\\): no job is running now, so there are no stacks to show'))
      try {
        return await runJob(options, { stdout, stderr, env, readStdin, chalk, ui, onStop, onStacks: stacks.onStacks, ...ask, ...(live ? { live } : {}) })
      } finally {
        stacks.stop()
      }
    } finally {
      live?.stop()
    }
  } catch (e) {
    if (e instanceof FanoutError) {
      stderr.write(`fanout: ${e.message.replace(/\n/g, '\nfanout: ')}\n`)
      return e.exitCode
    }
    stderr.write(`fanout: internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`)
    return 1
  }
}
