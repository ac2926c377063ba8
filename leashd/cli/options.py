"""What several commands share: the policy and world options, `--format`, errors that exit.

The grammar every command follows: `-h` is `--help`; machine output is chosen with
`--format` (`--json` stays where it was, as `--format json`); every option says what it does,
and every command's help ends with examples.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

import click

if TYPE_CHECKING:
    from leashd.policy.facts import Context

policy_option = click.option(
    "--policy",
    "policies",
    multiple=True,
    metavar="NAME|FILE",
    help="Policy to load, in order (repeatable; default: the built-in default + dev-tools).",
)


def world_options(f: Any) -> Any:
    """--cwd, --home, --approved-dir, --mode: the world a call is decided in."""
    f = click.option(
        "--mode",
        type=click.Choice(("default", "plan", "auto")),  # yaml_frontend.MODES (kept light)
        default="default",
        show_default=True,
        help="The session's mode, which rules with `modes` look at.",
    )(f)
    f = click.option(
        "--approved-dir",
        "approved",
        multiple=True,
        metavar="DIR",
        help="Apply the sandbox with this approved directory (repeatable).",
    )(f)
    f = click.option(
        "--home",
        metavar="DIR",
        help="What ~ means (need not exist here: resolution is lexical).",
    )(f)
    return click.option(
        "--cwd", metavar="DIR", help="The session's working directory (default: this one)."
    )(f)


def world(
    cwd: str | None, home: str | None, approved: tuple[str, ...], mode: str = "default"
) -> Context:
    from leashd.policy.facts import Context

    return Context.create(cwd=cwd, home=home, approved_dirs=approved, mode=mode)


def format_option(
    *choices: str, default: str = "text", json_alias: bool = False
) -> Callable[[Any], Any]:
    """`--format` among `choices` (the command gets it as `fmt`); with `json_alias`, also
    `--json`, the same as `--format json` (the commands that had it before `--format`)."""

    def decorate(f: Callable[..., Any]) -> Any:
        @functools.wraps(f)
        def command(*args: Any, fmt: str | None, as_json: bool = False, **kwargs: Any) -> Any:
            if as_json:
                if fmt not in (None, "json"):
                    raise click.UsageError(f"--json is --format json, which --format {fmt} denies")
                fmt = "json"
            return f(*args, fmt=fmt or default, **kwargs)

        if json_alias:
            command = click.option(
                "--json", "as_json", is_flag=True, help="The same as --format json."
            )(command)
        return click.option(
            "--format",
            "fmt",
            type=click.Choice(choices),
            default=None,
            help=f"Output format (default: {default}).",
        )(command)

    return decorate


def exit_with(exc: Exception, code: int = 2) -> NoReturn:
    """Say what went wrong (a policy that does not load, a file that cannot be read), exit."""
    click.echo(str(exc), err=True)
    sys.exit(code)
