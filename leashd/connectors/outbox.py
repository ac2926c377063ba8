"""One chat's outgoing messages, sent in order and retried while Telegram is unreachable.

An answer, its edits and an approval must arrive in the order they were made, and nothing
may be lost because Telegram was down for a minute. So each chat has one worker that runs
its operations one after another; an operation that fails on the network is tried again
with a growing pause (up to 30 s), and a 429 waits the `retry_after` Telegram asks for.
A refusal (400 Bad Request, 403) is not retried: the operation fails with it.

Callers that must know the outcome (an approval being shown) await the operation's future;
the others leave it, and a failure is logged instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import warnings
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import structlog
from telegram.error import BadRequest, NetworkError, RetryAfter
from telegram.warnings import PTBDeprecationWarning

log = structlog.get_logger(__name__)

Op = Callable[[], Awaitable[Any]]
MAX_PAUSE = 30.0


async def retrying(op: Op, what: str, first_pause: float = 1.0) -> Any:
    """Run `op` until it succeeds or is refused; network failures are retried for ever
    (the caller bounds the time, by cancelling)."""
    pause = first_pause
    while True:
        try:
            return await op()
        except RetryAfter as exc:
            wait = seconds(exc)
            log.warning("telegram asks to slow down", op=what, retry_after=wait)
            await asyncio.sleep(wait + 0.25)
        except BadRequest:
            raise  # a refusal: the same request would be refused again
        except NetworkError as exc:  # unreachable, timed out, 5xx
            log.warning("telegram unreachable; retrying", op=what, error=str(exc), pause=pause)
            await asyncio.sleep(pause)
            pause = min(MAX_PAUSE, pause * 2)


class Outbox:
    def __init__(self, chat: str) -> None:
        self.chat = chat
        self._queue: asyncio.Queue[tuple[Op, str, asyncio.Future[Any]]] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None

    def submit(self, op: Op, what: str) -> asyncio.Future[Any]:
        """Queue `op`; the future holds its result or the refusal it ended with."""
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        fut.add_done_callback(_consume)
        self._queue.put_nowait((op, what, fut))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._run())
        return fut

    async def _run(self) -> None:
        while not self._queue.empty():
            op, what, fut = self._queue.get_nowait()
            if fut.done():  # the caller gave up waiting (an approval that expired)
                continue
            try:
                result = await retrying(op, what)
            except asyncio.CancelledError:
                fut.cancel()
                raise
            except Exception as exc:
                if not fut.done():
                    fut.set_exception(exc)
            else:
                if not fut.done():
                    fut.set_result(result)

    async def close(self, timeout: float) -> None:
        """Let what is queued go out for up to `timeout` seconds, then drop the rest."""
        if self._worker is None:
            return
        with contextlib.suppress(TimeoutError, asyncio.CancelledError, Exception):
            await asyncio.wait_for(asyncio.shield(self._worker), timeout)
        self._worker.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._worker
        while not self._queue.empty():
            self._queue.get_nowait()[2].cancel()


def seconds(exc: RetryAfter) -> float:
    """How long Telegram asks to wait. python-telegram-bot is moving this to a timedelta and
    warns on every read of the old int; either form is read here, without the warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        wait = exc.retry_after
    return wait.totalseconds() if isinstance(wait, timedelta) else float(wait)


def _consume(fut: asyncio.Future[Any]) -> None:
    """A failure nobody awaited is logged, not left for 'exception never retrieved'."""
    if not fut.cancelled() and fut.exception() is not None:
        log.warning("telegram refused a message", error=str(fut.exception()))
