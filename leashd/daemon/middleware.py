"""What stands between a connector and the engine: who may talk to it, and how often."""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from leashd.connectors.base import Connector


@dataclass(frozen=True)
class Incoming:
    connector: Connector
    chat: str
    user: str
    text: str


Next = Callable[[Incoming], Awaitable[None]]


class Auth:
    """Only the allowed users. With none configured, only local connectors (the terminal,
    headless runs) are let in, unless the operator opened the bot on purpose."""

    LOCAL = frozenset({"terminal", "headless"})

    def __init__(self, allowed: set[str] | frozenset[str], open_bot: bool = False) -> None:
        self.allowed = frozenset(allowed)
        self.open_bot = open_bot

    def permits(self, msg: Incoming) -> bool:
        if msg.connector.name in self.LOCAL:
            return True
        if not self.allowed:
            return self.open_bot
        return msg.user in self.allowed

    async def __call__(self, msg: Incoming, nxt: Next) -> None:
        if self.permits(msg):
            await nxt(msg)
        # a stranger gets no answer at all: nothing to learn from probing the bot


class TokenBucket:
    """`rate` tokens a minute, up to `burst` saved; one per message."""

    def __init__(self, rpm: int, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rpm / 60.0
        self.burst = float(burst)
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # user -> (tokens, when)

    def take(self, user: str) -> float:
        """0.0 if the message may go now, else how many seconds until it may."""
        now = self.clock()
        tokens, when = self._buckets.get(user, (self.burst, now))
        tokens = min(self.burst, tokens + (now - when) * self.rate)
        if tokens >= 1.0:
            self._buckets[user] = (tokens - 1.0, now)
            return 0.0
        self._buckets[user] = (tokens, now)
        return (1.0 - tokens) / self.rate if self.rate > 0 else float("inf")


class RateLimit:
    def __init__(self, rpm: int, burst: int) -> None:
        self.bucket = TokenBucket(rpm, burst) if rpm > 0 else None

    async def __call__(self, msg: Incoming, nxt: Next) -> None:
        if self.bucket is not None:
            wait = self.bucket.take(f"{msg.connector.name}:{msg.user}")
            if wait > 0:
                await msg.connector.send(
                    msg.chat, f"Easy there: too many messages. Try again in {math.ceil(wait)} s."
                )
                return
        await nxt(msg)


Middleware = Callable[[Incoming, Next], Awaitable[None]]


def chain(middlewares: list[Middleware], handler: Next) -> Next:
    """handler wrapped by each middleware, the first one outermost."""
    nxt = handler
    for m in reversed(middlewares):
        nxt = _bind(m, nxt)
    return nxt


def _bind(m: Middleware, nxt: Next) -> Next:
    async def run(msg: Incoming) -> None:
        await m(msg, nxt)

    return run
