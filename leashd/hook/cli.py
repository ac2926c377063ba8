"""`leashd hook`: leashd's policies in a developer's own Claude Code sessions (docs/hook.md).

Thin: the work is in `settings.py` (install, uninstall), `run.py` (the hook), `server.py`.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import click

from leashd.hook import place
from leashd.hook import settings as cc

CONTEXT = {"help_option_names": ["-h", "--help"]}


def _scope_options(f: Any) -> Any:
    f = click.option(
        "--settings", "settings_file", type=click.Path(dir_okay=False, path_type=Path),
        help="Edit this settings file instead.",
    )(f)  # fmt: skip
    f = click.option(
        "--project", "scope", flag_value="project",
        help="The project's .claude/settings.json, in the current directory.",
    )(f)  # fmt: skip
    return click.option(
        "--user", "scope", flag_value="user", default=True,
        help="~/.claude/settings.json: every session of yours (the default).",
    )(f)  # fmt: skip


def _target(scope: str, settings_file: Path | None) -> Path:
    if settings_file is not None:
        return settings_file
    return cc.project_settings() if scope == "project" else cc.user_settings()


@click.group(context_settings=CONTEXT)
def hook() -> None:
    """leashd's policies in your own Claude Code sessions, as a PreToolUse hook.

    \b
    Example:
      leashd hook install            # every claude session of yours
      leashd hook install --project  # this project's sessions only
    """


@hook.command(context_settings=CONTEXT)
@_scope_options
@click.option(
    "--no-server", is_flag=True,
    help="Decide every call in the hook's own process (slower; no background process).",
)  # fmt: skip
def install(scope: str, settings_file: Path | None, no_server: bool) -> None:
    """Add leashd's PreToolUse hook to Claude Code's settings.

    Every other key and hook of the file stays as it is; installing twice changes nothing.

    \b
    Example:
      leashd hook install --project
    """
    path = _target(scope, settings_file)
    try:
        edit = cc.install(path, cc.hook_command(no_server))
    except cc.SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    if edit.changed:
        click.echo(f"installed the leashd hook in {path}")
    else:
        click.echo(f"the leashd hook is already installed in {path}")


@hook.command(context_settings=CONTEXT)
@_scope_options
def uninstall(scope: str, settings_file: Path | None) -> None:
    """Remove leashd's PreToolUse hook from Claude Code's settings (nothing else).

    \b
    Example:
      leashd hook uninstall --user
    """
    path = _target(scope, settings_file)
    try:
        edit = cc.uninstall(path)
    except cc.SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    if edit.changed:
        click.echo(f"removed the leashd hook from {path}")
    else:
        click.echo(f"the leashd hook is not installed in {path}; nothing changed")


@hook.command(context_settings=CONTEXT)
@click.option("--no-server", is_flag=True, help="Decide in this process, without the server.")
def run(no_server: bool) -> None:
    """The hook itself: a Claude Code hook input on stdin, the answer on stdout.

    Claude Code runs it; the installed command is `python -m leashd.hook.run`, which starts
    faster.

    \b
    Example:
      echo '{"tool_name":"Bash","tool_input":{"command":"ls"},"cwd":"/tmp"}' | leashd hook run
    """
    from leashd.hook.run import main

    raise SystemExit(main(["--no-server"] if no_server else []))


@hook.command(context_settings=CONTEXT)
@click.option(
    "--idle", type=float, default=900.0, show_default=True, metavar="SECONDS",
    help="Exit after this long without a call.",
)  # fmt: skip
def serve(idle: float) -> None:
    """Run the hook server in the foreground (the hook starts one by itself when needed).

    \b
    Example:
      leashd hook serve --idle 60
    """
    from leashd.hook.server import serve as run_server

    if not run_server(idle):
        click.echo(f"a hook server is running already at {place.socket_path()}")


@hook.command(context_settings=CONTEXT)
def stop() -> None:
    """Stop the hook server of this leashd, if one runs.

    \b
    Example:
      leashd hook stop
    """
    reply = _ask({"op": "stop"})
    if reply is None:
        click.echo("no hook server is running")
    else:
        click.echo("the hook server is stopping")


@hook.command(context_settings=CONTEXT)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="Output format.")  # fmt: skip
def status(fmt: str) -> None:
    """Where the hook is installed, and whether its server runs.

    \b
    Example:
      leashd hook status --format json
    """
    places = {"user": cc.user_settings(), "project": cc.project_settings()}
    found: dict[str, Any] = {}
    for name, path in places.items():
        try:
            found[name] = {"path": str(path), "commands": cc.installed(cc.read_settings(path))}
        except cc.SettingsError as exc:
            found[name] = {"path": str(path), "error": str(exc)}
    reply = _ask({"op": "ping"})
    server = {"socket": place.socket_path(), "pid": reply.get("pid") if reply else None}
    if fmt == "json":
        click.echo(json.dumps({"settings": found, "server": server}, indent=2))
        return
    for name, info in found.items():
        if "error" in info:
            state = f"unreadable: {info['error']}"
        else:
            state = "installed" if info["commands"] else "not installed"
        click.echo(f"{name}: {state} ({info['path']})")
    pid = server["pid"]
    click.echo(f"server: {'running, pid ' + str(pid) if pid else 'not running'}")


def _ask(request: dict[str, Any]) -> dict[str, Any] | None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5.0)
    try:
        sock.connect(place.socket_path())
        sock.sendall(json.dumps(request).encode())
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        reply = json.loads(b"".join(chunks))
        return reply if isinstance(reply, dict) else None
    except (OSError, ValueError):
        return None
    finally:
        sock.close()
