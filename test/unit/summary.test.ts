import { describe, it, expect } from 'vitest'
import { Chalk } from 'chalk'
import {
  describeStatus,
  exitCodeOf,
  formatSummary,
  jobExitCode,
  nodeRecord,
  rankList,
} from '../../src/supervise/summary.js'
import type { Failure, NodeResult, StopReason } from '../../src/supervise/supervisor.js'
import type { ExitStatus } from '../../src/transport/types.js'

const exit = (code: number): ExitStatus => ({ code, signal: null })
const signal = (name: string): ExitStatus => ({ code: null, signal: name })
const lost = (why: string): ExitStatus => ({ code: null, signal: null, lost: why })

describe('exitCodeOf', () => {
  it.each<[string, ExitStatus, number]>([
    ['exit 0', exit(0), 0],
    ['exit 1', exit(1), 1],
    ['exit 42', exit(42), 42],
    ['exit 255', exit(255), 255],
    ['signal HUP', signal('HUP'), 129],
    ['signal INT', signal('INT'), 130],
    ['signal ABRT', signal('ABRT'), 134],
    ['signal KILL', signal('KILL'), 137],
    ['signal SEGV', signal('SEGV'), 139],
    ['signal TERM', signal('TERM'), 143],
    ['signal wins over a code', { code: 0, signal: 'TERM' }, 143],
    ['lost', lost('keepalive timeout'), 255],
    ['lost wins over a code', { code: 0, signal: null, lost: 'reset' }, 255],
    ['lost wins over a signal', { code: null, signal: 'KILL', lost: 'reset' }, 255],
    ['no code, no signal', { code: null, signal: null }, 255],
  ])('%s → %i', (_name, status, code) => {
    expect(exitCodeOf(status)).toBe(code)
  })
})

describe('describeStatus', () => {
  it.each<[string, ExitStatus, RegExp]>([
    ['exit 0', exit(0), /^exit 0$/],
    ['exit 3 (no known meaning)', exit(3), /^exit 3$/],
    ['exit 1', exit(1), /^exit 1 \(error\)$/],
    ['exit 127', exit(127), /^exit 127 \(command not found\)$/],
    ['exit 137 mentions out of memory', exit(137), /^exit 137 \(.*out of memory.*\)$/],
    ['exit 143 terminated', exit(143), /^exit 143 \(.*terminated.*\)$/],
    ['exit 130 interrupted', exit(130), /^exit 130 \(.*interrupted.*\)$/],
    ['exit 139 segfault', exit(139), /^exit 139 \(.*segmentation fault.*\)$/],
    ['exit 255 ssh', exit(255), /^exit 255 \(.*ssh.*\)$/],
    ['signal KILL', signal('KILL'), /^signal KILL \(.*out of memory.*\)$/],
    ['signal TERM', signal('TERM'), /^signal TERM \(.*terminated.*\)$/],
    ['signal SEGV', signal('SEGV'), /^signal SEGV \(.*segmentation fault.*\)$/],
    ['signal USR1 (no known meaning)', signal('USR1'), /^signal USR1$/],
    ['lost', lost('keepalive timeout'), /^connection lost: keepalive timeout$/],
  ])('%s', (_name, status, text) => {
    expect(describeStatus(status)).toMatch(text)
  })
})

let clock = 0
function result(rank: number, status: ExitStatus, over: Partial<NodeResult> = {}): NodeResult {
  return {
    rank,
    host: `n${rank}`,
    status,
    startedAt: clock,
    endedAt: (clock += 1500),
    stoppedByFanout: false,
    output: { lines: 0, ranks: new Set<number>(), tail: () => [] },
    ...over,
  }
}

const failure = (rank: number, exitCode: number, over: Partial<Failure> = {}): Failure => ({
  rank,
  host: `n${rank}`,
  exitCode,
  what: `exit ${exitCode}`,
  lastLines: [],
  ...over,
})

