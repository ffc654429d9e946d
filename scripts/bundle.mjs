#!/usr/bin/env node
// Build step after tsc: bundles the CLI (dist/cli/main.js and everything it imports: yargs, chalk, listr2,
// ssh2's JavaScript; each lazily imported part still starts only when used) into one CommonJS file,
// dist/cli/cli.cjs, which cli/loader.ts compiles with the V8 code cache that code-cache.mjs records next.
// Node 20 loads ES modules file by file, with no compile cache: yargs alone is some 60 files, ssh2 30
// more, and compiling them was a good part of every start (~0.1 s of CPU; bench/, npm run bench).
// bin/fanout.js starts dist/cli/entry.js (tsc's output), which answers --help from fast-help.ts's texts
// without loading the bundle.
import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'

const dist = fileURLToPath(new URL('../dist/cli/', import.meta.url))

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
      [
        'const segmenter = new Intl.Segmenter();',
        'let segmenterMade;\nconst segmenter = { segment: (s) => (segmenterMade ??= new Intl.Segmenter()).segment(s) };',
      ],
      [
        'const rgiEmojiRegex = /^\\p{RGI_Emoji}$/v;',
        'let rgiMade;\nconst rgiEmojiRegex = { test: (s) => (rgiMade ??= /^\\p{RGI_Emoji}$/v).test(s) };',
        'optional',
      ],
    ],
  },
  {
    // ssh-config compiles every Host pattern again, with 13 RegExps, for every host it computes: with
    // one Host block per node (a common config), 128 nodes cost 120 ms of CPU before connecting. Each
    // pattern is compiled once (the same RegExp, no g flag: test() keeps no state).
    file: /[\\/]node_modules[\\/]ssh-config[\\/]lib[\\/]glob\.js$/,
    changes: [
      [
        'function match(pattern, text) {',
        'const compiledPatterns = new Map();\nfunction match(pattern, text) {\n    let re = compiledPatterns.get(pattern);\n    if (re === undefined) compiledPatterns.set(pattern, (re = compilePattern(pattern)));\n    return re.test(text);\n}\nfunction compilePattern(pattern) {',
      ],
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
          if (text.includes(from))
            text = text.replace(from, () => to) // a function: `to` may hold $'
          else if (!optional)
            throw new Error(`bundle: ${path} no longer holds \`${from}\`: update PATCHES in scripts/bundle.mjs`)
        }
        return { contents: text, loader: 'js' }
      })
    }
  },
}
// ssh2's native binding (and cpu-features, which it asks for) stay outside the bundle, required at run
// time by their package paths from dist/, where Node finds them in node_modules as it finds ssh2.
const nativeParts = {
  name: 'native-parts',
  setup(b) {
    b.onResolve({ filter: /\.node$/ }, ({ path, resolveDir }) => {
      const file = createRequire(`${resolveDir}/`).resolve(path)
      const inPackage = /[\\/]node_modules[\\/]((?:@[^\\/]+[\\/])?[^\\/]+[\\/].*)$/.exec(file)
      if (!inPackage) throw new Error(`bundle: ${file} is not in a package: cannot be required from dist/`)
      return { path: inPackage[1].replaceAll('\\', '/'), external: true }
    })
  },
}

// Old chunks of the ES-module bundle this replaced: a build over an old dist/ must not leave them.
for (const old of ['chunks', 'entry.bundle.js', 'entry.bundle.js.map', 'cli.cjs.cache'])
  rmSync(`${dist}${old}`, { recursive: true, force: true })
const ID_PLACEHOLDER = '0'.repeat(32)
await build({
  entryPoints: [`${dist}main.js`],
  outfile: `${dist}cli.cjs`,
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  external: ['cpu-features'],
  plugins: [patchDependencies, nativeParts],
  // Without comments and indentation the file is a third smaller, and all ASCII (esbuild escapes the
  // rest in strings): cli-loader.ts reads it as latin1. Names stay, for stack traces.
  minifyWhitespace: true,
  // The build line cli-loader.ts reads (its ID set below), and import.meta.url for the modules that
  // ask where they are (yargs' locale files; fast-help.ts): the bundle's own URL, as in dist/.
  banner: {
    js: `/*fanout-build:${ID_PLACEHOLDER}*/\nconst __fanout_import_meta_url = require('node:url').pathToFileURL(__filename).href;`,
  },
  define: { 'import.meta.url': '__fanout_import_meta_url' },
  sourcemap: 'linked',
  logLevel: 'warning',
})
const bundled = readFileSync(`${dist}cli.cjs`, 'latin1')
const nonAscii = /[^\x00-\x7f]/.exec(bundled)
if (nonAscii)
  throw new Error(
    `bundle: dist/cli/cli.cjs holds a non-ASCII character at ${nonAscii.index}: cli/loader.ts reads it as latin1`,
  )
// The build's ID: a hash of the bundle as written (its ID still zeros), the same length as the zeros.
const id = createHash('sha256').update(bundled).digest('hex').slice(0, ID_PLACEHOLDER.length)
writeFileSync(`${dist}cli.cjs`, bundled.replace(ID_PLACEHOLDER, id), 'latin1')
