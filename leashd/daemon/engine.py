"""The engine: messages in from any connector, one agent turn at a time per chat, commands
handled here once for every connector, everything remembered in the store.

    connector -> middleware (auth, rate limit) -> Engine.handle -> command | turn -> agent
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import os
import re
import shlex
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import structlog

from leashd import workspaces
from leashd.agent.events import AgentEvent, ModeChanged, TurnResult
from leashd.agent.runner import ClaudeAgent
from leashd.connectors.base import Connector
from leashd.daemon.middleware import Incoming, Middleware, chain
from leashd.daemon.storage import ApprovalRow, MessageRow, SessionRow, Store
from leashd.daemon.task_chat import OFF as TASKS_OFF
from leashd.daemon.task_chat import ChatReporter, cancel_task, task_command, tasks_list
from leashd.gate.approvals import ApprovalCoordinator, ApprovalRequest, Press
from leashd.gate.events import Event
from leashd.gate.gate import Gate, Session
from leashd.gate.modes import MODES
from leashd.git.suite import GitSuite
from leashd.git.suite import Reply as GitReply
from leashd.plural import plural
from leashd.tasks.loop import LoopSettings, after_edit
from leashd.workspaces import Workspace, WorkspaceError

if TYPE_CHECKING:
    from leashd.tasks.orchestrator import Orchestrator

log = structlog.get_logger(__name__)

COMMANDS = {
    "/plan": "plan mode: the agent proposes a plan, you approve it before it edits",
    "/edit": "auto mode: edits inside the project go ahead without asking",
    "/default": "default mode: the policy decides, you approve what it asks about",
    "/dir": "show the approved directories, or switch: /dir N or /dir PATH",
    "/ws": "workspaces: /ws lists them, /ws NAME works in all of one's directories, /ws leave; "
    "/ws add NAME DIR…, /ws remove NAME [DIR…]",
    "/status": "the session: mode, directory, cost so far, what is running",
    "/git": "git here: /git status, branch, checkout, diff, log, add, commit, push, pull, merge",
    "/clear": "start a new conversation",
    "/task": "an unattended task: /task DESCRIPTION runs spec → plan → implement → test → PR",
    "/tasks": "the chat's tasks: phase, time, cost per phase, pull request",
    "/cancel": "stop the running turn (and the chat's task) and drop queued messages",
    "/help": "this list",
}
_MODE_COMMANDS = {"/plan": "plan", "/edit": "auto", "/default": "default"}
_GIT_CHANGES_TREE = frozenset({"checkout", "merge", "pull", "add", "commit", "resolve"})
RESOLVE_PROMPT = (
    "A `git merge` in this repository stopped on conflicts in: {files}. Resolve each conflict: "
    "read both sides and what each branch meant, keep both intents where they can live "
    "together, remove every conflict marker, and `git add` each resolved file. Do not commit "
    "and do not abort the merge: the user reviews your resolution and commits it."
)


# A command word as Telegram defines bot commands: "/" and 1-32 letters, digits or "_", maybe
# "@botname" in groups. Anything else starting with "/" is text (a path: /usr/bin/python).
_COMMAND_WORD = re.compile(r"/([A-Za-z0-9_]{1,32})(?:@[A-Za-z0-9_]+)?")
LOST_CONVERSATION = "The previous conversation could not be found; starting a new one."
WS_USAGE = (
    "/ws lists the workspaces; /ws NAME works in one (all its directories); /ws leave leaves "
    "it; /ws add NAME DIR… [-d DESCRIPTION] makes one or adds to it; /ws remove NAME [DIR…] "
    "removes it or some of its directories."
)
SANDBOX_OFF = (
    "⚠️ The OS sandbox is off (LEASHD_SANDBOX=off): only the policy guards what Bash runs, and "
    "a command it allows runs with all of your user's rights."
)


@dataclass(frozen=True)
class _Queued:
    """A message waiting for its turn; `then`, when given, is awaited after the turn ends
    (the resolution of /git resolve is shown after the agent's turn)."""

    connector: Connector
    text: str
    then: Callable[[], Awaitable[None]] | None = None


@dataclass
class _Chat:
    task: asyncio.Task[None] | None = None
    queue: list[_Queued] = field(default_factory=list)
    session: SessionRow | None = None


class Engine:
    def __init__(
        self,
        gate: Gate,
        agent: ClaudeAgent,
        store: Store,
        *,
        approvals: ApprovalCoordinator | None,
        default_dir: str | None,
        default_mode: str = "default",
        middleware: list[Middleware] | None = None,
        tasks: Orchestrator | None = None,
        loop: LoopSettings | None = None,
        publish: Callable[[str, str, str, str], Awaitable[str]] | None = None,
    ) -> None:
        if default_mode not in MODES:
            raise ValueError(f"unknown mode {default_mode!r}")
        self.gate = gate
        self.agent = agent
        self.store = store
        self.approvals = approvals
        self.default_dir = default_dir
        self.default_mode = default_mode
        self.tasks = tasks  # the task orchestrator, when LEASHD_TASK_ORCHESTRATOR is on
        # the autonomous loop after an /edit turn (LEASHD_AUTONOMOUS_LOOP), and how its pull
        # request is opened: (directory, a name for the work, its description, the PR's body)
        # -> what to tell the user
        self.loop = loop
        self.publish = publish
        self._chats: dict[str, _Chat] = {}
        self._asked: dict[str, Connector] = {}  # request id -> where it was shown
        self._told_sandbox_off: set[int] = set()  # session rows warned (see _warn_sandbox_off)
        self._handle = chain(list(middleware or []), self._dispatch)
        # the user's own git, in the session's directory, audited as theirs
        self.git = GitSuite(lambda: self.gate.approved_dirs, self._audit_git)
        gate.bus.subscribe("approval.requested", self._approval_requested)
        gate.bus.subscribe("approval.resolved", self._approval_resolved)

    # --- in -----------------------------------------------------------------------------------

    async def handle(self, connector: Connector, chat: str, user: str, text: str) -> None:
        """A message from a user: through the middleware, then a command or a turn."""
        await self._handle(Incoming(connector, chat, user, text))

    def press(
        self, request_id: str, who: str, chat: str, choice: str, note: str | None = None
    ) -> Press:
        """A button press or a terminal answer for an approval request; `note`, the reason
        for a rejection, reaches the model."""
        if self.approvals is None:
            return Press(False, "nobody can approve anything here")
        return self.approvals.press(request_id, who, chat, choice, note)

    async def wait_idle(self, chat: str) -> None:
        """Until the chat's turn (and its queue) is done."""
        state = self._chats.get(chat)
        while state is not None and state.task is not None and not state.task.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(state.task)

    def running(self, chat: str) -> bool:
        state = self._chats.get(chat)
        return state is not None and state.task is not None and not state.task.done()

    def queued(self, chat: str) -> int:
        """How many messages wait for the chat's running turn: at a turn's result, whether
        the chat goes idle or straight on to the next (the terminal shows its prompt only
        when idle)."""
        state = self._chats.get(chat)
        return len(state.queue) if state is not None else 0

    async def cancel(self, chat: str) -> bool:
        """Stop the running turn and drop what is queued. Returns whether one was running."""
        state = self._chats.get(chat)
        if state is None:
            return False
        state.queue.clear()
        if state.session is not None and await self.agent.interrupt(str(state.session.id)):
            return True
        return self.running(chat)

    async def stop(self) -> None:
        """Stop every turn; pending approvals end denied (audited by the coordinator as a
        shutdown, before the turns are interrupted)."""
        try:
            if self.approvals is not None:
                self.approvals.close()
        finally:
            for state in self._chats.values():
                state.queue.clear()
                if state.session is not None:
                    await self.agent.interrupt(str(state.session.id))
        tasks = [s.task for s in self._chats.values() if s.task is not None and not s.task.done()]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # --- dispatch -------------------------------------------------------------------------

    async def _dispatch(self, msg: Incoming) -> None:
        text = msg.text.strip()
        if not text:
            return
        word, arg = command_of(text)
        if word is not None:
            if word not in COMMANDS:
                await msg.connector.send(msg.chat, unknown_command(word))
                return
            await self._command(msg.connector, msg.chat, word, arg, msg.user)
            if word not in _MODE_COMMANDS or not arg:
                return
            text = arg  # /plan TEXT: the mode is set, and the agent starts on TEXT in it
        state = self._chats.setdefault(msg.chat, _Chat())
        if state.task is not None and not state.task.done():
            choice = await msg.connector.busy(msg.chat, text)
            state.queue.append(_Queued(msg.connector, text))
            if state.task is None or state.task.done():
                # The turn ended while the user chose (queue or interrupt): nothing would drain
                # the queue any more, so the message runs now (test_e2e_repl found it stuck).
                state.task = asyncio.create_task(self._drain(msg.chat, state))
                return
            if choice == "interrupt" and state.session is not None:
                await self.agent.interrupt(str(state.session.id))
            else:
                await msg.connector.send(msg.chat, "Queued: it runs when this turn ends.")
            return
        state.queue.append(_Queued(msg.connector, text))
        state.task = asyncio.create_task(self._drain(msg.chat, state))

    async def _drain(self, chat: str, state: _Chat) -> None:
        while state.queue:
            item = state.queue.pop(0)
            connector = item.connector
            try:
                await self._turn(connector, chat, state, item.text)
                if item.then is not None:
                    await item.then()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # one failed turn must not stop the chat
                log.exception("turn failed", chat=chat)
                with contextlib.suppress(Exception):
                    await connector.send(chat, f"Something went wrong: {type(exc).__name__}")

    # --- a turn -----------------------------------------------------------------------------

    async def session_for(self, chat: str) -> SessionRow:
        row = await self.store.current_session(chat)
        if row is None:
            return await self.new_session(chat, self._home_dir(), self.default_mode)
        state = self._chats.setdefault(chat, _Chat())
        state.session = row
        return row

    async def new_session(self, chat: str, directory: str, mode: str,
                          workspace: str | None = None,
                          workspace_dirs: tuple[str, ...] = ()) -> SessionRow:  # fmt: skip
        """A new current session for the chat (the old one stays in the store)."""
        row = await self.store.new_session(chat, directory, mode, workspace, workspace_dirs)
        self._chats.setdefault(chat, _Chat()).session = row
        log.info("session_created", chat=chat, session=row.id, directory=directory, mode=mode,
                 workspace=workspace)  # fmt: skip
        return row

    def _home_dir(self) -> str:
        if self.default_dir:
            return self.default_dir
        if not self.gate.approved_dirs:
            raise RuntimeError("no approved directory to work in: run `leashd add-dir DIR`")
        return self.gate.approved_dirs[0]

    async def _turn(self, connector: Connector, chat: str, state: _Chat, text: str) -> None:
        row = await self.session_for(chat)
        started = time.monotonic()
        log.info("request_started", chat=chat, session=row.id, mode=row.mode,
                 connector=connector.name)  # fmt: skip

        def completed(**how: object) -> None:
            ms = round((time.monotonic() - started) * 1000)
            log.info("request_completed", chat=chat, session=row.id, duration_ms=ms, **how)

        try:
            result = await self._converse(connector, chat, state, row, text)
            if self.loop is not None and row.mode == "auto" and result.ok:
                await self._autonomous(connector, chat, state, text)
        except asyncio.CancelledError:
            completed(cost_usd=None, error="cancelled")
            raise
        except Exception as exc:
            completed(cost_usd=None, error=repr(exc))
            raise
        completed(cost_usd=result.cost_usd, error=result.error, interrupted=result.interrupted,
                  input_tokens=result.input_tokens, output_tokens=result.output_tokens)  # fmt: skip

    async def _converse(
        self, connector: Connector, chat: str, state: _Chat, row: SessionRow, text: str
    ) -> TurnResult:
        """The turn itself: the agent run on `text`, remembered in the store and shown."""
        await self._warn_sandbox_off(connector, chat, row)
        try:
            row, session, changed = await self._turn_session(chat, state, row)
        except WorkspaceError as exc:
            # fail closed: a workspace that cannot be used is never worked in with a
            # directory less or more; the turn does not run, and the user is told why
            said = f"Not run: {exc}. /ws leave works without the workspace."
            await connector.send(chat, said)
            return TurnResult("", row.agent_session_id, error=said)
        if changed:
            await connector.send(chat, changed)
        await self.store.add_message(MessageRow(row.id, "user", text))
        mode: str | None = None  # a mode the agent itself switched to during the turn

        def latest(row: SessionRow) -> SessionRow:
            # A command during the turn (/plan, /dir) stored a newer row: build on it, so
            # storing the conversation never puts back what the user just changed.
            newer = state.session
            return newer if newer is not None and newer.id == row.id else row

        async def on_event(event: AgentEvent) -> None:
            nonlocal mode
            if isinstance(event, ModeChanged):
                mode = event.mode
            await connector.event(chat, event)

        async def ask(req: ApprovalRequest) -> None:
            self._asked[req.id] = connector
            await connector.ask(req)

        async def on_conversation(conversation: str) -> None:
            # Stored the moment the agent names it: a turn that then fails, times out or
            # dies with the daemon still leaves the next message continuing it.
            nonlocal row
            row = replace(latest(row), agent_session_id=conversation, agent_cost_usd=0.0)
            try:
                state.session = row = await self.store.update_session(row)
            except Exception as exc:
                # the turn goes on: its end stores the id again, and reports a store that
                # still fails then
                log.error("could not store the agent's conversation", chat=chat, error=repr(exc))

        async def on_lost(conversation: str) -> None:
            # The agent has no transcript of it any more (deleted, another machine): the
            # message goes to a new conversation, and the user must know the old one is gone.
            nonlocal row
            row = replace(latest(row), agent_session_id=None, agent_cost_usd=0.0)
            state.session = row = await self.store.update_session(row)
            try:
                await connector.send(chat, LOST_CONVERSATION)
            except Exception as exc:
                log.warning("could not say the conversation was lost", chat=chat, error=repr(exc))

        result = await self.agent.run(
            session,
            text,
            resume=row.agent_session_id,
            on_event=on_event,
            ask=ask if self.approvals is not None else None,
            on_conversation=on_conversation,
            on_lost=on_lost,
        )
        row = latest(row)
        if mode is not None:
            row = replace(row, mode=mode)
        if result.agent_session_id:
            # the agent's cost counts every turn of its conversation: this turn's is the rise
            same = result.agent_session_id == row.agent_session_id
            before = row.agent_cost_usd if same else 0.0
            if result.cost_usd >= before:
                row = replace(row, agent_cost_usd=result.cost_usd)
                result = replace(result, cost_usd=result.cost_usd - before)
            row = replace(row, agent_session_id=result.agent_session_id)
        state.session = await self.store.update_session(row)
        role = "assistant" if result.error is None else "error"
        await self.store.add_message(
            MessageRow(row.id, role, result.text if result.error is None else result.error,
                       result.cost_usd, result.duration_ms, result.input_tokens,
                       result.output_tokens)
        )  # fmt: skip
        await connector.result(chat, result)
        return result

    async def _turn_session(self, chat: str, state: _Chat, row: SessionRow
                            ) -> tuple[SessionRow, Session, str | None]:  # fmt: skip
        """The gate's session for a turn of `row`, the row as stored after, and a notice for
        the user. A session in a workspace gets the workspace as its file has it now: its
        directories (approved for this session alone) and its context for the agent. A
        change to the file since the session last worked in it is audited before it takes
        effect and said (the notice). Raises WorkspaceError when the workspace cannot be
        used: the file does not load, the workspace or one of its directories is gone, the
        session's own directory is no longer in it, the change cannot be audited."""
        session = Session(str(row.id), chat, row.directory, row.mode)
        if row.workspace is None:
            return row, session, None
        ws, context = await asyncio.to_thread(_workspace_now, row.workspace)
        if not _inside(row.directory, (*self.gate.approved_dirs, *ws.directories)):
            raise WorkspaceError(
                f"this session's directory {row.directory} is no longer in workspace "
                f"{ws.name!r}: /ws {ws.name} starts again in it"
            )
        notice = None
        if ws.directories != row.workspace_dirs:
            self._audit_workspace("workspace_changed", chat, ws, str(row.id),
                                  before=list(row.workspace_dirs))  # fmt: skip
            notice = _changed(ws, row.workspace_dirs)
            row = replace(row, workspace_dirs=ws.directories)
            state.session = row = await self.store.update_session(row)
        return row, replace(session, dirs=ws.directories, context=context), notice

    def _audit_workspace(self, event: str, chat: str, ws: Workspace, session: str | None = None,
                         **more: Any) -> None:  # fmt: skip
        """A session's approved directories change (entered, changed, left): recorded before
        it takes effect, like an approved directory added (Gate.add_dir). Raises
        WorkspaceError when the record cannot be written: nothing is approved unrecorded."""
        fields = {"event": event, "chat": chat, **({"session": session} if session else {}),
                  "workspace": ws.name, "dirs": list(ws.directories), **more}  # fmt: skip
        try:
            self.gate.audit.append("sandbox", fields)
        except Exception as exc:
            log.error("could not audit a workspace change", chat=chat, error=repr(exc))
            raise WorkspaceError(
                f"the audit log cannot be written, so the directories of workspace {ws.name!r} "
                f"are not approved: {exc}"
            ) from None

    async def _warn_sandbox_off(self, connector: Connector, chat: str, row: SessionRow) -> None:
        """With the OS sandbox configured off, the first turn of each session this engine runs
        starts with a warning. Counted per session row and per engine rather than by the
        row's stored conversation: a new session (the first message, /clear, /dir) is told,
        and so is one continued after a restart, since the setting may have changed since its
        conversation began; the turns after are not. Marked only once said: a send that fails
        leaves the turn to run, and the next message tries again."""
        if self.agent.config.sandbox.enforced or row.id in self._told_sandbox_off:
            return
        try:
            await connector.send(chat, SANDBOX_OFF)
        except Exception as exc:
            log.warning("could not say the sandbox is off", chat=chat, error=repr(exc))
            return
        self._told_sandbox_off.add(row.id)

    # --- commands -----------------------------------------------------------------------------

    async def _command(self, connector: Connector, chat: str, word: str, arg: str,
                       user: str = "-") -> None:  # fmt: skip
        if word == "/git":
            await self._git(connector, chat, arg, user)
        elif word in _MODE_COMMANDS:
            row = await self.session_for(chat)
            mode = _MODE_COMMANDS[word]
            self._chats[chat].session = await self.store.update_session(replace(row, mode=mode))
            await connector.send(chat, f"Mode: {mode} — {COMMANDS[word].split(': ', 1)[1]}")
        elif word == "/cancel":
            stopped = await self.cancel(chat)
            task = await cancel_task(self.tasks, chat) if self.tasks is not None else None
            said = f"Task {task.id} cancelled." if task is not None else ""
            if stopped:
                said = f"Cancelled. {said}".strip()
            await connector.send(chat, said or "Nothing is running.")
        elif word in ("/task", "/tasks"):
            await self._task(connector, chat, word, arg)
        elif word == "/clear":
            await self.cancel(chat)
            old = await self.store.current_session(chat)
            directory = old.directory if old else self._home_dir()
            mode = old.mode if old else self.default_mode
            if old is not None and self.approvals is not None:
                self.approvals.clear_session(str(old.id))
            # a new conversation in the same place: the same workspace, if any
            await self.new_session(chat, directory, mode, old.workspace if old else None,
                                   old.workspace_dirs if old else ())  # fmt: skip
            await connector.send(chat, "New conversation started.")
        elif word == "/dir":
            text, choices = await self._dir(chat, arg)
            await connector.send(chat, text, choices)
        elif word == "/ws":
            text, choices = await self._ws(chat, arg)
            await connector.send(chat, text, choices)
        elif word == "/status":
            await connector.send(chat, await self.status(chat))
        else:
            lines = [f"{c} — {d}" for c, d in COMMANDS.items()]
            lines.append("/plan, /edit or /default followed by text: that mode, and the agent "
                         "starts on the text.")  # fmt: skip
            await connector.send(chat, "\n".join(lines))

    async def _autonomous(self, connector: Connector, chat: str, state: _Chat, asked: str) -> None:
        """The autonomous loop after an /edit turn: test, fix, retry; the PR if configured."""
        assert self.loop is not None

        async def turn(prompt: str, seen: Callable[[AgentEvent], Awaitable[None]]) -> TurnResult:
            row = await self.session_for(chat)
            return await self._converse(_Tee(connector, seen), chat, state, row, prompt)

        async def say(text: str) -> None:
            await connector.send(chat, text)

        row = await self.session_for(chat)
        publish = None
        if self.publish is not None:
            open_pr = self.publish

            async def publish(body: str) -> str:
                return await open_pr(row.directory, f"s{row.id}", asked, body)

        await after_edit(row.directory, self.loop, turn, say, publish)

    async def _task(self, connector: Connector, chat: str, word: str, arg: str) -> None:
        if self.tasks is None:
            await connector.send(chat, TASKS_OFF)
            return
        if word == "/tasks":
            ai = self.gate.ai  # the task gates share it, and its breakers (one per task)

            def breaker(task: Any) -> str | None:
                return approver_line(ai.state(f"task:{task.id}")) if ai is not None else None

            await connector.send(chat, await tasks_list(self.tasks, chat, breaker))
            return
        row = await self.session_for(chat)
        said = await task_command(self.tasks, self.reporter(connector, chat), row.directory, arg)
        if said:
            await connector.send(chat, said)

    def reporter(self, connector: Connector, chat: str) -> ChatReporter:
        """Where a task of `chat` reports, and how its calls are put to a human."""

        async def ask(req: ApprovalRequest) -> None:
            self._asked[req.id] = connector
            await connector.ask(req)

        return ChatReporter(connector, chat, ask if self.approvals is not None else None)

    async def recover_tasks(self, connector: Connector) -> int:
        """After a start: the tasks a dead daemon left running go on, each told in its chat."""
        if self.tasks is None:
            return 0
        resumed = await self.tasks.recover(lambda t: self.reporter(connector, t.chat))
        return len(resumed)

    async def _git(self, connector: Connector, chat: str, arg: str, user: str) -> None:
        row = await self.session_for(chat)
        sub = arg.split()[0].lower() if arg.split() else ""
        if self.running(chat) and sub in _GIT_CHANGES_TREE:
            # the agent is working in this tree: a checkout or merge under it would mix the two
            await connector.send(chat, f"A turn is running; /cancel it or wait before /git {sub}.")
            return
        if sub == "resolve":
            await self._git_resolve(connector, chat, row)
            return
        reply = await self._git_for(row).handle(row.directory, arg, who=user,
                                                session=str(row.id), chat=chat)  # fmt: skip
        await self._show_git(connector, chat, reply)

    def _git_for(self, row: SessionRow) -> GitSuite:
        """/git for the session: in a workspace, its directories are the user's to run git
        in too (as the session last worked in them; the user's own action, audited as such)."""
        if not row.workspace_dirs:
            return self.git
        dirs = row.workspace_dirs
        return GitSuite(lambda: (*self.gate.approved_dirs, *dirs), self._audit_git)

    async def _show_git(self, connector: Connector, chat: str, reply: GitReply) -> None:
        await connector.send(chat, reply.text, list(reply.actions))
        if reply.document is not None:
            document = getattr(connector, "document", None)
            if document is not None:
                await document(chat, *reply.document)

    async def _git_resolve(self, connector: Connector, chat: str, row: SessionRow) -> None:
        """AI conflict resolution: an agent turn (under the gate, like any) resolves a stopped
        merge's conflicts and stages them; then the user sees what it staged, and commits,
        retries or aborts."""
        directory, git = row.directory, self._git_for(row)
        conflicts = await git.conflicts(directory)
        if not conflicts:
            await connector.send(chat, "No merge is waiting on conflicts here.")
            return
        names = ", ".join(conflicts)
        await connector.send(chat, f"The agent resolves the conflicts in {names}; you see its "
                                   "resolution before anything is committed.")  # fmt: skip

        async def then() -> None:
            await self._show_git(connector, chat, await git.resolution(directory))

        state = self._chats.setdefault(chat, _Chat())
        state.queue.append(_Queued(connector, RESOLVE_PROMPT.format(files=names), then))
        if state.task is None or state.task.done():
            state.task = asyncio.create_task(self._drain(chat, state))

    def _audit_git(self, fields: dict[str, Any]) -> None:
        try:
            self.gate.audit.append("git", fields)
        except Exception as exc:  # the git ran; its record could not be written: said loudly
            log.error("could not audit the user's git", error=repr(exc), argv=fields.get("argv"))

    async def _dir(self, chat: str, arg: str) -> tuple[str, list[tuple[str, str]]]:
        """The reply to /dir, and the switches it offers as (label, command) choices. In a
        workspace, its directories are listed too, and a switch stays in the workspace."""
        row = await self.session_for(chat)
        dirs = tuple(dict.fromkeys((*self.gate.approved_dirs, *row.workspace_dirs)))
        if not arg:
            shown = [f"{i}. {d}{'  (current)' if d == row.directory else ''}"
                     for i, d in enumerate(dirs, 1)]  # fmt: skip
            if not shown:
                return "None approved.", []
            choices = [(f"{'• ' if d == row.directory else ''}{os.path.basename(d) or d}",
                        f"/dir {i}") for i, d in enumerate(dirs, 1)]  # fmt: skip
            return "Approved directories:\n" + "\n".join(shown), choices
        target: str | None = None
        if arg.isdigit() and 1 <= int(arg) <= len(dirs):
            target = dirs[int(arg) - 1]
        else:
            real = os.path.realpath(os.path.expanduser(arg))
            target = next((d for d in dirs if d == real), None)
        if target is None:
            return f"{arg} is not an approved directory; see /dir", []
        if self.running(chat):
            return "A turn is running; /cancel it or wait before switching directories.", []
        # a new directory is a new conversation: the agent's history belongs to the old one
        await self.new_session(chat, target, row.mode, row.workspace, row.workspace_dirs)
        return f"Working in {target} (new conversation).", []

    # --- workspaces (leashd/workspaces.py) ---------------------------------------------------

    async def _ws(self, chat: str, arg: str) -> tuple[str, list[tuple[str, str]]]:
        """The reply to /ws, and the choices it offers as (label, command) pairs."""
        try:
            words = shlex.split(arg)
        except ValueError as exc:
            return f"Cannot read that: {exc}.\n{WS_USAGE}", []
        row = await self.session_for(chat)
        if not words:
            return await self._ws_list(row)
        sub = words[0].lower()
        if sub == "leave" and len(words) == 1:
            return await self._ws_leave(chat, row)
        if sub in ("add", "remove"):
            return await self._ws_edit(chat, row, sub, words[1:])
        if len(words) == 1:
            return await self._ws_enter(chat, row, words[0])
        return WS_USAGE, []

    async def _ws_list(self, row: SessionRow) -> tuple[str, list[tuple[str, str]]]:
        leave = [(f"↩ Leave {row.workspace}", "/ws leave")] if row.workspace else []
        here = (f"This session works in workspace {row.workspace} (/ws leave leaves it).\n"
                if row.workspace else "")  # fmt: skip
        try:
            spaces = await asyncio.to_thread(workspaces.load)
        except WorkspaceError as exc:
            return f"{here}The workspaces file cannot be used: {exc}", leave
        if not spaces:
            return (f"{here}No workspaces yet: /ws add NAME DIR… makes one (or `leashd ws add` "
                    "on the computer).", leave)  # fmt: skip
        lines, choices = [], []
        for ws in spaces.values():
            about = f" — {ws.description}" if ws.description else ""
            current = "  (this session)" if ws.name == row.workspace else ""
            lines.append(f"• {ws.name}: {', '.join(ws.directories)}{about}{current}")
            if ws.name.lower() not in workspaces.RESERVED:  # a hand-written file's: see add
                mark = "• " if ws.name == row.workspace else ""
                choices.append((f"{mark}{ws.name}", f"/ws {ws.name}"))
        head = f"{here}Workspaces (/ws NAME works in all of one's directories):"
        return "\n".join([head, *lines]), choices + leave

    async def _ws_enter(self, chat: str, row: SessionRow, name: str
                        ) -> tuple[str, list[tuple[str, str]]]:  # fmt: skip
        if self.running(chat):
            return "A turn is running; /cancel it or wait before switching workspaces.", []
        try:
            ws, context = await asyncio.to_thread(_workspace_now, name)
            self._audit_workspace("workspace_entered", chat, ws)
        except WorkspaceError as exc:
            return f"Not switched: {exc}.", []
        # a new place is a new conversation, in the workspace's first directory
        await self.new_session(chat, ws.directories[0], row.mode, ws.name, ws.directories)
        return (f"Working in workspace {ws.name}, in {ws.directories[0]} (new conversation); "
                f"the agent may work in all its directories.\n{context}", [])  # fmt: skip

    async def _ws_leave(self, chat: str, row: SessionRow) -> tuple[str, list[tuple[str, str]]]:
        if row.workspace is None:
            return "This session works in no workspace; /ws lists them.", []
        if self.running(chat):
            return "A turn is running; /cancel it or wait before leaving the workspace.", []
        try:
            stay = _inside(row.directory, self.gate.approved_dirs)
            directory = row.directory if stay else self._home_dir()
        except RuntimeError as exc:
            return f"Not left: {exc}.", []
        gone = Workspace(row.workspace, row.workspace_dirs)
        with contextlib.suppress(WorkspaceError):  # narrower: it may go unrecorded, not wider
            self._audit_workspace("workspace_left", chat, gone, str(row.id))
        await self.new_session(chat, directory, row.mode)
        return f"Left workspace {row.workspace}: working in {directory} (new conversation).", []

    async def _ws_edit(self, chat: str, row: SessionRow, sub: str, words: list[str]
                       ) -> tuple[str, list[tuple[str, str]]]:  # fmt: skip
        """/ws add and /ws remove: the file changed as `leashd ws` changes it (the same
        checks), relative directories taken from the session's directory."""
        description = None
        if sub == "add":
            for flag in ("-d", "--description"):
                if flag in words[:-1]:
                    i = words.index(flag)
                    description, words = words[i + 1], words[:i] + words[i + 2 :]
        if not words or (sub == "add" and len(words) < 2) or words[0].startswith("-"):
            return WS_USAGE, []
        name = words[0]
        dirs = [os.path.join(row.directory, os.path.expanduser(d)) for d in words[1:]]
        if name == row.workspace and self.running(chat):
            return ("A turn is running in this workspace; /cancel it or wait before changing "
                    "it.", [])  # fmt: skip
        try:
            if sub == "add":
                left: Workspace | None = await asyncio.to_thread(
                    workspaces.add, name, dirs, description
                )
            else:
                left = await asyncio.to_thread(workspaces.remove, name, dirs)
        except WorkspaceError as exc:
            return f"Nothing changed: {exc}.", []
        text = (f"Workspace {name} removed." if left is None else
                f"Workspace {name}: {', '.join(left.directories)}.")  # fmt: skip
        if name != row.workspace:
            return text, []
        if left is None:  # the session's own workspace is gone: it leaves it now
            left_text, _ = await self._ws_leave(chat, row)
            return f"{text}\n{left_text}", []
        return f"{text}\nThis session works in it: the change holds from its next turn.", []

    async def status(self, chat: str) -> str:
        row = await self.session_for(chat)
        cost, tin, tout = await self.store.totals(row.id)
        pending = self.approvals.pending(str(row.id)) if self.approvals else []
        state = self._chats.get(chat)
        queued = len(state.queue) if state else 0
        lines = [
            f"Session {row.id} in {row.directory}",
            *(
                [f"Workspace: {row.workspace} ({', '.join(row.workspace_dirs)})"]
                if row.workspace
                else []
            ),
            f"Mode: {row.mode}",
            f"Turn: {'running' if self.running(chat) else 'idle'}"
            + (f", {queued} queued" if queued else ""),
            f"Cost so far: ${cost:.4f} ({tin} tokens in, {tout} out)",
            f"Waiting for approval: {len(pending)}",
            f"Agent conversation: {row.agent_session_id or '(not started)'}",
            "Sandbox: enforced"
            if self.agent.config.sandbox.enforced
            else "Sandbox: OFF — only the policy guards what Bash runs (LEASHD_SANDBOX=off)",
        ]
        if self.gate.ai is not None:
            lines.append(approver_line(self.gate.breaker_state(Session(str(row.id), chat, ""))))
        return "\n".join(lines)

    # --- approvals into the store --------------------------------------------------------------

    async def _approval_requested(self, event: Event) -> None:
        data = event.data
        session = data.get("session")
        if not (isinstance(session, str) and session.isdigit()) or not data.get("request"):
            return
        await self.store.add_approval(
            ApprovalRow(data["request"], int(session), str(data.get("tool")),
                        str(data.get("summary") or ""))
        )  # fmt: skip

    async def _approval_resolved(self, event: Event) -> None:
        data = event.data
        request = data.get("request")
        if data.get("how") != "expired":  # an expired one is told where it was shown first
            self._asked.pop(str(request), None)
        if request:
            await self.store.resolve_approval(request, str(data.get("how")), data.get("who"))

    async def expired(self, req: ApprovalRequest) -> None:
        """An approval timed out (denied): tell the connector that showed it."""
        connector = self._asked.pop(req.id, None)
        if connector is not None:
            await connector.expired(req)


class _Tee:
    """A connector that also hands the agent's events to `seen` (the loop judges the test
    run by them); everything else goes to the connector as it is."""

    def __init__(self, connector: Connector, seen: Callable[[AgentEvent], Awaitable[None]]):
        self._connector = connector
        self._seen = seen

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connector, name)

    async def event(self, chat: str, event: AgentEvent) -> None:
        await self._seen(event)
        await self._connector.event(chat, event)


