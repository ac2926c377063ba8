"""What a shell command is made of, once parsed: units (simple commands) and their effects."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Access = Literal["read", "write"]

# Marks a word whose value is only known when the command runs (a variable, a command
# substitution, ...). Kept in argv so rules and `explain` can show where it was.
DYNAMIC = "\x00dynamic\x00"


@dataclass(frozen=True, slots=True)
class PathRef:
    """A path a unit touches, as written. Resolution against cwd/home happens later (facts)."""

    raw: str | None  # None: computed at run time, unknown here
    access: Access
    cwd: str | None  # working-directory expression in effect ("" = session cwd, None = unknown)
    source: str = "operand"  # operand, redirect, option, xargs, ...


@dataclass(frozen=True, slots=True)
class Redirect:
    op: str
    fd: int | None
    target: str | None  # None: dynamic, or a descriptor duplication
    access: Access | None  # None for duplications and /dev/null-like sinks


@dataclass(frozen=True, slots=True)
class ShellUnit:
    """One simple command, after unwrapping. The unit a policy rule is matched against."""

    argv: tuple[str, ...]
    program: str
    text: str
    pipeline: str
    dynamic: frozenset[int] = frozenset()
    env: tuple[tuple[str, str | None], ...] = ()
    redirects: tuple[Redirect, ...] = ()
    paths: tuple[PathRef, ...] = ()
    stdin: str | None = None  # literal heredoc / here-string content fed to the unit
    upstream: frozenset[str] = frozenset()  # programs whose output can reach this unit's input
    wrapped_by: tuple[str, ...] = ()  # wrapper programs this unit was unwrapped from
    wrapper: bool = False  # this unit only launches another unit (which is listed too)
    opaque: str | None = None  # why leashd cannot know what this unit does
    cwd: str | None = ""
    # The same command again under its program's plain name (`.venv/bin/python` as `python`):
    # it only counts where a rule decides it, so rules written for the name also catch it.
    shadow: bool = False

    def arg(self, i: int) -> str | None:
        """The literal argv[i], or None when it is dynamic or missing."""
        if i >= len(self.argv) or i in self.dynamic:
            return None
        return self.argv[i]


@dataclass(frozen=True, slots=True)
class ParsedCommand:
    source: str
    units: tuple[ShellUnit, ...]
    error: str | None = None  # a parse error makes the whole command opaque
    notes: tuple[str, ...] = field(default=())
    too_large: str | None = None  # past an analysis bound: the units are incomplete

    @property
    def opaque(self) -> bool:
        return self.error is not None or any(u.opaque for u in self.units)
