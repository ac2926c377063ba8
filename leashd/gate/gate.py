"""The gate: what the daemon calls for every tool call. Sandbox and policy decide, a human
answers what needs approval, and the outcome is written to the audit log before it is returned.

Nothing here can produce an allow by accident. An exception anywhere, an evaluator error, a
policy that fails to reload, an approval channel that is down, a timeout, a cancelled task, an
audit record that cannot be written: each ends in deny. The only allow is a decision that was
`allow` (or approved by an approver) and audited.

Paths are resolved against the session's working directory. The agent's shell is expected to
start every command there (the daemon runs Claude Code with its working directory kept; a `cd`
inside one command is followed by the facts, unit by unit).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import os
import threading
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import structlog

from leashd.approvers.ai import AIApprover, CallContext, too_large
from leashd.approvers.plans import PlanReviewer
from leashd.approvers.routing import why_not_ai
from leashd.gate.approvals import ApprovalCoordinator, ApprovalRequest, Notify, Resolution
from leashd.gate.audit import AuditError, AuditLog, capped_input
from leashd.gate.events import EventBus, printable
from leashd.gate.modes import PLAN_TOOL, apply_mode
from leashd.gate.sandbox import SandboxConfig, apply_sandbox
from leashd.policy.compiler import CompiledPolicy
from leashd.policy.decision import Decision, UnitDecision
from leashd.policy.evaluator import Evaluator
from leashd.policy.facts import Context
from leashd.policy.ir import STRICTNESS
from leashd.policy.loader import DEFAULT_POLICIES, load_compiled

log = structlog.get_logger("leashd.gate")
# The same logger as the standard library has it (the daemon logs through it): whether DEBUG
# is on, asked before a decision's log line is built.
_stdlib_log = logging.getLogger("leashd.gate")

_QUICK_INPUT = 16384  # characters of an input whose remembered decision is used on the loop
MAX_UNITS_RECORDED = 64  # a record lists at most this many units (and says how many there were)
_SHOWN = 500  # characters of a unit or a summary kept in records and events
_RECENT_CALLS = 8  # decisions of a session the AI approver is shown
_RECENT_SESSIONS = 256  # sessions whose recent decisions are kept


@dataclass
class Session:
    """What the gate knows of a session: who it talks to, where it works (and the directories
    approved for it alone), its mode."""

    id: str
    chat: str
    cwd: str
    mode: str = "default"
    # Directories approved for this session alone, on top of the gate's: its workspace's
    # (leashd/workspaces.py). Inside them for its calls and writable in its turns' OS
    # sandbox; another chat's session, with dirs of its own or none, never gains them.
    dirs: tuple[str, ...] = ()
    # What the agent is told of where it works (the workspace's directories and branches),
    # appended to its system prompt for this session's turns; the gate does not read it.
    context: str = ""
    # The task this session's turn works on (leashd/tasks), if any: the AI approver is told
    # it (`task`: its id, phase and description) and keeps one breaker per task (`task_id`).
    task_id: str = ""
    task: str = ""


@dataclass(frozen=True)
class Verdict:
    """The gate's answer, and how it came about."""

    action: Literal["allow", "deny"]
    reason: str
    layer: str  # policy | default | sandbox | opaque | input | approval | error | audit | cancelled
    decision: Decision | None = None  # what sandbox and policy said, when they could say it
    request: ApprovalRequest | None = None
    resolution: Resolution | None = None
    seq: int | None = None  # the audit record of this verdict

    @property
    def allowed(self) -> bool:
        return self.action == "allow"


@dataclass(frozen=True)
class Reload:
    ok: bool
    message: str
    errors: tuple[str, ...] = field(default=())


@dataclass
class _Call:
    """One call on its way through the gate: what its record is made of."""

    session: Session
    tool: Any
    tool_input: Any
    kept: dict[str, Any] = field(default_factory=dict)  # the input as the record keeps it
    decision: Decision | None = None
    request: ApprovalRequest | None = None
    ai: dict[str, Any] | None = None  # what the AI approver did with it, for the record


