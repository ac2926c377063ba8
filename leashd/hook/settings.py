"""Adding leashd's hook to Claude Code's settings, and taking it out again.

The settings file is the user's: everything else in it stays as it was, byte for byte. The
file is edited as text: the hook's entry is spliced in after the last entry of
`hooks.PreToolUse` (or the keys that are missing are added at the end of their object), in
the indentation the file uses; uninstalling cuts out exactly what installing added, so
install then uninstall gives back the same bytes. A file that is not valid JSON, or whose
`hooks` are not the shape Claude Code reads, is refused and left as it is.

The hook is recognised by its command (`-m leashd.hook.run`), whatever interpreter it names:
installing again with another interpreter replaces it, and uninstalling removes every entry
of it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MARKER = "-m leashd.hook.run"
TIMEOUT = 60  # seconds Claude Code gives the hook; it answers deny by itself after 30
_WS = " \t\n\r"
_OURS = re.compile(r"(?:^|\s)-m\s+leashd\.hook\.run(?:\s|$)")


class SettingsError(Exception):
    """The settings file cannot be edited safely; it was not changed."""


def user_settings(env: dict[str, str] | None = None) -> Path:
    """~/.claude/settings.json (CLAUDE_CONFIG_DIR/settings.json when that is set)."""
    env = dict(os.environ) if env is None else env
    base = env.get("CLAUDE_CONFIG_DIR")
    return (Path(base).expanduser() if base else Path.home() / ".claude") / "settings.json"


def project_settings(directory: str | Path | None = None) -> Path:
    return Path(directory or os.getcwd()) / ".claude" / "settings.json"


def hook_command(no_server: bool = False, python: str | None = None) -> str:
    """The command Claude Code runs: this interpreter, the hook's module; `|| exit 2` blocks
    the call when the interpreter itself cannot start (any other failure is a deny printed
    by the hook)."""
    flag = " --no-server" if no_server else ""
    # -P: not the working directory (the project, the agent's to write) on sys.path, or a
    # `json.py` there would run as the hook; -E: no PYTHONPATH either.
    return f"{shlex.quote(python or sys.executable)} -P -E {MARKER}{flag} || exit 2"


def hook_entry(command: str) -> dict[str, Any]:
    return {"matcher": "*", "hooks": [{"type": "command", "command": command, "timeout": TIMEOUT}]}


# --- editing text --------------------------------------------------------------------------


def install_text(text: str | None, command: str) -> tuple[str, bool]:
    """The settings with the hook installed, and whether that changed anything."""
    if text is None or not text.strip():
        return json.dumps({"hooks": {"PreToolUse": [hook_entry(command)]}}, indent=2) + "\n", True
    bom, body = _split_bom(text)
    data = _load(body)
    found = _ours(data)
    want = hook_entry(command)
    if len(found) == 1:
        i, j = found[0]
        group = data["hooks"]["PreToolUse"][i]
        if group["hooks"][j] == want["hooks"][0] and group.get("matcher") == want["matcher"]:
            return text, False
    if found:
        body, _ = _remove_all(body)
    root = _scan(body)
    hooks = root.get("hooks")
    entry = want
    if hooks is None:
        body = _add_member(body, root, "hooks", {"PreToolUse": [entry]})
    elif (pre := hooks.get("PreToolUse")) is None:
        body = _add_member(body, hooks, "PreToolUse", [entry])
    else:
        body = _add_item(body, pre, entry)
    _load(body)  # what is written must be JSON again
    return bom + body, True


def uninstall_text(text: str | None) -> tuple[str | None, int]:
    """The settings without the hook, and how many entries of it were removed."""
    if text is None or not text.strip():
        return text, 0
    bom, body = _split_bom(text)
    _load(body)
    body, removed = _remove_all(body)
    return (bom + body if removed else text), removed


def installed(text: str | None) -> list[str]:
    """The commands of the leashd hook entries in a settings text."""
    if text is None or not text.strip():
        return []
    data = _load(_split_bom(text)[1])
    return [data["hooks"]["PreToolUse"][i]["hooks"][j]["command"] for i, j in _ours(data)]


def _split_bom(text: str) -> tuple[str, str]:
    return ("\ufeff", text[1:]) if text.startswith("\ufeff") else ("", text)


def _load(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except RecursionError:
        raise SettingsError("it nests too deeply to be read") from None
    except ValueError as exc:
        raise SettingsError(f"it is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise SettingsError("it is not a JSON object")
    hooks = data.get("hooks")
    if hooks is None:
        return data
    if not isinstance(hooks, dict):
        raise SettingsError('its "hooks" is not an object')
    pre = hooks.get("PreToolUse")
    if pre is None:
        return data
    if not isinstance(pre, list):
        raise SettingsError('its "hooks.PreToolUse" is not a list')
    for n, group in enumerate(pre):
        if not isinstance(group, dict) or not isinstance(group.get("hooks", []), list):
            raise SettingsError(f'its "hooks.PreToolUse[{n}]" is not a matcher with a hook list')
    return data


def _ours(data: dict[str, Any]) -> list[tuple[int, int]]:
    out = []
    groups = (data.get("hooks") or {}).get("PreToolUse") or []
    for i, group in enumerate(groups):
        for j, h in enumerate(group.get("hooks") or []):
            if isinstance(h, dict) and isinstance(h.get("command"), str) and _is_ours(h["command"]):
                out.append((i, j))
    return out


def _is_ours(command: str) -> bool:
    return _OURS.search(command) is not None


def _remove_all(text: str) -> tuple[str, int]:
    removed = 0
    while True:
        data = _load(text)
        found = _ours(data)
        if not found:
            return text, removed
        i, j = found[0]
        text = _remove(text, i, j)
        removed += 1


def _remove(text: str, i: int, j: int) -> str:
    """Cut hook j of group i out; a container left empty goes with it, up to the root."""
    root = _scan(text)
    hooks = root.get("hooks")
    assert hooks is not None
    pre = hooks.get("PreToolUse")
    assert pre is not None
    group = pre.items[i]
    group_hooks = group.get("hooks")
    assert group_hooks is not None
    if len(group_hooks.items) > 1:
        return _cut_item(text, group_hooks, j)
    if len(pre.items) > 1:
        return _cut_item(text, pre, i)
    if len(hooks.members) > 1:
        return _cut_member(text, hooks, "PreToolUse")
    if len(root.members) > 1:
        return _cut_member(text, root, "hooks")
    return text[: root.start] + "{}" + text[root.end :]


# --- where things are in the text ------------------------------------------------------------


@dataclass
class _Node:
    start: int
    end: int  # one past the value's last character
    members: list[tuple[str, int, _Node]] = field(default_factory=list)  # key, key start, value
    items: list[_Node] = field(default_factory=list)

    def get(self, key: str) -> _Node | None:
        found = None
        for k, _, v in self.members:
            if k == key:
                found = v  # the last one, as json.loads takes it
        return found


def _scan(text: str) -> _Node:
    """The spans of a JSON text already known to be valid."""
    node, _ = _value(text, _skip(text, 0))
    return node


def _skip(text: str, i: int) -> int:
    while i < len(text) and text[i] in _WS:
        i += 1
    return i


def _value(text: str, i: int) -> tuple[_Node, int]:
    c = text[i]
    if c == "{":
        node = _Node(i, i)
        i = _skip(text, i + 1)
        if text[i] == "}":
            node.end = i + 1
            return node, i + 1
        while True:
            key_start = i
            key_end = _string_end(text, i)
            key = json.loads(text[key_start:key_end])
            i = _skip(text, key_end)  # at ':'
            value, i = _value(text, _skip(text, i + 1))
            node.members.append((key, key_start, value))
            i = _skip(text, i)
            if text[i] == "}":
                node.end = i + 1
                return node, i + 1
            i = _skip(text, i + 1)  # past ','
    if c == "[":
        node = _Node(i, i)
        i = _skip(text, i + 1)
        if text[i] == "]":
            node.end = i + 1
            return node, i + 1
        while True:
            value, i = _value(text, i)
            node.items.append(value)
            i = _skip(text, i)
            if text[i] == "]":
                node.end = i + 1
                return node, i + 1
            i = _skip(text, i + 1)
    if c == '"':
        end = _string_end(text, i)
        return _Node(i, end), end
    j = i
    while j < len(text) and text[j] not in _WS + ",]}":
        j += 1
    return _Node(i, j), j


def _string_end(text: str, i: int) -> int:
    j = i + 1
    while text[j] != '"':
        j += 2 if text[j] == "\\" else 1
    return j + 1


# --- splicing --------------------------------------------------------------------------------


def _indent_unit(text: str) -> str:
    for line in text.splitlines():
        stripped = line.lstrip(" \t")
        if stripped and len(stripped) < len(line):
            return line[: len(line) - len(stripped)]
    return "  "


def _line_indent(text: str, i: int) -> str:
    start = text.rfind("\n", 0, i) + 1
    line = text[start:i]
    return line[: len(line) - len(line.lstrip(" \t"))]


def _render(value: Any, unit: str, base: str, multiline: bool) -> str:
    if not multiline:
        return json.dumps(value, ensure_ascii=False)
    return json.dumps(value, indent=unit, ensure_ascii=False).replace("\n", "\n" + base)


def _before(text: str, i: int) -> str:
    """The whitespace just before position i."""
    j = i
    while j > 0 and text[j - 1] in _WS:
        j -= 1
    return text[j:i]


def _add_member(text: str, obj: _Node, key: str, value: Any) -> str:
    unit = _indent_unit(text)
    if obj.members:
        _, last_key, last_value = obj.members[-1]
        sep = _before(text, last_key)
        multiline = "\n" in sep
        base = sep[sep.rfind("\n") + 1 :]
        colon = text[_string_end(text, last_key) : last_value.start]
        new = f",{sep}{json.dumps(key)}{colon}{_render(value, unit, base, multiline)}"
        return text[: last_value.end] + new + text[last_value.end :]
    base = _line_indent(text, obj.start)
    inner = base + unit
    new = f"{{\n{inner}{json.dumps(key)}: {_render(value, unit, inner, True)}\n{base}}}"
    return text[: obj.start] + new + text[obj.end :]


def _add_item(text: str, arr: _Node, value: Any) -> str:
    unit = _indent_unit(text)
    if arr.items:
        last = arr.items[-1]
        sep = _before(text, last.start)
        multiline = "\n" in sep
        base = sep[sep.rfind("\n") + 1 :]
        new = f",{sep}{_render(value, unit, base, multiline)}"
        return text[: last.end] + new + text[last.end :]
    base = _line_indent(text, arr.start)
    inner = base + unit
    new = f"[\n{inner}{_render(value, unit, inner, True)}\n{base}]"
    return text[: arr.start] + new + text[arr.end :]


def _cut_item(text: str, arr: _Node, i: int) -> str:
    items = arr.items
    if i > 0:
        return text[: items[i - 1].end] + text[items[i].end :]
    return text[: items[0].start] + text[items[1].start :]


def _cut_member(text: str, obj: _Node, key: str) -> str:
    index = max(n for n, (k, _, _) in enumerate(obj.members) if k == key)
    spans = [(key_start, value.end) for _, key_start, value in obj.members]
    if index > 0:
        return text[: spans[index - 1][1]] + text[spans[index][1] :]
    return text[: spans[0][0]] + text[spans[1][0] :]


# --- files ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Edit:
    path: Path
    changed: bool
    count: int = 0  # entries removed (uninstall)


def read_settings(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError as exc:
        raise SettingsError(
            f"{path} is not UTF-8 text (byte {exc.start}); it was left as it is"
        ) from None
    except OSError as exc:
        raise SettingsError(f"cannot read {path}: {exc.strerror}") from None


def install(path: Path, command: str) -> Edit:
    text = read_settings(path)
    try:
        new, changed = install_text(text, command)
    except SettingsError as exc:
        raise SettingsError(f"{path}: {exc}; it was left as it is") from None
    if changed:
        _write(path, new)
    return Edit(path, changed)


def uninstall(path: Path) -> Edit:
    text = read_settings(path)
    try:
        new, removed = uninstall_text(text)
    except SettingsError as exc:
        raise SettingsError(f"{path}: {exc}; it was left as it is") from None
    if removed and new is not None:
        _write(path, new)
    return Edit(path, bool(removed), removed)


def _write(path: Path, text: str) -> None:
    """Written whole, then renamed over the file (through a symlink to where it points),
    keeping its permissions."""
    target = Path(os.path.realpath(path))
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = target.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o644
    tmp = target.with_name(f".{target.name}.leashd-{os.getpid()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise SettingsError(f"cannot write {target}: {exc.strerror}") from None
