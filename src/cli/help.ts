/** fanout --help's examples and closing notes (args.ts builds the parser). */

export const EXAMPLES: Array<[string, string]> = [
  ['$0 -H hosts.txt train.py --epochs 3', 'torchrun train.py on every node'],
  ['$0 -H hosts.txt --nproc-per-node 4 train.py', '4 processes per node, not 1 per GPU'],
  ['$0 -H hosts.txt --dry-run train.py', "print each node's command, launch nothing"],
  ["$0 --hosts 'gpu[01-04]' train.py", 'gpu01 to gpu04, no hostfile'],
  ['$0 -H hosts.txt --include a@b:0,1 train.py', 'all of a, GPUs 0 and 1 of b'],
  ['$0 hosts -H hosts.txt --json', 'the nodes, as JSON; connects to nothing'],
  ['$0 check -H hosts.txt --venv ~/venv train.py', 'pre-flight only: every node ready?'],
  ['$0 -H hosts.txt --python ~/venv/bin/python train.py', "use a venv's interpreter"],
  ['$0 -H hosts.txt --env-file .env --env NCCL_DEBUG=INFO train.py', 'set variables on every node'],
  ['$0 -H hosts.txt --timeout 2h -C /shared/proj train.py', 'another directory; stop after 2 hours'],
  ['$0 -H hosts.txt --wait-for-gpus 10m train.py', 'wait for GPUs another job still holds'],
  ['$0 -H hosts.txt --only 0 --log-dir logs train.py', "show rank 0's lines; keep every rank's in logs/"],
  ['$0 -H hosts.txt --json train.py | jq .', 'newline-delimited JSON events for other programs'],
  ['$0 -H hosts.txt --sync train.py', 'copy this directory to every node first (only what changed)'],
  ['$0 -H hosts.txt --jump me@login.example.org train.py', 'nodes behind a bastion: one shared connection to it'],
  ['salloc -N4 $0 train.py', 'inside a SLURM allocation: its nodes, through srun'],
  ['$0 --via sbatch --nodes 4 train.py', 'submit a SLURM batch job that runs this'],
  ['$0 -H hosts.txt --detach train.py', 'start it and return: it goes on without this terminal'],
  ['$0 attach RUN / logs RUN / stop RUN / ps', 'come back to a detached run, fetch its logs, stop it, list them'],
  ['$0 -H hostfile.example examples/train.py', 'the built-in default: localhost, no sshd'],
]

export const EPILOGUE = [
  "Hostfile: one node per line, in rank order (node 0 is the master): host, user@host, host:port, [v6addr]:port or a host range (gpu[01-16], rack[1-2]-n[1-4]), optionally followed by slots=N (processes on that node); # starts a comment. localhost and 127.0.0.1 run on this machine without SSH. Inside a SLURM allocation, without --hostfile or --hosts, the allocation's nodes are used, through srun (--via srun; --via ssh: SSH to them).",
  'Selection (DeepSpeed syntax): --include/--exclude "host[:gpu,gpu]@host…"; a bare host means all of it. GPU indices become the node\'s CUDA_VISIBLE_DEVICES and its process count.',
  '`fanout hosts [--hostfile FILE | --hosts LIST] [selection] [--json]` prints the resolved nodes without connecting (see fanout hosts --help). A script named hosts must come after --.',
  'SSH settings come from ~/.ssh/config (or --ssh-config); host keys must be in known_hosts (--accept-new records new ones, never changed ones); keys come from ssh-agent and IdentityFile (an encrypted one asks for its passphrase once). Nodes behind a jump host (ProxyJump, or --jump) are reached through one shared connection to it.',
  'Everything from SCRIPT on is passed to the script unchanged; put -- before a script name that starts with -.',
  'Detached runs (--detach): every node supervises its part of the job and node 0 the whole (the first failure, --timeout, --restarts, a lost node) without this machine; each node keeps its output in ~/.fanout/runs/RUN (at most --detach-log-max). fanout attach RUN, logs RUN [--node K] [--follow] [--summary], stop RUN and ps come back to it (see fanout attach --help).',
  'While a job runs, Ctrl-\\ (SIGQUIT) prints the Python stack of every thread of every rank, and the job goes on; --timeout prints them before it stops the job.',
].join('\n\n')
