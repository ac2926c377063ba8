"""What the 0.6.0 README promises around the daemon's life: the log events it names (engine
built, each agent turn, every tool decision at DEBUG), `python -m leashd`, and the 0.x
checkout's policy paths (`LEASHD_POLICY_FILES=policies/strict.yaml`)."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys

import pytest
from structlog.testing import capture_logs

from leashd.agent.runner import AgentConfig, ClaudeAgent, bundled_cli
from leashd.daemon.app import build
from leashd.daemon.config import Settings
from leashd.gate.audit import AuditLog
from leashd.gate.gate import Gate, Session
from leashd.policy.errors import PolicyError
from leashd.policy.loader import load_compiled
from tests.conftest import agent_world


def events(logs: list[dict], name: str) -> list[dict]:
    return [e for e in logs if e["event"] == name]


# --- log events -------------------------------------------------------------------------------


def test_building_the_engine_is_logged_at_info(tmp_path, monkeypatch):
    monkeypatch.setenv("LEASHD_HOME", str(tmp_path / "home"))
    settings = Settings(
        storage_backend="memory",
        audit_log_path=str(tmp_path / "audit.jsonl"),
        approved_directories=[str(tmp_path)],
        policy_files=["strict"],
    )

    async def main():
        daemon = await build(settings, approvers={"42"}, recover=False)
        await daemon.close()

    with capture_logs() as logs:
        asyncio.run(main())
    [building] = events(logs, "engine_building")
    [built] = events(logs, "engine_built")
    assert building["log_level"] == built["log_level"] == "info"
    assert building["policies"] == ["strict"] and built["policies"] == ["strict"]
    assert built["rules"] > 0 and built["approval_timeout"] == 120
    assert logs.index(building) < logs.index(built)


@pytest.fixture
def gate(tmp_path):
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "a.txt").write_text("hello\n")
    audit = AuditLog(tmp_path / "audit.jsonl")
    yield Gate.from_specs([], audit, approved_dirs=[str(tmp_path / "proj")], home=str(tmp_path))
    audit.close()


def decide_all(gate, tmp_path):
    session = Session("s1", "c1", str(tmp_path / "proj"))

    async def main():
        await gate.check(session, "Read", {"file_path": str(tmp_path / "proj" / "a.txt")})
        await gate.check(session, "Bash", {"command": "sudo rm -rf /"})

    asyncio.run(main())


def test_every_tool_decision_is_logged_at_debug(gate, tmp_path, caplog):
    caplog.set_level(logging.DEBUG, logger="leashd.gate")  # LEASHD_LOG_LEVEL=DEBUG
    with capture_logs() as logs:
        decide_all(gate, tmp_path)
    decided = events(logs, "tool_decision")
    assert [e["log_level"] for e in decided] == ["debug", "debug"]
    read, sudo = decided
    assert (read["tool"], read["decision"], read["layer"]) == ("Read", "allow", "policy")
    assert read["rule"] == "read-only-file-tools" and read["session"] == "s1"
    assert (sudo["tool"], sudo["decision"]) == ("Bash", "deny")
    assert sudo["rule"] is not None and isinstance(sudo["seq"], int)


def test_tool_decisions_are_not_logged_when_debug_is_off(gate, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="leashd.gate")
    with capture_logs() as logs:
        decide_all(gate, tmp_path)
    assert events(logs, "tool_decision") == []


@pytest.mark.skipif(bundled_cli() is None, reason="no bundled Claude Code CLI")
def test_each_agent_turn_is_logged_at_info_with_its_outcome():
    with agent_world() as (fake, root, home, proj):
        audit = AuditLog(root / "audit.jsonl")
        gate = Gate.from_specs([], audit, approved_dirs=[str(proj)], home=str(home))
        agent = ClaudeAgent(gate, AgentConfig(timeout=60, retries=0))

        async def turn():
            async def nothing(event):
                pass

            session = Session("s1", "c1", str(proj))
            return await agent.run(session, "hi", resume=None, on_event=nothing, ask=None)

        with capture_logs() as logs:
            fake.say("hello")
            good = asyncio.run(turn())
            fake.fail(529)
            bad = asyncio.run(turn())
        audit.close()
    assert good.ok and bad.error is not None
    started = events(logs, "agent_execute_started")
    completed = events(logs, "agent_execute_completed")
    assert [e["log_level"] for e in started + completed] == ["info"] * 4
    assert [e["session"] for e in started + completed] == ["s1"] * 4
    first, second = completed
    assert first["error"] is None and first["conversation_cost_usd"] == good.cost_usd > 0
    assert first["duration_ms"] > 0 and first["turns"] == 1
    assert second["error"] == bad.error and "529" in second["error"]


# --- python -m leashd -------------------------------------------------------------------------


def test_python_dash_m_leashd_is_the_leashd_command():
    p = subprocess.run(
        [sys.executable, "-m", "leashd", "--help"], capture_output=True, text=True, timeout=60
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("Usage: leashd ")
    assert "policy" in p.stdout and "start" in p.stdout


# --- policy paths of the 0.x checkout ---------------------------------------------------------


def rule_names(specs: list[str]) -> list[str]:
    return [r.name for r in load_compiled(specs).rules]


@pytest.mark.parametrize(
    "spec", ["policies/strict.yaml", "./policies/strict.leash", "leashd/policies/strict.yml"]
)
def test_a_0x_checkout_path_to_a_builtin_loads_the_builtin_with_a_note(
    tmp_path, monkeypatch, caplog, spec
):
    monkeypatch.chdir(tmp_path)  # no policies/ here
    with caplog.at_level(logging.WARNING, logger="leashd.policy"):
        compiled = load_compiled([spec])
    assert [r.name for r in compiled.rules] == rule_names(["strict"])
    assert compiled.policy.settings.approval_timeout_seconds == 120
    [note] = [r.getMessage() for r in caplog.records if r.name == "leashd.policy"]
    assert spec in note and "built-in policy 'strict'" in note


def test_the_note_reaches_stderr_of_the_cli(tmp_path):
    p = subprocess.run(
        [sys.executable, "-m", "leashd", "policy", "explain", "--policy",
         "policies/strict.yaml", "--", "curl example.com"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert "using the built-in policy 'strict'" in p.stderr
    assert "Uses the network; strict asks first" in p.stdout  # strict's own reason


def test_a_checkout_path_that_exists_is_always_the_file(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "strict.yaml").write_text(
        "rules:\n  - {name: mine, tools: [Read], action: allow}\n"
    )
    with caplog.at_level(logging.WARNING, logger="leashd.policy"):
        assert rule_names(["policies/strict.yaml"]) == ["mine"]
    assert not [r for r in caplog.records if r.name == "leashd.policy"]


@pytest.mark.parametrize("spec", ["policies/mine.yaml", "other/strict.yaml", "policies/strict.txt"])
def test_only_builtin_names_in_the_checkout_layout_are_resolved(tmp_path, monkeypatch, spec):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PolicyError, match="no such policy file"):
        load_compiled([spec])
