"""`realpath` with a memo that a filesystem change invalidates.

`Resolver.realpath` gives exactly what `os.path.realpath` (non-strict) gives for an absolute
path: symlinks followed where they exist, the rest lexical. While it resolves, it watches
every directory whose entries it consults (`FsWatch`); a resolution is memoised only when all
of them are watched, and every memo is dropped as soon as any watched directory changes. A
symlink created after a decision therefore changes the next decision, memo or not. A
directory that does not exist is covered by the watch on its nearest existing ancestor,
where it would be created.

The memo makes a path the gate has seen before cost a dictionary lookup and one `epoll`
call instead of an `lstat` per component.
"""

from __future__ import annotations

import os
import posixpath
import stat

from leashd.policy.fswatch import FsWatch

_DIR, _OTHER, _MISSING, _UNKNOWN = range(4)
MEMO_LIMIT = 16384
_Stack = tuple[tuple[str, int], ...]


class _Loop(Exception):
    """A symlink loop: the answer is the partial path, as `os.path.realpath` gives it."""

    def __init__(self, path: str):
        self.path = path


class Resolver:
    def __init__(self, watch: FsWatch | None = None) -> None:
        self.watch = watch if watch is not None else FsWatch()
        self._memo: dict[str, str] = {}
        self._epoch = self.watch.epoch
        self.unwatched = 0  # resolutions that could not be memoised (callers compare it)

    def token(self) -> int:
        """The current epoch; an answer computed now stays true while `valid(token)`."""
        epoch = self.watch.current()
        if epoch != self._epoch:
            self._memo.clear()
            self._epoch = epoch
        return epoch

    def valid(self, token: int) -> bool:
        return self.token() == token

    def clear(self) -> None:
        self._memo.clear()

    def realpath(self, path: str) -> str:
        if not path.startswith("/"):
            self.unwatched += 1
            return os.path.realpath(path)
        self.token()
        hit = self._memo.get(path)
        if hit is not None:
            return hit
        state = _State(self.watch)
        resolved = state.resolve(path)
        if state.watched_all and self.watch.available:
            if len(self._memo) >= MEMO_LIMIT:
                self._memo.clear()
            self._memo[path] = resolved
        else:
            self.unwatched += 1
        return resolved


class _State:
    """One resolution. The resolved path is a stack of (name, kind) so that `..` knows what
    kind of thing it returns to: nothing below a missing directory or a file costs a system
    call, and a directory is only looked into once it is watched."""

    __slots__ = ("watch", "watched_all")

    def __init__(self, watch: FsWatch):
        self.watch = watch
        self.watched_all = True

    def resolve(self, path: str) -> str:
        try:
            stack = self.join((), path[1:], {})
        except _Loop as loop:
            self.watched_all = False
            return posixpath.normpath(loop.path)
        return "/" + "/".join(name for name, _ in stack)

    def join(self, stack: _Stack, rest: str, seen: dict[str, _Stack | None]) -> _Stack:
        """Resolve `rest` below the resolved `stack`; mirrors posixpath's `_joinrealpath`."""
        while rest:
            name, _, rest = rest.partition("/")
            if not name or name == ".":
                continue
            if name == "..":
                stack = stack[:-1]
                continue
            kind = stack[-1][1] if stack else _DIR
            path = "/" + "/".join(n for n, _ in stack) if stack else "/"
            newpath = path + name if path == "/" else path + "/" + name
            if kind in (_OTHER, _MISSING):
                stack = (*stack, (name, _MISSING))  # nothing exists below these
                continue
            if kind != _DIR or not self.watch.watch(path):
                self.watched_all = False
            try:
                st = os.lstat(newpath)
            except (FileNotFoundError, NotADirectoryError):
                stack = (*stack, (name, _MISSING))
                continue
            except OSError:
                self.watched_all = False
                stack = (*stack, (name, _UNKNOWN))
                continue
            if not stat.S_ISLNK(st.st_mode):
                stack = (*stack, (name, _DIR if stat.S_ISDIR(st.st_mode) else _OTHER))
                continue
            if newpath in seen:
                cached = seen[newpath]
                if cached is None:
                    raise _Loop(posixpath.join(newpath, rest))
                stack = cached
                continue
            seen[newpath] = None
            try:
                target = os.readlink(newpath)
            except OSError:
                self.watched_all = False
                stack = (*stack, (name, _UNKNOWN))
                continue
            try:
                stack = self.join(() if target.startswith("/") else stack, target, seen)
            except _Loop as loop:
                raise _Loop(posixpath.join(loop.path, rest)) from None
            seen[newpath] = stack
        return stack
