"""The hook in a real Claude Code session: the CLI bundled with claude-agent-sdk in `-p` mode,
against the fake Messages API, with the hook installed by `leashd hook install` in a
temporary home. Effects are asserted, not answers: the denied command never ran, the allowed
one did and the model saw its output, and the audit log has both."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from leashd.agent.runner import bundled_cli
from leashd.gate.audit import records, verify
from leashd.hook import place
from tests.conftest import worlds_dir
from tests.fakes.anthropic_api import FakeAnthropic
from tests.test_hook import stop_server

pytestmark = pytest.mark.skipif(bundled_cli() is None, reason="no bundled Claude Code CLI")

SECRET = "sk-canary-7f3a9c"


@pytest.fixture
def world():
    root = worlds_dir() / f"e2e-hook-{uuid.uuid4().hex[:10]}"
    home, proj = root / "home", root / "home" / "proj"
    (proj / "victim").mkdir(parents=True)
    (proj / "victim" / "canary.txt").write_text("still here\n")
    (proj / ".env").write_text(f"API_KEY={SECRET}\n")
    (proj / "listed-marker.txt").write_text("notes\n")
    # the environment of a developer's shell, without this machine's own Claude Code or
    # leashd settings
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CLAUDE", "ANTHROPIC", "LEASHD_", "AI_AGENT"))}  # fmt: skip
    env["HOME"] = str(home)
    try:
        yield home, proj, env
    finally:
        stop_server({"HOME": str(home)})
        shutil.rmtree(root, ignore_errors=True)


def leashd_hook(env: dict[str, str], cwd: Path, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "leashd.hook", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def claude(fake: FakeAnthropic, env: dict[str, str], cwd: Path, prompt: str) -> None:
    cli = bundled_cli()
    assert cli is not None
    done = subprocess.run([cli, "-p", prompt], cwd=cwd, env={**env, **fake.env(env["HOME"])},
                          capture_output=True, text=True, timeout=240)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def decisions(home: Path) -> dict[str, dict]:
    """The hook's decision records, by tool_use_id."""
    log = home / ".leashd" / "audit.jsonl"
    assert verify(log).status == "intact"
    return {r["tool_use_id"]: r for r in records(log) if r.get("by") == "claude-code-hook"}


def test_a_project_install_denies_rm_and_secrets_allows_ls_and_records_all(world):
    home, proj, env = world
    out = leashd_hook(env, proj, "install", "--project")
    assert str(proj / ".claude" / "settings.json") in out
    with FakeAnthropic() as fake:
        rm = fake.call("Bash", {"command": "rm -rf victim", "description": "clean"})
        cat = fake.call("Bash", {"command": "cat .env", "description": "read the key"})
        ls = fake.call("Bash", {"command": "ls", "description": "list"})
        write = fake.call("Bash", {"command": "echo hi > out.txt", "description": "write"})
        fake.say("done")
        claude(fake, env, proj, "tidy up")
        results = fake.tool_results()
        seen = fake.seen()
    # effects: the denied commands never ran, the allowed one did and the model saw it
    assert (proj / "victim" / "canary.txt").read_text() == "still here\n"
    assert SECRET not in seen
    assert "listed-marker.txt" in results[ls]
    assert "Denied by leashd" in results[rm] and "recursive-forced-deletes" in results[rm]
    assert "credential-files" in results[cat]
    # a call the policy sends to approval is Claude Code's own prompt; -p has nobody to ask
    assert not (proj / "out.txt").exists()
    assert "leashd asks" in results[write] and "shell-redirect-writes" in results[write]
    # the first call was decided in its own process and started the server, which took the rest
    sock = Path(place.socket_path({"HOME": str(home)}))
    assert sock.exists()
    pid = int(Path(f"{sock}.pid").read_text())
    recs = decisions(home)
    assert {k: recs[k]["decision"] for k in (rm, cat, ls, write)} == {
        rm: "deny",
        cat: "deny",
        ls: "allow",
        write: "ask",
    }
    assert recs[rm]["rule"] == "recursive-forced-deletes"
    # one Claude Code session, named in every record
    assert len({r["session"] for r in recs.values()}) == 1
    assert all(r["cwd"] == str(proj) for r in recs.values())
    stop_server({"HOME": str(home)})  # SIGTERM: the server leaves as `leashd hook stop` has it
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not sock.exists()


def test_a_user_install_decides_file_tools_in_process(world):
    home, proj, env = world
    leashd_hook(env, proj, "install", "--user", "--no-server")
    settings = json.loads((home / ".claude" / "settings.json").read_text())
    assert "--no-server" in settings["hooks"]["PreToolUse"][0]["hooks"][0]["command"]
    with FakeAnthropic() as fake:
        env_read = fake.call("Read", {"file_path": str(proj / ".env")})
        notes = fake.call("Read", {"file_path": str(proj / "listed-marker.txt")})
        fake.say("done")
        claude(fake, env, proj, "read things")
        results = fake.tool_results()
        seen = fake.seen()
    assert SECRET not in seen and "credential-files" in results[env_read]
    assert "notes" in results[notes]
    recs = decisions(home)
    assert (recs[env_read]["decision"], recs[notes]["decision"]) == ("deny", "allow")
    assert not (home / ".leashd" / "hook").exists() or not list(
        (home / ".leashd" / "hook").glob("*.sock")
    )
    # and out again: the file is as it was before (there was none: an empty object is left)
    leashd_hook(env, proj, "uninstall", "--user")
    assert json.loads((home / ".claude" / "settings.json").read_text()) == {}