def approver_line(breaker: dict[str, Any] | None) -> str:
    """The AI approver's state in one line (`/status`, `/tasks`)."""
    if breaker is None:
        return "AI approver: on (not asked yet)"
    counts = (f"{plural(breaker['approvals_in_window'], 'approval')} in the window, "
              f"{plural(breaker['denials_in_a_row'], 'denial')} in a row")  # fmt: skip
    if breaker["state"] == "tripped":
        return f"AI approver: stood down ({breaker['why']}); a human answers ({counts})"
    return f"AI approver: on ({counts})"


def command_of(text: str) -> tuple[str | None, str]:
    """The command a message starts with (lower case, without @botname) and the text after
    it; (None, text) when it is no command. A first word that is not a command word
    (/usr/bin/python, /tmp/x.log) or names something on disk (/tmp, /etc) is a message."""
    if not text.startswith("/"):
        return None, text
    first, *rest = text.split(maxsplit=1)
    arg = rest[0].strip() if rest else ""
    m = _COMMAND_WORD.fullmatch(first)
    if m is None:
        return None, text
    word = "/" + m.group(1).lower()
    if word not in COMMANDS and os.path.lexists(first):
        return None, text
    return word, arg


def _workspace_now(name: str) -> tuple[Workspace, str]:
    """Workspace `name` as its file has it now, checked (`workspaces.usable`), and what the
    agent is told of it. Reads the file and runs git: called on a thread."""
    ws = workspaces.load().get(name)
    if ws is None:
        raise WorkspaceError(f"there is no workspace {name!r} (/ws lists them)")
    ws = workspaces.usable(ws)
    return ws, workspaces.context(ws)


