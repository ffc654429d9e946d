import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'
import { cacheHeader, compileCli, loadCli } from '../../src/cli/loader.js'

// A stand-in for dist/cli.cjs: a CommonJS module whose main says which file it is and what its
// wrapper was given. Each test writes it to its own directory: V8 keeps what it compiled per source
// and file name, and a second compile of the same pair would not consult the cache under test.
const BUNDLE = (id: string, answer: number): string =>
  `${id === '' ? '' : `/*fanout-build:${id}*/\n`}const where = __filename + ' ' + __dirname + ' ' + typeof require('node:path').join\n` +
  `exports.main = async (argv) => ({ answer: ${answer}, argv, where, self: module.exports === exports })\n` +
  `function unused() { return [1, 2, 3].map((x) => x * 2) }\n`

const dirs: string[] = []
const dirWith = (files: Record<string, string | Buffer>): URL => {
  const dir = mkdtempSync(join(tmpdir(), 'fanout-loader-'))
  dirs.push(dir)
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text)
  return pathToFileURL(`${dir}/`)
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

/**
 * The cache file the build writes for `bundle` (its header line, then V8's data), recorded in a
 * directory of its own; `alter` changes V8's data before the header is made for it.
 */
function recordedCache(bundle: string, id: string, alter?: (data: Buffer) => void): Buffer {
  const compiled = compileCli(dirWith({ 'cli.cjs': bundle }))
  if (!compiled) throw new Error('no bundle')
  compiled.run()
  const data = compiled.createCache()
  alter?.(data)
  return Buffer.concat([Buffer.from(cacheHeader(id, data), 'latin1'), data])
}

describe('compileCli', () => {
  const ID = 'ab12'.repeat(8)

  it('runs the bundle as Node runs a CommonJS module: its own file, directory, require and exports', async () => {
    const dir = dirWith({ 'cli.cjs': BUNDLE(ID, 7) })
    const compiled = compileCli(dir)
    expect(compiled?.cache).toBe('none')
    expect(compiled?.buildId).toBe(ID)
    const result = await (compiled?.run().main(['--x']) as unknown as Promise<{
      answer: number
      argv: string[]
      where: string
      self: boolean
    }>)
    const file = new URL('cli.cjs', dir).pathname
    expect(result).toEqual({
      answer: 7,
      argv: ['--x'],
      where: `${file} ${file.slice(0, -'/cli.cjs'.length)} function`,
      self: true,
    })
  })

  it('compiles from the cache recorded for the same build', async () => {
    const bundle = BUNDLE(ID, 8)
    const compiled = compileCli(dirWith({ 'cli.cjs': bundle, 'cli.cjs.cache': recordedCache(bundle, ID) }))
    expect(compiled?.cache).toBe('used')
    expect(await (compiled?.run().main([]) as unknown as Promise<{ answer: number }>)).toMatchObject({ answer: 8 })
  })

  it("does not offer V8 another build's cache, even for a bundle of the same length", () => {
    const other = 'cd34'.repeat(8)
    const cache = recordedCache(BUNDLE(other, 9), other)
    expect(compileCli(dirWith({ 'cli.cjs': BUNDLE(ID, 9), 'cli.cjs.cache': cache }))?.cache).toBe('none')
    // The cache itself is sound: under its own build's ID it is used.
    expect(compileCli(dirWith({ 'cli.cjs': BUNDLE(other, 9), 'cli.cjs.cache': cache }))?.cache).toBe('used')
  })

  it('compiles as usual when V8 refuses the cache (another Node or V8 flags: its own header differs)', async () => {
    const bundle = BUNDLE(ID, 10)
    const compiled = compileCli(
      dirWith({
        'cli.cjs': bundle,
        'cli.cjs.cache': recordedCache(bundle, ID, (data) => {
          data[4] = (data[4] ?? 0) ^ 0xff
        }),
      }),
    )
    expect(compiled?.cache).toBe('rejected')
    expect(await (compiled?.run().main([]) as unknown as Promise<{ answer: number }>)).toMatchObject({ answer: 10 })
  })

  // V8 does not checksum a code cache: this data, handed to it, ends the process (checked by hand).
  it('does not offer V8 a cache whose data changed after it was recorded, and compiles as usual', async () => {
    const bundle = BUNDLE(ID, 13)
    const cache = recordedCache(bundle, ID)
    cache.fill(0x5a, cache.length - 64)
    const compiled = compileCli(dirWith({ 'cli.cjs': bundle, 'cli.cjs.cache': cache }))
    expect(compiled?.cache).toBe('damaged')
    expect(await (compiled?.run().main([]) as unknown as Promise<{ answer: number }>)).toMatchObject({ answer: 13 })
  })

  it('uses no cache for a bundle without its build line', () => {
    const bundle = BUNDLE('', 11)
    expect(compileCli(dirWith({ 'cli.cjs': bundle, 'cli.cjs.cache': recordedCache(bundle, '') }))?.cache).toBe('none')
  })

  it('finds no bundle in a directory without one', () => {
    expect(compileCli(dirWith({}))).toBeUndefined()
  })
})

describe('loadCli', () => {
  it("loads the bundle's exports when there is one", async () => {
    const cli = await loadCli(dirWith({ 'cli.cjs': BUNDLE('ef56'.repeat(8), 12) }))
    expect(await (cli.main([]) as unknown as Promise<{ answer: number }>)).toMatchObject({ answer: 12 })
  })

  it('falls back to the modules themselves without a bundle (src/, or dist/ from tsc alone)', async () => {
    const cli = await loadCli(dirWith({}))
    expect(cli).toBe(await import('../../src/cli/main.js'))
    expect(readFileSync(new URL('../../src/cli/main.ts', import.meta.url), 'utf8')).toContain(
      'export async function main',
    )
  })
})
