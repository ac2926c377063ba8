"""Tasks end to end: the orchestrator drives the real Claude Code CLI (scripted by the fake
Messages API, phase by phase) under the real gate and OS sandbox, in a real git checkout
whose remote is a bare repository on disk, and opens the pull request in a fake GitHub.
What is asserted is what the user gets: the PR and its body, the commit on the remote, the
files the agent changed, the messages, the per-phase costs in SQLite."""

from __future__ import annotations

import asyncio
import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from leashd.agent.runner import AgentConfig, ClaudeAgent
from leashd.approvers.ai import AIApprover
from leashd.approvers.breaker import Limits
from leashd.approvers.plans import PlanReviewer
from leashd.gate.audit import AuditLog
from leashd.gate.gate import Gate
from leashd.tasks.orchestrator import Orchestrator, TaskSettings
from leashd.tasks.publish import GitHubConfig, publish
from leashd.tasks.store import Task, TaskStore
from tests.conftest import agent_world
from tests.fakes.anthropic_api import FakeAnthropic, text, tool
from tests.fakes.github_api import FakeGitHub

GITHUB_URL = "https://github.com/acme/calc.git"
BUGGY = "def add(a, b):\n    return a - b\n"
FIXED = "def add(a, b):\n    return a + b\n"
STILL_BUGGY = "def add(a, b):\n    return a * b\n"
CHECK = "import sys\nfrom calc import add\nsys.exit(0 if add(2, 3) == 5 else 1)\n"
COMMAND = "python3 check.py"


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                          check=True).stdout.strip()  # fmt: skip


def checkout(root: Path, proj: Path) -> Path:
    """`proj` as a clone of a bare repository, its remote named by a GitHub URL that git is
    told to reach on disk; calc.py has the bug the task is about. Returns the bare remote."""
    bare = root / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    subprocess.run(["git", "clone", "-q", str(bare), str(proj)], check=True)
    git(proj, "config", "user.name", "Dev")
    git(proj, "config", "user.email", "dev@example.com")
    (proj / "calc.py").write_text(BUGGY)
    (proj / "check.py").write_text(CHECK)
    (proj / ".leashd").mkdir()
    (proj / ".leashd" / "test.yaml").write_text(f"command: {COMMAND}\n")
    git(proj, "add", "-A")
    git(proj, "commit", "-qm", "calc")
    git(proj, "push", "-q", "origin", "main")
    git(proj, "remote", "set-url", "origin", GITHUB_URL)
    git(proj, "config", f"url.{bare}.insteadOf", GITHUB_URL)
    return bare


def _reviewing(body: dict) -> bool:
    return "plan reviewer of leashd" in json.dumps(body.get("system", ""))


def _agent(body: dict) -> bool:
    return not _reviewing(body)


@dataclass
class Told:
    """A reporter that keeps what the user would have been told (headless: nobody to ask)."""

    ask: None = None
    lines: list[str] = field(default_factory=list)
    escalations: list[tuple[str, list[tuple[str, str]]]] = field(default_factory=list)

    async def progress(self, task: Task, text: str) -> None:
        self.lines.append(text)

    async def escalate(self, task: Task, text: str, choices: list[tuple[str, str]]) -> None:
        self.escalations.append((text, choices))

    async def finished(self, task: Task, text: str) -> None:
        self.lines.append(text)


def script_phases(fake: FakeAnthropic, proj: Path, fixes: list[str]) -> None:
    """The agent's answers: spec, explore, validate, plan; then per fix an implement (an Edit
    of calc.py) and a test run (the Bash call of the test command)."""
    for said in ("add() must return the sum; check.py proves it.", "calc.py holds add().",
                 "add() must return the sum; check.py proves it (checked against calc.py).",
                 "1. Make add() return a + b."):  # fmt: skip
        fake.reply(text(said), when=_agent)
    current = BUGGY
    for fix in fixes:
        edit = {"file_path": str(proj / "calc.py"), "old_string": current, "new_string": fix}
        fake.reply(tool("Edit", edit), when=_agent)
        fake.reply(text("Changed calc.py."), when=_agent)
        fake.reply(tool("Bash", {"command": COMMAND, "description": "tests"}), when=_agent)
        fake.reply(text("Done."), when=_agent)
        current = fix


