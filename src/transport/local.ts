import { spawn } from 'node:child_process'
import { signalName, type ExitStatus, type RemoteProcess, type Transport } from './types.js'

/**
 * Runs commands on this machine the way sshd would without a pty: `/bin/sh -c COMMAND` as the leader
 * of a new session (detached), stdin a pipe, stdout and stderr separate. The job wrapper therefore
 * behaves the same locally as remotely, watchdog included.
 */
export function localTransport(): Transport {
  return {
    kind: 'local',
    exec: async (command) => {
      const child = spawn('/bin/sh', ['-c', command], { detached: true, stdio: ['pipe', 'pipe', 'pipe'] })
      // A local job must not keep fanout alive by itself, nor die with fanout's terminal: its
      // watchdog (EOF on stdin) is what ends it when fanout goes away.
      child.stdin.on('error', () => {})
      const done = new Promise<ExitStatus>((resolve) => {
        child.on('error', (e) => resolve({ code: 127, signal: null, lost: e.message }))
        child.on('close', (code, signal) => resolve({ code, signal: signalName(signal) }))
      })
      const proc: RemoteProcess = {
        stdout: child.stdout,
        stderr: child.stderr,
        write: (data) => void (child.stdin.writable && child.stdin.write(data)),
        end: () => child.stdin.end(),
        done,
      }
      return proc
    },
    files: async () => (await import('../sync/local-fs.js')).localFs(),
    onLost: () => {},
    close: () => {},
  }
}
