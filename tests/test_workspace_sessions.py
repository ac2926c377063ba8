"""Sessions in a workspace: the real engine, gate, audit log and stores (memory, and SQLite
files across a restart), real directories and real git repositories. The agent is the real
ClaudeAgent up to the CLI: each turn's OS sandbox plan and its options for the SDK (the
system prompt) are built as a turn builds them, and no process starts.

The world is in `worlds_dir()`, never under /tmp: the gate treats the temporary directory
specially, and a write there is not a write outside like any other."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import subprocess
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from leashd import workspaces
from leashd.agent.events import TurnResult
from leashd.agent.permissions import GateBridge
from leashd.agent.runner import AgentConfig, ClaudeAgent
from leashd.agent.sandbox import Plan, SandboxConfig
from leashd.daemon import storage
from leashd.daemon.engine import COMMANDS, Engine
from leashd.daemon.storage import MemoryStore, SqliteStore, Store
from leashd.gate.audit import AuditError, AuditLog, records
from leashd.gate.gate import Gate, Session
from tests.conftest import worlds_dir


@dataclass
class Turn:
    session: Session
    plan: Plan | None
    options: Any  # ClaudeAgentOptions


class Agent(ClaudeAgent):
    """The real agent up to the CLI: a turn's sandbox plan and SDK options, kept."""

    def __init__(self, gate: Gate, config: AgentConfig) -> None:
        super().__init__(gate, config)
        self.turns: list[Turn] = []

    async def run(self, session, prompt, *, resume, on_event, ask, on_conversation=None,
                  on_lost=None) -> TurnResult:  # fmt: skip
        plan = await self._sandbox(session)
        options = self._options(session, resume, GateBridge(self.gate, lambda: session, ask))
        self.turns.append(Turn(session, plan, options))
        return TurnResult("done", f"conv-{len(self.turns)}")


class Connector:
    name = "telegram"

    def __init__(self) -> None:
        self.sent: list[tuple[str, list[tuple[str, str]]]] = []

    async def send(self, chat, text, choices=()):
        self.sent.append((text, list(choices)))

    async def document(self, chat, name, data):
        pass

    async def event(self, chat, event):
        pass

    async def result(self, chat, result):
        pass

    async def busy(self, chat, text):
        return "queue"

    def last(self) -> str:
        return self.sent[-1][0]

    def texts(self) -> str:
        return "\n".join(t for t, _ in self.sent)


class World:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "home"
        self.proj, self.api, self.web = (self.home / n for n in ("proj", "api", "web"))
        for d in (self.proj, self.api, self.web):
            d.mkdir(parents=True)
        subprocess.run(["git", "init", "-q", "-b", "trunk", str(self.api)], check=True)
        subprocess.run(["git", "init", "-q", "-b", "feature/login", str(self.web)], check=True)
        self.audit_path = root / "audit.jsonl"
        self._audits: list[AuditLog] = []

    def engine(self, store: Store | None = None, system_prompt: str | None = None
               ) -> tuple[Engine, Agent]:  # fmt: skip
        """A daemon's engine as `app.build` wires it: the project approved, the built-in
        default policy, the OS sandbox enforced."""
        audit = AuditLog(self.audit_path)
        self._audits.append(audit)
        gate = Gate.from_specs([], audit, approved_dirs=[str(self.proj)], home=str(self.home))
        config = AgentConfig(sandbox=SandboxConfig(mode="enforce"), system_prompt=system_prompt)
        agent = Agent(gate, config)
        engine = Engine(gate, agent, store or MemoryStore(), approvals=None,
                        default_dir=str(self.proj))  # fmt: skip
        return engine, agent

    def audited(self, event: str) -> list[dict]:
        return [r for r in records(self.audit_path) if r.get("event") == event]

    def close(self) -> None:
        for a in self._audits:
            a.close()


@pytest.fixture
def w(monkeypatch):
    root = worlds_dir() / uuid.uuid4().hex[:12]
    world = World(root)
    monkeypatch.setenv("HOME", str(world.home))
    monkeypatch.setenv("LEASHD_HOME", str(world.home / ".leashd"))
    yield world
    world.close()
    shutil.rmtree(root, ignore_errors=True)


