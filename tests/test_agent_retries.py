"""Transient API failures (overloaded, 5xx, a dropped connection) are tried again with
exponential backoff, a bounded number of times, and the user is told each time.

The retrying is the bundled CLI's own, request by request (`AgentConfig.retries` sets how
many): a retry re-sends the one model request that failed, so no tool runs twice and the
conversation goes on. Driven here with the real CLI against the fake Messages API."""

from __future__ import annotations

import asyncio
import json
import socket
import struct

import pytest

from leashd.agent.events import Notice, Text
from leashd.agent.runner import AgentConfig, ClaudeAgent, bundled_cli
from leashd.daemon.engine import Engine
from leashd.daemon.storage import MemoryStore
from leashd.gate.audit import AuditLog
from leashd.gate.gate import Gate, Session
from tests.conftest import agent_world
from tests.fakes import anthropic_api

pytestmark = pytest.mark.skipif(bundled_cli() is None, reason="no bundled Claude Code CLI")

DROP = 599  # a scripted "status" that drops the connection instead of answering


@pytest.fixture
def dropping(monkeypatch):
    """The fake API, able to reset the connection (`fake.fail(DROP)`) as a proxy can."""
    handler = anthropic_api._handler

    def with_drop(fake):
        base = handler(fake)

        class Handler(base):  # type: ignore[misc, valid-type]
            def _json(self, status, data):
                if status != DROP:
                    return super()._json(status, data)
                self.close_connection = True
                # RST rather than FIN: the client sees "connection reset"
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.connection.close()

        return Handler

    monkeypatch.setattr(anthropic_api, "_handler", with_drop)


@pytest.fixture
def world(dropping):
    with agent_world() as (fake, root, home, proj):
        audit = AuditLog(root / "audit.jsonl")
        gate = Gate.from_specs([], audit, approved_dirs=[str(proj)], home=str(home))
        yield fake, proj, gate, audit
        audit.close()


def run(gate, proj, prompt="hi", retries=3, resume=None):
    """One turn; returns (result, events told to the connector)."""
    agent = ClaudeAgent(gate, AgentConfig(timeout=120, retries=retries))
    told: list[object] = []

    async def on_event(event):
        told.append(event)

    session = Session("s1", "c1", str(proj))
    result = asyncio.run(agent.run(session, prompt, resume=resume, on_event=on_event, ask=None))
    return result, told


def notices(told):
    return [e.text for e in told if isinstance(e, Notice)]


class Recorder:
    """A connector: what the user is shown."""

    name = "terminal"

    def __init__(self) -> None:
        self.events: list[object] = []
        self.results: list[object] = []

    async def send(self, chat, text, choices=()):
        pass

    async def event(self, chat, event):
        self.events.append(event)

    async def result(self, chat, result):
        self.results.append(result)

    async def ask(self, req):
        pass

    async def expired(self, req):
        pass

    async def busy(self, chat, text):
        return "queue"


def test_an_overloaded_api_is_tried_again_and_the_user_told(world):
    fake, proj, gate, _ = world
    fake.fail(529)
    fake.say("the answer")
    engine = Engine(gate, ClaudeAgent(gate, AgentConfig(timeout=120, retries=3)), MemoryStore(),
                    approvals=None, default_dir=str(proj))  # fmt: skip
    conn = Recorder()

    async def go():
        await engine.handle(conn, "c1", "me", "a question")
        await engine.wait_idle("c1")

    asyncio.run(go())
    [notice] = notices(conn.events)
    assert notice.startswith("the API is overloaded (529); trying again in ")
    assert notice.endswith("(retry 1 of 3)")
    [result] = conn.results
    assert result.ok and result.text == "the answer"
    assert len(fake.requests) == 2
    # the failure's own "API Error" text never reaches the user when the retry worked
    assert not any(isinstance(e, Text) and "API Error" in e.text for e in conn.events)


@pytest.mark.parametrize(
    ("status", "why"),
    [
        (500, "the API request failed (500)"),
        (503, "the API request failed (503)"),
        (DROP, "the connection to the API failed;"),
    ],
)
def test_server_errors_and_dropped_connections_are_tried_again(world, status, why):
    fake, proj, gate, _ = world
    fake.fail(status)
    fake.say("the answer")
    result, told = run(gate, proj)
    assert result.ok and result.text == "the answer"
    [notice] = notices(told)
    assert notice.startswith(why)


def test_retries_back_off_and_stop_at_the_bound(world):
    fake, proj, gate, _ = world
    for _ in range(3):  # one more than allowed
        fake.fail(529)
    fake.say("too late")
    result, told = run(gate, proj, retries=2)
    assert result.error is not None and "529" in result.error
    said = notices(told)
    assert [n.rsplit("(", 1)[1] for n in said] == ["retry 1 of 2)", "retry 2 of 2)"]
    delays = [float(n.split("trying again in ")[1].split(" s")[0]) for n in said]
    assert delays[1] > delays[0] > 0  # exponential backoff
    assert len(fake.requests) == 3


def test_no_retries_when_set_to_zero(world):
    fake, proj, gate, _ = world
    fake.fail(529)
    fake.say("never asked for")
    result, told = run(gate, proj, retries=0)
    assert result.error is not None and "529" in result.error
    assert notices(told) == [] and len(fake.requests) == 1


def test_a_bad_request_is_not_tried_again(world):
    fake, proj, gate, _ = world
    for _ in range(20):  # the CLI may re-send a refused request once per feature it drops
        fake.fail(400)
    result, told = run(gate, proj)
    assert result.error is not None and "400" in result.error
    assert notices(told) == []  # no backoff, nothing to tell


def test_a_failure_after_a_tool_ran_does_not_run_the_tool_again(world):
    fake, proj, gate, audit = world
    (proj / "notes.txt").write_text("remember tangerine\n")
    fake.call("Read", {"file_path": str(proj / "notes.txt")})
    fake.fail(529)  # the request that carries the tool's result
    fake.say("it says tangerine")
    result, told = run(gate, proj)
    assert result.ok and result.text == "it says tangerine"
    assert len(notices(told)) == 1
    decisions = [json.loads(line) for line in audit.path.read_text().splitlines()]
    reads = [r for r in decisions if r.get("kind") == "decision" and r.get("tool") == "Read"]
    assert len(reads) == 1  # the gate was asked once: the tool ran once
    # the retried request carried the tool's result, as the failed one did
    assert "remember tangerine" in json.dumps(fake.requests[-1]["messages"])


def test_a_resumed_conversation_goes_on_after_a_retry(world):
    fake, proj, gate, _ = world
    fake.say("noted")
    first, _ = run(gate, proj, prompt="remember tangerine")
    fake.fail(529)
    fake.say("tangerine")
    second, told = run(gate, proj, prompt="what was the word?", resume=first.agent_session_id)
    assert second.ok and second.text == "tangerine"
    assert len(notices(told)) == 1
    # the model has the whole conversation, each prompt once: nothing started over
    assert fake.user_texts() == ["remember tangerine", "what was the word?"]
