import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { TestProject } from 'vitest/node'
import type { ClusterInfo } from './cluster.js'

const CLUSTER_SH = fileURLToPath(new URL('../cluster/cluster.sh', import.meta.url))
const SLURM_SH = fileURLToPath(new URL('../cluster/slurm.sh', import.meta.url))
const DIR = process.env.FANOUT_CLUSTER_DIR ?? '/tmp/fanout-cluster'
/** Plain nodes n1..n8 (cluster.sh's default): the scale tests use them. */
const NODES = 8
/** `link`: the host's end of its veth pair on this machine (cluster.sh): `ip link set LINK down` cuts the host off. */
const clusterHost = (name: string, addr: string, link: string): ClusterInfo['hosts'][number] => ({
  name,
  namespace: `fo-${name}`,
  addr,
  dir: `${DIR}/${name}`,
  link,
})

// What the cluster needs, as (Debian package, check that it is usable).
const NEEDS: Array<[string, () => boolean]> = [
  ['openssh-server', () => existsSync('/usr/sbin/sshd')],
  ['openssh-client', () => existsSync('/usr/bin/ssh-keygen') && existsSync('/usr/bin/ssh-agent')],
  ['iproute2', () => spawnSync('ip', ['-V']).status === 0],
  ['python3-torch', () => spawnSync('/usr/bin/python3', ['-c', 'import torch.distributed.run']).status === 0],
  // cluster.sh builds the Debian 13 hosts' root with it (once; reused when present).
  ['debootstrap', () => existsSync('/usr/sbin/debootstrap')],
  // A host behind a firewall that lets SSH through (the reachability check's test).
  ['nftables', () => existsSync('/usr/sbin/nft')],
  // SLURM on h1-h3 (slurm.sh): --via srun, salloc, sbatch.
  ['munge', () => existsSync('/usr/sbin/munged')],
  ['slurmctld', () => existsSync('/usr/sbin/slurmctld')],
  ['slurmd', () => existsSync('/usr/sbin/slurmd')],
  ['slurm-client', () => existsSync('/usr/bin/srun') && existsSync('/usr/bin/salloc') && existsSync('/usr/bin/sbatch')],
]

function installMissing(): void {
  const missing = NEEDS.filter(([, ok]) => !ok()).map(([pkg]) => pkg)
  if (missing.length === 0) return
  console.log(`[fanout e2e] installing ${missing.join(' ')} (apt-get)`)
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env })
  execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], { stdio: 'inherit', env })
}

export default function setup(project: TestProject): (() => void) | undefined {
  if (process.getuid?.() !== 0) {
    if (process.env.CI)
      throw new Error('the end-to-end suite must run as root under CI (it creates network namespaces)')
    console.warn(
      '[fanout e2e] SKIPPED: not running as root, so the namespaced sshd cluster cannot be created. Run as root (CI does).',
    )
    project.provide('cluster', null)
    return undefined
  }
  installMissing()
  execFileSync('bash', [CLUSTER_SH, 'up'], {
    stdio: 'inherit',
    env: { ...process.env, FANOUT_CLUSTER_DIR: DIR, FANOUT_CLUSTER_NODES: String(NODES) },
  })
  execFileSync('bash', [SLURM_SH, 'up'], { stdio: 'inherit', env: { ...process.env, FANOUT_CLUSTER_DIR: DIR } })
  const info: ClusterInfo = {
    dir: DIR,
    sshConfig: `${DIR}/ssh_config`,
    knownHosts: `${DIR}/known_hosts`,
    key: `${DIR}/id_ed25519`,
    slurmConf: `${DIR}/slurm/slurm.conf`,
    work: `${DIR}/work`,
    private: `${DIR}/private`,
    hosts: [
      ...[1, 2, 3, 4, 5].map((i) => clusterHost(`h${i}`, `10.99.0.${10 + i}`, `fo-v${i}`)),
      ...[1, 2, 3].map((i) => clusterHost(`d${i}`, `10.99.0.${30 + i}`, `fo-vd${i}`)),
      ...Array.from({ length: NODES }, (_, i) => clusterHost(`n${i + 1}`, `10.99.1.${11 + i}`, `fo-vn${i + 1}`)),
      clusterHost('jump', '10.99.0.20', 'fo-vjump0'),
      clusterHost('j1', '10.99.2.11', 'fo-vj1'),
      clusterHost('j2', '10.99.2.12', 'fo-vj2'),
    ],
  }
  project.provide('cluster', info)
  return () => {
    execFileSync('bash', [SLURM_SH, 'down'], { stdio: 'inherit', env: { ...process.env, FANOUT_CLUSTER_DIR: DIR } })
    execFileSync('bash', [CLUSTER_SH, 'down'], { stdio: 'inherit', env: { ...process.env, FANOUT_CLUSTER_DIR: DIR } })
  }
}
