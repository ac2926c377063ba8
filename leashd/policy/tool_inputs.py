"""The input each built-in Claude Code tool takes, as data: its fields and their JSON types.

A call whose input does not fit is malformed, and a malformed call is denied (docs/gate.md):
leashd decides on what a call says, so a call that does not say what its tool means (a
WebFetch without a `prompt`, an Edit without its `old_string`, a Read `limit` of `"ten"`) is
not guessed at. The types are the ones Claude Code's own tool schemas give; a field written
`"number?"` is optional, and null there counts as absent.

Fields not listed are allowed: Claude Code adds fields to its tools from version to version,
and refusing them would deny every call of a newer Claude Code. Tools not listed (MCP tools,
tools of a newer Claude Code) are checked by facts alone: an object input, and the fields
facts read. Types are JSON's, strictly: `"10"` is no number and `"true"` no boolean, so the
agent is told to send the value itself.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

Fields = dict[str, str]

# The items of a list field whose items are objects with fields of their own.
_EDIT: Fields = {"old_string": "string", "new_string": "string", "replace_all": "boolean?"}

TOOL_INPUTS: dict[str, Fields] = {
    "Bash": {
        "command": "string",
        "description": "string?",
        "timeout": "number?",
        "run_in_background": "boolean?",
        "dangerouslyDisableSandbox": "boolean?",
    },
    "Read": {"file_path": "string", "offset": "number?", "limit": "number?", "pages": "string?"},
    "Write": {"file_path": "string", "content": "string"},
    "Edit": {"file_path": "string", **_EDIT},
    "MultiEdit": {"file_path": "string", "edits": "object[]"},
    "NotebookRead": {"notebook_path": "string", "cell_id": "string?"},
    "NotebookEdit": {
        "notebook_path": "string",
        "new_source": "string",
        "cell_id": "string?",
        "cell_type": "string?",
        "edit_mode": "string?",
    },
    "LS": {"path": "string", "ignore": "string[]?"},
    "Glob": {"pattern": "string", "path": "string?"},
    "Grep": {
        "pattern": "string",
        "path": "string?",
        "glob": "string?",
        "type": "string?",
        "output_mode": "string?",
        "-A": "number?",
        "-B": "number?",
        "-C": "number?",
        "context": "number?",
        "-n": "boolean?",
        "-i": "boolean?",
        "multiline": "boolean?",
        "head_limit": "number?",
        "offset": "number?",
    },
    "WebFetch": {"url": "string", "prompt": "string"},
    "WebSearch": {
        "query": "string",
        "allowed_domains": "string[]?",
        "blocked_domains": "string[]?",
    },
    # asked by the CLI itself, not the model: a sandboxed command reaching another host
    "SandboxNetworkAccess": {"host": "string", "port": "number?"},
    "TodoWrite": {"todos": "object[]"},
    "Task": {"description": "string", "prompt": "string", "subagent_type": "string?"},
    "ExitPlanMode": {"plan": "string?"},
}

# (tool, field) -> the fields of each item of that list
ITEM_FIELDS: dict[tuple[str, str], Fields] = {("MultiEdit", "edits"): _EDIT}

_NAMES = {
    "string": "a string",
    "number": "a number",
    "boolean": "true or false",
    "object": "an object",
    "string[]": "a list of strings",
    "object[]": "a list of objects",
}


def _fits(value: Any, kind: str) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "number":
        # bool is an int to Python, not a number to JSON; NaN and infinities are no JSON
        return (
            isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        )
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "object":
        return isinstance(value, Mapping)
    if kind == "string[]":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if kind == "object[]":
        return isinstance(value, list) and all(isinstance(v, Mapping) for v in value)
    raise ValueError(f"unknown field type {kind!r}")  # pragma: no cover - the table's own


def _problem(what: str, fields: Fields, value: Mapping[str, Any]) -> str | None:
    for name, spec in fields.items():
        kind = spec.rstrip("?")
        got = value.get(name)
        if got is None:
            if spec.endswith("?"):
                continue
            return f"{what} needs {_NAMES[kind]} {name!r}"
        if not _fits(got, kind):
            return f"{what}: {name!r} must be {_NAMES[kind]}, not {_json_type(got)}"
    return None


def input_problem(tool: Any, tool_input: Any) -> str | None:
    """What makes this call's input malformed for its tool, or None when it fits (or the tool
    is not a built-in one this table knows)."""
    if not isinstance(tool, str) or not isinstance(tool_input, Mapping):
        return None  # facts refuses these, with its own words
    fields = TOOL_INPUTS.get(tool)
    if fields is None:
        return None
    problem = _problem(tool, fields, tool_input)
    if problem is not None:
        return problem
    for (owner, name), item_fields in ITEM_FIELDS.items():
        if owner != tool or name not in tool_input:
            continue
        for i, item in enumerate(tool_input[name]):
            problem = _problem(f"{tool}: {name}[{i}]", item_fields, item)
            if problem is not None:
                return problem
    return None


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number" if math.isfinite(value) else f"{value} (no JSON number)"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__
