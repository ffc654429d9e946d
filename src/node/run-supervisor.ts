import { sh } from './job.js'
import { shellQuote } from './quote.js'

/**
 * A detached run's supervisor (`fanout --detach`): one per node, in Python (torch nodes have it; the
 * standard library only), started over SSH and then on its own, in a session of its own, so that the
 * job no longer depends on fanout's client. It runs the node's launcher exactly as an attached run
 * does, through the job wrapper and its watchdog (job.ts, watchdog.ts), feeding the watchdog
 * heartbeats on its stdin as fanout would: should the supervisor itself die (SIGKILL, OOM), the
 * watchdog sees EOF and stops the job.
 *
 * Node 0's supervisor is the hub: it listens on TCP on the master address (the job's own network;
 * the port is the kernel's choice, said to fanout, which hands it to the others), and the others
 * connect to it. Each end proves it knows the run's secret (HMAC-SHA256 of the other end's fresh
 * challenge); the secret reaches each node on the SSH channel's stdin and is kept in memory only.
 * Heartbeats go both ways every second. The hub decides for the whole run what an attached fanout
 * decides: the first failure stops every node (the root cause is that node, with its last lines),
 * --timeout stops it (the ranks' stacks first), a node not heard from for --heartbeat-timeout is lost
 * (a failure), --restarts relaunches every node on a fresh port. A node that loses the hub for as
 * long stops its job by itself. `fanout stop` sends each supervisor SIGTERM: SIGINT to the job, the
 * grace, SIGKILL, as Ctrl-C does.
 *
 * Each node writes its run directory (~/.fanout/runs/RUN, 0700; files 0600):
 *   output.SEQ.log  one record per line: `TIME nNODE ORIGIN STREAM TEXT`, ORIGIN `rRANK/LOCAL` (the rank
 *                   tagger's frames, demultiplexed) or `-`, STREAM out, err, out~/err~ (the current state
 *                   of a line rewritten with \r, at most once a second) or fanout (the supervisor's
 *                   own events). Past half of --detach-log-max a new segment starts and the one before
 *                   the last is removed: at most the cap per node.
 *   events.jsonl    the supervisor's events; state.json, what it is doing now (pid, the job's process
 *                   group, attempt, state); summary.json (node 0), the run's result, as --log-dir's.
 *   supervisor.log  its own errors, if any.
 * Args: the run id and node (for ps on the node); on stdin, the program as one JSON string, then the
 * run's configuration (RunSupervisorConfig) as one JSON line. On stdout: `fanout.detached=PID PGID
 * PORT` once the job runs, or an error on stderr and exit 1.
 */
