"""The fake Telegram Bot API (tests/fakes/telegram_api.py), driven by the real
python-telegram-bot client the daemon uses: what it records, the errors it returns the way
Telegram does, long polling, and the failures a test can script. Only 127.0.0.1 is used.

No pytest-asyncio in this repository: each test runs its coroutine with asyncio.run.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dtm
import json
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from telegram import (
    Bot,
    BotCommand,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    Message,
    ReplyParameters,
    Update,
)
from telegram.error import BadRequest, Conflict, InvalidToken, NetworkError, RetryAfter
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from tests.fakes.telegram_api import FakeTelegram, HtmlError, parse_html, utf16_len

TOKEN = "123456:TEST-fake-token"
CHAT = USER = 42


@pytest.fixture
def tg() -> Iterator[FakeTelegram]:
    with FakeTelegram(TOKEN) as fake:
        yield fake


def with_bot(tg: FakeTelegram, body: Callable[[Bot], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        async with Bot(TOKEN, base_url=tg.base_url) as bot:
            return await body(bot)

    return asyncio.run(main())


def keyboard(*buttons: tuple[str, str]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton(t, callback_data=d) for t, d in buttons]])


APPROVE = keyboard(("✅ Approve", "approve:7"), ("❌ Reject", "reject:7"))


@contextlib.contextmanager
def refused(description: str, exact: bool = False) -> Iterator[None]:
    """Expect BadRequest with this description. PTB drops "Bad Request: " and lower-cases
    all but the first letter, so the comparison ignores case."""
    with pytest.raises(BadRequest) as exc:
        yield
    got, want = exc.value.message.lower(), description.lower()
    assert got == want if exact else want in got, exc.value.message


# --- messages, edits, deletions -------------------------------------------------------------


def test_messages_edits_and_deletions_are_recorded_and_checked(tg: FakeTelegram) -> None:
    asked = tg.user_says(CHAT, USER, "write a.txt")

    async def body(bot: Bot) -> None:
        me = await bot.get_me()
        assert (me.id, me.username, me.is_bot) == (123456, "leashd_test_bot", True)

        sent = await bot.send_message(
            CHAT,
            "<b>⚠ Approval needed</b>\n<code>echo hi &gt; a.txt</code>",
            parse_mode="HTML",
            reply_markup=APPROVE,
            reply_parameters=ReplyParameters(asked),
            link_preview_options=LinkPreviewOptions(is_disabled=True),
            disable_notification=True,
        )
        # what PTB got back is a real Message, as Telegram would shape it
        assert sent.text == "⚠ Approval needed\necho hi > a.txt"
        assert [(e.type, e.offset, e.length) for e in sent.entities] == [
            ("bold", 0, 17),
            ("code", 18, 15),
        ]
        assert sent.reply_to_message is not None and sent.reply_to_message.message_id == asked
        assert sent.from_user is not None and sent.from_user.id == 123456
        mid = sent.message_id

        # the same content again, even written differently, is "not modified"
        for html in (
            "<b>⚠ Approval needed</b>\n<code>echo hi &gt; a.txt</code>",
            "<strong>⚠ Approval needed</strong>\n<code>echo hi &#62; a.txt</code>",
        ):
            with refused("message is not modified"):
                await bot.edit_message_text(
                    html, CHAT, mid, parse_mode="HTML", reply_markup=APPROVE
                )
        # an edit without reply_markup drops the keyboard, as Telegram does
        await bot.edit_message_text("✅ Approved", CHAT, mid)
        with refused("message is not modified"):
            await bot.edit_message_reply_markup(CHAT, mid)
        await bot.edit_message_reply_markup(CHAT, mid, reply_markup=keyboard(("Undo", "undo:7")))

        with refused("message can't be edited"):
            await bot.edit_message_text("no", CHAT, asked)
        with refused("message to edit not found"):
            await bot.edit_message_text("no", CHAT, 999)
        assert await bot.delete_message(CHAT, mid) is True
        with refused("message to delete not found"):
            await bot.delete_message(CHAT, mid)
        with refused("message to edit not found"):
            await bot.edit_message_text("too late", CHAT, mid)
        with refused("chat not found"):
            await bot.send_message(777, "nobody started the bot here")
        assert await bot.send_chat_action(CHAT, "typing") is True

    with_bot(tg, body)

    user, bot_msg = tg.messages(CHAT)
    assert (user["from"], user["text"], user["message_id"]) == ("user", "write a.txt", asked)
    assert bot_msg["from"] == "bot"
    assert bot_msg["original"]["raw"].startswith("<b>⚠ Approval needed</b>")
    assert bot_msg["original"]["parse_mode"] == "HTML"
    assert bot_msg["original"]["text"] == "⚠ Approval needed\necho hi > a.txt"
    assert len(bot_msg["original"]["reply_markup"][0]) == 2
    assert (bot_msg["text"], bot_msg["raw"], bot_msg["parse_mode"]) == ("✅ Approved",) * 2 + (
        None,
    )  # the current text
    assert bot_msg["reply_to"] == asked
    assert bot_msg["options"]["disable_notification"] is True
    assert bot_msg["options"]["link_preview_options"] == {"is_disabled": True}
    assert bot_msg["reply_markup"] == [[{"text": "Undo", "callback_data": "undo:7"}]]
    assert [(e["method"], e["text"]) for e in bot_msg["edits"]] == [
        ("editMessageText", "✅ Approved"),
        ("editMessageReplyMarkup", "✅ Approved"),
    ]
    assert bot_msg["edits"][0]["reply_markup"] is None
    assert bot_msg["deleted"] is True

    assert [r.status for r in tg.calls("deleteMessage")] == [200, 400]
    method, params, at, status = tg.calls("sendMessage")[0]
    assert (method, status, params["chat_id"]) == ("sendMessage", 200, CHAT)
    assert params["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "approve:7"
    assert at <= time.monotonic()

    not_modified = (
        "400 Bad Request: message is not modified: specified new message content and reply "
        "markup are exactly the same as a current content and reply markup of the message"
    )
    assert tg.transcript(CHAT).splitlines() == [
        "👤 42 [msg 1]: write a.txt",
        "🤖 [msg 2] (↩ msg 1) ⚠ Approval needed",
        "     echo hi > a.txt",
        "     [✅ Approve] [❌ Reject]",
        f"⚠️ editMessageText msg 2 failed: {not_modified}",
        f"⚠️ editMessageText msg 2 failed: {not_modified}",
        "✏️ [msg 2] → ✅ Approved",
        f"⚠️ editMessageReplyMarkup msg 2 failed: {not_modified}",
        "✏️ [msg 2] buttons → [Undo]",
        "⚠️ editMessageText msg 1 failed: 400 Bad Request: message can't be edited",
        "⚠️ editMessageText msg 999 failed: 400 Bad Request: message to edit not found",
        "🗑 [msg 2] deleted",
        "⚠️ deleteMessage msg 2 failed: 400 Bad Request: message to delete not found",
        "⚠️ editMessageText msg 2 failed: 400 Bad Request: message to edit not found",
    ]


# --- HTML parse mode ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("html", "visible", "entities"),
    [
        ("plain &lt;tag&gt; &amp; &quot;q&quot; &#38; &#x1F600;", 'plain <tag> & "q" & 😀', []),
        ("<b>bold</b> <i>it</i>", "bold it", [("bold", 0, 4), ("italic", 5, 2)]),
        ("😀<u>x</u>", "😀x", [("underline", 2, 1)]),  # offsets in UTF-16 code units
        ("<B>caps</B>", "caps", [("bold", 0, 4)]),
        ("<b>a<i>b</i></b>", "ab", [("bold", 0, 2), ("italic", 1, 1)]),
        ("<b>a</>", "a", [("bold", 0, 1)]),  # Telegram's short end tag
        ('<a href="https://x.org/?a=1&amp;b=2">x</a>', "x", [("text_link", 0, 1)]),
        ("<a href=x.org>x</a>", "x", [("text_link", 0, 1)]),
        ('<span class="tg-spoiler">s</span><tg-spoiler>t</tg-spoiler>', "st",
         [("spoiler", 0, 1), ("spoiler", 1, 1)]),
        ('<pre><code class="language-py">x = 1</code></pre>', "x = 1", [("pre", 0, 5)]),
        ("<blockquote expandable>q</blockquote>", "q", [("expandable_blockquote", 0, 1)]),
        ('<tg-emoji emoji-id="5368324170671202286">👍</tg-emoji>', "👍", [("custom_emoji", 0, 2)]),
        ("<s>a</s><strike>b</strike><del>c</del><ins>d</ins><em>e</em>", "abcde",
         [("strikethrough", 0, 1), ("strikethrough", 1, 1), ("strikethrough", 2, 1),
          ("underline", 3, 1), ("italic", 4, 1)]),
        ("a > b", "a > b", []),  # Telegram lets a bare '>' through
        ('<b title="ignored" x=1>b</b>', "b", [("bold", 0, 1)]),
    ],
)  # fmt: skip
def test_html_is_parsed_like_telegram(
    html: str, visible: str, entities: list[tuple[str, int, int]]
) -> None:
    text, found = parse_html(html)
    assert text == visible
    assert [(e["type"], e["offset"], e["length"]) for e in found] == entities


def test_html_entity_arguments() -> None:
    _, (pre,) = parse_html('<pre><code class="language-python">x</code></pre>')
    assert pre == {"type": "pre", "offset": 0, "length": 1, "language": "python"}
    _, (link,) = parse_html('<a href="https://x.org/?a=1&amp;b=2">x</a>')
    assert link["url"] == "https://x.org/?a=1&b=2"
    _, (emoji,) = parse_html('<tg-emoji emoji-id="42">👍</tg-emoji>')
    assert emoji["custom_emoji_id"] == "42"


@pytest.mark.parametrize(
    ("html", "error"),
    [
        ("a < b", 'Unsupported start tag "" at byte offset 2'),
        ("<div>x</div>", 'Unsupported start tag "div" at byte offset 0'),
        ("<b/>", 'Unsupported start tag "b/" at byte offset 0'),
        ("é<b", "Unclosed start tag at byte offset 2"),  # offsets in bytes
        ("x</b>", "Unexpected end tag at byte offset 1"),
        ("<b>x</b", "Unclosed end tag at byte offset 4"),
        ("<b>x</i>", 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
        ("<b><i>x</b></i>", 'Unmatched end tag at byte offset 7, expected "</i>", found "</b>"'),
        ("<b>x", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<span>x</span>", 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
        ("<a =x>y</a>", 'Empty attribute name in the tag "a" at byte offset 0'),
        ("<a href", 'Unclosed start tag "a" at byte offset 0'),
        ('<a href="x>y</a>', "Unclosed start tag at byte offset 0"),
        ("<a href=x/>y</a>", "Unexpected end of name token at byte offset 8"),
        ('<tg-emoji emoji-id="x">y</tg-emoji>', "Invalid custom emoji identifier specified"),
        ("&#xD800;", "Text contains invalid Unicode characters"),
        # Telegram keeps these as text; the documentation (and the fake, strict) refuses them
        ("fish & chips", 'Character "&" at byte offset 5 does not start an HTML entity'),
        ("&nbsp;", 'Character "&" at byte offset 0'),
        ("&lt no semicolon", 'Character "&" at byte offset 0'),
    ],
)
def test_malformed_html_is_refused_with_telegrams_message(html: str, error: str) -> None:
    with pytest.raises(HtmlError) as exc:
        parse_html(html)
    assert str(exc.value).startswith(error)


def test_lenient_html_keeps_a_bare_ampersand_like_telegram() -> None:
    assert parse_html("fish & chips &nbsp; &lt", strict=False)[0] == "fish & chips &nbsp; <"


def test_html_errors_reach_ptb_as_bad_request(tg: FakeTelegram) -> None:
    tg.add_chat(CHAT)

    async def body(bot: Bot) -> None:
        cases = {
            "<b>unclosed": 'Can\'t find end tag corresponding to start tag "b"',
            "1 < 2": 'Unsupported start tag "" at byte offset 2',
        }
        for html, error in cases.items():
            with refused(f"can't parse entities: {error}", exact=True):
                await bot.send_message(CHAT, html, parse_mode="HTML")
        for empty in ("<b></b>  ", " \n "):
            with refused("message text is empty", exact=True):
                await bot.send_message(CHAT, empty, parse_mode="HTML")
        with refused("MarkdownV2"):
            await bot.send_message(CHAT, "*bold*", parse_mode="MarkdownV2")

        # the limit counts the visible text, in UTF-16 code units
        await bot.send_message(CHAT, "<b>" + "a" * 4096 + "</b>", parse_mode="HTML")
        await bot.send_message(CHAT, "&lt;" * 4096, parse_mode="HTML")
        await bot.send_message(CHAT, "😀" * 2048)
        for too_long in ("a" * 4097, "😀" * 2048 + "a", "<i>" + "&amp;" * 4097 + "</i>"):
            with refused("message is too long", exact=True):
                await bot.send_message(CHAT, too_long, parse_mode="HTML")
        ok = await bot.send_message(CHAT, "short")
        with refused("message_too_long", exact=True):
            await bot.edit_message_text("b" * 4097, CHAT, ok.message_id)

    with_bot(tg, body)
    raw = tg.calls("sendMessage")[0]
    assert raw.status == 400
    assert raw.description is not None
    assert raw.description.startswith("Bad Request: can't parse entities: Can't find end tag")
    assert utf16_len("😀" * 2048) == 4096


def test_inline_buttons_are_checked(tg: FakeTelegram) -> None:
    tg.add_chat(CHAT)

    async def body(bot: Bot) -> None:
        await bot.send_message(CHAT, "64 bytes", reply_markup=keyboard(("ok", "é" * 32)))
        for data in ("é" * 32 + "x", "x" * 65):
            with refused("button_data_invalid", exact=True):
                await bot.send_message(CHAT, "too much", reply_markup=keyboard(("no", data)))
        with refused("text buttons are unallowed"):
            await bot.send_message(
                CHAT, "x", reply_markup=InlineKeyboardMarkup([[InlineKeyboardButton("x")]])
            )
        # edits are checked the same way
        sent = await bot.send_message(CHAT, "edit me")
        with refused("button_data_invalid", exact=True):
            await bot.edit_message_reply_markup(
                CHAT, sent.message_id, reply_markup=keyboard(("no", "y" * 65))
            )

    with_bot(tg, body)
    assert [m["text"] for m in tg.bot_messages(CHAT)] == ["64 bytes", "edit me"]


def test_documents_are_uploaded_as_multipart(tg: FakeTelegram) -> None:
    tg.add_chat(CHAT)
    payload = bytes(range(256)) * 40

    async def body(bot: Bot) -> None:
        doc = await bot.send_document(
            CHAT,
            payload,
            filename='rm -rf "build" é.sh',
            caption="<b>The whole command</b>",
            parse_mode="HTML",
            reply_markup=APPROVE,
        )
        assert doc.document is not None
        assert (doc.document.file_name, doc.document.file_size) == ('rm -rf "build" é.sh', 10240)
        assert doc.caption == "The whole command"
        with refused("message caption is too long"):
            await bot.send_document(CHAT, b"x", filename="x.txt", caption="c" * 1025)
        with refused("there is no text in the message to edit"):
            await bot.edit_message_text("new", CHAT, doc.message_id)

    with_bot(tg, body)
    (msg,) = tg.bot_messages(CHAT)
    assert msg["document"]["filename"] == 'rm -rf "build" é.sh'
    assert msg["document"]["data"] == payload
    assert msg["document"]["caption"] == msg["text"] == "The whole command"
    assert msg["reply_markup"] is not None
    assert tg.transcript(CHAT).splitlines()[0] == (
        '🤖 [msg 1] 📎 rm -rf "build" é.sh (10240 bytes) — The whole command'
        "  [✅ Approve] [❌ Reject]"
    )


# --- updates: long polling ------------------------------------------------------------------


def _polling(tg: FakeTelegram) -> bool:
    return any(r.status is None for r in tg.calls("getUpdates"))


def test_long_poll_wakes_on_a_message_and_offsets_confirm(tg: FakeTelegram) -> None:
    async def body(bot: Bot) -> None:
        poll = asyncio.create_task(bot.get_updates(timeout=10))
        await tg.wait_for_async(lambda: _polling(tg), timeout=5, what="a waiting getUpdates")
        said = time.monotonic()
        mid = tg.user_says(CHAT, USER, "/start now", first_name="Ada")
        (update,) = await poll
        assert time.monotonic() - said < 1.0  # woken, not timed out
        assert update.message is not None
        assert (update.message.message_id, update.message.text) == (mid, "/start now")
        assert update.message.from_user is not None
        assert update.message.from_user.first_name == "Ada"
        # a command gets its bot_command entity, which CommandHandler needs
        assert [(e.type, e.offset, e.length) for e in update.message.entities] == [
            ("bot_command", 0, 6)
        ]

        # not confirmed yet: delivered again; an offset past it confirms and forgets it
        assert [u.update_id for u in await bot.get_updates()] == [update.update_id]
        assert await bot.get_updates(offset=update.update_id + 1) == ()
        assert await bot.get_updates() == ()

        tg.user_says(CHAT, USER, "one")
        tg.user_says(CHAT, USER, "two")
        first, second = await bot.get_updates(limit=5)
        assert [u.update_id for u in await bot.get_updates(limit=1)] == [first.update_id]
        assert [u.update_id for u in await bot.get_updates(offset=-1)] == [second.update_id]
        assert await bot.get_updates(offset=second.update_id + 1) == ()

        # allowed_updates is kept: a message is then not even stored
        await bot.get_updates(allowed_updates=["callback_query"])
        tg.user_says(CHAT, USER, "unseen")
        assert tg.pending_updates() == []
        await bot.get_updates(allowed_updates=[])  # back to the default set
        tg.user_says(CHAT, USER, "seen")
        (seen,) = await bot.get_updates()
        assert seen.message is not None and seen.message.text == "seen"
        # deleteWebhook(drop_pending_updates) drops what is queued
        await bot.delete_webhook(drop_pending_updates=True)
        assert tg.pending_updates() == []

        # with nothing to deliver, a long poll lasts its timeout
        started = time.monotonic()
        assert await bot.get_updates(timeout=1) == ()
        assert 0.9 <= time.monotonic() - started < 3

    with_bot(tg, body)


def test_a_second_poller_ends_the_first_with_conflict(tg: FakeTelegram) -> None:
    async def body(bot: Bot) -> None:
        first = asyncio.create_task(bot.get_updates(timeout=10))
        await tg.wait_for_async(lambda: _polling(tg), timeout=5)
        # another instance of the bot (one Bot allows one getUpdates at a time anyway)
        async with Bot(TOKEN, base_url=tg.base_url) as other:
            assert await other.get_updates() == ()
        with pytest.raises(Conflict, match="terminated by other getUpdates request"):
            await first

    with_bot(tg, body)


def test_application_polls_handles_messages_and_button_presses(tg: FakeTelegram) -> None:
    """A real PTB Application, long polling the fake as the daemon does."""

    async def on_start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None
        await update.message.reply_text("welcome")

    async def on_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None
        await update.message.reply_text(
            f"<b>echo:</b> {update.message.text}",
            parse_mode="HTML",
            reply_markup=keyboard(("✅ Approve", "approve:1")),
            do_quote=True,
        )

    async def on_press(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None and query.message is not None
        await query.answer("approved")
        assert isinstance(query.message, Message)
        await query.edit_message_text(f"{query.message.text} — approved")

    async def main() -> None:
        app = Application.builder().token(TOKEN).base_url(tg.base_url).build()
        app.add_handler(CommandHandler("start", on_start))
        app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, on_text))
        app.add_handler(CallbackQueryHandler(on_press))
        await app.initialize()
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(
            poll_interval=0, timeout=5, allowed_updates=["message", "callback_query"]
        )
        try:
            tg.user_says(CHAT, USER, "/start")
            await tg.wait_message_async(CHAT, "welcome", timeout=10)

            asked = tg.user_says(CHAT, USER, "write a.txt")
            echo = await tg.wait_message_async(CHAT, "echo: write a.txt", buttons=True, timeout=10)
            assert echo["reply_to"] == asked
            assert echo["raw"] == "<b>echo:</b> write a.txt"

            qid = tg.press(CHAT, USER, echo["message_id"], "approve:1")
            assert (await tg.wait_answer_async(qid, timeout=10))["text"] == "approved"
            done = await tg.wait_message_async(CHAT, "— approved", buttons=False, timeout=10)
            assert done["message_id"] == echo["message_id"]

            # Telegram unreachable: the waiting long poll fails with 502 and PTB retries
            # on its own; once it is back, the message sent meanwhile arrives
            tg.down()
            await tg.wait_for_async(
                lambda: any(r.status == 502 for r in tg.calls("getUpdates")), timeout=10
            )
            tg.user_says(CHAT, USER, "still there?")
            tg.up()
            await tg.wait_message_async(CHAT, "echo: still there?", timeout=15)
        finally:
            await app.updater.stop()
            await app.stop()
            await app.shutdown()

    asyncio.run(main())
    assert tg.calls("deleteWebhook")  # PTB's bootstrap
    assert tg.pending_updates() == []  # all confirmed on stop
    transcript = tg.transcript(CHAT)
    assert "👤 42 [msg 3]: write a.txt" in transcript
    assert "🤖 [msg 4] (↩ msg 3) echo: write a.txt  [✅ Approve]" in transcript
    assert '👆 42 pressed "✅ Approve" on msg 4' in transcript
    assert "   (answer: approved)" in transcript
    assert "✏️ [msg 4] → echo: write a.txt — approved" in transcript


# --- callback queries -----------------------------------------------------------------------


def test_callback_queries_are_answered_once(tg: FakeTelegram) -> None:
    tg.add_chat(CHAT)

    async def body(bot: Bot) -> None:
        sent = await bot.send_message(CHAT, "Approve?", reply_markup=APPROVE)
        mid = sent.message_id
        with pytest.raises(ValueError, match="has buttons"):
            tg.press(CHAT, USER, mid, "approve:8")
        qid = tg.press(CHAT, USER, mid, "approve:7")
        (update,) = await bot.get_updates()
        assert update.callback_query is not None
        assert (update.callback_query.id, update.callback_query.data) == (qid, "approve:7")
        assert tg.answer_for(qid) is None
        with refused("message_too_long", exact=True):
            await bot.answer_callback_query(qid, text="x" * 201)
        assert await bot.answer_callback_query(qid, text="Approved", show_alert=True)
        assert tg.wait_answer(qid, timeout=1) == {"text": "Approved", "show_alert": True}
        for again in (qid, "123"):
            with refused("query is too old"):
                await bot.answer_callback_query(again)

        # a stale button (removed by an edit) can still be pressed on purpose
        await bot.edit_message_text("Approved", CHAT, mid)
        with pytest.raises(ValueError, match="force=True"):
            tg.press(CHAT, USER, mid, "reject:7")
        stale = tg.press(CHAT, USER, mid, "reject:7", force=True)
        # and a button on a deleted message arrives with an inaccessible message
        await bot.delete_message(CHAT, mid)
        with pytest.raises(ValueError, match="deleted"):
            tg.press(CHAT, USER, mid, "approve:7")
        gone = tg.press(CHAT, USER, mid, "approve:7", force=True)
        updates = await bot.get_updates(offset=update.update_id + 1)
        assert [u.callback_query.id for u in updates if u.callback_query] == [stale, gone]
        last = updates[-1].callback_query
        # PTB 22 parses it as a Message dated 0 that is not accessible
        assert last is not None and last.message is not None
        assert last.message.is_accessible is False

    with_bot(tg, body)
    lines = tg.transcript(CHAT).splitlines()
    assert '👆 42 pressed "✅ Approve" on msg 1' in lines
    assert "   (alert: Approved)" in lines
    assert '👆 42 pressed "❌ Reject" on msg 1 (stale)' in lines


# --- scripted failures ----------------------------------------------------------------------


# PTB 22 warns that retry_after will become a timedelta, whenever it reads it
@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
def test_rate_limit_becomes_retry_after(tg: FakeTelegram) -> None:
    tg.add_chat(CHAT)
    tg.rate_limit("sendMessage", retry_after=7, times=2)

    async def body(bot: Bot) -> None:
        for _ in range(2):
            with pytest.raises(RetryAfter) as exc:
                await bot.send_message(CHAT, "hello")
            wait = exc.value.retry_after  # an int, or a timedelta with PTB_TIMEDELTA set
            assert wait == 7 or wait == dtm.timedelta(seconds=7)
        await bot.send_message(CHAT, "hello")

    with_bot(tg, body)
    assert [r.status for r in tg.calls("sendMessage")] == [429, 429, 200]
    assert tg.calls("sendMessage")[0].description == "Too Many Requests: retry after 7"


def test_down_is_a_network_error_until_up(tg: FakeTelegram) -> None:
    tg.add_chat(CHAT)

    async def body(bot: Bot) -> None:
        poll = asyncio.create_task(bot.get_updates(timeout=10))
        await tg.wait_for_async(lambda: _polling(tg), timeout=5)
        downed = time.monotonic()
        tg.down()
        with pytest.raises(NetworkError, match="Bad Gateway") as exc:
            await poll
        assert time.monotonic() - downed < 1.0  # the waiting poll ended at once
        assert not isinstance(exc.value, BadRequest)
        with pytest.raises(NetworkError, match="Bad Gateway"):
            await bot.send_message(CHAT, "lost")
        tg.up()
        await bot.send_message(CHAT, "back")

    with_bot(tg, body)
    assert [r.status for r in tg.calls("sendMessage")] == [502, 200]
    assert [m["text"] for m in tg.bot_messages(CHAT)] == ["back"]
    assert "⚠️ sendMessage failed: 502 Bad Gateway (Telegram is down)" in tg.transcript(CHAT)


def test_wrong_token_and_unknown_method(tg: FakeTelegram) -> None:
    async def wrong() -> None:
        async with Bot("654321:not-this-bot", base_url=tg.base_url):
            pass

    with pytest.raises(InvalidToken):
        asyncio.run(wrong())

    def raw(path: str) -> tuple[int, bytes]:
        url = tg.base_url.removesuffix("/bot") + path
        try:
            with urllib.request.urlopen(url, data=b"", timeout=5) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    status, body = raw("/bot654321:not-this-bot/getMe")
    assert (status, json.loads(body)) == (
        401,
        {"ok": False, "error_code": 401, "description": "Unauthorized"},
    )
    status, body = raw(f"/bot{TOKEN}/sendPigeon")
    assert (status, json.loads(body)) == (
        404,
        {"ok": False, "error_code": 404, "description": "Not Found: method not found"},
    )
    assert tg.unknown_methods == ["sendPigeon"]
    status, body = raw(f"/bot{TOKEN}/GETME")  # method names are not case-sensitive
    assert status == 200 and json.loads(body)["result"]["username"] == "leashd_test_bot"
    tg.down()
    assert raw(f"/bot{TOKEN}/getMe") == (502, b"Bad Gateway")


def test_commands_are_stored(tg: FakeTelegram) -> None:
    async def body(bot: Bot) -> None:
        await bot.set_my_commands([BotCommand("start", "Start"), BotCommand("dir", "Pick a dir")])
        assert [c.command for c in await bot.get_my_commands()] == ["start", "dir"]
        with refused("bot_command_invalid"):
            await bot.set_my_commands([BotCommand("Not-Valid", "x")])

    with_bot(tg, body)
    assert tg.commands == [
        {"command": "start", "description": "Start"},
        {"command": "dir", "description": "Pick a dir"},
    ]


def test_a_timed_out_wait_names_what_and_shows_the_chat(tg: FakeTelegram) -> None:
    tg.user_says(CHAT, USER, "hello?")
    started = time.monotonic()
    with pytest.raises(AssertionError) as exc:
        tg.wait_message(CHAT, "never said", buttons=True, timeout=0.2)
    assert time.monotonic() - started < 2
    report = str(exc.value)
    assert "waiting for a bot message in chat 42 containing 'never said' with buttons" in report
    assert "👤 42 [msg 1]: hello?" in report
