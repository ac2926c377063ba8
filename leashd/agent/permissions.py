"""Every tool call of the agent goes through the gate, by two doors of the Claude Code CLI.

The `PreToolUse` hook sees every call, also those the CLI would allow on its own, and starts
the gate's check. A check that ends at once (allow or deny) is answered there; the deny's
reason goes back to the model, so it knows why. A check that needs a human is answered
"ask": the approval is already on its way to the connector, and the CLI then calls
`can_use_tool`, which waits for the same check to end.

`can_use_tool` with no check of the hook's to wait for (a CLI that skipped the hook) runs a
whole check of its own: nothing is allowed without the gate. Any failure here is a deny.

The audit log must say what happened, not only what was decided. The hook answers within
`ANSWER_WITHIN`, before the CLI gives up on it: a check still running then is cancelled (and
recorded denied), and an allow that comes later is voided by a second record, since the CLI
has blocked the call by then. And when the CLI reports that an allowed call was not executed
(its tool result says so), that is recorded too.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from leashd.gate.approvals import ApprovalRequest, Notify
from leashd.gate.gate import Gate, Session, Verdict

log = structlog.get_logger(__name__)

# How long the hook may take before the CLI gives up on it (and, with on_failure="block",
# blocks the call). The hook itself never waits for a human.
HOOK_TIMEOUT = 120.0
# How long the hook itself waits for the gate, so that its answer reaches the CLI while the
# CLI still listens; None: derived from HOOK_TIMEOUT (see answer_within).
ANSWER_WITHIN: float | None = None
# What the CLI's tool result says when it did not run a call (a hook that timed out or
# failed, a host that reconnected), word for word from the CLI bundled with the SDK. A result
# must begin with one of them: a call that ran can print these words too (`echo 'The tool
# call was not executed'`), and its allow must not be voided by its own output.
NOT_EXECUTED = re.compile(
    r"\s*(?:<tool_use_error>\s*)?(?:"
    r"PreToolUse hook did not respond before its timeout \(host client may be unreachable\)\. "
    r"The tool call was not executed;"
    r"|PreToolUse hook failed with an unexpected error\. The tool call was not executed;"
    r"|The SDK host reconnected before its PreToolUse hook answered, so this tool call was not "
    r"executed\.)"
)
_REMEMBERED = 1024  # allowed calls kept until their result comes, at most


class GateBridge:
    """The gate, as one agent session's hook and permission callback."""

    def __init__(
        self,
        gate: Gate,
        session: Callable[[], Session],
        ask: Notify | None,
        on_verdict: Callable[[str, Any, Verdict], Awaitable[None]] | None = None,
        answer_within: float | None = None,
    ) -> None:
        self.gate = gate
        self._session = session  # read at each call: the mode may change mid-turn
        self._ask = ask
        self._on_verdict = on_verdict
        self._checks: dict[str, tuple[str, dict[str, Any], asyncio.Task[Verdict]]] = {}
        self.answer_within = answer_within if answer_within is not None else _answer_within()
        # tool_use_id -> (tool, verdict) of the calls allowed, until the CLI reports on them
        self._allowed: OrderedDict[str, tuple[Any, Verdict]] = OrderedDict()
        # tool_use_id -> what the CLI said, for calls it did not run before the gate answered
        self._not_run: OrderedDict[str, str] = OrderedDict()

    # --- the hook ---------------------------------------------------------------------------

    async def pre_tool_use(
        self, hook_input: Any, tool_use_id: str | None, context: Any
    ) -> dict[str, Any]:
        try:
            tool = hook_input.get("tool_name")
            tool_input = hook_input.get("tool_input")
            use_id = tool_use_id or hook_input.get("tool_use_id")
            asking = asyncio.Event()
            loop = asyncio.get_running_loop()
            started = loop.time()
            seen: list[Verdict] = []
            task = asyncio.ensure_future(self._check(tool, tool_input, self._notify(asking), seen))
            waiter = asyncio.ensure_future(asking.wait())
            try:
                await asyncio.wait(
                    (task, waiter), timeout=self.answer_within, return_when=asyncio.FIRST_COMPLETED
                )
            except asyncio.CancelledError:
                # nobody takes this hook's answer any more (the turn ended, the CLI went away):
                # the call cannot run, so no allow may be recorded for it alone
                if not asking.is_set():
                    self._void_when_done(task, tool, seen, "the hook's answer was not taken")
                    task.cancel()
                    # waited for, so that the void is written before the hook is gone; a
                    # second cancellation here ends the wait, not the void
                    await asyncio.shield(asyncio.wait((task,)))
                raise
            finally:
                waiter.cancel()
            if not task.done() and not asking.is_set():
                # the CLI is about to give up on the hook and block the call: the check ends
                # denied (recorded as cancelled), so no allow can be recorded after it
                late = f"the gate did not answer within {self.answer_within:g} s"
                voided = self._void_when_done(task, tool, seen, late)
                task.cancel()
                await asyncio.wait((task,))
                if voided:  # decided and recorded, then held up telling
                    return _hook_answer(voided[0])
                return _hook_deny(late)
            if task.done():
                verdict = task.result()
                if verdict.allowed and loop.time() - started > self.answer_within:
                    # decided while the loop could not answer (a long decision on it): the
                    # CLI has blocked the call by now, so the allow must not stand alone
                    late = f"the allow came after {self.answer_within:g} s, too late for the CLI"
                    return _hook_answer(self._void(tool, verdict, late, "hook"))
                if verdict.allowed and use_id in self._not_run:
                    said = self._not_run.pop(use_id)  # the CLI went on without the answer
                    return _hook_answer(self._void(tool, verdict, _not_run_reason(said), "agent"))
                if verdict.allowed and use_id:
                    self._remember(use_id, tool, verdict)
                return _hook_answer(verdict)
            if not use_id:  # nothing can_use_tool could find it by: nobody may say yes
                task.cancel()
                return _hook_deny("a call without a tool_use_id cannot be approved")
            self._checks[use_id] = (tool, tool_input, task)
            return {
                "hookSpecificOutput": {
                    "hookEventName": "PreToolUse",
                    "permissionDecision": "ask",
                    "permissionDecisionReason": "waiting for approval",
                }
            }
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # never an allow
            log.error("hook failed", error=repr(exc))
            return _hook_deny(f"internal error in the gate's hook: {type(exc).__name__}")

    # --- the permission callback ------------------------------------------------------------

    async def can_use_tool(self, tool: str, tool_input: dict[str, Any], context: Any) -> Any:
        from claude_agent_sdk import PermissionResultAllow, PermissionResultDeny

        try:
            use_id = getattr(context, "tool_use_id", None)
            pending = self._checks.pop(use_id, None) if use_id else None
            if pending is not None:
                seen_tool, seen_input, task = pending
                if seen_tool != tool or _canon(seen_input) != _canon(tool_input):
                    task.cancel()
                    return PermissionResultDeny(
                        message="denied: the call changed between its check and its approval"
                    )
                verdict = await task
            else:
                verdict = await self._check(tool, tool_input, self._ask)
            if verdict.allowed:
                if use_id:
                    self._remember(use_id, tool, verdict)
                return PermissionResultAllow()
            return PermissionResultDeny(message=_deny_text(verdict))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("permission callback failed", error=repr(exc))
            return PermissionResultDeny(message=f"denied: internal error ({type(exc).__name__})")

    # --- what the CLI reports ---------------------------------------------------------------

    def tool_result(self, tool_use_id: str, is_error: bool, content: Any) -> None:
        """A tool result from the CLI's stream. An allowed call the CLI says it did not
        execute gets a record that says so."""
        allowed = self._allowed.pop(tool_use_id, None)
        if not is_error:
            return
        text = result_text(content)
        if not NOT_EXECUTED.match(text):
            return
        if allowed is not None:
            tool, verdict = allowed
            self._void(tool, verdict, _not_run_reason(text), "agent")
        else:  # the gate has not answered yet: its allow, if it comes, is voided then
            self._not_run[tool_use_id] = text
            while len(self._not_run) > _REMEMBERED:
                self._not_run.popitem(last=False)

    # --- inside ---------------------------------------------------------------------------

    def _remember(self, use_id: str, tool: Any, verdict: Verdict) -> None:
        self._allowed[use_id] = (tool, verdict)
        while len(self._allowed) > _REMEMBERED:
            self._allowed.popitem(last=False)

    def _void_when_done(
        self, task: asyncio.Task[Verdict], tool: Any, seen: list[Verdict], reason: str
    ) -> list[Verdict]:
        """When the check ends, however it ends and whatever has become of the hook by then,
        void the allow it recorded: the CLI never takes this answer. A done callback, not
        code after an await, since the hook can be cancelled (again) while it waits. Returns
        the list the void's deny is put in (once the check has ended)."""
        voided: list[Verdict] = []

        def done(_: asyncio.Task[Verdict]) -> None:
            if seen and seen[0].allowed:
                try:
                    voided.append(self._void(tool, seen[0], reason, "hook"))
                except Exception as exc:  # Gate.void never raises; this is the last word
                    log.error("could not void an allow the CLI never took", error=repr(exc))

        # callbacks run in the order added: this one before any wait for the task returns
        task.add_done_callback(done)
        return voided

    def _void(self, tool: Any, verdict: Verdict, reason: str, layer: str) -> Verdict:
        try:
            session = self._session()
        except Exception:  # the record still names the allow it voids
            session = Session("-", "-", "-")
        return self.gate.void(session, tool, verdict, reason, layer)

    async def _check(
        self, tool: Any, tool_input: Any, ask: Notify | None, seen: list[Verdict] | None = None
    ) -> Verdict:
        verdict = await self.gate.check(self._session(), tool, tool_input, ask)
        if seen is not None:
            seen.append(verdict)  # recorded: whoever cancels this now knows what it says
        if self._on_verdict is not None:
            try:
                await self._on_verdict(str(tool), tool_input, verdict)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # telling about a verdict never changes it
                log.warning("verdict listener failed", error=repr(exc))
        return verdict

    def _notify(self, asking: asyncio.Event) -> Notify | None:
        ask = self._ask
        if ask is None:
            return None

        async def show(req: ApprovalRequest) -> None:
            asking.set()  # the hook answers "ask" now; the approval goes on
            await ask(req)

        return show

    def cancel_all(self) -> int:
        """The turn ended (interrupted, timed out): checks still waiting end denied."""
        n = 0
        for _tool, _input, task in self._checks.values():
            if not task.done():
                task.cancel()
                n += 1
        self._checks.clear()
        return n


