/**
 * The rank tagger: a few lines of Python that torchrun runs (with `--no_python`) instead of each worker.
 *
 * It creates two pipes, double-forks a sidecar that reads them and writes every read as one frame
 * (`\x1eF<RANK>,<LOCAL_RANK>:<LEN>\x1f<LEN bytes>`, at most PIPE_BUF bytes, so frames of the ranks
 * sharing torchrun's stdout never interleave) to the original stdout/stderr, and then execs the real
 * worker with fd 1/2 on the pipes. Because it execs, the worker keeps the PID torchrun started, so
 * signals and exit codes are exactly as without the tagger. The sidecar ignores the terminal signals
 * (it leaves at EOF, after the worker's last words); SIGTERM (the watchdog stopping the job) gives it
 * one more second, so that one stuck writing to a dead link cannot hold the job's teardown up.
 * Nothing here changes the process group.
 *
 * The worker gets SIGKILL if its launcher dies (Linux PR_SET_PDEATHSIG, kept across exec): torch 2.x
 * starts every worker in a session of its own (start_new_session=True), out of reach of the process
 * group fanout's watchdog kills, so a launcher killed at grace expiry or on a lost link would
 * otherwise leave its workers running and holding their GPUs.
 *
 * Decisions beyond the frame format: RANK/LOCAL_RANK that are unset, not decimal or longer than 9
 * digits are sent as empty fields; the local-rank flag gets the raw LOCAL_RANK value ('' if unset).
 * The source uses no single quote, so it travels through a shell's single quotes unchanged.
 */
export const RANK_TAGGER = String.raw`import os,sys,select,signal
pp=os.getppid()
def num(k):
    v=os.environ.get(k,"")
    return v if len(v)<10 and not v.strip("0123456789") else ""
mode,at,flag=sys.argv[1:4]
argv=sys.argv[5:]
head=("\x1eF%s,%s:"%(num("RANK"),num("LOCAL_RANK"))).encode()
po,pe=os.pipe(),os.pipe()
pid=os.fork()
if pid==0:
    try:
        if os.fork()==0:
            for s in (signal.SIGINT,signal.SIGHUP,signal.SIGQUIT):
                signal.signal(s,signal.SIG_IGN)
            signal.signal(signal.SIGTERM,lambda n,f:signal.alarm(1))
            os.close(po[1]);os.close(pe[1])
            src={po[0]:1,pe[0]:2}
            bad=set()
            while src:
                for r in select.select(list(src),[],[])[0]:
                    d=os.read(r,4000)
                    f=src[r]
                    if not d:
                        del src[r]
                    b=head+str(len(d)).encode()+b"\x1f"+d
                    while b and f not in bad:
                        try:
                            b=b[os.write(f,b):]
                        except BlockingIOError:
                            select.select([],[f],[])
                        except InterruptedError:
                            pass
                        except OSError:
                            bad.add(f)
    finally:
        os._exit(0)
os.waitpid(pid,0)
os.close(po[0]);os.close(pe[0])
os.dup2(po[1],1);os.dup2(pe[1],2)
for w in (po[1],pe[1]):
    if w>2:
        os.close(w)
for s in ("SIGPIPE","SIGXFSZ"):
    if hasattr(signal,s):
        signal.signal(getattr(signal,s),signal.SIG_DFL)
try:
    import ctypes
    ctypes.CDLL(None).prctl(1,signal.SIGKILL)
except Exception:
    pass
if os.getppid()!=pp:
    os._exit(1)
a=[sys.executable,"-u"]+argv if mode=="python" else argv
if int(at)>=0:
    a.insert(int(at)+(2 if mode=="python" else 0),"%s=%s"%(flag,os.environ.get("LOCAL_RANK","")))
try:
    os.execvp(a[0],a)
except OSError as x:
    os.write(2,("fanout: cannot run %s: %s\n"%(a[0],x.strerror)).encode("utf-8","surrogateescape"))
os._exit(127)
`

export interface WorkerSpec {
  /** 'python': argv is run by the tagger's own interpreter (sys.executable) with -u, i.e. [sys.executable, '-u', ...argv]. 'exec': argv[0] is an executable. */
  mode: 'python' | 'exec'
  /** e.g. ['train.py', '--epochs', '3'] or ['-m', 'pkg.mod', 'x'] (python), or ['./run.sh', 'a'] (exec) */
  argv: string[]
  /** Legacy torch.distributed.launch without --use-env: insert `${flag}=${LOCAL_RANK}` right after the script (after argv[insertAt - 1]), as launch itself would. */
  localRankFlag?: { flag: string; insertAt: number }
}

/** The words to put after torchrun's `--no_python`: [python, '-S', '-c', RANK_TAGGER, MODE, INSERT_AT, FLAG, '--', ...argv]. */
export function taggedWorkerArgv(python: string, worker: WorkerSpec): string[] {
  const { mode, argv, localRankFlag: lr } = worker
  if (mode === 'exec' && argv.length === 0) throw new Error('rank tagger: exec mode needs a program to run')
  if (lr && !(Number.isInteger(lr.insertAt) && lr.insertAt >= 1 && lr.insertAt <= argv.length)) {
    throw new RangeError(`rank tagger: local-rank flag position ${lr.insertAt} is outside 1..${argv.length}`)
  }
  // -S: the tagger needs nothing from site-packages, whose start-up (and a sitecustomize) every worker
  // start would pay again; the worker it execs is a fresh interpreter, with site.
  return [python, '-S', '-c', RANK_TAGGER, mode, lr ? String(lr.insertAt) : '-1', lr?.flag ?? '', '--', ...argv]
}
