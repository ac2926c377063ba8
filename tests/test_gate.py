"""The runtime gate: sandbox over every path, policy, approval, audit; and every way it can
fail (evaluator error, bad reload, dead approval channel, timeout, cancelled task, unwritable
audit log, garbage input) ends in deny."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leashd.gate.approvals import ApprovalCoordinator
from leashd.gate.audit import AuditLog, records, verify
from leashd.gate.events import EventBus
from leashd.gate.gate import Gate, Session, pending_in_log
from leashd.gate.sandbox import SandboxConfig
from leashd.policy import compile_policy
from leashd.policy.loader import load_file

ROOT = Path(__file__).resolve().parent.parent
OPEN = "default allow\n"  # a policy that allows everything: what is left to decide is the sandbox
NO_TEMP = {"temp_dirs": ()}  # the tests' directories live in /tmp: here it is not special


@pytest.fixture
def place(tmp_path):
    """A project, a directory outside it with a secret, a symlink from one to the other."""
    proj = tmp_path / "proj"
    outside = tmp_path / "outside"
    (proj / "src").mkdir(parents=True)
    outside.mkdir()
    (proj / "src" / "app.py").write_text("print(1)\n")
    (outside / "secret.txt").write_text("s3cret\n")
    (proj / "link").symlink_to(outside)
    return proj, outside


@pytest.fixture
def audit(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl", fsync="never")
    yield log
    log.close()


def policy_from(tmp_path, text: str, name: str = "p.leash"):
    path = tmp_path / name
    path.write_text(text)
    return compile_policy(load_file(path))


def open_gate(tmp_path, place, audit, **kw) -> Gate:
    proj, _ = place
    return Gate(policy_from(tmp_path, OPEN), audit, approved_dirs=[str(proj)], **NO_TEMP, **kw)


def session(cwd, sid="s1", chat="c1") -> Session:
    return Session(sid, chat, str(cwd))


def decision_records(audit: AuditLog) -> list[dict]:
    return [r for r in records(audit.path) if r["kind"] == "decision"]


# --- sandbox over every path ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tool", "tool_input", "action"),
    [
        ("Read", {"file_path": "src/app.py"}, "allow"),
        ("Read", {"file_path": "{out}/secret.txt"}, "deny"),
        ("Read", {"file_path": "link/secret.txt"}, "deny"),  # a symlink out is outside
        ("Read", {"file_path": "../outside/secret.txt"}, "deny"),
        ("Write", {"file_path": "{out}/x", "content": ""}, "deny"),
        ("Edit", {"file_path": "link/secret.txt", "old_string": "s", "new_string": "t"}, "deny"),
        ("MultiEdit", {"file_path": "{out}/secret.txt", "edits": []}, "deny"),
        ("MultiEdit", {"file_path": "src/app.py", "edits": []}, "allow"),
        ("NotebookEdit", {"notebook_path": "{out}/n.ipynb", "new_source": ""}, "deny"),
        ("NotebookEdit", {"notebook_path": "src/n.ipynb", "new_source": ""}, "allow"),
        ("LS", {"path": "{out}"}, "deny"),
        ("LS", {"path": "src"}, "allow"),
        ("Glob", {"pattern": "**/*.py"}, "allow"),
        ("Glob", {"pattern": "{out}/**/*.txt"}, "deny"),  # the pattern's base
        ("Glob", {"pattern": "../outside/*"}, "deny"),
        ("Glob", {"pattern": "*.py", "path": "{out}"}, "deny"),
        ("Glob", {"pattern": "*/../../outside/*"}, "deny"),  # climbs out from a wildcard
        ("Grep", {"pattern": "s", "path": "{out}"}, "deny"),
        ("Grep", {"pattern": "s", "path": "link"}, "deny"),
        ("Grep", {"pattern": "s", "path": "src"}, "allow"),
        # shell: writes outside are denied, reads outside need approval
        ("Bash", {"command": "echo x > {out}/y"}, "deny"),
        ("Bash", {"command": "cp src/app.py link/"}, "deny"),
        ("Bash", {"command": "cat {out}/secret.txt"}, "require_approval"),
        ("Bash", {"command": "cat src/app.py"}, "allow"),
        ("Bash", {"command": "cat /usr/share/dict/words"}, "allow"),  # system: no user data
        # a cd changes where the later units run
        ("Bash", {"command": "cd src && cat app.py"}, "allow"),
        ("Bash", {"command": "cd .. && touch outside/new"}, "deny"),
        ("Bash", {"command": "cd /; cd {out} && rm secret.txt"}, "deny"),
        ("Bash", {"command": "(cd src); touch ../outside/x"}, "deny"),  # the subshell's cd ends
        # cd by other names: builtin, command, inside a function
        ("Bash", {"command": "builtin cd /usr/local/bin && echo x > git"}, "deny"),
        ("Bash", {"command": "command cd {out}; echo x > secret.txt"}, "deny"),
        ("Bash", {"command": "f(){ cd {out}; }; f; echo x > secret.txt"}, "deny"),
        # links: what a link reaches is written through it
        ("Bash", {"command": "ln ../outside/secret.txt hard"}, "deny"),
        ("Bash", {"command": "ln -s /usr/local/bin b"}, "deny"),
        ("Bash", {"command": "ln -s ../shared/c.js src/c.js"}, "allow"),  # from the link's dir
        ("Bash", {"command": "cd src && ln -s .. ../up"}, "deny"),
        # through what the same command makes: only known once it runs
        ("Bash", {"command": "ln -s . up && echo x > up/../outside/x"}, "deny"),
        ("Bash", {"command": "git clone https://example.com/r.git r && echo x > r/a"}, "deny"),
        ("Bash", {"command": "cp -r src b && cat b/app.py"}, "require_approval"),
        ("Bash", {"command": "mkdir -p out && cp src/app.py out/ && cat out/app.py"}, "allow"),
        ("Bash", {"command": "git reset --hard && cat src/app.py"}, "allow"),  # exists now
    ],
)
def test_the_sandbox_covers_every_path_of_every_unit(
    tmp_path, place, audit, tool, tool_input, action
):
    proj, outside = place
    gate = open_gate(tmp_path, place, audit)
    filled = {
        k: v.replace("{out}", str(outside)) if isinstance(v, str) else v
        for k, v in tool_input.items()
    }
    decision = gate.decide(session(proj), tool, filled)
    assert decision.action == action, decision.reason
    if action != "allow":
        assert decision.layer == "sandbox"


ESCAPES = [
    "cd src && ln -s .. ../up && cd .. && echo pwned > up/outside/secret.txt",
    "ln -s . up && echo pwned > up/../outside/secret.txt",
    "ln -s .. up; echo pwned > up/outside/secret.txt",
    "builtin cd ../outside && echo pwned > secret.txt",
    "command cd ../outside; echo pwned > secret.txt",
    "f(){ cd ../outside; }; f; echo pwned > secret.txt",
    "for i in 1 2; do echo pwned > up2/../outside/secret.txt; ln -s . up2; done",
    "cp -r link copy && echo pwned > copy/secret.txt",
    "mv link moved && echo pwned > moved/secret.txt",
    "echo pwned > link/secret.txt",
    "ln link/secret.txt hard && echo pwned > hard",
]


@pytest.mark.parametrize("command", ESCAPES)
def test_escapes_are_not_allowed_and_run_for_real_change_nothing(tmp_path, place, audit, command):
    proj, outside = place
    gate = open_gate(tmp_path, place, audit)
    verdict = asyncio.run(gate.check(session(proj), "Bash", {"command": command}))
    if verdict.allowed:  # then it must be harmless: run it and look
        subprocess.run(["bash", "-c", command], cwd=proj, capture_output=True, timeout=10)
    assert (outside / "secret.txt").read_text() == "s3cret\n", verdict.reason
    assert not verdict.allowed


def test_what_exists_now_decides_and_a_change_on_disk_is_seen(tmp_path, place, audit):
    proj, _ = place
    gate = open_gate(tmp_path, place, audit)
    cmd = {"command": "cp -r src b && cat b/app.py"}
    assert gate.decide(session(proj), "Bash", cmd).action == "require_approval"
    (proj / "b").mkdir()
    (proj / "b" / "app.py").write_text("")
    assert gate.decide(session(proj), "Bash", cmd).action == "allow"  # b/app.py is there
    (proj / "b" / "app.py").unlink()
    (proj / "b").rmdir()
    assert gate.decide(session(proj), "Bash", cmd).action == "require_approval"


def test_paths_resolve_against_the_sessions_directory_not_the_daemons(
    tmp_path, place, audit, monkeypatch
):
    proj, outside = place
    gate = open_gate(tmp_path, place, audit)
    monkeypatch.chdir(outside)  # the daemon's own directory says nothing
    write = {"file_path": "new.txt", "content": "x"}
    assert gate.decide(session(proj), "Write", write).action == "allow"
    assert gate.decide(session(outside), "Write", write).action == "deny"
    assert gate.decide(session(proj / "src"), "Read", {"file_path": "../link/x"}).action == "deny"


def test_reading_outside_is_configurable(tmp_path, place, audit):
    proj, outside = place
    strict = open_gate(tmp_path, place, audit, sandbox=SandboxConfig(shell_read_outside="deny"))
    cmd = {"command": f"cat {outside}/secret.txt"}
    assert strict.decide(session(proj), "Bash", cmd).action == "deny"
    loose = open_gate(tmp_path, place, audit, sandbox=SandboxConfig(file_tool_read_outside="allow"))
    assert loose.decide(session(proj), "Read", {"file_path": f"{outside}/x"}).action == "allow"


def test_approved_directories_change_at_run_time_and_the_change_is_audited(tmp_path, place, audit):
    proj, outside = place
    gate = open_gate(tmp_path, place, audit)
    read = {"file_path": f"{outside}/secret.txt"}
    assert gate.decide(session(proj), "Read", read).action == "deny"
    assert gate.add_dir(str(outside)) == str(outside)
    assert gate.decide(session(proj), "Read", read).action == "allow"
    gate.remove_dir(str(outside))
    assert gate.decide(session(proj), "Read", read).action == "deny"
    assert gate.approved_dirs == (str(proj),)
    with pytest.raises(ValueError, match="not a directory"):
        gate.add_dir(str(outside / "secret.txt"))
    with pytest.raises(ValueError, match="not an approved directory"):
        gate.remove_dir(str(outside))
    changes = [r["event"] for r in records(audit.path) if r["kind"] == "sandbox"]
    assert changes == ["dir_added", "dir_removed"]


def test_with_no_approved_directory_nothing_is_inside(tmp_path, place, audit):
    proj, _ = place
    gate = Gate(policy_from(tmp_path, OPEN), audit, **NO_TEMP)
    write = {"file_path": "a.txt", "content": "x"}
    assert gate.decide(session(proj), "Write", write).action == "deny"


# --- decisions and their records ----------------------------------------------------------------


def test_every_decision_is_recorded_with_its_units_rule_place_and_layer(tmp_path, place, audit):
    proj, outside = place
    text = 'deny no-push cmd "git push" reason "Pushes go through review"\ndefault allow\n'
    gate = Gate(policy_from(tmp_path, text), audit, approved_dirs=[str(proj)], **NO_TEMP)
    s = session(proj)

    async def run():
        return [
            await gate.check(s, "Bash", {"command": "git status && git push origin main"}),
            await gate.check(s, "Bash", {"command": "ls src"}),
            await gate.check(s, "Write", {"file_path": f"{outside}/x", "content": "y" * 9000}),
        ]

    push, ls, write = asyncio.run(run())
    assert (push.action, push.layer, push.decision.rule_name) == ("deny", "policy", "no-push")
    assert ls.allowed and write.action == "deny" and write.layer == "sandbox"
    recs = decision_records(audit)
    assert [r["seq"] for r in recs] == [push.seq, ls.seq, write.seq] == [1, 2, 3]
    first = recs[0]
    assert first["rule"] == "no-push" and first["at"].endswith("p.leash:1:1")
    assert first["reason"] == "Pushes go through review" and first["session"] == "s1"
    assert [(u["unit"], u["decision"]) for u in first["units"]] == [
        ("git status", "allow"),
        ("git push origin main", "deny"),
    ]
    assert first["input"] == {"command": "git status && git push origin main"}
    # a long input is kept up to the cap, with the hash of the whole
    assert "input" not in recs[2] and len(recs[2]["input_excerpt"]) == 4096
    assert recs[2]["input_chars"] > 9000 and len(recs[2]["input_sha256"]) == 64
    assert recs[2]["units"][0]["layer"] == "sandbox"
    assert verify(audit.path).ok


# --- approvals through the gate -----------------------------------------------------------------

ASK = 'ask publish cmd "npm publish" reason "Publishing is for humans"\ndefault allow\n'


def approval_gate(tmp_path, place, audit, timeout=5.0, **kw):
    proj, _ = place
    coord = ApprovalCoordinator({"42"}, timeout=timeout, audit=audit)
    return Gate(
        policy_from(tmp_path, ASK), audit, coord, approved_dirs=[str(proj)], **NO_TEMP, **kw
    )


@pytest.mark.parametrize(
    ("who", "choice", "action", "how"),
    [("42", "approve", "allow", "approved"), ("42", "reject", "deny", "rejected")],
)
def test_an_approvers_answer_decides(tmp_path, place, audit, who, choice, action, how):
    proj, _ = place
    gate = approval_gate(tmp_path, place, audit)
    shown = []

    async def ask(req):
        shown.append((req.summary, req.details["rule"], req.details["reason"]))
        assert not gate.approvals.press(req.id, "666", req.chat, "approve").accepted
        gate.approvals.press(req.id, who, req.chat, choice)

    verdict = asyncio.run(gate.check(session(proj), "Bash", {"command": "npm publish"}, ask))
    assert verdict.action == action and verdict.layer == "approval"
    assert verdict.resolution.how == how and verdict.resolution.who == "42"
    assert shown == [("npm publish", "publish", "Publishing is for humans")]
    events = [(r["kind"], r.get("event") or r["decision"]) for r in records(audit.path)]
    assert events == [
        ("approval", "requested"),
        ("approval", "refused"),
        ("approval", how),
        ("decision", action),
    ]
    last = decision_records(audit)[-1]
    assert last["request"] == verdict.request.id and last["who"] == "42"
    assert last["policy_decision"] == "require_approval" and last["approval"] == how


def test_approval_timeout_denies(tmp_path, place, audit):
    proj, _ = place
    gate = approval_gate(tmp_path, place, audit, timeout=0.05)

    async def ask(req):
        pass  # shown, never answered

    verdict = asyncio.run(gate.check(session(proj), "Bash", {"command": "npm publish"}, ask))
    assert verdict.action == "deny" and verdict.resolution.how == "expired"
    assert "no answer within 0.05 s" in verdict.reason


@pytest.mark.parametrize("failure", ["raises", "hangs"])
def test_a_dead_approval_channel_denies(tmp_path, place, audit, failure):
    proj, _ = place
    gate = approval_gate(tmp_path, place, audit, timeout=0.1)

    async def ask(req):
        if failure == "raises":
            raise ConnectionError("telegram is unreachable")
        await asyncio.sleep(10)

    verdict = asyncio.run(gate.check(session(proj), "Bash", {"command": "npm publish"}, ask))
    assert verdict.action == "deny" and verdict.layer == "approval"
    if failure == "raises":
        assert verdict.resolution.how == "channel-failed"
        assert "telegram is unreachable" in verdict.reason
    else:
        assert verdict.resolution.how == "expired"
    assert gate.approvals.pending() == []


def test_without_a_channel_what_needs_approval_is_denied(tmp_path, place, audit):
    proj, _ = place
    gate = approval_gate(tmp_path, place, audit)
    verdict = asyncio.run(gate.check(session(proj), "Bash", {"command": "npm publish"}))
    assert verdict.action == "deny" and "nobody can be asked" in verdict.reason


async def _never_answered(req):
    pass  # shown, never answered


async def waiting_publish(gate: Gate, proj):
    """`npm publish` checked in a task, its request shown and waiting: (task, request)."""
    task = asyncio.create_task(
        gate.check(session(proj), "Bash", {"command": "npm publish"}, _never_answered)
    )
    while not gate.approvals.pending():
        await asyncio.sleep(0)
    return task, gate.approvals.pending()[0]


@pytest.mark.parametrize("log_works", [True, False])
def test_a_cancelled_call_is_recorded_denied_and_stays_cancelled(tmp_path, place, audit, log_works):
    proj, _ = place
    gate = approval_gate(tmp_path, place, audit)

    async def run():
        task, _ = await waiting_publish(gate, proj)
        if not log_works:
            audit.close()  # the cancellation goes on even when its record cannot be written
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run())
    if not log_works:
        return
    last = decision_records(audit)[-1]
    assert last["decision"] == "deny" and last["layer"] == "cancelled"
    assert [r["event"] for r in records(audit.path) if r["kind"] == "approval"] == [
        "requested",
        "cancelled",
    ]
    assert pending_in_log(audit.path) == []


def test_approve_similar_never_covers_a_path_outside(tmp_path, place, audit):
    proj, outside = place
    gate = open_gate(tmp_path, place, audit)
    gate.approvals = ApprovalCoordinator({"42"}, timeout=5, audit=audit)
    offered = []

    async def ask(req):
        offered.append(req.similar)
        gate.approvals.press(req.id, "42", req.chat, "approve")

    cmd = {"command": f"cat {outside}/secret.txt"}
    assert asyncio.run(gate.check(session(proj), "Bash", cmd, ask)).allowed
    assert offered == [None]


# --- fail closed --------------------------------------------------------------------------------


def test_an_evaluator_exception_denies(tmp_path, place, audit, monkeypatch):
    proj, _ = place
    gate = open_gate(tmp_path, place, audit)

    def boom(*a, **k):
        raise RuntimeError("matcher exploded")

    monkeypatch.setattr(gate.compiled, "first_match", boom)
    verdict = asyncio.run(gate.check(session(proj), "Read", {"file_path": "src/app.py"}))
    assert verdict.action == "deny" and "matcher exploded" in verdict.reason
    assert decision_records(audit)[-1]["error"] == "RuntimeError: matcher exploded"


def test_an_exception_anywhere_in_the_gate_denies(tmp_path, place, audit, monkeypatch):
    gate = open_gate(tmp_path, place, audit)
    monkeypatch.setattr(gate, "decide", lambda *a: 1 / 0)
    # a name no console can print: logging the error must not raise either
    verdict = asyncio.run(gate.check(session("/x\ud800"), "Read\ud800", {"file_path": "a"}))
    assert verdict.action == "deny" and verdict.layer == "error"
    assert "ZeroDivisionError" in verdict.reason
    assert decision_records(audit)[-1]["decision"] == "deny"


def test_a_record_that_cannot_be_written_denies_the_call(tmp_path, place, audit):
    proj, _ = place
    bus = EventBus()
    failures = []
    bus.subscribe("audit.failed", lambda e: failures.append(e.data["error"]))
    gate = open_gate(tmp_path, place, audit, bus=bus)
    audit.close()
    verdict = asyncio.run(gate.check(session(proj), "Read", {"file_path": "src/app.py"}))
    assert verdict.action == "deny" and verdict.layer == "audit"
    assert failures and "closed" in failures[0]


def test_an_invalid_policy_on_reload_keeps_the_old_one(tmp_path, place, audit):
    proj, _ = place
    path = tmp_path / "team.leash"
    path.write_text('deny no-push cmd "git push"\ndefault allow\n')
    bus = EventBus()
    told = []
    bus.subscribe("*", lambda e: told.append(e.name))
    gate = Gate.from_specs([str(path)], audit, approved_dirs=[str(proj)], bus=bus)
    push = {"command": "git push"}
    assert gate.decide(session(proj), "Bash", push).action == "deny"
    path.write_text('allow all cmd "*"\ndeny no-push cmnd "git push"\n')
    result = gate.reload()
    assert not result.ok and "unknown keyword 'cmnd'" in result.message
    assert "team.leash:2:" in result.message
    assert gate.decide(session(proj), "Bash", push).action == "deny"  # still the old policy
    path.write_text('ask push cmd "git push"\ndefault allow\n')
    assert gate.reload().ok
    assert gate.decide(session(proj), "Bash", push).action == "require_approval"
    assert told == ["policy.reload_failed", "policy.reloaded"]
    kinds = [(r["event"]) for r in records(audit.path) if r["kind"] == "policy"]
    assert kinds == ["reload_failed", "reloaded"]


_GARBAGE_TOOLS = st.one_of(
    st.none(),
    st.integers(),
    st.text(max_size=12),
    st.sampled_from(
        [
            "Bash",
            "Read",
            "Write",
            "Edit",
            "MultiEdit",
            "NotebookEdit",
            "Glob",
            "Grep",
            "LS",
            "WebFetch",
            "mcp__fs__write_file",
        ]
    ),
)
_JSONISH = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
_REQUIRED = {
    "Bash": "command",
    "Read": "file_path",
    "Write": "file_path",
    "Edit": "file_path",
    "MultiEdit": "file_path",
    "NotebookEdit": "notebook_path",
    "LS": "path",
    "Glob": "pattern",
    "Grep": "pattern",
    "WebFetch": "url",
}


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(tool=_GARBAGE_TOOLS, tool_input=_JSONISH)
def test_the_gate_never_raises_and_never_allows_garbage(tmp_path, place, audit, tool, tool_input):
    proj, _ = place
    gate = open_gate(tmp_path, place, audit)
    verdict = asyncio.run(gate.check(session(proj), tool, tool_input))
    malformed = (
        not isinstance(tool, str)
        or not tool
        or not isinstance(tool_input, dict)
        or (tool in _REQUIRED and not isinstance(tool_input.get(_REQUIRED[tool]), str))
    )
    if malformed:
        assert verdict.action == "deny", (tool, tool_input, verdict.reason)


# --- events -------------------------------------------------------------------------------------


def test_events_tell_plugins_what_happened_and_cannot_change_it(tmp_path, place, audit):
    proj, outside = place
    bus = EventBus()
    seen = []
    bus.subscribe("*", lambda e: seen.append((e.name, e.data.get("tool"))))

    def broken(event):
        raise RuntimeError("a plugin with a bug")

    async def slow(event):
        await asyncio.sleep(0.01)
        seen.append(("slow", event.data["tool"]))

    bus.subscribe("tool.allowed", broken)
    bus.subscribe("tool.denied", slow)
    with pytest.raises(ValueError, match="unknown event"):
        bus.subscribe("tool.alowed", broken)
    gate = approval_gate(tmp_path, place, audit, bus=bus)

    async def ask(req):
        gate.approvals.press(req.id, "42", req.chat, "approve")

    async def run():
        s = session(proj)
        a = await gate.check(s, "Read", {"file_path": "src/app.py"})
        b = await gate.check(s, "Write", {"file_path": f"{outside}/x", "content": ""})
        c = await gate.check(s, "Bash", {"command": "npm publish"}, ask)
        await bus.drain()
        return a, b, c

    a, b, c = asyncio.run(run())
    assert a.allowed and b.action == "deny" and c.allowed
    assert seen == [
        ("tool.allowed", "Read"),
        ("sandbox.violation", "Write"),
        ("tool.denied", "Write"),
        ("approval.requested", "Bash"),
        ("approval.resolved", "Bash"),
        ("tool.allowed", "Bash"),
        ("slow", "Write"),
    ]


# --- after a crash ------------------------------------------------------------------------------

_CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from leashd.gate.approvals import ApprovalCoordinator
    from leashd.gate.audit import AuditLog
    from leashd.gate.gate import Gate, Session
    from leashd.policy import compile_policy
    from leashd.policy.loader import load_file

    log = AuditLog(sys.argv[1], fsync="always")
    gate = Gate(compile_policy(load_file(sys.argv[2])), log,
                ApprovalCoordinator({"42"}, timeout=600, audit=log), approved_dirs=[sys.argv[3]])

    async def ask(req):
        print("waiting", flush=True)

    asyncio.run(gate.check(Session("s1", "c1", sys.argv[3]), "Bash",
                           {"command": "npm publish"}, ask))
    print("finished", flush=True)
    """
)


