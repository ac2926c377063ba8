"""Shell commands as units: parsed with tree-sitter-bash, never pattern-matched as strings."""

from functools import lru_cache

from leashd.shell.model import DYNAMIC, Access, ParsedCommand, PathRef, Redirect, ShellUnit
from leashd.shell.parser import parse


@lru_cache(maxsize=4096)
def parse_cached(command: str) -> ParsedCommand:
    """`parse`, memoised: the result is immutable and depends on nothing but the text."""
    return parse(command)


__all__ = [
    "DYNAMIC",
    "Access",
    "ParsedCommand",
    "PathRef",
    "Redirect",
    "ShellUnit",
    "parse",
    "parse_cached",
]
