"""The engine and the agent in this process, with the real Claude Code CLI against the fake
Messages API: modes, approvals through a connector, costs per turn, commands."""

from __future__ import annotations

import asyncio
import glob
import json
import os
import signal

import pytest

from leashd.agent.events import ModeChanged, TextDelta, ToolDenied, ToolStarted
from leashd.agent.runner import AgentConfig, ClaudeAgent, bundled_cli
from leashd.approvers.plans import PlanReviewer
from leashd.daemon.engine import Engine
from leashd.daemon.storage import MemoryStore
from leashd.gate.approvals import ApprovalCoordinator
from leashd.gate.audit import AuditLog, records
from leashd.gate.gate import Gate
from tests.conftest import agent_world
from tests.fakes.anthropic_api import text, tool

pytestmark = pytest.mark.skipif(bundled_cli() is None, reason="no bundled Claude Code CLI")


class Recorder:
    """A connector that remembers what it was told and answers approvals as scripted."""

    name = "terminal"

    def __init__(self, answers: list[str] | None = None) -> None:
        self.engine: Engine | None = None
        self.answers = list(answers or [])
        self.sent: list[str] = []
        self.events: list[object] = []
        self.results: list[object] = []
        self.asked: list[object] = []

    async def send(self, chat, text, choices=()):
        self.sent.append(text)

    async def event(self, chat, event):
        self.events.append(event)

    async def result(self, chat, result):
        self.results.append(result)

    async def ask(self, req):
        self.asked.append(req)
        choice = self.answers.pop(0) if self.answers else "reject"
        assert self.engine is not None
        asyncio.get_running_loop().call_soon(
            lambda: self.engine.press(req.id, "me", req.chat, choice)
        )

    async def expired(self, req):
        self.sent.append(f"expired {req.id}")

    async def busy(self, chat, text):
        return "queue"


@pytest.fixture
def setup():
    with agent_world() as (fake, root, home, proj):
        audit = AuditLog(root / "audit.jsonl")
        approvals = ApprovalCoordinator({"me"}, 30, audit)
        gate = Gate.from_specs([], audit, approvals=approvals, approved_dirs=[str(proj)],
                               home=str(home))  # fmt: skip
        agent = ClaudeAgent(gate, AgentConfig(timeout=60))

        def engine(mode: str = "default") -> Engine:
            return Engine(gate, agent, MemoryStore(), approvals=approvals,
                          default_dir=str(proj), default_mode=mode)  # fmt: skip

        yield fake, proj, engine, audit


def turn(engine: Engine, conn: Recorder, text: str, chat: str = "c1") -> None:
    async def go():
        conn.engine = engine
        await engine.handle(conn, chat, "me", text)
        await engine.wait_idle(chat)

    asyncio.run(go())


def test_auto_mode_edits_inside_without_asking_but_denies_outside(setup):
    fake, proj, engine, _ = setup
    fake.call("Write", {"file_path": str(proj / "a.py"), "content": "x = 1\n"})
    fake.call("Write", {"file_path": str(proj.parent / "b.py"), "content": "x = 1\n"})
    fake.call("Bash", {"command": "npm install left-pad", "description": "i"})
    fake.say("done")
    conn = Recorder(answers=["reject"])
    turn(engine("auto"), conn, "edit things")
    assert (proj / "a.py").read_text() == "x = 1\n"
    assert not (proj.parent / "b.py").exists()
    # only the install was asked about (and rejected)
    assert [r.tool for r in conn.asked] == ["Bash"]
    assert conn.results[-1].text == "done"


def test_plan_mode_changes_nothing_until_the_plan_is_approved(setup):
    fake, proj, engine, _audit = setup
    fake.call("Write", {"file_path": str(proj / "early.txt"), "content": "too soon"})
    fake.call("ExitPlanMode", {"plan": "1. write plan.txt"})
    fake.call("Write", {"file_path": str(proj / "plan.txt"), "content": "planned"})
    fake.say("done")
    conn = Recorder(answers=["approve", "approve"])
    e = engine("plan")
    turn(e, conn, "plan then do")
    assert not (proj / "early.txt").exists()
    assert (proj / "plan.txt").read_text() == "planned"
    assert [r.tool for r in conn.asked] == ["ExitPlanMode", "Write"]
    assert any(isinstance(ev, ModeChanged) and ev.mode == "default" for ev in conn.events)
    denied = [ev for ev in conn.events if isinstance(ev, ToolDenied)]
    assert denied and "plan mode" in denied[0].reason
    # the session stays out of plan mode after the turn
    status = asyncio.run(e.status("c1"))
    assert "Mode: default" in status


def test_costs_are_per_turn_though_the_agent_counts_its_whole_conversation(setup):
    fake, _proj, engine, _ = setup
    e = engine()
    conn = Recorder()
    for i in range(3):
        fake.say(f"answer {i}")
        turn(e, conn, f"question {i}")
    costs = [r.cost_usd for r in conn.results]
    assert costs[0] > 0 and costs[1] == pytest.approx(costs[0]) == pytest.approx(costs[2])
    status = asyncio.run(e.status("c1"))
    assert f"${sum(costs):.4f}" in status
    assert fake.user_texts() == ["question 0", "question 1", "question 2"]


