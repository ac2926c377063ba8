"""sed's scripts, read once for both places that look into them: the files a script reads
and writes (`commands.py`) and the commands it runs (`wrappers.py`)."""

from __future__ import annotations

import re

# File commands: `r`/`R FILE` read, `w`/`W FILE` write, after any address (`1r`, `$w`,
# `/re/r`) or separator. The file name runs to the end of the line (GNU).
FILE_COMMAND = re.compile(r"(?:^|(?<=[;\n{}$0-9/!~,\s]))([rRwW])[ \t]*([^\n]+)")
# The `w FILE` flag of `s///`, after any other flags (`s/a/b/gw FILE`, `s|a|b|pw FILE`).
S_WRITE_FLAG = re.compile(
    r"s([^\\\n])(?:\\.|(?!\1)[^\\])*\1(?:\\.|(?!\1)[^\\])*\1[gpiImMe0-9]*(w)[ \t]*([^\n]+)"
)
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
