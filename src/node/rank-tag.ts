import { WORKER_BOOT } from './worker-boot.js'

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
 * A Python worker (a script or `-m` module) is started through the worker bootstrap (node/worker-boot.ts,
 * embedded here): [sys.executable, '-u', '-c', WORKER_BOOT, ...argv] instead of [sys.executable, '-u',
 * ...argv]. It registers faulthandler for SIGURG before the program runs, so that a SIGURG makes the
 * worker dump the stack of each of its threads to its stderr (this tagger's pipe: the dump comes framed
 * with the rank like the rest) and go on; the program itself runs as the interpreter would have run it.
 * A python-mode argv that starts with another interpreter option (`-c CODE`) is run as before,
 * [sys.executable, '-u', ...argv], without the bootstrap.
 *
 * It first writes a start frame (`\x1eS<RANK>,<LOCAL_RANK>:0\x1f`, see frames.ts) on the launcher's
 * stdout: torchrun starts a worker only once its rendezvous is done, so fanout learns which nodes got
 * that far (--rdzv-timeout names the others).
 *
 * Decisions beyond the frame format: RANK/LOCAL_RANK that are unset, not decimal or longer than 9
 * digits are sent as empty fields; the local-rank flag gets the raw LOCAL_RANK value ('' if unset).
 * The source uses no single quote, so it travels through a shell's single quotes unchanged, and no `$`,
 * so that torchrun's `$`-substitution of worker arguments (launcher.ts, escapeMacros) leaves it as it is
 * (describeCommand in plan.ts recognises it by equality).
 */
export const RANK_TAGGER = String.raw`import os,sys,select,signal
pp=os.getppid()
def num(k):
    v=os.environ.get(k,"")
    return v if len(v)<10 and not v.strip("0123456789") else ""
mode,at,flag=sys.argv[2:5]
argv=sys.argv[6:]
head=("\x1eF%s,%s:"%(num("RANK"),num("LOCAL_RANK"))).encode()
try:
    os.write(1,("\x1eS%s,%s:0\x1f"%(num("RANK"),num("LOCAL_RANK"))).encode())
except OSError:
    pass
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
a=argv
if mode=="python":
    B=r"""${WORKER_BOOT}"""
    a=[sys.executable,"-u"]+(["-c",B] if argv[0]=="-m" or argv[0][:1]!="-" else [])+argv
if int(at)>=0:
    a.insert(int(at)+len(a)-len(argv),"%s=%s"%(flag,os.environ.get("LOCAL_RANK","")))
try:
    os.execvp(a[0],a)
except OSError as x:
    os.write(2,("fanout: cannot run %s: %s\n"%(a[0],x.strerror)).encode("utf-8","surrogateescape"))
os._exit(127)
`

export interface WorkerSpec {
  /**
   * 'python': argv is run by the tagger's own interpreter (sys.executable) with -u, through the worker
   * bootstrap (node/worker-boot.ts): [sys.executable, '-u', '-c', WORKER_BOOT, ...argv], which runs it as
   * [sys.executable, '-u', ...argv] would (an argv starting with another option than -m, such as -c, is
   * run so, without it). 'exec': argv[0] is an executable.
   */
  mode: 'python' | 'exec'
  /** e.g. ['train.py', '--epochs', '3'] or ['-m', 'pkg.mod', 'x'] (python), or ['./run.sh', 'a'] (exec) */
  argv: string[]
  /** Legacy torch.distributed.launch without --use-env: insert `${flag}=${LOCAL_RANK}` right after the script (after argv[insertAt - 1]), as launch itself would. */
  localRankFlag?: { flag: string; insertAt: number }
}

/**
 * The words to put after torchrun's `--no_python`: [python, '-S', '-c' + RANK_TAGGER, NAME, MODE,
 * INSERT_AT, FLAG, '--', ...argv]. NAME (the script, module or program) is for torch: when the program
 * it runs is its own interpreter, torch 2's failure report names the job by the first argument that
 * does not start with `-` (launcher/api.py, _get_entrypoint_name), which would otherwise be this
 * tagger's whole source, printed line by line; `-c` is glued to the source for the same reason.
 */
export function taggedWorkerArgv(python: string, worker: WorkerSpec): string[] {
  const { mode, argv, localRankFlag: lr } = worker
  if (argv.length === 0) throw new Error(`rank tagger: ${mode} mode needs a program to run`)
  if (mode === 'python' && argv[0] === '-m' && argv.length < 2) throw new Error('rank tagger: -m needs a module to run')
  if (lr && !(Number.isInteger(lr.insertAt) && lr.insertAt >= 1 && lr.insertAt <= argv.length)) {
    throw new RangeError(`rank tagger: local-rank flag position ${lr.insertAt} is outside 1..${argv.length}`)
  }
  // -S: the tagger needs nothing from site-packages, whose start-up (and a sitecustomize) every worker
  // start would pay again; the worker it execs is a fresh interpreter, with site.
  const name = (mode === 'python' && argv[0] === '-m' ? argv[1] : argv[0]) ?? ''
  return [python, '-S', `-c${RANK_TAGGER}`, name, mode, lr ? String(lr.insertAt) : '-1', lr?.flag ?? '', '--', ...argv]
}
