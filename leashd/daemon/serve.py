"""The daemon in the foreground: the one instance, its connector, and a graceful end.

SIGTERM (`leashd stop`) ends it gracefully: running turns are interrupted, approvals still
waiting are denied and audited, sessions are saved. SIGHUP re-reads the configuration's
approved directories and policies (what `leashd add-dir` sends), keeping the old policy if
the new one does not load.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TextIO

import structlog

from leashd.daemon import process
from leashd.daemon.app import Daemon, build
from leashd.daemon.config import Settings, load_config
from leashd.daemon.reload import Reloaded, reload_configuration
from leashd.gate.audit import AuditError
from leashd.policy.errors import PolicyError
from leashd.policy.loader import DEFAULT_POLICIES

log = structlog.get_logger(__name__)


async def serve_terminal(out: TextIO | None = None) -> int:
    """The terminal REPL as the daemon's connector. Returns the exit code."""
    from leashd.connectors.terminal import CHAT, WHO, TerminalConnector

    out = out or sys.stdout
    settings = load_config().settings
    if not settings.approved_directories:
        print(NO_DIRS, file=sys.stderr)
        return 2
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # `add-dir` while starting: no death
    with process.hold("terminal"):
        try:
            daemon = await build(settings, approvers={WHO}, recover=True)
        except PolicyError as exc:
            # A policy file that does not load is a bad configuration (exit 2, its file:line
            # said), not a crash with a traceback: found by test_daemon_extras.
            print(f"leashd: the policy does not load:\n{exc}", file=sys.stderr)
            return 2
        except AuditError as exc:
            print(f"leashd: the audit log cannot be continued: {exc}", file=sys.stderr)
            return 2
        _starting(settings, "terminal")
        terminal = TerminalConnector(daemon.engine, out)
        if daemon.recovered:
            print(f"leashd: {daemon.recovered} approval(s) left waiting by a daemon that died "
                  "were recorded as denied", file=out)  # fmt: skip
        repl = asyncio.create_task(terminal.run())
        resumed = asyncio.create_task(daemon.engine.recover_tasks(terminal), name="recover tasks")
        resumed.add_done_callback(_log_failure)
        try:
            await _until_stopped(daemon, repl, lambda r: terminal.send(CHAT, r.message))
        finally:
            await daemon.close()
            print("\nleashd stopped.", file=out, flush=True)
    return 0


NO_DIRS = "leashd: no approved directory; run `leashd add-dir DIR` (or `leashd init`)"
NO_USERS = (
    "leashd: nobody may use the bot: set LEASHD_ALLOWED_USER_IDS to your Telegram user id "
    "(message @userinfobot in Telegram and it replies with yours; `leashd init` asks for it). "
    "To let anyone who finds the bot use it, set LEASHD_TELEGRAM_OPEN_BOT=true."
)


