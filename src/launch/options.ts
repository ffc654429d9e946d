import type { HostListOptions } from '../hosts/hostsource.js'
import type { OutputOptions } from '../output/options.js'
import type { LauncherOptions } from '../plan/launcher.js'
import type { JobOptions, PreflightOptions } from '../plan/options.js'
import type { TeardownOptions } from '../supervise/options.js'
import type { SyncOptions } from '../sync/options.js'
import type { SshConnectOptions } from '../transport/ssh/options.js'
import type { SubmitOptions } from './submit.js'

export type { JobOptions, PreflightOptions, SshConnectOptions, TeardownOptions }

/** `--detach`: how much output each node keeps (`--detach-log-max`). */
export interface DetachOptions {
  logMaxBytes: number
}

/**
 * What a launch is asked, validated (cli/ builds it from argv; nothing here reads argv), grouped by
 * the stage that uses it: each stage takes its group, not the whole.
 */
export interface RunOptions {
  /** `run` launches the job; `dry-run` prints each node's command; `check` (`fanout check`) the pre-flight table. */
  mode: 'run' | 'dry-run' | 'check'
  hosts: HostListOptions
  ssh: SshConnectOptions
  job: JobOptions
  preflight: PreflightOptions
  launcher: LauncherOptions
  teardown: TeardownOptions
  output: OutputOptions
  /** `--sync`: the local tree to copy to every node's working directory first. */
  sync?: SyncOptions
  /** `--via sbatch`: submit a batch job that runs this launch, instead of running it here. */
  submit?: SubmitOptions
  /** `--detach`: the job goes on without this fanout, supervised on the nodes. */
  detach?: DetachOptions
}