def test_parallel_tool_calls_each_pass_the_gate(setup):
    from tests.fakes.anthropic_api import tool

    fake, proj, engine, _audit = setup
    fake.reply(
        tool("Read", {"file_path": str(proj / ".env")}),
        tool("Write", {"file_path": str(proj / "one.txt"), "content": "1"}),
        tool("Write", {"file_path": str(proj / "two.txt"), "content": "2"}),
    )
    fake.say("done")
    (proj / ".env").write_text("TOKEN=s3cr3t-value\n")
    conn = Recorder(answers=["approve", "reject"])
    turn(engine(), conn, "three at once")
    written = sorted(p.name for p in proj.glob("*.txt"))
    assert len(conn.asked) == 2 and len(written) == 1
    assert "s3cr3t-value" not in fake.seen()
    started = [ev.tool for ev in conn.events if isinstance(ev, ToolStarted)]
    assert started == ["Read", "Write", "Write"]


def test_clear_and_mode_commands_are_handled_by_the_engine(setup):
    fake, _proj, engine, _ = setup
    e = engine()
    conn = Recorder()
    fake.say("first")
    turn(e, conn, "hello")
    turn(e, conn, "/plan")
    assert "Mode: plan" in conn.sent[-1]
    turn(e, conn, "/clear")
    fake.say("fresh")
    turn(e, conn, "again")
    assert fake.user_texts() == ["again"]  # a new conversation
    assert "Mode: plan" in asyncio.run(e.status("c1"))  # the mode is kept
    turn(e, conn, "/dir")
    assert "(current)" in conn.sent[-1]
    turn(e, conn, "/dir /nonexistent")
    assert "not an approved directory" in conn.sent[-1]


# --- sessions never silently start over -------------------------------------------------------


def time_out_now(agent: ClaudeAgent) -> None:
    """Make every running turn reach its deadline now: the turn times out at a moment the test
    chose (the CLI has announced its conversation), not after a sleep."""
    now = asyncio.get_running_loop().time()
    for running in agent._turns.values():
        assert running.deadline is not None
        running.deadline.reschedule(now)


def cli_pids() -> list[int]:
    """The Claude Code CLI processes this test process started: each a child of its tether
    (leashd.claude.Tether), itself a child of this process."""
    parents: dict[int, int] = {}
    clis = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv0 = f.read().split(b"\0", 1)[0]
        except OSError:
            continue  # gone meanwhile
        if argv0.endswith(b"claude"):
            clis.append(int(entry))
    return [pid for pid in clis if parents.get(parents.get(pid, 0)) == os.getpid()]


class FailsOnStream(Recorder):
    """Awaits `action` once, when the answer starts streaming: by then the CLI has announced
    the conversation and sent the prompt."""

    def __init__(self, action) -> None:
        super().__init__()
        self.action = action

    async def event(self, chat, event):
        await super().event(chat, event)
        if self.action is not None and isinstance(event, TextDelta):
            action, self.action = self.action, None
            await action()


async def until(check, what: str, limit: float = 30.0) -> None:
    """Wait for a state (polling), failing with `what` if it never comes."""
    loop = asyncio.get_running_loop()
    end = loop.time() + limit
    while not check():
        assert loop.time() < end, f"never happened: {what}"
        await asyncio.sleep(0.02)


def transcript_holds(text: str) -> bool:
    files = glob.glob(f"{os.environ['HOME']}/.claude/projects/*/*.jsonl")
    return any(text in open(f, encoding="utf-8").read() for f in files)


def stored(e: Engine, chat: str = "c1"):
    return asyncio.run(e.store.current_session(chat))


def test_a_first_turn_that_times_out_keeps_its_conversation(setup):
    fake, _proj, engine, _ = setup
    e = engine()
    fake.hang()
    while_running = []

    async def time_out():
        # stored before the turn ends: a daemon that died now would continue it too
        while_running.append((await e.store.current_session("c1")).agent_session_id)
        time_out_now(e.agent)

    conn = FailsOnStream(time_out)
    turn(e, conn, "question 1")
    assert "timed out" in (conn.results[-1].error or "")
    announced = conn.results[-1].agent_session_id
    assert announced and stored(e).agent_session_id == announced
    assert while_running == [announced]
    fake.say("answer 2")
    turn(e, conn, "question 2")
    assert conn.results[-1].text == "answer 2"
    assert fake.user_texts()[0] == "question 1"  # the same conversation, continued
    assert fake.user_texts()[-1] == "question 2"


