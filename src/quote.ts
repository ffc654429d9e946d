import { usageError } from './errors.js'

// Words made only of these characters mean the same to every POSIX shell when left unquoted.
const SAFE_WORD = /^[A-Za-z0-9_@%+=:,./-]+$/

/**
 * Quotes one word for a POSIX shell so that it arrives byte for byte: inside single quotes nothing is
 * special except the single quote itself, which is closed, escaped and reopened. A NUL byte cannot
 * be part of any argv or environment string, so it is refused instead of silently truncated.
 */
export function shellQuote(word: string): string {
  if (word.includes('\0')) throw usageError(`argument contains a NUL byte, which no process can receive: ${JSON.stringify(word)}`)
  if (SAFE_WORD.test(word)) return word
  return `'${word.replace(/'/g, `'\\''`)}'`
}

export const shellJoin = (words: readonly string[]): string => words.map(shellQuote).join(' ')
