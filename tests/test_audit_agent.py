"""The audit log says what happened, with the real Claude Code CLI in this process: a call the
CLI did not run, because the gate's answer came too late for its hook, is never left recorded
as `allow` alone (issue 18, item 2).

The gate here decides slowly on purpose (`SlowGate` sleeps before the real decision): the
stand-in for the inputs that took the analysis tens of seconds before its bounds existed. The
CLI's hook timeout is shortened to a few seconds so that the tests take seconds too.
"""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid

import pytest

from leashd.agent import permissions, runner
from leashd.agent.permissions import GateBridge
from leashd.agent.runner import AgentConfig, ClaudeAgent, bundled_cli
from leashd.daemon.engine import Engine
from leashd.daemon.storage import MemoryStore
from leashd.gate.audit import AuditLog, records, verify
from leashd.gate.gate import Gate, Session
from tests.conftest import worlds_dir
from tests.fakes.anthropic_api import FakeAnthropic

pytestmark = pytest.mark.skipif(bundled_cli() is None, reason="no bundled Claude Code CLI")

CLI_HOOK_TIMEOUT = 3.0
CANARY = "canary-" + uuid.uuid4().hex[:8]
SLOW = 5.0  # seconds the gate takes over the slow call: more than the CLI waits


class SlowGate(Gate):
    def decide(self, session, tool, tool_input):  # type: ignore[no-untyped-def]
        if tool == "Bash" and "slow" in str(tool_input.get("command", "")):
            time.sleep(SLOW)
        return super().decide(session, tool, tool_input)


class Quiet:
    name = "terminal"

    async def send(self, chat, text, choices=()):
        pass

    async def event(self, chat, event):
        pass

    async def result(self, chat, result):
        self.result_seen = result

    async def ask(self, req):
        pass

    async def expired(self, req):
        pass

    async def busy(self, chat, text):
        return "queue"


@pytest.fixture
def world(monkeypatch):
    root = worlds_dir() / uuid.uuid4().hex[:12]
    home = root / "home"
    proj = home / "proj"
    proj.mkdir(parents=True)
    monkeypatch.setattr(runner, "HOOK_TIMEOUT", CLI_HOOK_TIMEOUT)
    monkeypatch.setattr(permissions, "HOOK_TIMEOUT", CLI_HOOK_TIMEOUT)
    with FakeAnthropic() as fake:
        for k, v in fake.env(str(home)).items():
            monkeypatch.setenv(k, v)
        audit = AuditLog(root / "audit.jsonl")
        gate = SlowGate.from_specs(
            [], audit, approved_dirs=[str(proj)], home=str(home)
        )  # fmt: skip
        yield fake, proj, gate, audit
        audit.close()
    shutil.rmtree(root, ignore_errors=True)


def run_turn(gate: Gate, proj, prompt: str, timeout: float = 60) -> None:
    async def go() -> None:
        agent = ClaudeAgent(gate, AgentConfig(timeout=timeout))
        engine = Engine(gate, agent, MemoryStore(), approvals=None, default_dir=str(proj))
        await engine.handle(Quiet(), "c1", "me", prompt)
        await engine.wait_idle("c1")
        # a daemon's loop outlives the turn: a check still running finishes as it would there
        async with asyncio.timeout(SLOW * 4):
            while len(asyncio.all_tasks()) > 1:
                await asyncio.sleep(0.05)

    asyncio.run(go())


def outcome(audit: AuditLog, tool: str = "Bash") -> list[tuple[str, int | None]]:
    """Each decision on `tool`: (decision, the seq it voids)."""
    return [
        (r["decision"], r.get("voids"))
        for r in records(audit.path)
        if r.get("kind") == "decision" and r.get("tool") == tool
    ]


def never_an_allow_alone(audit: AuditLog) -> None:
    recs = [r for r in records(audit.path) if r.get("kind") == "decision"]
    voided = {r["voids"] for r in recs if r.get("voids") is not None}
    alone = [r["seq"] for r in recs if r["decision"] == "allow" and r["seq"] not in voided]
    assert alone == [], f"recorded as allowed, yet the CLI never ran them: {alone}"


def test_a_call_the_gate_answers_too_late_for_the_hook_is_not_recorded_as_allowed(world):
    fake, proj, gate, audit = world
    (proj / "slow-notes.txt").write_text(CANARY)
    fake.call("Bash", {"command": "cat slow-notes.txt", "description": "slow"})
    fake.say("done")
    run_turn(gate, proj, "read the notes")
    assert CANARY not in fake.seen()  # the CLI did not run it
    never_an_allow_alone(audit)
    assert outcome(audit)[-1][0] == "deny", outcome(audit)
    assert verify(audit.path).ok


def test_a_call_the_cli_gave_up_on_is_recorded_denied(world, monkeypatch):
    # the hook waits longer than the CLI does: the CLI gives up first, reports the call not
    # executed and cancels the hook; the check is cancelled with it and recorded denied
    monkeypatch.setattr(permissions, "ANSWER_WITHIN", 30.0, raising=False)
    fake, proj, gate, audit = world
    (proj / "slow-notes.txt").write_text(CANARY)
    fake.call("Bash", {"command": "cat slow-notes.txt", "description": "slow"})
    fake.say("done")
    run_turn(gate, proj, "read the notes")
    assert CANARY not in fake.seen()
    results = fake.tool_results()
    assert any("not executed" in text for text in results.values()), results
    never_an_allow_alone(audit)
    assert outcome(audit)[-1][0] == "deny", outcome(audit)
    assert verify(audit.path).ok


