"""Work shared among forked copies of this process: the lint's example searches, which are
independent of one another and most of a lint's time (a regex rule edited in a 500-rule
policy is 300 searches afresh; a cold lint, thousands).

A child is a fork: it has the parent's analysis as it stands (automata, compiled policy,
candidate calls) without copying it, works out its share, and sends the results back pickled
through a pipe. Nothing is shared while they run, and a search's result does not depend on
the searches done before it in the same process (shelltext.Outgrown says why), so the
results are those of doing the work in one process, in any split. Where forking is not
possible or not worth it (no fork on the platform, one core, a few items, `LEASHD_LINT_JOBS=1`),
or a child fails for any reason, the work is done here: never less of it, never different.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import warnings
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

# Below this many items a fork costs more than it saves (a search takes about 2 ms; a fork
# of a lint's process and the pickling back, a few).
MIN_ITEMS = 48
_MAX_WORKERS = 8


def workers() -> int:
    """How many processes may share the work: LEASHD_LINT_JOBS if set (1: none forked),
    else the cores this process may run on, at most 8."""
    env = os.environ.get("LEASHD_LINT_JOBS", "").strip()
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            return 1  # not a number: the safe reading, no forks
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(cores, _MAX_WORKERS))


def map_shared(
    fn: Callable[[T], R], items: Sequence[T], jobs: int | None = None, warm: int = 0
) -> list[R]:
    """[fn(x) for x in items], the items dealt round among `jobs` processes (this one and
    forks of it). `fn` must not change state that later work reads in a way its result
    depends on: each process keeps its own. `warm`: items done here before any fork, so
    that what they build and later items use too (a rule's automata) is built once."""
    jobs = workers() if jobs is None else jobs
    jobs = min(jobs, len(items) // (MIN_ITEMS // 2) or 1)
    if jobs < 2 or len(items) < MIN_ITEMS or not hasattr(os, "fork"):
        return [fn(x) for x in items]
    done = [fn(x) for x in items[:warm]]
    rest = map_shared(fn, items[warm:], jobs) if warm else None
    if rest is not None:
        return done + rest
    shares = [list(range(k, len(items), jobs)) for k in range(jobs)]
    children: list[tuple[int, int, list[int]]] = []
    out: list[R | None] = [None] * len(items)
    try:
        for share in shares[1:]:
            started = _start(fn, items, share)
            if started is None:  # no fork: this process does that share too
                shares[0].extend(share)
            else:
                children.append((*started, share))
        for k in shares[0]:
            out[k] = fn(items[k])
        for pid, fd, share in children:
            got = _collect(pid, fd, len(share))
            for n, k in enumerate(share):
                out[k] = got[n] if got is not None else fn(items[k])
        children = []
    finally:
        for pid, fd, _ in children:  # the parent failed (or was interrupted): no orphans
            _reap(pid, fd)
    return out  # type: ignore[return-value]


def _start(fn: Callable[[T], R], items: Sequence[T], share: list[int]) -> tuple[int, int] | None:
    r, w = os.pipe()
    try:
        with warnings.catch_warnings():
            # Python 3.12+ warns about forking with other threads running (the lint's
            # progress display): the child only computes and writes to its pipe with
            # os.write, so it never takes a lock another thread could hold.
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
    except OSError:
        os.close(r)
        os.close(w)
        return None
    if pid == 0:  # the child: never returns
        status = 1
        try:
            os.close(r)
            signal.signal(signal.SIGINT, signal.SIG_DFL)  # ^C ends it with the parent
            data = pickle.dumps([fn(items[k]) for k in share], pickle.HIGHEST_PROTOCOL)
            view = memoryview(data)
            while view:
                view = view[os.write(w, view) :]
            status = 0
        except BaseException:  # the parent redoes the share
            pass
        finally:
            os._exit(status)
    os.close(w)
    return pid, r


def _collect(pid: int, fd: int, count: int) -> list | None:
    """The child's results (None: it failed; the parent does its share itself)."""
    chunks = []
    try:
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    except OSError:
        chunks = []
    finally:
        os.close(fd)
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        status = 1
    if status != 0 or not chunks:
        return None
    try:
        got = pickle.loads(b"".join(chunks))
    except Exception:  # cut short: redo
        return None
    return got if isinstance(got, list) and len(got) == count else None


def _reap(pid: int, fd: int) -> None:
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        os.close(fd)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


class Beside:
    """`fn()` run in a forked copy of this process while this one goes on, and waited for
    (`wait`): the lint writes its cache while it words its findings. Where no fork is made
    (see `map_shared`), or the child fails, `wait` runs it here."""

    def __init__(self, fn: Callable[[], object]):
        self.fn = fn
        self.pid: int | None = None
        if workers() < 2 or not hasattr(os, "fork"):
            return
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # see _start
                pid = os.fork()
        except OSError:
            return
        if pid == 0:  # the child: never returns
            status = 1
            try:
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                fn()
                status = 0
            except BaseException:  # the parent does it again
                pass
            finally:
                os._exit(status)
        self.pid = pid

    def wait(self) -> None:
        pid, self.pid = self.pid, None
        if pid is not None:
            try:
                _, status = os.waitpid(pid, 0)
            except ChildProcessError:
                status = 1
            if status == 0:
                return
        self.fn()

    def cancel(self) -> None:
        """The parent failed: the child is stopped, and nothing is done here."""
        pid, self.pid = self.pid, None
        if pid is not None:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
