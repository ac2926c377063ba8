"""The Telegram connector: the engine's messages as a chat, approvals as buttons.

A thin shell over the engine: messages go to `Engine.handle` (where the middleware lets in
only the allowed users), button presses to `Engine.press` (where the approval coordinator
checks who pressed, in which chat, and whether the request still waits). The connector
decides how things look: the answer growing by edits at most every throttle interval, a live
tool indicator that ends as a summary, approvals with the whole command, and messages split
at Telegram's limit.

Everything sent goes through the chat's outbox (ordered, retried through outages), so the
agent never waits on Telegram, except an approval, which is not asked until it is shown.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from telegram import (
    BotCommand,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputFile,
    LinkPreviewOptions,
    Message,
    ReplyParameters,
    Update,
)
from telegram.constants import ParseMode
from telegram.error import BadRequest, InvalidToken, NetworkError, RetryAfter, TelegramError
from telegram.ext import Application, CallbackQueryHandler, ContextTypes, MessageHandler, filters

from leashd.agent.events import (
    AgentEvent,
    ModeChanged,
    Notice,
    SandboxBlocked,
    Text,
    TextDelta,
    ToolDenied,
    ToolStarted,
    TurnResult,
)
from leashd.connectors.base import Busy
from leashd.connectors.outbox import Outbox, seconds
from leashd.connectors.telegram_text import (
    ApprovalText,
    approval_text,
    decided_line,
    escape,
    markdown_html,
    split_markdown,
    split_plain,
)
from leashd.daemon.engine import COMMANDS, Engine
from leashd.gate.approvals import ApprovalRequest
from leashd.gate.modes import PLAN_TOOL

log = structlog.get_logger(__name__)

BUSY_WAIT = 120.0  # seconds to choose interrupt or queue; then the message is queued
_CHOICES = {"y": "approve", "n": "reject", "s": "approve-similar"}
_NO_PREVIEW = LinkPreviewOptions(is_disabled=True)
_HOW = {"approve": "approved", "approve-similar": "approved-similar", "reject": "rejected"}


@dataclass
class _Live:
    """The answer of the turn running in a chat, as it is shown."""

    text: str = ""
    separate: bool = False  # the next block starts a new paragraph
    streamed: bool = False  # the current block arrived as deltas
    ids: list[int] = field(default_factory=list)  # the answer's messages
    shown: list[str] = field(default_factory=list)  # what each of them shows
    tools: list[str] = field(default_factory=list)
    tool_line: str = ""
    tool_id: int | None = None
    tool_shown: str = ""
    last_sync: float = 0.0
    queued: bool = False  # a sync is in the outbox and has not started
    timer: asyncio.Task[None] | None = None


@dataclass
class _Asked:
    """An approval message: where it is and what it says, to mark it when it ends."""

    chat: str
    message_id: int
    html: str


class TelegramConnector:
    name = "telegram"

    def __init__(
        self,
        engine: Engine,
        app: Application,  # type: ignore[type-arg]
        *,
        allowed: frozenset[str],
        open_bot: bool = False,
        streaming: bool = True,
        throttle: float = 1.5,
        timeout: float = 300.0,
    ) -> None:
        self.engine = engine
        self.app = app
        self.bot = app.bot
        self.allowed = allowed
        self.open_bot = open_bot
        self.streaming = streaming
        self.throttle = throttle
        self.timeout = timeout  # the approval timeout, to say so in the message
        self._live: dict[str, _Live] = {}
        self._outboxes: dict[str, Outbox] = {}
        self._asked: dict[str, _Asked] = {}  # request id -> its message
        self._by_message: dict[tuple[str, int], str] = {}  # (chat, message id) -> request id
        self._names: dict[str, str] = {}  # request id -> who last pressed, as shown
        self._choices: dict[str, tuple[str, str]] = {}  # button token -> (chat, command)
        self._busy: dict[str, tuple[str, asyncio.Future[Busy]]] = {}  # token -> (chat, answer)
        self._tasks: set[asyncio.Task[Any]] = set()
        app.add_handler(CallbackQueryHandler(self._on_press))
        app.add_handler(MessageHandler(filters.ALL & ~filters.UpdateType.EDITED, self._on_message))

    # --- the engine's side ----------------------------------------------------------------------

    async def send(self, chat: str, text: str, choices: Sequence[tuple[str, str]] = ()) -> None:
        """Plain text, split at Telegram's limit; the choices are buttons on the last part.
        A button carries a token for its command, not the command: it fits in 64 bytes,
        and a button left from before a change (`/dir 2` once meant another directory)
        does nothing rather than something else."""
        if choices:  # a chat's earlier choices go stale: only the newest buttons act
            self._choices = {t: c for t, c in self._choices.items() if c[0] != chat}
        buttons = []
        for label, command in choices:
            token = secrets.token_urlsafe(6)
            self._choices[token] = (chat, command)
            buttons.append(InlineKeyboardButton(label[:60], callback_data=f"do:{token}"))
        markup = InlineKeyboardMarkup([buttons[i : i + 3] for i in range(0, len(buttons), 3)])
        self._flush(chat)
        parts = split_plain(text)
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            self._outbox(chat).submit(
                lambda p=part, m=(markup if buttons and last else None): self._send(
                    chat, escape(p), p, m
                ),
                "send",
            )

    async def document(self, chat: str, name: str, data: bytes) -> None:
        """A file in the chat (long output of /git), in order with the messages."""
        self._flush(chat)
        self._outbox(chat).submit(
            lambda: self.bot.send_document(int(chat), InputFile(data, filename=name)), "send"
        )

    async def event(self, chat: str, event: AgentEvent) -> None:
        live = self._live.setdefault(chat, _Live())
        if isinstance(event, TextDelta):
            if not live.streamed and live.separate:
                live.text += "\n\n"
            live.text += event.text
            live.streamed = True
            if self.streaming:
                self._schedule(chat, live)
        elif isinstance(event, Text):
            if not live.streamed:
                live.text += ("\n\n" if live.separate else "") + event.text
            live.streamed, live.separate = False, True
            if self.streaming:
                self._schedule(chat, live)
        elif isinstance(event, ToolStarted):
            live.tools.append(event.tool)
            live.tool_line = f"🔧 {event.tool}: {event.summary}".rstrip(": ")
            self._schedule(chat, live)
        elif isinstance(event, ToolDenied):
            what = f"{event.tool}: {event.summary}".rstrip(": ")
            await self.send(chat, f"⛔ Denied — {what}\n{event.reason}")
        elif isinstance(event, SandboxBlocked):
            lines = "\n".join(f"• {b}" for b in event.blocked)
            await self.send(
                chat, f"🧱 The sandbox blocked part of — Bash: {event.summary}\n{lines}"
            )
        elif isinstance(event, Notice):
            await self.send(chat, f"⚠️ {event.text}")
        elif isinstance(event, ModeChanged):
            await self.send(chat, f"Plan approved: the mode is now {event.mode}.")

    async def result(self, chat: str, result: TurnResult) -> None:
        live = self._live.pop(chat, None) or _Live()
        if live.timer is not None:
            live.timer.cancel()
        if not live.text.strip() and result.text.strip():
            live.text = result.text  # nothing was streamed: the final text is the answer
        counts = Counter(live.tools or result.tools)
        summary = ", ".join(f"{t} ×{n}" if n > 1 else t for t, n in counts.items())
        live.tool_line = f"🧰 {summary}" if summary else ""
        box = self._outbox(chat)
        box.submit(lambda: self._sync(chat, live), "answer")
        if result.interrupted:
            await self.send(chat, "⏹ Interrupted.")
        elif result.error is not None:
            await self.send(chat, f"✗ The agent failed: {result.error}")
        elif not live.text.strip() and not live.tools:
            await self.send(chat, "(The agent finished without an answer.)")

    async def ask(self, req: ApprovalRequest) -> None:
        """Show the request; returns once it is on the chat (the coordinator bounds the wait
        by the approval's deadline, and a request never shown is denied)."""
        chat = req.chat
        self._flush(chat)
        text = self._approval(req)
        # a plan is sent back rather than rejected: a reply to it says what to change
        no = "✏️ Revise (reply: what to change)" if req.tool == PLAN_TOOL else "❌ Reject"
        buttons = [[InlineKeyboardButton("✅ Approve", callback_data=f"ap:y:{req.id}"),
                    InlineKeyboardButton(no, callback_data=f"ap:n:{req.id}")]]  # fmt: skip
        if req.similar is not None:
            label = f"✅ Approve similar: {req.similar}"
            buttons.append([InlineKeyboardButton(label[:60], callback_data=f"ap:s:{req.id}")])
        markup = InlineKeyboardMarkup(buttons)

        async def show() -> None:
            if req.future.done():  # over before it could be shown (Telegram was down)
                await self._send(chat, f"{text.html}\n\n{self._outcome(req)}", None)
                return
            reply_to = None
            if text.document is not None:
                name, data = text.document
                doc = await self.bot.send_document(
                    int(chat), InputFile(data, filename=name), caption=f"{req.tool}: in full"
                )
                reply_to = ReplyParameters(doc.message_id)
            msg = await self._send(chat, text.html, None, markup, reply_to=reply_to)
            self._asked[req.id] = _Asked(chat, msg.message_id, text.html)
            self._by_message[(chat, msg.message_id)] = req.id
            # However it ends (a press, a reply, expiry, a cancelled turn, the daemon
            # stopping), even while this send was on its way, the message says so.
            req.future.add_done_callback(lambda _: self._ended(req.id, self._outcome(req)))

        await self._outbox(chat).submit(show, "approval")

    async def expired(self, req: ApprovalRequest) -> None:
        """Nothing to do here: the message is marked through the request's own future."""

    def _outcome(self, req: ApprovalRequest) -> str:
        if req.future.cancelled():
            return decided_line("cancelled", None)
        res = req.future.result()
        return decided_line(res.how, self._names.pop(req.id, None) or res.who, res.detail)

    async def busy(self, chat: str, text: str) -> Busy:
        token = secrets.token_urlsafe(9)
        answer: asyncio.Future[Busy] = asyncio.get_running_loop().create_future()
        self._busy[token] = (chat, answer)
        markup = InlineKeyboardMarkup([[
            InlineKeyboardButton("⏹ Interrupt", callback_data=f"bz:i:{token}"),
            InlineKeyboardButton("📥 Queue", callback_data=f"bz:q:{token}"),
        ]])  # fmt: skip
        plain = "A turn is running. Interrupt it for your message, or queue the message?"
        sent = self._outbox(chat).submit(lambda: self._send(chat, plain, plain, markup), "busy")
        try:
            choice: Busy = await asyncio.wait_for(asyncio.shield(answer), BUSY_WAIT)
        except TimeoutError:
            choice = "queue"
        finally:
            self._busy.pop(token, None)
        with contextlib.suppress(Exception):
            msg: Message = await asyncio.wait_for(asyncio.shield(sent), 1)
            done = f"{plain}\n→ {'interrupting' if choice == 'interrupt' else 'queued'}"
            self._outbox(chat).submit(lambda: self._edit(chat, msg.message_id, done, done), "busy")
        return choice

    # --- Telegram's side ------------------------------------------------------------------------

    async def _on_message(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        msg, user, chat = update.effective_message, update.effective_user, update.effective_chat
        if msg is None or user is None or chat is None:
            return
        who, where = str(user.id), str(chat.id)
        if msg.text is None:
            if self._permitted(who):
                await self.send(where, "I read text messages only.")
            return
        text = msg.text
        request = _request_of(msg.reply_to_message, where, self._by_message)
        if request is not None:
            # a text reply to an approval rejects it, with the reply as the reason
            press = self.engine.press(request, who, where, "reject", note=text)
            if press.accepted:  # before the request's callback runs (call_soon), to name them
                self._names[request] = _name(user)
            elif self._permitted(who):
                await self.send(where, press.message)  # a stranger is told nothing
            return
        words = text.split(maxsplit=1)
        if words and words[0].split("@", 1)[0] == "/start":
            text = "/help"
        self._spawn(self.engine.handle(self, where, who, text))

    async def _on_press(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        if query is None:
            return
        who = str(query.from_user.id)
        chat = str(query.message.chat.id) if query.message is not None else ""
        kind, _, rest = (query.data or "").partition(":")
        reply = "This button no longer does anything."
        if kind == "ap":
            code, _, request = rest.partition(":")
            choice = _CHOICES.get(code)
            if choice is not None:
                press = self.engine.press(request, who, chat, choice)
                reply = press.message
                if press.accepted:
                    self._names[request] = _name(query.from_user)
                    reply = _HOW[choice].capitalize().replace("-", ", ")
        elif kind == "bz":
            code, _, token = rest.partition(":")
            waiting = self._busy.get(token)
            if waiting is not None and self._permitted(who) and waiting[0] == chat:
                if not waiting[1].done():
                    waiting[1].set_result("interrupt" if code == "i" else "queue")
                reply = "Interrupting…" if code == "i" else "Queued."
        elif kind == "do" and self._permitted(who):
            choice = self._choices.get(rest)
            if choice is not None and choice[0] == chat:
                self._spawn(self.engine.handle(self, chat, who, choice[1]))
                reply = choice[1]
        with contextlib.suppress(Exception):
            await query.answer(reply[:200])

    # --- showing things -------------------------------------------------------------------------

    def _approval(self, req: ApprovalRequest) -> ApprovalText:
        tool_input = req.tool_input if isinstance(req.tool_input, dict) else {}
        rule, reason = req.details.get("rule"), req.details.get("reason")
        similar = str(req.similar) if req.similar else None
        body: str | None = None
        summary = req.summary
        if req.tool == PLAN_TOOL:
            body, summary = str(tool_input.get("plan") or ""), "The agent's plan"
        elif isinstance(tool_input.get("content"), str):
            body = tool_input["content"]
        elif isinstance(tool_input.get("new_string"), str):
            body = f"− {tool_input.get('old_string', '')}\n+ {tool_input['new_string']}"
        elif isinstance(tool_input.get("edits"), list):
            body = "\n".join(f"− {e.get('old_string', '')}\n+ {e.get('new_string', '')}"
                             for e in tool_input["edits"] if isinstance(e, dict))  # fmt: skip
        if req.tool != "Bash" and summary.startswith(req.tool + " "):
            summary = summary[len(req.tool) + 1 :]
        # the request's own wait: a policy can set it (strict waits 120 s)
        return approval_text(req.tool, summary, body, rule, reason, similar, req.timeout)

    def _ended(self, request: str, line: str) -> None:
        """Mark an approval message with how it ended; its buttons go."""
        asked = self._asked.pop(request, None)
        if asked is None:
            return
        self._by_message.pop((asked.chat, asked.message_id), None)
        html = f"{asked.html}\n\n{line}"
        self._outbox(asked.chat).submit(
            lambda: self._edit(asked.chat, asked.message_id, html, None), "approval ended"
        )

    def _schedule(self, chat: str, live: _Live) -> None:
        """An edit of the live answer, no sooner than `throttle` after the last one. One at
        a time: while one waits (Telegram down), it will show the latest text anyway."""
        if live.queued or (live.timer is not None and not live.timer.done()):
            return
        delay = max(0.0, live.last_sync + self.throttle - time.monotonic())

        async def later() -> None:
            await asyncio.sleep(delay)
            self._submit_sync(chat, live)

        live.timer = asyncio.get_running_loop().create_task(later())

    def _flush(self, chat: str) -> None:
        """Before something else is said in the chat, the answer so far is shown."""
        live = self._live.get(chat)
        if live is None:
            return
        if live.timer is not None and not live.timer.done():
            live.timer.cancel()
        self._submit_sync(chat, live)

    def _submit_sync(self, chat: str, live: _Live) -> None:
        if not live.queued:
            live.queued = True
            self._outbox(chat).submit(lambda: self._sync(chat, live), "stream")

    async def _sync(self, chat: str, live: _Live) -> None:
        """Make the chat show `live`: the answer's chunks (edited, or sent when new), then
        the tool line."""
        live.queued = False  # from here on, a change needs another sync
        live.last_sync = time.monotonic()
        chunks = split_markdown(live.text) if live.text.strip() else []
        for i, chunk in enumerate(chunks):
            html = markdown_html(chunk)
            if i < len(live.ids):
                if live.shown[i] != html:
                    await self._edit(chat, live.ids[i], html, chunk)
                    live.shown[i] = html
            else:
                msg = await self._send(chat, html, chunk)
                live.ids.append(msg.message_id)
                live.shown.append(html)
        line = live.tool_line
        if line and line != live.tool_shown:
            if live.tool_id is None:
                live.tool_id = (await self._send(chat, escape(line), line)).message_id
            else:
                await self._edit(chat, live.tool_id, escape(line), line)
            live.tool_shown = line

    async def _send(
        self, chat: str, html: str, plain: str | None, markup: Any = None, *,
        reply_to: ReplyParameters | None = None,
    ) -> Message:  # fmt: skip
        """Send as HTML; if Telegram cannot parse it, as plain text (never lost)."""
        try:
            return await self.bot.send_message(
                int(chat), html, parse_mode=ParseMode.HTML, reply_markup=markup,
                reply_parameters=reply_to, link_preview_options=_NO_PREVIEW,
            )  # fmt: skip
        except BadRequest as exc:
            if plain is None or "parse" not in str(exc).lower():
                raise
            return await self.bot.send_message(
                int(chat), plain, reply_markup=markup, reply_parameters=reply_to
            )

    async def _edit(self, chat: str, message_id: int, html: str, plain: str | None) -> None:
        """Edit as HTML (plain text if it cannot be parsed, unless `plain` is None); an edit
        that changes nothing is done already. The edit carries no buttons: any go."""
        try:
            await self.bot.edit_message_text(
                html, chat_id=int(chat), message_id=message_id, parse_mode=ParseMode.HTML,
                link_preview_options=_NO_PREVIEW,
            )  # fmt: skip
        except BadRequest as exc:
            why = str(exc).lower()
            if "not modified" in why:
                return
            if plain is None or "parse" not in why:
                raise
            await self.bot.edit_message_text(plain, chat_id=int(chat), message_id=message_id)

    # --- inside ---------------------------------------------------------------------------------

    def _permitted(self, who: str) -> bool:
        return who in self.allowed if self.allowed else self.open_bot

    def _outbox(self, chat: str) -> Outbox:
        box = self._outboxes.get(chat)
        if box is None:
            box = self._outboxes[chat] = Outbox(chat)
        return box

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_log_failure)

    async def commands(self) -> None:
        """The command menu Telegram shows (`setMyCommands`)."""
        menu = [BotCommand("start", "what leashd can do")]
        menu += [BotCommand(c.lstrip("/"), d[:256]) for c, d in COMMANDS.items() if c != "/help"]
        menu.append(BotCommand("help", COMMANDS["/help"]))
        await self.bot.set_my_commands(menu)

    async def close(self, timeout: float = 5.0) -> None:
        """The daemon stops: open approval messages say so, and what is queued goes out for
        up to `timeout` seconds."""
        for request in list(self._asked):
            self._ended(request, decided_line("shutdown", None))
        for task in list(self._tasks):
            task.cancel()
        for live in self._live.values():
            if live.timer is not None:
                live.timer.cancel()
        deadline = time.monotonic() + timeout
        for box in list(self._outboxes.values()):
            await box.close(max(0.1, deadline - time.monotonic()))


POLL_SECONDS = 30  # a long poll's wait: Telegram answers at once when something arrives


def application(token: str, base_url: str | None = None) -> Application:  # type: ignore[type-arg]
    """The python-telegram-bot Application, pointed at `base_url` when set (a self-hosted
    Bot API server, or the tests' fake): `http://host:port` or `http://host:port/bot`."""
    builder = Application.builder().token(token)
    if base_url:
        root = base_url.rstrip("/").removesuffix("/bot")
        builder = builder.base_url(f"{root}/bot").base_file_url(f"{root}/file/bot")
    return builder.build()


async def connect(app: Application, stopping: asyncio.Event) -> bool:  # type: ignore[type-arg]
    """Reach Telegram (getMe), waiting with a growing pause while it is unreachable, then
    poll. Returns False if told to stop first; InvalidToken goes to the caller. Once
    polling, python-telegram-bot retries by itself (with backoff, honouring 429s)."""
    pause = 1.0
    while True:
        try:
            await app.initialize()
            break
        except (InvalidToken, BadRequest):
            raise  # the token, or the request, is refused: waiting changes nothing
        except RetryAfter as exc:
            await asyncio.sleep(seconds(exc) + 0.25)
            continue
        except NetworkError as exc:
            log.warning("telegram unreachable at start; retrying", error=str(exc), pause=pause)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), pause)
                return False
            pause = min(30.0, pause * 2)
    await app.start()
    assert app.updater is not None
    await app.updater.start_polling(
        poll_interval=0,
        timeout=POLL_SECONDS,
        bootstrap_retries=-1,
        allowed_updates=["message", "callback_query"],
        error_callback=_polling_error,
    )
    return True


