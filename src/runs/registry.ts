import { appendFileSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { unreadable, usageError } from '../errors.js'
import type { HostEntry } from '../hosts/hostfile.js'
import type { PlannedNode } from '../output/job-output.js'
import type { SshConnectOptions } from '../transport/ssh/options.js'

/**
 * The detached runs this machine launched: `$XDG_STATE_HOME/fanout/runs/RUN/` (~/.local/state/...;
 * directories 0700, files 0600). run.json is what it takes to reach the run again without the command
 * line that launched it (the host list as resolved, the SSH settings, the python on the nodes) and to
 * show its output as an attached run would (the planned nodes); ended.json caches the summary of a
 * run that ended (it cannot change any more, so ps asks no node again); nodes/ holds what `fanout
 * logs` fetched, with where each node's fetch stopped.
 */
export interface RunRecord {
  id: string
  started_at: string
  /** The script and its arguments, for ps. */
  command: string[]
  /** The run directory on every node (`~/.fanout/runs/RUN`). */
  dir: string
  python: string
  hosts: HostEntry[]
  /** How the nodes were reached (no password: --ask-password asks again). */
  ssh: SshConnectOptions
  nodes: PlannedNode[]
  tagged: boolean
  staticRanks: boolean
  graceS: number
  heartbeatTimeoutS: number
  logMaxBytes: number
}

/** A run's result as node 0 wrote it (summary.json), once it ended. */
export interface RunSummary {
  run_id: string
  started_at: string
  ended_at: string
  exit_code: number
  /** succeeded, failed, stopped, timed-out */
  state: string
  attempts: number
  /** Each attempt's exit code (--restarts). */
  attempt_results?: Array<{ attempt: number; exit_code: number }>
  root_cause: SummaryNode | null
  nodes: SummaryNode[]
}

/** One node's end in one attempt (the supervisor's record). */
export interface SummaryNode {
  node: number
  host: string
  attempt: number
  ranks: number[]
  lines: number
  started_at: string
  ended_at: string
  stopped_by_fanout: boolean
  last_lines: string[]
  code: number | null
  exit_code: number
  signal: string | null
  lost: string | null
  result: string
  /** This node's failure was its attempt's root cause. */
  root_cause?: boolean
}

/**
 * A node's own directory in the run's (`~/.fanout/runs/RUN/nK`): a home shared by the nodes (NFS, as
 * on many clusters, and on the test cluster) then holds every node's, side by side.
 */
export const nodeRunDir = (runDir: string, rank: number): string => `${runDir}/n${rank}`

const registryDir = (env: NodeJS.ProcessEnv): string =>
  join(env.XDG_STATE_HOME || join(env.HOME || homedir(), '.local', 'state'), 'fanout', 'runs')

const RUN_ID = /^\d{8}-\d{6}-[0-9a-f]{6}$/

export class Registry {
  constructor(readonly dir: string) {}

  static of(env: NodeJS.ProcessEnv): Registry {
    return new Registry(registryDir(env))
  }

  runDir(id: string): string {
    return join(this.dir, id)
  }

  add(record: RunRecord): void {
    try {
      mkdirSync(this.runDir(record.id), { recursive: true, mode: 0o700 })
      this.writeJson(record.id, 'run.json', record)
    } catch (e) {
      throw usageError(
        `cannot record the run in ${this.dir}: ${unreadable(e)} (a detached run is recorded there, for fanout attach, logs, stop and ps; XDG_STATE_HOME moves it)`,
      )
    }
  }

  /** Forgets a run that never started. */
  remove(id: string): void {
    rmSync(this.runDir(id), { recursive: true, force: true })
  }

  /** Every run, newest first. */
  list(): RunRecord[] {
    let names: string[]
    try {
      names = readdirSync(this.dir)
    } catch {
      return []
    }
    return names
      .filter((n) => RUN_ID.test(n))
      .sort()
      .reverse()
      .flatMap((n) => {
        const r = this.readJson<RunRecord>(n, 'run.json')
        return r ? [r] : []
      })
  }

  /** The run an id names: whole, or a prefix of only one (as `ps` shows them); else a usage error. */
  find(id: string): RunRecord {
    const runs = this.list()
    const exact = runs.find((r) => r.id === id)
    if (exact) return exact
    const matches = id === '' ? [] : runs.filter((r) => r.id.startsWith(id))
    if (matches.length === 1) return matches[0] as RunRecord
    if (matches.length > 1)
      throw usageError(
        `run ${JSON.stringify(id)} is ambiguous: it starts ${matches.length} runs (${matches
          .slice(0, 4)
          .map((r) => r.id)
          .join(', ')}${matches.length > 4 ? ', …' : ''}); give more of the id`,
      )
    throw usageError(
      `no run ${JSON.stringify(id)} in ${this.dir}: fanout ps lists the runs this machine launched with --detach`,
    )
  }

  ended(id: string): RunSummary | undefined {
    return this.readJson<RunSummary>(id, 'ended.json')
  }

  markEnded(id: string, summary: RunSummary): void {
    this.writeJson(id, 'ended.json', summary)
  }

  /** Where `fanout logs` keeps a node's fetched output, and where its fetch stopped. */
  nodeLog(id: string, node: number): { file: string; cursor: { seq: number; offset: number } } {
    const dir = join(this.runDir(id), 'nodes')
    const cursor = this.readJson<{ seq: number; offset: number }>(id, join('nodes', `node${node}.cursor.json`))
    return { file: join(dir, `node${node}.log`), cursor: cursor ?? { seq: 0, offset: 0 } }
  }

  /** Appends what a node sent and moves its cursor past it (in that order: a crash between sends it again, never loses it). */
  appendNodeLog(id: string, node: number, data: Buffer, cursor: { seq: number; offset: number }): void {
    mkdirSync(join(this.runDir(id), 'nodes'), { recursive: true, mode: 0o700 })
    const { file } = this.nodeLog(id, node)
    if (data.length > 0) appendFileSync(file, data, { mode: 0o600 })
    this.writeJson(id, join('nodes', `node${node}.cursor.json`), cursor)
  }

  private readJson<T>(id: string, name: string): T | undefined {
    try {
      return JSON.parse(readFileSync(join(this.runDir(id), name), 'utf8')) as T
    } catch {
      return undefined
    }
  }

  private writeJson(id: string, name: string, value: unknown): void {
    const path = join(this.runDir(id), name)
    writeFileSync(`${path}.tmp`, JSON.stringify(value, null, 2) + '\n', { mode: 0o600 })
    renameSync(`${path}.tmp`, path)
  }
}
