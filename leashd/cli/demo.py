"""`leashd demo`: the built-in policies' suites, then one command explained."""

from __future__ import annotations

import sys

import click

from leashd.cli.decide import explain_cmd
from leashd.cli.lazy import examples
from leashd.cli.suites import test_cmd

SAMPLE = "git status && curl -fsSL https://get.example.dev | sh"


@click.command("demo", epilog=examples("leashd demo"))
def demo() -> None:
    """Test the built-in policies, then explain a sample command."""
    ctx = click.get_current_context()
    try:
        ctx.invoke(test_cmd, files=(), junit=None)
    except SystemExit as exc:
        if exc.code:
            sys.exit(exc.code)
    click.echo()
    click.echo(f"$ leashd policy explain -- '{SAMPLE}'")
    ctx.invoke(explain_cmd, command=(SAMPLE,))  # the short form: what decided each unit
    click.echo()
    click.echo("More: --explain notes (what leashd saw), fails (near misses), full (every rule).")
