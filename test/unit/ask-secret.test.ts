import { describe, expect, it } from 'vitest'
import { askSecret, type SecretTerminal } from '../../src/cli/ask-secret.js'
import { FanoutError } from '../../src/errors.js'

/** A terminal that records, in order, what the prompt did to it, and lets the test type. */
function fakeTerminal(): {
  terminal: SecretTerminal
  events: string[]
  type: (bytes: Buffer | string) => void
  listeners: () => number
} {
  const events: string[] = []
  const handlers = new Set<(chunk: Buffer) => void>()
  const terminal: SecretTerminal = {
    input: {
      setRawMode: (raw) => events.push(`raw ${raw}`),
      resume: () => events.push('resume'),
      pause: () => events.push('pause'),
      on: (_event, listener) => handlers.add(listener),
      off: (_event, listener) => handlers.delete(listener),
    },
    output: { write: (text) => events.push(`write ${JSON.stringify(text)}`) },
  }
  const type = (bytes: Buffer | string): void => [...handlers].forEach((h) => h(Buffer.from(bytes)))
  return { terminal, events, type, listeners: () => handlers.size }
}

describe('askSecret', () => {
  it('turns echo off before it shows the prompt, and restores the terminal after the answer', async () => {
    const { terminal, events, type, listeners } = fakeTerminal()
    const answer = askSecret('Password: ', terminal)
    // An answer typed the instant the prompt appears must find echo already off.
    expect(events).toEqual(['raw true', 'resume', 'write "Password: "'])
    type('hunter2\r')
    await expect(answer).resolves.toBe('hunter2')
    expect(events.slice(3)).toEqual(['raw false', 'pause', 'write "\\n"'])
    expect(events.join(' ')).not.toContain('hunter2')
    expect(listeners()).toBe(0)
  })

  it.each([
    ['one chunk, CR', ['secret\r'], 'secret'],
    ['LF ends it too', ['secret\n'], 'secret'],
    ['key by key', ['s', 'e', 'c', '\r'], 'sec'],
    ['backspace (DEL) removes a character', ['secx\u007fret\r'], 'secret'],
    ['backspace (^H) removes a character', ['secx\bret\r'], 'secret'],
    ['backspace removes a whole non-ASCII character', ['pé\u007fe\r'], 'pe'],
    ['backspace on an empty answer is harmless', ['\u007f\u007fok\r'], 'ok'],
    ['an empty answer', ['\r'], ''],
    ['spaces and quotes kept', ['correct horse \'x\' "y"\r'], 'correct horse \'x\' "y"'],
    ['Ctrl-D after some input is just a character', ['ab\u0004\r'], 'ab\u0004'],
    ['what follows the Enter is not read', ['first\rsecond\r'], 'first'],
  ])('%s', async (_name, keys, expected) => {
    const { terminal, type } = fakeTerminal()
    const answer = askSecret('? ', terminal)
    for (const k of keys) type(k)
    await expect(answer).resolves.toBe(expected)
  })

  it('a character whose UTF-8 bytes arrive in two reads is one character', async () => {
    const { terminal, type } = fakeTerminal()
    const answer = askSecret('? ', terminal)
    const bytes = Buffer.from('ü€\r')
    type(bytes.subarray(0, 1))
    type(bytes.subarray(1, 4))
    type(bytes.subarray(4))
    await expect(answer).resolves.toBe('ü€')
  })

  it.each([
    ['Ctrl-C', 'abc\u0003', 'INTERRUPTED', 130, 'interrupted at the prompt'],
    ['Ctrl-D on an empty answer', '\u0004', 'USAGE', 2, 'no input at the prompt (end of file)'],
  ])('%s refuses (code %s) and restores the terminal', async (_name, keys, code, exitCode, message) => {
    const { terminal, events, type, listeners } = fakeTerminal()
    const answer = askSecret('? ', terminal)
    type(keys)
    const error = await answer.then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(error).toBeInstanceOf(FanoutError)
    expect(error).toMatchObject({ code, exitCode, message })
    expect(events.slice(-3)).toEqual(['raw false', 'pause', 'write "\\n"'])
    expect(listeners()).toBe(0)
  })
})
