import type { Argv } from 'yargs'
import { usageError } from '../../errors.js'
import { parseIndexList, type OutputOptions } from '../../output/options.js'
import { checkPrefixFormat } from '../../output/prefix.js'
import { text } from '../parser.js'

// The Output flags: how the job's lines are shown and kept (output/).

export function withOutputOptions<T>(y: Argv<T>) {
  return y
    .option('prefix', {
      type: 'string',
      describe:
        'line prefix with {host} {node} {rank} {local_rank} (default "[n{node} {host} r{rank}]"); --no-prefix: none',
      group: 'Output:',
    })
    .option('timestamps', {
      type: 'boolean',
      default: false,
      describe: 'start each line with the time it arrived',
      group: 'Output:',
    })
    .option('only', {
      type: 'string',
      describe: 'show only these global ranks, e.g. 0 or 0,4-7 (the log files still get every line)',
      group: 'Output:',
    })
    .option('only-node', {
      type: 'string',
      describe: 'show only these nodes: node ranks or hosts, e.g. 0,2-3 or gpu01',
      group: 'Output:',
    })
    .option('quiet', {
      alias: 'q',
      type: 'boolean',
      default: false,
      describe: "show only fanout's own status and failures, not the job's output",
      group: 'Output:',
    })
    .option('log-dir', {
      type: 'string',
      describe: "keep every line, fanout's messages and summary.json in DIR/<run-id>/ (0700)",
      group: 'Output:',
    })
    .option('json', {
      type: 'boolean',
      default: false,
      describe: 'newline-delimited JSON events on stdout (line, node-state, exit, summary)',
      group: 'Output:',
    })
    .option('rank-tags', {
      type: 'boolean',
      default: true,
      describe: "tag each worker's output with its rank (--no-rank-tags: torchrun's shared streams, per node)",
      group: 'Output:',
    })
    .option('color', {
      type: 'string',
      choices: ['auto', 'always', 'never'],
      default: 'auto',
      describe: 'colour output (NO_COLOR and FORCE_COLOR are honoured with auto)',
      group: 'Output:',
    })
    .option('plain', {
      type: 'boolean',
      default: false,
      describe: 'plain status lines instead of the animated task list and progress rows',
      group: 'Output:',
    })
}

export function readOutputOptions(a: Record<string, unknown>): OutputOptions {
  const options: OutputOptions = {
    color: (a.color as OutputOptions['color']) ?? 'auto',
    plain: a.plain === true,
    timestamps: a.timestamps === true,
    quiet: a.quiet === true,
    json: a.json === true,
    rankTags: a['rank-tags'] !== false,
  }
  if (a.prefix === false) options.prefix = false
  else if (a.prefix !== undefined) options.prefix = checkPrefixFormat(text('prefix', a.prefix) ?? '')
  const only = text('only', a.only)
  if (only !== undefined) options.onlyRanks = parseIndexList('only', only)
  const onlyNode = text('only-node', a['only-node'])
  if (onlyNode !== undefined) options.onlyNodes = onlyNode.split(',').map((s) => s.trim())
  if (options.onlyNodes?.some((s) => s === ''))
    throw usageError(`--only-node: empty item in ${JSON.stringify(onlyNode)}`)
  const logDir = text('log-dir', a['log-dir'])
  if (logDir !== undefined) options.logDir = logDir
  if (options.quiet && (only !== undefined || onlyNode !== undefined))
    throw usageError('--quiet shows no job output: it cannot be combined with --only or --only-node')
  if (options.json && typeof options.prefix === 'string')
    throw usageError('--prefix has no effect with --json (each event names its node and rank)')
  return options
}
