"""What a turn of the agent tells its connector while it runs, and how it ended."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TextDelta:
    """A piece of the answer as it is written (streaming)."""

    text: str


@dataclass(frozen=True)
class Text:
    """One whole block of the answer."""

    text: str


@dataclass(frozen=True)
class ToolStarted:
    tool_use_id: str
    tool: str
    summary: str  # `pytest tests/`, a path: what a tool indicator shows


@dataclass(frozen=True)
class ToolDone:
    tool_use_id: str
    is_error: bool  # for Bash: the command exited non-zero ("Exit code N" leads the output)
    output: str = ""  # what the tool returned, its last OUTPUT_KEPT characters


@dataclass(frozen=True)
class ToolDenied:
    """The gate said no (or nobody said yes): what, and why."""

    tool: str
    summary: str
    reason: str
    layer: str


@dataclass(frozen=True)
class SandboxBlocked:
    """The OS sandbox refused part of an allowed Bash call (a write, a read, a host)."""

    tool_use_id: str
    summary: str  # the command
    blocked: tuple[str, ...]  # "write: touch: cannot touch '/x': Read-only file system"


@dataclass(frozen=True)
class Notice:
    """Something the user should know about this turn (the sandbox is off, a scan stopped)."""

    text: str


@dataclass(frozen=True)
class ModeChanged:
    mode: str  # the plan was approved: the session leaves plan mode


@dataclass(frozen=True)
class TurnResult:
    text: str
    agent_session_id: str | None
    cost_usd: float = 0.0
    duration_ms: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    num_turns: int = 0
    error: str | None = None  # the agent failed, timed out, or could not start
    interrupted: bool = False
    tools: tuple[str, ...] = ()  # the tools called, in order

    @property
    def ok(self) -> bool:
        return self.error is None and not self.interrupted


AgentEvent = (
    TextDelta | Text | ToolStarted | ToolDone | ToolDenied | SandboxBlocked | Notice | ModeChanged
)


OUTPUT_KEPT = 4000  # characters of a tool's output an event carries (a test run's failures)


def tool_summary(tool: str, tool_input: Any) -> str:
    """A one-line description of a tool call for indicators (never the whole content)."""
    if not isinstance(tool_input, dict):
        return ""
    for key in ("command", "file_path", "notebook_path", "path", "pattern", "url", "query",
                "host"):  # fmt: skip
        value = tool_input.get(key)
        if isinstance(value, str) and value:
            line = value.splitlines()[0] if value.strip() else value
            return line if len(line) <= 120 else line[:119] + "…"
    return ""