describe('jobExitCode', () => {
  const ok = [result(0, exit(0)), result(1, exit(0)), result(2, exit(0))]

  it.each<[StopReason, number]>([
    ['INT', 130],
    ['TERM', 143],
    ['HUP', 129],
    ['TIMEOUT', 124],
  ])('stopped with %s → %i, whatever the nodes did', (reason, code) => {
    expect(jobExitCode(ok, undefined, reason)).toBe(code)
    const failing = [ok[0] as NodeResult, result(1, exit(3))]
    expect(jobExitCode(failing, failure(1, 3), reason)).toBe(code)
  })

  it('all succeed → 0', () => {
    expect(jobExitCode(ok, undefined, undefined)).toBe(0)
    expect(jobExitCode([], undefined, undefined)).toBe(0)
  })

  it.each<[string, ExitStatus]>([
    ['exit 3', exit(3)],
    ['signal KILL', signal('KILL')],
    ['signal SEGV', signal('SEGV')],
    ['lost', lost('reset')],
  ])('the first failure decides: %s', (_name, status) => {
    const code = exitCodeOf(status)
    // The other nodes were stopped by fanout because of it: their codes must not win.
    const results = [
      result(0, signal('TERM'), { stoppedByFanout: true }),
      result(1, exit(1), { stoppedByFanout: true }),
      result(2, status),
    ]
    expect(jobExitCode(results, failure(2, code, { what: describeStatus(status) }), undefined)).toBe(code)
  })

  it('the first failure is a worker that failed before its launcher ended', () => {
    const results = [result(0, signal('TERM'), { stoppedByFanout: true }), result(1, exit(1))]
    expect(jobExitCode(results, failure(1, 139, { what: 'local rank 2 was killed by signal 11' }), undefined)).toBe(139)
  })

  it('without a recorded first failure, the first failed node in rank order decides', () => {
    const results = [result(0, exit(0)), result(1, exit(5)), result(2, signal('KILL'))]
    expect(jobExitCode(results, undefined, undefined)).toBe(5)
    expect(jobExitCode([result(0, exit(0)), result(1, lost('reset'))], undefined, undefined)).toBe(255)
  })
})

