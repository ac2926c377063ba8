"""`leashd doctor`: one line per check, ✓ / ✗ / –, exit 0 only when nothing fails.

The command runs as a real process (its own LEASHD_HOME and HOME, a PATH with or without
bubblewrap, a fake Telegram API it reaches over HTTP); each check is also pinned on its own,
in this process, for the cases a whole run cannot set up cheaply."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from leashd.agent.sandbox import problems
from leashd.daemon import doctor
from leashd.daemon.config import Settings
from leashd.gate.audit import AuditLog
from leashd.policy.loader import DEFAULT_POLICIES, load_compiled
from tests.fakes.telegram_api import BOT_USERNAME, FakeTelegram

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "123456789:AAE" + "x" * 32
API_KEY = "sk-ant-doctor-must-never-print-this"
NAMES = ["configuration", "Claude Code CLI", "credentials", "OS sandbox", "approved dirs",
         "policies", "audit log", "Telegram"]  # fmt: skip
TOOLS = ("python3", "git", "socat", "bwrap", "sh", "env", "true")  # bwrap is tried on `true`

sandbox_runs_here = pytest.mark.skipif(
    bool(problems()), reason="bubblewrap and socat must work on this machine"
)


def bin_dir(tmp_path: Path, missing: str | None = None) -> str:
    """A PATH of symlinks to the tools this machine has, `missing` left out."""
    d = tmp_path / f"bin-without-{missing}"
    d.mkdir()
    for tool in TOOLS:
        real = shutil.which(tool)
        if tool != missing and real:
            (d / tool).symlink_to(real)
    return str(d)


@pytest.fixture
def world(tmp_path):
    (tmp_path / "proj").mkdir()
    (tmp_path / "home").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEASHD_", "CLAUDE_"))}
    env.pop("ANTHROPIC_API_KEY", None)
    env.update(
        PATH=bin_dir(tmp_path),
        HOME=str(tmp_path / "home"),
        LEASHD_HOME=str(tmp_path / "leashd"),
        LEASHD_APPROVED_DIRECTORIES=str(tmp_path / "proj"),
        ANTHROPIC_API_KEY=API_KEY,
        PYTHONPATH=str(ROOT),
    )
    return SimpleNamespace(root=tmp_path, env=env)


def run_doctor(w, **env: str) -> tuple[int, dict[str, str], str]:
    """The exit code, each check's line by name, and the whole output."""
    done = subprocess.run(
        [sys.executable, "-m", "leashd.cli", "doctor"],
        env={**w.env, **env}, cwd=w.root, capture_output=True, text=True, timeout=120,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    lines = done.stdout.splitlines()
    assert [line[2:20].strip() for line in lines] == NAMES, done.stdout + done.stderr
    assert all(line[0] in "✓✗–" and line[1] == " " for line in lines), done.stdout
    return done.returncode, dict(zip(NAMES, lines, strict=True)), done.stdout + done.stderr


# --- the whole command --------------------------------------------------------------------------


@sandbox_runs_here
def test_everything_present_passes_with_one_line_per_check(world):
    with FakeTelegram(TOKEN) as tg:
        code, by_name, out = run_doctor(
            world,
            LEASHD_TELEGRAM_BOT_TOKEN=TOKEN,
            LEASHD_TELEGRAM_BASE_URL=tg.base_url,
            LEASHD_ALLOWED_USER_IDS="42",
        )
        assert any(r.method == "getMe" for r in tg.requests)  # it did ask Telegram
    assert code == 0, out
    assert all(line.startswith("✓") for line in by_name.values()), out
    assert "(Claude Code)" in by_name["Claude Code CLI"]  # the CLI answered --version
    assert "ANTHROPIC_API_KEY (environment)" in by_name["credentials"]
    assert "enforced" in by_name["OS sandbox"]
    assert str(world.root / "proj") in by_name["approved dirs"]
    assert f"@{BOT_USERNAME}" in by_name["Telegram"]
    assert API_KEY not in out and TOKEN not in out  # secrets are named, never shown
    assert not (world.root / "leashd" / "audit.jsonl").exists()  # a check makes nothing


@sandbox_runs_here
def test_without_bubblewrap_the_sandbox_check_fails_and_so_does_the_exit(world):
    _, before, _ = run_doctor(world)
    code, by_name, out = run_doctor(world, PATH=bin_dir(world.root, missing="bwrap"))
    assert code == 1, out
    line = by_name["OS sandbox"]
    assert line.startswith("✗ OS sandbox")
    assert "bwrap is not installed" in line and "bubblewrap" in line
    assert "LEASHD_SANDBOX=off" in line
    # only the sandbox changed: the rest is reported as before
    assert {k: v for k, v in by_name.items() if k != "OS sandbox"} == {
        k: v for k, v in before.items() if k != "OS sandbox"
    }
    assert before["OS sandbox"].startswith("✓")


def test_the_sandbox_configured_off_is_said_plainly_and_not_a_failure(world):
    code, by_name, out = run_doctor(
        world, PATH=bin_dir(world.root, missing="bwrap"), LEASHD_SANDBOX="off"
    )
    assert by_name["OS sandbox"] == (
        "– OS sandbox         OFF (LEASHD_SANDBOX=off): only the policy guards what Bash runs"
    )
    assert code == 0, out


def test_a_configuration_that_does_not_load_fails_and_the_checks_that_need_it_say_so(world):
    code, by_name, _ = run_doctor(world, LEASHD_APPROVED_DIRECTORIES=str(world.root / "gone"))
    assert code == 1
    assert by_name["configuration"].startswith("✗") and "gone" in by_name["configuration"]
    for name in ("approved dirs", "policies", "audit log", "Telegram"):
        assert by_name[name].startswith("–") and "does not load" in by_name[name]
    assert by_name["Claude Code CLI"].startswith("✓")  # what needs no setting is still checked


# --- each check ---------------------------------------------------------------------------------


@pytest.fixture
def settings(tmp_path, monkeypatch):
    monkeypatch.setenv("LEASHD_HOME", str(tmp_path / "leashd"))
    (tmp_path / "proj").mkdir()

    def make(**values) -> Settings:
        return Settings.model_validate({"approved_directories": [str(tmp_path / "proj")],
                                        **values})  # fmt: skip

    return make


def test_credentials_name_where_they_were_found_never_the_value(tmp_path):
    home = tmp_path / "home"
    found = doctor.credentials({"CLAUDE_CODE_OAUTH_TOKEN": "oat-secret"}, home)
    assert (found.status, found.detail) == ("ok", "CLAUDE_CODE_OAUTH_TOKEN (environment)")
    assert doctor.credentials({}, home).status == "fail"
    assert doctor.credentials({"ANTHROPIC_API_KEY": "  "}, home).status == "fail"  # empty
    stored = home / ".claude" / ".credentials.json"
    stored.parent.mkdir(parents=True)
    stored.write_text('{"claudeAiOauth": {"accessToken": "sk-ant-oat-secret"}}')
    found = doctor.credentials({}, home)
    assert found.status == "ok" and str(stored) in found.detail
    assert "secret" not in found.detail
    # on macOS a login sits in the Keychain: not seen, so not called missing
    assert doctor.credentials({}, tmp_path / "nobody", platform="darwin").status == "n/a"


def test_telegram_is_not_applicable_without_a_token(settings):
    check = doctor.telegram(settings())
    assert (check.status, check.line()[0]) == ("n/a", "–")


def test_telegram_refusing_the_token_or_nobody_allowed_fails(settings):
    with FakeTelegram(TOKEN) as tg:
        wrong = TOKEN.replace("x", "y")
        check = doctor.telegram(settings(telegram_bot_token=wrong, telegram_base_url=tg.base_url,
                                         allowed_user_ids=["42"]))  # fmt: skip
        assert check.status == "fail" and "Unauthorized" in check.detail
        assert wrong not in check.line()
        check = doctor.telegram(settings(telegram_bot_token=TOKEN, telegram_base_url=tg.base_url))
        assert check.status == "fail" and "nobody may use it" in check.detail


def test_telegram_unreachable_fails_without_showing_the_token(settings):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    check = doctor.telegram(
        settings(telegram_bot_token=TOKEN, telegram_base_url=f"http://127.0.0.1:{port}/bot",
                 allowed_user_ids=["42"]),
        timeout=2,
    )  # fmt: skip
    assert check.status == "fail" and f"cannot reach http://127.0.0.1:{port}" in check.detail
    assert TOKEN not in check.line() and TOKEN.split(":")[1] not in check.line()


def test_the_audit_log_not_written_yet_is_checked_without_being_made(settings, tmp_path):
    check = doctor.audit_log(settings())
    assert check.status == "ok" and "not written yet" in check.detail
    assert not (tmp_path / "leashd").exists()


def test_an_intact_audit_log_passes_and_a_damaged_one_fails(settings, tmp_path):
    log = tmp_path / "leashd" / "audit.jsonl"
    with AuditLog(log) as audit:
        for n in range(2):
            audit.append("decision", {"tool": "Bash", "decision": "allow", "n": n})
    check = doctor.audit_log(settings())
    assert check.status == "ok" and "the chain holds" in check.detail
    log.write_bytes(log.read_bytes().replace(b'"n":1', b'"n":7'))
    check = doctor.audit_log(settings())
    assert check.status == "fail" and "leashd audit repair" in check.detail


def test_an_audit_key_file_that_cannot_be_read_fails(settings, tmp_path):
    check = doctor.audit_log(settings(audit_key_file=str(tmp_path / "no-such-key")))
    assert check.status == "fail" and "no-such-key" in check.detail


def test_policies_report_their_rules_or_what_keeps_them_from_loading(settings, tmp_path):
    check = doctor.policies(settings())
    rules = len(load_compiled(list(DEFAULT_POLICIES)).rules)
    assert check.status == "ok" and check.detail == f"default, dev-tools: {rules} rules"
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - name: x\n    action: maybe\n")
    check = doctor.policies(settings(policy_files=[str(bad)]))
    assert check.status == "fail" and "bad.yaml" in check.detail


def test_no_approved_directory_fails(settings):
    check = doctor.directories(settings(approved_directories=[]))
    assert check.status == "fail" and "leashd add-dir" in check.detail


def test_a_cli_that_fails_or_hangs_fails_the_check(tmp_path, monkeypatch):
    cli = tmp_path / "claude"
    monkeypatch.setattr("leashd.agent.runner.bundled_cli", lambda: str(cli))
    cli.write_text("#!/bin/sh\necho 'cannot start' >&2\nexit 3\n")
    cli.chmod(0o755)
    check = doctor.claude_cli()
    assert check.status == "fail" and "exit 3" in check.detail and "cannot start" in check.detail
    cli.write_text("#!/bin/sh\nexec sleep 30\n")
    check = doctor.claude_cli(timeout=0.5)
    assert check.status == "fail" and "did not answer" in check.detail
    monkeypatch.setattr("leashd.agent.runner.bundled_cli", lambda: None)
    assert doctor.claude_cli().status == "fail"
