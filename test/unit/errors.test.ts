import { describe, it, expect } from 'vitest'
import { quote } from '../../src/errors.js'

describe('quote: input shown in a message', () => {
  it.each([
    ['h1', '"h1"'],
    ['a\0b\x1b', '"a\\u0000b\\u001b"'],
    ['', '""'],
  ])('%j → %s', (value, quoted) => {
    expect(quote(value)).toBe(quoted)
  })

  it('a long value is cut at 80 characters and says how long it was', () => {
    expect(quote('x'.repeat(5_000_000))).toBe(`"${'x'.repeat(80)}"… (5000000 characters)`)
  })

  it('the cut does not split a character made of two UTF-16 units', () => {
    expect(quote('🙂'.repeat(100))).toBe(`"${'🙂'.repeat(80)}"… (200 characters)`)
  })
})
