"""What the engine needs of a connector (the terminal, headless runs, Telegram)."""

from __future__ import annotations

from typing import Literal, Protocol

from leashd.agent.events import AgentEvent, TurnResult
from leashd.gate.approvals import ApprovalRequest

Busy = Literal["queue", "interrupt"]


class Connector(Protocol):
    name: str

    async def send(self, chat: str, text: str) -> None:
        """A message from leashd itself (command replies, notices)."""

    async def event(self, chat: str, event: AgentEvent) -> None:
        """Something the agent did while its turn runs: text, a tool starting or done."""

    async def result(self, chat: str, result: TurnResult) -> None:
        """The turn ended: its answer, or why it failed."""

    async def ask(self, req: ApprovalRequest) -> None:
        """Show an approval request; the answer comes back through `Engine.press`."""

    async def expired(self, req: ApprovalRequest) -> None:
        """The request timed out and was denied: mark it so where it was shown."""

    async def busy(self, chat: str, text: str) -> Busy:
        """A message came while a turn runs: queue it, or interrupt the turn for it."""
