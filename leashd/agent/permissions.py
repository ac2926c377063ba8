"""Every tool call of the agent goes through the gate, by two doors of the Claude Code CLI.

The `PreToolUse` hook sees every call, also those the CLI would allow on its own, and starts
the gate's check. A check that ends at once (allow or deny) is answered there; the deny's
reason goes back to the model, so it knows why. A check that needs a human is answered
"ask": the approval is already on its way to the connector, and the CLI then calls
`can_use_tool`, which waits for the same check to end.

`can_use_tool` with no check of the hook's to wait for (a CLI that skipped the hook) runs a
whole check of its own: nothing is allowed without the gate. Any failure here is a deny.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from leashd.gate.approvals import ApprovalRequest, Notify
from leashd.gate.gate import Gate, Session, Verdict

log = structlog.get_logger(__name__)

# How long the hook may take before the CLI gives up on it (and, with on_failure="block",
# blocks the call). The hook itself never waits for a human.
HOOK_TIMEOUT = 120.0


class GateBridge:
    """The gate, as one agent session's hook and permission callback."""

    def __init__(
        self,
        gate: Gate,
        session: Callable[[], Session],
        ask: Notify | None,
        on_verdict: Callable[[str, Any, Verdict], Awaitable[None]] | None = None,
    ) -> None:
        self.gate = gate
        self._session = session  # read at each call: the mode may change mid-turn
        self._ask = ask
        self._on_verdict = on_verdict
        self._checks: dict[str, tuple[str, dict[str, Any], asyncio.Task[Verdict]]] = {}

    # --- the hook ---------------------------------------------------------------------------

    async def pre_tool_use(
        self, hook_input: Any, tool_use_id: str | None, context: Any
    ) -> dict[str, Any]:
        try:
            tool = hook_input.get("tool_name")
            tool_input = hook_input.get("tool_input")
            use_id = tool_use_id or hook_input.get("tool_use_id")
            asking = asyncio.Event()
            task = asyncio.ensure_future(self._check(tool, tool_input, self._notify(asking)))
            waiter = asyncio.ensure_future(asking.wait())
            try:
                await asyncio.wait((task, waiter), return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
            if task.done():
                return _hook_answer(task.result())
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
                return PermissionResultAllow()
            return PermissionResultDeny(message=_deny_text(verdict))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("permission callback failed", error=repr(exc))
            return PermissionResultDeny(message=f"denied: internal error ({type(exc).__name__})")

    # --- inside ---------------------------------------------------------------------------

    async def _check(self, tool: Any, tool_input: Any, ask: Notify | None) -> Verdict:
        verdict = await self.gate.check(self._session(), tool, tool_input, ask)
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
