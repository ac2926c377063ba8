"""The terminal REPL with a stand-in engine, to run in tmux: `python -m tests.fakes.repl_engine
SENT` (from the checkout). Each line typed is appended to the file SENT and answered with
`said: LINE`; each SIGUSR1 is a notice (`notice 1`, `notice 2`, …) arriving from elsewhere,
as a task's progress does, whatever the user is doing. No agent, no turns: the REPL is idle
throughout, so what is tested is how the screen is drawn."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

from leashd.connectors.terminal import CHAT, TerminalConnector


class StandIn:
    def __init__(self, sent: Path) -> None:
        self.sent = sent

    async def handle(self, connector: TerminalConnector, chat: str, who: str, line: str) -> None:
        with self.sent.open("a") as f:
            f.write(line + "\n")
        await connector.send(chat, f"said: {line}")

    def running(self, chat: str) -> bool:
        return False

    def queued(self, chat: str) -> int:
        return 0

    async def wait_idle(self, chat: str) -> None:
        return None

    async def cancel(self, chat: str) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(f"the stand-in engine has no {name}")


async def main(sent: Path) -> None:
    repl = TerminalConnector(StandIn(sent))  # type: ignore[arg-type]
    loop = asyncio.get_running_loop()
    notices: list[asyncio.Task[None]] = []

    def notice() -> None:
        notices.append(loop.create_task(repl.send(CHAT, f"notice {len(notices) + 1}")))

    loop.add_signal_handler(signal.SIGUSR1, notice)
    await repl.run()
    print("bye", flush=True)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