def test_a_first_turn_whose_agent_dies_keeps_its_conversation(setup):
    fake, _proj, engine, _ = setup
    e = engine()
    fake.hang()

    async def kill_the_cli() -> None:
        # the CLI writes its transcript a moment after the request: once the prompt is there,
        # the conversation exists and dying must not lose it
        await until(lambda: transcript_holds("question 1"), "the prompt in the transcript")
        [pid] = cli_pids()
        os.kill(pid, signal.SIGKILL)

    conn = FailsOnStream(kill_the_cli)
    turn(e, conn, "question 1")
    assert conn.results[-1].error
    announced = conn.results[-1].agent_session_id
    assert announced and stored(e).agent_session_id == announced
    fake.say("answer 2")
    turn(e, conn, "question 2")
    assert conn.results[-1].text == "answer 2"
    assert fake.user_texts()[0] == "question 1"
    assert fake.user_texts()[-1] == "question 2"


def test_a_lost_conversation_starts_a_new_one_and_says_so(setup):
    fake, _proj, engine, _ = setup
    e = engine()
    conn = Recorder()
    fake.say("answer 1")
    turn(e, conn, "question 1")
    first = stored(e).agent_session_id
    home = os.environ["HOME"]
    [transcript] = glob.glob(f"{home}/.claude/projects/*/{first}.jsonl")
    os.remove(transcript)

    fake.say("answer 2")
    turn(e, conn, "question 2")
    assert any("could not be found; starting a new one" in s for s in conn.sent), conn.sent
    assert conn.results[-1].error is None and conn.results[-1].text == "answer 2"
    assert fake.user_texts() == ["question 2"]
    second = stored(e).agent_session_id
    assert second and second != first
    # and the new conversation is the one that goes on
    fake.say("answer 3")
    turn(e, conn, "question 3")
    assert conn.results[-1].text == "answer 3"
    assert fake.user_texts() == ["question 2", "question 3"]
    assert stored(e).agent_session_id == second
    assert sum("could not be found" in s for s in conn.sent) == 1


def test_a_store_that_fails_while_the_turn_runs_does_not_lose_the_answer(setup):
    fake, _proj, engine, _ = setup

    class FailsOnce(MemoryStore):
        failed = False

        async def update_session(self, row):
            if not self.failed:
                self.failed = True
                raise OSError("disk busy")
            return await super().update_session(row)

    e = engine()
    e.store = FailsOnce()
    fake.say("answer 1")
    conn = Recorder()
    turn(e, conn, "question 1")
    assert e.store.failed
    assert conn.results[-1].text == "answer 1"
    # the end of the turn stored the conversation after all
    assert stored(e).agent_session_id == conn.results[-1].agent_session_id


def test_a_mode_changed_during_a_turn_outlives_the_turn(setup):
    # The turn stores its conversation as it starts and again at its end: neither may put
    # back the mode (or directory) a command changed meanwhile.
    fake, _proj, engine, _ = setup
    e = engine()
    fake.say("a long answer")

    async def plan_now() -> None:
        await e.handle(conn, "c1", "me", "/plan")

    conn = FailsOnStream(plan_now)
    turn(e, conn, "question 1")
    assert conn.results[-1].error is None
    assert stored(e).mode == "plan"
    assert stored(e).agent_session_id == conn.results[-1].agent_session_id


def _reviewing(body: dict) -> bool:
    return "plan reviewer of leashd" in json.dumps(body.get("system", ""))


def test_the_ai_plan_reviewer_sends_a_plan_back_once_then_approves_it(setup):
    """Plan mode with LEASHD_AUTO_PLAN_REVIEWER: the model's review stands in for the tap.
    The plan sent back reaches the agent as the reason; the revised plan is approved, the
    session leaves plan mode, and nobody was asked."""
    fake, proj, engine, audit = setup
    agent_said = lambda body: not _reviewing(body)  # noqa: E731
    fake.reply(tool("ExitPlanMode", {"plan": "1. rewrite the whole module"}), when=agent_said)
    fake.reply(text('{"decision": "revise", "feedback": "only touch add()"}'), when=_reviewing)
    fake.reply(tool("ExitPlanMode", {"plan": "1. fix add()"}), when=agent_said)
    fake.reply(text('{"decision": "approve", "feedback": "minimal"}'), when=_reviewing)
    fake.reply(tool("Write", {"file_path": str(proj / "calc.py"), "content": "ok"}),
               when=agent_said)  # fmt: skip
    fake.reply(text("done"), when=agent_said)
    e = engine("plan")
    e.gate.reviewer = PlanReviewer(timeout=120)
    conn = Recorder(answers=["approve"])
    turn(e, conn, "fix add")
    assert (proj / "calc.py").read_text() == "ok"
    assert [r.tool for r in conn.asked] == ["Write"]  # the plan was never put to the human
    sent_back = [b for b in fake.requests if agent_said(b)][1]
    assert "only touch add()" in json.dumps(sent_back["messages"])
    reviewed = [r for r in records(audit.path) if r.get("approver_role") == "plan-reviewer"]
    assert [(r["decision"], r["approver_outcome"]) for r in reviewed] == [
        ("deny", "revise"),
        ("allow", "approved"),
    ]
    assert "Mode: default" in asyncio.run(e.status("c1"))
