"""One daemon at a time: a lock held for the daemon's life, and a PID file beside it.

The lock (`flock` on `daemon.lock` in the leashd home) is what decides: the kernel drops it
when the process dies, however it dies, so a PID file left by a killed daemon is recognised
as stale and replaced, and a PID reused by another program is never signalled by mistake.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from leashd.daemon.config import leashd_home


class AlreadyRunning(Exception):
    pass


@dataclass(frozen=True)
class Status:
    running: bool
    pid: int | None
    stale_pid_file: bool = False
    detail: str = ""


def _paths(home: Path | None = None) -> tuple[Path, Path]:
    base = home or leashd_home()
    return base / "daemon.lock", base / "leashd.pid"


@contextlib.contextmanager
def hold(detail: str = "", home: Path | None = None) -> Iterator[Path]:
    """Run as the one daemon: take the lock (or raise AlreadyRunning), write the PID file,
    and clean both up on the way out."""
    lock_path, pid_path = _paths(home)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        st = status(home)
        raise AlreadyRunning(
            f"leashd is already running (pid {st.pid or '?'}); `leashd stop` first"
        ) from None
    try:
        tmp = pid_path.with_suffix(".tmp")
        tmp.write_text(f"{os.getpid()}\n{detail}\n")
        tmp.replace(pid_path)
        yield pid_path
    finally:
        with contextlib.suppress(OSError):
            if _read_pid(pid_path) == os.getpid():
                pid_path.unlink()
        os.close(fd)  # releases the lock


def status(home: Path | None = None) -> Status:
    lock_path, pid_path = _paths(home)
    pid = _read_pid(pid_path)
    if not lock_path.exists():
        return Status(False, None, stale_pid_file=pid is not None)
    fd = os.open(lock_path, os.O_RDWR)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            detail = _read_detail(pid_path)
            return Status(True, pid, detail=detail)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return Status(False, None, stale_pid_file=pid is not None)
    finally:
        os.close(fd)


def stop(timeout: float = 30.0, home: Path | None = None) -> Status:
    """Ask the daemon to stop (SIGTERM: it denies pending approvals, saves sessions) and
    wait for it to go. Returns the status before stopping."""
    st = status(home)
    if not st.running or st.pid is None:
        if st.stale_pid_file:
            with contextlib.suppress(OSError):
                _paths(home)[1].unlink()
        return st
    os.kill(st.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not status(home).running:
            return st
        time.sleep(0.05)
    raise TimeoutError(f"leashd (pid {st.pid}) did not stop within {timeout:g} s")


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _read_detail(path: Path) -> str:
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return ""
    return lines[1] if len(lines) > 1 else ""


@dataclass(frozen=True)
class Started:
    pid: int
    ok: bool
    output: str  # what the daemon wrote before it failed (empty when it runs)


def spawn(command: list[str], output: Path, settle: float = 3.0, wait: float = 30.0,
          home: Path | None = None) -> Started:  # fmt: skip
    """Start `command` (the daemon in the foreground) detached from this terminal, its
    output appended to `output`, and wait until it holds the lock. It must then stay up for
    `settle` seconds: a bad token or configuration fails within them, and is reported
    here rather than found later in a log."""
    import subprocess

    output.parent.mkdir(parents=True, exist_ok=True)
    start = output.stat().st_size if output.exists() else 0
    with open(output, "ab") as out:
        child = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,  # no SIGINT/SIGHUP from this terminal
        )  # fmt: skip
    deadline = time.monotonic() + wait
    held_at: float | None = None
    while time.monotonic() < deadline:
        if child.poll() is not None:
            return Started(child.pid, False, _tail(output, start))
        st = status(home)
        if st.running and st.pid == child.pid:
            held_at = held_at or time.monotonic()
            if time.monotonic() - held_at >= settle:
                return Started(child.pid, True, "")
        time.sleep(0.05)
    if held_at is not None:
        return Started(child.pid, True, "")
    child.terminate()
    return Started(child.pid, False, _tail(output, start) or f"not running after {wait:g} s")


def _tail(path: Path, start: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(start)
            return f.read().decode("utf-8", "replace")[-4000:].strip()
    except OSError:
        return ""
