import type { EnvOptions } from './env.js'

// What the user asked of the job and of its pre-flight (cli/ reads them from argv).

/** What runs on every node, where and with what. */
export interface JobOptions {
  script: string
  scriptArgs: string[]
  /** The working directory on the nodes (absolute, or ~). */
  chdir: string
  python: string
  /** Shell lines run on each node before the launcher (--venv, --conda, --setup). */
  setup: string[]
  env: EnvOptions
  nprocPerNode?: number
  masterAddr?: string
  masterPort?: number
  /** Whole-job relaunches after a failure (`--restarts`). */
  restarts?: number
}

export interface PreflightOptions {
  /** Torch patch-level and Python differences are errors. */
  strict: boolean
  /** `--allow-version-skew`: nodes whose torch major.minor differ may launch (a warning). */
  allowVersionSkew: boolean
  /** `--allow-busy-gpus`: GPUs held by other processes are a warning. */
  allowBusyGpus: boolean
  /** `--wait-for-gpus`: how long to wait for busy GPUs to be freed. */
  waitForGpusS?: number
}
