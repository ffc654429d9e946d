#!/usr/bin/env -S node --
// 'node --' so that Node itself never reads fanout's flags: Node 20 takes --env-file from anywhere in argv (nodejs/node#54232).
import { main } from '../dist/cli.js'
main(process.argv.slice(2)).then((code) => { process.exitCode = code })