def test_approvals_pending_when_the_daemon_is_killed_are_recorded_denied(tmp_path, place):
    proj, _ = place
    policy = tmp_path / "ask.leash"
    policy.write_text(ASK)
    log_path = tmp_path / "audit.jsonl"
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(log_path), str(policy), str(proj)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert child.stdout.readline().strip() == "waiting"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert [r["event"] for r in records(log_path)] == ["requested"]
    with AuditLog(log_path, fsync="never") as log:
        gate = Gate(policy_from(tmp_path, ASK), log, approved_dirs=[str(proj)])
        assert gate.recover() == 1
        assert gate.recover() == 0  # once
    recs = list(records(log_path))
    assert [(r["kind"], r.get("event") or r["decision"]) for r in recs] == [
        ("approval", "requested"),
        ("approval", "restart"),
        ("decision", "deny"),
    ]
    assert recs[2]["input"] == {"command": "npm publish"} and recs[2]["rule"] == "publish"
    assert recs[1]["request"] == recs[2]["request"] == recs[0]["request"]
    assert verify(log_path).ok


def test_audit_tail_shows_every_kind_of_record_the_gate_writes(tmp_path, place, audit):
    from click.testing import CliRunner

    from leashd.cli import main

    proj, _ = place
    gate = approval_gate(tmp_path, place, audit)

    async def ask(req):
        gate.approvals.press(req.id, "42", req.chat, "reject")

    async def run():
        s = session(proj)
        await gate.check(s, "Read", {"file_path": "src/app.py"})
        await gate.check(s, "Bash", {"command": "npm publish --dry-run"}, ask)

    asyncio.run(run())
    gate.add_dir(str(place[1]))
    out = CliRunner().invoke(main, ["audit", "tail", str(audit.path)]).output.splitlines()
    assert len(out) == 5
    assert out[0].endswith(f"[s1] allow (default): Read {proj}/src/app.py -- no rule matched")
    assert "approval requested by -: npm publish --dry-run" in out[1]
    assert "approval rejected by 42: npm publish --dry-run" in out[2]
    assert "deny by publish (approval): Bash npm publish --dry-run -- rejected by 42" in out[3]
    assert out[4].endswith(f"sandbox dir_added {place[1]}")