WATCH_SECONDS = 60.0


async def watch(app: Application, stopping: asyncio.Event) -> None:  # type: ignore[type-arg]
    """Until `stopping`: every minute, check that Telegram still takes the token. A token
    revoked while polling ends python-telegram-bot's polling without a word; the daemon
    would run on, deaf. InvalidToken goes to the caller, which exits."""
    last_check = time.monotonic()
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), 1.0)
            return
        ended = _polling_ended(app)
        if ended is not None:
            raise ended
        if time.monotonic() - last_check < WATCH_SECONDS:
            continue
        last_check = time.monotonic()
        try:
            await app.bot.get_me()
        except InvalidToken:
            raise
        except TelegramError as exc:  # unreachable for now: polling retries by itself
            log.info("telegram check failed; will look again", error=str(exc))


def _polling_ended(app: Application) -> BaseException | None:  # type: ignore[type-arg]
    """How python-telegram-bot's polling task ended, if it did. The task is private to it:
    looked up defensively, and the getMe check above stands on its own without it."""
    task = getattr(app.updater, "_Updater__polling_task", None)
    if isinstance(task, asyncio.Task) and task.done() and not task.cancelled():
        return task.exception() or RuntimeError("polling Telegram stopped")
    return None


async def stop_updates(app: Application) -> None:  # type: ignore[type-arg]
    """No new updates fetched, and none of those fetched handled any more."""
    with contextlib.suppress(Exception):
        if app.updater is not None and app.updater.running:
            await app.updater.stop()
    with contextlib.suppress(Exception):
        if app.running:
            await app.stop()


async def disconnect(app: Application) -> None:  # type: ignore[type-arg]
    await stop_updates(app)
    with contextlib.suppress(Exception):
        await app.shutdown()


def _polling_error(exc: Exception) -> None:
    log.warning("telegram unreachable while polling; retrying", error=str(exc))


def _request_of(
    replied: Message | None, chat: str, known: dict[tuple[str, int], str]
) -> str | None:
    """The approval request a reply answers: by the message it replies to, or by that
    message's buttons (the reply can arrive before the send that showed it has returned)."""
    if replied is None:
        return None
    request = known.get((chat, replied.message_id))
    markup = replied.reply_markup
    if request is None and markup is not None:
        for row in markup.inline_keyboard:
            for button in row:
                data = button.callback_data
                if isinstance(data, str) and data.startswith("ap:"):
                    return data.split(":", 2)[2]
    return request


def _name(user: Any) -> str:
    name = user.full_name or str(user.id)
    return f"{name} (@{user.username})" if user.username else f"{name} ({user.id})"


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("handling a Telegram update failed", error=repr(task.exception()))
