"""The hook server: keeps the policies compiled and the audit log open between hook calls.

Each hook call is a new process, and loading leashd's policies in one costs a few hundred
milliseconds; the server does it once, and a call costs a connection. It listens on a Unix
socket in leashd's home (`place.socket_path`), in a directory only its user can enter, and
answers only processes of that user. It is started by the first hook call that finds none
(`leashd hook run`), or by `leashd hook serve`; it exits after `idle` seconds without a
call, on `leashd hook stop`, and as soon as leashd's own source changes under it (a call that
finds it so is told to decide without it).

One request per connection: a JSON object, then end of input; one JSON object back.
`{"op": "decide", "stdin": TEXT, "env": {...}, "cwd": DIR}` -> `{"answer": {...}}`;
`{"op": "ping"}` -> `{"pid": N}`; `{"op": "stop"}` -> `{"stopping": true}`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import struct
import threading
import time
from pathlib import Path
from typing import Any

from leashd.hook.decide import HookDecider
from leashd.hook.place import private_dir, socket_path
from leashd.hook.protocol import MAX_INPUT, deny

IDLE = 900.0  # seconds without a call before the server exits
_READ_TIMEOUT = 10.0  # a client that sends its request slower than this is dropped
_MAX_REQUEST = MAX_INPUT * 2 + (1 << 20)  # the input, escaped, and the environment
_SOURCE_CHECK = 1.0  # seconds between looks at leashd's source


class HookServer:
    def __init__(self, path: Path | None = None, idle: float = IDLE) -> None:
        self.path = path or Path(socket_path())
        self.idle = idle
        self.decider = HookDecider(check_log=True)
        self._stop = threading.Event()
        self._last = time.monotonic()
        self._source = _source_state()
        self._source_checked = time.monotonic()
        self._stale = False
        self._sock: socket.socket | None = None
        self._lock_fd = -1
        self._workers: list[threading.Thread] = []
        self._inode: int | None = None

    # --- life -------------------------------------------------------------------------------

    def bind(self, wait: float = 3.0) -> bool:
        """Take the socket; False when another server holds it (then this one is not needed)."""
        if not private_dir(str(self.path.parent)):
            raise OSError(f"{self.path.parent} is not a directory of this user's alone")
        fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    return False
                time.sleep(0.05)
        self._lock_fd = fd
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # a dead server's
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            sock.bind(os.fspath(self.path))
        finally:
            os.umask(old)
        self._inode = os.stat(self.path).st_ino  # the name's, to tell it from a newer server's
        sock.listen(64)
        sock.settimeout(1.0)
        self._sock = sock
        with open(f"{self.path}.pid", "w") as f:
            f.write(f"{os.getpid()}\n")
        return True

    def serve(self) -> None:
        assert self._sock is not None
        try:
            while not self._stop.is_set():
                try:
                    conn, _ = self._sock.accept()
                except TimeoutError:
                    if time.monotonic() - self._last > self.idle:
                        break
                    continue
                self._last = time.monotonic()
                worker = threading.Thread(target=self._handle, args=(conn,), daemon=True)
                self._workers = [w for w in self._workers if w.is_alive()]
                self._workers.append(worker)
                worker.start()
        finally:
            self._leave()
            for worker in self._workers:  # the calls already taken are answered
                worker.join(timeout=30)
            self.close()

    def close(self) -> None:
        self._leave()
        if self._sock is not None:
            with contextlib.suppress(OSError):
                Path(f"{self.path}.pid").unlink()
            self._sock.close()
            self._sock = None
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    # --- one connection ---------------------------------------------------------------------

    def _handle(self, conn: socket.socket) -> None:
        op = None
        with conn:
            try:
                conn.settimeout(_READ_TIMEOUT)
                if not _same_user(conn):
                    return
                started = time.monotonic()
                request = json.loads(_read_all(conn))
                op = request.get("op", "decide") if isinstance(request, dict) else None
                reply = self._reply(request, started)
                conn.sendall(json.dumps(reply, ensure_ascii=False).encode("utf-8", "replace"))
                conn.shutdown(socket.SHUT_WR)
            except Exception:  # the client denies on a missing or broken reply
                pass
        if self._stale or op == "stop":
            self._leave()

    def _leave(self) -> None:
        """Stop taking calls: the name goes at once (the next client starts a new server);
        the calls being decided are answered before the process ends (`serve`)."""
        self._stop.set()
        if self._sock is not None:
            with contextlib.suppress(OSError):
                if _inode(self.path) == self._inode:
                    self.path.unlink()

    def _reply(self, request: Any, started: float) -> dict[str, Any]:
        if not isinstance(request, dict):
            return {"answer": deny("the hook server got a request it cannot read")}
        op = request.get("op", "decide")
        if op == "ping":
            return {"pid": os.getpid()}
        if op == "stop":
            return {"stopping": True}
        if self._changed():
            self._stale = True
            return {"stale": True}
        env, cwd, stdin = request.get("env"), request.get("cwd"), request.get("stdin")
        if not (isinstance(env, dict) and isinstance(cwd, str) and isinstance(stdin, str)):
            return {"answer": deny("the hook server got a request it cannot read")}
        raw = stdin.encode("utf-8", "surrogateescape")
        env = {str(k): str(v) for k, v in env.items()}
        return {"answer": self.decider.answer(raw, env, cwd, started)}

    def _changed(self) -> bool:
        """Has leashd's source changed since this server started? (Checked at most once a
        second: a stat of each module.)"""
        now = time.monotonic()
        if now - self._source_checked < _SOURCE_CHECK:
            return False
        self._source_checked = now
        return _source_state() != self._source


def _read_all(conn: socket.socket) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = conn.recv(1 << 20)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > _MAX_REQUEST:
            raise ValueError("request too large")
        chunks.append(chunk)


def _same_user(conn: socket.socket) -> bool:
    """Is the process at the other end this user's? (Linux: SO_PEERCRED; elsewhere the
    socket's directory, closed to others, is the check.)"""
    opt = getattr(socket, "SO_PEERCRED", None)
    if opt is None:
        return True
    raw = conn.getsockopt(socket.SOL_SOCKET, opt, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", raw)
    return uid == os.getuid()


def _inode(path: Path) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def _source_state() -> tuple[tuple[str, int, int], ...]:
    root = Path(__file__).resolve().parent.parent
    out = []
    for path in sorted(root.rglob("*.py")):
        with contextlib.suppress(OSError):
            st = path.stat()
            out.append((str(path), st.st_size, st.st_mtime_ns))
    return tuple(out)


def serve(idle: float = IDLE, path: Path | None = None) -> bool:
    """Run a server until it is idle, stopped or stale; False when one was running already."""
    server = HookServer(path, idle)
    if not server.bind():
        return False
    if threading.current_thread() is threading.main_thread():
        # `kill`: leave as `leashd hook stop` does, the socket's name and pid file removed
        signal.signal(signal.SIGTERM, lambda *_: server._leave())
    try:
        server.serve()
    finally:
        server.decider.close()
    return True
