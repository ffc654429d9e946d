import { expect } from 'vitest'

// Shared by worker-boot.test.ts and rank-tag.test.ts: a worker to take a faulthandler dump of (SIGURG).

/** A waiting thread and a sleeping main thread, both in stuck_here (lines 5-6 and 9-10) from "ready" on. */
export const STUCK = [
  'import threading, time',
  'entered, release = threading.Event(), threading.Event()',
  'def stuck_here(what):',
  '    if what == "event":',
  '        entered.set()',
  '        release.wait()',
  '    else:',
  '        entered.wait()',
  '        print("ready", flush=True)',
  '        t0 = time.monotonic(); time.sleep(1.5); return time.monotonic() - t0',
  't = threading.Thread(target=stuck_here, args=("event",))',
  't.start()',
  'slept = stuck_here("sleep")',
  'release.set(); t.join()',
  'print("done", slept >= 1.5, flush=True)',
  '',
].join('\n')

/**
 * Checks a faulthandler dump of STUCK (`file`: how the dump names the script, a regular expression):
 * two threads, the waiting one and the main one, each in stuck_here.
 */
export function expectStuckDump(dump: string, file: string): void {
  const blocks = dump.split(/\n(?=(?:Current thread|Thread) 0x)/)
  expect(blocks).toHaveLength(2)
  for (const b of blocks) expect(b).toMatch(/^(Current thread|Thread) 0x[0-9a-f]+ \(most recent call first\):\n/)
  const at = (lines: string, caller: string): RegExp =>
    new RegExp(`\n {2}File "${file}", line (${lines}) in stuck_here\n {2}File "[^"]*", line \\d+ in ${caller}\n`)
  expect(blocks.filter((b) => at('5|6', 'run').test(b))).toHaveLength(1)
  expect(blocks.filter((b) => at('9|10', '<module>').test(b))).toHaveLength(1)
}

export const reEscape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
