import { describe, it, expect, afterEach } from 'vitest'
import { mkdtempSync, writeFileSync, utimesSync, mkdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { parseArgs } from '../../src/cli/dispatch.js'
import {
  fastKey,
  fastOutput,
  FAST_ARGV,
  FAST_WIDTHS,
  isEnglishLocale,
  stamp,
  wrapWidth,
  yargsLocale,
} from '../../src/cli/fast-help.js'
import { renderFastTexts } from '../../src/cli/help-render.js'

const LOCALE_VARS = ['LC_ALL', 'LC_MESSAGES', 'LANG', 'LANGUAGE'] as const
const saved = Object.fromEntries(LOCALE_VARS.map((k) => [k, process.env[k]]))

/** Runs `fn` with exactly these locale variables in process.env (yargs reads them there). */
async function withLocale<T>(env: NodeJS.ProcessEnv, fn: () => Promise<T>): Promise<T> {
  for (const k of LOCALE_VARS) {
    if (env[k] === undefined) delete process.env[k]
    else process.env[k] = env[k]
  }
  try {
    return await fn()
  } finally {
    for (const k of LOCALE_VARS) {
      if (saved[k] === undefined) delete process.env[k]
      else process.env[k] = saved[k]
    }
  }
}

/** What main() writes on stdout for argv (the text and a newline), by the live yargs parser. */
async function live(argv: readonly string[], columns: number | undefined, env: NodeJS.ProcessEnv): Promise<string> {
  return withLocale(env, async () => {
    const parsed = await parseArgs([...argv], '/somewhere/else', columns ?? 100, env)
    if (parsed.kind !== 'help' && parsed.kind !== 'version') throw new Error(`not a text: ${parsed.kind}`)
    return parsed.text + '\n'
  })
}

afterEach(() => withLocale(saved, async () => undefined))

describe('fastKey: which command lines the pre-rendered texts answer', () => {
  it.each<[string, string[], number | undefined, NodeJS.ProcessEnv, string | undefined]>([
    ['--help, no terminal', ['--help'], undefined, {}, '--help@100'],
    ['-h on 80 columns', ['-h'], 80, {}, '-h@80'],
    ['--help on a wide terminal wraps at 110', ['--help'], 200, {}, '--help@110'],
    ['--help on exactly 110 columns', ['--help'], 110, {}, '--help@110'],
    ['--version', ['--version'], undefined, {}, '--version@100'],
    ['hosts --help', ['hosts', '--help'], 80, {}, 'hosts --help@80'],
    ['a width not rendered: yargs', ['--help'], 95, {}, undefined],
    ['zero columns: yargs', ['--help'], 0, {}, undefined],
    ['more words: yargs', ['--help', '-H', 'x'], undefined, {}, undefined],
    ['help after other flags: yargs', ['-H', 'x', '--help'], undefined, {}, undefined],
    ['a run: yargs', ['-H', 'x', 'train.py'], undefined, {}, undefined],
    ['no arguments: yargs', [], undefined, {}, undefined],
    ['English locale', ['--help'], undefined, { LANG: 'en_GB.UTF-8' }, '--help@100'],
    ['C locale', ['--help'], undefined, { LANG: 'C.UTF-8' }, '--help@100'],
    ['POSIX locale', ['--help'], undefined, { LC_ALL: 'POSIX' }, '--help@100'],
    ['German: yargs translates', ['--help'], undefined, { LANG: 'de_DE.UTF-8' }, undefined],
    ['LC_ALL wins over LANG', ['--help'], undefined, { LC_ALL: 'fr_FR.UTF-8', LANG: 'en_US.UTF-8' }, undefined],
    ['LANG wins over LANGUAGE', ['--help'], undefined, { LANG: 'en_US', LANGUAGE: 'de' }, '--help@100'],
    ['LANGUAGE alone', ['--help'], undefined, { LANGUAGE: 'pt_BR' }, undefined],
  ])('%s', (_name, argv, columns, env, key) => {
    expect(fastKey(argv, columns, env)).toBe(key)
  })

  it('wrapWidth is what args.ts wraps at: min(columns ?? 100, 110)', () => {
    expect([undefined, 40, 100, 109, 110, 300].map(wrapWidth)).toEqual([100, 40, 100, 109, 110, 110])
  })

  it.each([
    ['en_US.UTF-8', 'en_US'],
    ['C.UTF-8', 'C'],
    ['de_DE@euro', 'de_DE@euro'],
    ['ja_JP:foo', 'ja_JP'],
  ])('yargsLocale(LANG=%s) = %s', (lang, locale) => {
    expect(yargsLocale({ LANG: lang })).toBe(locale)
  })

  it('English locales', () => {
    expect(['en', 'en_US', 'en_GB', 'C', 'POSIX'].every(isEnglishLocale)).toBe(true)
    expect(['de', 'de_DE', 'fr', 'pt_BR', 'zh_CN', 'pirate', 'enx'].some(isEnglishLocale)).toBe(false)
  })
})

describe('the pre-rendered texts are what yargs prints live', () => {
  // Rendered as the build does (English locale), then looked up as bin/fanout.js does, for many
  // command lines, widths and locales: wherever the fast path answers, it must print what yargs would.
  const rendered = withLocale({}, renderFastTexts)
  const columns = [undefined, 40, 80, 100, 110, 250]
  const locales: NodeJS.ProcessEnv[] = [
    {},
    { LANG: 'en_US.UTF-8' },
    { LANG: 'C.UTF-8' },
    { LC_ALL: 'POSIX' },
    { LANG: 'en_GB.UTF-8' },
  ]

  it('renders every command line at every width', async () => {
    const texts = await rendered
    expect(Object.keys(texts)).toHaveLength(FAST_ARGV.length * FAST_WIDTHS.length)
    expect(texts['--help@100']).toContain('Usage: fanout --hostfile FILE')
    expect(texts['hosts --help@100']).toContain('Usage: fanout hosts')
    expect(texts['--version@100']).toMatch(/^\d+\.\d+\.\d+\n$/)
  })

  for (const argv of FAST_ARGV) {
    it(`${argv.join(' ')}: equal to the live rendering wherever the fast path answers`, async () => {
      const texts = await rendered
      let answered = 0
      for (const c of columns) {
        for (const env of locales) {
          const key = fastKey(argv, c, env)
          if (key === undefined) continue
          answered++
          expect(texts[key], `${argv.join(' ')} columns=${c} ${JSON.stringify(env)}`).toBe(await live(argv, c, env))
        }
      }
      expect(answered).toBeGreaterThan(0)
    })
  }

  it('a locale it declines really renders differently (German)', async () => {
    const texts = await rendered
    expect(await live(['--help'], undefined, { LANG: 'de_DE.UTF-8' })).not.toBe(texts['--help@100'])
  })
})

describe('fastOutput: the file written by the build', () => {
  const BUILD = (id: string): string => `/*fanout-build:${id}*/\nmodule.exports = {}\n`
  /** A dist/cli/ with the bundle, ../../package.json and help-text.json as the build writes them. */
  function fakeDist(texts: Record<string, string>): URL {
    const root = mkdtempSync(join(tmpdir(), 'fanout-fast-help-'))
    mkdirSync(join(root, 'dist/cli'), { recursive: true })
    writeFileSync(join(root, 'package.json'), '{"version": "0.1.0"}')
    writeFileSync(join(root, 'dist/cli/cli.cjs'), BUILD('ab12'.repeat(8)))
    const dir = pathToFileURL(join(root, 'dist/cli') + '/')
    writeFileSync(join(root, 'dist/cli/help-text.json'), JSON.stringify({ stamp: stamp(dir), texts }))
    return dir
  }

  it('prints the text for its key', () => {
    const dir = fakeDist({ '--help@100': 'HELP\n' })
    expect(stamp(dir)).toEqual(['ab12'.repeat(8), '0.1.0'])
    expect(fastOutput(['--help'], undefined, {}, dir)).toBe('HELP\n')
    expect(fastOutput(['--help'], 80, {}, dir)).toBeUndefined() // not in the file
    expect(fastOutput(['-H', 'x', 'a.py'], undefined, {}, dir)).toBeUndefined()
  })

  it('declines when the bundle was built again since (another build: the texts may be stale)', () => {
    const dir = fakeDist({ '--help@100': 'HELP\n' })
    writeFileSync(new URL('cli.cjs', dir), BUILD('cd34'.repeat(8)))
    expect(fastOutput(['--help'], undefined, {}, dir)).toBeUndefined()
  })

  it('declines without a bundle (tsc alone: the CLI runs its modules, which the texts may not match)', () => {
    const dir = fakeDist({ '--help@100': 'HELP\n' })
    rmSync(new URL('cli.cjs', dir))
    expect(fastOutput(['--help'], undefined, {}, dir)).toBeUndefined()
  })

  it("declines when package.json's version changed since (--version)", () => {
    const dir = fakeDist({ '--version@100': '0.1.0\n' })
    writeFileSync(new URL('../../package.json', dir), '{"version": "0.2.0"}')
    expect(fastOutput(['--version'], undefined, {}, dir)).toBeUndefined()
  })

  it('answers for an installed package, whose files npm dates all the same (1985-10-26)', () => {
    const dir = fakeDist({ '--help@100': 'HELP\n' })
    const npmDate = new Date('1985-10-26T08:15:00Z')
    for (const f of ['cli.cjs', 'help-text.json', '../../package.json']) utimesSync(new URL(f, dir), npmDate, npmDate)
    expect(fastOutput(['--help'], undefined, {}, dir)).toBe('HELP\n')
  })

  it('declines without the file', () => {
    expect(
      fastOutput(['--help'], undefined, {}, pathToFileURL(mkdtempSync(join(tmpdir(), 'fanout-fast-help-')) + '/')),
    ).toBeUndefined()
  })
})
