"""The gate's event bus: what plugins and connectors can listen to.

Events are told after the fact and change nothing: a handler cannot allow or deny a call, and a
handler that fails is logged and forgotten, so a broken plugin never blocks or opens the gate.
A handler may be a plain function (called at once) or a coroutine function (run as a task of
its own, so a slow one never holds a call up).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import structlog

EVENTS: tuple[str, ...] = (
    "tool.allowed",
    "tool.denied",
    "approval.requested",
    "approval.resolved",
    "sandbox.violation",
    "policy.reloaded",
    "policy.reload_failed",
    "audit.failed",
)

log = structlog.get_logger("leashd.gate.events")


@dataclass(frozen=True, slots=True)
class Event:
    name: str
    data: Mapping[str, Any]


Handler = Callable[[Event], Awaitable[None] | None]


class EventBus:
    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def subscribe(self, name: str, handler: Handler) -> Callable[[], None]:
        """Call `handler` on every event called `name` ("*": every event). Returns a function
        that unsubscribes it."""
        if name != "*" and name not in EVENTS:
            raise ValueError(f"unknown event {name!r}; the events are: {', '.join(EVENTS)}")
        self._handlers.setdefault(name, []).append(handler)

        def unsubscribe() -> None:
            handlers = self._handlers.get(name, [])
            if handler in handlers:
                handlers.remove(handler)

        return unsubscribe

    def listens(self, name: str) -> bool:
        """Whether anyone would be told of `name` (to skip building what nobody reads)."""
        return bool(self._handlers.get(name) or self._handlers.get("*"))

    def emit(self, name: str, **data: Any) -> None:
        """Tell every handler of `name`. Never raises."""
        handlers = self._handlers.get(name)
        every = self._handlers.get("*")
        if not handlers and not every:
            return  # the common case: nobody listens, nothing to build
        event = Event(name, MappingProxyType(data))
        for handler in (*(handlers or ()), *(every or ())):
            try:
                result = handler(event)
                if inspect.isawaitable(result):
                    self._start(name, result)
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:  # a plugin's bug, or its cancelled future
                _report(name, handler, exc)

    async def drain(self) -> None:
        """Wait for the handlers still running (at shutdown, and in tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _start(self, name: str, awaitable: Awaitable[None]) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # told outside the event loop: nothing can run it
            if inspect.iscoroutine(awaitable):
                awaitable.close()
            _report(name, awaitable, RuntimeError("told outside the event loop"))
            return
        task = asyncio.ensure_future(awaitable, loop=loop)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _report("(async)", task, task.exception())  # type: ignore[arg-type]


def _report(name: str, handler: object, exc: BaseException) -> None:
    """Log a handler's failure; nothing here may raise (a handler whose repr fails, a name
    that cannot be printed)."""
    with contextlib.suppress(Exception):
        try:
            shown = repr(handler)
        except Exception:
            shown = f"<{type(handler).__name__}>"
        log.error("event handler failed", name=printable(name), handler=printable(shown),
                  error=printable(f"{type(exc).__name__}: {exc}"))  # fmt: skip


def printable(text: str) -> str:
    """Text any console can print: what it cannot (a lone surrogate) escaped."""
    return text.encode("ascii", "backslashreplace").decode("ascii")
