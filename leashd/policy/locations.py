"""Where a rule (or any span) is written, as people and tools read it.

A built-in policy is shown by its name in leashd's policies directory, marked built-in
(`default.yaml:21:5 (built-in)`): its absolute path is a checkout or a site-packages detail
nobody edits. A user's file is shown relative to the current directory when it is under it,
else absolute. Every message that names a rule's place (explain; eval, test and lint later)
goes through `locate`, so they all say it the same way.

Imports only `resources` and the IR: `explain` stays fast and YAML-free.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

from leashd.policy.ir import Span
from leashd.resources import data_dir


@dataclass(frozen=True, slots=True)
class Location:
    """A span, readable: `file` is what people are shown, `path` the file itself."""

    file: str  # `default.yaml` (built-in), `team.yaml` (under the current directory), else absolute
    line: int
    column: int
    builtin: bool
    path: str  # absolute (or the span's own name, e.g. `<string>`, when it names no file)

    def __str__(self) -> str:
        where = self.file
        if self.line > 0:
            where += f":{self.line}" + (f":{self.column}" if self.column > 0 else "")
        return f"{where} (built-in)" if self.builtin else where

    def to_json(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "builtin": self.builtin,
            "path": self.path,
        }


def locate(span: Span) -> Location:
    """`span` as a `Location`, relative to the current directory of this moment."""
    file, builtin, path = shown_file(span.file)
    return Location(file, span.line, span.column, builtin, path)


def shown_file(file: str) -> tuple[str, bool, str]:
    """(shown name, built-in?, absolute path) of a policy file named in a span."""
    if not file or file.startswith("<"):
        return file, False, file  # `<unknown>`, `<string>`: no file to point at
    absolute = os.path.abspath(file)
    name = _builtin_name(absolute)
    if name is not None:
        return name, True, absolute
    try:
        cwd = os.getcwd()
    except OSError:  # the current directory was removed: absolute is all that is left
        return absolute, False, absolute
    if _under(absolute, cwd):
        return os.path.relpath(absolute, cwd), False, absolute
    return absolute, False, absolute


@functools.lru_cache(maxsize=256)
def _builtin_name(absolute: str) -> str | None:
    """The name of a file in the built-in policies directory (`default.yaml`,
    `tests/default.yaml`), or None when it is not one."""
    for directory in _builtin_dirs():
        if _under(absolute, directory):
            return os.path.relpath(absolute, directory)
    real = os.path.realpath(absolute)  # a symlink into the directory is the built-in too
    if real != absolute:
        for directory in _builtin_dirs():
            if _under(real, directory):
                return os.path.relpath(real, directory)
    return None


@functools.cache
def _builtin_dirs() -> tuple[str, ...]:
    """The built-in policies directory, as spans name it and as the filesystem does."""
    try:
        directory = os.path.abspath(data_dir("policies"))
    except FileNotFoundError:
        return ()
    return tuple(dict.fromkeys((directory, os.path.realpath(directory))))


def _under(path: str, directory: str) -> bool:
    return path.startswith(directory.rstrip(os.sep) + os.sep)
