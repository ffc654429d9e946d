import { describe, it, expect } from 'vitest'
import { limitHandshakes, type ConnectPolicy } from '../../src/launch/connect.js'

class Dropped extends Error {
  readonly retryable = true
}
class Refused extends Error {
  readonly retryable = false
}

const isRetryable = (err: unknown): boolean => err instanceof Dropped

const tick = (ms = 0): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** A fake connect that records how many calls are in flight at once. */
function gauge<T>(body: (item: T, attempt: number) => Promise<string>) {
  const stats = { inFlight: 0, max: 0, calls: 0, attempts: new Map<T, number>() }
  const connect = async (item: T): Promise<string> => {
    stats.calls++
    const attempt = (stats.attempts.get(item) ?? 0) + 1
    stats.attempts.set(item, attempt)
    stats.inFlight++
    stats.max = Math.max(stats.max, stats.inFlight)
    try {
      return await body(item, attempt)
    } finally {
      stats.inFlight--
    }
  }
  return { connect, stats }
}

const policy = <T = never>(over: Partial<ConnectPolicy<T>> = {}): ConnectPolicy<T> => ({
  maxInFlight: 8,
  retries: 3,
  backoffMs: 100,
  isRetryable,
  sleep: async () => {},
  random: () => 1,
  ...over,
})

describe('limitHandshakes: the cap', () => {
  it.each<[number, number]>([
    [50, 8],
    [50, 1],
    [7, 8],
    [100, 10],
    [8, 8],
  ])('%i items, max %i in flight', async (items, maxInFlight) => {
    const { connect, stats } = gauge<number>(async (i) => {
      await tick(i % 3)
      return `c${i}`
    })
    const limited = limitHandshakes(connect, policy({ maxInFlight }))
    const results = await Promise.all(Array.from({ length: items }, (_, i) => limited(i)))
    expect(results).toEqual(Array.from({ length: items }, (_, i) => `c${i}`))
    expect(stats.max).toBe(Math.min(items, maxInFlight))
    expect(stats.calls).toBe(items)
    expect(stats.inFlight).toBe(0)
  })

  it('never more than the cap while handshakes fail and are retried', async () => {
    const { connect, stats } = gauge<number>(async (i, attempt) => {
      await tick(1)
      if (attempt <= i % 3) throw new Dropped(`drop ${i}`)
      return `c${i}`
    })
    const limited = limitHandshakes(connect, policy({ maxInFlight: 8, retries: 5, sleep: () => tick(1) }))
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => limited(i)))
    expect(results).toHaveLength(50)
    expect(stats.max).toBeLessThanOrEqual(8)
    expect(stats.calls).toBe(50 + Array.from({ length: 50 }, (_, i) => i % 3).reduce((a, b) => a + b, 0))
  })

  it('failed handshakes give their slot back (no deadlock)', async () => {
    const { connect, stats } = gauge<number>(async () => {
      await tick()
      throw new Refused('refused')
    })
    const limited = limitHandshakes(connect, policy({ maxInFlight: 2 }))
    const settled = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => limited(i)))
    expect(settled.every((s) => s.status === 'rejected')).toBe(true)
    expect(stats.max).toBe(2)
    // and the wrapper still works afterwards
    const ok = limitHandshakes(async (i: number) => i * 2, policy({ maxInFlight: 1 }))
    expect(await ok(21)).toBe(42)
  })

  it('a slot is free while a dropped handshake waits to retry', async () => {
    const order: string[] = []
    let releaseSleep: () => void = () => {}
    const sleep = (): Promise<void> => new Promise((r) => (releaseSleep = r))
    const limited = limitHandshakes(
      async (item: string) => {
        order.push(item)
        if (item === 'a' && order.filter((x) => x === 'a').length === 1) throw new Dropped('drop')
        return item
      },
      policy({ maxInFlight: 1, sleep }),
    )
    const a = limited('a')
    await tick(5)
    const b = limited('b')
    expect(await b).toBe('b')
    expect(order).toEqual(['a', 'b'])
    releaseSleep()
    expect(await a).toBe('a')
    expect(order).toEqual(['a', 'b', 'a'])
  })
})

describe('limitHandshakes: one cap per target', () => {
  // items are "target/node": nodes behind one sshd share its cap, separate sshds do not wait for each other
  it.each<[string, string[], number, Record<string, number>]>([
    [
      '32 machines, one node each: all at once',
      Array.from({ length: 32 }, (_, i) => `m${i}/n`),
      8,
      Object.fromEntries(Array.from({ length: 32 }, (_, i) => [`m${i}`, 1])),
    ],
    [
      '128 nodes behind one sshd: 8 at a time',
      Array.from({ length: 128 }, (_, i) => `bastion/n${i}`),
      8,
      { bastion: 8 },
    ],
    [
      'two sshds of 20 nodes, cap 3',
      Array.from({ length: 40 }, (_, i) => `${i % 2 ? 'a' : 'b'}/n${i}`),
      3,
      { a: 3, b: 3 },
    ],
    ['mixed: one crowded target, two lone ones', ['x/1', 'x/2', 'x/3', 'x/4', 'y/1', 'z/1'], 2, { x: 2, y: 1, z: 1 }],
  ])('%s', async (_name, items, maxInFlight, expected) => {
    const inFlight = new Map<string, number>()
    const peak = new Map<string, number>()
    let total = 0
    let totalPeak = 0
    const limited = limitHandshakes(
      async (item: string) => {
        const target = item.split('/')[0] as string
        inFlight.set(target, (inFlight.get(target) ?? 0) + 1)
        peak.set(target, Math.max(peak.get(target) ?? 0, inFlight.get(target) ?? 0))
        totalPeak = Math.max(totalPeak, ++total)
        await tick(1)
        inFlight.set(target, (inFlight.get(target) ?? 0) - 1)
        total--
        return item
      },
      policy<string>({ maxInFlight, targetOf: (item) => item.split('/')[0] as string }),
    )
    expect(await Promise.all(items.map((i) => limited(i)))).toEqual(items)
    expect(Object.fromEntries(peak)).toEqual(expected)
    expect(totalPeak).toBe(Object.values(expected).reduce((a, b) => a + b, 0))
  })

  it('a target whose handshakes wait does not hold up another target', async () => {
    const started: string[] = []
    const gates: Array<() => void> = []
    const limited = limitHandshakes(
      async (item: string) => {
        started.push(item)
        if (item.startsWith('slow')) await new Promise<void>((r) => gates.push(r))
        return item
      },
      policy<string>({ maxInFlight: 1, targetOf: (item) => item.replace(/\d+$/, '') }),
    )
    const slow = [limited('slow1'), limited('slow2')]
    expect(await limited('fast1')).toBe('fast1')
    expect(started).toEqual(['slow1', 'fast1'])
    gates.shift()?.()
    await tick(1)
    gates.shift()?.()
    expect(await Promise.all(slow)).toEqual(['slow1', 'slow2'])
  })
})

