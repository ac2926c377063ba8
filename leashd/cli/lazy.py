"""Click groups whose commands are imported when used.

A `LazyGroup` knows each command by name, where it lives (`module:attribute`) and its short
help, as data. `leashd --help` lists the names and short helps without importing a single
command module; `leashd policy eval` imports the policy commands' group and `eval`'s module,
and nothing of the daemon's. A command's module is imported when the command runs, when its
own help is shown, or when shell completion asks for it.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
from collections.abc import Mapping
from typing import Any

import click

# Every command takes -h as --help; subcommands inherit it from the root's context.
CONTEXT: dict[str, Any] = {"help_option_names": ["-h", "--help"]}

# Packages only the daemon needs. leashd-policy (packaging/leashd-policy), the policy tools
# alone, installs without them; a daemon command run there says so in one line.
DAEMON_ONLY = frozenset({"claude_agent_sdk", "telegram", "httpx", "aiosqlite", "ruamel"})


def _missing_daemon_package(exc: ModuleNotFoundError) -> str | None:
    top = (exc.name or "").partition(".")[0]
    return top if top in DAEMON_ONLY else None


class LazyGroup(click.Group):
    """A group whose commands are `lazy`: name -> ("module:attribute", short help). Every
    group of leashd's is one (most with nothing lazy): the listing of its commands gives each
    its first sentence whole, never cut at 45 characters."""

    def __init__(
        self,
        *args: Any,
        lazy: Mapping[str, tuple[str, str]] | None = None,
        requires: Mapping[str, str] | None = None,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})
        # command -> a package it cannot run without, looked for before the command starts
        # (so `leashd start` in leashd-policy says what is missing, not that a key is).
        self.requires = dict(requires or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy and name not in self.commands:
            self.add_command(self._load(ctx, name), name)
        return super().get_command(ctx, name)

    def _load(self, ctx: click.Context, name: str) -> click.Command:
        where, short_help = self.lazy[name]
        needed = self.requires.get(name)
        if needed is not None and importlib.util.find_spec(needed) is None:
            missing = ModuleNotFoundError(f"No module named {needed!r}", name=needed)
            raise _needs_daemon(f"{ctx.command_path} {name}", missing)
        module_name, _, attribute = where.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            raise _needs_daemon(f"{ctx.command_path} {name}", exc) from exc
        command = getattr(module, attribute)
        if not isinstance(command, click.Command):  # pragma: no cover - a wrong map entry
            raise TypeError(f"{where} is not a click command")
        command.short_help = short_help  # the listing reads the same before and after
        return command

    def invoke(self, ctx: click.Context) -> Any:
        # A daemon command imports its packages as it goes (lazily, for a fast start), so a
        # missing one surfaces here rather than at the command's import.
        try:
            return super().invoke(ctx)
        except ModuleNotFoundError as exc:
            if _missing_daemon_package(exc) is None:
                raise
            sub = ctx.invoked_subcommand
            raise _needs_daemon(
                f"{ctx.command_path} {sub}" if sub else ctx.command_path, exc
            ) from exc

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0]
        known = self.list_commands(ctx)
        if name not in known and not name.startswith("-") and not ctx.resilient_parsing:
            # "did you mean" among every command, not only those imported so far
            close = difflib.get_close_matches(name, known)
            hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
            ctx.fail(f"No such command {name!r}.{hint}")
        return super().resolve_command(ctx, args)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The commands with their short help, none of them imported for it."""
        rows = []
        for name in self.list_commands(ctx):
            if name in self.commands:
                command = self.commands[name]
                if command.hidden:
                    continue
                rows.append((name, command.get_short_help_str(limit=200)))
            else:
                rows.append((name, self.lazy[name][1]))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _needs_daemon(command: str, exc: ModuleNotFoundError) -> click.ClickException:
    if _missing_daemon_package(exc) is None:
        return click.ClickException(f"`{command}` cannot start: {exc}")
    return click.ClickException(
        f"`{command}` needs the daemon's packages ({exc.name} is not installed). This "
        "installation has the policy tools alone (leashd-policy); `pip install leashd` "
        "installs the whole product."
    )


def examples(*lines: str) -> str:
    """A command's help epilog: examples, each kept on its own line as written."""
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)
