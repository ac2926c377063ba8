"""Edge cases of the Telegram connector, without the network. A stub bot (the few
Bot methods the connector calls) records what would go to Telegram; the approval
coordinator and the audit log are the real ones.

Found in review: each test is named for the right behaviour, and its docstring tells the
failure it guards against, as it was before the fix."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from telegram.error import BadRequest, NetworkError

from leashd.agent.events import ToolDenied, TurnResult
from leashd.connectors import outbox as outbox_mod
from leashd.connectors.telegram import TelegramConnector
from leashd.connectors.telegram_text import LIMIT, split_markdown, utf16_len
from leashd.gate.approvals import ApprovalCoordinator
from leashd.gate.audit import AuditLog

CHAT = "4242"


class StubBot:
    """send_message / edit_message_text as Telegram would take them: refused over 4,096
    characters; `hold` keeps sends waiting, `down` fails them as a network error."""

    def __init__(self) -> None:
        self.sent: list[dict] = []
        self.edits: list[dict] = []
        self.hold = asyncio.Event()
        self.hold.set()
        self.down = False
        self.calls = 0

    async def send_message(self, chat_id, text, reply_markup=None, **kw):
        self.calls += 1
        await self.hold.wait()
        if self.down:
            raise NetworkError("Bad Gateway")
        if len(text) > LIMIT:  # markup-free text here: its length is what Telegram counts
            raise BadRequest("Message is too long")
        msg = SimpleNamespace(message_id=len(self.sent) + 1)
        self.sent.append({"text": text, "markup": reply_markup, "id": msg.message_id})
        return msg

    async def edit_message_text(self, text, chat_id, message_id, **kw):
        if self.down:
            raise NetworkError("Bad Gateway")
        self.edits.append({"id": message_id, "text": text})

    async def send_document(self, *a, **kw):  # pragma: no cover - not used here
        raise AssertionError


class StubApp:
    def __init__(self) -> None:
        self.bot = StubBot()

    def add_handler(self, handler) -> None:
        pass


class StubEngine:
    def __init__(self, coord: ApprovalCoordinator) -> None:
        self.coord = coord

    def press(self, request, who, chat, choice, note=None):
        return self.coord.press(request, who, chat, choice, note)


@pytest.fixture(autouse=True)
def quick(monkeypatch):
    monkeypatch.setattr(outbox_mod, "MAX_PAUSE", 0.05)


@pytest.fixture
def audit(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl", fsync="never")
    yield log
    log.close()


def decide(evaluator, command: str):
    return evaluator.evaluate("Bash", {"command": command})


def press_update(who: int, chat: str, data: str):
    answered: list[str] = []

    async def answer(text=None, **kw):
        answered.append(text)

    user = SimpleNamespace(id=who, full_name="Owner", username=None)
    query = SimpleNamespace(
        from_user=user, message=SimpleNamespace(chat=SimpleNamespace(id=int(chat))),
        data=data, answer=answer,
    )  # fmt: skip
    return SimpleNamespace(callback_query=query), answered


async def _until(cond, timeout=5.0):
    for _ in range(int(timeout / 0.01)):
        if cond():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never held")


async def ask_git_push(audit, evaluator, chat):  # type: ignore[no-untyped-def]
    """A connector asked to approve `git push` in `chat`, once its message is sent."""
    coord = ApprovalCoordinator({CHAT}, 30, audit)
    app = StubApp()
    conn = TelegramConnector(StubEngine(coord), app, allowed=frozenset({CHAT}))
    asking = asyncio.create_task(
        coord.request("s", chat, "Bash", "git push", decide(evaluator, "git push"), ask=conn.ask)
    )
    await _until(lambda: app.bot.sent)
    return coord, app, conn, asking, app.bot.sent[0]


def test_a_press_before_the_approval_send_returns_still_marks_the_message(evaluator, audit):
    """The owner approves (or rejects by reply) in the moment between Telegram storing the
    approval message and sendMessage returning to the daemon (the flaky
    test_a_reply_to_an_approval_rejects_it_with_that_reason is this race): `_ended` finds no
    `_asked` entry yet and does nothing; then `show` registers the message, which keeps its
    buttons, and at shutdown it is marked "Denied: the daemon stopped" although it was
    approved."""

    async def main():
        coord = ApprovalCoordinator({CHAT}, 30, audit)
        app = StubApp()
        conn = TelegramConnector(StubEngine(coord), app, allowed=frozenset({CHAT}))
        app.bot.hold.clear()  # the sendMessage is on its way
        asking = asyncio.create_task(
            coord.request(
                "s", CHAT, "Bash", "git push", decide(evaluator, "git push"), ask=conn.ask
            )
        )
        await _until(lambda: app.bot.calls == 1)
        req = coord.pending()[0]
        update, answered = press_update(int(CHAT), CHAT, f"ap:y:{req.id}")
        await conn._on_press(update, None)  # Telegram delivered the press first
        assert answered == ["Approved"]
        app.bot.hold.set()  # ... and now the send returns
        _, result = await asyncio.wait_for(asyncio.shield(asking), 5)
        assert result.approved
        await asyncio.sleep(0.2)
        ended_edits = [e for e in app.bot.edits if "Approved" in e["text"]]
        await conn.close(1)
        shutdown = [e for e in app.bot.edits if "daemon stopped" in e["text"]]
        return ended_edits, shutdown

    ended_edits, shutdown = asyncio.run(main())
    assert ended_edits, "the approved request's message never says it was approved"
    assert not shutdown, "an approved request's message was marked 'the daemon stopped'"


def test_an_approval_that_ended_while_telegram_was_down_is_shown_ended(evaluator, audit):
    """Telegram is down while the approval is being sent; the deadline passes (the request
    is denied, `expired` finds nothing to mark); Telegram comes back and the outbox, still
    retrying the send, shows the approval with Approve/Reject buttons for a request that is
    already over. Docs: "its message says so once Telegram is reachable"."""

    async def main():
        coord = ApprovalCoordinator({CHAT}, 0.5, audit)
        app = StubApp()
        conn = TelegramConnector(StubEngine(coord), app, allowed=frozenset({CHAT}))

        async def expired(req):
            await conn.expired(req)

        coord.on_expired = expired
        app.bot.down = True
        _, result = await coord.request(
            "s", CHAT, "Bash", "git push", decide(evaluator, "git push"), ask=conn.ask
        )
        assert result.how == "expired"
        await asyncio.sleep(0.1)
        app.bot.down = False  # Telegram is back
        await _until(lambda: app.bot.sent)
        await asyncio.sleep(0.3)
        shown = app.bot.sent[0]
        marked = [e for e in app.bot.edits if e["id"] == shown["id"]]
        await conn.close(1)
        return shown, marked

    shown, marked = asyncio.run(main())
    # shown once Telegram is back, without buttons, saying how it ended
    assert shown["markup"] is None and not marked
    assert "Expired" in shown["text"]


def test_a_long_rejection_reason_still_fits_the_decided_message(evaluator, audit):
    """A reply-to-reject appends the whole reply (up to 4,096 characters) to the approval
    message: the edit goes over Telegram's limit and is refused, so the message keeps its
    buttons and never says it was rejected."""

    async def main():
        _, app, conn, asking, shown = await ask_git_push(audit, evaluator, CHAT)
        reason = "not now: " + "the release is frozen. " * 180  # ~4,000 characters
        replied = SimpleNamespace(message_id=shown["id"], reply_markup=None)
        msg = SimpleNamespace(text=reason, reply_to_message=replied)
        user = SimpleNamespace(id=int(CHAT), full_name="Owner", username=None)
        update = SimpleNamespace(
            effective_message=msg, effective_user=user,
            effective_chat=SimpleNamespace(id=int(CHAT)),
        )  # fmt: skip

        # edits over the limit are refused, as Telegram does
        real_edit = app.bot.edit_message_text

        async def edit(text, chat_id, message_id, **kw):
            if len(text) > LIMIT:
                raise BadRequest("Message_too_long")
            await real_edit(text, chat_id, message_id, **kw)

        app.bot.edit_message_text = edit
        await conn._on_message(update, None)
        _, result = await asyncio.wait_for(asyncio.shield(asking), 5)
        assert result.how == "rejected"
        await asyncio.sleep(0.2)
        marked = [e for e in app.bot.edits if e["id"] == shown["id"]]
        await conn.close(1)
        return marked

    assert asyncio.run(main()), "the rejected approval's message was never marked"


def test_a_long_notice_is_split_not_lost(evaluator, audit):
    """`send` (command replies, ⛔ Denied notices, agent failures) is not split. The Denied
    notice carries the gate's reason, which for a reply-to-reject is "rejected by WHO:
    <the whole reply>" (a reply may be 4,096 characters); an agent failure carries the
    exception's first line. Over 4,096 characters, Telegram refuses the message and the
    user never sees it (the outbox only logs the refusal)."""

    async def main():
        coord = ApprovalCoordinator({CHAT}, 30, audit)
        app = StubApp()
        conn = TelegramConnector(StubEngine(coord), app, allowed=frozenset({CHAT}))
        note = "Not now. " * 455  # a 4,095-character reply
        await conn.event(CHAT, ToolDenied("Bash", "git push", f"rejected by {CHAT}: {note}",
                                          "approval"))  # fmt: skip
        await conn.result(CHAT, TurnResult(text="", agent_session_id=None,
                                           error="ProcessError: " + "x" * 4100))  # fmt: skip
        await asyncio.sleep(0.3)
        await conn.close(1)
        return app.bot.sent

    sent = asyncio.run(main())
    assert any("Denied" in m["text"] for m in sent), "the denial never reached the chat"
    assert any("agent failed" in m["text"] for m in sent), "the failure never reached the chat"


def test_chunks_of_astral_characters_fit_telegrams_utf16_limit():
    """split_markdown budgets code points, Telegram counts UTF-16 units: emoji (and other
    characters outside the BMP) count twice, so a chunk can be ~7,800 units long."""
    chunks = split_markdown("😀" * 5000)
    assert max(utf16_len(c) for c in chunks) <= LIMIT, [utf16_len(c) for c in chunks]


def test_while_telegram_is_down_one_sync_waits_not_one_per_delta(evaluator, audit):
    """`_schedule` measures the throttle from `last_sync`, set only when a sync runs: while
    the outbox is stuck retrying, the delay is 0 and every TextDelta queues one more `_sync`
    (each later re-renders the whole answer), instead of at most one waiting sync."""
    from leashd.agent.events import TextDelta

    async def main():
        coord = ApprovalCoordinator({CHAT}, 30, audit)
        app = StubApp()
        conn = TelegramConnector(StubEngine(coord), app, allowed=frozenset({CHAT}),
                                 throttle=0.2)  # fmt: skip
        app.bot.down = True
        for _ in range(300):
            await conn.event(CHAT, TextDelta("word "))
            await asyncio.sleep(0.002)
        queued = conn._outboxes[CHAT]._queue.qsize()
        await conn.close(0.5)
        return queued

    queued = asyncio.run(main())
    assert queued <= 2, f"{queued} syncs of the same answer queued during the outage"


def test_an_approval_cancelled_by_an_interrupt_says_so(evaluator, audit):
    """/cancel, the Interrupt button or the agent's timeout cancel the waiting approval
    (bridge.cancel_all): the coordinator ends it 'cancelled' but tells no connector, so its
    message keeps Approve/Reject (a press: "no longer waiting"), and at shutdown it is
    marked "Denied: the daemon stopped"."""

    async def main():
        coord = ApprovalCoordinator({CHAT}, 30, audit)
        app = StubApp()
        conn = TelegramConnector(StubEngine(coord), app, allowed=frozenset({CHAT}))
        asking = asyncio.create_task(
            coord.request(
                "s", CHAT, "Bash", "git push", decide(evaluator, "git push"), ask=conn.ask
            )
        )
        await _until(lambda: app.bot.sent)
        asking.cancel()  # what the interrupt does
        with pytest.raises(asyncio.CancelledError):
            await asking
        await asyncio.sleep(0.2)
        marked = list(app.bot.edits)
        await conn.close(1)
        return marked, [e["text"][-40:] for e in app.bot.edits]

    marked, after_close = asyncio.run(main())
    assert marked, f"never marked as cancelled; at close: {after_close}"


def test_a_strangers_reply_to_an_approval_gets_no_answer(evaluator, audit):
    """docs/telegram.md: "A stranger gets no answer at all". In a group where the owner
    uses the bot, a stranger's text reply to an approval goes to Engine.press before any
    auth (rightly refused and audited), and then the bot answers the stranger in the group
    ("only the configured approvers can answer this request"), unthrottled: every such
    reply is one more bot message and one more audit record."""

    group = "-1001234"

    async def main():
        _, app, conn, asking, shown = await ask_git_push(audit, evaluator, group)
        replied = SimpleNamespace(message_id=shown["id"], reply_markup=None)
        update = SimpleNamespace(
            effective_message=SimpleNamespace(text="lol", reply_to_message=replied),
            effective_user=SimpleNamespace(id=6666, full_name="Stranger", username=None),
            effective_chat=SimpleNamespace(id=int(group)),
        )  # fmt: skip
        await conn._on_message(update, None)
        await asyncio.sleep(0.2)
        asking.cancel()
        await conn.close(1)
        return [m["text"] for m in app.bot.sent[1:]]

    answered = asyncio.run(main())
    assert not answered, f"the stranger was answered: {answered}"


def test_no_chunk_of_a_long_answer_is_an_empty_code_block():
    """A code block whose closing fence falls just after a cut leaves a last chunk of
    "```python\\n```": it renders to an empty message, which Telegram refuses ("message text
    is empty"), so the final `_sync` fails there and the 🧰 tool summary never replaces the
    live 🔧 line."""
    import re

    from leashd.connectors.telegram_text import markdown_html

    lines = ["b" * 99 for _ in range(38)] + ["c" * 80]
    md = "Here:\n```python\n" + "\n".join(lines) + "\n```"
    shown = [re.sub(r"<[^>]+>", "", markdown_html(c)).strip() for c in split_markdown(md)]
    assert all(shown), shown[-1:]


def test_an_mcp_tool_with_content_still_fits_its_approval_message(audit):
    """For an MCP tool the summary is the whole input as JSON; with a `content` field the
    body goes to a document, but the summary is still put in the message whole, in <code>:
    the message is over 4,096 characters, Telegram refuses it, and the call can never be
    approved (channel-failed)."""
    from leashd.gate.approvals import ApprovalRequest

    async def main():
        coord = ApprovalCoordinator({CHAT}, 30, audit)
        conn = TelegramConnector(StubEngine(coord), StubApp(), allowed=frozenset({CHAT}))
        content = "note line\n" * 500
        req = ApprovalRequest(
            id="x", session="s", chat=CHAT, tool="mcp__notes__create",
            summary='mcp__notes__create {"title": "t", "content": ' + repr(content) + "}",
            similar=None, future=asyncio.get_running_loop().create_future(),
            tool_input={"title": "t", "content": content},
        )  # fmt: skip
        return conn._approval(req)

    text = asyncio.run(main())
    import html
    import re

    visible = html.unescape(re.sub(r"<[^>]+>", "", text.html))
    assert utf16_len(visible) <= LIMIT, (utf16_len(visible), text.document is not None)
