import { isAbsolute, resolve } from 'node:path'
import type { Argv } from 'yargs'
import { usageError } from '../../errors.js'
import { isHostOrAddress, parsePort } from '../../hosts/hostfile.js'
import type { JobOptions, PreflightOptions } from '../../launch/options.js'
import { shellQuote } from '../../node/quote.js'
import { parseEnvFlag, type EnvOptions } from '../../plan/env.js'
import { int, optionalDuration, repeated, text, type Env } from '../parser.js'

// The flags of the job itself: what runs, where (working directory, interpreter, set-up, environment),
// its rendezvous and process counts, and how strict the pre-flight is.

/** Set-up steps from the flags, in the order they run: the environment first, then --setup lines. */
export function setupSteps(a: Record<string, unknown>): string[] {
  // `--venv ''` would source /bin/activate and `--setup ''` run nothing: an empty value is a slip.
  const list = (flag: string): string[] =>
    [a[flag] ?? []].flat().map((v) => {
      if (typeof v !== 'string' || v.trim() === '') throw usageError(`--${flag} needs a value`)
      return v
    })
  // Quoted for the node's shell, keeping a leading ~/ for it to expand.
  const path = (p: string): string => (p.startsWith('~/') ? `~/${shellQuote(p.slice(2))}` : shellQuote(p))
  return [
    ...list('venv').map((dir) => `. ${path(`${dir.replace(/\/$/, '')}/bin/activate`)}`),
    ...list('conda').map((env) => `eval "$(conda shell.posix hook)" && conda activate ${shellQuote(env)}`),
    ...list('setup'),
  ]
}

export function withSetupOptions<T>(y: Argv<T>) {
  return y
    .option('setup', {
      type: 'string',
      describe:
        "shell line run on each node before the launcher, same shell (repeatable): 'source ~/venv/bin/activate'",
      group: 'Job:',
    })
    .option('venv', {
      type: 'string',
      describe: 'activate this virtualenv on each node first (DIR/bin/activate)',
      group: 'Job:',
    })
    .option('conda', { type: 'string', describe: 'activate this conda environment on each node first', group: 'Job:' })
    .option('strict', {
      type: 'boolean',
      default: false,
      describe: 'torch or Python versions that differ across nodes (patch level) are an error',
      group: 'Job:',
    })
    .option('allow-version-skew', {
      type: 'boolean',
      default: false,
      describe: 'launch even when nodes run different torch major.minor versions (which cannot rendezvous)',
      group: 'Job:',
    })
    .option('allow-busy-gpus', {
      type: 'boolean',
      default: false,
      describe: 'launch even when a GPU the job will use is held by another process',
      group: 'Job:',
    })
    .option('wait-for-gpus', {
      type: 'string',
      describe: 'wait up to this long for busy GPUs to be freed (showing who holds them), e.g. 10m',
      group: 'Job:',
    })
}

export function withNodeOptions<T>(y: Argv<T>) {
  return y.option('nproc-per-node', {
    type: 'string',
    describe: 'processes per node (default: the GPUs selected, else slots=, else its GPU count, else 1)',
    group: 'Nodes:',
  })
}

export function withRendezvousOptions<T>(y: Argv<T>) {
  return y
    .option('master-addr', {
      type: 'string',
      describe: 'rendezvous address (default: the address node 0 was reached at)',
      group: 'Rendezvous:',
    })
    .option('master-port', {
      type: 'string',
      describe: 'rendezvous port (default: a port found free on node 0)',
      group: 'Rendezvous:',
    })
    .option('rdzv-timeout', {
      type: 'string',
      default: '120',
      describe:
        'a node whose workers have not started this long after the launch is named, and the job stopped (exit 124)',
      group: 'Rendezvous:',
    })
}

