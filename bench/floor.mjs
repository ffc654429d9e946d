#!/usr/bin/env node
// The floor for an ssh2 client on this machine: one Node process, one ssh2 connection per host, all at
// once; each runs COMMAND, its output is read and thrown away (no lines, no prefixes), then it closes.
//   node bench/floor.mjs SSH_CONFIG HOSTS(comma-separated) COMMAND
// Host names are resolved through the cluster's ssh_config (HostName, User, IdentityFile lines).
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const { Client } = require('ssh2')
const [configFile, hostList, command] = process.argv.slice(2)

/** A minimal reading of the cluster's ssh_config: per-host HostName, and the `Host *` User and IdentityFile. */
function readConfig(text) {
  const hosts = new Map()
  let current = null
  const all = {}
  for (const raw of text.split('\n')) {
    const [key, ...rest] = raw.trim().split(/\s+/)
    const value = rest.join(' ')
    if (!key) continue
    if (key.toLowerCase() === 'host') {
      current = value === '*' ? all : {}
      if (value !== '*') hosts.set(value, current)
    } else if (current) current[key.toLowerCase()] = value
  }
  return (h) => ({ ...all, ...(hosts.get(h) ?? {}) })
}

const config = readConfig(readFileSync(configFile, 'utf8'))
const keys = new Map()

function run(host) {
  const c = config(host)
  const keyFile = c.identityfile
  if (!keys.has(keyFile)) keys.set(keyFile, readFileSync(keyFile))
  return new Promise((resolve, reject) => {
    const conn = new Client()
    let bytes = 0
    conn.on('ready', () => {
      conn.exec(command, (err, stream) => {
        if (err) return reject(err)
        stream.on('data', (b) => {
          bytes += b.length
        })
        stream.stderr.on('data', (b) => {
          bytes += b.length
        })
        stream.on('close', (code) => {
          conn.end()
          if (code !== 0) reject(new Error(`${host}: exit ${code}`))
          else resolve(bytes)
        })
      })
    })
    conn.on('error', reject)
    conn.connect({
      host: c.hostname ?? host,
      port: Number(c.port ?? 22),
      username: c.user,
      privateKey: keys.get(keyFile),
      readyTimeout: 60_000,
    })
  })
}

const results = await Promise.allSettled(hostList.split(',').map(run))
const failed = results.filter((r) => r.status === 'rejected')
if (failed.length > 0) {
  console.error(`floor: ${failed.length} host(s) failed: ${failed[0].reason?.message ?? failed[0].reason}`)
  process.exitCode = 1
}
