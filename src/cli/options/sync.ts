import { isAbsolute, resolve } from 'node:path'
import type { Argv } from 'yargs'
import { usageError } from '../../errors.js'
import { DEFAULT_LIMITS, parseSyncMax } from '../../sync/limits.js'
import type { SyncOptions } from '../../sync/options.js'
import { text } from '../parser.js'

// The Sync flags (sync/ does the copying).

export function withSyncOptions<T>(y: Argv<T>) {
  return y
    .option('sync', {
      type: 'boolean',
      default: false,
      describe:
        "copy the current directory (--sync=DIR: that one) to every node's working directory first, over SFTP; only what changed",
      group: 'Sync:',
    })
    .option('sync-dir', {
      type: 'string',
      describe: 'the local tree --sync copies (same as --sync=DIR)',
      group: 'Sync:',
    })
    .option('sync-delete', {
      type: 'boolean',
      default: false,
      describe: 'also delete files on the nodes that are gone here (ignored files are never touched)',
      group: 'Sync:',
    })
    .option('sync-max', {
      type: 'string',
      describe: 'raise the size limit of a sync (default 1GiB,20000 files): e.g. 5GiB,50000 or unlimited',
      group: 'Sync:',
    })
}

/**
 * `--sync` takes an optional DIR, which yargs cannot tell from the script (`--sync train.py`): the DIR
 * must be attached, `--sync=DIR`, and becomes `--sync --sync-dir=DIR`. Only fanout's own words (before
 * the script's) are rewritten; `scriptWords` is how many words at the end belong to the script.
 */
export function expandSyncFlag(argv: readonly string[], scriptWords: number): string[] | undefined {
  const own = argv.length - scriptWords
  if (!argv.slice(0, own).some((w) => w.startsWith('--sync='))) return undefined
  return argv.flatMap((w, i) =>
    i < own && w.startsWith('--sync=') ? ['--sync', `--sync-dir=${w.slice('--sync='.length)}`] : [w],
  )
}

/** The sync flags, validated; undefined without --sync. The tree is read later, before any connection. */
export function readSyncOptions(a: Record<string, unknown>, cwd: string): SyncOptions | undefined {
  const dir = text('sync-dir', a['sync-dir'])
  const on = a.sync === true || dir !== undefined
  const used = ['sync-delete', 'sync-max'].filter((f) => (f === 'sync-delete' ? a[f] === true : a[f] !== undefined))
  if (!on) {
    if (used.length > 0) throw usageError(`--${used[0]} only makes sense with --sync`)
    return undefined
  }
  const max = text('sync-max', a['sync-max'])
  return {
    dir: dir === undefined ? cwd : isAbsolute(dir) ? dir : resolve(cwd, dir),
    deleteExtra: a['sync-delete'] === true,
    limits: max === undefined ? DEFAULT_LIMITS : parseSyncMax(max),
  }
}
