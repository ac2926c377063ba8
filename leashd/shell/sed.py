"""sed's scripts, read once for both places that look into them: the files a script reads
and writes (`commands.py`) and the commands it runs (`wrappers.py`)."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

try:  # google-re2 is a dependency; `re` runs the same patterns, more slowly
    import re2 as _engine
except ImportError:  # pragma: no cover
    _engine = re

# File commands: `r`/`R FILE` read, `w`/`W FILE` write, after any address (`1r`, `$w`,
# `/re/r`) or separator. The file name runs to the end of the line (GNU).
FILE_COMMAND = re.compile(r"(?:^|(?<=[;\n{}$0-9/!~,\s]))([rRwW])[ \t]*([^\n]+)")
# At most this many different characters are tried as `s` delimiters in one script; past it
# the script is read as running commands (stricter than any sed script anyone writes).
MAX_DELIMITERS = 32


@functools.lru_cache(maxsize=512)
def _s_command(delimiter: str) -> Any:
    """`s` with this delimiter, its flags, and the file of a `w` flag (`s/a/b/gw FILE`).

    One pattern per delimiter, without a backreference, so RE2 runs it in linear time: a
    backreference to the delimiter (`s(.).*\\1.*\\1`) made `re` take time cubic in the script."""
    d = re.escape(delimiter)
    part = rf"(?:\\.|[^\\{d}])*"
    return _engine.compile(rf"s{d}{part}{d}{part}{d}([gpiImMe0-9]*)(?:w[ \t]*([^\n]+))?")


@dataclass(frozen=True, slots=True)
class SCommand:
    flags: str
    write: str | None  # the file named by a `w` flag


def s_commands(script: str) -> list[SCommand] | None:
    """The `s` commands of a script, read loosely (any `s` followed by a delimiter, which
    only finds more: stricter). None when the script has too many kinds of delimiter to try."""
    delimiters = {script[k + 1] for k in _positions(script, "s") if k + 1 < len(script)}
    delimiters -= {"\n", "\\"}
    if len(delimiters) > MAX_DELIMITERS:
        return None
    found = []
    for d in sorted(delimiters):
        for m in _s_command(d).finditer(script):
            found.append(SCommand(m.group(1), m.group(2)))
    return found


def _positions(text: str, char: str) -> list[int]:
    out, k = [], text.find(char)
    while k >= 0:
        out.append(k)
        k = text.find(char, k + 1)
    return out


def runs_commands(script: str) -> bool:
    """Whether an `s` command's `e` flag runs the pattern space as a command (GNU)."""
    found = s_commands(script)
    return found is None or any("e" in c.flags for c in found)


# GNU sed's `e COMMAND` runs COMMAND (after any address or separator).
EXEC_COMMAND = re.compile(r"(?:^|(?<=[;\n{}$0-9/!~,\s]))e[ \t]+([^\n;]+)")
_TAKES_VALUE = {"-l", "--line-length", "-f", "--file"}


def scripts(argv: tuple[str, ...] | list[str]) -> list[str]:
    """Every script text of a sed command line: `-e S`, `-eS`, `-neS`, `--expression[=]S`,
    else the first operand. Taking a word too many only finds more (stricter)."""
    out: list[str] = []
    operand: str | None = None
    explicit = False
    i = 1
    while i < len(argv):
        t = argv[i]
        nxt = argv[i + 1] if i + 1 < len(argv) else None
        if t == "--":
            if operand is None and i + 1 < len(argv):
                operand = argv[i + 1]
            break
        if t in ("-e", "--expression"):
            explicit = True
            if nxt is not None:
                out.append(nxt)
            i += 2
            continue
        if t.startswith("--expression="):
            explicit = True
            out.append(t.partition("=")[2])
        elif t in _TAKES_VALUE:
            i += 2
            continue
        elif t.startswith("-") and not t.startswith("--") and "e" in t[1:]:
            # a cluster ending in e: `-ne SCRIPT`, or the script glued on: `-e's/a/b/'`
            explicit = True
            rest = t[t.index("e", 1) + 1 :]
            if rest:
                out.append(rest)
            elif nxt is not None:
                out.append(nxt)
                i += 1
        elif not t.startswith("-") and operand is None:
            operand = t
        i += 1
    if not explicit and operand is not None:
        out.append(operand)
    elif operand is not None:
        out.append(operand)  # a file name to sed, but reading it as a script only adds
    return out
