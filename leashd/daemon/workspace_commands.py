"""`leashd ws`: workspaces from the command line (leashd/workspaces.py). Thin."""

from __future__ import annotations

import sys

import click

from leashd.cli.lazy import LazyGroup, examples
from leashd.plural import plural


@click.group(
    "ws",
    cls=LazyGroup,
    epilog=examples(
        "leashd ws add shop ~/src/api ~/src/web -d 'the shop: API and web app'",
        "leashd ws list",
    ),
)
def ws_group() -> None:
    """Workspaces: named groups of directories the agent works across (workspaces.yaml)."""


def _directories(n: int) -> str:
    return plural(n, "directory", "directories")


def _fail(exc: Exception) -> None:
    click.echo(f"leashd ws: {exc}", err=True)
    sys.exit(2)


@ws_group.command(
    "add",
    epilog=examples(
        "leashd ws add shop ~/src/api ~/src/web",
        "leashd ws add shop ~/src/docs -d 'the shop and its docs'",
    ),
)
@click.argument("name")
@click.argument("directories", nargs=-1, required=True)
@click.option("--description", "-d", help="What the workspace is, for the agent.")
def ws_add(name: str, directories: tuple[str, ...], description: str | None) -> None:
    """Make workspace NAME of DIRECTORIES, or add them to it."""
    from leashd.workspaces import WorkspaceError, add, default_path

    try:
        ws = add(name, list(directories), description)
    except WorkspaceError as exc:
        _fail(exc)
        return
    click.echo(f"{ws.name}: {_directories(len(ws.directories))} ({default_path()})")


@ws_group.command("list", epilog=examples("leashd ws list"))
def ws_list() -> None:
    """Every workspace, a line each."""
    from leashd.workspaces import WorkspaceError, default_path, load

    try:
        spaces = load()
    except WorkspaceError as exc:
        _fail(exc)
        return
    if not spaces:
        click.echo(f"(no workspaces: `leashd ws add NAME DIR…`; {default_path()})")
    for ws in spaces.values():
        about = f" — {ws.description}" if ws.description else ""
        click.echo(f"{ws.name}: {_directories(len(ws.directories))}{about}")


@ws_group.command("show", epilog=examples("leashd ws show shop"))
@click.argument("name")
def ws_show(name: str) -> None:
    """A workspace's directories, and each repository's branch, as the agent is told."""
    from leashd.workspaces import WorkspaceError, context, load

    try:
        spaces = load()
    except WorkspaceError as exc:
        _fail(exc)
        return
    if name not in spaces:
        _fail(WorkspaceError(f"there is no workspace {name!r} (`leashd ws list`)"))
        return
    click.echo(context(spaces[name]))


@ws_group.command(
    "remove",
    epilog=examples(
        "leashd ws remove shop ~/src/docs",
        "leashd ws remove shop",
    ),
)
@click.argument("name")
@click.argument("directories", nargs=-1)
def ws_remove(name: str, directories: tuple[str, ...]) -> None:
    """Remove workspace NAME, or only the DIRECTORIES given from it."""
    from leashd.workspaces import WorkspaceError, remove

    try:
        left = remove(name, list(directories))
    except WorkspaceError as exc:
        _fail(exc)
        return
    click.echo(f"{name}: removed" if left is None else
               f"{name}: {_directories(len(left.directories))} left")  # fmt: skip
