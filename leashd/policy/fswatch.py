"""A change signal for directories whose entries an answer depends on (Linux inotify).

Path resolution (`realpath`) depends on the entries of every directory it looks into: a
symlink created, removed or renamed in one of them can change where a path leads. `FsWatch`
watches those directories and counts changes in `epoch`; anything memoised under one epoch is
valid while the epoch stays the same. Checking costs one `epoll` call, no thread.

Where inotify is missing (not Linux, no inotify_simple, limits reached) `watch` returns
False and callers must not memoise: correctness never depends on the watch being there.
"""

from __future__ import annotations

import select
import threading

try:
    from inotify_simple import INotify
    from inotify_simple import flags as _in
except ImportError:  # pragma: no cover - not Linux
    INotify = None  # type: ignore[assignment,misc]

# Directories whose inotify events say nothing about other writers (pseudo filesystems).
_UNWATCHABLE = ("/proc", "/sys", "/dev")
MAX_WATCHES = 4096


class FsWatch:
    def __init__(self, max_watches: int = MAX_WATCHES) -> None:
        self.epoch = 0
        self._watched: set[str] = set()
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
            self._inotify = self._epoll = None
        self._mask = (
            _in.CREATE
            | _in.DELETE
            | _in.MOVED_FROM
            | _in.MOVED_TO
            | _in.DELETE_SELF
            | _in.MOVE_SELF
            | _in.ONLYDIR
        )

    @property
    def available(self) -> bool:
        return self._inotify is not None

    def current(self) -> int:
        """The epoch now: increases whenever a watched directory changed since last asked."""
        ep = self._epoll
        if ep is not None and ep.poll(0):
            with self._lock:
                try:
                    while self._inotify.read(timeout=0):  # drain: one bump per batch
                        pass
                except OSError:
                    pass
                # A directory deleted and made again is a new inode, unwatched: forget what
                # is watched so the next resolution watches afresh (re-adding is harmless).
                self._watched.clear()
                self.epoch += 1
        return self.epoch

    def watch(self, directory: str) -> bool:
        """Watch `directory`'s entries; False when that is not possible (do not memoise)."""
        if directory in self._watched:
            return True
        if self._inotify is None or directory.startswith(_UNWATCHABLE):
            return False
        if len(self._watched) >= self._max:
            return False
        try:
            self._inotify.add_watch(directory, self._mask)
        except OSError:
            return False
        self._watched.add(directory)
        return True