def orchestrator(root: Path, store: TaskStore, github: FakeGitHub, ai: AIApprover | None = None,
                 **settings) -> Orchestrator:  # fmt: skip
    audit = AuditLog(root / "audit.jsonl")
    agents: dict[tuple[str, str], ClaudeAgent] = {}

    def agent_for(policy: str, directory: str) -> ClaudeAgent:
        if (policy, directory) not in agents:
            gate = Gate.from_specs([policy], audit, approved_dirs=[directory], ai=ai)
            agents[policy, directory] = ClaudeAgent(gate, AgentConfig(timeout=120))
        return agents[policy, directory]

    config = GitHubConfig(api_url=github.url, token=github.token, gh=None)

    async def publish_task(task: Task, body: str) -> tuple[str | None, str | None, str]:
        r = await publish(task.directory, task.id, task.description, body, github=config)
        return r.branch, r.pr_url, r.summary()

    reviewer = PlanReviewer(timeout=120)
    return Orchestrator(store, agent_for, TaskSettings(backoff=0.01, **settings), publish_task,
                        reviewer)  # fmt: skip


def run_task(root: Path, github: FakeGitHub, description: str, told: Told,
             ai: AIApprover | None = None, **settings) -> tuple[Task, list, TaskStore]:  # fmt: skip
    async def go():
        store = TaskStore(root / "messages.db")
        await store.open()
        try:
            orch = orchestrator(root, store, github, ai, **settings)
            task = await orch.create("c1", str(root / "home" / "proj"), description)
            task = await orch.run(task, told)
            return task, await store.phases(task.id), store
        finally:
            await store.close()

    return asyncio.run(go())


@pytest.fixture
def github():
    with FakeGitHub() as fake:
        fake.add_repo("acme/calc")
        yield fake


def test_a_task_from_description_to_pull_request(github):
    with agent_world() as (fake, root, _home, proj):
        bare = checkout(root, proj)
        script_phases(fake, proj, [FIXED])
        fake.reply(text('{"decision": "approve", "feedback": "does what the task asks"}'),
                   when=_reviewing)  # fmt: skip
        told = Told()
        task, runs, _ = run_task(root, github, "Fix add() in calc.py", told)
        assert task.status == "done", (task.escalation, told.lines)
        assert (proj / "calc.py").read_text() == FIXED
        # the PR: one, from the task's branch, its body with the spec, plan, tests and costs
        (pr,) = github.pulls
        assert pr.head == task.branch == f"leashd/{task.id}-fix-add-in-calc-py"
        assert task.pr_url and task.pr_url.endswith("/pull/1")
        body = pr.body
        assert "add() must return the sum" in body and "Make add() return a + b" in body
        assert f"`{COMMAND}` passed" in body and "| implement | 1 | done |" in body
        # the commit is on the remote's branch, with the fix
        shown = git(bare, "show", f"{task.branch}:calc.py")
        assert shown == FIXED.strip()
        assert [r.phase for r in runs] == ["spec", "explore", "validate", "plan", "implement",
                                           "test", "pr"]  # fmt: skip
        assert all(r.status == "done" for r in runs)
        assert any("plan approved by the AI reviewer" in line for line in told.lines)
        assert told.lines[-1].startswith(f"Task {task.id} done")


def test_a_failing_test_goes_back_to_implement_and_is_fixed_on_retry(github):
    with agent_world() as (fake, root, _home, proj):
        checkout(root, proj)
        script_phases(fake, proj, [STILL_BUGGY, FIXED])
        fake.reply(text('{"decision": "approve", "feedback": "fine"}'), when=_reviewing)
        told = Told()
        task, runs, _ = run_task(root, github, "Fix add() in calc.py", told)
        assert task.status == "done" and task.retries == 1, (task.escalation, told.lines)
        assert [r.phase for r in runs].count("implement") == 2
        assert any("tests failed; retry 1 of 3" in line for line in told.lines)
        # the second implement was told what failed
        implements = [b for b in fake.requests if _agent(b)]
        assert any("The tests failed" in json.dumps(b["messages"]) for b in implements)


