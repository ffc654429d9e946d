import { expect } from 'vitest'
import { FanoutError } from '../../src/errors.js'

/** Runs f and returns the FanoutError it throws (or rejects with), checking its code when given. */
export async function refusal(f: () => unknown, code?: FanoutError['code']): Promise<FanoutError> {
  try {
    await f()
  } catch (e) {
    expect(e).toBeInstanceOf(FanoutError)
    if (code) expect((e as FanoutError).code).toBe(code)
    if (code) expect((e as FanoutError).exitCode).toBe(code === 'PROBE' ? 1 : 2)
    return e as FanoutError
  }
  throw new Error('expected a FanoutError, nothing was thrown')
}
