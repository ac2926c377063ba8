"""Claude Code's `PreToolUse` hook as data: the call it sends on stdin, the answers it takes.

Claude Code runs the hook command for every tool call with one JSON object on stdin
(`session_id`, `transcript_path`, `cwd`, `permission_mode`, `hook_event_name`, `tool_name`,
`tool_input`, `tool_use_id`, ...) and reads one JSON object from stdout:
`{"hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": "allow" | "deny" |
"ask", "permissionDecisionReason": "..."}}`. A deny's reason is shown to the model; an ask's
in Claude Code's own prompt.

Only the standard library here: the hook's client imports this module on every call.
"""

from __future__ import annotations

import json

TYPE_CHECKING = False  # typing itself is not imported: the hook starts on every call

if TYPE_CHECKING:  # typing's names cost the hook's start-up nothing at run time
    from typing import Any, Literal

    Answer = Literal["allow", "deny", "ask"]

EVENT = "PreToolUse"
MAX_INPUT = 64 << 20  # bytes of stdin read, at most; a larger call is denied
ANSWERS = ("allow", "deny", "ask")

# Claude Code's permission modes -> leashd's session modes (leashd/gate/modes.py). A mode
# leashd does not know (`bypassPermissions`, `dontAsk`, a future one) is `default`: the policy
# decides as written, never looser.
MODES = {"default": "default", "plan": "plan", "acceptEdits": "auto"}


class BadInput(ValueError):
    """What Claude Code sent cannot be decided on."""


class HookCall:
    """One call, as Claude Code describes it. (A plain class: `dataclasses` alone would
    double the hook client's start-up.)"""

    __slots__ = ("cwd", "permission_mode", "session", "tool", "tool_input", "tool_use_id")

    def __init__(
        self,
        tool: str,
        tool_input: dict[str, Any],
        cwd: str,
        session: str,
        permission_mode: str,
        tool_use_id: str | None = None,
    ) -> None:
        self.tool = tool
        self.tool_input = tool_input
        self.cwd = cwd
        self.session = session
        self.permission_mode = permission_mode
        self.tool_use_id = tool_use_id

    @property
    def mode(self) -> str:
        return MODES.get(self.permission_mode, "default")


def parse(raw: bytes) -> HookCall:
    """The call in Claude Code's hook input. Raises BadInput with what is wrong."""
    if len(raw) > MAX_INPUT:
        raise BadInput(f"the hook input is larger than {MAX_INPUT >> 20} MiB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(f"the hook input is not UTF-8 (byte {exc.start})") from None
    try:
        data = json.loads(text)
    except RecursionError:
        raise BadInput("the hook input nests too deeply") from None
    except ValueError as exc:
        raise BadInput(f"the hook input is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadInput(f"the hook input is a JSON {_kind(data)}, not an object")
    event = data.get("hook_event_name", EVENT)
    if event != EVENT:
        raise BadInput(f"this hook answers {EVENT} events, not {str(event)[:80]!r}")
    tool = data.get("tool_name")
    if not isinstance(tool, str) or not tool:
        raise BadInput("the hook input has no tool_name")
    tool_input = data.get("tool_input")
    if not isinstance(tool_input, dict):
        raise BadInput(f"the tool_input of {tool[:80]} is a {_kind(tool_input)}, not an object")
    cwd = data.get("cwd")
    if not isinstance(cwd, str) or not cwd.startswith("/") or "\x00" in cwd:
        raise BadInput("the hook input has no absolute cwd")
    session = data.get("session_id", "-")
    mode = data.get("permission_mode", "default")
    use_id = data.get("tool_use_id")
    if not isinstance(session, str) or not isinstance(mode, str):
        raise BadInput("the hook input's session_id or permission_mode is not a string")
    return HookCall(
        tool, tool_input, cwd, session or "-", mode, use_id if isinstance(use_id, str) else None
    )


def answer(decision: Answer, reason: str) -> dict[str, Any]:
    return {
        "hookSpecificOutput": {
            "hookEventName": EVENT,
            "permissionDecision": decision,
            "permissionDecisionReason": reason,
        }
    }


def deny(reason: str) -> dict[str, Any]:
    return answer("deny", f"Denied by leashd: {reason}")


def decision_of(obj: Any) -> str | None:
    """The decision of a well-formed answer, else None."""
    if not isinstance(obj, dict):
        return None
    out = obj.get("hookSpecificOutput")
    if not isinstance(out, dict) or out.get("hookEventName") != EVENT:
        return None
    decision = out.get("permissionDecision")
    if decision not in ANSWERS or not isinstance(out.get("permissionDecisionReason"), str):
        return None
    return decision


def render(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode("utf-8", "replace") + b"\n"


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(
        type(value), "number"
    )