# What the CLI (2.1.x) puts in the tool result of a call it did not run.
NOT_EXECUTED = (
    "PreToolUse hook did not respond before its timeout (host client may be unreachable). "
    "The tool call was not executed; other configured hooks may not have completed."
)


@pytest.mark.parametrize("result_first", [False, True])
def test_an_allowed_call_the_cli_reports_not_executed_gets_a_record_saying_so(
    tmp_path, result_first
):
    audit = AuditLog(tmp_path / "audit.jsonl")
    gate = Gate.from_specs([], audit, approved_dirs=[str(tmp_path)], home=str(tmp_path))
    session = Session("s1", "c1", str(tmp_path))
    bridge = GateBridge(gate, lambda: session, None)
    call = {"tool_name": "Bash", "tool_input": {"command": "ls"}}

    async def go() -> dict:
        if result_first:  # the CLI went on before the gate answered
            bridge.tool_result("toolu_1", True, [{"type": "text", "text": NOT_EXECUTED}])
        answer = await bridge.pre_tool_use(call, "toolu_1", None)
        if not result_first:
            bridge.tool_result("toolu_1", True, NOT_EXECUTED)
        bridge.tool_result("toolu_1", True, NOT_EXECUTED)  # once is enough
        return answer

    answer = asyncio.run(go())
    audit.close()
    recs = [r for r in records(audit.path) if r.get("kind") == "decision"]
    assert [(r["decision"], r.get("voids")) for r in recs] == [("allow", None), ("deny", 1)]
    assert recs[1]["layer"] == "agent" and "did not execute it" in recs[1]["reason"]
    want = "deny" if result_first else "allow"  # what the hook answered when it answered
    assert answer["hookSpecificOutput"]["permissionDecision"] == want
    assert verify(audit.path).ok


@pytest.mark.parametrize(
    "output",
    [
        "ls: cannot access 'nothing': No such file",
        # A call that ran can print the CLI's words: its own output never voids its allow.
        "Exit code 1\n" + NOT_EXECUTED,
        "CANARY\nThe tool call was not executed",
        "x " + NOT_EXECUTED,
    ],
)
def test_a_failed_call_that_ran_is_not_voided(tmp_path, output):
    audit = AuditLog(tmp_path / "audit.jsonl")
    gate = Gate.from_specs([], audit, approved_dirs=[str(tmp_path)], home=str(tmp_path))
    bridge = GateBridge(gate, lambda: Session("s1", "c1", str(tmp_path)), None)

    async def go() -> None:
        await bridge.pre_tool_use(
            {"tool_name": "Bash", "tool_input": {"command": "ls nothing"}}, "toolu_2", None
        )
        bridge.tool_result("toolu_2", True, output)

    asyncio.run(go())
    audit.close()
    assert [r["decision"] for r in records(audit.path) if r.get("kind") == "decision"] == ["allow"]


def test_a_fast_call_is_still_allowed_and_runs(world):
    fake, proj, gate, audit = world
    (proj / "notes.txt").write_text(CANARY)
    fake.call("Bash", {"command": "cat notes.txt", "description": "fast"})
    fake.say("done")
    run_turn(gate, proj, "read the notes")
    assert CANARY in fake.seen()  # it ran
    assert outcome(audit) == [("allow", None)]


class _Telling:
    """A verdict listener that takes its time, and finishes telling even when cancelled: the
    check stays running after its allow is recorded, while the hook waits for it."""

    def __init__(self, reraise: bool) -> None:
        self.reraise = reraise
        self.told = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self, tool, tool_input, verdict) -> None:  # type: ignore[no-untyped-def]
        self.told.set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            await self.release.wait()
            if self.reraise:
                raise


@pytest.mark.parametrize("reraise", [True, False])
def test_a_hook_cancelled_twice_still_voids_the_allow_it_recorded(tmp_path, reraise):
    # the turn ends while the check is still telling its allow: the hook cancels the check
    # and waits for it, shielded; a second cancellation must not skip the void
    audit = AuditLog(tmp_path / "audit.jsonl")
    gate = Gate.from_specs([], audit, approved_dirs=[str(tmp_path)], home=str(tmp_path))
    listener = _Telling(reraise)
    bridge = GateBridge(gate, lambda: Session("s1", "c1", str(tmp_path)), None, listener)
    call = {"tool_name": "Bash", "tool_input": {"command": "ls"}}

    async def go() -> None:
        hook = asyncio.create_task(bridge.pre_tool_use(call, "toolu_3", None))
        await listener.told.wait()  # the allow is recorded
        hook.cancel()
        await asyncio.sleep(0.05)
        assert not hook.done()  # in its shielded wait for the check
        hook.cancel()
        with pytest.raises(asyncio.CancelledError):
            await hook
        listener.release.set()  # the check ends after the hook has gone
        async with asyncio.timeout(5):
            while len(asyncio.all_tasks()) > 1:
                await asyncio.sleep(0.01)

    asyncio.run(go())
    audit.close()
    recs = [r for r in records(audit.path) if r.get("kind") == "decision"]
    assert [(r["decision"], r.get("voids")) for r in recs] == [("allow", None), ("deny", 1)]
    assert recs[1]["layer"] == "hook" and "not taken" in recs[1]["reason"]
    assert verify(audit.path).ok
