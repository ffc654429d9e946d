import type { Argv } from 'yargs'
import { usageError } from '../../errors.js'
import type { TeardownOptions } from '../../launch/options.js'
import { optionalDuration, parseDuration } from '../parser.js'

// The Teardown flags: how the job is watched and stopped (supervise/).

export function withTeardownOptions<T>(y: Argv<T>) {
  return y
    .option('kill-on-failure', {
      type: 'boolean',
      default: true,
      describe: 'stop every node when one fails (--no-kill-on-failure: let the others run)',
      group: 'Teardown:',
    })
    .option('grace', {
      type: 'string',
      default: '10',
      describe:
        'time between SIGINT/SIGTERM and SIGKILL when stopping nodes (a torchrun agent whose workers are gone: 2 s)',
      group: 'Teardown:',
    })
    .option('timeout', {
      type: 'string',
      describe: 'end the whole job after this long (exit code 124), e.g. 2h',
      group: 'Teardown:',
    })
    .option('heartbeat-timeout', {
      type: 'string',
      default: '15',
      describe: 'a node stops its job after this long without hearing from fanout',
      group: 'Teardown:',
    })
}

/** The Teardown flags, and --rdzv-timeout (declared with the rendezvous, watched by the supervisor). */
export function readTeardownOptions(a: Record<string, unknown>): TeardownOptions {
  const teardown: TeardownOptions = {
    killOnFailure: a['kill-on-failure'] !== false,
    graceS: parseDuration('grace', a.grace),
    heartbeatTimeoutS: Math.ceil(parseDuration('heartbeat-timeout', a['heartbeat-timeout'])),
    rdzvTimeoutS: parseDuration('rdzv-timeout', a['rdzv-timeout']),
  }
  if (teardown.heartbeatTimeoutS < 2)
    throw usageError('--heartbeat-timeout must be at least 2 s (heartbeats are sent every second)')
  const timeout = optionalDuration('timeout', a.timeout)
  if (timeout !== undefined) teardown.timeoutS = timeout
  return teardown
}
