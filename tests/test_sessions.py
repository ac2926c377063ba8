"""Sessions never silently start over, and nothing stays half-done after a crash: `leashd run
--session NAME --new`, the memory backend's warning, and the approval rows a killed daemon
left waiting in SQLite. Real processes, real SQLite files, the real Claude Code CLI against
the fake Messages API."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from leashd.agent.runner import bundled_cli
from leashd.daemon.app import build
from leashd.daemon.config import Settings
from tests.conftest import ROOT, worlds_dir
from tests.fakes.anthropic_api import FakeAnthropic

LEASHD = [sys.executable, "-m", "leashd.cli"]
needs_cli = pytest.mark.skipif(bundled_cli() is None, reason="no bundled Claude Code CLI")


@pytest.fixture
def world():
    root = worlds_dir() / uuid.uuid4().hex[:12]
    home = root / "home"
    proj = home / "proj"
    proj.mkdir(parents=True)
    leashd_home = home / ".leashd"
    leashd_home.mkdir()
    (leashd_home / "config.yaml").write_text(f"approved_directories: [{proj}]\n")
    with FakeAnthropic() as fake:
        env = {
            **fake.env(str(home)),
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LEASHD_HOME": str(leashd_home),
            "LANG": "C.UTF-8",
        }
        try:
            yield fake, proj, env
        finally:
            shutil.rmtree(root, ignore_errors=True)


def run(env: dict[str, str], proj: Path, prompt: str, *args: str, **more: str):
    return subprocess.run(
        [*LEASHD, "run", "--dir", str(proj), *args, "-p", prompt],
        env={**env, **more},
        cwd=proj,
        capture_output=True,
        text=True,
        timeout=180,
    )


@needs_cli
def test_run_new_starts_the_named_session_afresh(world):
    fake, proj, env = world
    fake.say("Noted.")
    first = run(env, proj, "remember tangerine", "--session", "ci")
    assert first.returncode == 0, first.stderr
    fake.say("Fresh start.")
    new = run(env, proj, "what was the word?", "--session", "ci", "--new")
    assert new.returncode == 0, new.stderr
    assert fake.user_texts() == ["what was the word?"]  # the old conversation is not sent
    # the session goes on from the new conversation
    fake.say("Continued.")
    again = run(env, proj, "and now?", "--session", "ci")
    assert again.returncode == 0, again.stderr
    assert fake.user_texts() == ["what was the word?", "and now?"]


def test_run_new_needs_a_session_name(world):
    fake, proj, env = world
    p = run(env, proj, "anything", "--new")
    assert p.returncode == 2
    assert "--new" in p.stderr and "--session" in p.stderr
    assert fake.requests == []


@needs_cli
def test_run_session_with_the_memory_backend_warns_that_nothing_is_remembered(world):
    fake, proj, env = world
    fake.say("Hello.")
    p = run(env, proj, "hi", "--session", "ci", LEASHD_STORAGE_BACKEND="memory")
    assert p.returncode == 0, p.stderr
    assert "nothing is remembered between runs" in p.stderr
    assert p.stdout.strip() == "Hello."
    # no warning where it does not apply
    fake.say("Hello.")
    p = run(env, proj, "hi", LEASHD_STORAGE_BACKEND="memory")
    assert "remembered" not in p.stderr


# --- approvals left waiting by a daemon that was killed ----------------------------------------

ASK = 'ask publish cmd "npm publish" reason "Publishing is for humans"\ndefault allow\n'

# A daemon (the real one, built from its settings) that asks for an approval and says
# "waiting" once the request is in the audit log and in SQLite; then it is killed.
_CHILD = textwrap.dedent(
    """
    import asyncio, json, sys
    import structlog
    from leashd.daemon.app import build
    from leashd.daemon.config import Settings
    from leashd.gate.gate import Session

    settings = Settings(**json.loads(sys.argv[1]))
    # the daemon's INFO events go to stderr: stdout says only where the child is
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))

    async def main():
        daemon = await build(settings, approvers={"me"})
        row = await daemon.engine.session_for("c1")

        async def ask(req):
            # the SQLite row is written by the engine from the bus: wait until it is there
            while not await daemon.store.approvals(row.id):
                await asyncio.sleep(0.01)
            print("waiting", row.id, flush=True)

        session = Session(str(row.id), "c1", row.directory, row.mode)
        await daemon.gate.check(session, "Bash", {"command": "npm publish"}, ask)
        print("finished", flush=True)

    asyncio.run(main())
    """
)


def test_an_approval_left_waiting_by_a_killed_daemon_is_closed_in_sqlite_too(tmp_path):
    proj = tmp_path / "proj"
    proj.mkdir()
    policy = tmp_path / "ask.leash"
    policy.write_text(ASK)
    db = tmp_path / "home" / "messages.db"
    fields = {
        "storage_path": str(db),
        "audit_log_path": str(tmp_path / "home" / "audit.jsonl"),
        "approved_directories": [str(proj)],
        "policy_files": [str(policy)],
    }
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, Settings(**fields).model_dump_json(include=set(fields))],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        line = child.stdout.readline().split()
        assert line[:1] == ["waiting"]
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    session_id = int(line[1])
    with sqlite3.connect(db) as conn:
        [(outcome,)] = conn.execute("SELECT outcome FROM approvals").fetchall()
    assert outcome is None  # as the killed daemon left it

    async def restart():
        daemon = await build(Settings(**fields), approvers={"me"}, recover=True)
        try:
            return daemon.recovered, await daemon.store.approvals(session_id)
        finally:
            await daemon.close()

    recovered, rows = asyncio.run(restart())
    assert recovered == 1
    [row] = rows
    assert row.outcome == "restart"
    assert row.resolved_at is not None and row.resolved_at >= row.created_at
    # a second start finds nothing left to close, and changes nothing
    again, rows_again = asyncio.run(restart())
    assert again == 0 and rows_again == rows


_LIVE_DAEMON = _CHILD.replace(
    "asyncio.run(main())",
    "from leashd.daemon import process\nwith process.hold('test'):\n    asyncio.run(main())",
)
assert _LIVE_DAEMON != _CHILD


def test_a_run_beside_a_live_daemon_leaves_its_waiting_approval_alone(tmp_path, monkeypatch):
    # `leashd run` opens the same audit log and store as the daemon. Recovering there would
    # record the live daemon's waiting approval as ended by a restart, and the daemon could
    # still approve it after: the log would say both.
    monkeypatch.setenv("LEASHD_HOME", str(tmp_path / "home"))
    proj = tmp_path / "proj"
    proj.mkdir()
    policy = tmp_path / "ask.leash"
    policy.write_text(ASK)
    audit = tmp_path / "home" / "audit.jsonl"
    fields = {
        "storage_path": str(tmp_path / "home" / "messages.db"),
        "audit_log_path": str(audit),
        "approved_directories": [str(proj)],
        "policy_files": [str(policy)],
    }
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _LIVE_DAEMON,
            Settings(**fields).model_dump_json(include=set(fields)),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "LEASHD_HOME": str(tmp_path / "home")},
    )

    async def a_run():
        daemon = await build(Settings(**fields), approvers=None)  # as `leashd run` does
        try:
            return daemon.recovered
        finally:
            await daemon.close()

    try:
        assert child.stdout.readline().split()[:1] == ["waiting"]
        assert asyncio.run(a_run()) == 0
        assert "restart" not in audit.read_text()
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    assert asyncio.run(a_run()) == 1  # the daemon is gone: now it was left waiting