def say(engine: Engine, conn: Connector, *texts: str, chat: str = "c1") -> None:
    async def go():
        for text in texts:
            await engine.handle(conn, chat, "4242", text)
            await engine.wait_idle(chat)

    asyncio.run(go())


def saas(w: World) -> workspaces.Workspace:
    return workspaces.add("my-saas", [str(w.api), str(w.web)], "the product")


# --- /ws in a chat ---------------------------------------------------------------------------


def test_ws_lists_with_buttons_switches_and_status_and_help_show_it(w):
    saas(w)
    engine, agent = w.engine()
    conn = Connector()
    assert "/ws" in COMMANDS
    say(engine, conn, "/help")
    assert "/ws — workspaces" in conn.last()

    say(engine, conn, "/ws")
    text, buttons = conn.sent[-1]
    assert f"my-saas: {w.api}, {w.web} — the product" in text
    assert buttons == [("my-saas", "/ws my-saas")]
    say(engine, conn, buttons[0][1])  # what the button sends
    switched = conn.last()
    assert switched.startswith(f"Working in workspace my-saas, in {w.api} (new conversation)")
    assert "on branch trunk" in switched and "on branch feature/login" in switched

    say(engine, conn, "/ws")
    text, buttons = conn.sent[-1]
    assert "This session works in workspace my-saas (/ws leave leaves it)" in text
    assert "(this session)" in text
    assert buttons == [("• my-saas", "/ws my-saas"), ("↩ Leave my-saas", "/ws leave")]
    say(engine, conn, "/status")
    assert f"Workspace: my-saas ({w.api}, {w.web})" in conn.last()

    say(engine, conn, "hello")
    [turn] = agent.turns
    assert turn.session.cwd == str(w.api) and turn.options.cwd == str(w.api)
    assert turn.session.dirs == (str(w.api), str(w.web))
    entered = w.audited("workspace_entered")
    assert [(r["workspace"], r["dirs"]) for r in entered] == [("my-saas", [str(w.api), str(w.web)])]


def test_a_write_into_the_second_directory_is_inside_for_the_workspace_session_only(w):
    saas(w)
    engine, agent = w.engine()
    conn = Connector()
    say(engine, conn, "/ws my-saas", "hello", chat="c1")
    say(engine, conn, "hello", chat="c2")  # another chat, in no workspace
    ours, theirs = (t.session for t in agent.turns)
    assert theirs.chat == "c2" and theirs.dirs == ()
    write = {"file_path": str(w.web / "login.py"), "content": "x = 1\n"}
    for _ in range(2):  # in turn: a remembered decision of one session never decides another's
        inside = engine.gate.decide(ours, "Write", write)
        assert (inside.action, inside.rule_name) == ("require_approval", "file-writes")
        assert [p.where for u in inside.units for p in u.unit.paths] == ["inside"]
        outside = engine.gate.decide(theirs, "Write", write)
        assert (outside.action, outside.rule_name) == ("deny", "write-outside-project")
        assert [p.where for u in outside.units for p in u.unit.paths] == ["outside"]


def test_a_policys_inside_condition_holds_in_every_workspace_directory(w, tmp_path):
    policy = tmp_path / "inside.leash"
    policy.write_text('allow writes tools [Write] paths "**" where inside access write\n'
                      "default deny\n")  # fmt: skip
    saas(w)
    engine, agent = w.engine()
    engine.gate.reload([str(policy)])
    conn = Connector()
    say(engine, conn, "/ws my-saas", "hello", chat="c1")
    say(engine, conn, "hello", chat="c2")
    ours, theirs = (t.session for t in agent.turns)
    write = {"file_path": str(w.web / "login.py"), "content": "x = 1\n"}

    allowed = asyncio.run(engine.gate.check(ours, "Write", write))
    denied = asyncio.run(engine.gate.check(theirs, "Write", write))
    assert (allowed.action, allowed.decision.rule_name) == ("allow", "writes")
    assert denied.action == "deny" and denied.decision.rule_name is None  # the default
    decided = [r for r in records(w.audit_path) if r.get("kind") == "decision"]
    assert decided[-2]["session_dirs"] == [str(w.api), str(w.web)]
    assert "session_dirs" not in decided[-1]


