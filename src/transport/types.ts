import type { Readable } from 'node:stream'
import type { RemoteFs } from '../sync/remote-fs.js'

/** How a remote process ended. `signal` is a name without the SIG prefix (as SSH reports it). */
export interface ExitStatus {
  code: number | null
  signal: string | null
  /** Set when the connection went away before the process reported its end. */
  lost?: string
  /** What the transport itself said about the process's end (srun's and slurmstepd's own lines), kept out of its output. */
  said?: string[]
}

/** A process started on a node: its output streams, its stdin, and its end. */
export interface RemoteProcess {
  stdout: Readable
  stderr: Readable
  write(data: string): void
  /** Closes stdin (EOF), which the job's watchdog reads as "coordinator gone". */
  end(): void
  /** Settles once the process has ended and both output streams are drained. */
  done: Promise<ExitStatus>
}

/**
 * A way to run commands on one node: an SSH connection, a SLURM job step (srun), or the local machine for `localhost`.
 * Commands are POSIX shell command lines, exactly as sshd passes them to the login shell.
 */
export interface Transport {
  readonly kind: 'ssh' | 'local' | 'srun'
  /**
   * The address this connection reached, when it is a TCP connection of its own (not a jump host's
   * channel): what the node's sshd reports as its end of SSH_CONNECTION, unless NAT sits between.
   */
  readonly peerAddress?: string
  exec(command: string): Promise<RemoteProcess>
  /** The node's files (SFTP over the same connection; the file system for the local transport): for --sync. */
  files(): Promise<RemoteFs>
  /** Called once if the connection drops (keepalive timeout, reset) while it is open. */
  onLost(listener: (reason: string) => void): void
  close(): void
}

/** Runs a command to completion, with `input` on its stdin, and collects its output (for short probes, not for jobs). */
export async function capture(
  transport: Transport,
  command: string,
  input?: string,
): Promise<{ stdout: string; stderr: string; status: ExitStatus }> {
  const proc = await transport.exec(command)
  if (input !== undefined) proc.write(input)
  proc.end()
  const out: Buffer[] = []
  const err: Buffer[] = []
  proc.stdout.on('data', (b: Buffer) => out.push(b))
  proc.stderr.on('data', (b: Buffer) => err.push(b))
  const status = await proc.done
  return { stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), status }
}

/** A child process's signal as SSH reports one: the name without SIG (`TERM`), or null. */
export const signalName = (signal: NodeJS.Signals | null): string | null => (signal ? signal.replace(/^SIG/, '') : null)

/** Host names that mean "this machine": they run through a child process, no sshd needed. */
export const LOCAL_HOSTS = new Set(['localhost', '127.0.0.1', '::1'])
