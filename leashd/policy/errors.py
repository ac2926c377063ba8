"""Errors a policy can have, each with the place in the source it came from."""

from __future__ import annotations


class PolicyError(Exception):
    """A policy that cannot be loaded. Rendered as `FILE:LINE:COL: message`."""

    def __init__(self, message: str, file: str = "<policy>", line: int = 0, column: int = 0):
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.column = column

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


class PolicyErrors(PolicyError):
    """Several errors found in one pass; the first is the headline."""

    def __init__(self, errors: list[PolicyError]):
        first = errors[0]
        super().__init__(first.message, first.file, first.line, first.column)
        self.errors = errors

    def __str__(self) -> str:
        return "\n".join(PolicyError.__str__(e) for e in self.errors)
