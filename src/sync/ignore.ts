import { lstat, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { FanoutError, quote, usageError } from '../errors.js'

/**
 * .gitignore and .fanoutignore matching as git does it (gitignore(5), git's wildmatch with WM_PATHNAME),
 * without a dependency. Each file's patterns apply to its own directory's subtree; a deeper file beats a
 * shallower one, a later line an earlier one, and every .fanoutignore beats every .gitignore (so it can
 * re-include with `!`). Patterns match UTF-8 bytes, like git (`?` is one byte). A `.git` entry at any
 * depth is always ignored. Only ignore files inside the synced tree count (not .git/info/exclude, not the
 * global excludes file, not a .gitignore above the synced directory).
 */
export type IgnoreFile = '.gitignore' | '.fanoutignore'
/** In the order they apply: a match in a later one wins. */
const IGNORE_FILES: readonly IgnoreFile[] = ['.gitignore', '.fanoutignore']

/** basename: no slash, so it matches the last component at any depth. re null: never matches (unterminated `[`, trailing `\`, unknown `[:class:]`). */
type Rule = { negate: boolean; dirOnly: boolean; basename: boolean; re: RegExp | null }

/** A string's UTF-8 bytes, one char each: git compares bytes. */
const bytes = (s: string): string => (/[^\x00-\x7f]/.test(s) ? Buffer.from(s, 'utf8').toString('latin1') : s)
const esc = (c: string): string => (/[A-Za-z0-9]/.test(c) ? c : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`)
/** git's sane_ctype, C locale. */
const POSIX: Record<string, string> = {
  alnum: '0-9A-Za-z',
  alpha: 'A-Za-z',
  blank: '\\x20\\x09',
  cntrl: '\\x00-\\x1f\\x7f',
  digit: '0-9',
  graph: '\\x21-\\x7e',
  lower: 'a-z',
  print: '\\x20-\\x7e',
  punct: '\\x21-\\x2f\\x3a-\\x40\\x5b-\\x60\\x7b-\\x7e',
  space: '\\x09\\x0a\\x0d\\x20',
  upper: 'A-Z',
  xdigit: '0-9A-Fa-f',
}

/** A `[...]` at p[open] as a regex that never matches '/', and the index of its `]`; null if malformed. */
function bracket(p: string, open: number): { re: string; end: number } | null {
  let i = open + 1
  const negated = p[i] === '!' || p[i] === '^'
  if (negated) i++
  let set = ''
  let prev: string | undefined
  for (let first = true; first || p[i] !== ']'; first = false, i++) {
    let c = p[i]
    if (c === undefined) return null
    if (c === '\\') {
      c = p[++i]
      if (c === undefined) return null
      set += esc(c)
    } else if (c === '-' && prev !== undefined && p[i + 1] !== undefined && p[i + 1] !== ']') {
      let hi = p[++i]
      if (hi === '\\') hi = p[++i]
      if (hi === undefined) return null
      if (hi >= prev) set += `${esc(prev)}-${esc(hi)}` // a backwards range matches nothing
      c = undefined
    } else if (c === '[' && p[i + 1] === ':') {
      const close = p.indexOf(']', i + 2)
      if (close < 0) return null
      if (close === i + 2 || p[close - 1] !== ':')
        set += esc('[') // not `[:name:]`: a plain '['
      else {
        const cls = POSIX[p.slice(i + 2, close - 1)]
        if (cls === undefined) return null
        set += cls
        i = close
        c = undefined
      }
    } else set += esc(c)
    prev = c
  }
  return { re: negated ? `[^/${set}]` : `(?!/)[${set}]`, end: i }
}

/**
 * `pattern` as an anchored regex. git hands an anchored pattern to wildmatch without its literal prefix,
 * so a `**` right after that prefix counts as at the start (git matches `a**\/b` against `ab`): kept.
 */
function compile(pattern: string, anchored: boolean): RegExp | null {
  const p = bytes(pattern)
  const start = anchored ? p.search(/[*?[\\]/) : 0
  let out = ''
  for (let i = 0; i < p.length; i++) {
    const c = p[i] as string
    if (c === '\\') {
      if (++i >= p.length) return null
      out += esc(p[i] as string)
    } else if (c === '?') out += '[^/]'
    else if (c === '*') {
      let j = i
      while (p[j + 1] === '*') j++
      const next = p[j + 1]
      const starstar =
        j > i &&
        (i === start || p[i - 1] === '/') &&
        (next === undefined || next === '/' || (next === '\\' && p[j + 2] === '/'))
      i = j
      if (!starstar) out += '[^/]*'
      else if (next === '/') {
        i++
        if (!out.endsWith('(?:.*/)?')) out += '(?:.*/)?' // zero or more directories
      } else out += '.*'
    } else if (c === '[') {
      const cls = bracket(p, i)
      if (!cls) return null
      out += cls.re
      i = cls.end
    } else out += esc(c)
  }
  return new RegExp(`^${out}$`, 's')
}

/** Compiled patterns, shared by every ignore file (the same lines recur in many); emptied when full. */
const compiled = new Map<string, RegExp | null>()
/** Removes trailing spaces unless escaped with a backslash (git's trim_trailing_spaces). */
function trimTrailingSpaces(s: string): string {
  let lastSpace = -1
  for (let i = 0; i < s.length; i++) {
    if (s[i] === ' ') {
      if (lastSpace < 0) lastSpace = i
    } else {
      if (s[i] === '\\' && ++i >= s.length) return s
      lastSpace = -1
    }
  }
  return lastSpace < 0 ? s : s.slice(0, lastSpace)
}

function parseRule(line: string): Rule | undefined {
  if (line === '' || line.startsWith('#')) return undefined
  let p = trimTrailingSpaces(line)
  const negate = p.startsWith('!')
  if (negate) p = p.slice(1)
  const dirOnly = p.endsWith('/')
  if (dirOnly) p = p.slice(0, -1)
  if (p === '') return undefined
  const basename = !p.includes('/')
  const key = `${basename ? ' ' : '/'}${p}`
  let re = compiled.get(key)
  if (re === undefined) {
    if (compiled.size >= 1000) compiled.clear()
    compiled.set(key, (re = basename ? compile(p, false) : compile(p.replace(/^\//, ''), true)))
  }
  return { negate, dirOnly, basename, re }
}

export class IgnoreRules {
  /** Per ignore file kind (IGNORE_FILES order): the rules of each directory ('' is the root), in file order. */
  private readonly rules: Array<Map<string, Rule[]>> = IGNORE_FILES.map(() => new Map())
  /** Verdicts of directories on their own (parents not consulted); reset whenever rules are added. */
  private readonly dirs = new Map<string, boolean>()

  /** Adds the patterns of an ignore file that lies in directory `dir` ('' for the root, else 'a/b'). */
  add(dir: string, text: string, file: IgnoreFile = '.gitignore'): void {
    const rules = this.rules[IGNORE_FILES.indexOf(file)] as Map<string, Rule[]>
    const list = rules.get(dir) ?? []
    for (const line of text.replace(/^\ufeff/, '').split('\n')) {
      const rule = parseRule(line.endsWith('\r') ? line.slice(0, -1) : line)
      if (rule) list.push(rule)
    }
    rules.set(dir, list)
    this.dirs.clear()
  }

  /** Reads `root/dir/.gitignore` and `root/dir/.fanoutignore` where they exist. Call before asking about dir's entries. */
  async loadDir(root: string, dir: string): Promise<void> {
    for (const file of IGNORE_FILES) {
      const rel = dir === '' ? file : `${dir}/${file}`
      let text: string
      try {
        const st = await lstat(join(root, rel))
        if (!st.isFile()) {
          const kind = st.isSymbolicLink() ? 'a link' : st.isDirectory() ? 'a directory' : 'a special file'
          throw usageError(
            `--sync: ${quote(rel)} is ${kind}; fanout, like git, reads an ignore file only when it is a plain file: replace it with one, or remove it`,
          )
        }
        text = await readFile(join(root, rel), 'utf8')
      } catch (e) {
        if (e instanceof FanoutError) throw e
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue
        throw usageError(
          `--sync: cannot read ${quote(rel)} (${(e as Error).message.split(', ')[0]}); make it readable or remove it`,
        )
      }
      this.add(dir, text, file)
    }
  }

  /** Whether `relPath` ('/'-separated, relative to the root) is ignored: itself, or one of its parent directories. */
  ignored(relPath: string, isDir: boolean): boolean {
    const parts = relPath.split('/')
    if (relPath === '') return false // the root itself
    if (parts.includes('.git')) return true
    for (let n = 1; n < parts.length; n++) {
      const dir = parts.slice(0, n)
      const key = dir.join('/')
      let verdict = this.dirs.get(key)
      if (verdict === undefined) this.dirs.set(key, (verdict = this.matches(dir, true)))
      if (verdict) return true
    }
    return this.matches(parts, isDir)
  }

  /** The last matching rule's verdict for the path itself: .fanoutignore first, deepest directory first, last line first. */
  private matches(parts: string[], isDir: boolean): boolean {
    const path = parts.join('/')
    const name = bytes(parts[parts.length - 1] as string)
    for (let f = this.rules.length - 1; f >= 0; f--) {
      for (let depth = parts.length - 1; depth >= 0; depth--) {
        const base = parts.slice(0, depth).join('/')
        const rules = this.rules[f]?.get(base)
        if (!rules) continue
        const rel = bytes(depth === 0 ? path : path.slice(base.length + 1))
        for (let r = rules.length - 1; r >= 0; r--) {
          const rule = rules[r] as Rule
          if ((isDir || !rule.dirOnly) && rule.re?.test(rule.basename ? name : rel)) return !rule.negate
        }
      }
    }
    return false
  }
}