def test_the_sandbox_plan_of_the_workspace_session_has_both_directories_writable(w):
    saas(w)
    engine, agent = w.engine()
    conn = Connector()
    say(engine, conn, "/ws my-saas", "hello", chat="c1")
    say(engine, conn, "hello", chat="c2")
    ours, theirs = (t.plan.settings["filesystem"] for t in agent.turns)
    assert {str(w.api), str(w.web), str(w.proj)} <= set(ours["allowWrite"])
    # the repositories' hooks and config stay unwritable, as in an approved directory
    assert {str(w.web / ".git/hooks"), str(w.api / ".git/config")} <= set(ours["denyWrite"])
    assert str(w.proj) in theirs["allowWrite"]
    assert not {str(w.api), str(w.web)} & set(theirs["allowWrite"])


def test_the_system_prompt_carries_the_workspace_and_its_repositories_branches(w):
    saas(w)
    engine, agent = w.engine()
    conn = Connector()
    say(engine, conn, "/ws my-saas", "hello", chat="c1")
    say(engine, conn, "hello", chat="c2")
    ours, theirs = (t.options.system_prompt for t in agent.turns)
    assert ours["preset"] == "claude_code"  # Claude Code's own prompt, then the workspace
    assert "workspace 'my-saas' (the product)" in ours["append"]
    assert f"{w.api} (git repository, on branch trunk)" in ours["append"]
    assert f"{w.web} (git repository, on branch feature/login)" in ours["append"]
    assert theirs == {"type": "preset", "preset": "claude_code"}  # no workspace: nothing added

    # the branch as it is at each turn
    subprocess.run(["git", "-C", str(w.web), "checkout", "-q", "-b", "fix/tokens"], check=True)
    say(engine, conn, "again", chat="c1")
    assert "on branch fix/tokens" in agent.turns[-1].options.system_prompt["append"]


def test_a_configured_system_prompt_comes_first_then_the_workspace(w):
    saas(w)
    engine, agent = w.engine(system_prompt="Answer in French.")
    conn = Connector()
    say(engine, conn, "/ws my-saas", "hello")
    prompt = agent.turns[-1].options.system_prompt
    assert prompt["type"] == "preset" and prompt["preset"] == "claude_code"
    assert prompt["append"].startswith("Answer in French.\n\nYou are working in the workspace")
    assert "on branch feature/login" in prompt["append"]


# --- kept, and refused when it cannot be used ------------------------------------------------


def test_the_sessions_workspace_survives_a_restart(w):
    saas(w)
    db = w.root / "messages.db"

    async def first():
        store = SqliteStore(db)
        await store.open()
        engine, _ = w.engine(store)
        conn = Connector()
        await engine.handle(conn, "c1", "4242", "/ws my-saas")
        await store.close()

    async def after_restart():
        store = SqliteStore(db)
        await store.open()
        engine, agent = w.engine(store)
        conn = Connector()
        await engine.handle(conn, "c1", "4242", "hello")
        await engine.wait_idle("c1")
        await engine.handle(conn, "c1", "4242", "/status")
        await store.close()
        return agent.turns, conn.last()

    asyncio.run(first())
    [turn], status = asyncio.run(after_restart())
    assert turn.session.cwd == str(w.api) and turn.session.dirs == (str(w.api), str(w.web))
    assert "on branch feature/login" in turn.options.system_prompt["append"]
    assert "Workspace: my-saas" in status


def test_a_database_of_the_previous_schema_is_upgraded_in_no_workspace(tmp_path):
    path = tmp_path / "messages.db"
    with sqlite3.connect(path) as db:  # what the release before workspaces left behind
        for step in storage.MIGRATIONS[:2]:
            db.executescript(step)
        db.execute(
            "INSERT INTO sessions (chat, directory, mode, agent_session_id, created_at, "
            "updated_at, agent_cost_usd) VALUES ('c1', '/p', 'plan', 'ag-7', 1.0, 2.0, 0.5)"
        )
        db.execute("PRAGMA user_version = 2")

    async def body():
        store = SqliteStore(path)
        await store.open()
        try:
            row = await store.current_session("c1")
            await store.update_session(replace(row, workspace="w", workspace_dirs=("/a", "/b")))
            return row, await store.current_session("c1")
        finally:
            await store.close()

    row, updated = asyncio.run(body())
    assert (row.directory, row.mode, row.agent_session_id, row.agent_cost_usd) == (
        "/p", "plan", "ag-7", 0.5,
    )  # fmt: skip
    assert (row.workspace, row.workspace_dirs) == (None, ())
    assert (updated.workspace, updated.workspace_dirs) == ("w", ("/a", "/b"))
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == storage.SCHEMA_VERSION
        # and every later step ran too: the tasks' tables (version 4) are there
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"tasks", "task_phases", "task_events"} <= tables