describe('limitHandshakes: retries', () => {
  it.each<[string, number, number, 'ok' | 'rejected', number]>([
    // name, retries, times the handshake is dropped, outcome, attempts
    ['succeeds at once', 3, 0, 'ok', 1],
    ['one drop', 3, 1, 'ok', 2],
    ['drops up to the limit', 3, 3, 'ok', 4],
    ['one drop too many', 3, 4, 'rejected', 4],
    ['always dropped', 3, 99, 'rejected', 4],
    ['no retries', 0, 1, 'rejected', 1],
    ['no retries, no drop', 0, 0, 'ok', 1],
    ['many retries', 10, 9, 'ok', 10],
  ])('%s (retries %i, %i drops)', async (_name, retries, drops, outcome, attempts) => {
    const { connect, stats } = gauge<string>(async (_item, attempt) => {
      if (attempt <= drops) throw new Dropped(`drop #${attempt}`)
      return 'session'
    })
    const limited = limitHandshakes(connect, policy({ retries }))
    const result = limited('n1')
    if (outcome === 'ok') await expect(result).resolves.toBe('session')
    else await expect(result).rejects.toThrow(`drop #${attempts}`)
    expect(stats.attempts.get('n1')).toBe(attempts)
  })

  it.each([
    ['a non-retryable error', new Refused('auth failed')],
    ['a plain Error', new Error('boom')],
    ['a thrown string', 'weird'],
  ])('%s is rejected at once, without sleeping', async (_name, error) => {
    const sleeps: number[] = []
    let attempts = 0
    const limited = limitHandshakes(
      async () => {
        attempts++
        throw error
      },
      policy({ retries: 5, sleep: async (ms) => void sleeps.push(ms) }),
    )
    await expect(limited('n1')).rejects.toBe(error)
    expect(attempts).toBe(1)
    expect(sleeps).toEqual([])
  })

  it('a non-retryable error after some drops stops the retries', async () => {
    let attempts = 0
    const limited = limitHandshakes(
      async () => {
        attempts++
        throw attempts < 3 ? new Dropped('drop') : new Refused('denied')
      },
      policy({ retries: 10 }),
    )
    await expect(limited('n1')).rejects.toThrow('denied')
    expect(attempts).toBe(3)
  })
})

describe('limitHandshakes: backoff', () => {
  it.each<[string, number, number, () => number, number[]]>([
    // name, backoffMs, retries, random, the sleeps
    ['random 1: backoffMs * 2^n', 100, 3, () => 1, [100, 200, 400]],
    ['random 1, 250 ms, 5 retries', 250, 5, () => 1, [250, 500, 1000, 2000, 4000]],
    ['random 0.5 halves every pause', 100, 3, () => 0.5, [50, 100, 200]],
    ['random 0: no pause', 100, 2, () => 0, [0, 0]],
    ['no retries: no pause', 100, 0, () => 1, []],
  ])('%s', async (_name, backoffMs, retries, random, expected) => {
    const sleeps: number[] = []
    const limited = limitHandshakes(
      async () => {
        throw new Dropped('drop')
      },
      policy({ backoffMs, retries, random, sleep: async (ms) => void sleeps.push(ms) }),
    )
    await expect(limited('n1')).rejects.toThrow('drop')
    expect(sleeps).toEqual(expected)
  })

  it('jitter is drawn for every pause', async () => {
    const draws = [0.25, 0.75, 1]
    const sleeps: number[] = []
    let attempts = 0
    const limited = limitHandshakes(
      async () => {
        if (++attempts <= 3) throw new Dropped('drop')
        return 'ok'
      },
      policy({
        backoffMs: 1000,
        retries: 3,
        random: () => draws.shift() ?? 0,
        sleep: async (ms) => void sleeps.push(ms),
      }),
    )
    await expect(limited('n1')).resolves.toBe('ok')
    expect(sleeps).toEqual([250, 1500, 4000])
  })

  it('the default sleep really waits', async () => {
    let attempts = 0
    const limited = limitHandshakes(
      async () => {
        if (++attempts === 1) throw new Dropped('drop')
        return 'ok'
      },
      { maxInFlight: 1, retries: 1, backoffMs: 50, isRetryable, random: () => 1 },
    )
    const t0 = Date.now()
    await expect(limited('n1')).resolves.toBe('ok')
    expect(Date.now() - t0).toBeGreaterThanOrEqual(45)
  })
})