const RUN_SUPERVISOR = String.raw`
import hashlib, hmac, json, os, queue, re, secrets, signal, socket, subprocess, sys, threading, time

cfg = json.loads(sys.stdin.readline())
RUN, NODE, HOST = cfg['run'], cfg['node'], cfg['host']
NODES = cfg['nodes']
HB = float(cfg['hb'])
GRACE = float(cfg['grace'])
JOB = cfg['job']
HUB = NODE == 0
SECRET = cfg['secret'].encode()
RUN_DIR = os.path.expanduser(cfg['dir'])
events = queue.Queue()


def iso(t):
    return time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(t)) + '.%03dZ' % int((t % 1) * 1000)


def write_json(name, value):
    tmp = os.path.join(RUN_DIR, '.' + name + '.tmp')
    with open(tmp, 'w') as f:
        json.dump(value, f)
        f.write('\n')
    os.replace(tmp, os.path.join(RUN_DIR, name))


class Log:
    """output.SEQ.log: one record per line; a new segment past half the cap, the one before it removed."""

    def __init__(self, cap):
        self.half = max(1 << 16, cap // 2)
        self.lock = threading.Lock()
        self.seq = 0
        self.fd = self.open()
        self.events = open(os.path.join(RUN_DIR, 'events.jsonl'), 'a')

    def open(self):
        return os.open(os.path.join(RUN_DIR, 'output.%d.log' % self.seq), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def write(self, data):
        with self.lock:
            os.write(self.fd, data)
            if os.fstat(self.fd).st_size >= self.half:
                os.close(self.fd)
                self.seq += 1
                self.fd = self.open()
                try:
                    os.unlink(os.path.join(RUN_DIR, 'output.%d.log' % (self.seq - 2)))
                except OSError:
                    pass

    def event(self, kind, message, **fields):
        t = time.time()
        self.write(('%s n%d - fanout %s\n' % (iso(t), NODE, message)).encode('utf-8', 'replace'))
        with self.lock:
            self.events.write(json.dumps(dict(at=iso(t), node=NODE, event=kind, message=message, **fields)) + '\n')
            self.events.flush()


HEADER = re.compile(rb'\x1e([FS])(\d{0,9}),(\d{0,9}):(\d{1,5})\x1f')
PARTIAL = re.compile(rb'\x1e(?:[FS](?:\d{0,9}(?:,(?:\d{0,9}(?::\d{0,5})?)?)?)?)?')


WORKER_FAILED = re.compile(r'failed \(exitcode: (-?\d+)\) local_rank: (\d+) \(pid: \d+\) of binary')
RANK_PREFIX = re.compile(r'^\[rank\d+\]:\s?')
EXCEPTION_LINE = re.compile(r'^(?:[A-Za-z_][\w.]*\.)?[A-Za-z_]\w*(?:Error|Exception|Interrupt|Exit)(?::|$)')
PEER_LOSS = re.compile(r'Connection closed by peer|Connection reset by peer|Broken pipe|NCCL communicator was aborted|NCCL error|remote process exited|network error|Socket Timeout|DistNetworkError|DistStoreError|RendezvousConnectionError|RendezvousClosedError|Watchdog caught collective operation timeout|SignalException|KeyboardInterrupt', re.I)


def number(b):
    return int(b) if b else None


class Demux:
    """The rank tagger's frames (output/frames.ts): 0x1e F RANK , LOCAL : LEN 0x1f + LEN bytes; S: a worker started."""

    def __init__(self):
        self.held = b''
        self.frame = None

    def push(self, data, final=False):
        out = []
        b = self.held + data
        self.held = b''
        i = u = 0
        while i < len(b):
            if self.frame:
                rank, local, left = self.frame
                n = min(left, len(b) - i)
                out.append((rank, local, b[i:i + n]))
                i = u = i + n
                self.frame = (rank, local, left - n) if left > n else None
                continue
            j = b.find(b'\x1e', i)
            if j < 0:
                break
            m = HEADER.match(b, j)
            if m is None or int(m.group(4)) > 4096 or (m.group(1) == b'S' and int(m.group(4)) != 0):
                if m is None and not final and PARTIAL.fullmatch(b, j):
                    if u < j:
                        out.append((None, None, b[u:j]))
                    self.held = b[j:]
                    return out
                i = j + 1
                continue
            if u < j:
                out.append((None, None, b[u:j]))
            rank, local, n = number(m.group(2)), number(m.group(3)), int(m.group(4))
            i = u = m.end()
            if m.group(1) == b'S':
                out.append((rank, local, 'start'))
            elif n == 0:
                out.append((rank, local, 'end'))
            else:
                self.frame = (rank, local, n)
        if u < len(b):
            out.append((None, None, b[u:]))
        return out


def shown(line):
    """What a terminal shows of a line rewritten with \\r: its last non-empty part."""
    parts = [p for p in line.split(b'\r') if p]
    return parts[-1] if parts else b''


class Output:
    """A node's output: demultiplexed by rank, split into lines, written as records, counted, the last kept."""

    def __init__(self, log):
        self.log = log
        self.lock = threading.RLock()  # scan_line reads the recent lines while a line is added
        self.reset()

    def last(self, n, skip=0):
        """The last n non-empty lines (before the last skip), as text."""
        with self.lock:
            lines = self.recent[-(n + skip):len(self.recent) - skip]
        return [b.decode('utf-8', 'replace') for b in lines]

    def reset(self):
        self.lines = 0
        self.ranks = set()
        self.recent = []
        self.started = False
        self.own_error = None
        self.own_error_at = 0
        self.peer_loss = False
        self.attempt = None

    def relay(self, stream, name):
        demux = Demux() if JOB.get('tagged') else None
        pending = {}
        progress_at = {}
        while True:
            chunk = os.read(stream.fileno(), 65536)
            pieces = (demux.push(chunk, not chunk) if demux else [(None, None, chunk)]) if chunk else (demux.push(b'', True) if demux else [])
            records = []
            t = time.time()
            stamp = iso(t)
            for rank, local, data in pieces:
                key = (rank, local)
                origin = '-' if rank is None and local is None else 'r%s/%s' % ('' if rank is None else rank, '' if local is None else local)
                head = ('%s n%d %s %s ' % (stamp, NODE, origin, name)).encode()
                if data == 'start':
                    self.started = True
                    continue
                if data == 'end':
                    rest = pending.pop(key, b'')
                    if rest:
                        records.append(self.line(head, rank, rest, name))
                    continue
                buf = pending.get(key, b'') + data
                lines = buf.split(b'\n')
                buf = lines.pop()
                for line in lines:
                    records.append(self.line(head, rank, line, name))
                if len(buf) > 65536:
                    records.append(self.line(head, rank, buf, name))
                    buf = b''
                pending[key] = buf
                if b'\r' in buf and t - progress_at.get(key, 0) >= 1 and shown(buf):
                    progress_at[key] = t
                    records.append(('%s n%d %s %s~ ' % (stamp, NODE, origin, name)).encode() + shown(buf) + b'\n')
            if not chunk:
                for (rank, local), rest in pending.items():
                    if rest:
                        origin = '-' if rank is None and local is None else 'r%s/%s' % ('' if rank is None else rank, '' if local is None else local)
                        records.append(self.line(('%s n%d %s %s ' % (stamp, NODE, origin, name)).encode(), rank, rest, name))
            if records:
                self.log.write(b''.join(records))
            if not chunk:
                return

    def line(self, head, rank, line, name):
        text = shown(line)
        with self.lock:
            self.lines += 1
            if rank is not None:
                self.ranks.add(rank)
            if text.strip():
                # Kept as bytes: decoded only when a failure reports them (a flood decodes nothing).
                self.recent.append(text)
                if len(self.recent) > 40:
                    del self.recent[:-20]
            if name == 'err':
                scan_line(self, text.decode('utf-8', 'replace'), rank)
        return head + text + b'\n'


def scan_line(output, line, rank):
    """What a stderr line says of how the node failed, read as supervise/launcher-log.ts reads it."""
    m = WORKER_FAILED.search(line)
    if m:
        code, local = int(m.group(1)), int(m.group(2))
        how = 'was killed by signal %d' % -code if code < 0 else 'exited with code %d' % code
        raised = output.own_error if output.own_error and time.time() - output.own_error_at <= 3 else None
        events.put(('worker-failed', output.attempt, {
            'exit_code': 128 - code if code < 0 else code,
            'what': 'local rank %d %s%s' % (local, how, ' after ' + raised if raised else ''),
            'last_lines': output.last(10, 1),
            'consequence': output.peer_loss and output.own_error is None}))
        return
    trimmed = RANK_PREFIX.sub('', line.strip())
    if EXCEPTION_LINE.match(trimmed):
        if PEER_LOSS.search(line):
            output.peer_loss = True
        elif output.own_error is None:
            who = 'its output showed' if rank is None else 'rank %d raised' % rank
            output.own_error = '%s %s' % (who, trimmed[:200])
            output.own_error_at = time.time()


def words_block(words):
    return '%d\n%s' % (len(words), ''.join(w.replace('\\', '\\\\').replace('\n', '\\n') + '\n' for w in reversed(words)))


def exit_code(rc):
    return rc if rc >= 0 else 128 - rc


def signal_name(rc):
    """TERM for a process that SIGTERM ended (as SSH reports a signal), else None."""
    try:
        return signal.Signals(-rc).name[3:] if rc < 0 else None
    except ValueError:
        return None


def describe(rc):
    if rc >= 0:
        return 'exited with code %d' % rc
    try:
        name = signal.Signals(-rc).name
    except ValueError:
        name = 'signal %d' % -rc
    return 'killed by %s' % name


class Job:
    """This node's launcher, run through fanout's job wrapper and watchdog (node/job.ts), fed heartbeats on stdin."""

    def __init__(self, output, attempt, port):
        argv, env = list(JOB['argv']), dict(JOB['env'])
        if port != JOB['port']:
            for i in JOB['port_argv']:
                argv[i] = argv[i].replace(str(JOB['port']), str(port))
            for k in JOB['port_env']:
                env[k] = env[k].replace(str(JOB['port']), str(port))
        if cfg['restarts'] > 0:
            env['FANOUT_ATTEMPT'] = str(attempt)
        args = [str(int(HB)), str(int(GRACE + 0.999)), '1' if JOB['agent'] else '0', JOB['cwd']] + argv
        self.proc = subprocess.Popen(['/bin/sh', '-c', JOB['program'], 'fanout-job'] + args, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        self.attempt = attempt
        self.started = time.time()
        self.stopping = None
        self.lock = threading.Lock()
        self.send((words_block(JOB['setup']) + words_block(['%s=%s' % kv for kv in env.items()])).encode('utf-8', 'surrogateescape'))
        readers = [threading.Thread(target=output.relay, args=(s, n), daemon=True) for s, n in ((self.proc.stdout, 'out'), (self.proc.stderr, 'err'))]
        for r in readers:
            r.start()

        def wait():
            for r in readers:
                r.join()
            events.put(('exit', attempt, self.proc.wait()))

        threading.Thread(target=wait, daemon=True).start()

    def send(self, data):
        with self.lock:
            try:
                self.proc.stdin.write(data)
                self.proc.stdin.flush()
            except (OSError, ValueError):
                pass

    def stop(self, control):
        self.send(control)
        if control != b'K' and self.stopping is None:
            self.stopping = time.time()
            timer = threading.Timer(GRACE, lambda: self.send(b'K'))
            timer.daemon = True
            timer.start()


def mac(nonce, role):
    return hmac.new(SECRET, ('fanout-run|%s|%s|%s' % (RUN, nonce, role)).encode(), hashlib.sha256).hexdigest()


class Link:
    """One authenticated TCP connection between node 0 (the hub) and a node: JSON lines, heartbeats both ways."""

    def __init__(self, sock):
        self.sock = sock
        self.file = sock.makefile('rb')
        self.lock = threading.Lock()

    def send(self, msg):
        data = (json.dumps(msg) + '\n').encode()
        with self.lock:
            try:
                self.sock.sendall(data)
                return True
            except OSError:
                return False

    def read(self):
        line = self.file.readline(1 << 20)
        if not line.endswith(b'\n'):
            raise OSError('connection closed')
        return json.loads(line)

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def hub_accept(server):
    """Peers of this run only: each proves it knows the run's secret (HMAC of a fresh challenge), and so does the hub."""
    while True:
        try:
            sock, _ = server.accept()
        except OSError:
            return
        threading.Thread(target=hub_peer, args=(sock,), daemon=True).start()


def hub_peer(sock):
    link = Link(sock)
    try:
        sock.settimeout(5)
        nonce = secrets.token_hex(16)
        link.send({'t': 'hello', 'nonce': nonce})
        hello = link.read()
        node = hello.get('node')
        if not isinstance(node, int) or not 0 < node < len(NODES) or not hmac.compare_digest(str(hello.get('mac')), mac(nonce, 'node%d' % node)):
            raise OSError('not a peer of this run')
        link.send({'t': 'welcome', 'mac': mac(str(hello.get('nonce')), 'hub')})
        sock.settimeout(None)
    except (OSError, ValueError, AttributeError):
        link.close()
        return
    events.put(('joined', node, link))
    try:
        while True:
            events.put(('msg', node, link, link.read()))
    except (OSError, ValueError):
        events.put(('left', node, link))


def peer_connect():
    """Connects to the hub and proves both ends know the secret; raises OSError when it cannot."""
    sock = socket.create_connection((cfg['hub_addr'], cfg['hub_port']), timeout=5)
    link = Link(sock)
    try:
        hello = link.read()
        nonce = secrets.token_hex(16)
        link.send({'t': 'hello', 'node': NODE, 'nonce': nonce, 'mac': mac(str(hello.get('nonce')), 'node%d' % NODE)})
        welcome = link.read()
        if not hmac.compare_digest(str(welcome.get('mac')), mac(nonce, 'hub')):
            raise OSError('the hub did not prove it knows this run\'s secret')
        sock.settimeout(None)
        return link
    except (ValueError, AttributeError):
        link.close()
        raise OSError('the hub did not answer as fanout does')
    except OSError:
        link.close()
        raise


def peer_reader(link):
    try:
        while True:
            events.put(('msg', 0, link, link.read()))
    except (OSError, ValueError):
        events.put(('left', 0, link))


def peer_reconnect():
    """The hub's connection broke: try again every second; the heartbeat timeout decides when to give up."""
    while True:
        time.sleep(1)
        try:
            link = peer_connect()
        except OSError:
            continue
        events.put(('joined', 0, link))
        peer_reader(link)
        return


class Run:
    def __init__(self, log, output):
        self.log, self.output = log, output
        self.attempt = 1
        self.port = JOB['port']
        self.job = None
        self.links = {}
        self.heard = {}
        self.started_at = time.time()
        self.deadline = None if cfg.get('timeout') is None else self.started_at + float(cfg['timeout'])
        self.stop_reason = None
        self.stopping = False
        self.stop_at = None
        self.root = None
        self.records = {}
        self.outcomes = []
        self.restart_at = None
        self.stacks_until = None
        self.finished = None
        self.mine = None
        self.lost = None
        self.failures = []
        self.reported = None
        self.worker_reports = 0
        self.signals = 0
        self.state = {'run': RUN, 'node': NODE, 'host': HOST, 'pid': os.getpid(), 'state': 'running',
                      'started_at': iso(self.started_at), 'nodes': len(NODES)}

    def save(self, **changes):
        self.state.update(changes)
        self.state['log_seq'] = self.log.seq
        write_json('state.json', self.state)

    def start_job(self):
        self.output.reset()
        self.output.attempt = self.attempt
        self.reported = None
        self.worker_reports = 0
        self.failures = []
        self.log.event('start', 'attempt %d: starting the launcher' % self.attempt, attempt=self.attempt)
        self.job = Job(self.output, self.attempt, self.port)
        self.records = {}
        self.state.pop('why', None)
        self.save(state='running', attempt=self.attempt, pgid=self.job.proc.pid, job_started_at=iso(self.job.started))
        if not HUB and 0 in self.links:
            self.links[0].send({'t': 'started', 'attempt': self.attempt})

    def record(self, rc=None, lost=None):
        job = self.job
        rec = {'node': NODE, 'host': HOST, 'attempt': self.attempt, 'ranks': sorted(self.output.ranks), 'lines': self.output.lines,
               'started_at': iso(job.started) if job else iso(self.started_at), 'ended_at': iso(time.time()),
               'stopped_by_fanout': bool(job and job.stopping), 'last_lines': self.output.last(10), 'root_cause': False}
        if lost:
            rec.update(code=None, signal=None, exit_code=255, lost=lost, result=lost)
        else:
            rec.update(code=rc if rc >= 0 else None, exit_code=exit_code(rc), lost=None, result=describe(rc), signal=signal_name(rc))
        return rec

    def report(self, info):
        """This node failed: the hub decides what follows (told again after a reconnection, with the exit)."""
        if self.reported:
            return
        self.reported = info
        if HUB:
            self.failure(0, info)
        elif 0 in self.links:
            self.links[0].send({'t': 'failure', 'attempt': self.attempt, 'failure': info})

    def stop_job(self, control):
        if self.job and self.job.proc.poll() is None:
            self.job.stop(control)

    # -- the hub's side: the whole run's decisions
    def broadcast(self, msg):
        for link in list(self.links.values()):
            link.send(msg)

    def stop_all(self, reason, why, control=b'T', escalate=True):
        if self.stopping:
            if escalate and reason == 'INT' and self.stop_reason == 'INT':
                self.log.event('kill', 'second stop: killing every node now')
                self.broadcast({'t': 'stop', 'control': 'K', 'why': why})
                self.stop_job(b'K')
            return
        self.stopping = True
        self.stop_at = time.time()
        if reason:
            self.stop_reason = reason
        if reason == 'INT':
            # A node that never reached the hub has no job to stop (the launch was called off before it started).
            for n in NODES[1:]:
                if n['rank'] not in self.heard and n['rank'] not in self.records:
                    self.records[n['rank']] = dict(self.record(lost='never started'), node=n['rank'], host=n['host'], last_lines=[], lines=0, ranks=[])
        self.restart_at = None
        self.log.event('stop', '%s; stopping all %d node(s): SIG%s, SIGKILL after %g s' % (why, len(NODES), 'INT' if control == b'I' else 'TERM', GRACE), reason=reason)
        self.broadcast({'t': 'stop', 'control': control.decode(), 'why': why})
        self.stop_job(control)
        self.save(state='stopping', why=why)
        if len(self.records) == len(NODES) and self.finished is None:
            self.attempt_ended()

    def node_ended(self, node, rec):
        if node in self.records or self.finished:
            return
        self.records[node] = rec
        if len(self.records) == len(NODES):
            self.attempt_ended()

    def failure(self, node, info):
        """A node failed (a worker, its launcher, or lost). The first stops every node; those within 3 s
        compete to be the root cause, as in an attached run (supervise/supervisor.ts, launcher-log.ts)."""
        if self.stop_reason or self.finished is not None or any(f['node'] == node for f in self.failures):
            return
        info = dict(info, node=node, host=NODES[node]['host'], at=time.time(), after_stop=self.stopping)
        first = self.failures[0] if self.failures else None
        if (info['at'] - first['at'] > 3) if first else self.stopping:
            return
        self.failures.append(info)
        what = 'node %d (%s) failed: %s' % (node, info['host'], info['what'])
        if first or not cfg['kill_on_failure']:
            if not first:
                self.log.event('failure', what + ' (--no-kill-on-failure: the others go on)', peer=node)
            return
        self.stop_all(None, what)

    def root_cause(self):
        best = None
        for f in self.failures:
            if best is None or (f['consequence'], f['after_stop'], f['at']) < (best['consequence'], best['after_stop'], best['at']):
                best = f
        return best

    def attempt_ended(self):
        root = self.root_cause()
        if root:
            rec = self.records[root['node']]
            rec.update(exit_code=root['exit_code'], result=root['what'], last_lines=root['last_lines'], root_cause=True)
            self.root = dict(rec)
        recs = [self.records[n['rank']] for n in NODES]
        code = {'INT': 130, 'TERM': 143, 'TIMEOUT': 124}.get(self.stop_reason) or (self.root['exit_code'] if self.root else 0)
        if code == 0:
            code = next((r['exit_code'] for r in recs if r['exit_code']), 0)
        self.outcomes.append({'attempt': self.attempt, 'exit_code': code, 'root_cause': self.root, 'nodes': recs})
        lost = any(r['lost'] for r in recs)
        if code != 0 and self.stop_reason is None and self.attempt <= cfg['restarts'] and not lost:
            wait = min(30, 2 ** (self.attempt - 1))
            self.log.event('restart', 'attempt %d of %d failed (exit %d); relaunching every node in %d s on a fresh port' % (self.attempt, cfg['restarts'] + 1, code, wait))
            self.restart_at = time.time() + wait
            self.save(state='restarting')
            return
        self.finish(code)

    def restart(self):
        self.restart_at = None
        self.attempt += 1
        self.stopping = False
        self.stop_at = None
        self.root = None
        if cfg['fresh_port']:
            v6 = ':' in cfg['hub_bind']
            s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET)
            s.bind(('::' if v6 else '', 0))  # free on every address, the master's among them
            self.port = s.getsockname()[1]
            s.close()
        self.log.event('restart', 'attempt %d of %d: master port %d' % (self.attempt, cfg['restarts'] + 1, self.port))
        self.broadcast({'t': 'start', 'attempt': self.attempt, 'port': self.port})
        self.start_job()

    def finish(self, code):
        last = self.outcomes[-1] if self.outcomes else None
        state = 'succeeded' if code == 0 else 'stopped' if self.stop_reason == 'INT' else 'timed-out' if self.stop_reason == 'TIMEOUT' else 'failed'
        summary = {'run_id': RUN, 'started_at': iso(self.started_at), 'ended_at': iso(time.time()), 'exit_code': code,
                   'state': state, 'attempts': len(self.outcomes), 'root_cause': last and last['root_cause'],
                   'attempt_results': [{'attempt': o['attempt'], 'exit_code': o['exit_code']} for o in self.outcomes],
                   'nodes': [dict(r, attempt=o['attempt']) for o in self.outcomes for r in o['nodes']]}
        write_json('summary.json', summary)
        self.log.event('end', 'run %s: %s, exit %d' % (RUN, state, code), exit_code=code, state=state)
        self.broadcast({'t': 'done', 'exit_code': code, 'state': state})
        self.finished = code
        self.save(state=state, exit_code=code, ended_at=iso(time.time()))

    # -- every node's side
    def handle(self, ev):
        kind = ev[0]
        if kind == 'exit':
            _, attempt, rc = ev
            if attempt != self.attempt:
                return
            rec = self.record(rc)
            self.log.event('exit', 'attempt %d: launcher %s' % (attempt, rec['result']), exit_code=rec['exit_code'])
            if rec['exit_code'] != 0 and not self.reported:
                out = self.output
                raised = ' after ' + out.own_error if out.own_error else ''
                self.report({'exit_code': rec['exit_code'], 'what': rec['result'] + raised, 'last_lines': out.last(10),
                             'consequence': out.peer_loss and out.own_error is None})
            if HUB:
                self.node_ended(0, rec)
            else:
                self.mine = rec
                self.save(state='waiting', exit_code=rec['exit_code'])
                if 0 in self.links:
                    self.links[0].send({'t': 'exit', 'attempt': attempt, 'record': rec})
        elif kind == 'worker-failed':
            _, attempt, info = ev
            if attempt != self.attempt:
                return
            self.worker_reports += 1
            if self.worker_reports <= cfg['worker_restarts'] and not (self.job and self.job.stopping):
                # torchrun restarts the node's workers itself (--max-restarts); its report reads as a final one.
                self.log.event('worker-restart', '%s; torchrun restarts its workers (restart %d of %d, --max-restarts)' % (info['what'], self.worker_reports, cfg['worker_restarts']))
                self.output.own_error = None
                return
            self.report(info)
        elif kind == 'joined':
            _, node, link = ev
            old = self.links.get(node)
            self.links[node] = link
            self.heard[node] = time.time()
            if old and old is not link:
                old.close()
            if HUB:
                self.log.event('join', 'node %d (%s) joined' % (node, NODES[node]['host']), peer=node)
                if self.stopping:
                    link.send({'t': 'stop', 'control': 'T', 'why': 'the run is stopping'})
                if self.finished is not None:
                    link.send({'t': 'done', 'exit_code': self.finished})
            else:
                if self.reported:
                    link.send({'t': 'failure', 'attempt': self.attempt, 'failure': self.reported})
                if self.mine is not None:
                    link.send({'t': 'exit', 'attempt': self.attempt, 'record': self.mine})
        elif kind == 'left':
            _, node, link = ev
            if self.links.get(node) is link:
                del self.links[node]
                if not HUB and self.finished is None:
                    threading.Thread(target=peer_reconnect, daemon=True).start()
        elif kind == 'msg':
            _, node, link, msg = ev
            if self.links.get(node) is not link:
                return
            self.heard[node] = time.time()
            (self.hub_message if HUB else self.peer_message)(node, msg)
        elif kind == 'signal':
            why = 'fanout stop (SIG%s)' % ev[1]
            self.signals += 1
            if HUB:
                # Only a second signal to the hub itself kills at once: the others' requests are this same stop.
                self.stop_all('INT', why, b'I', escalate=self.signals > 1)
            else:
                if 0 in self.links:
                    self.links[0].send({'t': 'stop-request', 'why': why})
                self.stop_job(b'I')

    def hub_message(self, node, msg):
        t = msg.get('t')
        if t == 'exit' and msg.get('attempt') == self.attempt:
            self.node_ended(node, msg['record'])
        elif t == 'failure' and msg.get('attempt') == self.attempt:
            self.failure(node, msg['failure'])
        elif t == 'stop-request':
            # fanout stop signals every supervisor: a node's request is the same stop, not a second one.
            self.stop_all('INT', str(msg.get('why')), b'I', escalate=False)

    def peer_message(self, _node, msg):
        t = msg.get('t')
        if t == 'stop':
            self.log.event('stop', 'node 0 orders a stop: %s' % msg.get('why'))
            self.stop_job(msg.get('control', 'T').encode())
            if self.job and self.job.proc.poll() is None:
                self.save(state='stopping', why=msg.get('why'))
        elif t == 'stacks':
            self.stop_job(b'S')
        elif t == 'start':
            self.attempt, self.port, self.mine = msg['attempt'], msg['port'], None
            self.start_job()
        elif t == 'done':
            self.finished = msg.get('exit_code')
            self.log.event('end', 'run %s ended, exit %s' % (RUN, self.finished))
            self.save(state=msg.get('state', 'ended'), exit_code=self.finished, ended_at=iso(time.time()))

    def tick(self):
        now = time.time()
        if self.job and self.job.proc.poll() is None:
            self.job.send(b'.')
        for link in list(self.links.values()):
            link.send({'t': 'hb'})
        if HUB:
            if self.finished is not None:
                return
            for n in NODES[1:]:
                k = n['rank']
                if k in self.records:
                    continue
                silent = now - self.heard.get(k, self.started_at)
                if silent > HB + (5 if k not in self.heard else 0):
                    why = ('never reached node 0' if k not in self.heard else 'stopped answering node 0') + ' (nothing heard for %d s)' % silent
                    self.log.event('lost', 'node %d (%s) %s' % (k, n['host'], why), peer=k)
                    self.failure(k, {'exit_code': 255, 'what': why, 'last_lines': [], 'consequence': False})
                    self.node_ended(k, dict(self.record(lost=why), node=k, host=n['host'], last_lines=[], lines=0, ranks=[]))
            if self.stopping and self.stop_at and now > self.stop_at + GRACE + HB + 5:
                # A node that still has not said how its job ended, long after the stop: lost, so the run can end.
                for n in NODES:
                    if n['rank'] not in self.records:
                        why = 'had not reported its end %d s after the stop' % (now - self.stop_at)
                        self.log.event('lost', 'node %d (%s) %s' % (n['rank'], n['host'], why), peer=n['rank'])
                        self.node_ended(n['rank'], dict(self.record(lost=why), node=n['rank'], host=n['host'], last_lines=[], lines=0, ranks=[]))
            if self.deadline and now >= self.deadline and not self.stopping:
                if JOB.get('tagged') and self.stacks_until is None:
                    self.stacks_until = now + 2
                    self.log.event('stacks', 'timeout: the Python stack of every thread of every rank follows')
                    self.broadcast({'t': 'stacks'})
                    self.stop_job(b'S')
                elif self.stacks_until is None or now >= self.stacks_until:
                    self.stop_all('TIMEOUT', 'timeout (--timeout %gs)' % float(cfg['timeout']))
            if self.restart_at and now >= self.restart_at:
                self.restart()
        else:
            silent = now - self.heard.get(0, self.started_at)
            if self.finished is None and silent > HB:
                why = 'lost contact with node 0 (nothing heard for %d s)' % silent
                self.log.event('lost', why)
                running = self.job and self.job.proc.poll() is None
                if running:
                    self.stop_job(b'T')
                    self.save(state='stopping', why=why)
                self.finished = 255
                self.lost = why

    def guarded(self, step, *args):
        """A bug in one step is written down and the supervisor goes on: the job must not lose its supervisor to it."""
        try:
            step(*args)
        except Exception as e:
            import traceback
            traceback.print_exc()
            self.log.event('error', 'the run supervisor hit a bug (%r); see supervisor.log' % e)

    def done(self):
        if self.finished is None:
            return False
        return not (self.job and self.job.proc.poll() is None)

    def loop(self):
        next_tick = time.time()
        while not self.done():
            try:
                ev = events.get(timeout=max(0, next_tick - time.time()))
                self.guarded(self.handle, ev)
            except queue.Empty:
                next_tick = time.time() + 1
                self.guarded(self.tick)
        if not HUB and self.lost:
            self.save(state='lost', why=self.lost, exit_code=255, ended_at=iso(time.time()))
        # The last messages (the hub's done) get a moment to leave before the sockets close.
        time.sleep(0.2)


def main(ready):
    os.chdir(os.path.expanduser('~'))
    log = Log(int(cfg['log_max']))
    output = Output(log)
    run = Run(log, output)
    port = None
    if HUB:
        family = socket.AF_INET6 if ':' in cfg['hub_bind'] else socket.AF_INET
        server = socket.socket(family, socket.SOCK_STREAM)
        try:
            # The master address, when it is one of this node's (a name may resolve to loopback here).
            socket.inet_pton(family, cfg['hub_bind'])
            server.bind((cfg['hub_bind'], 0))
        except OSError:
            server.bind(('::' if family == socket.AF_INET6 else '0.0.0.0', 0))
        server.listen(64)
        port = server.getsockname()[1]
        run.state['hub'] = '%s:%d' % (cfg['hub_bind'], port)
        threading.Thread(target=hub_accept, args=(server,), daemon=True).start()
    else:
        deadline = time.time() + max(HB, 10)
        while True:
            try:
                link = peer_connect()
                break
            except OSError as e:
                if time.time() > deadline:
                    raise OSError('cannot reach node 0 at %s:%d: %s' % (cfg['hub_addr'], cfg['hub_port'], e.strerror or e))
                time.sleep(0.5)
        run.links[0] = link
        run.heard[0] = time.time()
        threading.Thread(target=peer_reader, args=(link,), daemon=True).start()
        run.state['hub'] = '%s:%d' % (cfg['hub_addr'], cfg['hub_port'])
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda n, _f: events.put(('signal', signal.Signals(n).name[3:])))
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    run.start_job()
    ready('ok %d %d %d' % (os.getpid(), run.job.proc.pid, port or 0))
    run.loop()


def daemon():
    """Forks the supervisor into a session of its own, detached from SSH; the parent reports how its start went."""
    os.umask(0o077)
    try:
        os.makedirs(os.path.dirname(RUN_DIR), 0o700, exist_ok=True)
        os.mkdir(RUN_DIR, 0o700)
    except OSError as e:
        sys.stderr.write('fanout: cannot create the run directory %s: %s\n' % (RUN_DIR, e.strerror or e))
        sys.exit(1)
    r, w = os.pipe()
    if os.fork():
        os.close(w)
        said = b''
        while True:
            b = os.read(r, 4096)
            if not b:
                break
            said += b
        said = said.decode('utf-8', 'replace').strip()
        if said.startswith('ok '):
            sys.stdout.write('fanout.detached=%s\n' % said[3:])
            sys.exit(0)
        sys.stderr.write('fanout: %s\n' % (said or 'the run supervisor ended before it started the job (see %s/supervisor.log)' % RUN_DIR))
        sys.exit(1)
    os.close(r)
    os.setsid()
    null = os.open(os.devnull, os.O_RDWR)
    err = os.open(os.path.join(RUN_DIR, 'supervisor.log'), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(null, 0)
    os.dup2(err, 1)
    os.dup2(err, 2)
    os.close(null)
    os.close(err)
    said = []

    def ready(line):
        said.append(line)
        os.write(w, line.encode())
        os.close(w)

    try:
        main(ready)
    except BaseException as e:
        if not said:
            ready(str(e) if isinstance(e, OSError) and not isinstance(e, (BrokenPipeError,)) else 'the run supervisor failed: %r' % e)
        import traceback
        traceback.print_exc()
        os._exit(1)
    os._exit(0)


daemon()
`