def _inside(path: str, dirs: Iterable[str]) -> bool:
    real = os.path.realpath(path)
    return any(real == d or real.startswith(d.rstrip("/") + "/") for d in dirs)


def _changed(ws: Workspace, before: tuple[str, ...]) -> str:
    """What the user is told when the workspace's directories changed since the session
    last worked in it (its file edited, a directory's link pointing elsewhere)."""
    gained = [d for d in ws.directories if d not in before]
    lost = [d for d in before if d not in ws.directories]
    parts = ([f"now also {', '.join(gained)}"] if gained else []) + (
        [f"no longer {', '.join(lost)}"] if lost else []
    )
    return (f"Workspace {ws.name} changed since this session last worked in it: "
            f"{'; '.join(parts) or 'its directories are in another order'}.")  # fmt: skip


def unknown_command(word: str) -> str:
    near = difflib.get_close_matches(word, COMMANDS, n=1, cutoff=0.75)
    hint = f"did you mean {near[0]}? " if near else ""
    return f"Unknown command {word}: {hint}/help lists them."


def result_summary(result: TurnResult) -> str:
    """One line about a finished turn: cost, time, tokens, tools."""
    parts = [f"${result.cost_usd:.4f}", f"{result.duration_ms / 1000:.1f} s",
             f"{result.input_tokens}→{result.output_tokens} tokens"]  # fmt: skip
    if result.tools:
        counts = Counter(result.tools)  # in the order first used
        parts.append(", ".join(f"{t} ×{n}" if n > 1 else t for t, n in counts.items()))
    return " · ".join(parts)
