"""The per-chat outbox: operations run in order, network failures are retried until they
succeed, a 429 waits what Telegram asks, and a refusal is not retried."""

from __future__ import annotations

import asyncio
import time

import pytest
from telegram.error import BadRequest, NetworkError, RetryAfter, TimedOut

from leashd.connectors import outbox as outbox_mod
from leashd.connectors.outbox import Outbox


@pytest.fixture(autouse=True)
def quick(monkeypatch):
    monkeypatch.setattr(outbox_mod, "MAX_PAUSE", 0.05)


def failing(times: int, error: Exception, log: list[str], name: str):
    left = [times]

    async def op() -> str:
        log.append(f"try {name}")
        if left[0] > 0:
            left[0] -= 1
            raise error
        return name

    return op


def test_operations_run_in_order_and_network_failures_are_retried():
    async def main() -> list[str]:
        log: list[str] = []
        box = Outbox("c")
        first = box.submit(failing(3, NetworkError("down"), log, "a"), "a")
        second = box.submit(failing(1, TimedOut(), log, "b"), "b")
        assert await second == "b" and await first == "a"
        return log

    log = asyncio.run(asyncio.wait_for(main(), 30))
    # a's retries all come before b is first tried: nothing overtakes a message being retried
    assert log == ["try a"] * 4 + ["try b"] * 2


def test_a_refusal_is_not_retried_and_the_next_operation_still_runs():
    async def main() -> tuple[list[str], str]:
        log: list[str] = []
        box = Outbox("c")
        refused = box.submit(failing(5, BadRequest("can't parse entities"), log, "a"), "a")
        after = box.submit(failing(0, NetworkError("x"), log, "b"), "b")
        with pytest.raises(BadRequest):
            await refused
        return log, await after

    log, after = asyncio.run(main())
    assert log == ["try a", "try b"] and after == "b"


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")  # its constructor
def test_a_429_waits_the_time_telegram_asks():
    async def main() -> float:
        box = Outbox("c")
        started = time.monotonic()
        await box.submit(failing(1, RetryAfter(1), [], "a"), "a")
        return time.monotonic() - started

    assert asyncio.run(main()) >= 1.0


def test_close_gives_up_on_what_cannot_be_sent_within_its_time():
    async def main() -> tuple[bool, float]:
        box = Outbox("c")
        stuck = box.submit(failing(10**6, NetworkError("down"), [], "a"), "a")
        started = time.monotonic()
        await box.close(0.3)
        return stuck.cancelled(), time.monotonic() - started

    cancelled, took = asyncio.run(main())
    assert cancelled and took < 5
