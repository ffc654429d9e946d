import { describe, expect, it } from 'vitest'
import { PassThrough } from 'node:stream'
import { CONTROL } from '../../src/node/job.js'
import { NodeOutput } from '../../src/output/node-output.js'
import { Supervisor, type Job, type SuperviseOptions } from '../../src/supervise/supervisor.js'
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

function supervise(
  procs: FakeLauncher[],
  more: Partial<SuperviseOptions> = {},
  tagged = false,
): { supervisor: Supervisor; log: string[] } {
  const log: string[] = []
  const jobs: Job[] = procs.map((proc, rank) => ({ rank, host: `h${rank + 1}`, proc, transport }))
  const sink = { write: () => true, onDrain: () => {} }
  const supervisor = new Supervisor(jobs, {
    output: (job, hooks) => new NodeOutput(job.rank, job.host, [sink], { tagged, now: Date.now, ...hooks }),
    heartbeatMs: 1000,
    graceMs: 5000,
    killOnFailure: true,
    log: (m) => log.push(m),
    ...more,
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
    peer.stderr.write(
      'RuntimeError: Connection closed by peer\nERROR:api:failed (exitcode: 1) local_rank: 0 (pid: 9) of binary: /usr/bin/python3\n',
    )
    await tick()
    expect(log).toEqual(['node 0 (h1) failed: local rank 0 exited with code 1; stopping all 2 running node(s)'])
    expect(raiser.controls).toEqual([CONTROL.terminate])
    await supervisor.results
    const root = supervisor.firstFailure
    expect(root).toMatchObject({
      rank: 1,
      host: 'h2',
      exitCode: 1,
      what: 'exit 1 (error) after its output showed RuntimeError: rank 3 blew up',
    })
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

  it("torchrun's own report of the worker wins over the exit that follows it", async () => {
    const [a] = [new FakeLauncher()]
    const { supervisor } = supervise([a])
    a.stderr.write(
      'ValueError: bad shape\nE1127 10:00:00.000000 1 api.py:869] failed (exitcode: 3) local_rank: 1 (pid: 5) of binary: x\n',
    )
    await tick()
    a.exit(1)
    await supervisor.results
    expect(supervisor.firstFailure).toMatchObject({
      rank: 0,
      exitCode: 3,
      what: 'local rank 1 exited with code 3 after its output showed ValueError: bad shape',
      lastLines: ['ValueError: bad shape'],
    })
  })

  it("torch 2's long tracebacks: the lines up to the rank's own exception are shown, not its peers' that pushed them out", async () => {
    const [a] = [new FakeLauncher()]
    const { supervisor } = supervise([a], {}, true)
    const frame = (rank: number, text: string): string =>
      `\x1eF${rank},${rank - 2}:${Buffer.byteLength(text)}\x1f${text}`
    a.stderr.write(
      frame(
        3,
        '[rank3]: Traceback (most recent call last):\n[rank3]:   File "forever.py", line 20\n[rank3]: RuntimeError: rank 3 blew up\n',
      ),
    )
    await tick()
    const peer =
      Array.from({ length: 12 }, (_, i) => `[rank2]:     frame ${i}\n`).join('') +
      '[rank2]: RuntimeError: Connection closed by peer [10.0.0.2]:1\n'
    a.stderr.write(
      frame(2, peer) + 'E1206 1 api.py:869] failed (exitcode: 1) local_rank: 1 (pid: 9) of binary: /usr/bin/python3\n',
    )
    await tick()
    a.exit(1)
    await supervisor.results
    expect(supervisor.firstFailure).toMatchObject({
      rank: 0,
      exitCode: 1,
      what: 'local rank 1 exited with code 1 after rank 3 raised RuntimeError: rank 3 blew up',
    })
    expect(supervisor.firstFailure?.lastLines.at(-1)).toBe('[r3] [rank3]: RuntimeError: rank 3 blew up')
  })
})

describe('Supervisor: where it is stuck', () => {
  /** Each launcher exits 143 once stopped (T); `starts` of them say a worker started (the tagger's start frame). */
  function launchers(n: number, starts: number[]): FakeLauncher[] {
    const procs = Array.from({ length: n }, () => new FakeLauncher())
    procs.forEach((p, rank) => {
      p.onControl = (c) => c === CONTROL.terminate && p.exit(143)
      if (starts.includes(rank)) p.stdout.write(`\x1eS${rank * 2},0:0\x1f\x1eF${rank * 2},0:6\x1fstep1\n`)
    })
    return procs
  }

  it('--timeout: the workers are asked for their stacks first, and stopped stacksMs later', async () => {
    const procs = launchers(2, [0, 1])
    const { supervisor, log } = supervise(procs, { timeoutMs: 20, stacksMs: 150 }, true)
    await new Promise((r) => setTimeout(r, 60))
    expect(procs.map((p) => p.controls)).toEqual([[CONTROL.stacks], [CONTROL.stacks]])
    expect(log).toEqual(['timeout: the Python stack of every thread of every rank follows'])
    await supervisor.results
    expect(procs.map((p) => p.controls)).toEqual([
      [CONTROL.stacks, CONTROL.terminate],
      [CONTROL.stacks, CONTROL.terminate],
    ])
    expect(log[1]).toMatch(/^timeout: sending SIGTERM to 2 node\(s\)/)
    expect(supervisor.stopReason).toBe('TIMEOUT')
  })

  it('stacks on demand (SIGQUIT) stop nothing; without the tagger there are none, and it says why', async () => {
    const procs = launchers(1, [0])
    const { supervisor, log } = supervise(procs, { stacksMs: 100 }, true)
    expect(supervisor.dumpStacks('SIGQUIT')).toBe(true)
    expect(procs[0]?.controls).toEqual([CONTROL.stacks])
    procs[0]?.exit(0)
    await supervisor.results
    const bare = launchers(1, [])
    const plain = supervise(bare)
    expect(plain.supervisor.dumpStacks('SIGQUIT')).toBe(false)
    expect(plain.log).toEqual([
      'SIGQUIT: no stacks to show (they need the rank tagger: not with --no-rank-tags or --launcher none)',
    ])
    expect(bare[0]?.controls).toEqual([])
    bare[0]?.exit(0)
    await plain.supervisor.results
    expect(log).toEqual(['SIGQUIT: the Python stack of every thread of every rank follows'])
  })

  it('--rdzv-timeout: a node whose workers never started is the failure (exit 124), after the started ones showed their stacks', async () => {
    const procs = launchers(3, [0, 2])
    procs[1]?.stderr.write('waiting for the data volume\n')
    const { supervisor, log } = supervise(procs, { rendezvousTimeoutMs: 30, stacksMs: 50 }, true)
    await supervisor.results
    expect(supervisor.firstFailure).toMatchObject({
      rank: 1,
      host: 'h2',
      exitCode: 124,
      lastLines: ['waiting for the data volume'],
    })
    expect(supervisor.firstFailure?.what).toBe(
      'its workers had not started 0 s after the launch: the rendezvous did not complete (node(s) 0, 2 started theirs)',
    )
    expect(procs.map((p) => p.controls)).toEqual([
      [CONTROL.stacks, CONTROL.terminate],
      [CONTROL.stacks, CONTROL.terminate],
      [CONTROL.stacks, CONTROL.terminate],
    ])
    expect(log[0]).toMatch(
      /^rendezvous incomplete after 0 s \(--rdzv-timeout\): node 1 \(h2\) held it up; node\(s\) 0, 2 started theirs$/,
    )
  })

  it('--rdzv-timeout with no worker started anywhere: the store tells which node never joined; no stacks to wait for', async () => {
    const procs = launchers(3, [])
    const describeRendezvous = async (): Promise<{ text: string; missing: number[] }> => ({
      text: 'connected to the store: node(s) 0, 1; not connected: node(s) 2',
      missing: [2],
    })
    const { supervisor } = supervise(procs, { rendezvousTimeoutMs: 20, stacksMs: 5000, describeRendezvous }, true)
    await supervisor.results
    expect(supervisor.firstFailure).toMatchObject({ rank: 2, exitCode: 124 })
    expect(supervisor.firstFailure?.what).toContain(
      'no node has started its workers; connected to the store: node(s) 0, 1; not connected: node(s) 2',
    )
    expect(procs.map((p) => p.controls)).toEqual([[CONTROL.terminate], [CONTROL.terminate], [CONTROL.terminate]])
  })

  it('--rdzv-timeout: every node started in time, nothing happens', async () => {
    const procs = launchers(2, [0, 1])
    const { supervisor, log } = supervise(procs, { rendezvousTimeoutMs: 20, stacksMs: 50 }, true)
    await new Promise((r) => setTimeout(r, 60))
    expect(procs.map((p) => p.controls)).toEqual([[], []])
    procs.forEach((p) => p.exit(0))
    await supervisor.results
    expect([supervisor.firstFailure, log]).toEqual([undefined, []])
  })
})

describe("Supervisor: torchrun's own restarts (--max-restarts)", () => {
  const REPORT = 'E1206 1 api.py:869] failed (exitcode: 1) local_rank: 0 (pid: 5) of binary: /usr/bin/python3\n'

  it('a failure torchrun will restart is told, not acted on; the one after the last restart fails the node', async () => {
    const [a, b] = [new FakeLauncher(), new FakeLauncher()]
    b.onControl = (c) => c === CONTROL.terminate && b.exit(143)
    const { supervisor, log } = supervise([a, b], { workerRestarts: 1 })
    a.stderr.write(REPORT)
    await tick()
    expect(log).toEqual([
      'node 0 (h1): local rank 0 exited with code 1; torchrun restarts its workers (restart 1 of 1, --max-restarts)',
    ])
    expect(b.controls).toEqual([])
    a.stderr.write(REPORT)
    await tick()
    expect(log[1]).toBe('node 0 (h1) failed: local rank 0 exited with code 1; stopping all 2 running node(s)')
    expect(b.controls).toEqual([CONTROL.terminate])
    a.exit(1)
    await supervisor.results
    expect(supervisor.firstFailure).toMatchObject({ rank: 0, exitCode: 1, what: 'local rank 0 exited with code 1' })
  })

  it('restarts left, and the node ends well: no failure at all', async () => {
    const [a] = [new FakeLauncher()]
    const { supervisor } = supervise([a], { workerRestarts: 2 })
    a.stderr.write(REPORT)
    await tick()
    a.exit(0)
    await supervisor.results
    expect(supervisor.firstFailure).toBeUndefined()
  })
})
