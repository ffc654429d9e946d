// `fanout --help` cold start next to Node's own floor (`node -e 0`), medians of many runs; and, where
// this environment sets NODE_EXTRA_CA_CERTS (which every tool runs without: see env.mjs), `node -e
// 0` with it, which is what it adds to every Node start.
import { join } from 'node:path'
import { compare, timed } from './measure.mjs'
import { ROOT } from './tools.mjs'

export async function startup(runs, log) {
  log(`start-up: ${runs} runs each`)
  // The terminal width is unknown (stdout is /dev/null): the help is the 100-column one.
  const r = await compare(
    {
      'fanout --help': () => timed([process.execPath, '--', join(ROOT, 'bin/fanout.js'), '--help']),
      'node -e 0': () => timed([process.execPath, '-e', '0']),
      ...(process.env.NODE_EXTRA_CA_CERTS
        ? { 'node -e 0 with NODE_EXTRA_CA_CERTS': () => timed([process.execPath, '-e', '0'], { env: process.env }) }
        : {}),
    },
    runs,
    () => {},
  )
  for (const [k, v] of Object.entries(r))
    log(`  ${k}: ${(v.wall * 1000).toFixed(0)} ms wall, ${(v.cpu * 1000).toFixed(0)} ms CPU`)
  return r
}
