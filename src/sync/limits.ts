import { quote, usageError } from '../errors.js'

/** A refusal threshold: more files (files and links) or more bytes than this is not a code sync. */
export interface ScanLimits {
  maxBytes: number
  maxFiles: number
}

const GiB = 1024 ** 3
export const DEFAULT_LIMITS: ScanLimits = { maxBytes: GiB, maxFiles: 20_000 }

/** rsync's units: K/KiB = 1024, KB = 1000 (B optional). */
const UNITS: Record<string, number> = {
  '': 1,
  k: 1024,
  m: 1024 ** 2,
  g: GiB,
  t: 1024 ** 4,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
}
const SYNC_MAX_HELP =
  'expected a size (5GiB, 2G, 500MB), a file count (50000 or "50000 files"), both (5GiB,50000), or unlimited'

/**
 * A size with its unit (B, K/KiB, M/MiB, G/GiB, T/TiB are powers of 1024, KB/MB/GB/TB of 1000), in
 * bytes; undefined for anything else (a bare number has no unit).
 */
export function parseSize(text: string): number | undefined {
  const size = /^\s*(\d+(?:\.\d+)?|\.\d+)\s*([kmgt]?)(i?)(b?)\s*$/i.exec(text)
  if (!size || !(size[2] || size[4]) || (size[3] && !size[2])) return undefined
  // KiB and K are binary, KB decimal; a bare B is bytes.
  const unit = (size[2] ?? '').toLowerCase() + (size[2] && size[4] && !size[3] ? 'b' : '')
  return Math.floor(Number(size[1]) * (UNITS[unit] as number))
}

/**
 * `--sync-max`: a size (with a unit: B, K/KiB, M/MiB, G/GiB, T/TiB are powers of 1024, KB/MB/GB/TB of
 * 1000), a file count (a plain whole number, optionally followed by "files"), both separated by a comma,
 * or "unlimited" (no limit at all: Infinity). What is not given keeps its default.
 */
export function parseSyncMax(value: string): ScanLimits {
  const bad = (why: string): never => {
    throw usageError(`--sync-max: ${quote(value)} ${why} (${SYNC_MAX_HELP})`)
  }
  if (/^\s*unlimited\s*$/i.test(value)) return { maxBytes: Infinity, maxFiles: Infinity }
  const parts = value.split(',')
  if (parts.length > 2) bad('has more than two parts')
  const limits: Partial<ScanLimits> = {}
  for (const part of parts) {
    const count = /^\s*(\d+)\s*(?:files?)?\s*$/i.exec(part)
    const size = parseSize(part)
    let key: keyof ScanLimits
    let n: number
    if (count) [key, n] = ['maxFiles', Number(count[1])]
    else if (size !== undefined) [key, n] = ['maxBytes', size]
    else return bad(part.trim() === '' ? 'has an empty part' : `does not understand ${quote(part.trim())}`)
    if (limits[key] !== undefined) bad(`gives the ${key === 'maxFiles' ? 'file count' : 'size'} twice`)
    if (!(n > 0) || !Number.isSafeInteger(n)) bad(`must be more than 0 and less than ${Number.MAX_SAFE_INTEGER}`)
    limits[key] = n
  }
  return { ...DEFAULT_LIMITS, ...limits }
}

export function formatBytes(n: number): string {
  if (n === Infinity) return 'unlimited'
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB']
  let k = 0
  while (n >= 1024 ** (k + 1) && k < units.length - 1) k++
  return k === 0 ? `${n} B` : `${(n / 1024 ** k).toFixed(1).replace(/\.0$/, '')} ${units[k]}`
}
