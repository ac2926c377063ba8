"""`realpath` with a memo that a filesystem change invalidates.

`Resolver.realpath` gives exactly what `os.path.realpath` (non-strict) gives for an absolute
path: symlinks followed where they exist, the rest lexical. While it resolves, it watches
every directory whose entries it consults (`FsWatch`); a resolution is memoised only when all
of them are watched, and every memo is dropped as soon as any watched directory changes. A
symlink created after a decision therefore changes the next decision, memo or not. A
directory that does not exist is covered by the watch on its nearest existing ancestor,
where it would be created.

The memo makes a path the gate has seen before cost a dictionary lookup and one `epoll`
call instead of an `lstat` per component. Callers that memoise answers built from paths (the
evaluator's decision cache) collect the same dependencies with `collect`.
"""

from __future__ import annotations

import os
import posixpath
import stat
import threading

from leashd.policy.fswatch import DependentMemo, FsWatch

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
        self._memo = DependentMemo(MEMO_LIMIT)
        self.watch.subscribe(self._memo)
        # While a caller collects (see `collect`), the directories every resolution depended
        # on are added here; None in it means one resolution could not be watched. Per thread:
        # evaluations on several threads must not mix their dependencies.
        self._local = threading.local()

    @property
    def _collect(self) -> set[str | None] | None:
        return getattr(self._local, "collect", None)

    def collect(self, into: set[str | None] | None) -> None:
        """Start (a set) or stop (None) collecting the dependencies of resolutions."""
        self._local.collect = into

    def clear(self) -> None:
        self._memo.clear()

    def realpath(self, path: str) -> str:
        collect = self._collect
        if not path.startswith("/"):
            if collect is not None:
                collect.add(None)
            return os.path.realpath(path)
        self.watch.check()
        found = self._memo.get(path)
        if found is None:
            found = self._resolve(path)
        (resolved, _kind), deps = found
        if collect is not None:
            if deps is None:
                collect.add(None)
            else:
                collect.update(deps)
        return resolved

    def _resolve(self, path: str) -> tuple[tuple[str, int], frozenset[str] | None]:
        """Resolve and memoise `path` (deps None: not memoisable). A plain path (no `.`,
        `..` or empty components) is its parent's resolution plus one look at its last
        component, so a directory resolved once makes its entries cost one system call,
        and nothing at all below a directory that does not exist.

        The ancestors nobody resolved yet are walked top-down in a loop, not by recursion:
        a path of thousands of components costs one look each, and no stack."""
        if not _plain(path):
            return self._long(path)
        chain = [path]  # plain paths, each the parent of the one before
        while True:
            parent = chain[-1].rsplit("/", 1)[0] or "/"
            up = self._memo.get(parent)
            if up is not None or not self.watch.available:
                break
            if parent == "/":  # the only ancestor of a plain path that is not plain
                up = self._long(parent)
                break
            chain.append(parent)
        for p in reversed(chain):
            up = self._below(p, up)
        return up

    def _below(
        self, path: str, up: tuple[tuple[str, int], frozenset[str] | None] | None
    ) -> tuple[tuple[str, int], frozenset[str] | None]:
        """`path` from its parent's resolution `up` (None: unknown) by one look at its last
        component where that is enough, else the long way."""
        if up is not None and up[1] is not None:
            name = path.rsplit("/", 1)[1]
            (pres, pkind), pdeps = up
            newpath = pres + name if pres == "/" else pres + "/" + name
            kind = None
            if pkind in (_OTHER, _MISSING):
                kind, deps = _MISSING, pdeps
            elif pkind == _DIR and self.watch.watch(pres):
                deps = pdeps | {pres}
                # access() answers "is there anything" without raising for the common
                # case of nothing; only something there needs an lstat.
                if not os.access(newpath, os.F_OK, follow_symlinks=False):
                    try:  # nothing there, or not allowed to look: only the first is known
                        os.lstat(newpath)
                    except FileNotFoundError:
                        kind = _MISSING
                    except OSError:
                        kind = None
                    else:
                        kind = None  # it appeared meanwhile: resolve it the long way
                else:
                    try:
                        mode = os.lstat(newpath).st_mode
                    except OSError:
                        mode = None
                    if mode is not None and not stat.S_ISLNK(mode):
                        kind = _DIR if stat.S_ISDIR(mode) else _OTHER
            if kind is not None:
                self._memo.put(path, (newpath, kind), deps)
                return (newpath, kind), deps
        return self._long(path)

    def _long(self, path: str) -> tuple[tuple[str, int], frozenset[str] | None]:
        """Component by component, as `os.path.realpath` does."""
        state = _State(self.watch)
        resolved, kind = state.resolve(path)
        if state.watched_all and self.watch.available:
            deps = frozenset(state.deps)
            self._memo.put(path, (resolved, kind), deps)
            return (resolved, kind), deps
        return (resolved, kind), None


def _plain(path: str) -> bool:
    return path != "/" and "//" not in path and "/." not in path and not path.endswith("/")


class _State:
    """One resolution. The resolved path is a stack of (name, kind) so that `..` knows what
    kind of thing it returns to: nothing below a missing directory or a file costs a system
    call, and a directory is only looked into once it is watched."""

    __slots__ = ("deps", "watch", "watched_all")

    def __init__(self, watch: FsWatch):
        self.watch = watch
        self.watched_all = True
        self.deps: set[str] = set()

    def resolve(self, path: str) -> tuple[str, int]:
        try:
            stack = self.join((), path[1:], {})
        except _Loop as loop:
            self.watched_all = False
            return posixpath.normpath(loop.path), _UNKNOWN
        return "/" + "/".join(name for name, _ in stack), stack[-1][1] if stack else _DIR

    def join(self, stack: _Stack, rest: str, seen: dict[str, _Stack | None]) -> _Stack:
        """Resolve `rest` below the resolved `stack`; mirrors posixpath's `_joinrealpath`."""
        at: _Stack | None = None  # the stack `path` was last built for
        path = "/"
        while rest:
            name, _, rest = rest.partition("/")
            if not name or name == ".":
                continue
            if name == "..":
                stack = stack[:-1]
                continue
            kind = stack[-1][1] if stack else _DIR
            if at is not stack:  # the path of `stack`, rebuilt only when it was not grown
                path = "/" + "/".join(n for n, _ in stack) if stack else "/"
            newpath = path + name if path == "/" else path + "/" + name
            if kind in (_OTHER, _MISSING):
                stack = (*stack, (name, _MISSING))  # nothing exists below these
                path, at = newpath, stack
                continue
            if kind != _DIR or not self.watch.watch(path):
                self.watched_all = False
            self.deps.add(path)
            try:
                st = os.lstat(newpath)
            except (FileNotFoundError, NotADirectoryError):
                stack = (*stack, (name, _MISSING))
                path, at = newpath, stack
                continue
            except OSError:
                self.watched_all = False
                stack = (*stack, (name, _UNKNOWN))
                path, at = newpath, stack
                continue
            if not stat.S_ISLNK(st.st_mode):
                stack = (*stack, (name, _DIR if stat.S_ISDIR(st.st_mode) else _OTHER))
                path, at = newpath, stack
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
                path, at = newpath, stack
                continue
            try:
                stack = self.join(() if target.startswith("/") else stack, target, seen)
            except _Loop as loop:
                raise _Loop(posixpath.join(loop.path, rest)) from None
            seen[newpath] = stack
        return stack
