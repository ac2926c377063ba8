"""The daemon in the foreground: the one instance, its connector, and a graceful end.

SIGTERM (`leashd stop`) ends it gracefully: running turns are interrupted, approvals still
waiting are denied and audited, sessions are saved. SIGHUP re-reads the configuration's
approved directories and policies (what `leashd add-dir` sends), keeping the old policy if
the new one does not load.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from typing import TextIO

import structlog

from leashd.connectors.base import Connector
from leashd.daemon import process
from leashd.daemon.app import Daemon, build
from leashd.daemon.config import ConfigError, load_config
from leashd.policy.loader import DEFAULT_POLICIES

log = structlog.get_logger(__name__)


async def serve_terminal(out: TextIO | None = None) -> int:
    """The terminal REPL as the daemon's connector. Returns the exit code."""
    from leashd.connectors.terminal import CHAT, WHO, TerminalConnector

    out = out or sys.stdout
    settings = load_config().settings
    if not settings.approved_directories:
        print("leashd: no approved directory; run `leashd add-dir DIR` (or `leashd init`)",
              file=sys.stderr)  # fmt: skip
        return 2
    with process.hold("terminal"):
        daemon = await build(settings, approvers={WHO})
        terminal = TerminalConnector(daemon.engine, out)
        if daemon.recovered:
            print(f"leashd: {daemon.recovered} approval(s) left waiting by a daemon that died "
                  "were recorded as denied", file=out)  # fmt: skip
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stopping.set)
        reloads: set[asyncio.Task[None]] = set()

        def on_hup() -> None:
            task = loop.create_task(_reload(daemon, terminal, CHAT))
            reloads.add(task)
            task.add_done_callback(reloads.discard)

        loop.add_signal_handler(signal.SIGHUP, on_hup)
        repl = asyncio.create_task(terminal.run())
        stop = asyncio.create_task(stopping.wait())
        try:
            await asyncio.wait((repl, stop), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (repl, stop):
                t.cancel()
            for sig in (signal.SIGTERM, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            await daemon.close()
            print("\nleashd stopped.", file=out, flush=True)
    return 0


async def _reload(daemon: Daemon, connector: Connector, chat: str) -> None:
    """Approved directories and policies from the configuration as it is now."""
    try:
        settings = load_config().settings
    except ConfigError as exc:
        log.error("reload refused: invalid configuration", error=str(exc))
        return
    gate = daemon.gate
    want = set(settings.approved_directories)
    for d in want - set(gate.approved_dirs):
        gate.add_dir(d)
    for d in set(gate.approved_dirs) - want:
        gate.remove_dir(d)
    result = gate.reload(settings.policy_files or DEFAULT_POLICIES)
    log.info("configuration reloaded", dirs=list(gate.approved_dirs), policy=result.message)
    with contextlib.suppress(Exception):
        await connector.send(chat, f"(configuration reloaded: {len(gate.approved_dirs)} "
                                   f"approved directories; {result.message})")  # fmt: skip
