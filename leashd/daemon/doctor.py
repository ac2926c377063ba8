"""`leashd doctor`: everything a run needs, checked one by one, each with a line to show.

Each check says what it found, never a secret (a credential is named by where it was found).
A check that does not apply here (no bot token: no Telegram; the sandbox configured off) is
neither passed nor failed, and says so. Heavy imports happen inside the checks, so that
`leashd --help` stays fast.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from leashd.daemon.config import Config, Settings

Status = Literal["ok", "fail", "n/a"]
MARKS: dict[str, str] = {"ok": "✓", "fail": "✗", "n/a": "–"}

CLI_TIMEOUT = 30.0  # seconds: the bundled CLI starts in under one; a hung one fails the check
TELEGRAM_TIMEOUT = 5.0
TELEGRAM_API = "https://api.telegram.org"

# What lets the Claude Code CLI reach a model, besides a `claude auth login`: the check reports
# the name, never the value.
CREDENTIAL_VARIABLES = (
    ("ANTHROPIC_API_KEY", "ANTHROPIC_API_KEY"),
    ("CLAUDE_CODE_OAUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN"),
    ("ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_AUTH_TOKEN (a gateway's token)"),
    ("CLAUDE_CODE_USE_BEDROCK", "Amazon Bedrock (CLAUDE_CODE_USE_BEDROCK)"),
    ("CLAUDE_CODE_USE_VERTEX", "Google Vertex AI (CLAUDE_CODE_USE_VERTEX)"),
)


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str

    def line(self) -> str:
        return f"{MARKS[self.status]} {self.name:<18} {self.detail}"


def diagnose() -> list[Check]:
    """Every check, in the order a run meets them. The configuration first: the checks that
    read a setting say they cannot tell when it does not load."""
    from leashd.daemon.config import ConfigError, load_config

    try:
        config: Config | None = load_config()
        checks = [configuration(config)]
    except ConfigError as exc:
        config = None
        checks = [Check("configuration", "fail", _one_line(str(exc)) + " (`leashd config`)")]
    checks += [claude_cli(), credentials(os.environ, Path.home())]
    if config is None:
        checks.append(sandbox(None))
        unknown = "the configuration does not load"
        checks += [Check(name, "n/a", unknown)
                   for name in ("approved dirs", "policies", "audit log", "Telegram")]  # fmt: skip
        return checks
    s = config.settings
    checks += [sandbox(config), directories(s), policies(s), audit_log(s), telegram(s)]
    return checks


def passed(checks: list[Check]) -> bool:
    return all(c.status != "fail" for c in checks)


# --- the checks -------------------------------------------------------------------------------


def configuration(config: Config) -> Check:
    from leashd.daemon.config import leashd_home

    path = leashd_home() / "config.yaml"
    where = str(path) if path.is_file() else f"defaults and the environment (no {path})"
    if config.warnings:
        where += f"; {len(config.warnings)} warning(s): {config.warnings[0]}"
    return Check("configuration", "ok", where)


def claude_cli(timeout: float = CLI_TIMEOUT) -> Check:
    """The CLI bundled in the claude-agent-sdk wheel, the one leashd runs: asked its version."""
    from leashd.agent.runner import bundled_cli

    cli = bundled_cli()
    if cli is None:
        return Check("Claude Code CLI", "fail",
                     "not in the claude-agent-sdk wheel: reinstall leashd")  # fmt: skip
    try:
        done = subprocess.run([cli, "--version"], capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)  # fmt: skip
    except subprocess.TimeoutExpired:
        return Check("Claude Code CLI", "fail", f"{cli} --version did not answer in {timeout:g} s")
    except OSError as exc:
        return Check("Claude Code CLI", "fail", f"{cli} does not run: {exc.strerror}")
    said = _one_line(done.stdout or done.stderr)
    if done.returncode != 0:
        return Check("Claude Code CLI", "fail", f"{cli} --version: exit {done.returncode}: {said}")
    return Check("Claude Code CLI", "ok", said or cli)


def credentials(environ: Mapping[str, str], home: Path, platform: str | None = None) -> Check:
    """What the CLI will log in to the model with: a variable, or a `claude auth login` file."""
    for name, shown in CREDENTIAL_VARIABLES:
        if environ.get(name, "").strip():
            return Check("credentials", "ok", f"{shown} (environment)")
    config_dir = Path(environ.get("CLAUDE_CONFIG_DIR") or home / ".claude").expanduser()
    stored = config_dir / ".credentials.json"
    try:
        if stored.is_file() and stored.stat().st_size > 0:
            return Check("credentials", "ok", f"{stored} (claude auth login)")
    except OSError:
        pass
    if (platform or sys.platform) == "darwin":
        # there the CLI keeps its login in the Keychain, which leashd does not read
        return Check("credentials", "n/a", "none in the environment; a `claude auth login` on "
                     "macOS is in the Keychain, not checked here")  # fmt: skip
    return Check("credentials", "fail", "none: set ANTHROPIC_API_KEY (or CLAUDE_CODE_OAUTH_TOKEN"
                 " from `claude setup-token`), or log in with `claude auth login` of the CLI "
                 "leashd bundles")  # fmt: skip


def sandbox(config: Config | None) -> Check:
    """The OS sandbox: whether it can run here, or that it is configured off (said plainly:
    only the policy then guards what Bash runs). No configuration: checked as enforced."""
    from leashd.agent import sandbox as os_sandbox

    if config is not None and config.settings.sandbox == "off":
        return Check("OS sandbox", "n/a", f"OFF ({where_set(config, 'sandbox')}): only the "
                     "policy guards what Bash runs")  # fmt: skip
    found = os_sandbox.problems()
    if found:
        how = ("install bubblewrap and socat" if any("not installed" in f for f in found)
               else "`leashd start` says how to fix it")  # fmt: skip
        return Check("OS sandbox", "fail",
                     "; ".join(found) + f": {how}, or set LEASHD_SANDBOX=off")  # fmt: skip
    what = "Seatbelt works" if sys.platform == "darwin" else "bubblewrap and socat work"
    return Check("OS sandbox", "ok", f"enforced; {what}")


def directories(s: Settings) -> Check:
    dirs = s.approved_directories
    if not dirs:
        return Check("approved dirs", "fail", "none: `leashd add-dir DIR` (or `leashd init`)")
    missing = [d for d in dirs if not os.path.isdir(d)]
    if missing:
        return Check("approved dirs", "fail", "not a directory: " + ", ".join(missing))
    return Check("approved dirs", "ok", ", ".join(dirs))


def policies(s: Settings) -> Check:
    from leashd.policy.errors import PolicyError
    from leashd.policy.loader import DEFAULT_POLICIES, load_compiled

    specs = list(s.policy_files) or list(DEFAULT_POLICIES)
    try:
        compiled = load_compiled(specs)
    except PolicyError as exc:
        return Check("policies", "fail", _one_line(str(exc)))
    names = ", ".join(os.path.basename(p) for p in specs)
    return Check("policies", "ok", f"{names}: {len(compiled.rules)} rules")


def audit_log(s: Settings) -> Check:
    """Writable, and its chain continues (`AuditLog.check`, what the daemon runs at start).
    A log not written yet is not made here: its directory (or the one that will hold it)
    must be writable."""
    from leashd.gate.audit import AuditError, AuditLog
    from leashd.gate.audit_key import AuditKeyError, load_key

    path = s.path("audit_log_path")
    try:
        key = load_key(s.audit_key.get_secret_value() if s.audit_key else None,
                       s.audit_key_file or None)  # fmt: skip
    except AuditKeyError as exc:
        return Check("audit log", "fail", str(exc))
    if not path.exists():
        parent = _existing_parent(path)
        if not os.access(parent, os.W_OK | os.X_OK):
            return Check("audit log", "fail", f"{path} cannot be made: {parent} is not writable")
        return Check("audit log", "ok", f"{path} (not written yet; {parent} is writable)")
    if not os.access(path, os.W_OK):
        return Check("audit log", "fail", f"{path} is not writable")
    try:
        with AuditLog(path, key=key) as audit:
            notices = audit.check()
    except AuditError as exc:
        return Check("audit log", "fail", _one_line(str(exc)))
    said = f"; {len(notices)} notice(s): `leashd audit verify`" if notices else ""
    return Check("audit log", "ok", f"{path}: the chain holds{said}")


def telegram(s: Settings, timeout: float = TELEGRAM_TIMEOUT) -> Check:
    """getMe with the bot token, through telegram_base_url when set."""
    import httpx

    if s.telegram_bot_token is None:
        return Check("Telegram", "n/a", "no bot token: the terminal (`leashd start -f`)")
    token = s.telegram_bot_token.get_secret_value()
    root = (s.telegram_base_url or TELEGRAM_API).rstrip("/").removesuffix("/bot")
    try:
        reply = httpx.get(f"{root}/bot{token}/getMe", timeout=timeout)
        body = reply.json()
    except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
        # an httpx error can hold the URL, and the URL holds the token
        said = (str(exc) or type(exc).__name__).replace(token, "<token>")
        return Check("Telegram", "fail", f"cannot reach {root}: {_one_line(said)}")
    if not (isinstance(body, dict) and body.get("ok")):
        said = body.get("description") if isinstance(body, dict) else None
        said = said or f"HTTP {reply.status_code}"
        return Check("Telegram", "fail", f"{root} refused the bot token: {said}")
    bot = body.get("result") or {}
    name = f"@{bot.get('username')}" if bot.get("username") else "the bot"
    if not s.allowed_user_ids and not s.telegram_open_bot:
        return Check("Telegram", "fail", f"{name} answers, but nobody may use it: set "
                     "LEASHD_ALLOWED_USER_IDS (`leashd init` asks)")  # fmt: skip
    return Check("Telegram", "ok", f"{name} answers at {root}")


# --- helpers ----------------------------------------------------------------------------------


def where_set(config: Config, key: str) -> str:
    """Where a setting's value came from, as the user would write it: LEASHD_SANDBOX=off, or
    config.yaml: /path:3."""
    src = config.source(key)
    if src.layer == "environment":
        return f"{src.where}={getattr(config.settings, key)}"
    return f"{src.layer}: {src.where}"


def _one_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    if not lines:
        return ""
    return lines[0] + (f" (+{len(lines) - 1} more lines)" if len(lines) > 1 else "")


def _existing_parent(path: Path) -> Path:
    p = path.parent
    while not p.exists() and p != p.parent:
        p = p.parent
    return p
