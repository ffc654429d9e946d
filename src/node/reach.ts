// The reachability check a launch runs between the probe and the job, in each node's held shell
// (remote-probe.ts: no session of its own): node 0 listens on the master port the job will use, every
// other node connects to the master address there, as torch's agents and workers will. A node that
// cannot (a firewall that lets SSH through and drops the rest, a wrong route) is named before
// anything is launched, instead of a job that hangs in rendezvous without a word.
//
// Python, run with -S (nothing of site-packages is needed). Args:
//   listen ADDR PORT TIMEOUT_S EXPECTED   bind PORT (SO_REUSEADDR, as torch's TCPStore does), accept
//                                         up to EXPECTED connections or until TIMEOUT_S
//   connect ADDR PORT TIMEOUT_S [NAME...] connect to ADDR:PORT until TIMEOUT_S (a refused connection is
//                                         tried again every 0.1 s: the listener may not be up yet), then
//                                         resolve each NAME (torch 1.x's c10d gives workers host names)
// It prints fanout.reach_listen=ok|error MESSAGE, fanout.reach_accepted=N; fanout.reach=ok SOURCE |
// fail MESSAGE; fanout.resolve=NAME [ADDRESS...]. It travels on the held shell's stdin, as a word of
// the block that asks for the check, so that the command of every launch does not carry it.
export const REACH_PYTHON = `
import socket, sys, time
role, addr, port, timeout = sys.argv[1:5]
port = int(port)
deadline = time.monotonic() + float(timeout)
family = socket.AF_INET6 if ":" in addr else socket.AF_INET
def say(line):
    sys.stdout.write(line + "\\n")
    sys.stdout.flush()
if role == "listen":
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("", port))
        s.listen(128)
    except OSError as e:
        say("fanout.reach_listen=error " + (e.strerror or str(e)))
        sys.exit(0)
    say("fanout.reach_listen=ok")
    n = 0
    while n < int(sys.argv[5]) and time.monotonic() < deadline:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            c = s.accept()[0]
            c.close()
            n += 1
        except OSError:
            pass
    s.close()
    say("fanout.reach_accepted=%d" % n)
else:
    why = "timed out"
    while time.monotonic() < deadline:
        c = socket.socket(family, socket.SOCK_STREAM)
        c.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            c.connect((addr, port))
            say("fanout.reach=ok " + c.getsockname()[0])
            why = None
            break
        except socket.timeout:
            why = "timed out"
        except OSError as e:
            why = e.strerror or str(e)
            time.sleep(0.1)
        finally:
            c.close()
    if why:
        say("fanout.reach=fail " + why)
    for name in sys.argv[5:]:
        try:
            found = sorted(set(a[4][0] for a in socket.getaddrinfo(name, None, 0, socket.SOCK_STREAM)))
        except OSError:
            found = []
        say("fanout.resolve=" + " ".join([name] + found))
`

/** The end of one check's output, on stdout and on stderr, as PROBE_END ends the probe's. */
export const REACH_END = 'fanout.reach_end'

/** The words a held shell is sent to run the check (HELD in remote-probe.ts reads them). */
export function reachWords(
  python: string,
  check: { role: 'listen'; expected: number } | { role: 'connect'; names: readonly string[] },
  addr: string,
  port: number,
  timeoutS: number,
): string[] {
  const tail = check.role === 'listen' ? [String(check.expected)] : check.names
  return ['reach', python, REACH_PYTHON, check.role, addr, String(port), String(timeoutS), ...tail]
}
