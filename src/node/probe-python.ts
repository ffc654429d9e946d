// The Python part of the node probe (remote-probe.ts runs it with the node's interpreter).

// What the probe asks Python, in one start (on a loaded node, Python's start-up is the slowest step of
// the probe): argv is "1" to look for torch, "1" to find a free port, a port that must be free (""), and
// "1" when the job uses a c10d rendezvous: then whether torchrun has --local-addr (torch 2.x; read from
// its source, not imported), and where it has not, the host name its agent would give the workers
// (socket.getfqdn, as torch 1.x's agent calls it: the pre-flight checks that the others resolve it).
// torch is found, and its version.py read, without importing it (an import takes seconds). The port
// check sets SO_REUSEADDR as torch's TCPStore does: connections of the last run in TIME_WAIT do not count.
// It imports as little as it can, since every node pays for each import on every launch: _socket, not
// socket (which brings enum and selectors: 24 of a 38 ms start, measured), the finders already loaded,
// not importlib.util, and no re (17 ms): the version is read with str methods.
export const PYTHON_PROBE = `
import sys
torch, want_port, port, c10d = (sys.argv[1:5] + [""])[:4]
if want_port == "1" or port:
    try:
        import _socket as socket
    except ImportError:
        import socket
    if want_port == "1":
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("", 0))
        print("fanout.free_port=%d" % s.getsockname()[1])
        s.close()
    if port:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("", int(port)))
            print("fanout.port_free=yes")
        except Exception:
            print("fanout.port_free=no")
        s.close()
    sys.stdout.flush()
if torch == "1":
    import os
    def version_in(text):
        i = text.find("__version__")
        while i >= 0:
            rest = text[i + 11:].lstrip(" \\t")
            if rest[:1] == "=":
                rest = rest[1:].lstrip(" \\t")
                end = rest.find(rest[:1], 1) if rest[:1] in ("'", '"') else -1
                if end > 1:
                    return rest[1:end]
            i = text.find("__version__", i + 11)
        return ""
    spec = None
    for finder in sys.meta_path:
        find = getattr(finder, "find_spec", None)
        spec = find("torch", None) if find else None
        if spec:
            break
    print("fanout.torch=" + ("yes" if spec else "no"))
    print("fanout.python_version=%d.%d.%d" % sys.version_info[:3])
    for folder in (spec.submodule_search_locations or []) if spec else []:
        try:
            with open(os.path.join(folder, "version.py")) as f:
                print("fanout.torch_version=" + version_in(f.read()))
            break
        except OSError:
            pass
    if c10d == "1" and spec:
        flag = False
        for folder in spec.submodule_search_locations or []:
            try:
                with open(os.path.join(folder, "distributed", "run.py")) as f:
                    text = f.read()
                flag = '"--local-addr"' in text or '"--local_addr"' in text
                break
            except OSError:
                pass
        print("fanout.local_addr_flag=" + ("yes" if flag else "no"))
        if not flag:
            sys.stdout.flush()
            import socket
            print("fanout.fqdn=" + socket.getfqdn(socket.gethostname()))
`
