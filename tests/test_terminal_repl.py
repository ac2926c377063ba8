"""The terminal REPL in this process, with a real engine and the real Claude Code CLI against
the fake Messages API. The user here reacts the instant something appears on the screen,
faster than any person: what the screen says must already be true when it is said.

- The answer and the prompt come once the turn is over, so a line typed on seeing them is a
  new message, never "a turn is running".
- One question at a time, the last one shown, takes the line typed: an approval that arrives
  while "queue or interrupt?" is open is asked first, and that question comes back after.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from leashd.agent.runner import AgentConfig, ClaudeAgent, bundled_cli
from leashd.connectors.terminal import CHAT, PROMPT, WHO, TerminalConnector
from leashd.daemon.engine import Engine
from leashd.daemon.storage import MemoryStore
from leashd.gate.approvals import ApprovalCoordinator
from leashd.gate.audit import AuditLog
from leashd.gate.gate import Gate
from tests.conftest import agent_world
from tests.fakes.anthropic_api import text, tool

pytestmark = pytest.mark.skipif(bundled_cli() is None, reason="no bundled Claude Code CLI")

ASKED = "[y]es / [n]o"
BUSY = "A turn is running"
WAIT = 60.0  # seconds for anything to appear: the CLI starts once per turn


class Screen:
    """What the REPL wrote, with the lines typed echoed as a terminal would. `when(text, act)`
    runs `act` inside the write that first shows `text`: a user who types the instant they
    see it."""

    def __init__(self) -> None:
        self.text = ""
        self._reactions: list[tuple[str, Callable[[], None]]] = []
        self._changed = asyncio.Event()

    def write(self, s: str) -> int:
        self.text += s
        self._changed.set()
        for reaction in [r for r in self._reactions if r[0] in self.text]:
            self._reactions.remove(reaction)
            reaction[1]()
        return len(s)

    def flush(self) -> None:
        pass

    def when(self, text: str, act: Callable[[], None]) -> None:
        self._reactions.append((text, act))

    async def until(self, check: Callable[[], bool], what: str) -> None:
        deadline = asyncio.get_running_loop().time() + WAIT
        while not check():
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise AssertionError(f"never {what}; the screen:\n{self.text}")
            self._changed.clear()
            # also re-checked on a clock: some states (a running turn) are not written
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(left, 0.5))

    async def shows(self, text: str, count: int = 1) -> None:
        await self.until(lambda: self.text.count(text) >= count, f"{text!r} (x{count})")

    def prompts(self) -> int:
        return self.text.count(PROMPT)

    async def idle(self, prompts: int) -> None:
        """Until the `prompts`-th prompt is the last thing on the screen."""
        await self.until(lambda: self.prompts() >= prompts and self.text.endswith(PROMPT),
                         f"idle at prompt {prompts}")  # fmt: skip


class Repl:
    """The connector reading lines typed here."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.screen = Screen()
        self.conn = TerminalConnector(engine, self.screen)  # type: ignore[arg-type]
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Repl:
        self._task = asyncio.create_task(self.conn.run(read_stdin=False))
        await self.screen.idle(1)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.conn.typed(None)
        assert self._task is not None
        await self._task
        await self.engine.stop()

    def type(self, line: str) -> None:
        self.screen.text += line + "\n"  # the terminal's echo
        self.conn.typed(line)


def prompted(words: str) -> Callable[[dict[str, Any]], bool]:
    """A `when` for the fake: the request's latest user message is the prompt `words` (the
    first request of that turn, not one carrying a tool's result)."""

    def when(body: dict[str, Any]) -> bool:
        users = [m for m in body.get("messages") or [] if m.get("role") == "user"]
        return bool(users) and words in json.dumps(users[-1])

    return when


def tool_result(body: dict[str, Any]) -> bool:
    """A `when` for the fake: the request carries a tool's result (the turn goes on)."""
    users = [m for m in body.get("messages") or [] if m.get("role") == "user"]
    return bool(users) and "tool_result" in json.dumps(users[-1])


def held_until(go: threading.Event, when: Callable[[dict[str, Any]], bool]):  # type: ignore[no-untyped-def]
    """A `when` that keeps the model 'thinking' until the test has reached the state it
    wants (the fake answers requests on threads of its own)."""

    def check(body: dict[str, Any]) -> bool:
        if not when(body):
            return False
        go.wait(WAIT)
        return True

    return check


@pytest.fixture
def setup():
    with agent_world() as (fake, root, home, proj):
        audit = AuditLog(root / "audit.jsonl")

        def engine() -> Engine:
            approvals = ApprovalCoordinator({WHO}, 30, audit)
            gate = Gate.from_specs([], audit, approvals=approvals,
                                   approved_dirs=[str(proj)], home=str(home))  # fmt: skip
            agent = ClaudeAgent(gate, AgentConfig(timeout=60))
            e = Engine(gate, agent, MemoryStore(), approvals=approvals,
                       default_dir=str(proj))  # fmt: skip
            approvals.on_expired = e.expired
            return e

        try:
            yield fake, proj, engine, audit
        finally:
            audit.close()


def approval_events(audit_path: Path) -> list[tuple[str, str | None]]:
    records = [json.loads(line) for line in audit_path.read_text().splitlines()]
    return [(r["event"], r.get("who")) for r in records if r.get("kind") == "approval"]


