"""Approvals: a call the policy sends to a human waits here until one of the approvers answers,
the time runs out, or the daemon stops. Every way it ends other than an approver's yes is a no.

A request has an unguessable id and is bound to its session and chat; it resolves exactly once.
A press from anyone who is not an approver, or from another chat, is refused and audited: the
first of each person's refusals in a window (`refused_window`, 60 s) in full, the rest of that
window counted and written once when it ends (`refused-repeated`, with the count), so a
stranger hammering a button in a group cannot grow the log without bound. Every window ends,
so the table of people frees up; past `_REFUSERS` people at once, the rest share one window of
their own (`who: "*"`, naming some of them). A count that cannot be written is logged as an
error and kept for the next try, never dropped. On timeout the connector is told (it marks the
request expired) and the call is denied.

"Approve similar for this session" covers later calls of the same program and subcommand
(`npm test`, `git commit`) in that session, and only calls the policy would ask about (a deny
stays a deny). It is offered only for one simple command that is not opaque and runs nothing
else: never for interpreters, shells or wrappers, and never for a chain, so an approval never
covers anything chained after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from leashd.gate.audit import AuditError, AuditLog
from leashd.policy.decision import Decision
from leashd.shell.wrappers import SHELLS, wrapper_argv

log = structlog.get_logger(__name__)

# Programs that run code they are given, or another program: approving "similar" for them
# would approve anything at all.
_RUNS_OTHERS = frozenset(
    {
        *SHELLS, *wrapper_argv()[0][0], *wrapper_argv()[1][0],
        "python", "python2", "python3", "pypy", "pypy3", "node", "nodejs", "deno", "bun",
        "perl", "ruby", "php", "lua", "luajit", "Rscript", "R", "julia", "tclsh", "osascript",
        "awk", "gawk", "mawk", "nawk", "ssh", "scp", "rsync", "npx", "pnpx", "bunx", "uvx",
        "pipx", "make", "gmake", "just", "eval", "exec", "source", ".", "env", "sudo", "doas",
        "xargs", "docker", "podman", "kubectl", "nix", "nix-shell", "vim", "nvim", "emacs",
    }
)  # fmt: skip
_PYTHON = re.compile(r"python\d+(\.\d+)*")
# How long a request waits when neither the setting nor the policies say (docs/gate.md).
DEFAULT_TIMEOUT = 300.0
REFUSED_WINDOW = 60.0  # seconds in which one person's refused presses become one record more
_REFUSERS = 1024  # people tracked at once; beyond, the rest share one window ("*")
_NAMED = 32  # people the shared window's record names (a bound on the record, not the count)
Notify = Callable[["ApprovalRequest"], Awaitable[None]]


@dataclass(frozen=True)
class Scope:
    """What "approve similar" covers: a program and its subcommand (None: no subcommand)."""

    program: str
    subcommand: str | None

    def __str__(self) -> str:
        return f"{self.program} {self.subcommand}" if self.subcommand else self.program


# Subcommands that run code named on the command line, or change what later commands run:
# a scope over them would cover anything.
_NEVER_SIMILAR = frozenset(
    {
        *((p, s) for p in ("npm", "pnpm", "yarn", "bun") for s in ("exec", "x", "dlx", "create")),
        *((p, s) for p in ("uv", "poetry", "pipenv", "pdm", "hatch", "rye", "conda", "pixi")
          for s in ("run", "exec", "shell", "tool")),
        ("bundle", "exec"), ("cargo", "install"), ("go", "run"), ("go", "generate"),
        ("git", "config"), ("git", "submodule"), ("git", "filter-branch"), ("git", "bisect"),
        ("git", "rebase"), ("git", "difftool"), ("git", "mergetool"), ("git", "daemon"),
        ("npm", "config"), ("pip", "config"), ("pip3", "config"),
    }
)  # fmt: skip
# Subcommands that run a script named by the next word: the scope names that script too.
_SCRIPT_RUNNERS = frozenset(
    (p, s) for p in ("npm", "pnpm", "yarn", "bun") for s in ("run", "run-script")
)
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9_:-]*")


def similar_scope(decision: Decision) -> Scope | None:
    """The scope "approve similar" may cover for this call, or None when it must not be
    offered: more than one unit; not a shell command; opaque, a wrapper or an interpreter;
    variables set before it (`PATH=. npm test` runs something else); any path outside the
    approved directories; an option before the subcommand (`git -c … log`); a subcommand
    that runs what it is given (`npm exec`, `uv run`, `git config`)."""
    if len(decision.units) != 1:
        return None
    ud = decision.units[0]
    unit = ud.unit
    if unit.tool != "Bash" or unit.opaque or unit.wrapper or not unit.argv or unit.dynamic:
        return None
    if unit.env or ud.layer == "sandbox" or any(p.where != "inside" for p in unit.paths):
        return None  # what runs depends on the variables; a path outside is asked each time
    program = unit.argv[0].rsplit("/", 1)[-1]
    if program in _RUNS_OTHERS or _PYTHON.fullmatch(program) or not _WORD.fullmatch(program):
        return None
    rest = unit.argv[1:]
    if not rest:
        return Scope(program, None)
    sub = rest[0]
    if sub.startswith("-"):
        return None  # options before the subcommand: no scope that can be named safely
    if not _WORD.fullmatch(sub):
        return Scope(program, None)  # a path or a value: the program alone
    if (program, sub) in _NEVER_SIMILAR:
        return None
    if (program, sub) in _SCRIPT_RUNNERS:
        script = rest[1] if len(rest) > 1 and _WORD.fullmatch(rest[1]) else None
        return Scope(program, f"{sub} {script}") if script else None
    return Scope(program, sub)


@dataclass
class ApprovalRequest:
    id: str
    session: str
    chat: str
    tool: str
    summary: str  # what is asked, as the approver sees it
    similar: Scope | None  # the "approve similar" scope offered, if any
    future: asyncio.Future[Resolution] = field(repr=False)
    details: dict[str, Any] = field(default_factory=dict)  # rule, reason: for the connector
    deadline: float = 0.0  # on the event loop's clock: no answer counts after it
    # The whole tool input, for the approver to see in full (the audit keeps a capped copy).
    tool_input: Any = field(default=None, repr=False)
    timeout: float = DEFAULT_TIMEOUT  # seconds it waits, to say so to the approver


@dataclass(frozen=True)
class Resolution:
    approved: bool
    # approved | approved-similar | rejected | expired | cancelled | shutdown | similar
    # | channel-failed | unaudited
    how: str
    who: str | None = None
    detail: str | None = None  # what went wrong, or the approver's reason for a no


@dataclass
class _Refusals:
    """One person's refused presses in the current window."""

    started: float  # on the event loop's clock
    count: int = 0  # presses after the first, not yet written
    last: dict[str, Any] = field(default_factory=dict)  # the last one's request and place
    flush: asyncio.TimerHandle | None = None  # the window's end
    # The shared window ("*"): who pressed in it (the first _NAMED), and how many of its
    # presses came from people not named.
    ids: dict[str, None] = field(default_factory=dict)
    unnamed: int = 0

    def counted(self, who: str, last: dict[str, Any], shared: bool) -> None:
        self.count += 1
        self.last = last
        if shared:
            if who in self.ids or len(self.ids) < _NAMED:
                self.ids[who] = None
            else:
                self.unnamed += 1  # presses, not people: telling them apart needs a table


