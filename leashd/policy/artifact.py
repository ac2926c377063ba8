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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from leashd.policy.ir import Policy
from leashd.policy.plan import Plan, build_plan
from leashd.resources import data_dir, source_fingerprint

# The layout of a compiled file. 2: a rule may carry `approver`. A file of an older format is
# never read (its rules would all seem to say "human"): the policy compiles from source instead.
FORMAT = 2


@dataclass(frozen=True)
class Artifact:
    name: str
    policy: Policy
    plan: Plan


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def compiler_fingerprint() -> str | None:
    """What compiled the file: the format and the compiler's source (any change to how a
    source could compile makes every compiled file stale). None when the source cannot be
    read: then nothing is trusted. Library versions are left out on purpose: the files are
    committed, and `compile --check` must not fail because PyPI released a new PyYAML."""
    try:
        return sha256(f"format {FORMAT}\n{source_fingerprint()}".encode())
    except OSError:
        return None


def compiled_dir() -> Path:
    return data_dir("compiled")


def _relocate(ir: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    """Dumped IR with the source file `old` renamed `new` in every span and in `sources`,
    and nowhere else (a glob or a word may well equal a file name)."""

    def walk(obj: Any) -> Any:
        if isinstance(obj, dict):
            if set(obj) == {"file", "line", "column"}:  # a span
                return {**obj, "file": new if obj["file"] == old else obj["file"]}
            return {k: walk(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [walk(v) for v in obj]
        return obj

    out = walk(ir)
    if isinstance(out.get("sources"), list):
        out["sources"] = [new if s == old else s for s in out["sources"]]
    return out


_SPAN_KEYS = frozenset({"file", "line", "column"})


def _span_renamer(old: str, new: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """`_relocate` while the JSON is read: each object is seen once, as it is decoded (a
    tenth of the time of walking the decoded tree). Only spans have exactly these keys."""

    def hook(obj: dict[str, Any]) -> dict[str, Any]:
        if obj.keys() == _SPAN_KEYS and obj["file"] == old:
            obj["file"] = new
        return obj

    return hook


def render(name: str, source: Path, policy: Policy, plan: Plan | None = None) -> str:
    """The canonical compiled file for built-in policy `name`, loaded from `source`
    (`plan`: its plan, when the caller compiled it already)."""
    fingerprint = compiler_fingerprint()
    if fingerprint is None:
        raise OSError("the compiler's own modules cannot be read: nothing to fingerprint")
    # Unset fields stay out: merging policies takes only the settings a file sets, and a
    # loaded file must say exactly what its source said.
    ir = _relocate(policy.model_dump(mode="json", exclude_unset=True), str(source), source.name)
    doc = {
        "format": FORMAT,
        "policy": name,
        "source": {"file": source.name, "hash": sha256(source.read_bytes())},
        "compiler": fingerprint,
        "ir": ir,
        "plan": (plan or build_plan(policy)).to_json(),
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
        doc = json.loads(raw, object_hook=_span_renamer(source.name, str(source)))
        if (
            doc.get("format") != FORMAT
            or doc.get("policy") != name
            or doc.get("compiler") != compiler_fingerprint()
            or doc.get("source") != {"file": source.name, "hash": sha256(source.read_bytes())}
        ):
            return None
        ir = doc["ir"]
        if isinstance(ir.get("sources"), list):
            ir["sources"] = [str(source) if s == source.name else s for s in ir["sources"]]
        policy = Policy.model_validate(ir)
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
        if path.name not in expected and _is_artifact(path):
            out.append((path.name, "not the compiled form of any built-in policy"))
    return out


def _is_artifact(path: Path) -> bool:
    """Was this file written by `leashd policy compile`? (Only those are ever removed.)"""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and {"format", "policy", "source", "compiler"} <= set(doc)


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
