"""The terminal REPL, when no bot token is set: a prompt, the answer, tool indicators, and
approvals answered right here.

What the screen says is what a line typed now will do:

- The prompt `› ` is shown only when the chat is idle (the engine runs no turn) and nothing
  is asked: a line typed at it is a new message or a command. A turn's answer is shown with
  its summary line once the turn is over, then the prompt; so the answer is never on screen
  while typing would still land in the turn. (The answer is shown in whole blocks, never
  streamed: streamed text is an answer on screen before its turn is over.)
- One question at a time is open, the last one shown, and a line answers it. Approvals come
  first: one that arrives while "queue or interrupt?" is open sets that question aside and
  it is asked again once no approval is waiting; a second approval waits for the first to be
  answered. A question that ends without an answer (expired, the turn stopped, the turn the
  queue question was about ended) says so, and the next question or the prompt follows.

On a terminal, the line being typed is the last thing on the screen, the prompt in front of
it when there is one (leashd/connectors/terminal_line.py): what arrives while someone types
or sits at the prompt (a task's progress, a notice) is printed above that line, and the line
is drawn again under it, with what was typed so far and the cursor where it was; a notice
leaves no empty prompt behind. Piped, a reader thread turns stdin into lines on the event
loop, and the output is plain text (a notice at the prompt is printed under it, and the
prompt again under the notice).

Ctrl-C interrupts the running turn, not the daemon; Ctrl-D or /quit leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TextIO

from leashd.agent.events import (
    AgentEvent,
    ModeChanged,
    Notice,
    SandboxBlocked,
    Text,
    ToolDenied,
    ToolStarted,
    TurnResult,
)
from leashd.connectors.base import Busy
from leashd.connectors.terminal_line import InputLine
from leashd.daemon.engine import Engine, result_summary
from leashd.gate.approvals import ApprovalRequest, Resolution
from leashd.gate.modes import EDIT_TOOLS, PLAN_TOOL

CHAT = "terminal"
WHO = "terminal"  # the approver's name in the audit log
PROMPT = "› "
_ANSWERS = {"y": "approve", "yes": "approve", "n": "reject", "no": "reject",
            "s": "approve-similar", "similar": "approve-similar"}  # fmt: skip
_CHOICES: dict[str, Busy] = {"q": "queue", "queue": "queue", "i": "interrupt",
                             "interrupt": "interrupt"}  # fmt: skip
_ENDED = {"cancelled": "the turn was stopped", "shutdown": "leashd is stopping"}


@dataclass(eq=False)
class _QueueOrInterrupt:
    """The open "a turn is running: queue or interrupt?" question about one message."""

    message: str
    answer: asyncio.Future[Busy] = field(repr=False)


_Question = ApprovalRequest | _QueueOrInterrupt


class TerminalConnector:
    name = "terminal"

    def __init__(self, engine: Engine, out: TextIO | None = None) -> None:
        self.engine = engine
        self.out = out or sys.stdout
        self._approvals: list[ApprovalRequest] = []  # open, oldest first: the first is asked
        self._choice: _QueueOrInterrupt | None = None
        self._shown: _Question | None = None  # the question on screen, which a line answers
        self._held: list[str] = []  # the turn's latest text, shown with what comes after it
        self._at_prompt = False  # the prompt is the last thing on screen
        self._input: InputLine | None = None  # the line being typed, on a terminal
        self._watch: asyncio.Task[None] | None = None  # until the chat is idle again
        self._lines: asyncio.Queue[str | None] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()

    # --- what the engine tells us ---------------------------------------------------------------

    async def send(self, chat: str, text: str, choices: Sequence[tuple[str, str]] = ()) -> None:
        self._say(text)
        self._settle()  # a notice while idle (a reload) ends with the prompt again

    async def document(self, chat: str, name: str, data: bytes) -> None:
        self._say(f"── {name} ──\n{data.decode('utf-8', 'replace')}")
        self._settle()

    async def event(self, chat: str, event: AgentEvent) -> None:
        self._watch_turn()
        if isinstance(event, Text):
            # Held until something follows: the last block is the answer, shown only once
            # the turn is over. (TextDelta, the streamed pieces, is not shown at all.)
            self._flush()
            self._held.append(event.text)
        elif isinstance(event, ToolStarted):
            self._say(f"🔧 {event.tool}: {event.summary}".rstrip(": "))
        elif isinstance(event, ToolDenied):
            self._say(f"⛔ denied: {event.reason}")
        elif isinstance(event, SandboxBlocked):
            self._say("🧱 the sandbox blocked: " + "; ".join(event.blocked))
        elif isinstance(event, Notice):
            self._say(f"⚠ {event.text}")
        elif isinstance(event, ModeChanged):
            self._say(f"(plan approved: mode is now {event.mode})")

    async def result(self, chat: str, result: TurnResult) -> None:
        if result.interrupted:
            self._held.append("⏹ interrupted")
        elif result.error is not None:
            self._held.append(f"✗ the agent failed: {result.error}")
        self._held.append(f"— {result_summary(result)}")
        if self.engine.queued(chat):
            self._flush()  # the next message's turn follows at once: the chat stays busy
        self._watch_turn()

    async def ask(self, req: ApprovalRequest) -> None:
        self._watch_turn()
        self._approvals.append(req)
        # However it ends without an answer typed here (expired, the turn stopped, leashd
        # stopping), the screen says so and the next question is asked.
        req.future.add_done_callback(lambda _: self._ended(req))
        if len(self._approvals) > 1:
            self._say("   (another approval is waiting: it is asked when this one is answered)")
        self._ask_next()

    async def expired(self, req: ApprovalRequest) -> None:
        self._ended(req)

    async def busy(self, chat: str, text: str) -> Busy:
        choice = _QueueOrInterrupt(text, asyncio.get_running_loop().create_future())
        self._choice = choice
        self._ask_next()
        self._watch_turn()
        try:
            return await choice.answer
        finally:
            if self._choice is choice:
                self._choice = None
                self._ask_next()

    # --- the loop -------------------------------------------------------------------------------

    async def run(self, *, read_stdin: bool = True) -> None:
        """Read and act until Ctrl-D or /quit. Without `read_stdin`, lines come only through
        `typed` (tests type there)."""
        loop = asyncio.get_running_loop()
        if read_stdin:
            self._input = InputLine.on_terminal(sys.stdin, self.out, self.typed)
            if self._input is None:
                threading.Thread(target=self._read, args=(loop, sys.stdin), daemon=True).start()
        with _on_sigint(loop, self._interrupt):
            try:
                if self._input is not None:
                    self._input.open(loop)
                self._say("leashd — type a message; /help for commands, Ctrl-C stops a turn, "
                          "Ctrl-D leaves.")  # fmt: skip
                self._prompt()
                while True:
                    line = await self._lines.get()
                    if line is None or not self._line(line):
                        break
            finally:
                self._flush()
                if self._input is not None:
                    # the terminal as it was; what is said after this is plain text
                    self._input.close()
                    self._input = None
                    self._at_prompt = False

    def typed(self, line: str | None) -> None:
        """A line the user typed (None: the end of input). Call it on the event loop."""
        self._lines.put_nowait(line)

    def _line(self, line: str) -> bool:
        """Act on one line; False to leave."""
        self._unprompt()  # the line and its newline are on screen (echoed, or left there)
        shown = self._shown
        if isinstance(shown, ApprovalRequest):
            self._answer(shown, line)
            return True
        if shown is not None:
            self._choose(shown, line)
            return True
        if line.strip() in ("/quit", "/exit"):
            return False
        if not line.strip():
            self._prompt()
            return True
        # handled as a task: a command or a question must not stop the reading
        task = asyncio.create_task(self.engine.handle(self, CHAT, WHO, line))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(self._after)
        return True

    def _after(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._say(f"✗ {task.exception()!r}")
        self._watch_turn()
        self._settle()

    # --- questions ------------------------------------------------------------------------------

    def _ask_next(self) -> None:
        """Show the question a line now answers, if it is not the one on screen: the oldest
        approval, else "queue or interrupt?"."""
        nxt: _Question | None = self._approvals[0] if self._approvals else self._choice
        if nxt is self._shown:
            return
        if nxt is not None and self._shown is not None and self._shown is self._choice:
            self._say("   (the question above is set aside: it is asked again after this)")
        self._shown = nxt
        if isinstance(nxt, ApprovalRequest):
            self._show_approval(nxt)
        elif nxt is not None:
            self._say(f"A turn is running: [q]ueue {_quote(nxt.message)} or [i]nterrupt the "
                      "turn?")  # fmt: skip

    def _show_approval(self, req: ApprovalRequest) -> None:
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

    def _answer(self, req: ApprovalRequest, line: str) -> None:
        choice = _ANSWERS.get(line.strip().lower())
        if choice is None:
            self._say("   answer y, n" + (" or s" if req.similar else "") + ":")
            return
        # Out of the list first: the request's end (its future's callback) is then known to
        # be this answer, not something to announce.
        self._approvals.remove(req)
        self._shown = None
        press = self.engine.press(req.id, WHO, CHAT, choice)
        self._say(f"   → {press.message}")
        self._ask_next()

    def _ended(self, req: ApprovalRequest) -> None:
        """The request ended without an answer typed here (or it was answered: then it is no
        longer in the list, and there is nothing to say)."""
        if req not in self._approvals:
            return
        self._approvals.remove(req)
        if self._shown is req:
            self._shown = None
        how = _how(req)
        if how == "expired":
            self._say(f"⌛ approval expired, denied: {req.summary}")
        else:
            self._say(f"   (no longer waiting: {req.summary} — {_ENDED.get(how, how)})")
        self._ask_next()
        self._settle()

    def _choose(self, choice: _QueueOrInterrupt, line: str) -> None:
        answer = _CHOICES.get(line.strip().lower())
        if answer is None:
            self._say("   answer q or i:")
            return
        self._choice = None
        self._shown = None
        choice.answer.set_result(answer)
        self._ask_next()

    # --- the end of a turn ----------------------------------------------------------------------

    def _watch_turn(self) -> None:
        """While the chat runs a turn, one task waits for its end, to show what is held and
        then the prompt."""
        if (self._watch is None or self._watch.done()) and self.engine.running(CHAT):
            self._watch = asyncio.get_running_loop().create_task(self._until_idle())

    async def _until_idle(self) -> None:
        await self.engine.wait_idle(CHAT)
        # Not running now (wait_idle returned in this step): what is shown from here on is
        # shown to someone whose next line starts a new turn.
        choice = self._choice
        if choice is not None and not choice.answer.done():
            # The turn it asked about is over: there is nothing left to choose, and the
            # message goes now. Said, so a late "q" is not taken for an answer unawares.
            self._choice = None
            if self._shown is choice:
                self._shown = None
            self._say(f"(that turn is over: {_quote(choice.message)} goes now)")
            choice.answer.set_result("queue")
            self._ask_next()
            return  # the message's own turn starts; its watch shows the prompt after it
        self._settle()  # the answer, its summary and the prompt, in one write
        self._flush()  # or the answer under a question still open

    def _settle(self) -> None:
        """The prompt, if the chat is idle and nothing is asked."""
        if self._shown is None and not self.engine.running(CHAT):
            self._prompt()

    # --- output ---------------------------------------------------------------------------------

    def _interrupt(self) -> None:
        # Piped, the terminal echoed ^C where the cursor was: the next line starts below it.
        # On a terminal nothing was echoed; the line being typed stays as it is.
        nl = "" if self._input is not None else "\n"
        self._unprompt()
        if self.engine.running(CHAT):
            self._say(nl + "(interrupting…)")
            task = asyncio.get_running_loop().create_task(self.engine.cancel(CHAT))
            self._tasks.add(task)  # held until done: the loop keeps only weak references
            task.add_done_callback(self._tasks.discard)
        else:
            self._say(nl + "(Ctrl-C stops a running turn; Ctrl-D or /quit leaves)")
            self._settle()

    def _read(self, loop: asyncio.AbstractEventLoop, stdin: TextIO) -> None:
        try:
            for line in iter(stdin.readline, ""):
                loop.call_soon_threadsafe(self.typed, line.rstrip("\n"))
        except (OSError, ValueError):
            pass  # the terminal went away (EIO): the same as Ctrl-D
        finally:
            # Always the end-of-input mark: without it a daemon whose terminal was closed
            # would run on for ever, holding the one-daemon lock.
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                loop.call_soon_threadsafe(self.typed, None)

    def _flush(self, then: str = "") -> None:
        """What is held, and `then`, in one write: the screen never shows half of it."""
        held, self._held = self._held, []
        if held or then:
            self._write("".join(t + "\n" for t in held) + then)

    def _say(self, text: str) -> None:
        self._flush()
        self._write(text + "\n")

    def _write(self, text: str) -> None:
        """What is written takes the prompt's place: the prompt comes back (`_settle`) only
        if the chat is still idle and nothing is asked."""
        if self._input is not None:
            # above the line being typed, which is drawn again under it once this step of
            # the loop is over: with the prompt if the step ended with `_prompt`
            self._unprompt()
            self._input.write(text)
            return
        if self._at_prompt:
            text = "\n" + text  # a notice under an untouched prompt starts a line of its own
            self._at_prompt = False
        self.out.write(text)
        self.out.flush()

    def _prompt(self) -> None:
        if not self._at_prompt:
            if self._input is None:
                self._flush(PROMPT)
            else:
                self._flush()
                self._input.set_prompt(PROMPT)
            self._at_prompt = True

    def _unprompt(self) -> None:
        self._at_prompt = False
        if self._input is not None:
            self._input.set_prompt("")


def _quote(message: str) -> str:
    line = " ".join(message.split())
    return f'"{line if len(line) <= 60 else line[:59] + "…"}"'


def _how(req: ApprovalRequest) -> str:
    if req.future.done() and not req.future.cancelled():
        resolution: Resolution = req.future.result()
        return resolution.how
    return "expired"  # told by the engine before the future was seen done


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
