import type { ScanLimits } from './limits.js'

/** `--sync`: copy a local tree to every node's working directory before the launch. */
export interface SyncOptions {
  /** The local tree (absolute). */
  dir: string
  /** `--sync-delete`: remove files on the nodes that are gone here (never ignored ones). */
  deleteExtra: boolean
  limits: ScanLimits
}
