/**
 * The one error type fanout raises on purpose. `code` says which stage refused, and decides the exit
 * status: bad input is 2 (nothing was contacted), connection-level failures are 255 like ssh(1).
 */
export type ErrorCode =
  | 'USAGE' // a flag or argument is wrong
  | 'HOSTFILE' // the host list is wrong
  | 'CONNECT' // a node could not be reached (DNS, refused, timeout)
  | 'HOSTKEY' // a node's host key is unknown, changed or revoked
  | 'AUTH' // a node refused every credential
  | 'PROBE' // a node's facts could not be learned (no address, no free port)
  | 'PREFLIGHT' // a node cannot run the job (no python, no torch, no such directory or script, port taken)
  | 'INTERRUPTED' // the user pressed Ctrl-C at a prompt

const EXIT_CODES: Record<ErrorCode, number> = {
  USAGE: 2,
  HOSTFILE: 2,
  CONNECT: 255,
  HOSTKEY: 255,
  AUTH: 255,
  PROBE: 1,
  PREFLIGHT: 2,
  INTERRUPTED: 130,
}

export class FanoutError extends Error {
  override readonly name = 'FanoutError'
  readonly exitCode: number

  constructor(
    message: string,
    readonly code: ErrorCode,
  ) {
    super(message)
    this.exitCode = EXIT_CODES[code]
  }
}

export const usageError = (message: string): FanoutError => new FanoutError(message, 'USAGE')

/** Why a file could not be read, in a message's words: `no such file`, `permission denied`, … */
export function unreadable(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code
  if (code === 'ENOENT') return 'no such file'
  if (code === 'EACCES') return 'permission denied'
  if (code === 'EISDIR') return 'is a directory'
  return (e as Error).message
}

/** Longest quoted input a message shows: a garbage line or a pasted file must not flood the terminal. */
const MAX_QUOTED = 80

/** `value` quoted for a message (JSON, so control characters and NUL are visible), cut at MAX_QUOTED. */
export function quote(value: string): string {
  if (value.length <= MAX_QUOTED) return JSON.stringify(value)
  const cut = [...value.slice(0, MAX_QUOTED * 2)].slice(0, MAX_QUOTED).join('')
  return `${JSON.stringify(cut)}… (${value.length} characters)`
}
