"""Compiled policies on disk (`compiled/NAME.json`): the IR, the plan and what they came from.

A compiled file is canonical JSON (sorted keys, no spaces, one trailing newline), so the same
sources always give the same bytes and `leashd policy compile --check` is a byte comparison.
It records the SHA-256 of the policy source and a fingerprint of the code that turns sources
into IR and plans; the runtime uses the file only when both still match, and otherwise
compiles from source (a stale file is never trusted). Rule examples were verified when the
file was written, so a current file skips that step too.

Spans in the file name the source relative to the policies directory; loading points them
back at the real path, so explain and lint show the same locations either way.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from leashd.policy.ir import Policy
from leashd.policy.plan import Plan, build_plan
from leashd.resources import data_dir

FORMAT = 1
# The modules whose code decides what a source compiles to: a change to any of them makes
# every compiled file stale.
_COMPILER_MODULES = (
    "ir.py",
    "schema.py",
    "yaml_frontend.py",
    "patterns.py",
    "plan.py",
    "artifact.py",
)


@dataclass(frozen=True)
class Artifact:
    name: str
    policy: Policy
    plan: Plan


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def compiler_fingerprint() -> str | None:
    """A hash of the compiler modules' source; None when it cannot be read (then no
    compiled file is trusted)."""
    here = Path(__file__).resolve().parent
    h = hashlib.sha256(f"format {FORMAT}\n".encode())
    try:
        for name in _COMPILER_MODULES:
            h.update(name.encode() + b"\0" + (here / name).read_bytes() + b"\0")
    except OSError:
        return None
    return "sha256:" + h.hexdigest()


def compiled_dir() -> Path:
    return data_dir("compiled")


def _relocate(obj: Any, old: str, new: str) -> Any:
    """`obj` (dumped IR) with every span file and source `old` renamed `new`."""
    if isinstance(obj, dict):
        return {
            k: (new if k == "file" and v == old else _relocate(v, old, new)) for k, v in obj.items()
        }
    if isinstance(obj, list):
        return [new if v == old else _relocate(v, old, new) for v in obj]
    return obj


def render(name: str, source: Path, policy: Policy) -> str:
    """The canonical compiled file for built-in policy `name`, loaded from `source`."""
    fingerprint = compiler_fingerprint()
    if fingerprint is None:
        raise OSError("the compiler's own modules cannot be read: nothing to fingerprint")
    ir = _relocate(policy.model_dump(mode="json"), str(source), source.name)
    doc = {
        "format": FORMAT,
        "policy": name,
        "source": {"file": source.name, "hash": sha256(source.read_bytes())},
        "compiler": fingerprint,
        "ir": ir,
        "plan": build_plan(policy).to_json(),
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"


def load_current(name: str, source: Path, directory: Path | None = None) -> Artifact | None:
    """The compiled form of `name` when it is current for `source`, else None.

    Anything unexpected (missing, unreadable, another format, a hash that differs, a file
    that does not validate) means None: the caller compiles from source instead.
    """
    path = (directory or compiled_dir()) / f"{name}.json"
    try:
        raw = path.read_bytes()
        doc = json.loads(raw)
        if (
            doc.get("format") != FORMAT
            or doc.get("policy") != name
            or doc.get("compiler") != compiler_fingerprint()
            or doc.get("source") != {"file": source.name, "hash": sha256(source.read_bytes())}
        ):
            return None
        policy = Policy.model_validate(_relocate(doc["ir"], source.name, str(source)))
        plan = Plan.from_json(doc["plan"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    if plan.size != len(policy.rules):
        return None
    return Artifact(name, policy, plan)


def stale(directory: Path, expected: dict[str, str]) -> list[tuple[str, str]]:
    """(file, why) for each compiled file that is missing, differs, or should not be there."""
    out: list[tuple[str, str]] = []
    for name, text in sorted(expected.items()):
        path = directory / name
        if not path.exists():
            out.append((name, "missing"))
        elif path.read_text(encoding="utf-8") != text:
            out.append((name, "out of date"))
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else ():
        if path.name not in expected:
            out.append((path.name, "not the compiled form of any built-in policy"))
    return out


def write(directory: Path, expected: dict[str, str]) -> list[str]:
    """Bring `directory` up to date; the names of the files written or removed."""
    directory.mkdir(parents=True, exist_ok=True)
    changed = []
    for name, _ in stale(directory, expected):
        path = directory / name
        if name in expected:
            # Written whole then renamed: a reader never sees half a file.
            tmp = path.with_suffix(".json.tmp")
            tmp.write_text(expected[name], encoding="utf-8")
            tmp.replace(path)
        else:
            path.unlink()
        changed.append(name)
    return changed
