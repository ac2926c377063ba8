"""The daemon's commands: run, config, add-dir/remove-dir/dirs, start/stop/status, doctor.

Thin: each parses its options and calls the library. Heavy imports (the agent SDK, SQLite,
Telegram) happen inside the commands, so `leashd policy …` stays fast.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import TYPE_CHECKING, Any

import click

from leashd.cli.lazy import LazyGroup, examples

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


# Where a turn's failure is logged and also returned with the turn (`TurnResult.error`, or
# the engine's "Something went wrong"), which `run` prints in its own words.
_TOLD_BY_THE_RUN = ("leashd.agent.runner", "leashd.daemon.engine")


def _logs(config: Config, *, console: bool, told_by_run: bool = False) -> None:
    """The rotating JSON file under LOG_DIR; on the console, warnings and errors only (the
    console is the answer's, in `run`). With `told_by_run`, errors of the turn itself stay
    in the file: the run says them once, cleanly, and a structlog line before that saying
    the same is noise. Every other warning and error still reaches the console."""
    import logging

    from leashd.daemon.logs import configure

    s = config.settings
    configure(s.log_level, s.path("log_dir"), console=console, console_level="WARNING",
              max_bytes=s.log_max_bytes, backups=s.log_backup_count)  # fmt: skip
    if console and told_by_run:

        def shown(record: logging.LogRecord) -> bool:
            return record.levelno < logging.ERROR or not record.name.startswith(_TOLD_BY_THE_RUN)

        for handler in logging.getLogger().handlers:
            if type(handler) is logging.StreamHandler:  # the console's, not the file's
                handler.addFilter(shown)


def _require_credentials() -> None:
    """Exit 2 when the model cannot be reached for want of credentials, saying how to log in
    for leashd (the CLI's own "Please run /login" means nothing here): checked before
    anything starts, with `leashd doctor`'s check."""
    from pathlib import Path

    from leashd.daemon.doctor import credentials

    if credentials(os.environ, Path.home()).status != "fail":
        return
    from leashd.agent.runner import bundled_cli

    cli = bundled_cli() or "claude"
    click.echo(
        "leashd: no credentials for the model. leashd runs the Claude Code CLI bundled with it,"
        " which needs one of:\n"
        "  - an API key (console.anthropic.com): export ANTHROPIC_API_KEY=sk-ant-...\n"
        f"  - a Claude subscription: log in with `{cli} auth login`,\n"
        f"    or make a token with `{cli} setup-token` and export CLAUDE_CODE_OAUTH_TOKEN=...\n"
        "  - Amazon Bedrock or Google Vertex AI: CLAUDE_CODE_USE_BEDROCK=1 or "
        "CLAUDE_CODE_USE_VERTEX=1\n"
        "`leashd doctor` checks it.",
        err=True,
    )
    sys.exit(2)


def _require_sandbox(config: Config) -> None:
    """Exit 2 when the OS sandbox is configured on and cannot run here, with what to install
    and how to opt out: a run never falls back to the policy alone without being told to.
    Checked before anything starts (a daemon spawned, a question asked)."""
    _sandbox_or_exit(config.settings.sandbox)


def _sandbox_or_exit(mode: str) -> None:
    from leashd.agent.sandbox import SandboxConfig, SandboxUnavailable, require

    # only the mode decides whether it must run: the rest of sandbox_config(settings) (the
    # files to hide) would cost `leashd init` the import of the agent SDK for nothing
    try:
        require(SandboxConfig(mode="off" if mode == "off" else "enforce"))
    except SandboxUnavailable as exc:
        click.echo(f"leashd: {exc}", err=True)
        sys.exit(2)


@click.command(
    "run",
    epilog=examples(
        "leashd run -p 'what does this repository do?' --dir ~/src/app",
        "echo 'fix the failing test' | leashd run -p - --session fix",
    ),
)
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
@click.option("--new", "new", is_flag=True, help="Start the --session conversation afresh.")
@click.option("--policy", "policies", multiple=True, help="Policy name or file (repeatable).")
def run_cmd(prompt: str, directory: str, session: str | None, new: bool,
            policies: tuple[str, ...]) -> None:  # fmt: skip
    """Run one turn of the agent and print its answer; what needs approval is denied.
    Exits 1 when the agent fails, 2 on bad configuration."""
    from leashd.daemon.headless import run_once

    if new and not session:
        # a run without a name is always new: the flag would mean nothing, said rather than
        # ignored (a script that meant to name its session finds out now)
        raise click.UsageError("--new starts a named session afresh: it needs --session NAME")
    config = load_or_exit()
    _require_sandbox(config)
    _require_credentials()
    if prompt == "-":
        prompt = sys.stdin.read()
    _logs(config, console=True, told_by_run=True)
    code = asyncio.run(
        run_once(config.settings, prompt, directory=directory, session=session, new=new,
                 policies=list(policies))
    )  # fmt: skip
    sys.exit(code)


@click.command(
    "init",
    epilog=examples(
        "leashd init",
        "leashd init -y --dir ~/src/app --no-telegram",
    ),
)
@click.option("--dir", "directories", multiple=True, help="An approved directory (repeatable).")
@click.option("--token", help="The Telegram bot token from @BotFather.")
@click.option("--no-telegram", is_flag=True, help="Remove the bot token: use the terminal.")
@click.option("--user-id", "user_ids", multiple=True, help="A Telegram user id (repeatable).")
@click.option("--mode", type=click.Choice(["default", "plan", "auto"]), help="Default mode.")
@click.option("--policy", "policies", multiple=True, help="Policy name or file (repeatable).")
@click.option("-y", "--yes", is_flag=True, help="Ask nothing: flags, else current values.")
@click.option(
    "--allow-broad-dir",
    is_flag=True,
    help="Let / or your home directory (or a directory above it) be approved.",
)
def init_cmd(directories: tuple[str, ...], token: str | None, no_telegram: bool,
             user_ids: tuple[str, ...], mode: str | None, policies: tuple[str, ...],
             yes: bool, allow_broad_dir: bool) -> None:  # fmt: skip
    """Write ~/.leashd/config.yaml: where the agent may work, the Telegram bot and who may
    use it, the default mode and the policies. Asks for what the flags do not give.

    Never approves a directory unasked: `-y` needs `--dir` unless the file already has
    some; `/` and the home directory itself need --allow-broad-dir."""
    from leashd.daemon import wizard
    from leashd.daemon.config import ConfigError

    _sandbox_or_exit(_sandbox_mode())

    def given(check: Any, values: tuple[str, ...] | str | None, fallback: Any) -> Any:
        if not values:
            return fallback
        text = values if isinstance(values, str) else ",".join(values)
        try:
            return check(text)
        except ConfigError as exc:
            click.echo(f"leashd init: {exc}", err=True)
            sys.exit(2)

    try:
        now = wizard.current()
    except ConfigError as exc:
        click.echo(f"leashd init: {exc}", err=True)
        sys.exit(2)
    if yes and not directories and not now.directories:
        click.echo("leashd init: -y approves no directory on its own: pass --dir DIR "
                   "(repeatable) for the directories the agent may work in", err=True)  # fmt: skip
        sys.exit(2)

    def check_directories(text: str) -> list[str]:
        return wizard.check_directories(text, allow_broad=allow_broad_dir)

    new = wizard.Answers(
        directories=given(check_directories, directories, now.directories),
        token=None if no_telegram else given(wizard.check_token, token, now.token),
        user_ids=given(wizard.check_user_ids, user_ids, now.user_ids),
        mode=mode or now.mode,
        policies=given(wizard.check_policies, policies, now.policies),
    )
    if not yes:
        flags = {"dirs": directories, "token": token or no_telegram, "ids": user_ids,
                 "mode": mode, "policy": policies}  # fmt: skip
        _ask(new, asked={k: bool(v) for k, v in flags.items()}, allow_broad=allow_broad_dir)
    try:
        path = wizard.save(new)
    except ConfigError as exc:
        click.echo(f"leashd init: {exc}", err=True)
        sys.exit(2)
    click.echo(f"Wrote {path}")
    if new.token:
        click.echo("Next: `leashd start` runs the daemon; message your bot to begin.")
    else:
        click.echo("Next: `leashd start -f` talks with the agent in this terminal.")


def _sandbox_mode() -> str:
    """The sandbox setting for `init`, which also runs to mend a configuration that no
    longer loads (a directory gone): then the variable, else config.yaml's own value."""
    from leashd.daemon import config_file
    from leashd.daemon.config import ConfigError, load_config

    try:
        return load_config().settings.sandbox
    except ConfigError:
        pass
    value = os.environ.get("LEASHD_SANDBOX")
    if value is None:
        try:
            value = config_file.read().get("sandbox")
        except ConfigError:
            value = None
    return str(value or "enforce").strip().lower()


def _ask(a: Any, asked: dict[str, bool], allow_broad: bool = False) -> None:
    """Fill `a` (wizard.Answers) by prompting for what no flag gave; each prompt re-asks
    until its check passes."""
    from leashd.daemon import wizard
    from leashd.daemon.config import ConfigError

    def checked(check: Any) -> Any:
        def proc(text: str) -> Any:
            try:
                return check(text)
            except ConfigError as exc:
                raise click.UsageError(str(exc)) from None

        return proc

    if not asked["dirs"]:
        here = os.getcwd()
        offered = here if allow_broad or not wizard.too_broad(here) else None
        a.directories = click.prompt(
            "Directories the agent may work in (comma-separated)",
            default=", ".join(a.directories) or offered,
            value_proc=checked(lambda t: wizard.check_directories(t, allow_broad=allow_broad)),
        )
    if not asked["token"]:
        keep = " (Enter keeps the current one, 'none' removes it)" if a.token else ""
        text = click.prompt(
            f"Telegram bot token from @BotFather; empty to use this terminal{keep}",
            default="",
            show_default=False,
            hide_input=True,
            value_proc=checked(lambda t: t if t.strip() in ("", "none") else wizard.check_token(t)),
        ).strip()
        a.token = None if text == "none" else (text or a.token)  # checked by value_proc
    if a.token and not asked["ids"]:
        a.user_ids = click.prompt(
            "Telegram user ids allowed to use the bot (message @userinfobot for yours)",
            default=", ".join(a.user_ids) or None,
            value_proc=checked(wizard.check_user_ids),
        )
    if not asked["mode"]:
        a.mode = click.prompt("Default mode", default=a.mode,
                              type=click.Choice(list(wizard.MODES)))  # fmt: skip
    if not asked["policy"]:
        a.policies = click.prompt(
            "Policies (built in: default, strict, permissive, dev-tools, autonomous; or files)",
            default=", ".join(a.policies),
            value_proc=checked(wizard.check_policies),
        )


@click.command("config", epilog=examples("leashd config", "leashd config --keys"))
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


@click.command("start", epilog=examples("leashd start", "leashd start -f"))
@click.option("-f", "--foreground", is_flag=True, help="Run here instead of in the background.")
def start_cmd(foreground: bool) -> None:
    """Start the daemon. With a Telegram bot token it goes to the background (the bot is how
    you talk to it); without one, `-f` runs it here with the terminal REPL. One daemon at a
    time."""
    config = load_or_exit()
    _refuse_if_running()
    _require_sandbox(config)
    _require_credentials()
    if config.settings.telegram_bot_token is None and not foreground:
        click.echo(
            "leashd: no Telegram bot token is set, so the daemon talks through this "
            "terminal: run `leashd start -f` (or set one with `leashd init`)",
            err=True,
        )
        sys.exit(2)
    if foreground:
        sys.exit(_foreground(config))
    _background(config)


@click.command("restart", epilog=examples("leashd restart"))
def restart_cmd() -> None:
    """Stop the daemon (gracefully) and start it again in the background."""
    from leashd.daemon import process

    config = load_or_exit()
    if config.settings.telegram_bot_token is None:
        click.echo(
            "leashd: restart runs the daemon in the background, which needs a Telegram bot "
            "token; without one use `leashd stop` and `leashd start -f`",
            err=True,
        )
        sys.exit(2)
    _require_sandbox(config)  # before the running daemon is stopped: it could not come back
    _require_credentials()
    try:
        before = process.stop(60)
    except TimeoutError as exc:
        click.echo(f"leashd: {exc}", err=True)
        sys.exit(1)
    if before.running:
        click.echo(f"leashd stopped (pid {before.pid}).")
    _background(config)


def _refuse_if_running() -> None:
    from leashd.daemon import process

    st = process.status()
    if st.running:
        click.echo(f"leashd is already running (pid {st.pid}); `leashd stop` first", err=True)
        sys.exit(1)


def _foreground(config: Config) -> int:
    from leashd.daemon import process
    from leashd.daemon.serve import serve_telegram, serve_terminal

    telegram = config.settings.telegram_bot_token is not None
    _logs(config, console=telegram)
    try:
        return asyncio.run(serve_telegram() if telegram else serve_terminal())
    except process.AlreadyRunning as exc:
        click.echo(f"leashd: {exc}", err=True)
        return 1


def _background(config: Config) -> None:
    from leashd.daemon import process

    out = config.settings.path("log_dir") / "daemon.out"
    started = process.spawn([sys.executable, "-m", "leashd.cli", "start", "-f"], out)
    if not started.ok:
        click.echo(f"leashd: the daemon did not start:\n{started.output}", err=True)
        sys.exit(1)
    click.echo(f"leashd started (pid {started.pid}); its output goes to {out}.")


@click.command("stop", epilog=examples("leashd stop", "leashd stop --timeout 60"))
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


@click.command("status", epilog=examples("leashd status"))
def status_cmd() -> None:
    """Whether the daemon runs, and where; whether the OS sandbox is on. Exit 3 when the
    daemon is not running."""
    from leashd.daemon import process

    st = process.status()
    if st.running:
        click.echo(f"leashd is running (pid {st.pid}, {st.detail or 'daemon'}).")
    else:
        note = " (a stale PID file from a daemon that died is left; `leashd stop` clears it)"
        click.echo("leashd is not running." + (note if st.stale_pid_file else ""))
    click.echo(_sandbox_line())
    if not st.running:
        sys.exit(3)


def _sandbox_line() -> str:
    """The sandbox as configured (what a daemon started now would have)."""
    from leashd.daemon.config import ConfigError, load_config
    from leashd.daemon.doctor import where_set

    try:
        config = load_config()
    except ConfigError:
        return "sandbox: unknown, the configuration does not load (`leashd config` says why)"
    if config.settings.sandbox == "off":
        where = where_set(config, "sandbox")
        return f"sandbox: off ({where}): only the policy guards what Bash runs"
    return "sandbox: enforced (every Bash call runs in the OS sandbox)"


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


@click.command("add-dir", epilog=examples("leashd add-dir ~/src/app"))
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option("--allow-broad-dir", is_flag=True,
              help="Approve / or the home directory (or one above it) all the same.")  # fmt: skip
def add_dir_cmd(directory: str, allow_broad_dir: bool) -> None:
    """Approve a directory for the agent to work in (config.yaml)."""
    from leashd.daemon.wizard import too_broad

    broad = too_broad(directory)
    if broad is not None and not allow_broad_dir:
        click.echo(f"leashd: {directory} is {broad}: the agent could reach every project and "
                   "private file under it. Name a project directory, or pass "
                   "--allow-broad-dir to approve it anyway", err=True)  # fmt: skip
        sys.exit(2)
    real, new = _edit_dirs("add_dir", directory)
    click.echo(f"Approved {real}{_tell_daemon()}." if new else f"{real} was already approved.")


@click.command("remove-dir", epilog=examples("leashd remove-dir ~/src/old-app"))
@click.argument("directory")
def remove_dir_cmd(directory: str) -> None:
    """Withdraw a directory's approval (config.yaml)."""
    real, gone = _edit_dirs("remove_dir", directory)
    if not gone:
        click.echo(f"leashd: {real} is not an approved directory in config.yaml", err=True)
        sys.exit(1)
    click.echo(f"Removed {real}{_tell_daemon()}.")


@click.command("dirs", epilog=examples("leashd dirs"))
def dirs_cmd() -> None:
    """The approved directories, as resolved from every configuration layer."""
    config = load_or_exit()
    src = config.source("approved_directories")
    for d in config.settings.approved_directories:
        click.echo(d)
    if not config.settings.approved_directories:
        click.echo("(none: `leashd add-dir DIR`)")
    click.echo(f"[{src.layer}: {src.where}]")


@click.command("doctor", epilog=examples("leashd doctor"))
def doctor_cmd() -> None:
    """Check everything a run needs, one line each: the Claude Code CLI, credentials for the
    model, the OS sandbox, the approved directories, the policies, the audit log, Telegram.
    Exit 0 when all pass, 1 otherwise."""
    from leashd.daemon import doctor

    checks = doctor.diagnose()
    for check in checks:
        click.echo(check.line())
    sys.exit(0 if doctor.passed(checks) else 1)


@click.group(
    "service",
    cls=LazyGroup,
    epilog=examples("leashd service install", "leashd service show"),
)
def service_group() -> None:
    """Run the daemon as a systemd user service (Linux)."""


@service_group.command(
    "install",
    epilog=examples(
        "leashd service install",
        "leashd service install --no-enable",
    ),
)
@click.option("--enable/--no-enable", default=True, show_default=True,
              help="Start it now and at every login.")  # fmt: skip
def service_install_cmd(enable: bool) -> None:
    """Write ~/.config/systemd/user/leashd.service and start it. Needs a bot token: a
    service has no terminal to talk through."""
    from leashd.daemon import service

    config = load_or_exit()
    if config.settings.telegram_bot_token is None:
        click.echo("leashd: a service has no terminal, so it needs a Telegram bot token: "
                   "set one with `leashd init`", err=True)  # fmt: skip
        sys.exit(2)
    _require_sandbox(config)
    out = service.install(enable=enable)
    click.echo(f"{'Wrote' if out.changed else 'Unchanged:'} {out.path}")
    _report_steps(out.steps)
    if not enable:
        click.echo("Start it with: systemctl --user enable --now leashd.service")
    elif all(ok for _, ok, _ in out.steps):
        click.echo(
            "leashd runs as a service; `journalctl --user -u leashd` shows its output. "
            "To keep it running while logged out: loginctl enable-linger"
        )


@service_group.command("uninstall", epilog=examples("leashd service uninstall"))
def service_uninstall_cmd() -> None:
    """Stop the service and remove its unit."""
    from leashd.daemon import service

    out = service.uninstall()
    if not out.changed:
        click.echo(f"No unit at {out.path}.")
        return
    click.echo(f"Removed {out.path}")
    _report_steps(out.steps, must=False)


@service_group.command("show", epilog=examples("leashd service show > ~/leashd.service"))
def service_show_cmd() -> None:
    """Print the unit `install` would write."""
    from leashd.daemon import service

    click.echo(service.unit_text(), nl=False)


def _report_steps(steps: list[tuple[str, bool, str]], must: bool = True) -> None:
    for command, ok, output in steps:
        if ok:
            continue
        click.echo(f"leashd: `{command}` failed: {output or 'no output'}", err=True)
        if must:
            click.echo("The unit is written; run that command yourself once systemd's user "
                       "instance is available.", err=True)  # fmt: skip
            sys.exit(1)
