"""The terminal REPL, when no bot token is set: a prompt, the answer as it streams, tool
indicators, and approvals answered right here.

One reader thread turns stdin into lines on the event loop (so `input()` never blocks it).
A line answers the oldest open question (an approval, or "queue or interrupt?") if there is
one, else it is a message. Ctrl-C interrupts the running turn, not the daemon; Ctrl-D or
/quit leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import TextIO

from leashd.agent.events import (
    AgentEvent,
    ModeChanged,
    Text,
    TextDelta,
    ToolDenied,
    ToolStarted,
    TurnResult,
)
from leashd.connectors.base import Busy
from leashd.daemon.engine import Engine, result_summary
from leashd.gate.approvals import ApprovalRequest
from leashd.gate.modes import EDIT_TOOLS, PLAN_TOOL

CHAT = "terminal"
WHO = "terminal"  # the approver's name in the audit log
_ANSWERS = {"y": "approve", "yes": "approve", "n": "reject", "no": "reject",
            "s": "approve-similar", "similar": "approve-similar"}  # fmt: skip


class TerminalConnector:
    name = "terminal"

    def __init__(self, engine: Engine, out: TextIO | None = None) -> None:
        self.engine = engine
        self.out = out or sys.stdout
        self._approvals: list[ApprovalRequest] = []
        self._question: asyncio.Future[str] | None = None
        self._streamed = False  # text of the current block already shown by deltas
        self._lines: asyncio.Queue[str | None] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()

    # --- what the engine tells us ---------------------------------------------------------------

    async def send(self, chat: str, text: str, choices: Sequence[tuple[str, str]] = ()) -> None:
        self._say(text)

    async def event(self, chat: str, event: AgentEvent) -> None:
        if isinstance(event, TextDelta):
            self.out.write(event.text)
            self.out.flush()
            self._streamed = True
        elif isinstance(event, Text):
            if not self._streamed:
                self._say(event.text)
            else:
                self._say("")
            self._streamed = False
        elif isinstance(event, ToolStarted):
            self._say(f"🔧 {event.tool}: {event.summary}".rstrip(": "))
        elif isinstance(event, ToolDenied):
            self._say(f"⛔ denied: {event.reason}")
        elif isinstance(event, ModeChanged):
            self._say(f"(plan approved: mode is now {event.mode})")

    async def result(self, chat: str, result: TurnResult) -> None:
        if result.interrupted:
            self._say("⏹ interrupted")
        elif result.error is not None:
            self._say(f"✗ the agent failed: {result.error}")
        self._say(f"— {result_summary(result)}")
        self._prompt()

    async def ask(self, req: ApprovalRequest) -> None:
        self._approvals.append(req)
        details = req.details
        what = req.summary if req.summary.startswith(req.tool) else f"{req.tool}: {req.summary}"
        if req.tool == PLAN_TOOL:
            what = "the agent's plan (approve it before anything is changed)"
        lines = [
            "",
            f"⚠ Approval needed — {what}",
            f"   rule: {details.get('rule') or '-'} ({details.get('reason') or ''})",
        ]
        tool_input = req.tool_input
        if req.tool in (*EDIT_TOOLS, PLAN_TOOL) and isinstance(tool_input, dict):
            body = next((tool_input[k] for k in ("content", "new_string", "plan")
                         if tool_input.get(k)), None)  # fmt: skip
            if isinstance(body, str) and body:
                shown = body if len(body) <= 2000 else body[:2000] + "\n   … (cut for the terminal)"
                lines.append("   " + shown.replace("\n", "\n   "))
        similar = f" / [s]imilar ({req.similar})" if req.similar else ""
        lines.append(f"   [y]es / [n]o{similar} ?")
        self._say("\n".join(lines))

    async def expired(self, req: ApprovalRequest) -> None:
        if req in self._approvals:
            self._approvals.remove(req)
        self._say(f"⌛ approval expired, denied: {req.summary}")

    async def busy(self, chat: str, text: str) -> Busy:
        self._say("A turn is running: [q]ueue this message or [i]nterrupt the turn?")
        answer = await self._ask_line()
        return "interrupt" if answer.strip().lower().startswith("i") else "queue"

    # --- the loop -------------------------------------------------------------------------------

    async def run(self) -> None:
        """Read and act until Ctrl-D or /quit."""
        loop = asyncio.get_running_loop()
        threading.Thread(target=self._read, args=(loop,), daemon=True).start()
        with _on_sigint(loop, self._interrupt):
            self._say("leashd — type a message; /help for commands, Ctrl-C stops a turn, "
                      "Ctrl-D leaves.")  # fmt: skip
            self._prompt()
            while True:
                line = await self._lines.get()
                if line is None:
                    break
                if self._question is not None and not self._question.done():
                    self._question.set_result(line)
                    continue
                if self._approvals:
                    self._answer(line)
                    continue
                if line.strip() in ("/quit", "/exit"):
                    break
                if not line.strip():
                    self._prompt()
                    continue
                # handled as a task: a command or a question must not stop the reading
                task = asyncio.create_task(self.engine.handle(self, CHAT, WHO, line))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
                task.add_done_callback(self._after)

    def _after(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._say(f"✗ {task.exception()!r}")
        if not self.engine.running(CHAT) and not self._approvals:
            self._prompt()

    def _answer(self, line: str) -> None:
        req = self._approvals[0]
        choice = _ANSWERS.get(line.strip().lower())
        if choice is None:
            self._say("   answer y, n" + (" or s" if req.similar else "") + ":")
            return
        press = self.engine.press(req.id, WHO, CHAT, choice)
        self._approvals.pop(0)
        self._say(f"   → {press.message}")

    async def _ask_line(self) -> str:
        self._question = asyncio.get_running_loop().create_future()
        try:
            return await self._question
        finally:
            self._question = None

    def _interrupt(self) -> None:
        if self.engine.running(CHAT):
            self._say("\n(interrupting…)")
            task = asyncio.get_running_loop().create_task(self.engine.cancel(CHAT))
            self._tasks.add(task)  # held until done: the loop keeps only weak references
            task.add_done_callback(self._tasks.discard)
        else:
            self._say("\n(Ctrl-C stops a running turn; Ctrl-D or /quit leaves)")
            self._prompt()

    def _read(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            for line in iter(sys.stdin.readline, ""):
                loop.call_soon_threadsafe(self._lines.put_nowait, line.rstrip("\n"))
        except (OSError, ValueError):
            pass  # the terminal went away (EIO): the same as Ctrl-D
        finally:
            # Always the end-of-input mark: without it a daemon whose terminal was closed
            # would run on for ever, holding the one-daemon lock.
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                loop.call_soon_threadsafe(self._lines.put_nowait, None)

    def _say(self, text: str) -> None:
        if self._streamed and text:
            self.out.write("\n")
            self._streamed = False
        self.out.write(text + "\n")
        self.out.flush()

    def _prompt(self) -> None:
        self.out.write("› ")
        self.out.flush()


@contextlib.contextmanager
def _on_sigint(loop: asyncio.AbstractEventLoop, handler: Callable[[], None]):  # type: ignore[no-untyped-def]
    try:
        loop.add_signal_handler(signal.SIGINT, handler)
        installed = True
    except (NotImplementedError, RuntimeError, ValueError):
        installed = False
    try:
        yield
    finally:
        if installed:
            loop.remove_signal_handler(signal.SIGINT)