class Gate:
    def __init__(
        self,
        compiled: CompiledPolicy,
        audit: AuditLog,
        approvals: ApprovalCoordinator | None = None,
        *,
        approved_dirs: Iterable[str] = (),
        home: str | None = None,
        sandbox: SandboxConfig | None = None,
        bus: EventBus | None = None,
        specs: Iterable[str] = (),
        temp_dirs: Iterable[str] | None = None,
        ai: AIApprover | None = None,
        reviewer: PlanReviewer | None = None,
    ) -> None:
        self.compiled = compiled
        # reviews the plan plan mode presents (ExitPlanMode) in place of a human's tap
        self.reviewer = reviewer
        # answers the calls a rule routes to it (`approver: ai`), within the hard floor
        # (approvers/routing.py); None: every question goes to a human
        self.ai = ai
        self._recent: OrderedDict[str, deque[str]] = OrderedDict()  # per session, for the AI
        self.audit = audit
        self.approvals = approvals
        self.sandbox = sandbox or SandboxConfig()
        self.bus = bus or EventBus()
        self.specs = tuple(specs)
        self.home = home
        # where writes need approval rather than being denied; None: the system's own
        self.temp_dirs = (
            None if temp_dirs is None else tuple(_directory(d, home) for d in temp_dirs)
        )
        self._dirs = tuple(dict.fromkeys(_directory(d, home) for d in approved_dirs))
        self._evaluators: dict[tuple[str, str], Evaluator] = {}
        self._lock = threading.Lock()  # reloads and directory changes may come from threads
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None  # see _decider
        self._deciding = threading.Lock()  # the evaluators' memos, one thread at a time
        self._reloading = threading.Lock()

    @classmethod
    def from_specs(cls, specs: Iterable[str], audit: AuditLog, **kwargs: Any) -> Gate:
        """A gate on the policies named by `specs` (built-in names or files, in order)."""
        specs = tuple(specs) or DEFAULT_POLICIES
        return cls(load_compiled(specs), audit, specs=specs, **kwargs)

    # --- what the gate is configured with, changeable at run time ------------------------------

    @property
    def approved_dirs(self) -> tuple[str, ...]:
        return self._dirs

    def approved_dirs_for(self, session: Session) -> tuple[str, ...]:
        """The directories `session` may work in: the gate's, then the session's own."""
        if not session.dirs:
            return self._dirs
        own = (_directory(d, self.home) for d in session.dirs)
        return tuple(dict.fromkeys((*self._dirs, *own)))

    @property
    def policy_timeout(self) -> float:
        """The policies' `approval_timeout_seconds` (merged key by key, the last file that
        sets it wins; 300 when none does): how long an approval asked now waits, unless the
        setting LEASHD_APPROVAL_TIMEOUT_SECONDS was given (ApprovalCoordinator.timeout_for).
        Read at each request, so a reload's new value holds for the approvals asked after."""
        return float(self.compiled.policy.settings.approval_timeout_seconds)

    def add_dir(self, path: str) -> str:
        """Approve a directory (`/dir`, `add-dir`). It must exist; returns it resolved. The
        change is audited before it takes effect."""
        resolved = _directory(path, self.home)
        if not os.path.isdir(resolved):
            raise ValueError(f"not a directory: {path}")
        with self._lock:
            if resolved not in self._dirs:
                self.audit.append("sandbox", {"event": "dir_added", "path": resolved})
                self._dirs = (*self._dirs, resolved)
                self._evaluators = {}
        return resolved

    def remove_dir(self, path: str) -> str:
        resolved = _directory(path, self.home)
        with self._lock:
            if resolved not in self._dirs:
                raise ValueError(f"not an approved directory: {path}")
            self.audit.append("sandbox", {"event": "dir_removed", "path": resolved})
            self._dirs = tuple(d for d in self._dirs if d != resolved)
            self._evaluators = {}
        return resolved

    def reload(self, specs: Iterable[str] | None = None) -> Reload:
        """Load the policies again (or others). If they do not load, the policy in force
        stays in force, and the failure is reported and audited."""
        wanted = tuple(specs) if specs is not None else self.specs
        with self._reloading:  # one at a time: an older load never replaces a newer one
            return self._reload(wanted)

    def _reload(self, wanted: tuple[str, ...]) -> Reload:
        try:
            if not wanted:
                # load_compiled(()) would mean the built-in defaults: never swap them in
                raise ValueError(
                    "this gate was not given policy files, so there is nothing to reload"
                )
            compiled = load_compiled(wanted)
        except Exception as exc:
            errors = tuple(str(exc).splitlines()) or (type(exc).__name__,)
            message = f"the policy was not reloaded, the one in force stays: {errors[0]}"
            _log_safely("policy reload failed", exc, "-")
            try:
                self.audit.append(
                    "policy",
                    {"event": "reload_failed", "specs": list(wanted), "error": str(exc)[:4000]},
                )
            except AuditError as audit_exc:
                self._audit_failed(audit_exc)
            self.bus.emit("policy.reload_failed", specs=list(wanted), error=str(exc))
            return Reload(False, message, errors)
        with self._lock:
            # audited first: if it cannot be, the old policy stays
            try:
                self.audit.append(
                    "policy",
                    {"event": "reloaded", "specs": list(wanted), "rules": len(compiled.rules)},
                )
            except AuditError as exc:
                self._audit_failed(exc)
                return Reload(False, f"the policy was not reloaded: {exc}", (str(exc),))
            self.compiled = compiled
            self.specs = wanted
            self._evaluators = {}
        self.bus.emit("policy.reloaded", specs=list(wanted), rules=len(compiled.rules))
        return Reload(True, f"reloaded: {len(compiled.rules)} rules")

    # --- deciding -------------------------------------------------------------------------------

    def decide(self, session: Session, tool: Any, tool_input: Any) -> Decision:
        """What sandbox and policy say of a call, before anyone is asked. Never raises."""
        try:
            with self._deciding:
                decision = self._evaluator(session).evaluate(tool, tool_input)
            return apply_mode(apply_sandbox(decision, self.sandbox), session.mode, tool)
        except Exception as exc:
            return Decision(
                "deny",
                None,
                f"internal error while deciding: {exc!r}",
                "error",
                error=f"{type(exc).__name__}: {exc}",
            )

    async def _decide_off_loop(
        self, session: Session, tool: Any, tool_input: Any
    ) -> tuple[dict[str, Any], Decision | None]:
        """The input as its record keeps it, and `decide` (None when the input cannot be
        recorded), on the gate's own thread. Most decisions take microseconds, but a large
        call can take up to the analysis bounds' worth (`leashd.limits`), and encoding a big
        input for its record grows with it too: on the event loop that would stall every
        chat and approval. One thread, and decisions are made in the order asked; the
        evaluators' memos are touched by one thread at a time (`_deciding`)."""
        remembered = self._remembered(session, tool, tool_input)
        if remembered is not None:
            return remembered
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._decider(), self._prepare, session, tool, tool_input)

    def _remembered(
        self, session: Session, tool: Any, tool_input: Any
    ) -> tuple[dict[str, Any], Decision | None] | None:
        """A decision the evaluator remembers, looked up on the event loop: a hop to the
        decision thread costs more than most decisions. Only for small inputs of scalars
        (their record is quick to encode), and only when the decision thread is not using
        the evaluators (their memos are not for two threads at once): else None, and the
        call goes to the thread."""
        if type(tool_input) is not dict or len(tool_input) > 16:
            return None
        size = 0
        for value in tool_input.values():
            if type(value) is str:
                size += len(value)
            elif value is not None and type(value) not in (int, float, bool):
                return None
        if size > _QUICK_INPUT or not self._deciding.acquire(blocking=False):
            return None
        try:
            ev = self._evaluators.get(_key(session))
            found = ev.remembered(tool, tool_input) if ev is not None else None
            if found is None:
                return None
            decision = apply_mode(apply_sandbox(found, self.sandbox), session.mode, tool)
        except Exception:  # the thread decides it, and says what went wrong
            return None
        finally:
            self._deciding.release()
        kept = capped_input(tool_input)
        return (kept, None) if "input_error" in kept else (kept, decision)

    def _prepare(
        self, session: Session, tool: Any, tool_input: Any
    ) -> tuple[dict[str, Any], Decision | None]:
        kept = capped_input(tool_input)
        if "input_error" in kept:
            return kept, None
        return kept, self.decide(session, tool, tool_input)

    def _decider(self) -> concurrent.futures.ThreadPoolExecutor:
        executor = self._executor
        if executor is None:
            with self._lock:
                if self._executor is None:
                    self._executor = concurrent.futures.ThreadPoolExecutor(
                        max_workers=1, thread_name_prefix="leashd-gate"
                    )
                executor = self._executor
        return executor

    async def check(
        self, session: Session, tool: Any, tool_input: Any, ask: Notify | None = None
    ) -> Verdict:
        """Decide a call, ask for approval where it is needed (through `ask`, the session's
        connector), audit the outcome and tell the event bus. Never raises, except that a
        cancelled call is recorded as denied and the cancellation goes on."""
        call = _Call(session, tool, tool_input)
        try:
            call.kept, found = await self._decide_off_loop(session, tool, tool_input)
            if found is None:  # what cannot be recorded is not done
                return self._final(
                    call, "deny", f"malformed tool call: {call.kept['input_error']}", "input"
                )
            decision = call.decision = found
            if decision.action == "require_approval":
                return await self._approve(call, decision, ask)
            return self._final(call, decision.action, decision.reason, decision.layer)
        except asyncio.CancelledError:
            self._final(
                call,
                "deny",
                "the call was cancelled before it was decided",
                "cancelled",
                Resolution(False, "cancelled") if call.request else None,
            )
            raise
        except Exception as exc:  # whatever it was, it is not an allow
            _log_safely("gate error", exc, session.id)
            return self._final(
                call, "deny", f"internal error in the gate: {type(exc).__name__}: {exc}", "error"
            )

    async def _approve(self, call: _Call, decision: Decision, ask: Notify | None) -> Verdict:
        if call.tool == PLAN_TOOL and call.session.task_id:
            why = "in a task the plan is your written answer: leashd has it reviewed"
            return self._final(call, "deny", why, "mode")
        if call.tool == PLAN_TOOL and decision.layer == "mode" and self.reviewer is not None:
            reviewed = await self._review_plan(self.reviewer, call)
            if reviewed is not None:
                return reviewed
        elif self.ai is not None and why_not_ai(call.tool, decision) is None:
            answered = await self._ask_ai(self.ai, call, decision)
            if answered is not None:
                return answered
        approvals = self.approvals
        if approvals is None or ask is None:
            fallback = call.ai.get("fallback") if call.ai else None
            why = f" (the AI approver stood down: {fallback})" if fallback else ""
            reason = f"needs approval, and nobody can be asked here{why}: {decision.reason}"
            return self._final(call, "deny", reason, "approval")
        session, tool = call.session, call.tool
        summary = summarize(tool, call.tool_input, decision)
        details = {
            "rule": decision.rule_name,
            "at": str(decision.rule.span) if decision.rule is not None else None,
            "reason": decision.reason,
            "layer": decision.layer,
            **call.kept,
        }
        bus = self.bus

        async def show(req: ApprovalRequest) -> None:
            call.request = req  # from here on, the call's record names its request
            bus.emit(
                "approval.requested",
                session=session.id,
                chat=session.chat,
                tool=tool,
                request=req.id,
                summary=summary[:_SHOWN],
                rule=decision.rule_name,
                reason=decision.reason,
                similar=str(req.similar) if req.similar else None,
            )
            await ask(req)

        req, result = await approvals.request(
            session.id,
            session.chat,
            tool,
            summary,
            decision,
            ask=show,
            details=details,
            tool_input=call.tool_input,
            timeout=self.policy_timeout,
        )
        call.request = req
        bus.emit(
            "approval.resolved",
            session=session.id,
            chat=session.chat,
            tool=tool,
            request=req.id if req else None,
            approved=result.approved,
            how=result.how,
            who=result.who,
        )
        action = "allow" if result.approved else "deny"
        waited = req.timeout if req is not None else approvals.timeout_for(self.policy_timeout)
        reason = _approval_reason(result, waited)
        return self._final(call, action, reason, "approval", result)

    async def _ask_ai(self, ai: AIApprover, call: _Call, decision: Decision) -> Verdict | None:
        """The AI approver's verdict, or None when a human must answer after all (its breaker
        is tripped, or it failed: that trips it)."""
        session = call.session
        breaker = ai.breaker(session.task_id or f"session:{session.id}")
        if not breaker.closed:
            call.ai = {"fallback": breaker.tripped, "breaker": breaker.state()}
            return None
        ctx = CallContext(
            tool=str(call.tool),
            tool_input=call.tool_input,
            summary=summarize(call.tool, call.tool_input, decision)[:_SHOWN],
            rule=decision.rule_name,
            rule_reason=decision.reason,
            cwd=session.cwd,
            task=session.task,
            recent=tuple(self._recent.get(session.id, ())),
        )
        oversized = too_large(ctx)
        if oversized is not None:  # not the approver's failure: its breaker is not touched
            call.ai = {"fallback": oversized}
            return None
        judgement = await ai.judge(ctx)
        breaker.record(judgement.outcome, judgement.reason)
        call.ai = {
            "approved_by": "ai",
            "approver_outcome": judgement.outcome,
            "approver_reason": judgement.reason,
            "approver_cost_usd": round(judgement.cost_usd, 6),
            "breaker": breaker.state(),
            **({"approver_model": ai.model} if ai.model else {}),
        }
        self.bus.emit(
            "approval.ai",
            session=session.id,
            chat=session.chat,
            tool=call.tool,
            outcome=judgement.outcome,
            reason=judgement.reason,
            breaker=breaker.state(),
        )
        if judgement.outcome == "error":
            call.ai["fallback"] = breaker.tripped or judgement.reason
            return None
        if judgement.approved:
            return self._final(
                call, "allow", f"approved by the AI approver: {judgement.reason}", "approval",
                Resolution(True, "ai-approved", "ai", judgement.reason),
            )  # fmt: skip
        return self._final(
            call, "deny", f"denied by the AI approver: {judgement.reason}", "approval",
            Resolution(False, "ai-denied", "ai", judgement.reason),
        )  # fmt: skip

    async def _review_plan(self, reviewer: PlanReviewer, call: _Call) -> Verdict | None:
        """The AI plan reviewer's verdict on a plan: approved (plan mode ends), or sent back
        with its feedback as the reason the agent reads; None when the human decides after
        all (rounds used up, the reviewer failed or its breaker is tripped)."""
        session = call.session
        scope = session.task_id or f"session:{session.id}"
        breaker = reviewer.breakers(scope)
        rounds = reviewer.rounds.get(scope, 0)
        if not breaker.closed or rounds >= reviewer.max_rounds:
            why = breaker.tripped or f"it sent the plan back {rounds} times"
            call.ai = {"fallback": why, "approver_role": "plan-reviewer"}
            return None
        tool_input = call.tool_input if isinstance(call.tool_input, Mapping) else {}
        plan = str(tool_input.get("plan") or "")
        review = await reviewer.review(session.task or "an interactive session in plan mode",
                                       "", plan)  # fmt: skip
        breaker.record("error" if review.outcome == "error" else "approved", review.feedback)
        call.ai = {
            "approved_by": "ai",
            "approver_role": "plan-reviewer",
            "approver_outcome": review.outcome,
            "approver_reason": review.feedback,
            "approver_cost_usd": round(review.cost_usd, 6),
            "breaker": breaker.state(),
        }
        if review.outcome == "error":
            call.ai["fallback"] = review.feedback
            return None
        if review.approved:
            reviewer.rounds.pop(scope, None)
            return self._final(
                call, "allow", f"plan approved by the AI reviewer: {review.feedback}",
                "approval", Resolution(True, "ai-approved", "ai", review.feedback),
            )  # fmt: skip
        reviewer.rounds[scope] = rounds + 1
        return self._final(
            call, "deny", f"the AI plan reviewer sent the plan back: {review.feedback}",
            "approval", Resolution(False, "ai-revise", "ai", review.feedback),
        )  # fmt: skip

    def breaker_state(self, session: Session) -> dict[str, Any] | None:
        """The AI approver's breaker for `session`'s task (or the session), if it has one."""
        if self.ai is None:
            return None
        return self.ai.state(session.task_id or f"session:{session.id}")

    def _remember(self, call: _Call, action: str) -> None:
        """The session's last decisions, for the AI approver's context (bounded both ways)."""
        if self.ai is None:
            return
        recent = self._recent.get(call.session.id)
        if recent is None:
            if len(self._recent) >= _RECENT_SESSIONS:
                self._recent.popitem(last=False)
            recent = self._recent[call.session.id] = deque(maxlen=_RECENT_CALLS)
        decision = call.decision
        shown = summarize(call.tool, call.tool_input, decision) if decision else str(call.tool)
        recent.append(f"{action}: {shown[:200]}")

    # --- the record, then the answer --------------------------------------------------------

    def _final(
        self,
        call: _Call,
        action: str,
        reason: str,
        layer: str,
        resolution: Resolution | None = None,
    ) -> Verdict:
        """Audit the outcome; only an audited allow is an allow."""
        verdict_action: Literal["allow", "deny"] = "allow" if action == "allow" else "deny"
        decision, req = call.decision, call.request
        try:
            record = self.audit.append(
                "decision", _record(call, verdict_action, reason, layer, resolution)
            )
        except Exception as exc:  # AuditError, or a record that could not even be built
            self._audit_failed(exc)
            why = f"the audit log cannot be written, so nothing runs: {exc}"
            verdict = Verdict("deny", why, "audit", decision, req, resolution)
            written = getattr(exc, "written", None)
            if written is not None:
                # The record reached the file, unconfirmed (a failed fsync): it may say allow.
                # Say at once what happened; if this cannot be written either, the writer's
                # next append voids it (audit.py).
                with contextlib.suppress(Exception):
                    denied = _record(call, "deny", why, "audit", resolution)
                    self.audit.append("decision", {**denied, "voids": written["seq"]})
        else:
            verdict = Verdict(
                verdict_action, reason, layer, decision, req, resolution, record["seq"]
            )
        with contextlib.suppress(Exception):  # context for the AI; never a reason to fail
            self._remember(call, verdict.action)
        self._tell(call, verdict)
        return verdict

    def void(
        self, session: Session, tool: Any, verdict: Verdict, reason: str, layer: str
    ) -> Verdict:
        """An allowed call did not run after all (its answer came after the CLI gave up on
        the hook, or the CLI reports it did not execute it): record that, naming the allow's
        record, which stays as written. Returns the deny to answer with, if anyone still
        listens. Never raises."""
        fields = {
            "session": session.id, "chat": session.chat, "cwd": session.cwd,
            "mode": session.mode, "tool": tool if isinstance(tool, str) else repr(tool),
            "decision": "deny", "reason": reason, "layer": layer, "voids": verdict.seq,
        }  # fmt: skip
        seq = None
        try:
            seq = self.audit.append("decision", fields)["seq"]
        except Exception as exc:
            self._audit_failed(exc)
        denied = Verdict("deny", reason, layer, verdict.decision, verdict.request, None, seq)
        with contextlib.suppress(Exception):
            self.bus.emit("tool.denied", session=session.id, chat=session.chat, tool=tool,
                          reason=reason, layer=layer, rule=None, seq=seq)  # fmt: skip
        return denied

    def sandbox_blocked(
        self, session: Session, tool: Any, tool_input: Any, blocked: list[str]
    ) -> int | None:
        """The OS sandbox refused part of an allowed call (what the program printed, one line
        each): recorded, and told on the bus. Returns the record's seq. Never raises: the
        refusal held whether or not it is written down."""
        fields = {
            "session": session.id, "chat": session.chat, "cwd": session.cwd,
            "tool": tool if isinstance(tool, str) else repr(tool),
            **capped_input(tool_input), "event": "blocked", "blocked": blocked[:20],
            # what the program printed, not a report of the kernel's: a command can print
            # these words without the sandbox having refused anything
            "source": "output",
        }  # fmt: skip
        seq = None
        try:
            seq = self.audit.append("sandbox", fields)["seq"]
        except Exception as exc:
            _log_safely("could not record what the sandbox blocked", exc, session.id)
        with contextlib.suppress(Exception):
            self.bus.emit("sandbox.blocked", session=session.id, chat=session.chat, tool=tool,
                          blocked=blocked[:20], seq=seq)  # fmt: skip
        return seq

    def _tell(self, call: _Call, verdict: Verdict) -> None:
        try:
            if _stdlib_log.isEnabledFor(logging.DEBUG):  # a cached check; the call costs µs
                decision = verdict.decision
                log.debug("tool_decision", session=call.session.id, tool=call.tool,
                          decision=verdict.action, layer=verdict.layer,
                          rule=decision.rule_name if decision is not None else None,
                          seq=verdict.seq)  # fmt: skip
            self._emit_verdict(call.session, call.tool, verdict)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # the verdict is recorded and stands; only the telling failed
            _log_safely("could not tell the event bus", exc, call.session.id)

    def _emit_verdict(self, session: Session, tool: Any, verdict: Verdict) -> None:
        bus = self.bus
        decision = verdict.decision
        if decision is not None and bus.listens("sandbox.violation"):
            for u in decision.units:
                if u.layer == "sandbox":
                    bus.emit(
                        "sandbox.violation",
                        session=session.id,
                        tool=tool,
                        unit=u.unit.describe()[:_SHOWN],
                        action=u.action,
                        reason=u.reason,
                        paths=[p.shown() for p in u.unit.paths if p.where != "inside"],
                    )
        bus.emit(
            "tool.allowed" if verdict.allowed else "tool.denied",
            session=session.id,
            chat=session.chat,
            tool=tool,
            reason=verdict.reason,
            layer=verdict.layer,
            rule=decision.rule_name if decision is not None else None,
            seq=verdict.seq,
        )

    def _audit_failed(self, exc: Exception) -> None:
        _log_safely("audit log write failed; the call is denied", exc, "-")
        self.bus.emit("audit.failed", error=str(exc))

    # --- after a crash --------------------------------------------------------------------------

    def recover(self) -> int:
        """Record as denied every approval that was still waiting when the daemon last
        stopped (killed, crashed): call before taking calls. Returns how many there were."""
        left = pending_in_log(self.audit.path)
        for rec in left:
            self.audit.append(
                "approval",
                {
                    "event": "restart",
                    "session": rec.get("session"),
                    "tool": rec.get("tool"),
                    "summary": rec.get("summary"),
                    "request": rec["request"],
                },
            )
            fields = {k: rec[k] for k in ("session", "chat", "tool", "rule", "at") if k in rec}
            for k in ("input", "input_sha256", "input_excerpt", "input_chars"):
                if k in rec:
                    fields[k] = rec[k]
            self.audit.append(
                "decision",
                {
                    **fields,
                    "decision": "deny",
                    "layer": "approval",
                    "request": rec["request"],
                    "approval": "restart",
                    "policy_decision": "require_approval",
                    "reason": "the daemon stopped while this call waited for approval",
                },
            )
        return len(left)

    def _evaluator(self, session: Session) -> Evaluator:
        key = _key(session)
        evaluators = self._evaluators
        ev = evaluators.get(key)
        if ev is None:
            dirs = self.approved_dirs_for(session)
            ctx = Context.create(session.cwd, self.home, dirs, session.mode)
            if not dirs:  # no approved directory: nothing is inside
                ctx = replace(ctx, approved_dirs=("/\x00none",))
            if self.temp_dirs is not None:
                ctx = replace(ctx, temp_dirs=self.temp_dirs)
            ev = Evaluator(self.compiled, ctx)
            if len(evaluators) >= 256:
                evaluators.clear()
            evaluators[key] = ev
        return ev


