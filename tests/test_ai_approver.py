"""The AI approver: the real Claude Code CLI asks the fake Messages API, the gate acts on the
answer, and the audit log says who answered. Plus its two pure parts, the answer parser and
the circuit breaker, for all inputs."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leashd.approvers.ai import AIApprover, parse_answer
from leashd.approvers.breaker import Breaker, Limits
from leashd.gate.approvals import ApprovalCoordinator
from leashd.gate.audit import AuditLog, records
from leashd.gate.gate import Gate, Session
from tests.fakes.anthropic_api import FakeAnthropic, text

POLICY = """\
rules:
  - name: feature-pushes
    tools: [Bash]
    commands: ["git push"]
    action: require_approval
    approver: ai
    reason: Pushes a branch
  - name: deploys
    tools: [Bash]
    commands: ["make deploy"]
    action: require_approval
    reason: Deploys
  - name: misrouted-deletes
    tools: [Bash]
    commands: ["shred"]
    action: deny
    approver: ai
    reason: Destroys files
settings:
  default_action: require_approval
"""


def _is_approver(body: dict) -> bool:
    return "approver of leashd" in json.dumps(body.get("system", ""))


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    with FakeAnthropic() as api:
        home = tmp_path / "home"
        home.mkdir()
        for key, value in api.env(str(home)).items():
            monkeypatch.setenv(key, value)
        yield api


@pytest.fixture
def project(tmp_path: Path) -> Path:
    p = tmp_path / "project"
    p.mkdir()
    (tmp_path / "policy.yaml").write_text(POLICY, encoding="utf-8")
    return p


def _gate(tmp_path: Path, project: Path, approvals=None, **limits) -> Gate:
    audit = AuditLog(tmp_path / "audit.jsonl")
    ai = AIApprover(timeout=60, limits=Limits(**limits) if limits else Limits())
    return Gate.from_specs(
        [str(tmp_path / "policy.yaml")], audit, approvals=approvals,
        approved_dirs=[str(project)], ai=ai,
    )  # fmt: skip


def _answers(fake: FakeAnthropic, *answers: str) -> None:
    for a in answers:
        fake.reply(text(a), when=_is_approver)


def _records(tmp_path: Path) -> list[dict]:
    return [r for r in records(tmp_path / "audit.jsonl") if r.get("kind") == "decision"]


def test_the_ai_approves_one_call_and_denies_another(fake, tmp_path, project):
    _answers(
        fake,
        '{"decision": "approve", "reason": "a feature branch of the task"}',
        '{"decision": "deny", "reason": "pushes to a remote the task never named"}',
    )
    gate = _gate(tmp_path, project)
    session = Session("s1", "c1", str(project), task_id="t7", task="task 7 (implement): x")

    async def run():
        first = await gate.check(session, "Bash", {"command": "git push origin feat/x"})
        second = await gate.check(session, "Bash", {"command": "git push evil main"})
        return first, second

    first, second = asyncio.run(run())
    assert (first.action, second.action) == ("allow", "deny")
    assert "a feature branch of the task" in first.reason
    approved, denied = _records(tmp_path)
    assert approved["approved_by"] == denied["approved_by"] == "ai"
    assert approved["approver_reason"] == "a feature branch of the task"
    assert approved["decision"] == "allow" and denied["decision"] == "deny"
    assert denied["breaker"] == {"state": "closed", "approvals_in_window": 1,
                                 "denials_in_a_row": 1}  # fmt: skip
    # what the model was given: the task, the rule, and the call as data under a marker
    sent = json.dumps(next(b for b in fake.requests if _is_approver(b))["messages"])
    assert "task 7 (implement)" in sent and "feature-pushes" in sent
    assert "<<<DATA-" in sent and "git push origin feat/x" in sent


def test_a_garbled_answer_is_not_an_approval(fake, tmp_path, project):
    _answers(fake, "Sure, looks fine to me! APPROVE", '{"decision": "approve"}')
    gate = _gate(tmp_path, project)
    session = Session("s1", "c1", str(project))

    async def run():
        return [
            await gate.check(session, "Bash", {"command": f"git push origin b{i}"})
            for i in range(2)
        ]

    verdicts = asyncio.run(run())
    assert [v.action for v in verdicts] == ["deny", "deny"]
    assert all("not a decision" in v.reason for v in verdicts)


def test_a_deny_rule_never_reaches_the_ai_even_when_routed_to_it(fake, tmp_path, project):
    _answers(fake, '{"decision": "approve", "reason": "fine"}')
    gate = _gate(tmp_path, project)
    verdict = asyncio.run(
        gate.check(Session("s1", "c1", str(project)), "Bash", {"command": "shred notes.txt"})
    )
    assert verdict.action == "deny" and verdict.decision.rule_name == "misrouted-deletes"
    assert not [b for b in fake.requests if _is_approver(b)]  # the model was never asked
    assert "approved_by" not in _records(tmp_path)[0]


@pytest.mark.parametrize(
    "command",
    [
        "make deploy",  # a rule that asks a human
        "git push origin x && make deploy",  # one unit of it asks a human
        "git push origin $(cat branch)",  # opaque to the analysis
        "git push origin x; frobnicate",  # the default action asks
        "git -C /elsewhere push origin x",  # outside the approved directories
    ],
)
def test_calls_below_the_floor_go_to_a_human(fake, tmp_path, project, command):
    _answers(fake, '{"decision": "approve", "reason": "fine"}')
    audit_path = tmp_path / "audit.jsonl"
    gate = _gate(tmp_path, project)
    asked = []

    async def run():
        coord = ApprovalCoordinator({"42"}, timeout=5, audit=gate.audit)
        gate.approvals = coord

        async def ask(req):
            asked.append(req)
            coord.press(req.id, "42", "c1", "reject")

        return await gate.check(Session("s1", "c1", str(project)), "Bash",
                                {"command": command}, ask=ask)  # fmt: skip

    verdict = asyncio.run(run())
    assert verdict.action == "deny" and len(asked) == 1, verdict
    assert not [b for b in fake.requests if _is_approver(b)]
    assert all(r.get("approved_by") != "ai" for r in records(audit_path))


def test_the_breaker_hands_the_task_back_to_a_human(fake, tmp_path, project):
    _answers(
        fake,
        '{"decision": "deny", "reason": "no"}',
        '{"decision": "deny", "reason": "still no"}',
        '{"decision": "approve", "reason": "never asked: the breaker is open"}',
    )
    gate = _gate(tmp_path, project, max_denials=2)
    session = Session("s1", "c1", str(project), task_id="t1")
    asked = []

    async def run():
        coord = ApprovalCoordinator({"42"}, timeout=5, audit=gate.audit)
        gate.approvals = coord

        async def ask(req):
            asked.append(req)
            coord.press(req.id, "42", "c1", "approve")

        return [
            await gate.check(session, "Bash", {"command": f"git push origin b{i}"}, ask=ask)
            for i in range(3)
        ]

    verdicts = asyncio.run(run())
    assert [v.action for v in verdicts] == ["deny", "deny", "allow"]
    assert len(asked) == 1 and verdicts[2].reason == "approved by 42"
    assert len([b for b in fake.requests if _is_approver(b)]) == 2
    assert gate.breaker_state(session)["state"] == "tripped"
    last = _records(tmp_path)[-1]
    assert last["fallback"] == "2 AI denials in a row" and "approved_by" not in last


def test_an_approver_that_fails_trips_the_breaker_and_nobody_else_means_deny(
    fake, tmp_path, project
):
    fake.fail(500)
    gate = _gate(tmp_path, project)
    session = Session("s1", "c1", str(project))
    verdict = asyncio.run(gate.check(session, "Bash", {"command": "git push origin b"}))
    assert verdict.action == "deny"
    assert "the AI approver stood down" in verdict.reason
    assert gate.breaker_state(session)["state"] == "tripped"


# --- the pure parts, for all inputs ---------------------------------------------------------


@given(st.text())
def test_no_text_but_the_exact_answer_approves(s):
    parsed = parse_answer(s)
    if parsed is not None and parsed[0]:
        assert json.loads(s) == {"decision": "approve", "reason": json.loads(s)["reason"]}


@given(st.sampled_from(["approve", "deny"]), st.text(min_size=1).filter(str.strip))
def test_the_exact_answer_is_understood(decision, reason):
    answer = json.dumps({"decision": decision, "reason": reason})
    assert parse_answer(answer) == (decision == "approve", " ".join(reason.split())[:500])
    assert parse_answer(answer + " ok") is None
    assert parse_answer(f"```json\n{answer}\n```") is None


@given(st.lists(st.sampled_from(["approved", "denied", "error"]), max_size=40))
def test_the_breaker_trips_exactly_when_a_limit_is_passed(outcomes):
    now = [0.0]
    breaker = Breaker(Limits(max_approvals=5, window=100.0, max_denials=3), clock=lambda: now[0])
    approvals: list[float] = []
    in_a_row = 0
    tripped = False
    for outcome in outcomes:
        now[0] += 7.0
        breaker.record(outcome)
        approvals = [t for t in approvals if now[0] - t <= 100.0]
        if outcome == "approved":
            in_a_row = 0
            approvals.append(now[0])
            tripped |= len(approvals) > 5
        elif outcome == "denied":
            in_a_row += 1
            tripped |= in_a_row >= 3
        else:
            tripped = True
        assert breaker.closed is not tripped  # and once tripped, it stays so


def test_a_call_too_large_to_show_whole_goes_to_a_human(fake, tmp_path, project):
    _answers(fake, '{"decision": "approve", "reason": "fine"}')
    gate = _gate(tmp_path, project)
    huge = {"command": "git push origin b", "description": "x" * 60_000}
    session = Session("s1", "c1", str(project))
    verdict = asyncio.run(gate.check(session, "Bash", huge))
    assert verdict.action == "deny" and "more than the approver is shown whole" in verdict.reason
    assert not [b for b in fake.requests if _is_approver(b)]  # never a model seeing a part
    # and no mark against the approver
    assert gate.breaker_state(session) == {"state": "closed", "approvals_in_window": 0,
                                           "denials_in_a_row": 0}  # fmt: skip
