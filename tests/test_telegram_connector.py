"""The Telegram connector on its own, in process, against the fake Bot API: how a streamed
answer is shown (edits no more often than the throttle), and the tool line."""

from __future__ import annotations

import asyncio
import itertools
import time

from leashd.agent.events import Text, TextDelta, ToolStarted, TurnResult
from leashd.connectors.telegram import TelegramConnector, application
from tests.fakes.telegram_api import FakeTelegram

TOKEN = "7000002:AAE-connector-test-0123456789abcdef"
CHAT = 4242


async def streamed(tg: FakeTelegram, throttle: float, pieces: list[str], gap: float) -> None:
    app = application(TOKEN, tg.base_url)
    await app.initialize()
    try:
        conn = TelegramConnector(None, app, allowed=frozenset({str(CHAT)}), throttle=throttle)  # type: ignore[arg-type]
        chat = str(CHAT)
        await conn.event(chat, ToolStarted("t1", "Bash", "pytest tests/"))
        for piece in pieces:
            await conn.event(chat, TextDelta(piece))
            await asyncio.sleep(gap)
        await conn.event(chat, Text("".join(pieces)))
        await conn.event(chat, ToolStarted("t2", "Read", "README.md"))
        await conn.event(chat, ToolStarted("t3", "Bash", "ruff check"))
        await conn.result(chat, TurnResult("".join(pieces), "s", tools=("Bash", "Read", "Bash")))
        await conn.close(timeout=10)
    finally:
        await app.shutdown()


def test_the_answer_grows_by_edits_no_more_often_than_the_throttle():
    pieces = [f"word{i} " for i in range(60)]
    with FakeTelegram(TOKEN, chats=[CHAT]) as tg:
        started = time.monotonic()
        asyncio.run(streamed(tg, throttle=0.4, pieces=pieces, gap=0.05))  # ~3 s of streaming
        took = time.monotonic() - started
        answer = next(m for m in tg.bot_messages(CHAT) if m["text"].startswith("word0"))
        edits = [
            r for r in tg.calls("editMessageText") if r.params["message_id"] == answer["message_id"]
        ]
        summary = [m for m in tg.bot_messages(CHAT) if m["text"].startswith("🧰")]

    assert answer["text"] == "".join(pieces).strip()  # the whole answer, in the end
    assert len(edits) >= 3  # it grew while it was written, not only at the end
    times = [r.at for r in edits]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # an edit no sooner than the throttle after the previous one (the final one excepted:
    # when the turn ends, the answer is shown whole at once)
    assert all(g >= 0.35 for g in gaps[:-1]), gaps
    assert len(edits) <= took / 0.4 + 2
    assert summary and summary[0]["text"] == "🧰 Bash ×2, Read"
