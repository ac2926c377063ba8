"""/git from a chat: the real engine, gate and audit log, real git in the session's directory;
the agent is a stub (its turn can be held open to check /git waits for it)."""

from __future__ import annotations

import asyncio
import subprocess
from types import SimpleNamespace

import pytest

from leashd.agent.events import TurnResult
from leashd.agent.sandbox import SandboxConfig
from leashd.daemon.engine import COMMANDS, Engine
from leashd.daemon.storage import MemoryStore
from leashd.gate.audit import AuditLog, records
from leashd.gate.gate import Gate


class Agent:
    def __init__(self) -> None:
        self.config = SimpleNamespace(sandbox=SandboxConfig(mode="enforce"))
        self.hold: asyncio.Event | None = None

    async def run(self, session, text, *, resume, on_event, ask, on_conversation, on_lost):
        if self.hold is not None:
            await self.hold.wait()
        return TurnResult("done", "conv-1")

    async def interrupt(self, session_id: str) -> bool:
        return False


class Connector:
    name = "telegram"

    def __init__(self) -> None:
        self.sent: list[tuple[str, list]] = []
        self.documents: list[tuple[str, bytes]] = []

    async def send(self, chat, text, choices=()):
        self.sent.append((text, list(choices)))

    async def document(self, chat, name, data):
        self.documents.append((name, data))

    async def event(self, chat, event):
        pass

    async def result(self, chat, result):
        pass

    async def busy(self, chat, text):
        return "queue"


def git(cwd, *args):
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                          check=True).stdout  # fmt: skip


@pytest.fixture
def world(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    for k, v in (("NAME", "Dev"), ("EMAIL", "dev@example.com")):
        monkeypatch.setenv(f"GIT_AUTHOR_{k}", v)
        monkeypatch.setenv(f"GIT_COMMITTER_{k}", v)
    proj = tmp_path / "proj"
    subprocess.run(["git", "init", "-q", "-b", "main", str(proj)], check=True)
    (proj / "a.py").write_text("a = 1\n")
    audit = AuditLog(tmp_path / "audit.jsonl")
    gate = Gate.from_specs([], audit, approved_dirs=[str(proj)], home=str(tmp_path))
    agent, conn = Agent(), Connector()
    engine = Engine(gate, agent, MemoryStore(), approvals=None,  # type: ignore[arg-type]
                    default_dir=str(proj))  # fmt: skip
    yield engine, agent, conn, proj, tmp_path / "audit.jsonl"
    audit.close()


def say(engine, conn, *texts, user="4242"):
    async def go():
        for text in texts:
            await engine.handle(conn, "c1", user, text)

    asyncio.run(go())


def test_git_status_add_commit_from_the_chat_with_buttons_and_the_users_records(world):
    engine, _, conn, proj, audit_path = world
    assert "/git" in COMMANDS
    say(engine, conn, "/git status")
    text, buttons = conn.sent[-1]
    assert "a.py" in text and ("➕ Add all", "/git add -A") in buttons
    say(engine, conn, "/git add -A", "/git commit -m first from the phone")
    assert git(proj, "log", "-1", "--format=%s").strip() == "first from the phone"
    assert ("⬆️ Push", "/git push") in conn.sent[-1][1]
    recs = [r for r in records(audit_path) if r.get("kind") == "git"]
    assert [r["event"] for r in recs] == ["status", "add", "commit"]
    assert all(r["by"] == "user" and r["who"] == "4242" and r["cwd"] == str(proj) for r in recs)


def test_git_that_changes_the_tree_waits_for_the_agents_turn(world):
    engine, agent, conn, proj, _ = world

    async def go():
        agent.hold = asyncio.Event()
        await engine.handle(conn, "c1", "4242", "refactor a.py")  # the turn holds
        await asyncio.sleep(0.05)
        await engine.handle(conn, "c1", "4242", "/git add -A")
        await engine.handle(conn, "c1", "4242", "/git status")  # reading is fine meanwhile
        agent.hold.set()
        await engine.wait_idle("c1")

    asyncio.run(go())
    texts = [t for t, _ in conn.sent]
    assert any("A turn is running" in t and "/git add" in t for t in texts)
    assert any("a.py" in t for t in texts)  # the status was answered
    assert git(proj, "diff", "--cached", "--name-only") == ""  # nothing was added


def test_long_git_output_arrives_as_a_document(world):
    engine, _, conn, proj, _ = world
    (proj / "big.txt").write_text("".join(f"row {i}\n" for i in range(3000)))
    say(engine, conn, "/git add big.txt", "/git diff --staged")
    assert conn.documents and conn.documents[-1][0] == "git-diff.txt"
    assert b"row 2999" in conn.documents[-1][1]


def test_a_refused_git_line_never_reaches_the_model_or_git(world):
    engine, _, conn, _, audit_path = world
    say(engine, conn, "/git push --force")
    assert "never --force" in conn.sent[-1][0]
    assert [r for r in records(audit_path) if r.get("kind") == "git"] == []


def test_a_merge_stopped_on_conflicts_is_resolved_by_the_agent_and_committed_by_the_user(world):
    engine, agent, conn, proj, _ = world
    git(proj, "add", "a.py")
    git(proj, "commit", "-qm", "base")
    git(proj, "checkout", "-qb", "feature")
    (proj / "a.py").write_text("a = 2  # feature\n")
    git(proj, "commit", "-qam", "feature")
    git(proj, "checkout", "-q", "main")
    (proj / "a.py").write_text("a = 3  # main\n")
    git(proj, "commit", "-qam", "main")
    asked: list[str] = []

    async def resolve(session, text, **_):
        # what a real agent does under the gate: edit the file, stage it
        asked.append(text)
        (proj / "a.py").write_text("a = 3  # main and feature\n")
        git(proj, "add", "a.py")
        return TurnResult("resolved", "conv-1")

    say(engine, conn, "/git merge feature")
    text, buttons = conn.sent[-1]
    assert "conflicts" in text and ("🤖 Resolve with AI", "/git resolve") in buttons
    agent.run = resolve  # type: ignore[method-assign]

    async def go():
        await engine.handle(conn, "c1", "4242", "/git resolve")
        await engine.wait_idle("c1")

    asyncio.run(go())
    assert len(asked) == 1 and "a.py" in asked[0] and "Do not commit" in asked[0]
    text, buttons = conn.sent[-1]
    assert "+a = 3  # main and feature" in text
    assert ("✅ Commit the merge", "/git commit --no-edit") in buttons
    assert ("✋ Abort the merge", "/git merge --abort") in buttons
    say(engine, conn, "/git commit --no-edit")
    assert git(proj, "log", "-1", "--format=%s").startswith("Merge branch 'feature'")
    assert git(proj, "show", "HEAD:a.py") == "a = 3  # main and feature\n"


def test_resolve_without_a_stopped_merge_says_so(world):
    engine, _, conn, _, _ = world
    say(engine, conn, "/git resolve")
    assert "No merge is waiting" in conn.sent[-1][0]
