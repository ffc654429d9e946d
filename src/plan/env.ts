import { quote, usageError } from '../errors.js'

/** The environment variables of this machine, as main.ts hands them in (process.env). */
export type Env = Readonly<Record<string, string | undefined>>

/**
 * The job's environment on every node: variables forwarded from this machine by default, then
 * --env-file and --env. Values are kept byte for byte; remote.ts passes them as arguments, never code.
 */

/** What the command line says about the environment; only what was given is present. */
export interface EnvOptions {
  /** `--env NAME=VALUE`, and `--env NAME` with NAME's local value, in order. */
  envFlags?: Array<[string, string]>
  /** `--env-file`, absolute paths, in order. */
  envFiles?: string[]
  /** False with `--no-default-env`. */
  defaultEnv?: boolean
}

export interface JobEnv {
  /** Forwarded from this machine by default: fanout's own per-node values win over these. */
  forwarded: Record<string, string>
  /** `--env-file` and `--env`: these win over fanout's own, except the selection's CUDA_VISIBLE_DEVICES. */
  explicit: Record<string, string>
}

// What `export "$1"` in the job wrapper, and every shell, accepts as a name.
const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/

// The variables ML jobs read (NCCL, Gloo, PyTorch, CUDA, Python, OpenMP, Hugging Face, W&B).
// CUDA_VISIBLE_DEVICES is this machine's GPU choice, not the nodes': the selection flags set that.
const FORWARDED = /^(NCCL_|GLOO_|TORCH_|CUDA_|PYTHON|HF_|WANDB_)|^OMP_NUM_THREADS$/

/** Whether a variable of this machine reaches the nodes without being named (unless --no-default-env). */
export const forwardedByDefault = (name: string): boolean =>
  FORWARDED.test(name) && name !== 'CUDA_VISIBLE_DEVICES' && NAME.test(name)

// Over-masking costs a `***` in a dry run; under-masking puts a credential in a terminal log.
const SECRET = /TOKEN|KEY|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH/i

/** Whether `--dry-run` hides the value of this variable. */
export const isSecretName = (name: string): boolean => SECRET.test(name)

/** The variables of this machine that are forwarded by default, sorted by name. */
export function defaultForwarded(localEnv: Env): Record<string, string> {
  const names = Object.keys(localEnv).filter(forwardedByDefault).sort()
  return Object.fromEntries(names.flatMap((k) => (localEnv[k] === undefined ? [] : [[k, localEnv[k]]])))
}

/** The reason a name or value cannot be set on a node, if any. */
function problem(name: string, value: string): string | undefined {
  if (!NAME.test(name))
    return `${quote(name)} is not a valid variable name (letters, digits and _, not starting with a digit)`
  // Never the value itself in a message: it may be a credential.
  if (value.includes('\0')) return `the value of ${name} contains a NUL byte, which no process can receive`
  return undefined
}

/** `--env NAME=VALUE` (the value is everything after the first `=`), or `--env NAME`: its local value. */
export function parseEnvFlag(word: string, localEnv: Env): [string, string] {
  const eq = word.indexOf('=')
  const name = eq < 0 ? word : word.slice(0, eq)
  const value = eq < 0 ? localEnv[name] : word.slice(eq + 1)
  const bad = problem(name, value ?? '')
  if (bad) throw usageError(`--env: ${bad}`)
  if (value === undefined)
    throw usageError(
      `--env ${name}: ${name} is not set here, so there is no value to forward (give one: --env ${name}=VALUE)`,
    )
  return [name, value]
}

const DOUBLE_ESCAPES: Record<string, string> = { n: '\n', t: '\t', r: '\r', '"': '"', '\\': '\\' }

/** The index of the quote closing a value that starts with one, or -1; a backslash escapes in "…" only. */
function closingQuote(s: string): number {
  const open = s[0]
  for (let i = 1; i < s.length; i++) {
    if (open === '"' && s[i] === '\\') i++
    else if (s[i] === open) return i
  }
  return -1
}

/**
 * A dotenv file: `NAME=value` or `export NAME=value` lines, `#` comments and blank lines. Single
 * quotes keep everything literally; double quotes know `\n \t \r \" \\` (other backslashes stay);
 * both may span lines. An unquoted value is trimmed and ends at ` #`. Nothing is expanded: `$HOME`
 * stays `$HOME`. A later line wins. Every error names `file:line`; all are reported at once.
 */
export function parseEnvFile(text: string, file: string): Record<string, string> {
  const lines = text.replace(/\r\n/g, '\n').split('\n')
  const env: Record<string, string> = {}
  const errors: string[] = []
  for (let i = 0; i < lines.length; i++) {
    const at = `${file}:${i + 1}`
    const line = (lines[i] ?? '').replace(/^\s*(export\s+)?/, '')
    if (line === '' || line.startsWith('#')) continue
    const eq = line.indexOf('=')
    if (eq < 0) {
      errors.push(`${at}: expected NAME=VALUE`)
      continue
    }
    const name = line.slice(0, eq).trim()
    let rest = line.slice(eq + 1).trimStart()
    let value: string
    if (rest.startsWith("'") || rest.startsWith('"')) {
      let close = closingQuote(rest)
      // A quoted value goes on over the following lines until its quote closes.
      while (close < 0 && i + 1 < lines.length) {
        rest += '\n' + (lines[++i] ?? '')
        close = closingQuote(rest)
      }
      if (close < 0) {
        errors.push(`${at}: the quote opened here is never closed`)
        break
      }
      const inner = rest.slice(1, close)
      value = rest[0] === "'" ? inner : inner.replace(/\\(.)/gs, (all, c: string) => DOUBLE_ESCAPES[c] ?? all)
      if (!/^\s*(#.*)?$/s.test(rest.slice(close + 1))) {
        errors.push(`${at}: unexpected text after the closing quote of ${name}`)
        continue
      }
    } else {
      value = rest.replace(/(^|\s)#.*$/, '').trim()
    }
    const bad = problem(name, value)
    if (bad) errors.push(`${at}: ${bad}`)
    else env[name] = value
  }
  if (errors.length > 0) throw usageError(errors.slice(0, 50).join('\n'))
  return env
}

/** Precedence, lowest first: forwarded by default, each --env-file in order, each --env in order. */
export function resolveJobEnv(input: {
  localEnv: Env
  defaults: boolean
  files: ReadonlyArray<Record<string, string>>
  flags: ReadonlyArray<readonly [string, string]>
}): JobEnv {
  const explicit: Record<string, string> = {}
  for (const file of input.files) Object.assign(explicit, file)
  for (const [name, value] of input.flags) explicit[name] = value
  const forwarded = input.defaults ? defaultForwarded(input.localEnv) : {}
  for (const name of Object.keys(explicit)) delete forwarded[name]
  return { forwarded, explicit }
}

/**
 * GPUs chosen by --include/--exclude/--num-gpus are each node's CUDA_VISIBLE_DEVICES and its process
 * count; an explicit CUDA_VISIBLE_DEVICES as well would make one of the two a lie, so both is an error.
 */
export function checkGpuSelection(env: JobEnv, hosts: ReadonlyArray<{ host: string; gpus?: number[] }>): void {
  const chosen = hosts.find((h) => h.gpus !== undefined)
  if (chosen === undefined || env.explicit.CUDA_VISIBLE_DEVICES === undefined) return
  throw usageError(
    `CUDA_VISIBLE_DEVICES is given with --env/--env-file, but the selection flags already chose GPUs (${chosen.host}: ${chosen.gpus?.join(',')}); use one or the other`,
  )
}