@dataclass(frozen=True)
class Press:
    """What became of a button press."""

    accepted: bool
    message: str


class ApprovalCoordinator:
    def __init__(
        self,
        approvers: set[str] | frozenset[str],
        timeout: float | None,
        audit: AuditLog,
        on_expired: Notify | None = None,
        *,
        anyone_in_chat: bool = False,
        refused_window: float = REFUSED_WINDOW,
    ) -> None:
        """`timeout`: seconds every request waits, when it is set explicitly (the setting
        LEASHD_APPROVAL_TIMEOUT_SECONDS in any layer); None leaves it to each request (the
        policies' `approval_timeout_seconds`, `request(timeout=)`), else DEFAULT_TIMEOUT."""
        self.approvers = frozenset(approvers)
        self.refused_window = refused_window
        self._refused: dict[str, _Refusals] = {}
        # An open bot (no allowed users, opened on purpose): whoever is in the chat where a
        # request was asked may answer it; in a private chat, that is its one user.
        self.anyone_in_chat = anyone_in_chat
        self.timeout = timeout
        self.audit = audit
        self.on_expired = on_expired
        self._pending: dict[str, ApprovalRequest] = {}
        self._similar: dict[str, set[Scope]] = {}  # session -> scopes approved as similar
        self._closed = False
        self._telling: set[asyncio.Task[None]] = set()  # expiry notices on their way

    def timeout_for(self, policy: float | None) -> float:
        """Seconds a request waits: the explicit setting, over the policies' value, over
        DEFAULT_TIMEOUT."""
        if self.timeout is not None:
            return self.timeout
        return policy if policy is not None else DEFAULT_TIMEOUT

    def pending(self, session: str | None = None) -> list[ApprovalRequest]:
        return [r for r in self._pending.values() if session is None or r.session == session]

    def covered(self, session: str, decision: Decision) -> bool:
        """Whether an earlier "approve similar" in this session covers this call."""
        if self._closed:
            return False
        scope = similar_scope(decision)
        return scope is not None and scope in self._similar.get(session, ())

    async def request(
        self,
        session: str,
        chat: str,
        tool: str,
        summary: str,
        decision: Decision,
        *,
        ask: Notify | None = None,
        details: dict[str, Any] | None = None,
        tool_input: Any = None,
        timeout: float | None = None,
    ) -> tuple[ApprovalRequest | None, Resolution]:
        """Ask, and wait for the answer. `ask` shows the request to the approvers (the
        connector); if it fails, or has not shown it when the time is up, the answer is no.
        Returns the request (None when an earlier "approve similar" answered it) and how it
        ended; only an approver's yes, before the deadline, approves. `timeout`: the
        policies' wait, which an explicit setting overrides (`timeout_for`)."""
        loop = asyncio.get_running_loop()
        wait = self.timeout_for(timeout)
        deadline = loop.time() + wait
        req = ApprovalRequest(
            id=secrets.token_urlsafe(18),
            session=session,
            chat=chat,
            tool=tool,
            summary=summary,
            similar=similar_scope(decision),
            future=loop.create_future(),
            details=dict(details or {}),
            deadline=deadline,
            tool_input=tool_input,
            timeout=wait,
        )
        if self._closed:
            return req, self._end(req, Resolution(False, "shutdown"))
        if self.covered(session, decision):
            self._event("similar", session, tool, summary, who=None)
            return None, Resolution(True, "similar")
        # audited before it can be answered: a request that cannot be is never pending
        self._event("requested", session, tool, summary, request=req.id, chat=chat,
                    similar=str(req.similar) if req.similar else None,
                    **req.details)  # fmt: skip
        self._pending[req.id] = req
        try:
            if ask is not None:
                try:
                    async with asyncio.timeout_at(deadline):
                        await ask(req)
                except TimeoutError:
                    pass  # not shown in time: expired below
                except Exception as exc:  # the channel is down: nobody can say yes
                    why = f"{type(exc).__name__}: {exc}"
                    return req, self._end(req, Resolution(False, "channel-failed", None, why))
            # The deadline holds whatever `ask` did with the timeout's cancellation: waiting
            # on the future with a timeout cancels nothing.
            left = deadline - loop.time()
            if not req.future.done() and left > 0:
                await asyncio.wait((req.future,), timeout=left)
            if not req.future.done():
                result = self._end(req, Resolution(False, "expired"))
                if result.how == "expired":
                    self._tell_expired(req)
                return req, result
            return req, req.future.result()
        except asyncio.CancelledError:
            # denied; and the cancellation goes on even if the record cannot be written
            with contextlib.suppress(AuditError):
                self._end(req, Resolution(False, "cancelled"))
            raise

    def press(
        self, request_id: str, who: str, chat: str, choice: str, note: str | None = None
    ) -> Press:
        """A button press: `choice` is approve, approve-similar or reject (`note`: the
        approver's reason, which the model is told). Call it on the event loop the requests
        wait on (a connector's handler is)."""
        req = self._pending.get(request_id)
        if req is None or self._closed:
            return Press(False, "this request is no longer waiting")
        if asyncio.get_running_loop() is not req.future.get_loop():
            raise RuntimeError("ApprovalCoordinator.press must run on the gate's event loop")
        approver = who in self.approvers or self.anyone_in_chat
        if not approver or chat != req.chat:
            self._refuse(
                req, who, chat, "pressed in another chat" if approver else "not an approver"
            )
            return Press(False, "only the configured approvers can answer this request")
        if req.future.get_loop().time() >= req.deadline:
            self._end(req, Resolution(False, "expired"))
            self._tell_expired(req)
            return Press(False, "this request expired")
        if choice == "approve-similar" and req.similar is None:
            return Press(False, "approve similar is not offered for this call")
        if choice not in ("approve", "approve-similar", "reject"):
            return Press(False, f"unknown choice {choice!r}")
        how = {"approve": "approved", "approve-similar": "approved-similar"}.get(choice, "rejected")
        detail = (note or "").strip() or None if choice == "reject" else None
        self._end(req, Resolution(choice != "reject", how, who, detail))  # raises if unaudited
        if choice == "approve-similar" and req.similar is not None:
            self._similar.setdefault(req.session, set()).add(req.similar)
        return Press(True, how)

    def close(self) -> int:
        """The daemon stops: every pending request ends denied, audited where it can be.
        Returns how many did; raises AuditError afterwards if any could not be audited."""
        self._closed = True
        waiting = list(self._pending.values())
        self._pending.clear()
        failed: AuditError | None = None
        for who in list(self._refused):
            try:
                self._flush_refused(who)
            except AuditError as exc:  # no later try now: said here, and raised below
                log.error(
                    "refused presses could not be audited at shutdown; their count is lost",
                    who=who,
                    count=self._refused[who].count,
                    error=str(exc),
                )
                failed = failed or exc
        for req in waiting:
            try:
                self._end(req, Resolution(False, "shutdown"))
            except AuditError as exc:
                failed = failed or exc  # denied all the same (_end saw to it)
        if failed is not None:
            raise failed
        return len(waiting)

    def clear_session(self, session: str) -> None:
        self._similar.pop(session, None)

    # --- inside ---------------------------------------------------------------------------

    def _end(self, req: ApprovalRequest, result: Resolution) -> Resolution:
        """Resolve once: a second answer to the same request changes nothing. The answer is
        audited before it takes effect; if it cannot be, the request ends denied."""
        self._pending.pop(req.id, None)
        if req.future.done():
            return req.future.result()
        try:
            self._event(result.how, req.session, req.tool, req.summary, request=req.id,
                        who=result.who, detail=result.detail)  # fmt: skip
        except AuditError:
            if not req.future.done():
                req.future.set_result(Resolution(False, "unaudited", result.who))
            raise
        if not req.future.done():
            req.future.set_result(result)
        return result

    def _refuse(self, req: ApprovalRequest, who: str, chat: str, why: str) -> None:
        """Audit a refused press: in full when it is the person's first in the window, else
        counted, and the count written when the window ends."""
        loop = req.future.get_loop()
        now = loop.time()
        key = who if who in self._refused or len(self._refused) < _REFUSERS else "*"
        last = {"request": req.id, "session": req.session, "tool": req.tool,
                "summary": req.summary, "chat": chat, "why": why, "who": who}  # fmt: skip
        state = self._refused.get(key)
        if state is not None and now - state.started >= self.refused_window:
            # over, and its end has not run yet (both due on this turn of the loop)
            try:
                self._flush_refused(key)
                state = None
            except AuditError as exc:
                self._keep(key, exc)  # a new window for the count; this press joins it
        if state is not None:
            state.counted(who, last, shared=key == "*")
            return
        # Every window ends, with or without a count: a window that never ended would keep
        # its place in the table for good, and everyone past it would go unnamed.
        self._refused[key] = _Refusals(
            now, flush=loop.call_later(self.refused_window, self._flush_later, key)
        )
        self._event("refused", req.session, req.tool, req.summary, request=req.id, who=who,
                    chat=chat, why=why)  # fmt: skip

    def _flush_refused(self, key: str) -> None:
        """Write the count of a window's further refusals (if any), and end the window.
        Raises AuditError when the count cannot be written: the window then stays, with
        its count, for whoever tries next."""
        state = self._refused.get(key)
        if state is None:
            return
        if state.flush is not None:
            state.flush.cancel()
            state.flush = None
        if state.count:
            last = state.last
            shared: dict[str, Any] = {}
            if key == "*":  # people past the table: name who pressed, as far as kept
                shared = {"ids": list(state.ids), "unnamed": state.unnamed or None}
            self._event("refused-repeated", last["session"], last["tool"], last["summary"],
                        request=last["request"], who=key,
                        chat=last["chat"], why=last["why"], count=state.count,
                        window_seconds=self.refused_window, **shared)  # fmt: skip
        del self._refused[key]

    def _flush_later(self, key: str) -> None:
        # On the loop, at a window's end: nothing is decided here, so nothing opens; but a
        # count that cannot be written is neither lost nor quiet.
        try:
            self._flush_refused(key)
        except AuditError as exc:
            self._keep(key, exc)

    def _keep(self, key: str, exc: AuditError) -> None:
        """A count that could not be written: said as an error, and kept in a new window
        (later presses add to it), whose end tries again."""
        state = self._refused[key]
        log.error(
            "refused presses could not be audited; their count is kept for the next try",
            who=key, count=state.count, error=str(exc),
        )  # fmt: skip
        loop = asyncio.get_running_loop()
        state.started = loop.time()
        state.flush = loop.call_later(self.refused_window, self._flush_later, key)

    def _tell_expired(self, req: ApprovalRequest) -> None:
        """Tell the connector, without waiting for it: the answer is no either way."""
        if self.on_expired is None:
            return

        async def tell() -> None:
            with contextlib.suppress(Exception):
                await self.on_expired(req)  # type: ignore[misc]

        task = asyncio.get_running_loop().create_task(tell())
        self._telling.add(task)
        task.add_done_callback(self._telling.discard)

    def _event(self, event: str, session: str, tool: str, summary: str, **more: Any) -> None:
        self.audit.append(
            "approval",
            {"event": event, "session": session, "tool": tool, "summary": summary[:500],
             **{k: v for k, v in more.items() if v is not None}},
        )  # fmt: skip
