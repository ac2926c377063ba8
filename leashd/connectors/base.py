"""What the engine needs of a connector (the terminal, headless runs, Telegram)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

from leashd.agent.events import AgentEvent, TurnResult
from leashd.gate.approvals import ApprovalRequest

Busy = Literal["queue", "interrupt"]


class Connector(Protocol):
    name: str

    async def send(self, chat: str, text: str, choices: Sequence[tuple[str, str]] = ()) -> None:
        """A message from leashd itself (command replies, notices). `choices` are
        (label, message) pairs a connector may offer as buttons; choosing one sends that
        message as the user. The text names them too, for connectors without buttons."""

    async def document(self, chat: str, name: str, data: bytes) -> None:
        """A file (long output of a command): Telegram sends it as a document; the terminal
        and headless runs print it."""

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
