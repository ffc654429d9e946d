import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { expect, it } from 'vitest'
import { clusterArgs, describeCluster, startFanout } from './cluster.js'

/**
 * The build as bin/fanout.js runs it: the CLI is one CommonJS bundle (scripts/bundle.mjs) compiled
 * from the V8 code cache the build recorded (scripts/code-cache.mjs, src/cli-loader.ts), and ssh2's
 * native parts, outside the bundle, still load: without its binding ssh2 falls back to slower
 * JavaScript ciphers without a word.
 */

const DIST = new URL('../../dist/cli/', import.meta.url)

it('the built CLI is compiled from the code cache its build recorded, by the Node running it', () => {
  const script = `import { compileCli } from ${JSON.stringify(new URL('loader.js', DIST).href)}; console.log(compileCli(new URL(${JSON.stringify(DIST.href)})).cache)`
  expect(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' }).trim()).toBe(
    'used',
  )
  expect(readFileSync(new URL('cli.cjs', DIST), 'latin1')).toMatch(/^\/\*fanout-build:[0-9a-f]{32}\*\/\n/)
})

describeCluster('the bundle over SSH', () => {
  it("loads ssh2's native crypto binding and cpu-features from node_modules", async () => {
    const run = startFanout([
      ...clusterArgs(),
      '--hosts',
      'h1',
      '--launcher',
      'none',
      '--',
      'sh',
      '-c',
      'echo started; sleep 2',
    ])
    await run.waitFor(/started/)
    const maps = readFileSync(`/proc/${run.pid}/maps`, 'utf8')
    expect(maps).toMatch(/\/ssh2\/lib\/protocol\/crypto\/build\/Release\/sshcrypto\.node$/m)
    expect(maps).toMatch(/\/cpu-features\/build\/Release\/cpufeatures\.node$/m)
    expect((await run.done).code).toBe(0)
  })
})
