/**
 * The worker bootstrap: a few lines of Python that the rank tagger (output/rank-tag.ts) runs in place
 * of `python -u SCRIPT ARGS` / `python -u -m MODULE ARGS`, as
 *
 *     [sys.executable, '-u', '-c', WORKER_BOOT, SCRIPT, ARGS...]
 *     [sys.executable, '-u', '-c', WORKER_BOOT, '-m', MODULE, ARGS...]
 *
 * (the word after the bootstrap says the mode: `-m` for a module, anything else is the script itself,
 * which CPython could not have taken for an option either). It registers faulthandler for SIGURG with
 * all_threads, so that a SIGURG (whose default action is to be ignored: harmless to a process that has
 * not registered yet) makes the worker write the Python stack of every thread to its stderr, and goes
 * on running: fanout's "where is it stuck". PYTHONFAULTHANDLER and -X faulthandler cover fatal signals
 * only; a registration for another signal is made from Python code and does not survive exec, hence a
 * bootstrap in the worker's own process. Then it runs the user's program, unmodified, as CPython's own
 * main would have (Modules/main.c, Python/pythonrun.c; compared with 3.8 to 3.13, worker-boot.test.ts):
 *
 * - a script: sys.argv = [SCRIPT as given, ARGS...]; sys.path[0] = the directory of realpath(SCRIPT),
 *   unless sys.flags.safe_path (-P, PYTHONSAFEPATH: nothing is put there); __file__ and the code's
 *   filename are SCRIPT made absolute as CPython does from 3.9 on (getcwd() + '/' + SCRIPT, not
 *   normalised), as given on 3.8; the code runs in the real __main__ module's dict, with __cached__
 *   None, a SourceFileLoader, and nothing of the bootstrap's own (its one global is gone before the
 *   script starts); __file__ and __cached__ are removed again when the script ends (as CPython does,
 *   so that atexit handlers see what they would); a missing or unreadable script gives CPython's
 *   message (`PYTHON: can't open file '/abs/path': [Errno 2] ...`, the path as repr() from 3.10 on)
 *   and exit status 2; a directory or zip file runs its __main__ as CPython does (sys.path[0] = the
 *   path, then runpy._run_module_as_main('__main__', alter_argv=False)).
 * - a module: sys.path[0] = the current directory (unless safe_path), then
 *   runpy._run_module_as_main(MODULE), which sets sys.argv[0] as `python -m` does (`-m` until found).
 * - sys.orig_argv (3.10+) loses the bootstrap's two words: [PYTHON, '-u', SCRIPT or -m MODULE, ARGS...].
 * - An uncaught exception is printed by the sys.excepthook in force when it reached the top, with its
 *   traceback as CPython would have it (the bootstrap's frames taken off, also in sys.last_traceback and
 *   the exception's __traceback__), through CPython's own PyErr_Print, so exit status 1, "Error in
 *   sys.excepthook", sys.last_* and an uncaught KeyboardInterrupt ending the process by SIGINT (3.8+)
 *   are CPython's own; SystemExit is not touched. A syntax error in the script prints as it would.
 *
 * What remains different: while the program runs, one frame of the bootstrap sits below the script's
 * (`File "<string>", line N in <module>` at the bottom of a faulthandler dump; inspect.stack() and
 * sys._getframe() see it, and a warning whose stacklevel reaches past the script's top frame names it
 * instead of `sys:1`); `ps` shows the bootstrap's source in the worker's command line; a compiled .pyc
 * given as the script is not supported (CPython would run it), nor is a NUL byte in the source reported
 * as CPython would; faulthandler and signal are in sys.modules (runpy only where CPython imports it too).
 *
 * How: `_()` does all of the above that comes before the program and returns a context manager whose
 * __enter__ gives (exec, [code], [__main__.__dict__]) or (runpy._run_module_as_main, [name],
 * [alter_argv]); the last line binds that to `_` (the only global the
 * bootstrap ever has: the function goes with it), pops it and calls it through next(map(...)), so that
 * no frame of the bootstrap's but its module's lies between it and the program's. The manager's
 * __exit__ removes __file__/__cached__ after a script that ended, or, for an exception other than
 * SystemExit, puts a one-shot sys.excepthook in place that takes the bootstrap's frames off and calls
 * the hook it replaced; the exception then goes on to CPython's top level.
 *
 * Constraints: no single quote, no `$` (the tagger, which embeds it, must have neither: see
 * rank-tag.ts), no triple double quote, no backslash at the end (it sits in the tagger as r"""...""").
 * All of it travels in every node's command: keep it short.
 */
export const WORKER_BOOT = String.raw`def _():
 import sys,os,faulthandler,signal
 faulthandler.register(signal.SIGURG,all_threads=True)
 g=sys.modules["__main__"].__dict__;K=sys._getframe(),sys._getframe(1);V=sys.version_info;P=sys.path;a=sys.argv;s=getattr(sys.flags,"safe_path",0);c=r=0
 if V>(3,10):o=sys.orig_argv;n=len(o)-len(a);del o[n-1:n+1]
 del a[0];f=t=a[0]
 def D():
  if c:g.pop("__file__",0);g.pop("__cached__",0)
 def E():
  h=sys.excepthook
  def W(t,v,b):
   sys.excepthook=h
   while b and b.tb_frame in K:b=b.tb_next
   sys.last_traceback=b;h(t,v.with_traceback(b),b);D()
  sys.excepthook=W
 class C:
  def __enter__(x):return r
  def __exit__(x,t,v,b):
   if t is None:D()
   elif not issubclass(t,SystemExit):E()
 if t=="-m":
  r=[a.pop(1)],[1]
  if not s:P[0]=os.getcwd()
 else:
  if V>(3,9)and t[:1]!="/":
   try:f=os.getcwd()+"/"+t
   except OSError:pass
  for h in sys.path_hooks:
   try:h(f)
   except ImportError:continue
   P[:not s]=[f];r=["__main__"],[0];break
 if r:import runpy;r=(runpy._run_module_as_main,)+r;return C()
 if not s:P[0]=os.path.dirname(os.path.realpath(t))
 try:
  with open(f,"rb")as x:b=x.read()
 except OSError as e:sys.stderr.write(("%s: can\x27t open file "+("%r"if V>(3,10)else"\x27%s\x27")+": [Errno %d] %s\n")%(sys.executable,f,e.errno,e.strerror));sys.exit(2)
 c=1;g.update(__file__=f,__cached__=None,__loader__=__import__("_frozen_importlib_external").SourceFileLoader("__main__",f))
 try:r=exec,[compile(b,f,"exec")],[g]
 except Exception:E();raise
 return C()
with _()as _:next(map(*globals().pop("_")))
`