def _key(session: Session) -> tuple[str, str, tuple[str, ...]]:
    """What an evaluator is made for: one session's directories never decide another's."""
    return (session.cwd, session.mode, session.dirs)


def _directory(path: str, home: str | None) -> str:
    return os.path.realpath(
        os.path.expanduser(path) if home is None or not path.startswith("~") else home + path[1:]
    )


def summarize(tool: Any, tool_input: Any, decision: Decision) -> str:
    """What an approver is shown: a shell command whole; a file tool's paths; else the input."""
    try:
        return _summary(tool, tool_input, decision)
    except RecursionError:
        return f"{tool} (an input nested too deeply to show)"


def _summary(tool: Any, tool_input: Any, decision: Decision) -> str:
    if isinstance(tool_input, Mapping):
        if tool == "Bash" and isinstance(tool_input.get("command"), str):
            return tool_input["command"]
        paths = [p.shown() for u in decision.units for p in u.unit.paths]
        if paths and not str(tool).startswith("mcp__"):
            return f"{tool} {' '.join(dict.fromkeys(paths))}"
    try:
        shown = json.dumps(tool_input, ensure_ascii=False, default=repr)
    except (TypeError, ValueError):
        shown = repr(tool_input)
    return f"{tool} {shown}"


def _approval_reason(result: Resolution, timeout: float) -> str:
    match result.how:
        case "approved" | "approved-similar":
            return f"approved by {result.who}"
        case "similar":
            return "covered by an earlier 'approve similar' in this session"
        case "rejected":
            said = f": {result.detail}" if result.detail else ""
            return f"rejected by {result.who}{said}"
        case "expired":
            return f"no answer within {timeout:g} s"
        case "shutdown":
            return "the daemon is stopping"
        case "channel-failed":
            return f"the approval could not be asked: {result.detail}"
        case _:
            return f"not approved ({result.how})"


