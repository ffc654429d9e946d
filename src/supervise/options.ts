// How the job is watched and stopped (cli/ reads it from argv).

export interface TeardownOptions {
  /** Stop every node when one fails. */
  killOnFailure: boolean
  graceS: number
  heartbeatTimeoutS: number
  /** `--timeout`: end the whole job after this long. */
  timeoutS?: number
  /** `--rdzv-timeout`: a node whose workers have not started this long after the launch fails the job. */
  rdzvTimeoutS: number
}