async def serve_telegram() -> int:
    """The Telegram bot as the daemon's connector, until SIGTERM. Returns the exit code."""
    from telegram.error import BadRequest, InvalidToken

    from leashd.connectors import telegram as tg
    from leashd.connectors.outbox import retrying

    settings = load_config().settings
    token = settings.telegram_bot_token
    if token is None:
        print("leashd: no Telegram bot token (`leashd init` sets one)", file=sys.stderr)
        return 2
    if not settings.approved_directories:
        print(NO_DIRS, file=sys.stderr)
        return 2
    allowed = frozenset(settings.allowed_user_ids)
    if not allowed and not settings.telegram_open_bot:
        print(NO_USERS, file=sys.stderr)
        return 2
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # `add-dir` while starting: no death
    with process.hold("telegram"):
        try:
            daemon = await build(
                settings,
                approvers=set(allowed),
                open_bot=settings.telegram_open_bot,
                recover=True,
            )
        except PolicyError as exc:
            print(f"leashd: the policy does not load:\n{exc}", file=sys.stderr)
            return 2
        except AuditError as exc:
            print(f"leashd: the audit log cannot be continued: {exc}", file=sys.stderr)
            return 2
        _starting(settings, "telegram")
        app = tg.application(token.get_secret_value(), settings.telegram_base_url)
        connector = tg.TelegramConnector(
            daemon.engine, app, allowed=allowed, open_bot=settings.telegram_open_bot,
            streaming=settings.streaming_enabled, throttle=settings.streaming_throttle_seconds,
            timeout=settings.approval_timeout_seconds,
        )  # fmt: skip
        stopping = asyncio.Event()
        menu: asyncio.Task[Any] | None = None

        async def tell_failed(outcome: Reloaded) -> None:
            # A reload that failed is told to each allowed user (their private chat with the
            # bot has their id), who would otherwise believe the change took effect; one that
            # worked is what the operator asked for at the machine, and is only logged.
            if not outcome.ok:
                for user in sorted(allowed):
                    await connector.send(user, outcome.message)

        async def online() -> None:
            nonlocal menu
            if await tg.connect(app, stopping):
                log.info("telegram connected", bot=app.bot.username)
                menu = asyncio.create_task(
                    retrying(connector.commands, "setMyCommands"), name="the command menu"
                )
                menu.add_done_callback(_log_failure)
                # tasks a dead daemon left running go on, each told in its chat
                resumed = asyncio.create_task(
                    daemon.engine.recover_tasks(connector), name="recover tasks"
                )
                resumed.add_done_callback(_log_failure)
                await tg.watch(app, stopping)

        code = 0
        main = asyncio.create_task(online())
        try:
            await _until_stopped(daemon, main, tell_failed, stopping, sigint=True)
            if main.done() and not main.cancelled() and main.exception() is not None:
                raise main.exception()  # type: ignore[misc]
        except InvalidToken:
            print("leashd: Telegram rejected the bot token; check it with @BotFather",
                  file=sys.stderr)  # fmt: skip
            code = 2
        except BadRequest as exc:
            print(f"leashd: Telegram refused to start the bot: {exc}", file=sys.stderr)
            code = 2
        except Exception as exc:  # polling ended some other way: say so, exit non-zero
            log.error("the telegram connection failed", error=repr(exc))
            print(f"leashd: the Telegram connection failed: {exc!r}", file=sys.stderr)
            code = 1
        finally:
            for t in (main, menu):
                if t is not None:
                    t.cancel()
            try:
                await tg.stop_updates(app)  # no new messages, no handlers run from here on
                await daemon.close()  # approvals waiting are denied; turns interrupted
            finally:
                try:
                    await connector.close()  # their messages say so, while Telegram is there
                finally:
                    await tg.disconnect(app)
                    log.info("leashd stopped")
    return code


def _starting(settings: Settings, connector: str) -> None:
    """The daemon is built and starts serving: what it serves with, at INFO."""
    log.info("daemon_starting", connector=connector, pid=os.getpid(),
             directories=list(settings.approved_directories),
             policies=list(settings.policy_files or DEFAULT_POLICIES), sandbox=settings.sandbox,
             default_mode=settings.default_mode)  # fmt: skip


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("a start-up step failed", step=task.get_name(), error=str(task.exception()))


async def _until_stopped(
    daemon: Daemon,
    main: asyncio.Task[Any],
    tell: Callable[[Reloaded], Awaitable[None]] | None,
    stopping: asyncio.Event | None = None,
    *,
    sigint: bool = False,
) -> None:
    """Run until `main` ends or SIGTERM (and SIGINT with `sigint`: the terminal keeps Ctrl-C
    for interrupting a turn); SIGHUP reloads the configuration."""
    stopping = stopping or asyncio.Event()
    loop = asyncio.get_running_loop()
    reloads: set[asyncio.Task[None]] = set()

    def on_hup() -> None:
        task = loop.create_task(_reload(daemon, tell))
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    signals = (signal.SIGTERM, signal.SIGHUP, *((signal.SIGINT,) if sigint else ()))
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    loop.add_signal_handler(signal.SIGHUP, on_hup)
    if sigint:
        loop.add_signal_handler(signal.SIGINT, stopping.set)
    stop = asyncio.create_task(stopping.wait())
    try:
        await asyncio.wait((main, stop), return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.set()
        stop.cancel()
        if not main.done():
            main.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await main
        for sig in signals:
            loop.remove_signal_handler(sig)
        # stopping can take seconds (Telegram down): a reload signal then must not kill it
        signal.signal(signal.SIGHUP, signal.SIG_IGN)


async def _reload(daemon: Daemon, tell: Callable[[Reloaded], Awaitable[None]] | None) -> None:
    """Approved directories and policies from the configuration as it is now. In a thread:
    compiling a policy can take seconds, and the event loop serves every chat meanwhile."""
    outcome = await asyncio.to_thread(reload_configuration, daemon.gate)
    if tell is not None:
        with contextlib.suppress(Exception):
            await tell(outcome)
