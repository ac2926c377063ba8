"""What the OS sandbox refused during a Bash call, read from the call's output.

The kernel answers a refused write with EROFS ("Read-only file system"), a hidden file with
EACCES ("Permission denied"), a file inside a hidden directory with ENOENT, and the network
proxy answers a host it does not allow with a 403 (or the CLI appends a
`<sandbox_violations>` block). Only the program sees those errors, so this reads what the
program printed: a program that swallows its errors leaves no report, though the refusal
held all the same. A line is reported only when it is one of those errors and, for reads,
names a path the sandbox hides: a real "Permission denied" on a file of the project is not
the sandbox's doing.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass

_READ_ONLY = "Read-only file system"
_DENIED = ("Permission denied", "Operation not permitted")
_GONE = "No such file or directory"
_NETWORK = re.compile(
    r"blocked-by-allowlist|Connection blocked by network allowlist|host_not_allowed"
    r"|CONNECT tunnel failed, response 403|Received HTTP code 403 from proxy"
    r"|Tunnel connection failed: 403"  # Python's http.client (urllib, requests, pip)
)
_OPEN, _CLOSE = "<sandbox_violations>", "</sandbox_violations>"
_SCANNED = 1 << 20  # characters of output read, at most (a refusal is rarely past them)
_LINES = 20  # blocked lines reported per call, at most
_LINE_CHARS = 300


@dataclass(frozen=True)
class Blocked:
    kind: str  # "write", "read", "network"
    line: str  # what the program said

    def __str__(self) -> str:
        return f"{self.kind}: {self.line}"


class Reader:
    """Reads Bash results against the sandbox of one turn."""

    def __init__(self, hidden: Iterable[str], cwd: str, home: str) -> None:
        forms: set[str] = set()
        for path in hidden:
            forms.add(path)
            if home and (path == home or path.startswith(home.rstrip("/") + "/")):
                forms.add("~" + path[len(home.rstrip("/")) :])
            try:
                rel = os.path.relpath(path, cwd)
            except ValueError:
                continue
            if rel != ".." and not rel.startswith("../"):  # how a command in `cwd` names it
                forms.add(rel)
        forms.discard("")
        self._forms = forms
        self._names: re.Pattern[str] | None = None  # made when a line first needs it

    def blocked(self, output: str) -> list[Blocked]:
        blocks, text = _violations(output[:_SCANNED])
        found: dict[Blocked, None] = {}  # in order, each once: the CLI repeats its own lines
        for block in blocks:
            for line in block.splitlines():
                if line.strip() and len(found) < _LINES:
                    found[Blocked(_kind_of(line), _short(line))] = None
        for line in text.splitlines():
            if len(found) >= _LINES:
                break
            if _READ_ONLY in line:
                found[Blocked("write", _short(line))] = None
            elif _NETWORK.search(line):
                found[Blocked("network", _short(line))] = None
            elif (any(d in line for d in _DENIED) or _GONE in line) and self._names_hidden(line):
                found[Blocked("read", _short(line))] = None
        return list(found)[:_LINES]

    def _names_hidden(self, line: str) -> bool:
        if not self._forms:
            return False
        if self._names is None:
            # the whole path or a path inside it, not a longer name that starts alike
            edges = r"(?<![\w.\-])(?:{})(?=[ :'\"/`’‘,)\t]|$)"
            try:  # one pass over a line, however many paths are hidden
                self._names = re.compile(edges.format(_trie(self._forms)))
            except (RecursionError, re.error, OverflowError):  # nested past what `re` parses
                by_length = sorted(self._forms, key=len, reverse=True)
                self._names = re.compile(edges.format("|".join(map(re.escape, by_length))))
        return self._names.search(line) is not None


def _violations(text: str) -> tuple[list[str], str]:
    """The `<sandbox_violations>` blocks of `text`, and the text without them. One pass: a
    block left open ends the search (a regex would look for its end from every opening, which
    a command printing the opening many times makes quadratic)."""
    blocks: list[str] = []
    rest: list[str] = []
    at = 0
    while (start := text.find(_OPEN, at)) >= 0:
        end = text.find(_CLOSE, start + len(_OPEN))
        if end < 0:
            break
        blocks.append(text[start + len(_OPEN) : end])
        rest.append(text[at:start])
        at = end + len(_CLOSE)
    rest.append(text[at:])
    return blocks, "".join(rest)


def _trie(words: Iterable[str]) -> str:
    """A regex for any of `words`, shaped as their prefix tree: at each character of a line
    one branch is tried, not every word (the scan can hide thousands of files)."""
    root: dict[str, dict] = {}
    for word in words:
        node = root
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def pattern(node: dict[str, dict]) -> str:
        parts = []
        for ch, child in sorted(node.items()):
            if not ch:
                continue
            run = ch
            while len(child) == 1 and "" not in child:  # one way on: no group
                ((ch, child),) = child.items()
                run += ch
            parts.append(re.escape(run) + pattern(child))
        if not parts:
            return ""
        body = parts[0] if len(parts) == 1 else "(?:" + "|".join(parts) + ")"
        return f"(?:{body})?" if "" in node else body

    return pattern(root)


def _kind_of(line: str) -> str:
    low = line.lower()
    if "network" in low or "connect" in low or "host" in low or "domain" in low:
        return "network"
    if "write" in low:
        return "write"
    return "read"


def _short(line: str) -> str:
    line = line.strip()
    return line if len(line) <= _LINE_CHARS else line[: _LINE_CHARS - 1] + "…"