def _unit_record(u: UnitDecision) -> dict[str, Any]:
    out: dict[str, Any] = {
        "unit": u.unit.describe()[:_SHOWN],
        "decision": u.action,
        "layer": u.layer,
        "reason": u.reason[:_SHOWN],
    }
    if u.rule is not None:
        out["rule"] = u.rule.name
        out["at"] = str(u.rule.span)
    return out


def _record(
    call: _Call, action: str, reason: str, layer: str, resolution: Resolution | None
) -> dict[str, Any]:
    session, tool, decision, req = call.session, call.tool, call.decision, call.request
    rec: dict[str, Any] = {
        "session": session.id,
        "chat": session.chat,
        "cwd": session.cwd,
        **({"session_dirs": list(session.dirs)} if session.dirs else {}),
        "mode": session.mode,
        "tool": tool if isinstance(tool, str) else repr(tool),
        **call.kept,
        "decision": action,
        "reason": reason,
        "layer": layer,
    }
    if decision is not None:
        rec["rule"] = decision.rule_name
        if decision.rule is not None:
            rec["at"] = str(decision.rule.span)
        if decision.action != action or layer == "approval":
            rec["policy_decision"] = decision.action
            rec["policy_reason"] = decision.reason[:_SHOWN]
        if decision.error is not None:
            rec["error"] = decision.error
        units = decision.units
        if len(units) > MAX_UNITS_RECORDED:
            # the ones that decided first: a payload in the 65th unit is not left out
            units = sorted(units, key=lambda u: -STRICTNESS[u.action])[:MAX_UNITS_RECORDED]
            rec["units_total"] = len(decision.units)
        rec["units"] = [_unit_record(u) for u in units]
    if call.ai is not None:
        rec.update(call.ai)
    if req is not None:
        rec["request"] = req.id
    if resolution is not None:
        rec["approval"] = resolution.how
        if resolution.who is not None:
            rec["who"] = resolution.who
    return rec


