"""`leashd run`: one turn for scripts and CI. Tool activity goes to stderr, the final answer
to stdout. Nobody can be asked, so whatever needs approval is denied, and said so."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO

from leashd.agent.events import (
    AgentEvent,
    Notice,
    SandboxBlocked,
    ToolDenied,
    ToolStarted,
    TurnResult,
)
from leashd.connectors.base import Busy
from leashd.gate.approvals import ApprovalRequest


class HeadlessConnector:
    name = "headless"

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.result_seen: TurnResult | None = None

    async def send(self, chat: str, text: str, choices: Sequence[tuple[str, str]] = ()) -> None:
        print(text, file=self.err, flush=True)

    async def document(self, chat: str, name: str, data: bytes) -> None:
        print(f"── {name} ──\n{data.decode('utf-8', 'replace')}", file=self.err, flush=True)

    async def event(self, chat: str, event: AgentEvent) -> None:
        if isinstance(event, ToolStarted):
            what = f"{event.tool}: {event.summary}".rstrip(": ")
            print(f"🔧 {what}", file=self.err, flush=True)
        elif isinstance(event, ToolDenied):
            what = f"{event.tool}: {event.summary}".rstrip(": ")
            print(f"⛔ denied {what} — {event.reason}", file=self.err, flush=True)
        elif isinstance(event, SandboxBlocked):
            blocked = "; ".join(event.blocked)
            print(f"🧱 the sandbox blocked: {blocked}", file=self.err, flush=True)
        elif isinstance(event, Notice):
            print(f"leashd: {event.text}", file=self.err, flush=True)

    async def result(self, chat: str, result: TurnResult) -> None:
        self.result_seen = result
        if result.error is not None:
            print(f"leashd: the agent failed: {result.error}", file=self.err, flush=True)
            return
        if result.text:
            print(result.text, file=self.out, flush=True)

    async def ask(self, req: ApprovalRequest) -> None:  # never called: no approvals here
        raise RuntimeError("a headless run cannot ask for approval")

    async def expired(self, req: ApprovalRequest) -> None:
        return None

    async def busy(self, chat: str, text: str) -> Busy:
        return "queue"
