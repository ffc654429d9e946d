import yargs from 'yargs'
import { usageError } from '../../errors.js'
import type { HostEntry } from '../../hosts/hostfile.js'
import { resolveHostList, type HostListOptions, type SourceIo } from '../../hosts/hostsource.js'
import { alignColumns } from '../../output/table.js'
import type { Command, ParseContext, Parsed } from '../command.js'
import { readHostOptions, withHostOptions } from '../options/hosts.js'
import { PARSER, runParser } from '../parser.js'

// `fanout hosts`: the nodes a launch would use, after host ranges and selection, connecting to none.

/** `fanout hosts`: print the resolved nodes, connect to nothing. */
export interface HostsOptions extends HostListOptions {
  json: boolean
}

function buildHosts(argv: string[], width: number) {
  return withHostOptions(
    yargs(argv)
      .scriptName('fanout')
      .usage(
        'Usage: $0 hosts [--hostfile FILE | --hosts LIST] [selection] [--json]\n\nPrints the nodes fanout would launch on, in rank order, after host ranges and selection, without connecting to any.',
      )
      .parserConfiguration(PARSER),
  )
    .option('json', {
      type: 'boolean',
      default: false,
      describe: 'a JSON array of {rank, host, user, port, slots, gpus} (null where unknown)',
      group: 'Output:',
    })
    .example([
      ["$0 hosts --hosts 'gpu[01-04]'", 'gpu01 to gpu04, as a table'],
      ['$0 hosts -H hosts.txt --exclude b:0 --json', 'what --exclude leaves, as JSON'],
    ])
    .help('help')
    .alias('help', 'h')
    .version(false)
    .strict()
    .wrap(Math.min(width, 110))
    .exitProcess(false)
}

/** `fanout hosts …`: recognised only as the first word, so that `fanout -H f hosts` still runs a script. */
async function parseHosts(argv: string[], { cwd, width, env }: ParseContext): Promise<Parsed<HostsOptions>> {
  const { a, output } = await runParser((words) => buildHosts(words, width), argv)
  if (a.help) return { kind: 'help', text: output }
  const extra = [...a._.map(String), ...((a['--'] as string[] | undefined) ?? [])]
  if (extra.length > 0)
    throw usageError(
      `fanout hosts takes no SCRIPT (got ${JSON.stringify(extra[0])}); to run a script named hosts: fanout [options] -- hosts`,
    )
  return { kind: 'options', options: { ...readHostOptions(a, cwd, env), json: Boolean(a.json) } }
}

/**
 * One node as `fanout hosts --json` prints it: a stable format for scripts. null means "not in the
 * host list": the ssh config decides user and port, the GPU probe decides slots, and a node without
 * `gpus` keeps the GPUs it sees (no CUDA_VISIBLE_DEVICES from fanout).
 */
export interface HostRow {
  rank: number
  host: string
  user: string | null
  port: number | null
  /** Processes on the node, when known without probing. */
  slots: number | null
  /** GPU indices chosen by the selection: the node's CUDA_VISIBLE_DEVICES. */
  gpus: number[] | null
}

export const hostRows = (hosts: readonly HostEntry[]): HostRow[] =>
  hosts.map((h, rank) => ({
    rank,
    host: h.host,
    user: h.user ?? null,
    port: h.port ?? null,
    slots: h.slots ?? null,
    gpus: h.gpus ?? null,
  }))

/** The JSON array, or a table with `-` where a value is unknown. */
export function formatHosts(hosts: readonly HostEntry[], json: boolean): string {
  const rows = hostRows(hosts)
  if (json) return JSON.stringify(rows, null, 2) + '\n'
  const cell = (v: string | number | number[] | null): string => (v === null ? '-' : String(v))
  const table = rows.map((r) => [r.rank, r.host, r.user, r.port, r.slots, r.gpus].map(cell))
  return alignColumns([['rank', 'host', 'user', 'port', 'slots', 'gpus'], ...table]).join('\n') + '\n'
}

/** `fanout hosts`: resolves the host list and the selection, prints it, connects to nothing. */
export async function runHostsCommand(
  options: HostsOptions,
  io: SourceIo & { stdout: NodeJS.WritableStream; stderr: NodeJS.WritableStream },
): Promise<number> {
  const { hosts, warnings } = await resolveHostList(options, io)
  for (const w of warnings) io.stderr.write(`fanout: warning: ${w}\n`)
  io.stdout.write(formatHosts(hosts, options.json))
  return 0
}

export const hostsCommand: Command<HostsOptions> = { name: 'hosts', parse: parseHosts, run: runHostsCommand }
