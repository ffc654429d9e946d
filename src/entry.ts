import { fastOutput } from './fast-help.js'

/**
 * What bin/fanout.js runs: `--help` and `--version` from the texts rendered at build time when they
 * are exactly what the CLI would print (fast-help.ts), without loading yargs; anything else the CLI.
 */
export async function start(argv: string[], stdout: NodeJS.WriteStream, env: NodeJS.ProcessEnv): Promise<number> {
  const text = fastOutput(argv, stdout.columns, env)
  if (text === undefined) return (await import('./cli.js')).main(argv)
  stdout.write(text)
  return 0
}
