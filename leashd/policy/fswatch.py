"""Change signals for the directories an answer depends on (Linux inotify).

Path resolution (`realpath`) depends on the entries of every directory it looks into: a
symlink created, removed or renamed in one of them can change where a path leads. `FsWatch`
watches those directories; a `DependentMemo` keeps answers together with the directories they
depend on and drops exactly those answers when one of their directories changes (a busy
`/tmp` does not evict what depends only on the project). Checking for changes costs one
`epoll` call, no thread.

Where inotify is missing (not Linux, no inotify_simple, limits reached) `watch` returns
False and callers must not memoise: correctness never depends on the watch being there.
"""

from __future__ import annotations

import select
import threading
import weakref
from collections.abc import Hashable, Iterable, Iterator
from typing import Any

try:
    from inotify_simple import INotify
    from inotify_simple import flags as _in
except ImportError:  # pragma: no cover - not Linux
    INotify = None  # type: ignore[assignment,misc]

# Directories whose inotify events say nothing about other writers (pseudo filesystems).
_UNWATCHABLE = ("/proc", "/sys", "/dev")
MAX_WATCHES = 4096
EVERYTHING = "*"  # the queue overflowed: every answer is suspect


class DependentMemo:
    """key -> value, each with the directories it depends on; bounded, oldest dropped first."""

    def __init__(self, limit: int):
        self._limit = limit
        self._items: dict[Hashable, tuple[Any, frozenset[str]]] = {}
        self._by_dir: dict[str, set[Hashable]] = {}

    def get(self, key: Hashable) -> tuple[Any, frozenset[str]] | None:
        """(value, the directories it depends on), or None."""
        return self._items.get(key)

    def put(self, key: Hashable, value: Any, deps: frozenset[str]) -> None:
        if key in self._items:
            self._drop(key)
        elif len(self._items) >= self._limit:
            self._drop(next(iter(self._items)))
        self._items[key] = (value, deps)
        for d in deps:
            self._by_dir.setdefault(d, set()).add(key)

    def _drop(self, key: Hashable) -> None:
        _, deps = self._items.pop(key)
        for d in deps:
            keys = self._by_dir.get(d)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_dir[d]

    def invalidate(self, dirs: Iterable[str]) -> None:
        if EVERYTHING in dirs:
            self.clear()
            return
        for d in dirs:
            for key in list(self._by_dir.get(d, ())):
                self._drop(key)

    def clear(self) -> None:
        self._items.clear()
        self._by_dir.clear()

    def __len__(self) -> int:
        return len(self._items)


class FsWatch:
    def __init__(self, max_watches: int = MAX_WATCHES) -> None:
        # Increases whenever changes were applied: an answer computed across a change is not
        # stored (the change may have come between two of its lookups).
        self.generation = 0
        self._dirs: dict[int, set[str]] = {}  # watch descriptor -> directories
        self._watched: dict[str, int] = {}
        # weak: an evaluator dropped (a policy reloaded, a directory approved) takes its memo
        self._memos: weakref.WeakSet[DependentMemo] = weakref.WeakSet()
        self._max = max_watches
        self._lock = threading.Lock()
        self._inotify = None
        self._epoll = None
        if INotify is None:
            return
        try:
            self._inotify = INotify(nonblocking=True)
            self._epoll = select.epoll()
            self._epoll.register(self._inotify.fileno(), select.EPOLLIN)
        except OSError:
            # No inotify (limits reached, not allowed): nothing is memoised, nothing fails.
            self._inotify = self._epoll = None
            return
        self._mask = (
            _in.CREATE
            | _in.DELETE
            | _in.MOVED_FROM
            | _in.MOVED_TO
            | _in.DELETE_SELF
            | _in.MOVE_SELF
            | _in.ATTRIB  # a permission change can reveal what could not be looked into
            | _in.ONLYDIR
        )
        self.check = self._check  # type: ignore[method-assign]

    @property
    def available(self) -> bool:
        return self._inotify is not None

    def subscribe(self, memo: DependentMemo) -> None:
        self._memos.add(memo)

    def check(self) -> None:
        """Apply pending changes to every subscribed memo (no-op without inotify)."""

    def _check(self) -> None:
        if self._epoll.poll(0):
            self._drain()

    def _drain(self) -> None:
        with self._lock:
            changed: set[str] = set()
            try:
                events = self._inotify.read(timeout=0)
            except OSError:
                events = []
                changed.add(EVERYTHING)
            gone: set[str] = set()
            for ev in events:
                if ev.wd < 0 or ev.mask & _in.Q_OVERFLOW:
                    changed.add(EVERYTHING)
                    continue
                dirs = self._dirs.get(ev.wd, ())
                changed.update(dirs)
                if ev.mask & (_in.IGNORED | _in.DELETE_SELF | _in.MOVE_SELF):
                    gone.update(self._dirs.pop(ev.wd, ()))
                if ev.name:
                    # An entry created, deleted or renamed: whatever is watched at that path
                    # or below may be another inode now (`mv a a_old; mkdir a`), and the
                    # kernel may report the old one's removal late (a busy directory).
                    gone.update(f"{d.rstrip('/')}/{ev.name}" for d in dirs)
            if gone:
                # Watch those paths afresh on their next resolution.
                # A watched path is stale when it or one of its ancestors is gone: walking up
                # each path costs its depth, not the number of paths gone.
                for path in list(self._watched):
                    if any(a in gone for a in _self_and_ancestors(path)):
                        wd = self._watched.pop(path)
                        self._dirs.get(wd, set()).discard(path)
            if EVERYTHING in changed:
                self._dirs.clear()
                self._watched.clear()
            self.generation += 1
            for memo in list(self._memos):
                memo.invalidate(changed)

    def watch(self, directory: str) -> bool:
        """Watch `directory`'s entries; False when that is not possible (do not memoise)."""
        if directory in self._watched:
            return True
        if self._inotify is None or directory.startswith(_UNWATCHABLE):
            return False
        if len(self._watched) >= self._max:
            return False
        try:
            wd = self._inotify.add_watch(directory, self._mask)
        except OSError:
            return False
        self._watched[directory] = wd
        self._dirs.setdefault(wd, set()).add(directory)
        return True


def _self_and_ancestors(path: str) -> Iterator[str]:
    """`/a/b/c`, `/a/b`, `/a`, `/`."""
    while True:
        yield path
        if path in ("/", ""):
            return
        path = path.rsplit("/", 1)[0] or "/"