# --- found in review ----------------------------------------------------------------------------


def test_approve_similar_for_an_inside_copy_never_covers_a_copy_from_outside(
    tmp_path, place, audit
):
    proj, outside = place
    coord = ApprovalCoordinator({"42"}, timeout=5, audit=audit)
    gate = Gate.from_specs(
        ["default"], audit, approvals=coord, approved_dirs=[str(proj)], **NO_TEMP
    )
    asked = []

    async def similar(req):
        coord.press(req.id, "42", req.chat, "approve-similar")

    async def reject(req):
        asked.append(req.summary)
        coord.press(req.id, "42", req.chat, "reject")

    async def run():
        s = session(proj)
        first = await gate.check(s, "Bash", {"command": "cp src/app.py src/b.py"}, similar)
        later = [
            await gate.check(s, "Bash", {"command": c}, reject)
            for c in (f"cp {outside}/secret.txt src/", "cp -r link/ src/stolen")
        ]
        return first, later

    first, later = asyncio.run(run())
    assert first.allowed and first.resolution.how == "approved-similar"
    assert [v.action for v in later] == ["deny", "deny"] and len(asked) == 2


def test_a_gate_given_no_policy_files_does_not_reload_into_the_defaults(tmp_path, place, audit):
    proj, _ = place
    gate = Gate(policy_from(tmp_path, "default deny\n"), audit, approved_dirs=[str(proj)])
    result = gate.reload()
    assert not result.ok and "nothing to reload" in result.message
    assert gate.decide(session(proj), "Bash", {"command": "ls"}).action == "deny"