def _remove_web(w: World) -> str:
    shutil.rmtree(w.web)
    return "is not a directory any more"


def _break_the_file(w: World) -> str:
    (w.home / ".leashd" / "workspaces.yaml").write_text("workspaces: [\n")
    return "cannot read the workspaces file"


def _remove_the_workspace(w: World) -> str:
    workspaces.remove("my-saas")
    return "there is no workspace 'my-saas'"


def _move_the_sessions_directory_out(w: World) -> str:
    workspaces.remove("my-saas", [str(w.api)])
    return f"this session's directory {w.api} is no longer in workspace 'my-saas'"


@pytest.mark.parametrize(
    "breaks",
    [_remove_web, _break_the_file, _remove_the_workspace, _move_the_sessions_directory_out],
)
def test_a_workspace_that_cannot_be_used_refuses_the_next_turn(w, breaks):
    saas(w)
    engine, agent = w.engine()
    conn = Connector()
    say(engine, conn, "/ws my-saas")
    words = breaks(w)
    say(engine, conn, "go on")
    assert agent.turns == []  # never run narrowed, nor widened to anything else
    assert conn.last().startswith("Not run: ") and words in conn.last()
    assert "/ws leave" in conn.last()
    # leaving is the way out: the session works in the approved directory again
    say(engine, conn, "/ws leave", "go on")
    assert conn.sent[-1][0] == f"Left workspace my-saas: working in {w.proj} (new conversation)."
    [turn] = agent.turns
    assert turn.session.cwd == str(w.proj) and turn.session.dirs == ()
    assert "append" not in turn.options.system_prompt


def test_a_switch_into_a_workspace_with_a_missing_or_broad_directory_is_refused(w):
    path = w.home / ".leashd" / "workspaces.yaml"
    path.parent.mkdir()
    path.write_text(f"workspaces:\n  gone:\n    directories: [{w.api}, {w.home / 'nope'}]\n"
                    f"  wide:\n    directories: [{w.api}, {w.home}]\n")  # fmt: skip
    engine, agent = w.engine()
    conn = Connector()
    say(engine, conn, "/ws gone")
    assert conn.last() == (f"Not switched: {w.home / 'nope'} of workspace 'gone' is not a "
                           "directory any more.")  # fmt: skip
    say(engine, conn, "/ws wide")
    assert "your home directory" in conn.last() and conn.last().startswith("Not switched")
    say(engine, conn, "/ws nothing-here")
    assert conn.last() == "Not switched: there is no workspace 'nothing-here' (/ws lists them)."
    say(engine, conn, "hello")
    assert agent.turns[-1].session.dirs == () and agent.turns[-1].session.cwd == str(w.proj)
    assert w.audited("workspace_entered") == []


def test_a_change_to_the_file_is_audited_and_said_before_the_turn_it_holds_for(w):
    saas(w)
    worker = w.home / "worker"
    worker.mkdir()
    engine, agent = w.engine()
    conn = Connector()
    say(engine, conn, "/ws my-saas", "hello")
    workspaces.add("my-saas", [str(worker)])  # `leashd ws add` on the computer meanwhile
    workspaces.remove("my-saas", [str(w.web)])
    say(engine, conn, "and now?")
    notice = conn.sent[-1][0]
    assert notice == (f"Workspace my-saas changed since this session last worked in it: "
                      f"now also {worker}; no longer {w.web}.")  # fmt: skip
    assert agent.turns[-1].session.dirs == (str(w.api), str(worker))
    [changed] = w.audited("workspace_changed")
    assert changed["dirs"] == [str(w.api), str(worker)]
    assert changed["before"] == [str(w.api), str(w.web)]
    say(engine, conn, "once more")
    assert conn.sent[-1][0] == notice  # said once: the session now works in it as it is


