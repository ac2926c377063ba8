"""How much of a tool call leashd analyses, and the refusal past that.

Every stage between a tool call and its decision (parse, unwrap, facts, path resolution,
matching) does work that grows at most linearly with the call, and these bounds cap the call
itself, so no input can make a decision slow. A call past a bound is refused (deny, layer
`limit`) with a reason that says which bound and by how much: it is never allowed, never
asked about half-analysed, and never left to run for minutes. The bounds sit far above what
an agent sends in ordinary work (a command of a few kilobytes, a path of a few hundred bytes).
`benchmarks/bench_sizes.py` measures decision time against call size up to them and past.
"""

from __future__ import annotations

# --- the call as sent ---------------------------------------------------------------------

# Characters of a Bash command. A longer one is refused before it is parsed: write big files
# with the Write tool, not with a heredoc.
COMMAND_CHARS = 256 * 1024
# `|` characters in a command (outside `||`), counted before it is parsed: tree-sitter-bash's
# error recovery on a long pipeline grows with the pipeline's square (`ls|` 20,000 times with
# a `|` at the end took 7 s). 2,000 of them parse in about 70 ms at worst, and a pipeline of
# that many commands is past the commands analysed anyway. Those in quotes and heredocs count
# too (a table of 300 rows in a heredoc is refused: write it with the Write tool).
PIPES = 2000
# `$` characters on one line of a command, counted before it is parsed: tree-sitter-bash
# reads the expansions of one heredoc line in time that grows with their square (20,000 of
# them took 1.7 s). 2,000 take about 20 ms.
LINE_EXPANSIONS = 2000
# Seconds tree-sitter may take to parse one command (and the scripts inside it). The one
# bound that is a time: its error recovery on malformed input can grow with the square of
# the input in shapes no count of characters foretells (`))a//e` repeated over 32 KB takes
# 1.3 s). Well-formed commands parse in microseconds to milliseconds.
PARSE_SECONDS = 0.5
# Characters of one path: the kernel refuses paths past PATH_MAX (4,096 bytes on Linux), so
# nothing longer can be a file the call reads or writes, and resolving one costs time that
# grows with its length.
PATH_CHARS = 4096
# Characters of any other string field leashd reads to decide (a URL, a Glob pattern).
FIELD_CHARS = 64 * 1024

# --- what the shell analysis makes of it -------------------------------------------------

# Simple commands one call is analysed into (each a unit the policy decides). Wrappers and
# `bash -c` count their inner commands too.
UNITS = 400
# Syntax nodes tree-sitter makes of a command and the scripts inside it: each is walked in
# Python (a few µs each). A `git add` of 4,096 files is about 4,100 nodes, a heredoc of any
# length a handful; `[[ ` 86,000 times is 258,000 (a second of walking).
NODES = 50_000
# Scripts inside scripts (`bash -c 'eval …'`, aliases, functions): deeper ones are opaque,
# which no policy allows.
NESTING = 8
# Statements the shell walker may visit (loops over literal values multiply them).
STEPS = 20000
# Characters of the units' texts (and their pipelines') together: every regex of a policy
# reads each in full, and a command substitution's text is part of every command around it
# (a 200 KB word 150 substitutions deep is 30 MB to read). 4 MiB is read in about 150 ms.
UNIT_TEXT = 4 * 1024 * 1024
# Paths one command names (operands, redirections, options). Each is resolved on the
# filesystem, the costliest fact there is: `git add` of 4,096 files is decided in about
# 50 ms; more files are refused (add them in parts, or by directory).
PATHS = 4096

# --- matching -----------------------------------------------------------------------------

# Characters a policy pattern that needs `re`'s backtracking (a backreference, a lookaround)
# may run on. Only rules a unit still reaches run one, on that unit's own text (and a deny
# rule's on its pipeline's); lint reports such a pattern in a rule that names no program.
BACKTRACK_SUBJECT = 8192


class TooLarge(Exception):
    """A call past one of the bounds above; the message is the reason the user sees."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what

    @property
    def reason(self) -> str:
        return f"too large for leashd to analyse, so it is refused: {self.what}"