def test_a_call_cancelled_after_its_answer_is_recorded_once_with_its_request(
    tmp_path, place, audit
):
    proj, _ = place
    gate = approval_gate(tmp_path, place, audit)

    async def run():
        task, req = await waiting_publish(gate, proj)
        gate.approvals.press(req.id, "42", "c1", "approve")
        task.cancel()  # the turn is interrupted before the call goes on
        with pytest.raises(asyncio.CancelledError):
            await task
        return req

    req = asyncio.run(run())
    decisions = decision_records(audit)
    assert len(decisions) == 1 and decisions[0]["decision"] == "deny"
    assert decisions[0]["request"] == req.id and decisions[0]["layer"] == "cancelled"
    assert gate.recover() == 0


def test_unprintable_names_and_inputs_too_deep_to_record_are_denied_with_a_record(
    tmp_path, place, audit
):
    proj, _ = place
    gate = approval_gate(tmp_path, place, audit)
    deep: list = []
    for _ in range(5000):  # deeper than JSON can be written
        deep = [deep]

    async def ask(req):
        pass

    async def run():
        s = session(proj)
        return [
            await gate.check(s, "Custom\ud800", {"a": deep}, ask),
            await gate.check(s, "Bash", {"command": "ls", "x": deep}, ask),
        ]

    verdicts = asyncio.run(run())
    assert [v.action for v in verdicts] == ["deny", "deny"]
    assert all(v.layer == "input" and "too deeply" in v.reason for v in verdicts)
    assert len(decision_records(audit)) == 2 and verify(audit.path).ok