def test_inline_edits_take_the_clis_checks(w):
    engine, _ = w.engine()
    conn = Connector()
    for line, words in (("/ws add x /", "is the root directory"),
                        (f"/ws add x {w.home}", "is your home directory"),
                        ("/ws add x ~", "is your home directory"),
                        (f"/ws add x {w.home / 'nope'}", "is not a directory"),
                        (f"/ws add leave {w.api}", "a word of /ws itself"),
                        ("/ws remove x", "there is no workspace 'x'"),
                        ("/ws add x", "/ws lists the workspaces")):  # fmt: skip
        say(engine, conn, line)
        assert words in conn.last(), (line, conn.last())
    assert workspaces.load() == {}
    # relative directories are the session's (the project's), as in a shell there
    say(engine, conn, '/ws add duo ../api ../web -d "two apps"')
    assert conn.last() == f"Workspace duo: {w.api}, {w.web}."
    assert workspaces.load()["duo"] == workspaces.Workspace("duo", (str(w.api), str(w.web)),
                                                            "two apps")  # fmt: skip
    say(engine, conn, f"/ws remove duo {w.web}")
    assert workspaces.load()["duo"].directories == (str(w.api),)
    # its last directory removed, the workspace goes, and the session in it leaves it
    say(engine, conn, "/ws duo", "/ws remove duo ../api")
    assert conn.last() == (f"Workspace duo removed.\nLeft workspace duo: working in {w.proj} "
                           "(new conversation).")  # fmt: skip
    assert workspaces.load() == {}


def test_clear_and_dir_stay_in_the_workspace_and_git_works_in_its_directories(w):
    saas(w)
    engine, agent = w.engine()
    conn = Connector()
    say(engine, conn, "/ws my-saas", "/clear", "/dir")
    text, buttons = conn.sent[-1]
    assert f"3. {w.web}" in text and ("web", "/dir 3") in buttons
    say(engine, conn, "/dir 3", "hello", "/git status")
    turn = agent.turns[-1]
    assert turn.session.cwd == str(w.web) and turn.session.dirs == (str(w.api), str(w.web))
    assert "feature/login" in conn.last()  # the user's git ran there


def test_a_link_that_points_elsewhere_now_is_a_change_and_said(w):
    link = w.home / "current"
    link.symlink_to(w.web)
    path = w.home / ".leashd" / "workspaces.yaml"
    path.parent.mkdir()
    path.write_text(f"workspaces:\n  linked:\n    directories: [{w.api}, {link}]\n")
    engine, agent = w.engine()
    conn = Connector()
    say(engine, conn, "/ws linked", "hello")
    assert agent.turns[-1].session.dirs == (str(w.api), str(w.web))  # where it pointed
    link.unlink()
    link.symlink_to(w.proj)
    say(engine, conn, "and now?")
    assert conn.sent[-1][0] == (f"Workspace linked changed since this session last worked in "
                                f"it: now also {w.proj}; no longer {w.web}.")  # fmt: skip
    assert agent.turns[-1].session.dirs == (str(w.api), str(w.proj))


def test_nothing_is_approved_that_the_audit_log_cannot_record(w, monkeypatch):
    saas(w)
    engine, agent = w.engine()
    conn = Connector()
    audit = engine.gate.audit
    writes = audit.append

    def broken(kind, fields):
        raise AuditError("disk full")

    audit.append = broken
    say(engine, conn, "/ws my-saas")
    assert conn.last() == ("Not switched: the audit log cannot be written, so the directories "
                           "of workspace 'my-saas' are not approved: disk full.")  # fmt: skip
    audit.append = writes  # the switch, then a change the log cannot take
    say(engine, conn, "/ws my-saas")
    workspaces.remove("my-saas", [str(w.web)])
    audit.append = broken
    say(engine, conn, "go on")
    assert conn.last().startswith("Not run: the audit log cannot be written")
    assert agent.turns == []