def decision_record(
    session: Session,
    tool: Any,
    action: str,
    reason: str,
    layer: str,
    kept: dict[str, Any],
    decision: Decision | None = None,
) -> dict[str, Any]:
    """The audit record of one decision made outside `Gate.check` (the Claude Code hook
    answers for the CLI), built exactly as the gate builds its own; `kept` is the input as
    the record keeps it (`capped_input`)."""
    return _record(_Call(session, tool, None, kept, decision), action, reason, layer, None)


def _log_safely(message: str, exc: BaseException, session: str) -> None:
    """Log a failure; logging itself failing (a closed stdout, an unprintable name) must not
    turn a deny into an exception."""
    with contextlib.suppress(Exception):
        log.error(
            message, session=printable(session), error=printable(f"{type(exc).__name__}: {exc}")
        )


def pending_in_log(path: str | Path) -> list[dict[str, Any]]:
    """The approval requests of an audit log whose call never got its decision record and
    was not already denied by the approval's end (no answer yet, or a yes that never took
    effect): each one's `requested` record. Only lines that name a request are parsed."""
    waiting: dict[str, dict[str, Any]] = {}
    if not os.path.exists(path):
        return []
    with open(path, "rb") as f:
        for line in f:
            if b'"request"' not in line:
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                continue  # a damaged line is `audit verify`'s to report
            rid = rec.get("request")
            if not isinstance(rid, str):
                continue
            kind, event = rec.get("kind"), rec.get("event")
            if kind == "approval" and event == "requested":
                waiting[rid] = rec
            elif kind == "decision" or (kind == "approval" and event in _ENDS_IN_NO):
                waiting.pop(rid, None)
    return list(waiting.values())


# The ends of an approval that are a no by themselves (the call was denied right there).
_ENDS_IN_NO = frozenset(
    ("rejected", "expired", "cancelled", "shutdown", "channel-failed", "unaudited", "restart")
)
