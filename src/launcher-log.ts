/**
 * What torchrun's own log says about its workers. torchrun does not exit when a worker fails: with
 * no restarts left it waits in an "exit barrier" for every other node (up to 5 minutes), and those
 * nodes wait in rendezvous or a collective for the ranks that died. So the first sign of a failed
 * node is this line on its stderr, not its exit:
 *   torch 1.x: ERROR:torch.distributed.elastic.multiprocessing.api:failed (exitcode: 3) local_rank: 0 (pid: 1234) of binary: /usr/bin/python3
 *   torch 2.x: E1127 10:00:00.000000 1234 torch/distributed/elastic/multiprocessing/api.py:869] failed (exitcode: 3) local_rank: 0 (pid: 1234) of binary: /usr/bin/python3
 */
const WORKER_FAILED = /failed \(exitcode: (-?\d+)\) local_rank: (\d+) \(pid: \d+\) of binary/
const NEEDLE = Buffer.from('failed (exitcode: ')

export interface WorkerFailure {
  localRank: number
  /** The worker's exit code; a negative value is a signal number (Python's convention). */
  exitCode: number
}

/** Watches a launcher's stderr, chunk by chunk, for its report of a failed worker. */
export class WorkerFailureScanner {
  private carry = ''

  push(chunk: Buffer): WorkerFailure | undefined {
    // Fast path: most chunks cannot contain the line, and a line split across chunks is caught by carry.
    if (this.carry === '' && chunk.indexOf(NEEDLE) === -1) {
      const nl = chunk.lastIndexOf(0x0a)
      this.carry = chunk.subarray(nl + 1).toString('utf8').slice(-200)
      return undefined
    }
    const text = this.carry + chunk.toString('utf8')
    const nl = text.lastIndexOf('\n')
    this.carry = text.slice(nl + 1).slice(-200)
    const m = WORKER_FAILED.exec(nl === -1 ? '' : text.slice(0, nl))
    return m ? { exitCode: Number(m[1]), localRank: Number(m[2]) } : undefined
  }
}
