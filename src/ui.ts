import type { Writable } from 'node:stream'
import type { ChalkInstance } from 'chalk'

export interface PhaseItem<T> {
  label: string
  run: () => Promise<T>
}

/** How fanout reports its own progress: an animated task list on a terminal, plain lines elsewhere. */
export interface Ui {
  /** Runs one phase's items concurrently and reports each; never rejects. */
  phase<T>(title: string, items: PhaseItem<T>[]): Promise<PromiseSettledResult<T>[]>
  info(message: string): void
  warn(message: string): void
}

const errorText = (e: unknown): string => (e instanceof Error ? e.message : String(e))
const runItem = async <T>(item: PhaseItem<T>): Promise<PromiseSettledResult<T>> => {
  try {
    return { status: 'fulfilled', value: await item.run() }
  } catch (reason) {
    return { status: 'rejected', reason }
  }
}

/** One line per phase (and one per failure): readable in CI logs, no cursor movement. */
export function plainUi(out: Writable, chalk: ChalkInstance): Ui {
  const info = (m: string): void => void out.write(`${chalk.dim('fanout:')} ${m}\n`)
  return {
    async phase(title, items) {
      const started = Date.now()
      const results = await Promise.all(items.map(runItem))
      const failed = results.filter((r) => r.status === 'rejected').length
      const took = ((Date.now() - started) / 1000).toFixed(2)
      info(`${title}: ${items.length - failed}/${items.length} nodes ok in ${took} s`)
      return results
    },
    info,
    warn: (m) => void out.write(`${chalk.yellow('fanout: warning:')} ${m}\n`),
  }
}

/** listr2's task list, drawn on stderr so that stdout carries only the job's output. */
export async function listrUi(out: NodeJS.WriteStream, chalk: ChalkInstance): Promise<Ui> {
  const { Listr, ListrLogger, ProcessOutput } = await import('listr2')
  const logger = new ListrLogger({ processOutput: new ProcessOutput(out, out), useIcons: true, toStderr: [] })
  const plain = plainUi(out, chalk)
  return {
    async phase(title, items) {
      const results: PromiseSettledResult<(typeof items)[number] extends PhaseItem<infer T> ? T : never>[] = []
      const list = new Listr(
        [
          {
            title,
            task: (_ctx, task) =>
              task.newListr(
                items.map((item, i) => ({
                  title: item.label,
                  task: async () => {
                    const result = await runItem(item)
                    results[i] = result as never
                    if (result.status === 'rejected') throw new Error(errorText(result.reason).split('\n')[0])
                  },
                })),
                { concurrent: true, exitOnError: false },
              ),
          },
        ],
        { exitOnError: false, registerSignalListeners: false, rendererOptions: { logger, collapseSubtasks: items.length > 16 } },
      )
      await list.run().catch(() => {})
      return results as never
    },
    info: plain.info,
    warn: plain.warn,
  }
}
