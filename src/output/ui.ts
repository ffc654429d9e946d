import type { ChalkInstance } from 'chalk'

export interface PhaseItem<T> {
  label: string
  /** The node this item is about: its state is reported (--json node-state) when the item succeeds. */
  node?: { rank: number; host: string }
  /** `progress` updates the item's line while it runs (a TTY shows it; plain output does not). */
  run: (progress: (detail: string) => void) => Promise<T>
  /** The item's one-line result, printed per item (also on plain output). */
  result?: (value: T) => string
}

/** How fanout reports its own progress: an animated task list on a terminal, plain lines elsewhere. */
export interface Ui {
  /** Runs one phase's items concurrently and reports each; never rejects. `state`: what a node that succeeded now is. */
  phase<T>(title: string, items: PhaseItem<T>[], state?: string): Promise<PromiseSettledResult<T>[]>
  info(message: string): void
  warn(message: string): void
}

const errorText = (e: unknown): string => (e instanceof Error ? e.message : String(e))
const runItem = async <T>(
  item: PhaseItem<T>,
  progress: (detail: string) => void = () => {},
): Promise<PromiseSettledResult<T>> => {
  try {
    return { status: 'fulfilled', value: await item.run(progress) }
  } catch (reason) {
    return { status: 'rejected', reason }
  }
}

const phaseLine = (title: string, ok: number, all: number, ms: number): string =>
  `${title}: ${ok}/${all} nodes ok in ${(ms / 1000).toFixed(2)} s`

/**
 * One line per phase (and one per failure): readable in CI logs, no cursor movement. `print` writes
 * a line of fanout's own (on a TTY, above the live region, so that neither garbles the other).
 */
export function plainUi(print: (text: string) => void, chalk: ChalkInstance): Ui {
  const info = (m: string): void => print(`${chalk.dim('fanout:')} ${m}\n`)
  return {
    async phase(title, items) {
      const started = Date.now()
      const results = await Promise.all(items.map((item) => runItem(item)))
      info(phaseLine(title, results.filter((r) => r.status === 'fulfilled').length, items.length, Date.now() - started))
      results.forEach((r, i) => {
        const item = items[i]
        if (r.status === 'fulfilled' && item?.result) info(`${title} ${item.label}: ${item.result(r.value)}`)
      })
      return results
    },
    info,
    warn: (m) => print(`${chalk.yellow('fanout: warning:')} ${m}\n`),
  }
}

/** listr2's task list, drawn on stderr so that stdout carries only the job's output. */
export async function listrUi(
  out: NodeJS.WriteStream,
  chalk: ChalkInstance,
  print: (text: string) => void,
): Promise<Ui> {
  const { Listr, ListrLogger, ProcessOutput } = await import('listr2')
  const logger = new ListrLogger({ processOutput: new ProcessOutput(out, out), useIcons: true, toStderr: [] })
  const plain = plainUi(print, chalk)
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
                  task: async (_c, task) => {
                    const result = await runItem(item, (detail) => void (task.title = `${item.label}: ${detail}`))
                    results[i] = result as never
                    if (result.status === 'rejected') throw new Error(errorText(result.reason).split('\n')[0])
                    task.title = item.result ? `${item.label}: ${item.result(result.value)}` : item.label
                  },
                })),
                { concurrent: true, exitOnError: false },
              ),
          },
        ],
        {
          exitOnError: false,
          registerSignalListeners: false,
          rendererOptions: { logger, collapseSubtasks: items.length > 16 },
        },
      )
      await list.run().catch(() => {})
      return results as never
    },
    info: plain.info,
    warn: plain.warn,
  }
}

export interface UiReport {
  /** A line for fanout.log (--log-dir). */
  record?: (line: string) => void
  /** A node reached a state (--json node-state events). */
  nodeState?: (node: { rank: number; host: string }, state: string) => void
}

/** The same Ui, also telling fanout.log and --json what happened. */
export function reportingUi(ui: Ui, report: UiReport): Ui {
  return {
    async phase(title, items, state) {
      const started = Date.now()
      const results = await ui.phase(title, items, state)
      report.record?.(
        phaseLine(title, results.filter((r) => r.status === 'fulfilled').length, items.length, Date.now() - started),
      )
      results.forEach((r, i) => {
        const node = items[i]?.node
        if (r.status === 'rejected') report.record?.(`${title}: ${items[i]?.label ?? ''}: ${errorText(r.reason)}`)
        else if (node && state) report.nodeState?.(node, state)
      })
      return results
    },
    info: (m) => (report.record?.(m), ui.info(m)),
    warn: (m) => (report.record?.(`warning: ${m}`), ui.warn(m)),
  }
}
