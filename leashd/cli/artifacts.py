"""`leashd policy compile`: the compiled form of the built-in policies (`compiled/`)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from leashd.cli.lazy import examples
from leashd.cli.options import exit_with
from leashd.plural import plural
from leashd.policy import artifact
from leashd.policy.errors import PolicyError
from leashd.policy.loader import compiled_files


@click.command(
    "compile",
    epilog=examples(
        "leashd policy compile",
        "leashd policy compile --check",
        "leashd policy compile --out /tmp/compiled",
    ),
)
@click.option("--check", is_flag=True, help="Exit 1 when compiled/ is not current; write nothing.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the compiled files go (default: the compiled/ directory leashd loads).",
)
def compile_cmd(check: bool, out: Path | None) -> None:
    """Compile every built-in policy into compiled/ (IR, indexes, source hash)."""
    directory = out or artifact.compiled_dir()
    try:
        files = compiled_files()
    except PolicyError as exc:
        exit_with(exc)
    policies = plural(len(files), "compiled policy", "compiled policies")
    if check:
        problems = artifact.stale(directory, files)
        for name, why in problems:
            click.echo(f"{directory / name}: {why}")
        if problems:
            click.echo("compiled policies are stale: run `leashd policy compile`")
            sys.exit(1)
        click.echo(f"{directory}: {policies}, all current")
        return
    changed = artifact.write(directory, files)
    for name in changed:
        click.echo(f"wrote {directory / name}" if name in files else f"removed {directory / name}")
    click.echo(f"{directory}: {policies}, {len(changed)} changed")
