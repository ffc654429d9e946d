#!/usr/bin/env node
// Build step after tsc: bundles the CLI (dist/entry.js and everything it imports, yargs included, ssh2
// left out for its optional native parts) into dist/entry.bundle.js, with each lazily imported part
// in a chunk of dist/chunks/ that loads only when used. bin/fanout.js runs the bundle. Node 20 loads
// ES modules file by file with no compile cache: yargs alone is some 60 files, ~150 ms before a
// launch could start; bundled, a 32-node launch takes ~0.1 s less CPU (bench/, npm run bench).
// The entry stays in dist/ itself: fast-help.ts finds help-text.json next to its own module.
import { rmSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'

const dist = fileURLToPath(new URL('../dist/', import.meta.url))
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
  sourcemap: 'linked',
  logLevel: 'warning',
})
