"""Load: 50 sessions x 1,000 calls through one gate on the built-in policies, approvals
answered concurrently by several approvers (and pressed at by strangers). Nothing is lost or
written twice, the chain verifies, and no answer ever lands on another session's request."""

from __future__ import annotations

import asyncio
import random
import re
from collections import Counter, defaultdict

from leashd.gate.approvals import ApprovalCoordinator
from leashd.gate.audit import AuditLog, records, verify
from leashd.gate.gate import Gate, Session
from leashd.policy.loader import load_compiled

SESSIONS = 50
CALLS = 1000
APPROVERS = ("101", "102", "103")
MARK = re.compile(r"t\d+_\d+")


def call_for(s: int, i: int) -> tuple[str, dict]:
    """The i-th call of session s; every input carries its own mark, t<s>_<i>."""
    mark = f"t{s}_{i}"
    match i % 10:
        case 0 | 1 | 2:
            return "Bash", {"command": f"ls src/{mark} && git status"}
        case 3:
            return "Read", {"file_path": f"src/{mark}.py"}
        case 4:
            return "Grep", {"pattern": mark, "path": "src"}
        case 5:
            return "Bash", {"command": f"cat ~/.ssh/id_rsa_{mark}"}  # credentials: denied
        case 6:
            return "Write", {"file_path": f"/etc/{mark}.conf", "content": ""}  # outside: denied
        case 7:
            return "Bash", {"command": f"rm -rf / --no-preserve-root # {mark}"}
        case _:
            return "Bash", {"command": f"npm publish --tag {mark}"}  # asks


def approves(mark: str) -> bool:
    """What the approvers answer to a request marked `mark` (any fixed rule would do)."""
    s, i = mark[1:].split("_")
    return (int(s) + int(i) // 10) % 2 == 0


def test_fifty_sessions_a_thousand_calls_each(tmp_path):
    proj = tmp_path / "proj"
    (proj / "src").mkdir(parents=True)
    compiled = load_compiled(["default", "dev-tools"])
    log = AuditLog(tmp_path / "audit.jsonl", fsync="never")
    coord = ApprovalCoordinator(set(APPROVERS), timeout=60, audit=log)
    gate = Gate(compiled, log, coord, approved_dirs=[str(proj)])
    sessions = [Session(f"s{s}", f"chat{s}", str(proj)) for s in range(SESSIONS)]
    # what each call must come to: the policy's decision, or the approvers' answer
    expected: dict[tuple[int, int], str] = {}
    for s in range(SESSIONS):
        for i in range(CALLS):
            action = gate.decide(sessions[s], *call_for(s, i)).action
            if action == "require_approval":
                action = "allow" if approves(f"t{s}_{i}") else "deny"
            expected[s, i] = action
    kinds = Counter(expected.values())
    assert kinds["allow"] > 10_000 and kinds["deny"] > 10_000

    queue: asyncio.Queue = asyncio.Queue()
    presses: Counter[str] = Counter()

    async def ask(req):
        await queue.put(req)

    async def approver(n: int, rng: random.Random):
        while True:
            req = await queue.get()
            await asyncio.sleep(rng.random() * 0.001)
            mark = req.summary.rsplit(" ", 1)[-1]
            # a stranger, and an approver in the wrong chat, are refused
            if rng.random() < 0.2:
                presses["stranger"] += not coord.press(req.id, "999", req.chat, "approve").accepted
            if rng.random() < 0.1:
                wrong = coord.press(req.id, APPROVERS[n], "chat-x", "approve").accepted
                presses["wrong chat"] += not wrong
            choice = "approve" if approves(mark) else "reject"
            presses["accepted"] += coord.press(req.id, APPROVERS[n], req.chat, choice).accepted
            # sometimes a second approver answers the same request too late
            if rng.random() < 0.1:
                other = APPROVERS[(n + 1) % len(APPROVERS)]
                presses["late"] += not coord.press(req.id, other, req.chat, "reject").accepted

    async def run_session(s: int):
        out = []
        for i in range(CALLS):
            verdict = await gate.check(sessions[s], *call_for(s, i), ask=ask)
            out.append(verdict)
        return out

    async def main():
        rng = random.Random(5)
        workers = [
            asyncio.create_task(approver(n % 3, random.Random(rng.random()))) for n in range(6)
        ]
        results = await asyncio.gather(*(run_session(s) for s in range(SESSIONS)))
        for w in workers:
            w.cancel()
        return results

    results = asyncio.run(main())
    log.close()

    asked = sum(1 for (s, i) in expected if call_for(s, i)[1].get("command", "").startswith("npm"))
    assert presses["accepted"] == asked  # every request answered once, by one approver
    assert presses["stranger"] > 0 and presses["late"] > 0 and presses["wrong chat"] > 0
    for s, verdicts in enumerate(results):
        for i, verdict in enumerate(verdicts):
            assert verdict.action == expected[s, i], (s, i, verdict.reason)

    # the log: every call exactly once, the chain whole
    check = verify(log.path)
    assert check.ok, check.message
    recs = list(records(log.path))
    assert [r["seq"] for r in recs] == list(range(1, len(recs) + 1))
    decisions = [r for r in recs if r["kind"] == "decision"]
    assert len(decisions) == SESSIONS * CALLS
    seen = Counter()
    for r in decisions:
        (mark,) = set(MARK.findall(str(r["input"])))
        seen[r["session"], mark] += 1
    assert len(seen) == SESSIONS * CALLS and set(seen.values()) == {1}
    # every approval record of a request belongs to the session that asked it
    owner: dict[str, str] = {}
    ends: defaultdict[str, list[str]] = defaultdict(list)
    for r in recs:
        if r["kind"] == "approval":
            assert owner.setdefault(r["request"], r["session"]) == r["session"]
            if r["event"] in ("approved", "rejected"):
                ends[r["request"]].append(r["event"])
                assert r["who"] in APPROVERS
        elif "request" in r:
            assert owner[r["request"]] == r["session"]
            mark = r["input"]["command"].rsplit(" ", 1)[-1]
            assert r["decision"] == ("allow" if approves(mark) else "deny")
            assert r["session"] == f"s{mark[1:].split('_')[0]}"
    assert len(ends) == asked and all(len(v) == 1 for v in ends.values())
