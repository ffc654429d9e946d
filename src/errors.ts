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

const EXIT_CODES: Record<ErrorCode, number> = {
  USAGE: 2,
  HOSTFILE: 2,
  CONNECT: 255,
  HOSTKEY: 255,
  AUTH: 255,
  PROBE: 1,
  PREFLIGHT: 2,
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
