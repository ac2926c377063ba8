"""A cache of lint results, so re-linting an unchanged policy (pre-commit, an editor, a
watch loop) costs a load and a hash instead of the whole analysis.

The key is the SHA-256 of the policy's IR as JSON (spans and source names included, so
every location in a cached finding is still right), of the source of every leashd
module and of the PyYAML and pydantic versions (a leashd that analyses differently never
reads another's results). The cache is an optimisation only: a file that is missing,
unreadable, corrupt or of another shape is a miss, and a cache that cannot be written is
skipped; neither changes a finding.

Where: `$LEASHD_CACHE_DIR`, else `$XDG_CACHE_HOME/leashd`, else `~/.cache/leashd`.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from leashd.policy.ir import Policy, Span
from leashd.resources import library_versions, source_fingerprint

_KEEP = 64  # result files kept; the oldest beyond are removed
_FIELDS = ("kind", "severity", "rule", "related", "message", "location", "example",
           "related_spans")  # fmt: skip


def cache_dir() -> Path:
    if os.environ.get("LEASHD_CACHE_DIR"):
        return Path(os.environ["LEASHD_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "leashd"


def key(policy: Policy) -> str | None:
    try:
        code = source_fingerprint() + "\0" + library_versions()
    except OSError:
        return None  # leashd's own source cannot be read: no safe key, no cache
    ir = json.dumps(policy.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256((code + "\0" + ir).encode()).hexdigest()


def load(k: str) -> list[dict[str, Any]] | None:
    try:
        data = json.loads((cache_dir() / f"lint-{k}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("key") != k:
        return None
    rows = data.get("findings")
    if not isinstance(rows, list) or not all(
        isinstance(r, dict) and set(r) == set(_FIELDS) for r in rows
    ):
        return None
    return rows


def store(k: str, rows: list[dict[str, Any]]) -> None:
    directory = cache_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"lint-{k}.json"
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"key": k, "findings": rows}), encoding="utf-8")
        tmp.replace(path)  # whole or not at all
        old = sorted(directory.glob("lint-*.json"), key=lambda p: p.stat().st_mtime)
        for stale in old[:-_KEEP]:
            stale.unlink(missing_ok=True)
    except OSError:
        return  # read-only home, full disk: the lint result stands, uncached


def span_of(value: dict[str, Any]) -> Span:
    return Span(file=str(value["file"]), line=int(value["line"]), column=int(value["column"]))
