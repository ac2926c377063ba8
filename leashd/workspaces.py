"""Workspaces: named groups of directories the agent works across (a service and its web app),
kept in `workspaces.yaml` under leashd's home (`~/.leashd/workspaces.yaml`, where leashd 0.x
kept them too, in the same shape):

    workspaces:
      my-saas:
        directories: [/home/me/src/api, /home/me/src/web]
        description: the product

A session in a workspace may work in all its directories, and the agent is told what they are
(`context`): each one's path, and for a repository its current branch. `/ws` in a chat and
`leashd ws` change the file through `add` and `remove` alike, so both refuse the same things:
a directory that does not exist, and `/`, the home directory or one above it (the agent could
reach every project and private file under it). `usable` checks a workspace again when a
session enters it and at each of its turns.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_KEYS = {"directories", "description"}
# The words of `/ws` itself (`/ws add`, `/ws remove`, `/ws leave`): a workspace so named could
# not be entered from a chat, so none is made with one of them.
RESERVED = frozenset({"add", "remove", "leave"})


class WorkspaceError(Exception):
    """A workspaces file that cannot be used, or a change that cannot be made; the message
    names the file (and line) or the value."""


@dataclass(frozen=True)
class Workspace:
    name: str
    directories: tuple[str, ...]
    description: str = ""


def default_path() -> Path:
    from leashd.daemon.config import leashd_home

    return leashd_home() / "workspaces.yaml"


def load(path: Path | None = None) -> dict[str, Workspace]:
    """Every workspace of the file, in its order; {} when there is no file. A file that does
    not fit is an error naming the line, never read halfway."""
    path = path or default_path()
    if not path.is_file():
        return {}
    try:
        text = path.read_text(encoding="utf-8")
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise WorkspaceError(f"{path}: cannot read the workspaces file: {exc}") from None
    if data is None:
        return {}
    lines = _lines(node)
    if not isinstance(data, dict) or set(data) - {"workspaces"}:
        raise WorkspaceError(f"{path}:1: the file holds one key, `workspaces`")
    entries = data.get("workspaces") or {}
    if not isinstance(entries, dict):
        raise WorkspaceError(f"{path}:{lines.get('workspaces', 1)}: `workspaces` is a mapping "
                             "of names to workspaces")  # fmt: skip
    out: dict[str, Workspace] = {}
    for name, entry in entries.items():
        where = f"{path}:{lines.get(str(name), 1)}"
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise WorkspaceError(f"{where}: {name!r} is not a workspace name "
                                 "(letters, digits, `_`, `.`, `-`)")  # fmt: skip
        if not isinstance(entry, dict) or set(entry) - _KEYS:
            raise WorkspaceError(f"{where}: workspace {name!r} takes `directories` and "
                                 "`description` only")  # fmt: skip
        dirs = entry.get("directories") or []
        if not isinstance(dirs, list) or not all(isinstance(d, str) for d in dirs):
            raise WorkspaceError(f"{where}: the directories of {name!r} are a list of paths")
        description = entry.get("description") or ""
        if not isinstance(description, str):
            raise WorkspaceError(f"{where}: the description of {name!r} is text")
        out[name] = Workspace(name, tuple(dirs), description)
    return out


def add(name: str, directories: list[str], description: str | None = None,
        path: Path | None = None) -> Workspace:  # fmt: skip
    """Make a workspace, or add directories to one. Each must be a directory; kept resolved."""
    if not _NAME.fullmatch(name):
        raise WorkspaceError(f"{name!r} is not a workspace name (letters, digits, `_`, `.`, `-`)")
    if name.lower() in RESERVED:
        raise WorkspaceError(f"{name!r} is a word of /ws itself ({', '.join(sorted(RESERVED))}): "
                             "name the workspace otherwise")  # fmt: skip
    if not directories:
        raise WorkspaceError("a workspace needs at least one directory")
    resolved = []
    for d in directories:
        real = os.path.realpath(os.path.expanduser(d))
        if not os.path.isdir(real):
            raise WorkspaceError(f"{d} is not a directory")
        _refuse_broad(d, real)
        resolved.append(real)
    spaces = load(path)
    old = spaces.get(name)
    dirs = tuple(dict.fromkeys([*(old.directories if old else ()), *resolved]))
    text = description if description is not None else (old.description if old else "")
    spaces[name] = Workspace(name, dirs, text)
    _save(spaces, path)
    return spaces[name]


def remove(name: str, directories: list[str] | None = None, path: Path | None = None
           ) -> Workspace | None:  # fmt: skip
    """Remove a workspace, or only some of its directories (the workspace goes when none is
    left). Returns what is left of it (None: gone). Raises when there is no such workspace
    or directory."""
    spaces = load(path)
    if name not in spaces:
        raise WorkspaceError(f"there is no workspace {name!r}")
    if not directories:
        del spaces[name]
        _save(spaces, path)
        return None
    ws = spaces[name]
    drop = {os.path.realpath(os.path.expanduser(d)) for d in directories}
    missing = drop - set(ws.directories)
    if missing:
        raise WorkspaceError(f"{', '.join(sorted(missing))} is not in workspace {name!r}")
    left = tuple(d for d in ws.directories if d not in drop)
    if left:
        spaces[name] = Workspace(name, left, ws.description)
    else:
        del spaces[name]
    _save(spaces, path)
    return spaces.get(name)


def usable(ws: Workspace) -> Workspace:
    """The workspace as a session may work in it now: each directory resolved, and each still
    a directory that `add` would take. Raises WorkspaceError naming the first that is not: a
    session never works in a workspace with a directory less (or more) than its file names."""
    if not ws.directories:
        raise WorkspaceError(f"workspace {ws.name!r} has no directories")
    dirs = []
    for d in ws.directories:
        real = os.path.realpath(os.path.expanduser(d))
        if not os.path.isabs(os.path.expanduser(d)):
            raise WorkspaceError(f"{d} of workspace {ws.name!r} is not an absolute path")
        if not os.path.isdir(real):
            raise WorkspaceError(f"{d} of workspace {ws.name!r} is not a directory any more")
        _refuse_broad(d, real, ws.name)
        dirs.append(real)
    return Workspace(ws.name, tuple(dict.fromkeys(dirs)), ws.description)


def _refuse_broad(given: str, real: str, name: str | None = None) -> None:
    """The rule `leashd init` and `add-dir` apply (leashd/daemon/wizard.py), with no way
    around it here: a workspace is approved for a session without a second question."""
    from leashd.daemon.wizard import too_broad

    broad = too_broad(real)
    if broad is not None:
        of = f" of workspace {name!r}" if name else ""
        raise WorkspaceError(f"{given}{of} is {broad}: the agent could reach every project "
                             "and private file under it; name project directories")  # fmt: skip


def context(ws: Workspace) -> str:
    """What the agent is told of a workspace: its directories, and each repository's branch."""
    lines = [f"You are working in the workspace {ws.name!r}"
             + (f" ({ws.description})" if ws.description else "")
             + ": these directories belong together, and you may work in all of them."]  # fmt: skip
    for d in ws.directories:
        branch = _branch(d)
        what = f"git repository, on branch {branch}" if branch else "directory"
        lines.append(f"- {os.path.basename(d) or d}: {d} ({what})")
    return "\n".join(lines)


