import { Chalk, type ChalkInstance } from 'chalk'
import type { OutputOptions } from '../output/options.js'

/** NO_COLOR / FORCE_COLOR / --color, deciding per stream (a pipe gets no escape codes). */
export function colourFor(
  stream: NodeJS.WriteStream,
  choice: OutputOptions['color'],
  env: NodeJS.ProcessEnv,
): ChalkInstance {
  if (choice === 'never') return new Chalk({ level: 0 })
  if (choice === 'always') return new Chalk({ level: 1 })
  if (env.NO_COLOR) return new Chalk({ level: 0 })
  if (env.FORCE_COLOR !== undefined) return new Chalk({ level: env.FORCE_COLOR === '0' ? 0 : 1 })
  return new Chalk({ level: stream.isTTY ? 1 : 0 })
}
