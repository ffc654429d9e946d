import { sh } from './job.js'

// What the reader and the stopper share: the run directory (their first argument), its JSON files, and
// whether its supervisor is still there.
const RUN_DIR = String.raw`
import json, os, re, signal, sys, time

d = os.path.expanduser(sys.argv[1])


def load(name):
    try:
        with open(os.path.join(d, name)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def supervising(pid):
    """Whether pid is still a run supervisor: a pid reused since by another process is not."""
    try:
        with open('/proc/%d/cmdline' % pid, 'rb') as f:
            return b'fanout-run' in f.read()
    except (OSError, TypeError, ValueError):
        return False
`

/**
 * What fanout runs on a node to read a detached run's directory (run-supervisor.ts) and to stop it:
 * Python, as the supervisor is, given as `-c` (a few KB).
 *
 * The reader: `DIR MODE SEQ OFFSET LINES`. MODE `state`: the run's state only; `read`: the output
 * from SEQ/OFFSET to its current end; `tail`: from where the last LINES records begin; `follow`:
 * from SEQ/OFFSET and on, until the supervisor has ended and everything is read. It writes messages
 * `KIND FIELD... LEN\n` then LEN bytes: `chunk SEQ OFFSET LEN` (bytes of output.SEQ.log from OFFSET),
 * `state LEN` (JSON: state.json, summary.json, whether the supervisor is alive, the segments, how
 * many segments rotation removed before they were read), `end 0`, `missing 0` (no such run directory).
 * While following, the state comes again when it changes and every two seconds, so that a reader
 * whose fanout is gone meets the closed channel and ends.
 */
const RUN_READER =
  RUN_DIR +
  String.raw`
mode, seq, off, lines = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
out = sys.stdout.buffer
signal.signal(signal.SIGPIPE, signal.SIG_DFL)


def emit(kind, payload=b'', *fields):
    out.write((' '.join([kind] + [str(f) for f in fields] + [str(len(payload))]) + '\n').encode() + payload)
    out.flush()


def alive(state):
    return isinstance(state, dict) and supervising(state.get('pid'))


def segments():
    try:
        names = os.listdir(d)
    except OSError:
        return []
    return sorted(int(m.group(1)) for m in (re.match(r'output\.(\d+)\.log$', n) for n in names) if m)


def path(s):
    return os.path.join(d, 'output.%d.log' % s)


def size(s):
    try:
        return os.path.getsize(path(s))
    except OSError:
        return None


skipped = 0


def status():
    state = load('state.json')
    return {'state': state, 'summary': load('summary.json'), 'alive': alive(state), 'skipped': skipped,
            'segments': [[s, size(s)] for s in segments()], 'dir': d}


def tail_start(n):
    """Where the last n records begin, in the last two segments."""
    found = 0
    for s in reversed(segments()[-2:]):
        end = size(s) or 0
        if end == 0:
            continue
        with open(path(s), 'rb') as f:
            pos = end
            while pos > 0:
                step = min(65536, pos)
                pos -= step
                f.seek(pos)
                block = f.read(step)
                i = len(block)
                while True:
                    i = block.rfind(b'\n', 0, i)
                    if i < 0:
                        break
                    if pos + i + 1 < end:
                        found += 1
                        if found >= n:
                            return s, pos + i + 1
        # The segment's first record, which no newline of its own begins.
        found += 1
        if found >= n:
            return s, 0
    return (segments() or [0])[0], 0


def drain():
    """Sends what was written since (seq, off); a segment removed meanwhile (rotation) is counted as skipped."""
    global seq, off, skipped
    moved = False
    while True:
        segs = segments()
        if not segs:
            return moved
        if seq < segs[0]:
            # Removed by rotation before it was read (how much of it was not is not known any more).
            skipped += segs[0] - seq
            seq, off = segs[0], 0
        n = size(seq)
        if n is not None and off < n:
            with open(path(seq), 'rb') as f:
                f.seek(off)
                while off < n:
                    data = f.read(min(1 << 20, n - off))
                    if not data:
                        break
                    emit('chunk', data, seq, off)
                    off += len(data)
            moved = True
            continue
        later = [s for s in segs if s > seq]
        if not later:
            return moved
        seq, off = later[0], 0


if not os.path.isdir(d):
    emit('missing')
    sys.exit(0)
if mode == 'state':
    emit('state', json.dumps(status()).encode())
    emit('end')
    sys.exit(0)
if mode == 'tail':
    seq, off = tail_start(lines)
drain()
last = status()
emit('state', json.dumps(last).encode())
if mode == 'read':
    emit('end')
    sys.exit(0)
quiet = 0
while True:
    time.sleep(0.2)
    moved = drain()
    now = status()
    if now != last or quiet >= 10:
        emit('state', json.dumps(now).encode())
        last, quiet = now, 0
    else:
        quiet += 1
    if not now['alive'] and not moved:
        drain()
        emit('end')
        break
`

/**
 * The stopper: `DIR WAIT`. SIGTERM to the run's supervisor (it stops the job as Ctrl-C does, and node
 * 0's stops every node), waits up to WAIT s for it to end; then SIGKILL to the supervisor, if it is
 * still there, and to exactly the job's process group (state.json), if anything of it is left. Prints
 * one JSON line: the state before, what had to be killed, how many processes are left.
 */
const RUN_STOPPER =
  RUN_DIR +
  String.raw`
wait = float(sys.argv[2])


def group(pgid):
    """The processes of the job's process group (by /proc, not by name)."""
    found = []
    for p in os.listdir('/proc'):
        if p.isdigit():
            try:
                with open('/proc/%s/stat' % p) as f:
                    fields = f.read().rsplit(')', 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[2]) == pgid and fields[0] not in 'ZX':
                found.append(int(p))
    return found


state = load('state.json')
if state is None:
    print(json.dumps({'missing': True}))
    sys.exit(0)
pid, pgid = int(state.get('pid', 0)), int(state.get('pgid', 0))
was = state.get('state')
running = supervising(pid)
if running:
    os.kill(pid, signal.SIGTERM)
deadline = time.time() + wait
while supervising(pid) and time.time() < deadline:
    time.sleep(0.1)
killed = []
if supervising(pid):
    os.kill(pid, signal.SIGKILL)
    killed.append('supervisor')
    time.sleep(0.2)
left = group(pgid) if pgid else []
if left:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass
    killed.append('process group %d (%d process(es))' % (pgid, len(left)))
    t = time.time() + 5
    while group(pgid) and time.time() < t:
        time.sleep(0.1)
print(json.dumps({'was': was, 'running': running, 'killed': killed, 'left': len(group(pgid)) if pgid else 0, 'state': load('state.json')}))
`

export type ReaderMode = 'state' | 'read' | 'tail' | 'follow'

const PY = '_fanout_py=$1; shift; exec "$_fanout_py" -S -c "$@"'

export const readerCommand = (
  python: string,
  dir: string,
  mode: ReaderMode,
  from: { seq: number; offset: number } = { seq: 0, offset: 0 },
  lines = 0,
): string =>
  sh(PY, 'fanout-run-reader', [python, RUN_READER, dir, mode, String(from.seq), String(from.offset), String(lines)])

export const stopperCommand = (python: string, dir: string, waitS: number): string =>
  sh(PY, 'fanout-run-stop', [python, RUN_STOPPER, dir, String(waitS)])
