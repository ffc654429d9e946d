import type { Writable } from 'node:stream'
import { whenDrained } from './drain.js'
import type { LineSink, OutputLine } from './node-output.js'
import { originKey, type LineOrigin } from './prefix.js'
import { ProgressThrottle } from './terminal.js'

/**
 * `--json`: newline-delimited JSON events on stdout, one object per line, for other programs:
 *   {"event":"start","time":…,"run_id":…,"nodes":[{node,host}]}
 *   {"event":"node-state","time":…,"node":0,"host":"a","state":"connected"|"synced"|"probed"|"launched"}
 *   {"event":"line","time":…,"node":0,"host":"a","rank":1,"local_rank":1,"stream":"stdout","text":"…","progress":true?}
 *   {"event":"exit","time":…,"node":0,"host":"a","exit_code":0,"signal":null,"lost":null,"result":"exit 0",…}
 *   {"event":"summary","time":…,"exit_code":0,"root_cause":null|{…},"nodes":[…]}
 * Text is decoded as UTF-8 (invalid bytes become U+FFFD); the log files keep the exact bytes.
 */
export class JsonEvents {
  constructor(
    private readonly out: Writable,
    private readonly now: () => number = Date.now,
  ) {}

  emit(event: string, fields: Record<string, unknown>, at = this.now()): boolean {
    return this.out.write(this.format(event, fields, at))
  }

  private format(event: string, fields: Record<string, unknown>, at: number): string {
    return JSON.stringify({ event, time: new Date(at).toISOString(), ...fields }) + '\n'
  }

  /** The job's lines as `line` events; progress states at most once a second per process. */
  withFilter(show: (origin: LineOrigin) => boolean): LineSink {
    const throttle = new ProgressThrottle(1000)
    const event = (line: OutputLine): string => {
      if (!show(line) || !throttle.due(originKey(line), line.at, line.kind === 'line')) return ''
      const ranks = line.rank === undefined ? {} : { rank: line.rank, local_rank: line.localRank ?? null }
      const progress = line.kind === 'progress' ? { progress: true } : {}
      return this.format(
        'line',
        {
          node: line.node,
          host: line.host,
          ...ranks,
          stream: line.stream,
          text: line.text.toString('utf8'),
          ...progress,
        },
        line.at,
      )
    }
    const put = (text: string): boolean => text === '' || this.out.write(text)
    return {
      write: (line: OutputLine): boolean => put(event(line)),
      writeBatch: (lines: readonly OutputLine[]): boolean => put(lines.map(event).join('')),
      onDrain: (resume: () => void): void => {
        whenDrained(this.out, resume)
      },
    }
  }
}