/** What each node's supervisor is told, as one JSON line on its stdin (names as the Python reads them). */
export interface RunSupervisorConfig {
  run: string
  node: number
  host: string
  nodes: Array<{ rank: number; host: string }>
  /** The run directory, `~/` allowed. */
  dir: string
  secret: string
  /** --heartbeat-timeout, s: for the watchdog, and between the supervisors. */
  hb: number
  grace: number
  timeout: number | null
  kill_on_failure: boolean
  restarts: number
  /** torchrun's --max-restarts: worker failures it restarts itself, not the node's failure. */
  worker_restarts: number
  /** Each restart on a fresh port (no --master-port given). */
  fresh_port: boolean
  log_max: number
  /** Node 0: the address to listen on (the master address). */
  hub_bind?: string
  /** The other nodes: where node 0 listens. */
  hub_addr?: string
  hub_port?: number
  job: {
    /** The job wrapper (job.ts JOB). */
    program: string
    cwd: string
    env: Record<string, string>
    setup: readonly string[]
    argv: readonly string[]
    agent: boolean
    tagged: boolean
    /** The master port in argv and env, and the words that hold it (replaced on a restart's fresh port). */
    port: number
    port_argv: number[]
    port_env: string[]
  }
}

// The supervisor's code reaches Python on stdin, not on the command line (a node's `ps` shows
// `fanout-run RUN NODE`, not 30 KB of code); -S: nothing of site-packages is needed.
const BOOT = 'import sys,json;exec(json.loads(sys.stdin.readline()))'
const START = `_fanout_py=$1; shift; exec "$_fanout_py" -S -c ${shellQuote(BOOT)} fanout-run "$@"`

/** The command that starts a node's supervisor with `python`. */
export const supervisorCommand = (python: string, run: string, node: number): string =>
  sh(START, 'fanout-detach', [python, run, String(node)])

/** The supervisor's stdin: its program, then its configuration. */
export const supervisorInput = (config: RunSupervisorConfig): string =>
  `${JSON.stringify(RUN_SUPERVISOR)}\n${JSON.stringify(config)}\n`

/** `fanout.detached=PID PGID PORT` from the supervisor's stdout. */
export function readDetached(stdout: string): { pid: number; pgid: number; port: number } | undefined {
  const m = /^fanout\.detached=(\d+) (\d+) (\d+)$/m.exec(stdout)
  return m ? { pid: Number(m[1]), pgid: Number(m[2]), port: Number(m[3]) } : undefined
}
