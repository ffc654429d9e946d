import { describe, expect, it } from 'vitest'
import { PassThrough } from 'node:stream'
import { CONTROL } from '../../src/remote.js'
import { NodeOutput } from '../../src/output/node-output.js'
import { Supervisor, type Job } from '../../src/supervisor.js'
import type { ExitStatus, RemoteProcess, Transport } from '../../src/transport/types.js'

/** A node's launcher that fanout drives through control bytes; `onControl` plays the node's side. */
class FakeLauncher implements RemoteProcess {
  readonly stdout = new PassThrough()
  readonly stderr = new PassThrough()
  readonly controls: string[] = []
  readonly done: Promise<ExitStatus>
  onControl: (byte: string) => void = () => {}
  private settle!: (s: ExitStatus) => void

  constructor() {
    this.done = new Promise((resolve) => (this.settle = resolve))
  }

  write(data: string): void {
    if (data === CONTROL.heartbeat) return
    this.controls.push(data)
    this.onControl(data)
  }

  end(): void {}

  exit(code: number): void {
    this.stdout.end()
    this.stderr.end()
    this.settle({ code, signal: null })
  }
}

const transport = { kind: 'ssh', onLost: () => {}, close: () => {} } as unknown as Transport

function supervise(procs: FakeLauncher[]): { supervisor: Supervisor; log: string[] } {
  const log: string[] = []
  const jobs: Job[] = procs.map((proc, rank) => ({ rank, host: `h${rank + 1}`, proc, transport }))
  const sink = { write: () => true, onDrain: () => {} }
  const supervisor = new Supervisor(jobs, {
    output: (job, onStderrLine) => new NodeOutput(job.rank, job.host, [sink], { tagged: false, now: Date.now, onStderrLine }),
    heartbeatMs: 1000,
    graceMs: 5000,
    killOnFailure: true,
    log: (m) => log.push(m),
  })
  return { supervisor, log }
}

const tick = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 5))

describe('Supervisor: the root cause of a failed job', () => {
  it('a node whose rank raised, stopped before torchrun reported the worker, is still the root cause, told by its exception', async () => {
    const [peer, raiser] = [new FakeLauncher(), new FakeLauncher()]
    const { supervisor, log } = supervise([peer, raiser])
    raiser.stdout.write('step 3\n')
    raiser.stderr.write('Traceback (most recent call last):\n  File "train.py", line 9\nRuntimeError: rank 3 blew up\n')
    // Stopped by fanout while torchrun waits for its other worker: teardown noise, then exit 1.
    raiser.onControl = (c) => {
      if (c !== CONTROL.terminate) return
      raiser.stderr.write('Traceback (most recent call last):\nSignalException: Process 7 got signal: 15\n')
      setTimeout(() => raiser.exit(1), 5)
    }
    await tick()
    // The peer's torchrun reports first: its worker lost its peers.
    peer.onControl = (c) => c === CONTROL.terminate && peer.exit(1)
    peer.stderr.write('RuntimeError: Connection closed by peer\nERROR:api:failed (exitcode: 1) local_rank: 0 (pid: 9) of binary: /usr/bin/python3\n')
    await tick()
    expect(log).toEqual(['node 0 (h1) failed: local rank 0 exited with code 1; stopping all 2 running node(s)'])
    expect(raiser.controls).toEqual([CONTROL.terminate])
    await supervisor.results
    const root = supervisor.firstFailure
    expect(root).toMatchObject({ rank: 1, host: 'h2', exitCode: 1, what: 'exit 1 (error) after its output showed RuntimeError: rank 3 blew up' })
    expect(root?.lastLines.at(-1)).toBe('RuntimeError: rank 3 blew up')
    expect(root?.lastLines).not.toContain('SignalException: Process 7 got signal: 15')
  })

  /** Node a prints `aSays` on stderr and exits 1; node b reacts to fanout's stop with `bOnStop`. */
  async function rootCauseOf(aSays: string, bOnStop: (b: FakeLauncher) => void): Promise<Supervisor['firstFailure']> {
    const [a, b] = [new FakeLauncher(), new FakeLauncher()]
    const { supervisor } = supervise([a, b])
    b.onControl = () => bOnStop(b)
    a.stderr.write(aSays)
    await tick()
    a.exit(1)
    await supervisor.results
    return supervisor.firstFailure
  }

  it('a node that said nothing beats one that only lost its peers (a machine gone quiet is the likelier cause)', async () => {
    const root = await rootCauseOf('RuntimeError: Connection reset by peer\n', (b) => b.exit(143))
    expect(root).toMatchObject({ rank: 1, what: 'exit 143 (terminated (SIGTERM))' })
  })

  it('an exception raised after fanout began stopping counts as no more than that', async () => {
    const root = await rootCauseOf('ValueError: bad shape\n', (b) => {
      b.stderr.write('ValueError: cleanup went wrong\n')
      setTimeout(() => b.exit(1), 5)
    })
    expect(root).toMatchObject({ rank: 0, what: 'exit 1 (error) after its output showed ValueError: bad shape' })
  })

  it('torchrun\'s own report of the worker wins over the exit that follows it', async () => {
    const [a] = [new FakeLauncher()]
    const { supervisor } = supervise([a])
    a.stderr.write('ValueError: bad shape\nE1127 10:00:00.000000 1 api.py:869] failed (exitcode: 3) local_rank: 1 (pid: 5) of binary: x\n')
    await tick()
    a.exit(1)
    await supervisor.results
    expect(supervisor.firstFailure).toMatchObject({ rank: 0, exitCode: 3, what: 'local rank 1 exited with code 3', lastLines: ['ValueError: bad shape'] })
  })
})
