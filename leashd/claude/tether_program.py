"""The program through which leashd starts the Claude Code CLI, so that the CLI, and everything
it starts, ends with the leashd process that started it, even one killed with SIGKILL.

Without it, a daemon killed mid-turn leaves its CLI running, reparented to init: each of its
tool calls fails closed (the gate it asks is gone), yet it goes on talking to the model, and
what it started (the sandbox's socat proxy, a Bash command run unsandboxed) outlives it too.

leashd never imports this file: it runs it, as
`python -I -S tether_program.py LEASHD_PID CLI [ARG...]`, through the stub `leashd.claude.Tether`
writes for each start of the CLI (the agent SDK runs the program named by its `cli_path` with
the CLI's arguments). Only the standard library, and only what is quick: it is on the way of
every turn's start (about 15 ms; the CLI's own start takes seconds).

- The kernel sends this process SIGUSR1 when its parent goes (PR_SET_PDEATHSIG), and it then
  checks that its parent is still LEASHD_PID: had leashd died before, nothing is started. The
  signal comes when the *thread* that started this process ends, which need not be leashd's
  end, so it counts only once the parent has changed (the SDK starts the CLI from the thread
  of leashd's event loop, the main one, but nothing here depends on that).
- It is a child subreaper (PR_SET_CHILD_SUBREAPER): what the CLI starts and leaves behind is
  reparented here, not to init, so that it can be found and ended.
- It starts the CLI as its child, with exactly the argv, environment (the block this process
  was started with, read back from /proc: Python's start can add LC_CTYPE to its own),
  working directory, open files, signal mask and signal dispositions it would have had from
  leashd directly, and a parent-death signal of SIGKILL: should this process be killed, so is
  the CLI.
- leashd gone: SIGKILL to each child, then to what is reparented here as those die, until
  none is left; then it exits.
- Otherwise it waits. SIGTERM (the SDK stopping the CLI) is passed on; SIGINT, SIGQUIT and
  SIGHUP from a terminal reach the CLI itself (it is in the same process group), so they are
  ignored here. When the CLI ends, this process ends the same way (its exit code, or killed by
  the same signal) for the SDK to see, leaving what the CLI left running as it was before.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36

LEASHD_GONE = signal.SIGUSR1  # the parent-death signal of this process
PASSED_ON = (signal.SIGTERM,)
FROM_TERMINAL = (signal.SIGINT, signal.SIGQUIT, signal.SIGHUP)
HANDLED = (LEASHD_GONE, *PASSED_ON, *FROM_TERMINAL)
# what Python's own start ignores, and subprocess (which started this) restores for a child
PYTHON_IGNORES = (signal.SIGPIPE, signal.SIGXFSZ)

_leashd = 0  # the pid of the leashd process that started this one
_cli = 0  # the CLI's pid, once started; 0 again once it is reaped


def main(argv: list[str]) -> int:
    global _leashd, _cli
    _leashd, cli, args = int(argv[1]), argv[2], argv[3:]
    env = _environment()
    before = {s: signal.getsignal(s) for s in HANDLED}
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED)
    signal.signal(LEASHD_GONE, _leashd_gone)
    prctl(PR_SET_CHILD_SUBREAPER, 1)
    prctl(PR_SET_PDEATHSIG, LEASHD_GONE)
    if os.getppid() != _leashd:
        return 1  # leashd died before it could be watched: the CLI is not started
    for s in PASSED_ON:
        if before[s] != signal.SIG_IGN:
            signal.signal(s, _pass_on)
    for s in FROM_TERMINAL:
        signal.signal(s, signal.SIG_IGN)
    me = os.getpid()
    pid = os.fork()
    if pid == 0:
        _become_cli(cli, args, env, before, mask, me)
    _cli = pid
    _detach_stdio()
    signal.pthread_sigmask(signal.SIG_UNBLOCK, HANDLED)  # what came meanwhile is handled now
    while True:
        done, status = os.waitpid(-1, 0)  # the CLI, or something reparented here
        if done == pid:
            break
    _cli = 0
    _end_like(status)
    return 1  # not reached


def _become_cli(
    cli: str,
    args: list[str],
    env: dict[bytes, bytes],
    before: dict[signal.Signals, object],
    mask: set[signal.Signals],
    parent: int,
) -> None:
    """In the child: as leashd would have started it, then the CLI. Never returns."""
    try:
        for s, handler in before.items():
            signal.signal(s, signal.SIG_IGN if handler == signal.SIG_IGN else signal.SIG_DFL)
        for s in PYTHON_IGNORES:
            signal.signal(s, signal.SIG_DFL)
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:
            os._exit(1)  # this process was gone before the CLI could be tied to it
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        os.execve(cli, [cli, *args], env)
    except BaseException as exc:
        with _suppressed():
            os.write(2, f"leashd: cannot start {cli}: {exc}\n".encode(errors="replace"))
    os._exit(127)


def _pass_on(signum: int, frame: object) -> None:
    if _cli > 0:
        with _suppressed():
            os.kill(_cli, signum)


def _leashd_gone(signum: int, frame: object) -> None:
    global _cli
    if os.getppid() == _leashd:
        return  # a thread of leashd ended, not leashd
    _cli = 0  # nothing is passed on any more: its pid may be reaped, and reused, below
    _end_everything()
    os._exit(1)


def _end_everything() -> None:
    """SIGKILL to every child, then to what is reparented here as those die, until none is
    left (a process reparents to its nearest subreaper: this one, whatever session or process
    group it made for itself)."""
    me = os.getpid()
    while True:
        for pid in _children(me):
            with _suppressed():
                os.kill(pid, signal.SIGKILL)
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def _children(parent: int) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue  # gone meanwhile
        fields = stat.rsplit(b")", 1)[-1].split()  # past the command's name, which may hold ")"
        if len(fields) > 1 and int(fields[1]) == parent:
            found.append(int(name))
    return found


def _end_like(status: int) -> None:
    """Exit as the CLI did: its exit code, or killed by the same signal (without a core
    dump of this process's own)."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        with _suppressed():
            import resource

            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        with _suppressed():
            signal.signal(sig, signal.SIG_DFL)  # refused for SIGKILL and SIGSTOP: no matter
        with _suppressed():
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {sig})
            os.kill(os.getpid(), sig)
        os._exit(128 + sig)
    os._exit(os.WEXITSTATUS(status))


def _environment() -> dict[bytes, bytes]:
    """The environment this process was started with, as given to execve: Python's start
    may have changed its own (PEP 538 sets LC_CTYPE under the C locale)."""
    with open("/proc/self/environ", "rb") as f:
        block = f.read()
    env: dict[bytes, bytes] = {}
    for entry in block.split(b"\0"):
        name, eq, value = entry.partition(b"=")
        if eq and name:
            env.setdefault(name, value)
    return env


def _detach_stdio() -> None:
    """Hold none of the CLI's pipes: leashd sees them close when the CLI closes them."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    if null > 2:
        os.close(null)


def prctl(option: int, value: int) -> None:
    fn = ctypes.CDLL(None, use_errno=True).prctl
    fn.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    fn.restype = ctypes.c_int
    if fn(option, value, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


class _suppressed:
    """contextlib.suppress(OSError), without importing contextlib."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: object, tb: object) -> bool:
        return isinstance(exc, OSError)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
