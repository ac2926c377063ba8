"""`leashd run`: one turn, no one to ask, for scripts and CI.

The sandbox is the one directory the run works in. A named session (`--session NAME`)
continues that conversation on the next run (`--new` starts it afresh); without a name each
run is a new one.
"""

from __future__ import annotations

import os
import uuid
from typing import TextIO

from leashd.connectors.headless import HeadlessConnector
from leashd.daemon.app import build
from leashd.daemon.config import Settings
from leashd.gate.audit import AuditError
from leashd.policy.errors import PolicyError

EXIT_OK, EXIT_AGENT_ERROR, EXIT_USAGE = 0, 1, 2
EXIT_AUDIT = 3  # the audit log is damaged, or calls were denied because they went unaudited


async def run_once(
    settings: Settings,
    prompt: str,
    *,
    directory: str,
    session: str | None = None,
    new: bool = False,
    policies: list[str] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    directory = os.path.realpath(directory)
    connector = HeadlessConnector(out, err)
    chat = f"run:{session}" if session else f"run:{uuid.uuid4()}"
    try:
        daemon = await build(
            settings,
            approvers=None,
            directories=[directory],
            policies=policies or None,
            default_dir=directory,
        )
    except PolicyError as exc:
        # A policy file that does not load is a bad configuration (exit 2, its file:line
        # said), not a crash with a traceback and exit 1: found by test_daemon_extras.
        await connector.send(chat, f"leashd: the policy does not load:\n{exc}")
        return EXIT_USAGE
    except AuditError as exc:
        await connector.send(chat, f"leashd: the audit log cannot be continued: {exc}")
        return EXIT_AUDIT
    # A call the gate denied because it could not audit it: the run did not do what it was
    # asked, and a script must see it in the exit code, not only in the agent's reply.
    unaudited: list[str] = []
    daemon.gate.bus.subscribe("audit.failed", lambda e: unaudited.append(str(e.data["error"])))
    try:
        if session and settings.storage_backend == "memory":
            await connector.send(
                chat,
                f"leashd: warning: with the memory storage backend nothing is remembered "
                f"between runs: session {session!r} starts a new conversation every time "
                f"(LEASHD_STORAGE_BACKEND=sqlite keeps it)",
            )
        row = await daemon.store.current_session(chat)
        if new and session:
            # afresh: a new current session for the name (the old one stays in the store, as
            # after /clear), in the directory of this run
            row = await daemon.engine.new_session(chat, directory, daemon.engine.default_mode)
        if row is not None and row.directory != directory:
            await connector.send(
                chat, f"leashd: session {session!r} works in {row.directory}, not {directory}"
            )
            return EXIT_USAGE
        await daemon.engine.handle(connector, chat, "headless", prompt)
        await daemon.engine.wait_idle(chat)
    finally:
        await daemon.close()
    if unaudited:
        await connector.send(
            chat,
            f"leashd: the audit log could not be written {len(unaudited)} time(s), and what "
            f"could not be audited was denied: {unaudited[0]}",
        )
        return EXIT_AUDIT
    result = connector.result_seen
    if result is None or result.error is not None or result.interrupted:
        return EXIT_AGENT_ERROR
    return EXIT_OK