def _answer_within() -> float:
    if ANSWER_WITHIN is not None:
        return ANSWER_WITHIN
    return max(HOOK_TIMEOUT * 0.8, HOOK_TIMEOUT - 20.0)


def _not_run_reason(said: str) -> str:
    return f"the CLI did not execute it: {said[:300]}"


def result_text(content: Any, sep: str = " ") -> str:
    """A tool result's text, its parts joined by `sep`."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return sep.join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def _canon(value: Any) -> str:
    try:
        return json.dumps(value, sort_keys=True, default=repr)
    except (TypeError, ValueError):
        return repr(value)


def _deny_text(verdict: Verdict) -> str:
    return f"Denied by leashd ({verdict.layer}): {verdict.reason}"


def _hook_deny(reason: str) -> dict[str, Any]:
    return {
        "hookSpecificOutput": {
            "hookEventName": "PreToolUse",
            "permissionDecision": "deny",
            "permissionDecisionReason": f"Denied by leashd: {reason}",
        }
    }


def _hook_answer(verdict: Verdict) -> dict[str, Any]:
    if not verdict.allowed:
        return {
            "hookSpecificOutput": {
                "hookEventName": "PreToolUse",
                "permissionDecision": "deny",
                "permissionDecisionReason": _deny_text(verdict),
            }
        }
    return {
        "hookSpecificOutput": {
            "hookEventName": "PreToolUse",
            "permissionDecision": "allow",
            "permissionDecisionReason": verdict.reason,
        }
    }
