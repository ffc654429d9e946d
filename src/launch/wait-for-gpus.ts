import { FanoutError } from '../errors.js'
import { describeBusy, type Gpu, type GpuProcess } from '../plan/gpus.js'
import type { StopReason } from '../supervise/supervisor.js'

/** What holds the GPUs a node's job will use. */
export type Busy = ReadonlyArray<{ gpu: Gpu; process: GpuProcess }>

export interface GpuWait {
  /** The nodes whose GPUs were busy at the probe, with what held them. */
  busy: ReadonlyMap<number, { host: string; busy: Busy }>
  /** Reads a node's GPUs again (a short probe on its connection). */
  query: (rank: number) => Promise<Busy>
  waitS: number
  info: (message: string) => void
  /** Subscribes to the user's stop requests; returns the unsubscribe. */
  onStop: (handler: (reason: StopReason) => void) => () => void
  pollMs?: number
}

const holders = (b: Busy): string => b.map(describeBusy).join('; ')

/**
 * `--wait-for-gpus`: asks the busy nodes again every few seconds until nothing holds their GPUs or the
 * time is up, saying who holds what whenever that changes. Returns what holds them at the end (empty
 * when all are free); a Ctrl-C meanwhile stops the launch (nothing was launched).
 */
export async function waitForGpus(w: GpuWait): Promise<Map<number, Busy>> {
  const pollMs = w.pollMs ?? 5000
  const deadline = Date.now() + w.waitS * 1000
  const started = Date.now()
  const now = new Map<number, Busy>([...w.busy].map(([rank, n]) => [rank, n.busy]))
  const hosts = new Map([...w.busy].map(([rank, n]) => [rank, n.host]))
  let said = ''
  let stopped: StopReason | undefined
  let wake: (() => void) | undefined
  const unsubscribe = w.onStop((reason) => {
    stopped = reason
    wake?.()
  })
  try {
    for (;;) {
      const left = [...now].filter(([, b]) => b.length > 0)
      if (left.length === 0) {
        w.info(`the GPUs are free after ${Math.round((Date.now() - started) / 1000)} s`)
        return now
      }
      const text = left.map(([rank, b]) => `node ${rank} (${hosts.get(rank)}): ${holders(b)}`).join('\n')
      if (text !== said) w.info(`waiting up to ${Math.ceil((deadline - Date.now()) / 1000)} s for busy GPUs:\n${text}`)
      said = text
      if (Date.now() + pollMs > deadline) return now
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, pollMs)
        wake = () => (clearTimeout(timer), resolve())
      })
      if (stopped) throw new FanoutError('stopped while waiting for busy GPUs; nothing was launched', 'INTERRUPTED')
      const again = await Promise.all(left.map(async ([rank]) => [rank, await w.query(rank)] as const))
      for (const [rank, b] of again) now.set(rank, b)
    }
  } finally {
    unsubscribe()
  }
}