def test_handlers_that_raise_anything_leave_the_verdict_and_its_one_record(tmp_path, place, audit):
    proj, _ = place
    gate = open_gate(tmp_path, place, audit)

    class BadRepr:
        def __call__(self, event):
            raise RuntimeError("plugin bug")

        def __repr__(self):
            raise RuntimeError("and a bad repr")

    def cancelled(event):
        raise asyncio.CancelledError()

    gate.bus.subscribe("tool.allowed", cancelled)
    gate.bus.subscribe("audit.failed", BadRepr())
    gate.bus.subscribe("tool.allowed", BadRepr())
    verdict = asyncio.run(gate.check(session(proj), "Read", {"file_path": "src/app.py"}))
    assert verdict.allowed and [r["decision"] for r in decision_records(audit)] == ["allow"]
    audit.close()
    verdict = asyncio.run(gate.check(session(proj), "Read", {"file_path": "src/app.py"}))
    assert verdict.action == "deny" and verdict.layer == "audit"


def test_a_fresh_log_verifies(tmp_path):
    AuditLog(tmp_path / "new.jsonl").close()
    assert verify(tmp_path / "new.jsonl").ok


def test_huge_commands_are_not_kept_in_memory(tmp_path, place, audit):
    from leashd.shell import MEMO_LIMIT, _memo

    proj, _ = place
    gate = open_gate(tmp_path, place, audit)
    before = _memo.cache_info().currsize
    huge = "echo " + "x" * (MEMO_LIMIT + 10)
    assert gate.decide(session(proj), "Bash", {"command": huge}).action == "allow"
    assert _memo.cache_info().currsize == before
