import { readFileSync } from 'node:fs'
import { unreadable, usageError } from '../errors.js'
import { parseEnvFile, resolveJobEnv, type Env, type EnvOptions, type JobEnv } from '../plan/env.js'

// The job's environment as the launch reads it: the --env-files from disk (the one impure step, before
// connecting), then plan/env.ts's rules.

function readEnvFile(path: string): Record<string, string> {
  let bytes: Buffer
  try {
    bytes = readFileSync(path)
  } catch (e) {
    throw usageError(`--env-file ${path}: cannot read it: ${unreadable(e)}`)
  }
  let text: string
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes)
  } catch {
    throw usageError(`--env-file ${path}: not a text file (not UTF-8)`)
  }
  return parseEnvFile(text, path)
}

/** Reads the --env-files and resolves the job's environment (the one impure step, before connecting). */
export function loadJobEnv(options: EnvOptions, localEnv: Env): JobEnv {
  const files = (options.envFiles ?? []).map(readEnvFile)
  return resolveJobEnv({ localEnv, defaults: options.defaultEnv !== false, files, flags: options.envFlags ?? [] })
}
