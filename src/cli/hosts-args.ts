import yargs, { type Argv } from 'yargs'
import type { HostListOptions, ParsedArgs } from './parse.js'
import { usageError } from '../errors.js'
import { PARSER, readHostOptions, runParser, type Env } from './flags.js'

// The flags that name and select the nodes, which `fanout` and `fanout hosts` share, and the parser of
// `fanout hosts` (args.ts parses the launch and hands this command here).

/** `fanout hosts`: print the resolved nodes, connect to nothing. */
export interface HostsOptions extends HostListOptions {
  json: boolean
}

/** The options both commands share: the host list and the selection. */
export function withHostOptions<T>(y: Argv<T>) {
  return y
    .option('hostfile', { alias: 'H', type: 'string', describe: 'file listing the nodes, one per line (node 0 first); - reads stdin', group: 'Nodes:' })
    .option('hosts', { type: 'string', describe: 'the nodes as a list instead of a file: a,b,gpu[01-16]', group: 'Nodes:' })
    .option('include', { type: 'string', describe: 'only these hosts or GPUs: "w0@w1:0,2" (a bare host: all of it)', group: 'Selection:' })
    .option('exclude', { type: 'string', describe: 'all but these hosts or GPUs: "w1:0" (a bare host: all of it)', group: 'Selection:' })
    .option('num-nodes', { type: 'string', describe: 'the first N nodes', group: 'Selection:' })
    .option('num-gpus', { type: 'string', describe: 'the first N GPUs of each node', group: 'Selection:' })
}

function buildHosts(argv: string[], width: number) {
  return withHostOptions(yargs(argv)
    .scriptName('fanout')
    .usage('Usage: $0 hosts [--hostfile FILE | --hosts LIST] [selection] [--json]\n\nPrints the nodes fanout would launch on, in rank order, after host ranges and selection, without connecting to any.')
    .parserConfiguration(PARSER))
    .option('json', { type: 'boolean', default: false, describe: 'a JSON array of {rank, host, user, port, slots, gpus} (null where unknown)', group: 'Output:' })
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
export async function parseHostsCommand(argv: string[], cwd: string, width: number, env: Env): Promise<ParsedArgs> {
  const { a, output } = await runParser((words) => buildHosts(words, width), argv)
  if (a.help) return { kind: 'help', text: output }
  const extra = [...a._.map(String), ...((a['--'] as string[] | undefined) ?? [])]
  if (extra.length > 0) throw usageError(`fanout hosts takes no SCRIPT (got ${JSON.stringify(extra[0])}); to run a script named hosts: fanout [options] -- hosts`)
  return { kind: 'hosts', options: { ...readHostOptions(a, cwd, env), json: Boolean(a.json) } }
}
