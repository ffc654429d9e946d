import { usageError } from '../errors.js'

// Words made only of these characters mean the same to every POSIX shell when left unquoted.
const SAFE_WORD = /^[A-Za-z0-9_@%+=:,./-]+$/

/**
 * Quotes one word for a POSIX shell so that it arrives byte for byte: inside single quotes nothing is
 * special except the single quote itself, which is closed, escaped and reopened. A NUL byte cannot
 * be part of any argv or environment string, so it is refused instead of silently truncated.
 */
export function shellQuote(word: string): string {
  if (word.includes('\0'))
    throw usageError(`argument contains a NUL byte, which no process can receive: ${JSON.stringify(word)}`)
  if (SAFE_WORD.test(word)) return word
  return `'${word.replace(/'/g, `'\\''`)}'`
}

export const shellJoin = (words: readonly string[]): string => words.map(shellQuote).join(' ')

/**
 * Refuses a command line with a NUL byte in any word, before anything is parsed or contacted. Program
 * arguments and environment values are C strings: on a node a NUL would end the word, so the job would
 * get something other than what was given. (A real command line cannot hold one; a caller of
 * parseArgs can.) The word itself is not shown: it may be a credential given with --env.
 */
export function refuseNul(words: readonly string[]): void {
  const i = words.findIndex((w) => w.includes('\0'))
  if (i < 0) return
  const word = words[i] ?? ''
  const before = words[i - 1] ?? ''
  const flag = /^--[^=]+=/.test(word)
    ? word.slice(0, word.indexOf('='))
    : /^-/.test(before) && !before.includes('=')
      ? before
      : undefined
  throw usageError(
    `word ${i + 1} of the command line${flag ? ` (after ${flag})` : ''} contains a NUL byte, which no process can receive: arguments and environment values are C strings, ended by their first NUL`,
  )
}
