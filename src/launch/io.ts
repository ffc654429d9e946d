import type { ChalkInstance } from 'chalk'
import type { NodeSpec } from '../hosts/nodes.js'
import type { SourceIo } from '../hosts/hostsource.js'
import type { LiveRegion } from '../output/live.js'
import type { Ui } from '../output/ui.js'
import type { StopReason } from '../supervise/types.js'
import type { AskSecret } from '../transport/ssh/credentials.js'
import type { Transport } from '../transport/types.js'

/** What a launch is handed by the command that runs it (cli/commands/run.ts): streams, status, signals. */
export interface RunIo extends SourceIo {
  stdout: NodeJS.WriteStream
  stderr: NodeJS.WriteStream
  env: NodeJS.ProcessEnv
  chalk: ChalkInstance
  ui: Ui
  /** Reads a secret (passphrase, password) from the terminal without echo; absent without a terminal. */
  askSecret?: AskSecret
  /** On a TTY: the rows under the job's output that show progress bars and the job's status. */
  live?: LiveRegion
  /** Subscribes to the user's stop requests (Ctrl-C, SIGTERM, SIGHUP); returns the unsubscribe. */
  onStop: (handler: (reason: StopReason) => void) => () => void
  /** Subscribes to the user's requests for the ranks' stacks (SIGQUIT, Ctrl-\); returns the unsubscribe. */
  onStacks?: (handler: () => void) => () => void
  /** Opens a node's transport instead of SSH or the local transport (tests pass fakes). */
  openTransport?: (node: NodeSpec) => Promise<Transport>
}
