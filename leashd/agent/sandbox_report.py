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
)
_VIOLATIONS = re.compile(r"<sandbox_violations>(.*?)</sandbox_violations>", re.S)
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
            if not rel.startswith(".."):  # how a command run in `cwd` names it
                forms.add(rel)
        self._forms = sorted(forms, key=len, reverse=True)

    def blocked(self, output: str) -> list[Blocked]:
        text = output[:_SCANNED]
        found: list[Blocked] = []
        for block in _VIOLATIONS.findall(text):
            for line in block.splitlines():
                if line.strip():
                    found.append(Blocked(_kind_of(line), _short(line)))
        text = _VIOLATIONS.sub("", text)
        for line in text.splitlines():
            if len(found) >= _LINES:
                break
            if _READ_ONLY in line:
                found.append(Blocked("write", _short(line)))
            elif _NETWORK.search(line):
                found.append(Blocked("network", _short(line)))
            elif (any(d in line for d in _DENIED) or _GONE in line) and self._names_hidden(line):
                found.append(Blocked("read", _short(line)))
        return found[:_LINES]

    def _names_hidden(self, line: str) -> bool:
        for form in self._forms:
            at = line.find(form)
            while at >= 0:
                end = at + len(form)
                before = line[at - 1] if at else " "
                after = line[end] if end < len(line) else " "
                # the whole path or a path inside it, not a longer name that starts alike
                if not (before.isalnum() or before in "._-") and after in " :'\"/`’‘,)\t":
                    return True
                at = line.find(form, at + 1)
        return False


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