def test_retries_exhausted_pause_the_task_with_choices(github):
    with agent_world() as (fake, root, _home, proj):
        checkout(root, proj)
        script_phases(fake, proj, [STILL_BUGGY])
        fake.reply(text('{"decision": "approve", "feedback": "fine"}'), when=_reviewing)
        told = Told()
        task, _, _ = run_task(root, github, "Fix add() in calc.py", told, max_retries=0)
        assert task.status == "paused" and task.phase == "test"
        ((said, choices),) = told.escalations
        assert "the tests still fail after 0 retries" in said
        assert [c[1] for c in choices] == [
            f"/task retry {task.id}",
            f"/task more {task.id}",
            f"/task cancel {task.id}",
        ]
        assert github.pulls == []  # no pull request for work that fails its tests


def test_an_ambiguous_task_asks_the_user(github):
    with agent_world() as (fake, root, _home, proj):
        checkout(root, proj)
        fake.reply(text("AMBIGUOUS: which function should change, add() or sub()?"),
                   when=_agent)  # fmt: skip
        told = Told()
        task, runs, _ = run_task(root, github, "Fix the function", told)
        assert task.status == "paused" and task.phase == "spec"
        assert "which function should change" in told.escalations[0][0]
        assert [r.phase for r in runs] == ["spec"]


def test_a_plan_sent_back_once_is_revised_then_approved(github):
    with agent_world() as (fake, root, _home, proj):
        checkout(root, proj)
        for said in ("spec", "explored", "valid", "1. Rewrite the whole module."):
            fake.reply(text(said), when=_agent)
        fake.reply(text('{"decision": "revise", "feedback": "change add() only"}'),
                   when=_reviewing)  # fmt: skip
        fake.reply(text("1. Make add() return a + b."), when=_agent)
        fake.reply(text('{"decision": "approve", "feedback": "now it is minimal"}'),
                   when=_reviewing)  # fmt: skip
        edit = {"file_path": str(proj / "calc.py"), "old_string": BUGGY, "new_string": FIXED}
        fake.reply(tool("Edit", edit), when=_agent)
        fake.reply(text("Changed."), when=_agent)
        fake.reply(tool("Bash", {"command": COMMAND, "description": "tests"}), when=_agent)
        fake.reply(text("Done."), when=_agent)
        told = Told()
        task, runs, _ = run_task(root, github, "Fix add() in calc.py", told)
        assert task.status == "done", (task.escalation, told.lines)
        assert [r.phase for r in runs].count("plan") == 2
        assert task.plan == "1. Make add() return a + b."
        replanned = [b for b in fake.requests if _agent(b)][4]
        assert "change add() only" in json.dumps(replanned["messages"])


# --- the autonomous loop after /edit ----------------------------------------------------------


class Chat:
    """The connector's side of a chat: what leashd said, and every event."""

    name = "test"

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(self, chat, text, choices=()):
        self.sent.append(text)

    async def event(self, chat, event):
        return None

    async def result(self, chat, result):
        self.sent.append(result.text or result.error or "")

    async def ask(self, req):
        raise AssertionError(f"nobody should be asked: {req.summary}")

    async def expired(self, req):
        return None

    async def document(self, chat, name, data):
        return None

    async def busy(self, chat, text):
        return "queue"


def test_the_autonomous_loop_tests_fixes_and_opens_the_pull_request(github):
    from leashd.daemon.engine import Engine
    from leashd.daemon.storage import MemoryStore
    from leashd.tasks.loop import LoopSettings

    with agent_world() as (fake, root, _home, proj):
        bare = checkout(root, proj)
        edit = lambda old, new: {"file_path": str(proj / "calc.py"), "old_string": old,  # noqa: E731
                                 "new_string": new}  # fmt: skip
        fake.reply(tool("Edit", edit(BUGGY, STILL_BUGGY)))  # the /edit turn gets it wrong
        fake.say("Changed add().")
        fake.reply(tool("Bash", {"command": COMMAND, "description": "tests"}))
        fake.say("FAILED")
        fake.reply(tool("Edit", edit(STILL_BUGGY, FIXED)))  # the fix turn
        fake.say("Fixed.")
        fake.reply(tool("Bash", {"command": COMMAND, "description": "tests"}))
        fake.say("PASSED")
        audit = AuditLog(root / "audit.jsonl")
        gate = Gate.from_specs(["autonomous"], audit, approved_dirs=[str(proj)])
        config = GitHubConfig(api_url=github.url, token=github.token, gh=None)

        async def open_pr(directory, name, description, body):
            r = await publish(directory, name, description, body, github=config)
            return r.summary()

        engine = Engine(gate, ClaudeAgent(gate, AgentConfig(timeout=120)), MemoryStore(),
                        approvals=None, default_dir=str(proj),
                        loop=LoopSettings(max_retries=2, backoff=0.01, pr=True),
                        publish=open_pr)  # fmt: skip
        chat = Chat()

        async def go():
            await engine.handle(chat, "c1", "me", "/edit fix add() in calc.py")
            await engine.wait_idle("c1")

        asyncio.run(go())
        said = "\n".join(chat.sent)
        assert (proj / "calc.py").read_text() == FIXED
        assert f"`{COMMAND}` failed; fix 1 of 2" in said
        assert f"`{COMMAND}` passes after 1 fix." in said
        (pr,) = github.pulls
        assert pr.head.startswith("leashd/s") and "Pull request:" in said
        assert git(bare, "show", f"{pr.head}:calc.py") == FIXED.strip()


