"""Shell commands as units: parsed with tree-sitter-bash, never pattern-matched as strings."""

from functools import lru_cache

from leashd.shell import commands
from leashd.shell.model import DYNAMIC, Access, ParsedCommand, PathRef, Redirect, ShellUnit
from leashd.shell.parser import parse

MEMO_LIMIT = 1 << 16  # characters: a longer command is parsed each time, not kept


def parse_cached(command: str) -> ParsedCommand:
    """`parse`, memoised: the result is immutable and depends on nothing but the text. Huge
    commands are not kept (4,096 of them could hold gigabytes)."""
    if len(command) > MEMO_LIMIT:
        return parse(command)
    return _memo(command)


@lru_cache(maxsize=4096)
def _memo(command: str) -> ParsedCommand:
    return parse(command)


def clear_parse_cache() -> None:
    _memo.cache_clear()
    commands.is_pathlike.cache_clear()


__all__ = [
    "DYNAMIC",
    "Access",
    "ParsedCommand",
    "PathRef",
    "Redirect",
    "ShellUnit",
    "clear_parse_cache",
    "parse",
    "parse_cached",
]
