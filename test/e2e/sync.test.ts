import { execFileSync } from 'node:child_process'
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, expect, it } from 'vitest'
import { cluster, clusterArgs, connectionCount, describeCluster, host, runFanout, waitNoSurvivors } from './cluster.js'

const NODES = ['h1', 'h2', 'h3']
const HOSTS = ['--hosts', NODES.join(',')]
let serial = 0
/** A fresh target directory under each host's private (unshared) directory. */
const target = (): string => join(cluster?.private ?? '', `proj-${Date.now()}-${++serial}`)

// Lists what the node holds: every path under the working directory with its type, size and exec
// bit, and a link's text, one per line; and prints what pkg/mod.py says.
const LIST = `
import os, sys
for base, dirs, files in sorted(os.walk(".")):
    dirs.sort()
    for name in sorted(dirs + files):
        p = os.path.join(base, name)[2:]
        if os.path.islink(p): print("LINK", repr(p), os.readlink(p))
        elif os.path.isdir(p): print("DIR", repr(p))
        else: print("FILE", repr(p), os.path.getsize(p), "x" if os.stat(p).st_mode & 0o100 else "-")
`

const TRAIN = `import os, sys, torch.distributed as dist
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pkg.mod import VALUE
dist.init_process_group("gloo")
sys.stdout.write(f"rank {dist.get_rank()} runs {VALUE}\\n")
`
const HOSTILE = "we'ird $(id) `x`\nname.txt"
// What is synced: path → content (run.sh is executable), and what is not (ignored, or .git).
const SYNCED: Record<string, string> = {
  'list.py': LIST,
  'pkg/mod.py': 'VALUE = "version one"\n',
  'train.py': TRAIN,
  'run.sh': '#!/bin/sh\necho run\n',
  '.gitignore': 'ckpt/\n*.log\n',
  '.fanoutignore': 'data/\n',
  [HOSTILE]: 'hostile\n',
  '-rf': 'dash\n',
}
const NOT_SYNCED: Record<string, string> = {
  'ckpt/step1.pt': '0'.repeat(100_000),
  'train.log': 'log\n',
  'data/shard0': 'data\n',
  '.git/HEAD': 'ref: refs/heads/main\n',
}

/** A local project: code, an executable, a link inside, ignored files, .git, and awkward names. */
function project(): string {
  const dir = mkdtempSync(join(tmpdir(), 'fanout-sync-src-'))
  chmodSync(dir, 0o755)
  for (const [path, content] of Object.entries({ ...SYNCED, ...NOT_SYNCED })) {
    mkdirSync(join(dir, path, '..'), { recursive: true })
    writeFileSync(join(dir, path), content, { mode: path === 'run.sh' ? 0o755 : 0o644 })
  }
  symlinkSync('pkg/mod.py', join(dir, 'mod-link.py'))
  return dir
}

/** The listing list.py prints for the synced tree (Python's repr of each path). */
const pyRepr = (p: string): string =>
  p.includes("'") ? `"${p.replace(/\n/g, '\\n')}"` : `'${p.replace(/\n/g, '\\n')}'`
const expectedListing = (): string[] =>
  [
    ...Object.entries(SYNCED).map(
      ([p, c]) => `FILE ${pyRepr(p)} ${Buffer.byteLength(c)} ${p === 'run.sh' ? 'x' : '-'}`,
    ),
    "LINK 'mod-link.py' pkg/mod.py",
    "DIR 'pkg'",
  ].sort()

/** Runs list.py on every node in `dir` after syncing `src` there; returns each node's listing. */
async function syncAndList(
  src: string,
  dir: string,
  extra: string[] = [],
): Promise<{ stderr: string; listings: string[][]; code: number | null }> {
  const run = await runFanout([
    ...HOSTS,
    ...clusterArgs(),
    `--sync=${src}`,
    '--chdir',
    dir,
    ...extra,
    '--launcher',
    'none',
    '--',
    '/usr/bin/python3',
    'list.py',
  ])
  const listings = [0, 1, 2].map((n) =>
    run.stdout
      .split('\n')
      .filter((l) => l.startsWith(`[n${n} h${n + 1}]  `))
      .map((l) => l.slice(l.indexOf(']') + 3)),
  )
  return { stderr: run.stderr, listings, code: run.code }
}

const sentLine = (stderr: string, n: number): string => new RegExp(`sync n${n} h${n + 1}: (.*)`).exec(stderr)?.[1] ?? ''

afterEach(async () => {
  expect(await waitNoSurvivors(cluster?.hosts ?? [])).toEqual([])
})

