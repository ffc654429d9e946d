import { readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

/**
 * The house rules (issue 21), read from the sources: no import circles anywhere in src/ (a type-only
 * import counts: it is a dependency a reader has to follow too); plan/ and node/ (what runs where,
 * pure, and the programs that run on a node) reach neither the command line, nor the orchestration,
 * nor a transport, nor the file system; yargs is the command line's alone.
 */
const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '../../src')

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f)
    return statSync(p).isDirectory() ? sources(p) : p.endsWith('.ts') ? [p] : []
  })
}

/** Every module a file imports (static, dynamic, type-only and `typeof import`), by its path under src/, or by package name. */
export function importsOf(file: string, text: string): string[] {
  const found: string[] = []
  const specifier =
    /(?:import|export)\s+(?:type\s+)?(?:[^'";]*?\s+from\s+)?['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g
  for (const m of text.matchAll(specifier)) {
    const spec = (m[1] ?? m[2]) as string
    found.push(spec.startsWith('.') ? relative(SRC, resolve(dirname(file), spec)).replace(/\.js$/, '.ts') : spec)
  }
  return found
}

/** The strongly connected groups of more than one module (Tarjan): each is an import circle. */
export function circles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  let next = 0
  const index = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: string[] = []
  const onStack = new Set<string>()
  const found: string[][] = []
  const visit = (v: string): void => {
    index.set(v, next)
    low.set(v, next++)
    stack.push(v)
    onStack.add(v)
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue
      if (!index.has(w)) {
        visit(w)
        low.set(v, Math.min(low.get(v) as number, low.get(w) as number))
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v) as number, index.get(w) as number))
    }
    if (low.get(v) !== index.get(v)) return
    const group: string[] = []
    let w: string
    do {
      w = stack.pop() as string
      onStack.delete(w)
      group.push(w)
    } while (w !== v)
    if (group.length > 1) found.push(group.sort())
  }
  for (const v of graph.keys()) if (!index.has(v)) visit(v)
  return found
}

const graph = new Map(sources(SRC).map((f) => [relative(SRC, f), importsOf(f, readFileSync(f, 'utf8'))]))

describe('the house rules', () => {
  it('the import graph was read (every folder of the pipeline is there)', () => {
    const folders = new Set([...graph.keys()].map((f) => f.split('/')[0]))
    for (const folder of ['cli', 'hosts', 'plan', 'node', 'launch', 'supervise', 'transport', 'output', 'sync'])
      expect(folders).toContain(folder)
    expect(graph.get('launch/run.ts')).toContain('launch/attempt.ts')
  })

  it('no import circles', () => {
    expect(circles(graph)).toEqual([])
  })

  it.each(['plan', 'node'])('%s/ imports nothing from cli/, launch/ or transport/, and not node:fs', (folder) => {
    const bad = [...graph].flatMap(([file, deps]) =>
      file.startsWith(`${folder}/`)
        ? deps
            .filter((d) => /^(cli|launch|transport)\//.test(d) || d === 'node:fs' || d === 'node:fs/promises')
            .map((d) => `${file} → ${d}`)
        : [],
    )
    expect(bad).toEqual([])
  })

  it('yargs only in cli/', () => {
    const bad = [...graph].flatMap(([file, deps]) => (!file.startsWith('cli/') && deps.includes('yargs') ? [file] : []))
    expect(bad).toEqual([])
  })
})

describe('the rules themselves', () => {
  it('circles finds a circle, and none where there is none', () => {
    expect(
      circles(
        new Map([
          ['a', ['b']],
          ['b', ['c']],
          ['c', ['a']],
          ['d', ['a']],
        ]),
      ),
    ).toEqual([['a', 'b', 'c']])
    expect(
      circles(
        new Map([
          ['a', ['b']],
          ['b', ['c']],
          ['c', []],
        ]),
      ),
    ).toEqual([])
  })

  it('importsOf reads every kind of import', () => {
    const text = [
      "import { a } from './a.js'",
      "import type { B } from '../b/b.js'",
      "export { c } from './c.js'",
      "const d = await import('./d.js')",
      "type E = typeof import('./e.js')",
      "import yargs from 'yargs'",
    ].join('\n')
    expect(importsOf(join(SRC, 'plan/x.ts'), text)).toEqual([
      'plan/a.ts',
      'b/b.ts',
      'plan/c.ts',
      'plan/d.ts',
      'plan/e.ts',
      'yargs',
    ])
  })
})
