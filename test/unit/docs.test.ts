import { beforeAll, describe, it, expect } from 'vitest'
import { readFileSync } from 'node:fs'
import { parseArgs } from '../../src/cli/dispatch.js'

/**
 * `fanout --help` and docs/options.md must name the same flags: a flag added to the CLI needs a row in
 * the docs' tables, and a row whose flag is gone fails here. README.md's "Common flags" table may name
 * only flags that exist.
 */

const root = new URL('../../', import.meta.url)
const read = (path: string): string => readFileSync(new URL(path, root), 'utf8')

/** The text `fanout ARGV` prints, by the CLI's own parser (the same yargs definition the build renders). */
async function helpText(argv: string[]): Promise<string> {
  const parsed = await parseArgs(argv, '/', 100, {})
  if (parsed.kind !== 'help')
    throw new Error(`fanout ${argv.join(' ')} is not answered with a help text (${parsed.kind})`)
  return parsed.text
}

/**
 * Every long flag a help text lists: the option column (`  -H, --hostfile`, `      --hosts`), and the
 * `--no-NAME` forms its descriptions name for an option of that column (`--no-prefix: none`).
 */
function helpFlags(text: string): Set<string> {
  const listed = new Set(
    [...text.matchAll(/^(?: {2}-[A-Za-z], | {6})(--[a-z][a-z0-9-]*)/gm)].map((m) => m[1] as string),
  )
  const negated = [...text.matchAll(/(?<![\w-])--no-([a-z][a-z0-9-]*)/g)]
    .filter((m) => listed.has(`--${m[1]}`))
    .map((m) => `--no-${m[1]}`)
  return new Set([...listed, ...negated])
}

/** The cells of a markdown table row, split at the pipes that are not escaped (`torchrun\|launch`). */
const cells = (row: string): string[] =>
  row
    .trim()
    .replace(/^\||\|$/g, '')
    .split(/(?<!\\)\|/)
    .map((c) => c.trim())

/**
 * Every long flag named in the first column of a markdown file's tables (rows after a `| --- |`
 * separator); `--[no-]NAME` names both `--NAME` and `--no-NAME`, `--sync=DIR` names `--sync`.
 */
function tableFlags(markdown: string): Set<string> {
  const flags = new Set<string>()
  let inTable = false
  for (const line of markdown.split('\n')) {
    if (!line.trimStart().startsWith('|')) {
      inTable = false
      continue
    }
    if (/^\s*\|(\s*:?-+:?\s*\|)+\s*$/.test(line)) {
      inTable = true
      continue
    }
    if (!inTable) continue
    for (const m of (cells(line)[0] ?? '').matchAll(/(?<![\w-])--(\[no-\])?([a-z][a-z0-9-]*)/g)) {
      flags.add(`--${m[2]}`)
      if (m[1]) flags.add(`--no-${m[2]}`)
    }
  }
  return flags
}

const missing = (wanted: Iterable<string>, have: Set<string>): string[] =>
  [...wanted].filter((f) => !have.has(f)).sort()

describe('the docs and --help name the same flags', () => {
  let main = ''
  let hosts = ''
  let runs = ''
  let helped = new Set<string>()
  const documented = tableFlags(read('docs/options.md'))
  beforeAll(async () => {
    main = await helpText(['--help'])
    hosts = await helpText(['hosts', '--help'])
    runs = (await Promise.all(['attach', 'logs', 'stop', 'ps'].map((c) => helpText([c, '--help'])))).join('\n')
    helped = new Set([...helpFlags(main), ...helpFlags(hosts), ...helpFlags(runs)])
  })

  it('the help texts are read (the option column is found)', () => {
    expect(helped.size).toBeGreaterThan(60)
    for (const f of [
      '--hostfile',
      '--hosts',
      '--no-python',
      '--rank-tags',
      '--no-rank-tags',
      '--no-prefix',
      '--help',
      '--version',
      '--json',
    ])
      expect(helped).toContain(f)
    expect([...helpFlags(hosts)].sort()).toEqual([
      '--exclude',
      '--help',
      '--hostfile',
      '--hosts',
      '--include',
      '--json',
      '--num-gpus',
      '--num-nodes',
      '--via',
    ])
  })

  it('every flag of fanout --help has a row in docs/options.md', () => {
    const gone = missing(helpFlags(main), documented)
    expect(gone, `flags in fanout --help but not in docs/options.md's tables: ${gone.join(', ')}`).toEqual([])
  })

  it('every flag of fanout hosts --help has a row in docs/options.md', () => {
    const gone = missing(helpFlags(hosts), documented)
    expect(gone, `flags in fanout hosts --help but not in docs/options.md's tables: ${gone.join(', ')}`).toEqual([])
  })

  it('every flag of fanout attach, logs, stop and ps --help has a row in docs/options.md', () => {
    const gone = missing(helpFlags(runs), documented)
    expect([...helpFlags(runs)]).toContain('--follow')
    expect(gone, `flags in the runs commands' --help but not in docs/options.md's tables: ${gone.join(', ')}`).toEqual(
      [],
    )
  })

  it("every flag in docs/options.md's tables exists in --help", () => {
    const extra = missing(documented, helped)
    expect(
      extra,
      `flags in docs/options.md's tables that neither fanout --help nor fanout hosts --help lists: ${extra.join(', ')}`,
    ).toEqual([])
  })

  it("every flag in README.md's tables exists in --help", () => {
    const readme = tableFlags(read('README.md'))
    expect(readme.size).toBeGreaterThan(10)
    const extra = missing(readme, helped)
    expect(extra, `flags in README.md's tables that fanout --help does not list: ${extra.join(', ')}`).toEqual([])
  })
})

describe('the extractors', () => {
  it('helpFlags reads the option column and the --no- forms of its options', () => {
    const text = [
      'Nodes:',
      '  -H, --hostfile  file listing the nodes                                [string]',
      '      --prefix    line prefix (default "[n{node}]"); --no-prefix: none [string]',
      '                  --not-an-option at the start of a wrapped description',
      '      --use-env   not --local-rank, and not --no-such-flag            [boolean]',
    ].join('\n')
    expect([...helpFlags(text)].sort()).toEqual(['--hostfile', '--no-prefix', '--prefix', '--use-env'])
  })

  it('tableFlags reads the first column of tables only', () => {
    const md = [
      'Text that names --outside.',
      '',
      '| option | default | meaning |',
      '| --- | --- | --- |',
      '| `--[no-]kill-on-failure` | on | stop every node (not --grace) |',
      '| `--sync`, `--sync=DIR`, `--sync-dir DIR` | | copy |',
      '| `--launcher torchrun\\|launch\\|none` | torchrun | what runs |',
      '| `-H, --hostfile FILE` | | the nodes |',
    ].join('\n')
    expect([...tableFlags(md)].sort()).toEqual([
      '--hostfile',
      '--kill-on-failure',
      '--launcher',
      '--no-kill-on-failure',
      '--sync',
      '--sync-dir',
    ])
  })
})
