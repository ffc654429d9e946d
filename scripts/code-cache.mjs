#!/usr/bin/env node
// Build step after bundle.mjs: records V8's code cache for dist/cli/cli.cjs (see src/cli/loader.ts) after
// a launch of `true` on localhost, run here by the bundle itself, so that the cache holds what a start
// compiles: the arguments, the plan, the phases, the supervisor and the output. (ssh2 and the SSH
// transport, which a local launch does not load, are compiled on use: no sshd is needed to build; a
// cache recorded after an SSH launch saved ~10 ms more per start.) The launch runs in a child
// process of this script, with its output thrown away; a launch that fails still leaves a useful cache.
// A cache is valid only for the Node (V8 version and flags) that made it: another Node compiles as if
// there were none.
import { spawnSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const dist = new URL('../dist/cli/', import.meta.url)
const LAUNCH = ['--hosts', 'localhost', '--launcher', 'none', '--plain', '--', 'true']

if (process.argv[2] === '--record') {
  const { cacheHeader, compileCli } = await import('../dist/cli/loader.js')
  const compiled = compileCli(dist)
  if (compiled === undefined) throw new Error('code-cache: no dist/cli/cli.cjs (run scripts/bundle.mjs first)')
  try {
    await compiled.run().main(LAUNCH)
  } catch {
    // what was compiled up to here is still worth keeping
  }
  const cache = compiled.createCache()
  writeFileSync(
    new URL('cli.cjs.cache', dist),
    Buffer.concat([Buffer.from(cacheHeader(compiled.buildId, cache), 'latin1'), cache]),
  )
  process.exit(0) // the launch's handles (signal traps, timers) must not keep the build waiting
} else {
  // Without a cache fanout still works, only starts slower: a build that cannot record one says so
  // and goes on (the e2e test build.test.ts fails where a cache is expected and missing).
  const child = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--record'], {
    stdio: ['ignore', 'ignore', 'pipe'],
    encoding: 'utf8',
    timeout: 60_000,
  })
  if (child.status !== 0) {
    const why = child.error?.message ?? `exit ${child.status}, signal ${child.signal}`
    process.stderr.write(
      `code-cache: no code cache recorded for dist/cli/cli.cjs (${why}); fanout will start without one\n${child.stderr ?? ''}`,
    )
  }
}
