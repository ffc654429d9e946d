#!/usr/bin/env -S node --
// 'node --' so that Node itself never reads fanout's flags: Node 20 takes --env-file from anywhere in argv (nodejs/node#54232).
import { start } from '../dist/cli/entry.js'
start(process.argv.slice(2), process.stdout, process.env).then((code) => {
  process.exitCode = code
})
