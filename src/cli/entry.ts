import { fastOutput } from './fast-help.js'

/**
 * What bin/fanout.js runs: `--help` and `--version` from the texts rendered at build time when they
 * are exactly what the CLI would print (fast-help.ts), without loading yargs; anything else the CLI
 * (cli-loader.ts: the bundle the build made, compiled from its code cache).
 */
export async function start(argv: string[], stdout: NodeJS.WriteStream, env: NodeJS.ProcessEnv): Promise<number> {
  const text = fastOutput(argv, stdout.columns, env)
  if (text === undefined) return (await (await import('./loader.js')).loadCli()).main(argv)
  stdout.write(text)
  return 0
}
