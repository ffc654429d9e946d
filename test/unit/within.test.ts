import { describe, expect, it } from 'vitest'
import { within } from '../../src/launch/within.js'
import { endpoint } from '../../src/plan/endpoint.js'

describe('within: a node that may not answer', () => {
  it('gives what the promise settles to in time, undefined after the time limit', async () => {
    expect(await within(Promise.resolve(7), 50)).toBe(7)
    const started = Date.now()
    expect(await within(new Promise(() => {}), 50)).toBeUndefined()
    expect(Date.now() - started).toBeGreaterThanOrEqual(45)
    await expect(within(Promise.reject(new Error('refused')), 50)).rejects.toThrow('refused')
  })
})

describe('endpoint', () => {
  it.each([
    ['10.0.0.1', '10.0.0.1:29500'],
    ['fd00::1', '[fd00::1]:29500'],
    ['gpu01', 'gpu01:29500'],
  ])('%s', (addr, text) => {
    expect(endpoint(addr, 29500)).toBe(text)
  })
})