def test_a_line_typed_the_instant_the_answer_shows_is_a_new_message(setup):
    fake, _proj, engine, _ = setup
    fake.say("First answer.")
    fake.reply(text("Second answer."), when=prompted("next question"))
    e = engine()
    running_when_shown: list[bool] = []

    async def go() -> str:
        async with Repl(e) as repl:

            def answer_seen() -> None:
                running_when_shown.append(e.running(CHAT))
                repl.type("next question")

            repl.screen.when("First answer.", answer_seen)
            repl.type("first question")
            await repl.screen.shows("Second answer.")
            await repl.screen.idle(3)
            return repl.screen.text

    screen = asyncio.run(go())
    # the answer was shown once the turn was over, so the line went in as a message
    assert running_when_shown == [False]
    assert BUSY not in screen
    assert fake.user_texts() == ["first question", "next question"]
    first = screen.index("First answer.")
    assert screen.index("— $", first) < screen.index(PROMPT, first) < screen.index("next question")


def test_an_approval_while_queue_or_interrupt_is_open_is_asked_first(setup):
    """The queue question is open when the approval arrives: the approval is the question
    on screen, so `y` approves it; then the queue question is asked again and `q` answers
    it."""
    fake, proj, engine, audit = setup
    go = threading.Event()  # the model asks for the write once the queue question is open
    on = threading.Event()  # and ends its turn once the question has its answer
    fake.reply(tool("Write", {"file_path": str(proj / "a.txt"), "content": "a\n"}),
               when=held_until(go, prompted("first task")))  # fmt: skip
    fake.reply(text("Wrote a.txt."), when=held_until(on, tool_result))
    fake.reply(text("Second done."), when=prompted("second task"))
    e = engine()

    async def run() -> str:
        async with Repl(e) as repl:
            s = repl.screen
            repl.type("first task")
            await s.until(lambda: e.running(CHAT), "a running turn")
            repl.type("second task")
            await s.shows(BUSY)
            go.set()  # the model now asks for the write
            await s.shows(ASKED)
            assert s.text.count(BUSY) == 1  # asked once so far
            repl.type("y")
            await s.shows("→ approved")
            await s.shows(BUSY, count=2)  # the queue question again, after the approval
            repl.type("q")
            await s.shows("Queued: it runs when this turn ends.")
            on.set()
            await s.shows("Second done.")
            await s.idle(2)
            return s.text

    screen = asyncio.run(run())
    assert (proj / "a.txt").read_text() == "a\n"
    assert approval_events(audit.path) == [("requested", None), ("approved", WHO)]
    # the screen, in order: the question, the approval, its answer, the question again
    order = [screen.index(BUSY), screen.index(ASKED), screen.index("→ approved"),
             screen.rindex(BUSY), screen.index("Wrote a.txt."),
             screen.index("Second done.")]  # fmt: skip
    assert order == sorted(order)
    assert "set aside" in screen[screen.index(BUSY) : screen.index(ASKED)]
    assert fake.user_texts() == ["first task", "second task"]


def test_the_queue_question_is_withdrawn_when_its_turn_ends(setup):
    """The turn ends while the question is open: nothing is left to choose, the screen says
    the message goes now, and it does, without an answer."""
    fake, _proj, engine, _ = setup
    go = threading.Event()
    fake.reply(text("First done."), when=held_until(go, prompted("first task")))
    fake.reply(text("Second done."), when=prompted("second task"))
    e = engine()

    async def run() -> str:
        async with Repl(e) as repl:
            s = repl.screen
            repl.type("first task")
            await s.until(lambda: e.running(CHAT), "a running turn")
            repl.type("second task")
            await s.shows(BUSY)
            go.set()
            await s.shows('(that turn is over: "second task" goes now)')
            await s.shows("Second done.")
            await s.idle(2)
            return s.text

    screen = asyncio.run(run())
    assert screen.index("First done.") < screen.index("that turn is over")
    assert "Queued" not in screen
    assert fake.user_texts() == ["first task", "second task"]


def test_an_approval_of_an_interrupted_turn_no_longer_takes_the_next_line(setup):
    fake, proj, engine, _ = setup
    fake.call("Write", {"file_path": str(proj / "never.txt"), "content": "x"})
    fake.reply(text("Hello."), when=prompted("hello"))
    e = engine()

    async def run() -> str:
        async with Repl(e) as repl:
            s = repl.screen
            repl.type("write never.txt")
            await s.shows(ASKED)
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C
            await s.idle(2)
            repl.type("hello")
            await s.shows("Hello.")
            await s.idle(3)
            return s.text

    screen = asyncio.run(run())
    assert "answer y, n" not in screen
    stopped = screen.index("(interrupting…)")
    assert "(no longer waiting: Write" in screen[stopped : screen.index("⏹ interrupted")]
    assert not (proj / "never.txt").exists()
    assert fake.user_texts()[-1] == "hello"


def test_a_notice_while_idle_ends_with_the_prompt_again(setup):
    """Not on a terminal (as here, and piped): plain text, the notice under the prompt and
    the prompt again. On a terminal the notice goes above the prompt instead, leaving no
    empty one behind (test_terminal_line.py, test_e2e_repl.py)."""
    _fake, _proj, engine, _ = setup
    e = engine()

    async def run() -> str:
        async with Repl(e) as repl:
            await repl.conn.send(CHAT, "(configuration reloaded: 1 approved directories)")
            await repl.screen.idle(2)
            return repl.screen.text

    screen = asyncio.run(run())
    assert screen.endswith(f"{PROMPT}\n(configuration reloaded: 1 approved directories)\n{PROMPT}")