def _branch(directory: str) -> str | None:
    """The repository's branch (also before its first commit), `detached at SHA`, or None
    when `directory` is no repository."""
    for args, shape in ((["symbolic-ref", "--short", "-q", "HEAD"], "{}"),
                        (["rev-parse", "--short", "HEAD"], "detached at {}")):  # fmt: skip
        try:
            done = subprocess.run(["git", "-C", directory, *args], capture_output=True,
                                  text=True, timeout=5)  # fmt: skip
        except (OSError, subprocess.TimeoutExpired):
            return None
        name = done.stdout.strip()
        if done.returncode == 0 and name:
            return shape.format(name)
    return None


def _save(spaces: dict[str, Workspace], path: Path | None) -> None:
    """Written atomically (a file beside it renamed over it)."""
    path = path or default_path()
    data: dict[str, Any] = {"workspaces": {
        ws.name: {"directories": list(ws.directories),
                  **({"description": ws.description} if ws.description else {})}
        for ws in spaces.values()
    }}  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    os.replace(tmp, path)


def _lines(node: Any) -> dict[str, int]:
    """The line of each key of the top mapping and of the workspaces' names."""
    out: dict[str, int] = {}
    if not isinstance(node, yaml.MappingNode):
        return out
    for key, value in node.value:
        out[str(key.value)] = key.start_mark.line + 1
        if key.value == "workspaces" and isinstance(value, yaml.MappingNode):
            for k, _ in value.value:
                out[str(k.value)] = k.start_mark.line + 1
    return out
