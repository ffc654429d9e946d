#!/usr/bin/env node
// Build step after tsc: bundles the CLI (dist/entry.js and everything it imports, yargs included, ssh2
// left out for its optional native parts) into dist/entry.bundle.js, with each lazily imported part
// in a chunk of dist/chunks/ that loads only when used. bin/fanout.js runs the bundle. Node 20 loads
// ES modules file by file with no compile cache: yargs alone is some 60 files, ~150 ms before a
// launch could start; bundled, a 32-node launch takes ~0.1 s less CPU (bench/, npm run bench).
// The entry stays in dist/ itself: fast-help.ts finds help-text.json next to its own module.
import { readFile } from 'node:fs/promises'
import { rmSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'

const dist = fileURLToPath(new URL('../dist/', import.meta.url))

// Start-up work a launch does not need, deferred or done once, in two dependencies' code as it is
// bundled. Each change is matched by exact text: a new version of a package that no longer matches
// fails the build (update the text here) instead of quietly losing it.
const PATCHES = [
  {
    // string-width (column widths for yargs' and listr2's text; three copies in node_modules) builds an
    // Intl.Segmenter and, in its newest version, a /\p{RGI_Emoji}/v regex as it loads: about 60 ms of
    // CPU (ICU data) before a launch can even connect, for widths a launch never measures. Made on first use.
    file: /[\\/]node_modules[\\/](?:.*[\\/])?string-width[\\/]index\.js$/,
    changes: [
      ['const segmenter = new Intl.Segmenter();', 'let segmenterMade;\nconst segmenter = { segment: (s) => (segmenterMade ??= new Intl.Segmenter()).segment(s) };'],
      ['const rgiEmojiRegex = /^\\p{RGI_Emoji}$/v;', 'let rgiMade;\nconst rgiEmojiRegex = { test: (s) => (rgiMade ??= /^\\p{RGI_Emoji}$/v).test(s) };', 'optional'],
    ],
  },
  {
    // ssh-config compiles every Host pattern again, with 13 RegExps, for every host it computes: with
    // one Host block per node (a common config), 128 nodes cost 120 ms of CPU before connecting. Each
    // pattern is compiled once (the same RegExp, no g flag: test() keeps no state).
    file: /[\\/]node_modules[\\/]ssh-config[\\/]lib[\\/]glob\.js$/,
    changes: [
      ['function match(pattern, text) {', 'const compiledPatterns = new Map();\nfunction match(pattern, text) {\n    let re = compiledPatterns.get(pattern);\n    if (re === undefined) compiledPatterns.set(pattern, (re = compilePattern(pattern)));\n    return re.test(text);\n}\nfunction compilePattern(pattern) {'],
      ["    return new RegExp('^(?:' + pattern + ')$').test(text);", "    return new RegExp('^(?:' + pattern + ')$');"],
    ],
  },
]
const patchDependencies = {
  name: 'patch-dependencies',
  setup(b) {
    for (const { file, changes } of PATCHES) {
      b.onLoad({ filter: file }, async ({ path }) => {
        let text = await readFile(path, 'utf8')
        for (const [from, to, optional] of changes) {
          if (text.includes(from)) text = text.replace(from, () => to) // a function: `to` may hold $'
          else if (!optional) throw new Error(`bundle: ${path} no longer holds \`${from}\`: update PATCHES in scripts/bundle.mjs`)
        }
        return { contents: text, loader: 'js' }
      })
    }
  },
}
rmSync(`${dist}chunks`, { recursive: true, force: true })
await build({
  entryPoints: [`${dist}entry.js`],
  outdir: dist,
  entryNames: '[name].bundle',
  chunkNames: 'chunks/[name]-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: ['ssh2'],
  plugins: [patchDependencies],
  sourcemap: 'linked',
  logLevel: 'warning',
})
