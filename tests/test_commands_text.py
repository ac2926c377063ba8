"""Commands with text after them, commands that do not exist, paths that look like commands,
and the lifecycle events a turn logs. The engine is the real one, with the real gate and
store; the agent is a stub that records what it was asked, in which mode."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st
from structlog.testing import capture_logs

from leashd.agent.events import TurnResult
from leashd.agent.sandbox import SandboxConfig
from leashd.daemon.engine import Engine, command_of
from leashd.daemon.storage import MemoryStore
from leashd.gate.audit import AuditLog
from leashd.gate.gate import Gate


class Agent:
    """Runs record (mode, text); `fail` makes the next run raise."""

    def __init__(self) -> None:
        self.config = SimpleNamespace(sandbox=SandboxConfig(mode="enforce"))
        self.runs: list[tuple[str, str]] = []
        self.fail: Exception | None = None

    async def run(self, session, text, *, resume, on_event, ask, on_conversation, on_lost):
        self.runs.append((session.mode, text))
        if self.fail is not None:
            raise self.fail
        return TurnResult(f"answer to {text}", "conv-1", cost_usd=0.25, duration_ms=1200)

    async def interrupt(self, session_id: str) -> bool:
        return False


class Connector:
    name = "terminal"

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.results: list[TurnResult] = []

    async def send(self, chat, text, choices=()):
        self.sent.append(text)

    async def event(self, chat, event):
        pass

    async def result(self, chat, result):
        self.results.append(result)

    async def ask(self, req):
        raise AssertionError("nothing is asked here")

    async def expired(self, req):
        pass

    async def busy(self, chat, text):
        return "queue"


@pytest.fixture
def chat(tmp_path):
    """say(*texts) -> (agent, connector): each text handled and its turn waited for."""
    proj = tmp_path / "proj"
    proj.mkdir()
    audit = AuditLog(tmp_path / "audit.jsonl")
    gate = Gate.from_specs([], audit, approved_dirs=[str(proj)], home=str(tmp_path))
    agent, conn = Agent(), Connector()
    engine = Engine(gate, agent, MemoryStore(), approvals=None,  # type: ignore[arg-type]
                    default_dir=str(proj))  # fmt: skip

    def say(*texts: str):
        async def go():
            for text in texts:
                await engine.handle(conn, "c1", "me", text)
                await engine.wait_idle("c1")

        asyncio.run(go())
        return agent, conn

    yield say
    audit.close()


# --- /plan TEXT, /edit TEXT, /default TEXT ---------------------------------------------------


@pytest.mark.parametrize(
    ("command", "mode"), [("/plan", "plan"), ("/edit", "auto"), ("/default", "default")]
)
def test_a_mode_command_with_text_switches_and_starts_the_agent_on_the_text(chat, command, mode):
    agent, conn = chat("/plan", f"{command} add a --verbose flag to the CLI")
    assert agent.runs == [(mode, "add a --verbose flag to the CLI")]
    assert conn.sent[-1].startswith(f"Mode: {mode}")  # said before the turn's answer
    assert conn.results[-1].text == "answer to add a --verbose flag to the CLI"


def test_the_text_may_start_on_the_next_line_and_the_mode_stays(chat):
    agent, _ = chat("/PLAN\nfirst, read the tests", "then the code")
    assert agent.runs == [("plan", "first, read the tests"), ("plan", "then the code")]


def test_a_mode_command_alone_only_switches(chat):
    agent, conn = chat("/edit")
    assert agent.runs == []
    assert conn.sent == ["Mode: auto — edits inside the project go ahead without asking"]


def test_help_says_a_mode_command_takes_text(chat):
    _, conn = chat("/help")
    assert "followed by text" in conn.sent[-1]


# --- unknown commands and paths ----------------------------------------------------------------


@pytest.mark.parametrize("text", ["/foo bar", "/foo", "/xyzzy 1 2", "/foo@leashd_bot bar"])
def test_an_unknown_command_is_said_and_never_goes_to_the_model(chat, text):
    agent, conn = chat(text)
    assert agent.runs == []
    assert conn.sent == [f"Unknown command {text.split()[0].split('@')[0]}: /help lists them."]


def test_an_unknown_command_near_a_known_one_suggests_it(chat):
    _, conn = chat("/stauts")
    assert conn.sent == ["Unknown command /stauts: did you mean /status? /help lists them."]


@pytest.mark.parametrize(
    "text",
    [
        "/usr/bin/python is broken, why?",  # a path: a second "/"
        "/nonexistent/dir/x.log shows errors",
        "/tmp is full, what can I delete?",  # an existing path, though a command word
        "/etc",
        "/foo.py has a bug",  # a "." is not in a command word
        "/fix-it please",  # nor is a "-"
        "/" + "a" * 33,  # longer than Telegram's 32
    ],
)
def test_a_message_starting_with_a_path_goes_to_the_model_whole(chat, text):
    agent, conn = chat(text)
    assert agent.runs == [("default", text)]
    assert not any("Unknown command" in s for s in conn.sent)


def test_a_command_addressed_to_the_bot_in_a_group_still_works(chat):
    agent, conn = chat("/plan@leashd_bot write the spec")
    assert conn.sent[0].startswith("Mode: plan")
    assert agent.runs == [("plan", "write the spec")]


@given(st.lists(st.from_regex(r"[A-Za-z0-9_.-]{1,12}", fullmatch=True), min_size=2, max_size=5),
       st.text(max_size=20))  # fmt: skip
def test_no_absolute_path_of_two_or_more_parts_is_a_command(parts, rest):
    text = "/" + "/".join(parts) + (" " + rest if rest.strip() else "")
    assert command_of(text) == (None, text)


# --- lifecycle events --------------------------------------------------------------------------


def test_a_turn_logs_session_created_request_started_and_request_completed(chat):
    with capture_logs() as logs:
        chat("hello", "again")
    events = [e for e in logs if e["event"] in
              ("session_created", "request_started", "request_completed")]  # fmt: skip
    assert [e["event"] for e in events] == ["session_created", "request_started",
                                             "request_completed", "request_started",
                                             "request_completed"]  # fmt: skip
    assert all(e["log_level"] == "info" and e["chat"] == "c1" for e in events)
    created, started, completed = events[:3]
    assert created["session"] == started["session"] == completed["session"]
    assert created["mode"] == "default" and created["directory"].endswith("proj")
    assert completed["cost_usd"] == 0.25 and completed["error"] is None
    assert isinstance(completed["duration_ms"], int) and completed["duration_ms"] >= 0


def test_a_new_conversation_logs_session_created(chat):
    with capture_logs() as logs:
        chat("hello", "/clear")
    assert [e["event"] for e in logs if e["event"] == "session_created"] == ["session_created"] * 2


def test_a_turn_that_raises_logs_request_completed_with_the_error(chat, tmp_path):
    with capture_logs() as logs:
        agent, conn = chat("/status")  # makes the session first
        agent.fail = RuntimeError("boom")
        chat("hello")
    [done] = [e for e in logs if e["event"] == "request_completed"]
    assert done["error"] == "RuntimeError('boom')" and done["cost_usd"] is None
    assert conn.sent[-1] == "Something went wrong: RuntimeError"


def test_the_daemon_logs_daemon_starting_when_it_starts_serving(tmp_path, monkeypatch):
    """The terminal daemon, built for real, with stdin at its end: it starts and leaves."""
    import io
    import os

    from leashd.daemon.serve import serve_terminal

    for name in list(os.environ):
        if name.startswith("LEASHD_"):
            monkeypatch.delenv(name)
    (tmp_path / "proj").mkdir()
    monkeypatch.setenv("LEASHD_HOME", str(tmp_path / "leashd"))
    monkeypatch.setenv("LEASHD_APPROVED_DIRECTORIES", str(tmp_path / "proj"))
    monkeypatch.setenv("LEASHD_SANDBOX", "off")
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    out = io.StringIO()
    with capture_logs() as logs:
        assert asyncio.run(serve_terminal(out)) == 0
    [starting] = [e for e in logs if e["event"] == "daemon_starting"]
    assert starting["log_level"] == "info" and starting["connector"] == "terminal"
    assert starting["directories"] == [str(tmp_path / "proj")]
    assert starting["pid"] == os.getpid()
    assert "leashd stopped" in out.getvalue()