export function withWorkOptions<T>(y: Argv<T>) {
  return y
    .option('chdir', {
      alias: 'C',
      type: 'string',
      describe: "remote working directory (default: the current directory's path)",
      group: 'Job:',
    })
    .option('python', {
      type: 'string',
      default: 'python3',
      describe: 'remote Python interpreter that has torch',
      group: 'Job:',
    })
    .option('monitor-interval', {
      type: 'string',
      default: '0.25',
      describe: "how often torchrun checks its workers (it notices a failure this fast; torchrun's own default is 5)",
      group: 'Job:',
    })
    .option('dry-run', {
      alias: 'n',
      type: 'boolean',
      default: false,
      describe: 'connect and probe, print the command for each node, launch nothing',
      group: 'Job:',
    })
}

export function withEnvOptions<T>(y: Argv<T>) {
  return y
    .option('env', {
      type: 'string',
      describe: 'set NAME=VALUE on every node, or NAME: forward its value here (repeatable)',
      group: 'Environment:',
    })
    .option('env-file', {
      type: 'string',
      describe: 'set the NAME=VALUE lines of a dotenv file on every node (repeatable)',
      group: 'Environment:',
    })
    .option('default-env', {
      type: 'boolean',
      default: true,
      describe:
        'forward NCCL_* GLOO_* TORCH_* CUDA_* PYTHON* OMP_NUM_THREADS HF_* WANDB_* from here (--no-default-env: do not)',
      group: 'Environment:',
    })
}

/** --env (with `--env NAME`'s local value), --env-file and --no-default-env; only what was given. */
function readEnvOptions(a: Record<string, unknown>, cwd: string, env: Env): EnvOptions {
  const options: EnvOptions = {}
  const flags = repeated(a, 'env').map((word) => parseEnvFlag(word, env))
  const files = repeated(a, 'env-file').map((f) => resolve(cwd, f))
  if (flags.length > 0) options.envFlags = flags
  if (files.length > 0) options.envFiles = files
  if (a['default-env'] === false) options.defaultEnv = false
  return options
}

/** A port flag: 1 to 65535, or undefined when not given. */
export function portFlag(flag: string, v: unknown): number | undefined {
  if (v === undefined) return undefined
  const p = parsePort(String(text(flag, v)))
  if (p === undefined) throw usageError(`--${flag} must be a port from 1 to 65535 (got ${JSON.stringify(v)})`)
  return p
}

/**
 * The job's own flags, validated: the script and its arguments (the words from SCRIPT on), where it
 * runs (`syncDir`: the tree --sync copies lands at its own path unless --chdir says where), with what.
 */
export function readJobOptions(
  a: Record<string, unknown>,
  words: { script: string; scriptArgs: string[] },
  cwd: string,
  env: Env,
  syncDir?: string,
): JobOptions {
  const masterAddr = text('master-addr', a['master-addr'])
  if (masterAddr !== undefined && !isHostOrAddress(masterAddr))
    throw usageError(`--master-addr ${JSON.stringify(masterAddr)} is not a host name or address`)
  const chdir = text('chdir', a.chdir) ?? syncDir ?? cwd
  if (!isAbsolute(chdir) && !chdir.startsWith('~'))
    throw usageError(`--chdir must be an absolute path on the nodes (got ${JSON.stringify(chdir)})`)
  const job: JobOptions = {
    ...words,
    chdir,
    python: text('python', a.python) ?? 'python3',
    setup: setupSteps(a),
    env: readEnvOptions(a, cwd, env),
  }
  const optional = {
    nprocPerNode: int('nproc-per-node', text('nproc-per-node', a['nproc-per-node']), 1, 1024),
    masterAddr,
    masterPort: portFlag('master-port', a['master-port']),
    restarts: int('restarts', text('restarts', a.restarts), 0, 100),
  }
  for (const [k, v] of Object.entries(optional)) if (v !== undefined) Object.assign(job, { [k]: v })
  return job
}

/** How strict the pre-flight is. */
export function readPreflightOptions(a: Record<string, unknown>): PreflightOptions {
  const options: PreflightOptions = {
    strict: a.strict === true,
    allowVersionSkew: a['allow-version-skew'] === true,
    allowBusyGpus: a['allow-busy-gpus'] === true,
  }
  const wait = optionalDuration('wait-for-gpus', a['wait-for-gpus'])
  if (wait !== undefined) options.waitForGpusS = wait
  return options
}
