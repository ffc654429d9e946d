// `fanout --help` cold start next to Node's own floor (`node -e 0`), medians of many runs.
import { join } from 'node:path'
import { compare } from './measure.mjs'
import { ROOT } from './tools.mjs'

export async function startup(runs, log) {
  log(`start-up: ${runs} runs each`)
  // The terminal width is unknown (stdout is /dev/null): the help is the 100-column one.
  const r = await compare({
    'fanout --help': () => import('./measure.mjs').then(({ timed }) => timed([process.execPath, '--', join(ROOT, 'bin/fanout.js'), '--help'])),
    'node -e 0': () => import('./measure.mjs').then(({ timed }) => timed([process.execPath, '-e', '0'])),
  }, runs, () => {})
  for (const [k, v] of Object.entries(r)) log(`  ${k}: ${(v.wall * 1000).toFixed(0)} ms wall, ${(v.cpu * 1000).toFixed(0)} ms CPU`)
  return r
}
