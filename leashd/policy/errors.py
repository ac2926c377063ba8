"""Errors a policy can have, each with the place in the source it came from."""

from __future__ import annotations


class PolicyError(Exception):
    """A policy that cannot be loaded. Rendered as `FILE:LINE:COL: message`, then the source
    line and a caret under the column when the error knows its line (`source`). An error of
    the whole file (line 0: missing, unreadable, too large) is `FILE: message`."""

    def __init__(
        self,
        message: str,
        file: str = "<policy>",
        line: int = 0,
        column: int = 0,
        source: str | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.column = column
        self.source = source  # the text of `line`, shown with a caret under `column`

    @property
    def where(self) -> str:
        if self.line <= 0:
            return self.file
        if self.column <= 0:
            return f"{self.file}:{self.line}"
        return f"{self.file}:{self.line}:{self.column}"

    def __str__(self) -> str:
        head = f"{self.where}: {self.message}"
        if self.source is None or self.column <= 0:
            return head
        return f"{head}\n{caret(self.source, self.column)}"


class PolicyErrors(PolicyError):
    """Several errors found in one pass; the first is the headline."""

    def __init__(self, errors: list[PolicyError]):
        first = errors[0]
        super().__init__(first.message, first.file, first.line, first.column, first.source)
        self.errors = errors

    def __str__(self) -> str:
        return "\n".join(PolicyError.__str__(e) for e in self.errors)


SHOWN = 120  # characters of a source line an error shows


def caret(source: str, column: int) -> str:
    """A source line, indented, and a caret under `column` (1-based), as the .leash front-end
    shows them. A tab is shown as one space so the caret stays under its character; a long
    line is shown around the column only."""
    src = source.replace("\t", " ")
    if len(src) > SHOWN:
        start = max(0, min(column - 1 - SHOWN // 2, len(src) - SHOWN))
        src = src[start : start + SHOWN]
        column -= start
    return f"    {src}\n    {' ' * (column - 1)}^"
