import type { Argv } from 'yargs'
import type { Command } from '../command.js'
import { buildRunParser } from './run.js'

/**
 * yargs' bash/zsh completion script (zsh when $SHELL is zsh). yargs only prints it through
 * console.log, and parse() does not capture it, so console.log is borrowed for that one call.
 */
function completionScript(parser: Argv<unknown>): string {
  const lines: string[] = []
  const log = console.log
  console.log = (...words: unknown[]) => void lines.push(words.map(String).join(' '))
  try {
    parser.showCompletionScript()
  } finally {
    console.log = log
  }
  return lines.join('\n').trimEnd()
}

/** `fanout completion`: prints the completion script (the launch's flags) and nothing else. */
export const completionCommand: Command<never> = {
  name: 'completion',
  parse: async (_argv, { width }) => ({ kind: 'help', text: completionScript(buildRunParser([], width)) }),
  run: async () => 0,
}
