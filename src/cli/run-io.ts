import type { ChalkInstance } from 'chalk'
import type { RunIo } from '../launch/io.js'
import type { LiveRegion } from '../output/live.js'
import type { Ui } from '../output/ui.js'
import { askSecret } from './ask-secret.js'
import type { CliIo } from './command.js'

/**
 * What a launch, or a command that reaches a detached run, is handed: the process's streams and
 * signals (CliIo), with the status UI and colours the command chose. Secrets are asked on the terminal
 * only when `canAsk` (stdin is one, and not the host list's source).
 */
export function runIoOf(
  io: CliIo,
  parts: { chalk: ChalkInstance; ui: Ui; live?: LiveRegion; canAsk: boolean; onStacks?: RunIo['onStacks'] },
): RunIo {
  const terminal = { input: io.stdin, output: io.stderr }
  return {
    stdout: io.stdout,
    stderr: io.stderr,
    env: io.env,
    readStdin: io.readStdin,
    chalk: parts.chalk,
    ui: parts.ui,
    onStop: io.onStop,
    ...(parts.onStacks ? { onStacks: parts.onStacks } : {}),
    ...(parts.canAsk ? { askSecret: (prompt: string) => askSecret(prompt, terminal) } : {}),
    ...(parts.live ? { live: parts.live } : {}),
  }
}
