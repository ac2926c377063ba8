"""`leashd service install`: a systemd user unit that keeps the daemon running.

The unit runs `leashd start -f` under systemd (which does the backgrounding, restarts and
logging to the journal), with this Python, this PATH (the agent's tools are found the same
way as from the shell that installed it) and this LEASHD_HOME. Quoting follows systemd's
rules, so a path with spaces, `%` or `$` stays one argument.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

UNIT = "leashd.service"


def unit_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base).expanduser() / "systemd" / "user" / UNIT


def _quote(arg: str) -> str:
    """One argument for systemd: specifiers (%) and variables ($) escaped, then quoted."""
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    return f'"{escaped}"'


def unit_text(environ: dict[str, str] | None = None, python: str | None = None) -> str:
    env = dict(os.environ if environ is None else environ)
    command = [python or sys.executable, "-m", "leashd.cli", "start", "-f"]
    keep = {k: env[k] for k in ("PATH", "LEASHD_HOME", "LANG") if env.get(k)}
    lines = [
        "[Unit]",
        "Description=leashd: a coding agent behind a safety gate, driven from Telegram",
        "Wants=network-online.target",
        "After=network-online.target",
        "",
        "[Service]",
        "Type=simple",
        "ExecStart=" + " ".join(_quote(a) for a in command),
        "WorkingDirectory=%h",
        *(f"Environment={_quote(f'{k}={v}')}" for k, v in keep.items()),
        # SIGTERM is the graceful stop: approvals still waiting are denied and audited, and
        # the turn in progress is interrupted; give that time before SIGKILL.
        "KillSignal=SIGTERM",
        "TimeoutStopSec=60",
        "Restart=on-failure",
        "RestartSec=5",
        "",
        "[Install]",
        "WantedBy=default.target",
        "",
    ]
    return "\n".join(lines)


@dataclass
class Outcome:
    path: Path
    changed: bool
    steps: list[tuple[str, bool, str]]  # (command, succeeded, its output)


def install(*, enable: bool = True, environ: dict[str, str] | None = None) -> Outcome:
    """Write the unit (atomically) and, with `enable`, tell systemd to start it now and at
    login. A systemctl that fails is reported in the outcome, not raised: the file is
    written either way and the user is told what to run."""
    path = unit_path()
    text = unit_text(environ)
    changed = not path.is_file() or path.read_text(encoding="utf-8") != text
    if changed:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    steps: list[tuple[str, bool, str]] = []
    if enable:
        for args in (["daemon-reload"], ["enable", "--now", UNIT]):
            ok, out = _systemctl(args)
            steps.append(("systemctl --user " + " ".join(args), ok, out))
            if not ok:
                break
    return Outcome(path, changed, steps)


def uninstall() -> Outcome:
    path = unit_path()
    steps: list[tuple[str, bool, str]] = []
    if path.is_file():
        ok, out = _systemctl(["disable", "--now", UNIT])
        steps.append((f"systemctl --user disable --now {UNIT}", ok, out))
        path.unlink()
        ok, out = _systemctl(["daemon-reload"])
        steps.append(("systemctl --user daemon-reload", ok, out))
        return Outcome(path, True, steps)
    return Outcome(path, False, steps)


def _systemctl(args: list[str]) -> tuple[bool, str]:
    exe = shutil.which("systemctl")
    if exe is None:
        return False, "systemctl is not installed (no systemd here)"
    try:
        p = subprocess.run(
            [exe, "--user", *args], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, str(exc)
    return p.returncode == 0, (p.stdout + p.stderr).strip()