def test_a_test_command_the_policy_refuses_pauses_the_task_instead_of_retrying(github):
    with agent_world() as (fake, root, _home, proj):
        checkout(root, proj)
        # a test command the autonomous policy asks about: nobody is there to approve it
        (proj / ".leashd" / "test.yaml").write_text("command: curl -s https://ci.example/run\n")
        for said in ("spec", "explored", "spec, validated", "1. fix add()"):
            fake.reply(text(said), when=_agent)
        fake.reply(text('{"decision": "approve", "feedback": "fine"}'), when=_reviewing)
        fake.reply(text("Nothing to change."), when=_agent)
        fake.reply(tool("Bash", {"command": "curl -s https://ci.example/run", "description": "t"}),
                   when=_agent)  # fmt: skip
        fake.reply(text("FAILED"), when=_agent)
        told = Told()
        task, runs, _ = run_task(root, github, "Fix add() in calc.py", told)
        assert task.status == "paused" and task.retries == 0
        assert "was not allowed to run" in told.escalations[0][0]
        assert [r.phase for r in runs].count("implement") == 1


def _approving(body: dict) -> bool:
    return "approver of leashd" in json.dumps(body.get("system", ""))


def test_a_tripped_breaker_pauses_the_task_and_the_ai_decisions_are_audited(github):
    """implement makes a network read the autonomous policy routes to the AI approver; the AI
    approves the first and denies the second, which (max 1 denial) trips the breaker: the task
    pauses and says why. Both AI decisions are in the audit log with their reasons."""
    with agent_world() as (fake, root, _home, proj):
        checkout(root, proj)
        agent = lambda b: not _reviewing(b) and not _approving(b)  # noqa: E731
        for said in ("spec", "explored", "spec, validated", "1. fix add()"):
            fake.reply(text(said), when=agent)
        fake.reply(text('{"decision": "approve", "feedback": "fine"}'), when=_reviewing)
        for url in ("https://docs.python.org/3/", "https://example.com/upload"):
            fake.reply(tool("Bash", {"command": f"curl -s {url}", "description": "read"}),
                       when=agent)  # fmt: skip
        fake.reply(text("Done reading."), when=agent)
        fake.reply(text('{"decision": "approve", "reason": "reads the Python docs"}'),
                   when=_approving)  # fmt: skip
        fake.reply(text('{"decision": "deny", "reason": "not needed for the task"}'),
                   when=_approving)  # fmt: skip
        told = Told()
        ai = AIApprover(timeout=120, limits=Limits(max_denials=1))
        task, _, _ = run_task(root, github, "Fix add() in calc.py", told, ai=ai)
        assert task.status == "paused" and task.phase == "implement"
        ((said, _choices),) = told.escalations
        assert "the AI approver stood down: 1 AI denial in a row" in said
        records = [json.loads(line) for line in (root / "audit.jsonl").read_text().splitlines()]
        by_ai = [r for r in records if r.get("approved_by") == "ai"]
        assert [(r["decision"], r["approver_reason"]) for r in by_ai] == [
            ("allow", "reads the Python docs"),
            ("deny", "not needed for the task"),
        ]
        assert by_ai[1]["breaker"]["state"] == "tripped"
        assert all(r["session"] == f"task-{task.id}" for r in by_ai)
