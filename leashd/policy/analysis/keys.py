"""Content keys for the lint's caches: what a cached result was computed from, hashed.

A rule's key is its IR without source spans (a rule moved down the file, or one below an
inserted line, keeps its key; one whose conditions, action, examples or name change gets a
new one). The analysis key covers the code that computes every result (leashd's compiler
source, see `resources.source_fingerprint`) and what it relies on from outside: Python and
its Unicode tables (`\\w`, case folding), the libraries that read policies and commands
(PyYAML, pydantic, tree-sitter and its Bash grammar) and google-re2, and the layout of the
cache files. The world key covers what the evaluator reads of a policy besides its rules
(its settings: the default action decides the units no rule matches).
"""

from __future__ import annotations

import hashlib
import json
import platform
import unicodedata
from functools import lru_cache
from importlib import metadata
from typing import Any

from leashd.policy.ir import Policy, Rule, without_spans
from leashd.resources import library_versions, source_fingerprint

# The layout of the pair cache's files (pair_cache.py); a new layout is a new key.
FORMAT = 1


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def rule_key(rule: Rule) -> str:
    """What the analysis sees of a rule: everything but where it is written."""
    return _digest(without_spans(rule.model_dump(mode="json")))


def world_key(policy: Policy) -> str:
    return _digest(policy.settings.model_dump(mode="json"))


@lru_cache(maxsize=1)
def analysis_key() -> str | None:
    """None when leashd's own source cannot be read: no safe key, no cache."""
    try:
        code = source_fingerprint()
    except OSError:
        return None
    versions = [library_versions(), platform.python_version(), unicodedata.unidata_version]
    for lib in ("tree-sitter", "tree-sitter-bash", "google-re2"):
        try:
            versions.append(f"{lib} {metadata.version(lib)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{lib} ?")
    return _digest([FORMAT, code, versions])