describeCluster('--sync to hosts that share no files', () => {
  it('the first sync copies the tree (modes, links, awkward names) and nothing ignored; the second sends only the changed file', async () => {
    const src = project()
    const dir = target()
    try {
      const first = await syncAndList(src, dir)
      expect(first.code, first.stderr).toBe(0)
      for (const listing of first.listings) expect(listing.sort()).toEqual(expectedListing())
      for (const n of [0, 1, 2])
        expect(sentLine(first.stderr, n)).toMatch(/^sent 8 files \(.*\), 1 link; 0 unchanged; tree [0-9a-f]{8}$/)
      // Every node hashes like the local tree (the pre-flight compares them).
      const trees = [0, 1, 2].map((n) => /tree ([0-9a-f]{8})$/.exec(sentLine(first.stderr, n))?.[1])
      expect(new Set(trees).size).toBe(1)
      expect(first.stderr).toContain(`tree ${trees[0]}) to ${dir} on every node`)

      writeFileSync(join(src, 'pkg', 'mod.py'), 'VALUE = "version two, longer"\n')
      const second = await syncAndList(src, dir)
      expect(second.code, second.stderr).toBe(0)
      for (const n of [0, 1, 2]) expect(sentLine(second.stderr, n)).toMatch(/^sent 1 file \(30 B\); 8 unchanged; tree /)
      for (const listing of second.listings) expect(listing).toContain("FILE 'pkg/mod.py' 30 -")
    } finally {
      rmSync(src, { recursive: true, force: true })
    }
  })

  it('a torchrun job launched with --sync on 3 hosts that do not share files runs the synced code', async () => {
    const src = project()
    try {
      const run = await runFanout([
        ...HOSTS,
        ...clusterArgs(),
        `--sync=${src}`,
        '--chdir',
        target(),
        '--nproc-per-node',
        '1',
        'train.py',
      ])
      expect(run.code, run.stderr).toBe(0)
      for (const rank of [0, 1, 2])
        expect(run.stdout).toContain(`[n${rank} h${rank + 1} r${rank}]  rank ${rank} runs version one`)
    } finally {
      rmSync(src, { recursive: true, force: true })
    }
  })

  it('a link planted on a node never lets the sync write outside the target; --sync-delete mirrors deletions, ignored files stay', async () => {
    const src = project()
    const dir = target()
    const outside = mkdtempSync(join(tmpdir(), 'fanout-outside-'))
    chmodSync(outside, 0o777)
    try {
      // On h1, pkg is a link to a directory outside the target, planted before the sync.
      execFileSync('ssh', [
        '-F',
        cluster?.sshConfig ?? '',
        '-o',
        'BatchMode=yes',
        'h1',
        `mkdir -p '${dir}/ckpt' && ln -s '${outside}' '${dir}/pkg' && echo keep > '${dir}/ckpt/step9.pt' && echo stale > '${dir}/old.py'`,
      ])
      const run = await syncAndList(src, dir)
      expect(run.code, run.stderr).toBe(0)
      expect(readdirSync(outside)).toEqual([])
      expect(run.listings[0]).toContain("DIR 'pkg'")
      expect(run.listings[0]).toContain("FILE 'pkg/mod.py' 22 -")
      // Extras are reported, not deleted, without --sync-delete; ignored ones are not even reported.
      expect(run.stderr).toMatch(
        /node 0 \(h1\): 1 file\(s\) in .* are not in the local tree: old\.py \(--sync-delete removes them\)/,
      )
      expect(run.listings[0]).toContain("FILE 'old.py' 6 -")
      const deleting = await syncAndList(src, dir, ['--sync-delete'])
      expect(deleting.code, deleting.stderr).toBe(0)
      expect(deleting.listings[0]).not.toContain("FILE 'old.py' 6 -")
      expect(deleting.listings[0]).toContain("FILE 'ckpt/step9.pt' 5 -")
    } finally {
      rmSync(src, { recursive: true, force: true })
      rmSync(outside, { recursive: true, force: true })
    }
  })

  it('refuses, before connecting, a tree over the limit (naming the biggest files) and a link out of the tree', async () => {
    const src = project()
    try {
      const before = NODES.map((h) => connectionCount(host(h)))
      writeFileSync(join(src, 'model.bin'), Buffer.alloc(50_000))
      const big = await runFanout([
        ...HOSTS,
        ...clusterArgs(),
        `--sync=${src}`,
        '--sync-max',
        '10KiB',
        '--launcher',
        'none',
        '--',
        'true',
      ])
      expect(big.code).toBe(2)
      expect(big.stderr).toMatch(/--sync-max/)
      expect(big.stderr).toContain('model.bin')
      rmSync(join(src, 'model.bin'))
      symlinkSync('/etc/passwd', join(src, 'passwd'))
      const link = await runFanout([...HOSTS, ...clusterArgs(), `--sync=${src}`, '--launcher', 'none', '--', 'true'])
      expect(link.code).toBe(2)
      expect(link.stderr).toMatch(/passwd.*\/etc\/passwd.*outside/)
      expect(NODES.map((h) => connectionCount(host(h)))).toEqual(before)
    } finally {
      rmSync(src, { recursive: true, force: true })
    }
  })
})
