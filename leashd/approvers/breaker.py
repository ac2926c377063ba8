"""Circuit breakers: when the AI approver stops being trusted for a task.

A breaker belongs to one scope (a task, or a session when there is no task) and trips, for
the rest of that scope, on any of: more than `max_approvals` AI approvals within `window`
seconds (an agent asking for much more than a task should need), `max_denials` AI denials in
a row (an agent that keeps trying what the approver refuses), or one approver error or
timeout. A tripped breaker sends every later call of its scope to a human, or to a deny when
nobody can be asked. Its state is data (`state()`), shown by `/status` and `/tasks` and
written into each AI decision's audit record.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from leashd.plural import plural

Outcome = Literal["approved", "denied", "error"]


@dataclass(frozen=True)
class Limits:
    max_approvals: int = 50  # AI approvals within the window (leashd 0.6.0's max_calls)
    window: float = 3600.0  # seconds
    max_denials: int = 3  # AI denials in a row


@dataclass
class Breaker:
    limits: Limits = field(default_factory=Limits)
    clock: Callable[[], float] = time.monotonic
    tripped: str | None = None  # why, once tripped; None while closed
    _approvals: deque[float] = field(default_factory=deque)
    _denials: int = 0

    @property
    def closed(self) -> bool:
        """Whether the AI may still answer in this scope."""
        return self.tripped is None

    def record(self, outcome: Outcome, detail: str = "") -> None:
        """One AI answer (or failure to answer). Trips the breaker when a limit is passed."""
        now = self.clock()
        self._forget(now)
        if outcome == "approved":
            self._denials = 0
            self._approvals.append(now)
            if len(self._approvals) > self.limits.max_approvals:
                self._trip(
                    f"more than {plural(self.limits.max_approvals, 'AI approval')} within "
                    f"{self.limits.window:g} s"
                )
        elif outcome == "denied":
            self._denials += 1
            if self._denials >= self.limits.max_denials:
                self._trip(f"{plural(self._denials, 'AI denial')} in a row")
        else:
            self._trip(f"the AI approver failed: {detail}" if detail else "the AI approver failed")

    def _trip(self, why: str) -> None:
        if self.tripped is None:
            self.tripped = why

    def _forget(self, now: float) -> None:
        while self._approvals and now - self._approvals[0] > self.limits.window:
            self._approvals.popleft()

    def state(self) -> dict[str, Any]:
        self._forget(self.clock())
        return {
            "state": "closed" if self.tripped is None else "tripped",
            **({"why": self.tripped} if self.tripped is not None else {}),
            "approvals_in_window": len(self._approvals),
            "denials_in_a_row": self._denials,
        }


@dataclass
class Breakers:
    """One breaker per scope, made on first use; old scopes are forgotten past a bound (a
    scope is a task or a session, and they end)."""

    limits: Limits = field(default_factory=Limits)
    _by_scope: dict[str, Breaker] = field(default_factory=dict)

    def __call__(self, scope: str) -> Breaker:
        found = self._by_scope.get(scope)
        if found is None:
            if len(self._by_scope) >= 4096:
                self._by_scope.pop(next(iter(self._by_scope)))
            found = self._by_scope[scope] = Breaker(self.limits)
        return found

    def state(self, scope: str) -> dict[str, Any] | None:
        found = self._by_scope.get(scope)
        return found.state() if found is not None else None
