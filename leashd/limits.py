"""How much of a tool call leashd analyses, and the refusal past that.

Every stage between a tool call and its decision (parse, unwrap, facts, path resolution,
matching) does work that grows at most linearly with the call, and these bounds cap the call
itself, so no input can make a decision slow. A call past a bound is refused (deny, layer
`limit`) with a reason that says which bound and by how much: it is never allowed, never
asked about half-analysed, and never left to run for minutes. The bounds sit far above what
an agent sends in ordinary work (a command of a few kilobytes, a path of a few hundred bytes).
"""

from __future__ import annotations

# Characters of a Bash command. A longer one is refused before it is parsed: write big files
# with the Write tool, not with a heredoc.
COMMAND_CHARS = 256 * 1024
# Characters of one path a file tool names: the kernel refuses paths past PATH_MAX (4,096
# bytes on Linux) anyway, so nothing longer can be a file the call reads or writes.
PATH_CHARS = 4096
# Paths one command names (operands, redirections, options). Each is resolved on the
# filesystem, the costliest fact there is: `git add` of 4,096 files is decided in about
# 50 ms; more files are refused (add them in parts, or by directory).
PATHS = 4096
# Characters of any other string field leashd reads to decide (a URL, a Glob pattern).
FIELD_CHARS = 64 * 1024
# Characters a policy pattern that needs `re`'s backtracking (a backreference, a lookaround)
# may run on. Only rules a unit still reaches run one, on that unit's own text.
BACKTRACK_SUBJECT = 8192


class TooLarge(Exception):
    """A call past one of the bounds above; the message is the reason the user sees."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what

    @property
    def reason(self) -> str:
        return f"too large for leashd to analyse, so it is refused: {self.what}"
