"""The daemon's commands: run, config, add-dir/remove-dir/dirs, start/stop/status.

Thin: each parses its options and calls the library. Heavy imports (the agent SDK, SQLite,
Telegram) happen inside the commands, so `leashd policy …` stays fast.
"""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from leashd.daemon.config import Config


def load_or_exit(**overrides: Any) -> Config:
    from leashd.daemon.config import ConfigError, load_config

    try:
        config = load_config(overrides={k: v for k, v in overrides.items() if v is not None})
    except ConfigError as exc:
        click.echo(f"leashd: invalid configuration:\n{exc}", err=True)
        sys.exit(2)
    for w in config.warnings:
        click.echo(f"leashd: {w}", err=True)
    return config


def _logs(config: Config, *, console: bool) -> None:
    """The rotating JSON file under LOG_DIR; on the console, warnings only (the console is
    the answer's, in `run`)."""
    from leashd.daemon.logs import configure

    s = config.settings
    configure(s.log_level, s.path("log_dir"), console=console, console_level="WARNING",
              max_bytes=s.log_max_bytes, backups=s.log_backup_count)  # fmt: skip


@click.command("run")
@click.option("-p", "--prompt", required=True, help="What to ask the agent ('-': read stdin).")
@click.option(
    "--dir",
    "directory",
    default=".",
    show_default=True,
    type=click.Path(exists=True, file_okay=False),
    help="The directory to work in: the only one the sandbox approves.",
)
@click.option("--session", help="Continue the conversation of this name (made on first use).")
@click.option("--policy", "policies", multiple=True, help="Policy name or file (repeatable).")
def run_cmd(prompt: str, directory: str, session: str | None, policies: tuple[str, ...]) -> None:
    """Run one turn of the agent and print its answer; what needs approval is denied.
    Exits 1 when the agent fails, 2 on bad configuration."""
    from leashd.daemon.headless import run_once

    if prompt == "-":
        prompt = sys.stdin.read()
    config = load_or_exit()
    _logs(config, console=True)
    code = asyncio.run(
        run_once(config.settings, prompt, directory=directory, session=session,
                 policies=list(policies))
    )  # fmt: skip
    sys.exit(code)


@click.command("config")
@click.option("--keys", is_flag=True, help="List the settings this version knows.")
def config_cmd(keys: bool) -> None:
    """Print every setting as resolved, and where each value came from (secrets redacted)."""
    from leashd.daemon.config import Settings, describe

    if keys:
        for name, f in Settings.model_fields.items():
            default = f.get_default(call_default_factory=True)
            click.echo(f"LEASHD_{name.upper()}  (config.yaml: {name})  default {default!r}")
        return
    config = load_or_exit()
    rows = describe(config)
    width = max(len(r[0]) for r in rows)
    for name, value, where in rows:
        click.echo(f"{name:<{width}}  {value}  [{where}]")


@click.command("start")
@click.option("-f", "--foreground", is_flag=True, help="Run here (the REPL without a bot).")
def start_cmd(foreground: bool) -> None:
    """Start the daemon: in the background with a Telegram bot token, else in the foreground
    with the terminal REPL. One daemon at a time."""
    from leashd.daemon import process

    config = load_or_exit()
    st = process.status()
    if st.running:
        click.echo(f"leashd is already running (pid {st.pid}); `leashd stop` first", err=True)
        sys.exit(1)
    token = config.settings.telegram_bot_token
    if token is None:
        if not foreground:
            click.echo(
                "leashd: no Telegram bot token is set, so the daemon talks through this "
                "terminal: run `leashd start -f` (or set one with `leashd init`)",
                err=True,
            )
            sys.exit(2)
        from leashd.daemon.serve import serve_terminal

        _logs(config, console=False)
        try:
            sys.exit(asyncio.run(serve_terminal()))
        except process.AlreadyRunning as exc:
            click.echo(f"leashd: {exc}", err=True)
            sys.exit(1)
    click.echo("leashd: the Telegram connector is not in this version yet", err=True)
    sys.exit(2)


@click.command("stop")
@click.option("--timeout", default=30.0, show_default=True, help="Seconds to wait for it.")
def stop_cmd(timeout: float) -> None:
    """Stop the daemon gracefully: approvals still waiting are denied and audited."""
    from leashd.daemon import process

    try:
        st = process.stop(timeout)
    except TimeoutError as exc:
        click.echo(f"leashd: {exc}", err=True)
        sys.exit(1)
    if st.running:
        click.echo(f"leashd stopped (pid {st.pid}).")
    elif st.stale_pid_file:
        click.echo("leashd was not running (a stale PID file was removed).")
    else:
        click.echo("leashd is not running.")


@click.command("status")
def status_cmd() -> None:
    """Whether the daemon runs, and where."""
    from leashd.daemon import process

    st = process.status()
    if st.running:
        click.echo(f"leashd is running (pid {st.pid}, {st.detail or 'daemon'}).")
        return
    note = " (a stale PID file from a daemon that died is left; `leashd stop` clears it)"
    click.echo("leashd is not running." + (note if st.stale_pid_file else ""))
    sys.exit(3)


def _tell_daemon() -> str:
    """A running daemon re-reads its configuration on SIGHUP."""
    import os
    import signal

    from leashd.daemon import process

    st = process.status()
    if st.running and st.pid is not None:
        os.kill(st.pid, signal.SIGHUP)
        return " (the running daemon was told)"
    return ""


def _edit_dirs(change: str, directory: str) -> tuple[str, bool]:
    """config_file.add_dir or remove_dir; a configuration it cannot read exits 2."""
    from leashd.daemon import config_file
    from leashd.daemon.config import ConfigError

    try:
        result = getattr(config_file, change)(directory)
    except ConfigError as exc:
        click.echo(f"leashd: {exc}", err=True)
        sys.exit(2)
    src = load_or_exit().source("approved_directories")
    if src.layer not in ("config.yaml", "default"):
        # a later layer wins: the file changed, but what is in force did not
        click.echo(f"leashd: note: approved directories come from {src.layer} ({src.where}), "
                   "which overrides config.yaml; this change has no effect while it is set",
                   err=True)  # fmt: skip
    return result


@click.command("add-dir")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
def add_dir_cmd(directory: str) -> None:
    """Approve a directory for the agent to work in (config.yaml)."""
    real, new = _edit_dirs("add_dir", directory)
    click.echo(f"Approved {real}{_tell_daemon()}." if new else f"{real} was already approved.")


@click.command("remove-dir")
@click.argument("directory")
def remove_dir_cmd(directory: str) -> None:
    """Withdraw a directory's approval (config.yaml)."""
    real, gone = _edit_dirs("remove_dir", directory)
    if not gone:
        click.echo(f"leashd: {real} is not an approved directory in config.yaml", err=True)
        sys.exit(1)
    click.echo(f"Removed {real}{_tell_daemon()}.")


@click.command("dirs")
def dirs_cmd() -> None:
    """The approved directories, as resolved from every configuration layer."""
    config = load_or_exit()
    src = config.source("approved_directories")
    for d in config.settings.approved_directories:
        click.echo(d)
    if not config.settings.approved_directories:
        click.echo("(none: `leashd add-dir DIR`)")
    click.echo(f"[{src.layer}: {src.where}]", err=True)


def register(main: click.Group) -> None:
    for cmd in (run_cmd, config_cmd, start_cmd, stop_cmd, status_cmd, add_dir_cmd,
                remove_dir_cmd, dirs_cmd):  # fmt: skip
        main.add_command(cmd)
