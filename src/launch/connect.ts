/**
 * Opens many connections at once without tripping sshd's MaxStartups (10:30:100 by default: above 10
 * unauthenticated connections it starts dropping new ones at random). Handshakes in flight are capped
 * per target — one sshd, which many node names may share (aliases, a NAT or load balancer address) —
 * so that 128 separate machines still connect all at once; a dropped handshake is retried after a
 * jittered, growing pause. Established sessions are never capped: torchrun needs every node running
 * at the same time.
 */
export interface ConnectPolicy<T = never> {
  /** Handshakes in flight at once to one target. */
  maxInFlight: number
  /** The sshd an item connects to (e.g. "10.0.0.5:22"); items without one share a single cap. */
  targetOf?: (item: T) => string
  retries: number
  /** First retry pause in ms; doubles each time, with full jitter. */
  backoffMs: number
  isRetryable: (err: unknown) => boolean
  sleep?: (ms: number) => Promise<void>
  random?: () => number
}

/** One target's handshakes in flight, and the callers waiting for a slot. */
interface Gate {
  inFlight: number
  waiting: Array<() => void>
}

async function acquire(gate: Gate, max: number): Promise<void> {
  if (gate.inFlight < max) {
    gate.inFlight++
    return
  }
  await new Promise<void>((resolve) => gate.waiting.push(resolve))
}

// The slot passes straight to the next waiter, so inFlight never exceeds the cap.
function release(gate: Gate): void {
  const next = gate.waiting.shift()
  if (next) next()
  else gate.inFlight--
}

const defaultSleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/**
 * Wraps `connect` so that calls share one cap on handshakes in flight and retry dropped handshakes.
 * Callers may start every call at once; the wrapper queues them.
 */
export function limitHandshakes<T, C>(
  connect: (item: T) => Promise<C>,
  policy: ConnectPolicy<T>,
): (item: T) => Promise<C> {
  const sleep = policy.sleep ?? defaultSleep
  const random = policy.random ?? Math.random
  const targetOf = policy.targetOf ?? ((): string => '')
  const gates = new Map<string, Gate>()
  return async (item: T): Promise<C> => {
    const key = targetOf(item)
    const gate = gates.get(key) ?? (gates.set(key, { inFlight: 0, waiting: [] }).get(key) as Gate)
    for (let tryNo = 0; ; tryNo++) {
      await acquire(gate, policy.maxInFlight)
      try {
        return await connect(item)
      } catch (err) {
        if (tryNo >= policy.retries || !policy.isRetryable(err)) throw err
      } finally {
        release(gate)
      }
      await sleep(random() * policy.backoffMs * 2 ** tryNo)
    }
  }
}
