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


@dataclass(frozen=True, slots=True)
class _SPatterns:
    runs: tuple[Any, ...]  # any match: an `s` whose `e` flag runs the pattern space
    writes: Any  # group 1: the file of a `w` flag


@functools.lru_cache(maxsize=512)
def _s_patterns(delimiter: str) -> _SPatterns:
    """`s` commands with this delimiter, as patterns without a backreference, so RE2 runs
    them in time linear in the script (a backreference to the delimiter, `s(.).*\\1.*\\1`,
    made `re` take time cubic in it).

    Each pattern requires the flag it looks for, so an `s` that does not have it never hides
    a later one that does (`y/s/t/;s/x/id/e`). GNU sed takes spaces among the flags
    (`s/x/id/ g e`), and a delimiter inside a bracket expression of the regex is no delimiter
    (`s/[/]/id/e`): both are read. The loose form, any text between three delimiters, is what
    the built-in policies matched before, and only finds more."""
    d = re.escape(delimiter)
    regex = rf"(?:\\.|\[\]?[^\]\n]*\]|[^\\{d}])*"  # the regex part: escapes, brackets
    text = rf"(?:\\.|[^\\{d}])*"  # the replacement
    flags = r"[gpiImM0-9 \t]*"
    return _SPatterns(
        runs=(
            _engine.compile(rf"s{d}{regex}{d}{text}{d}{flags}e"),
            _engine.compile(rf"s{d}.*{d}.*{d}{flags}e"),
        ),
        writes=_engine.compile(rf"s{d}{regex}{d}{text}{d}[gpiImMe0-9 \t]*w[ \t]*([^\n]+)"),
    )


def _delimiters(script: str) -> list[str] | None:
    """Every character that follows an `s` (a delimiter, if the `s` is a command), or None
    when there are too many kinds to try."""
    found = {script[k + 1] for k in _positions(script, "s") if k + 1 < len(script)}
    found -= {"\n", "\\"}
    return None if len(found) > MAX_DELIMITERS else sorted(found)


def _positions(text: str, char: str) -> list[int]:
    out, k = [], text.find(char)
    while k >= 0:
        out.append(k)
        k = text.find(char, k + 1)
    return out


def runs_commands(script: str) -> bool:
    """Whether an `s` command's `e` flag runs the pattern space as a command (GNU). Too odd
    a script to read counts as running commands."""
    delimiters = _delimiters(script)
    if delimiters is None:
        return True
    return any(p.search(script) for d in delimiters for p in _s_patterns(d).runs)


def written_files(script: str) -> list[str] | None:
    """The files `w` flags of `s` commands write (`s/a/b/gw FILE`), or None when the script is
    too odd to read (it may write anywhere)."""
    delimiters = _delimiters(script)
    if delimiters is None:
        return None
    return [m.group(1) for d in delimiters for m in _s_patterns(d).writes.finditer(script)]


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
