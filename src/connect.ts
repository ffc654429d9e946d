/**
 * Opens many connections at once without tripping sshd's MaxStartups (10:30:100 by default: above 10
 * unauthenticated connections it starts dropping new ones at random). Handshakes in flight are capped;
 * a dropped one is retried after a jittered, growing pause. Established sessions are never capped:
 * torchrun needs every node running at the same time.
 */
export interface ConnectPolicy {
  maxInFlight: number
  retries: number
  /** First retry pause in ms; doubles each time, with full jitter. */
  backoffMs: number
  isRetryable: (err: unknown) => boolean
  sleep?: (ms: number) => Promise<void>
  random?: () => number
}

const defaultSleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/**
 * Wraps `connect` so that calls share one cap on handshakes in flight and retry dropped handshakes.
 * Callers may start every call at once; the wrapper queues them.
 */
export function limitHandshakes<T, C>(connect: (item: T) => Promise<C>, policy: ConnectPolicy): (item: T) => Promise<C> {
  const sleep = policy.sleep ?? defaultSleep
  const random = policy.random ?? Math.random
  let inFlight = 0
  const waiting: Array<() => void> = []
  const acquire = async (): Promise<void> => {
    if (inFlight < policy.maxInFlight) {
      inFlight++
      return
    }
    await new Promise<void>((resolve) => waiting.push(resolve))
  }
  // The slot passes straight to the next waiter, so inFlight never exceeds the cap.
  const release = (): void => {
    const next = waiting.shift()
    if (next) next()
    else inFlight--
  }
  return async (item: T): Promise<C> => {
    for (let tryNo = 0; ; tryNo++) {
      await acquire()
      try {
        return await connect(item)
      } catch (err) {
        if (tryNo >= policy.retries || !policy.isRetryable(err)) throw err
      } finally {
        release()
      }
      await sleep(random() * policy.backoffMs * 2 ** tryNo)
    }
  }
}
