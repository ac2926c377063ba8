"""The hook command Claude Code runs for every tool call: `python -m leashd.hook.run`.

It reads the call on stdin and prints the answer. The decision is the hook server's
(`server.py`), which keeps the policies compiled between calls; when there is none, this
process starts one for the next calls and decides this call itself (`decide.py`). With
`--no-server` it always decides itself.

Fail closed, all the way: any error answers deny with what went wrong; so does a decision
that takes longer than `DEADLINE` (Claude Code lets a hook that times out or exits with an
error through, so the deny must come from here). Should even printing the deny fail, the
exit status is 2, which Claude Code takes as a block; the installed command adds
`|| exit 2` for an interpreter that does not start at all.

Only the standard library is imported until a call has to be decided in this process.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time

from leashd.hook import place
from leashd.hook.protocol import MAX_INPUT, decision_of, deny, render

TYPE_CHECKING = False  # typing itself is not imported: the hook starts on every call

if TYPE_CHECKING:
    from typing import Any

DEADLINE = 30.0  # seconds from start to an answer; the installed hook's timeout is 60
SERVER_WAIT = 25.0  # seconds for the server's answer (it denies what it decides after 20)
CONNECT_WAIT = 2.0


class _Output:
    """Stdout, written once: by the call's answer or by the deadline, whichever is first
    (the deadline is a signal handler, in the same thread: a flag is enough)."""

    def __init__(self) -> None:
        self.started = False
        self.complete = False
        self._fd = os.dup(1)

    def write(self, obj: dict[str, Any]) -> bool:
        if self.started:
            return False
        self.started = True
        data = render(obj)
        while data:
            data = data[os.write(self._fd, data) :]
        self.complete = True
        return True


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    started = time.monotonic()
    out = _Output()
    try:
        # Whatever this process prints by mistake (a library's log line) must not be read as
        # the answer: stdout goes to stderr from here on, the answer to the saved descriptor.
        os.dup2(2, 1)
        signal.signal(signal.SIGALRM, lambda *_: _too_late(out))
        signal.setitimer(signal.ITIMER_REAL, DEADLINE)
        out.write(answer(sys.stdin.buffer.read(MAX_INPUT + 1), no_server="--no-server" in argv,
                         started=started))  # fmt: skip
    except BaseException as exc:  # whatever it is, the answer is deny
        out.write(deny(f"internal error in the hook: {type(exc).__name__}: {exc}"))
        if not out.complete:
            sys.stderr.write(f"leashd hook failed, so the call is blocked: {exc!r}\n")
    return 0 if out.complete else 2


def answer(stdin: bytes, *, no_server: bool = False, started: float | None = None) -> dict:
    env = place.passed_env()
    cwd = _cwd()
    if not no_server:
        reply = _ask_server(stdin, env, cwd)
        if reply is not None:
            return reply
        _start_server()
    from leashd.hook.decide import HookDecider  # the slow path: policies loaded here

    decider = HookDecider()
    try:
        return decider.answer(stdin, env, cwd, started)
    finally:
        decider.close()


def _ask_server(stdin: bytes, env: dict[str, str], cwd: str) -> dict | None:
    """The server's answer; None when there is no server to ask (or it is stale), so this
    process decides. A server that was reached but did not answer well is a deny."""
    path = place.socket_path()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(CONNECT_WAIT)
        try:
            sock.connect(path)
        except OSError:
            return None
        request = {"op": "decide", "stdin": stdin.decode("utf-8", "surrogateescape"),
                   "env": env, "cwd": cwd}  # fmt: skip
        try:
            sock.settimeout(SERVER_WAIT)
            sock.sendall(json.dumps(request).encode("utf-8", "surrogatepass"))
            sock.shutdown(socket.SHUT_WR)
            chunks = []
            while chunk := sock.recv(1 << 16):
                chunks.append(chunk)
            reply = json.loads(b"".join(chunks))
        except TimeoutError:
            return deny(f"the leashd hook server did not answer within {SERVER_WAIT:g} s")
        except (OSError, ValueError) as exc:
            return deny(f"the leashd hook server's answer was lost: {exc}")
        if isinstance(reply, dict) and reply.get("stale") is True:
            return None  # leashd was changed under it: it has left, and this process decides
        result = reply.get("answer") if isinstance(reply, dict) else None
        if decision_of(result) is None:
            return deny("the leashd hook server answered something that is not an answer")
        return result
    finally:
        sock.close()


def _start_server() -> None:
    """Start the server for the next calls, detached; never fails this call."""
    try:
        import subprocess

        path = place.socket_path()
        if not place.private_dir(os.path.dirname(path)):
            return
        with open(f"{path}.log", "ab") as log:
            subprocess.Popen(
                [sys.executable, "-P", "-E", "-m", "leashd.hook", "serve"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd="/",
                start_new_session=True, close_fds=True,
            )  # fmt: skip
    except Exception:  # the call is decided here all the same
        return


def _cwd() -> str:
    try:
        return os.getcwd()
    except OSError:
        return "/"


def _too_late(out: _Output) -> None:
    if out.started:  # the answer is being written: let it finish
        return
    out.write(deny(f"leashd did not decide within {DEADLINE:g} s"))
    os._exit(0)


def entry() -> None:
    """`python -m leashd.hook.run`: an exit status of 2 (a block) when even the deny could
    not be printed."""
    try:
        code = main()
    except BaseException as exc:
        try:
            sys.stderr.write(f"leashd hook failed, so the call is blocked: {exc!r}\n")
        finally:
            os._exit(2)
    sys.exit(code)


if __name__ == "__main__":
    entry()
