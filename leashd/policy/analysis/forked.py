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
import struct
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


def map_shared(fn: Callable[[T], R], items: Sequence[T], jobs: int | None = None) -> list[R]:
    """[fn(x) for x in items], shared among `jobs` processes (this one and forks of it).
    `fn` must not change state that later work reads in a way its result depends on: each
    process keeps its own.

    The items are handed out as they are asked for, in batches, through a pipe every
    process reads (a read of a few bytes from a pipe is atomic: each batch goes to one
    process): a fork starts slower than its parent (each page it touches is copied), and
    searches differ in cost, so a split made beforehand leaves one process waiting."""
    jobs = workers() if jobs is None else jobs
    jobs = min(jobs, len(items) // (MIN_ITEMS // 2) or 1)
    if jobs < 2 or len(items) < MIN_ITEMS or not hasattr(os, "fork"):
        return [fn(x) for x in items]
    out: dict[int, R] = {}
    size = max(1, -(-len(items) // _MAX_BATCHES))
    batches = [(lo, min(lo + size, len(items))) for lo in range(0, len(items), size)]
    queue_r, queue_w = os.pipe()
    try:
        # every batch's number, written before any process reads (they fit the pipe)
        os.write(queue_w, b"".join(_NUMBER.pack(n) for n in range(len(batches))))
    finally:
        os.close(queue_w)  # an empty queue then reads as its end
    children: list[tuple[int, int]] = []
    try:
        for _ in range(jobs - 1):
            started = _start(fn, items, queue_r, batches)
            if started is not None:
                children.append(started)
        out.update(_work(fn, items, queue_r, batches))
        for pid, fd in children:
            got = _collect(pid, fd)
            if got is not None:
                out.update(got)
        children = []
    finally:
        os.close(queue_r)
        for pid, fd in children:  # the parent failed (or was interrupted): no orphans
            _reap(pid, fd)
    # what a failed child had taken, done here
    return [out[k] if k in out else fn(items[k]) for k in range(len(items))]


_NUMBER = struct.Struct("=i")
_MAX_BATCHES = 1024  # 4 KiB of batch numbers, written in one go: any pipe holds that much


def _work(
    fn: Callable[[T], R], items: Sequence[T], queue: int, batches: list[tuple[int, int]]
) -> dict[int, R]:
    """The batches this process takes from the queue, done."""
    done: dict[int, R] = {}
    while True:
        got = os.read(queue, _NUMBER.size)
        if len(got) < _NUMBER.size:
            return done
        lo, hi = batches[_NUMBER.unpack(got)[0]]
        for k in range(lo, hi):
            done[k] = fn(items[k])


def _start(
    fn: Callable[[T], R], items: Sequence[T], queue: int, batches: list[tuple[int, int]]
) -> tuple[int, int] | None:
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
            data = pickle.dumps(_work(fn, items, queue, batches), pickle.HIGHEST_PROTOCOL)
            view = memoryview(data)
            while view:
                view = view[os.write(w, view) :]
            status = 0
        except BaseException:  # the parent redoes what it took
            pass
        finally:
            os._exit(status)
    os.close(w)
    return pid, r


def _collect(pid: int, fd: int) -> dict | None:
    """The child's results by item (None: it failed; the parent does what it took)."""
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
    return got if isinstance(got, dict) else None


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