describe('formatSummary', () => {
  it('the root cause first, then the table with its row on top', () => {
    const chalk = new Chalk({ level: 0 })
    const results = [result(0, signal('TERM'), { stoppedByFanout: true }), result(1, exit(137)), result(2, exit(0))]
    const out = results[1]?.output
    if (out) out.lines = 3
    const first = failure(1, 137, {
      what: describeStatus(exit(137)),
      lastLines: ['loading', 'epoch 1', 'CUDA out of memory'],
    })
    const text = formatSummary(results, first, chalk, (node) => `${node * 2}-${node * 2 + 1}`)
    const lines = text.split('\n')
    expect(lines.slice(0, 5)).toEqual([
      'first failure: node 1 (n1): exit 137 (killed (SIGKILL; often out of memory))',
      'last lines it printed:',
      '  loading',
      '  epoch 1',
      '  CUDA out of memory',
    ])
    expect(lines[5]).toBe('')
    expect(lines[6]).toMatch(/^node\s+host\s+ranks\s+result\s+duration\s+lines$/)
    expect(lines[7]).toMatch(
      /^n1\s+n1\s+2-3\s+exit 137 \(killed \(SIGKILL; often out of memory\)\) \[root cause\]\s+1\.5 s\s+3$/,
    )
    expect(lines[8]).toMatch(
      /^n0\s+n0\s+0-1\s+signal TERM \(terminated \(SIGTERM\)\) \[stopped by fanout\]\s+1\.5 s\s+0$/,
    )
    expect(lines[9]).toMatch(/^n2\s+n2\s+4-5\s+exit 0\s+1\.5 s\s+0$/)
    expect(text.endsWith('\n')).toBe(true)
  })

  it('no failure: only the table', () => {
    const text = formatSummary([result(0, exit(0))], undefined, new Chalk({ level: 0 }))
    expect(text.split('\n')).toHaveLength(3)
    expect(text).not.toContain('first failure')
  })

  describe('cut to a width', () => {
    const plain = new Chalk({ level: 0 })
    const what =
      'rank 3 raised torch.distributed.DistBackendError: NCCL error in: ../torch/csrc/distributed/c10d/ProcessGroupNCCL.cpp:1970, unhandled system error (run with NCCL_DEBUG=INFO for details)'
    const results = (): NodeResult[] => [
      result(0, exit(1)),
      result(1, signal('TERM'), { stoppedByFanout: true }),
      result(2, exit(0)),
    ]
    const visible = (s: string): string => s.replace(/\x1b\[[0-9;]*m/g, '')
    /** The table's lines, its header first (after the failure block). */
    const table = (text: string): string[] => {
      const lines = text.split('\n').slice(0, -1)
      return lines.slice(lines.findIndex((l) => visible(l).startsWith('node  ')))
    }

    it('every row fits; the result column is cut with a …, its tag kept, the other columns whole', () => {
      const text = formatSummary(results(), failure(0, 1, { what, lastLines: ['a', 'b'] }), plain, () => '0-3', {
        width: 80,
      })
      const rows = table(text)
      expect(rows).toHaveLength(4)
      for (const row of rows) expect(row.length).toBeLessThanOrEqual(80)
      expect(Math.max(...rows.map((r) => r.length))).toBe(80) // cut to the width, not shorter
      expect(rows[0]).toMatch(/^node\s+host\s+ranks\s+result\s+duration\s+lines$/)
      // 80 columns less 26 for the other columns and 10 for the spaces between: 44 for the result
      expect(rows[1]).toBe('n0    n0    0-3    rank 3 raised torch.distribute… [root cause]  1.5 s     0')
      expect(rows[2]).toBe('n1    n1    0-3    signal TERM (terminated… [stopped by fanout]  1.5 s     0')
      expect(rows[3]).toMatch(/^n2\s+n2\s+0-3\s+exit 0\s+1\.5 s\s+0$/)
    })

    it('the failure block above keeps the whole message, and the log (no width) the whole table', () => {
      const first = failure(0, 1, { what, lastLines: ['a', 'b'] })
      const cut = formatSummary(results(), first, plain, () => '0-3', { width: 80 })
      expect(cut.split('\n')[0]).toBe(`first failure: node 0 (n0): ${what}`)
      const whole = formatSummary(results(), first, plain, () => '0-3')
      expect(whole).toBe(formatSummary(results(), first, plain, () => '0-3', {}))
      expect(table(whole)[1]).toContain(`${what} [root cause]`)
      expect(table(whole)[1]!.length).toBeGreaterThan(200)
    })

    it('a table that fits is left as it is', () => {
      const first = failure(0, 1, { what: 'exit 1 (error)' })
      expect(formatSummary(results(), first, plain, () => '0-3', { width: 200 })).toBe(
        formatSummary(results(), first, plain, () => '0-3'),
      )
    })

    it('counts visible columns: the colours of failed rows do not take room', () => {
      const text = formatSummary(results(), failure(0, 1, { what }), new Chalk({ level: 1 }), () => '0-3', {
        width: 70,
      })
      const rows = table(text)
      expect(rows[1]).toContain('\x1b[')
      for (const row of rows) expect(visible(row).length).toBeLessThanOrEqual(70)
      expect(visible(rows[1]!)).toContain('…')
    })

    it('long host names stay whole: the result column gets what they leave, at least its header', () => {
      const host = 'gpu-node-with-a-rather-long-name-0001.cluster.example.org'
      const many = results().map((r) => ({ ...r, host }))
      const rows = table(formatSummary(many, failure(0, 1, { what }), plain, () => '0-3', { width: 80 }))
      for (const row of rows.slice(1)) expect(row).toContain(host)
      // 4 + 57 + 5 + 8 + 5 and 10 spaces leave nothing: the result column keeps 6 characters (its
      // header's), too few for the tag as well; the blank before the cut is not kept before the …
      expect(rows[1]).toMatch(/^n0\s+\S+\s+0-3\s+rank…\s+1\.5 s\s+0$/)
      expect(rows[3]).toMatch(/\s+exit 0\s+1\.5 s\s+0$/)
    })
  })
})

describe('rankList', () => {
  it.each<[number[], string]>([
    [[], '-'],
    [[0], '0'],
    [[0, 1, 2, 3], '0-3'],
    [[3, 0, 1, 8, 9, 5], '0-1,3,5,8-9'],
    [[2, 2, 3], '2-3'],
  ])('%j → %s', (ranks, text) => expect(rankList(ranks)).toBe(text))
})

describe('nodeRecord', () => {
  it('what summary.json and --json say about a node', () => {
    const r = {
      rank: 1,
      host: 'h2',
      status: { code: null, signal: 'KILL' as const, lost: undefined },
      startedAt: Date.UTC(2026, 0, 1),
      endedAt: Date.UTC(2026, 0, 1) + 2500,
      stoppedByFanout: true,
      output: { lines: 7, ranks: new Set([2, 3]), tail: () => [] },
    }
    expect(nodeRecord(r as NodeResult, '2-3')).toEqual({
      node: 1,
      host: 'h2',
      ranks: '2-3',
      exit_code: 137,
      launcher_exit_code: 137,
      signal: 'KILL',
      lost: null,
      result: 'signal KILL (killed (SIGKILL; often out of memory))',
      started_at: '2026-01-01T00:00:00.000Z',
      ended_at: '2026-01-01T00:00:02.500Z',
      duration_s: 2.5,
      lines: 7,
      stopped_by_fanout: true,
      root_cause: false,
    })
    // The root cause's record says what failed there; its launcher's own end is kept beside it.
    expect(
      nodeRecord(r as NodeResult, '2-3', {
        rank: 1,
        host: 'h2',
        exitCode: 3,
        what: 'local rank 0 exited with code 3',
        lastLines: [],
      }),
    ).toMatchObject({
      exit_code: 3,
      launcher_exit_code: 137,
      result: 'local rank 0 exited with code 3',
      root_cause: true,
    })
  })
})

describe('nodeRecord over srun', () => {
  it('what SLURM said beyond the exit code is in the result and in its own field', () => {
    const said = [
      'srun: error: h2: task 0: Exited with exit code 1',
      'slurmstepd: error: *** STEP 9.1 ON h2 CANCELLED AT 2026-12-06T23:00:00 ***',
    ]
    const r = {
      rank: 1,
      host: 'h2',
      status: { code: 1, signal: null, said },
      startedAt: 0,
      endedAt: 1000,
      stoppedByFanout: false,
      output: { lines: 0, ranks: new Set<number>(), tail: () => [] },
    }
    expect(nodeRecord(r as NodeResult, '-')).toMatchObject({
      result: 'exit 1 (error); slurmstepd: error: *** STEP 9.1 ON h2 CANCELLED AT 2026-12-06T23:00:00 ***',
      slurm: [said[1]],
    })
    expect(nodeRecord({ ...r, status: { code: 0, signal: null } } as NodeResult, '-')).not.toHaveProperty('slurm')
  })
})

describe('formatAttempts', () => {
  it('one line per attempt, with the root cause of each failure', async () => {
    const { formatAttempts } = await import('../../src/supervise/summary.js')
    const failure = { rank: 1, host: 'h2', exitCode: 5, what: 'local rank 0 exited with code 5', lastLines: [] }
    expect(formatAttempts([{ exitCode: 5, failure }, { exitCode: 0 }])).toBe(
      'attempts:\n  attempt 1: failed, exit 5 (first failure: node 1 (h2): local rank 0 exited with code 5)\n  attempt 2: succeeded\n',
    )
  })
})
