"""Lint findings rendered for people (text), programs (json), code scanning (SARIF 2.1.0)
and GitHub Actions workflow annotations (github).

Places are written for the consumer. SARIF names each file by a percent-encoded URI
relative to a base in `originalUriBaseIds`: `%SRCROOT%` (the directory leashd runs in, the
root code scanning maps results onto) or `LEASHD_BUILTIN` (the built-in policies, wherever
leashd is installed); a file outside both is an absolute `file:` URI. GitHub annotations
name files relative to the current directory (the workspace) and escape their properties and
messages as the Actions runner reads them.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import quote

from leashd import __version__
from leashd.plural import plural
from leashd.policy.analysis.catalog import BY_CODE, CATALOG
from leashd.policy.analysis.lint import Finding
from leashd.policy.ir import Span

FORMATS = ("text", "json", "sarif", "github")
SCHEMA_URI = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
SRCROOT = "%SRCROOT%"
BUILTIN = "LEASHD_BUILTIN"
_SARIF_LEVEL = {"error": "error", "warning": "warning", "info": "note"}
_GITHUB_LEVEL = {"error": "error", "warning": "warning", "info": "notice"}
# What the rules a finding names are to it, by kind (SARIF relatedLocations' messages).
_RELATED_ROLE = {
    "shadowed": "an earlier rule that decides every call this rule matches",
    "redundant": "an earlier rule with the same action that covers this rule",
    "conflict": "the earlier rule this rule overlaps; their order decides the shared calls",
    "exception": "the later rule this rule carves an exception out of",
    "unanalyzable": "the earlier rule whose overlap with this rule could not be decided",
}


def render(
    findings: list[Finding], fmt: str, show_info: bool = False, root: str | Path | None = None
) -> str:
    """`root`: the directory places are relative to (default: the current directory)."""
    if fmt == "json":
        return json.dumps([f.to_json() for f in findings], indent=2) + "\n"
    if fmt == "sarif":
        return json.dumps(sarif(findings, root), indent=2) + "\n"
    if fmt == "github":
        base = Path(root) if root is not None else Path.cwd()
        return "".join(_github(f, base) + "\n" for f in findings)
    return text(findings, show_info)


def text(findings: list[Finding], show_info: bool = False) -> str:
    out = []
    for f in findings:
        if f.severity == "info" and not show_info:
            continue
        out.append(f"{f.location}: {f.code} [{f.severity}] {f.kind}: {f.message}")
        if f.example is not None:
            out.append(f"    example: {json.dumps(f.example, ensure_ascii=False)}")
    counts = Counter(f.severity for f in findings)
    summary = f"{plural(counts['error'], 'error')}, {plural(counts['warning'], 'warning')}"
    hidden = "" if show_info or not counts["info"] else " (info shown with --show-info)"
    out.append(f"{plural(len(findings), 'finding')}: {summary}, {counts['info']} info{hidden}")
    return "\n".join(out) + "\n"


# --- SARIF ------------------------------------------------------------------------------------


class _Places:
    """Files as SARIF artifact locations: relative to a base where one holds them."""

    def __init__(self, root: Path):
        self.root = _absolute(root)
        try:
            from leashd.resources import data_dir

            self.builtin: Path | None = _absolute(data_dir("policies"))
        except FileNotFoundError:
            self.builtin = None
        self.used: set[str] = set()

    def artifact(self, file: str) -> dict[str, str]:
        path = Path(file)
        if not path.is_absolute():
            return self._under(SRCROOT, path.as_posix())
        path = _absolute(path)
        for base_id, base in ((BUILTIN, self.builtin), (SRCROOT, self.root)):
            if base is not None and path.is_relative_to(base):
                return self._under(base_id, path.relative_to(base).as_posix())
        return {"uri": path.as_uri()}

    def _under(self, base_id: str, relative: str) -> dict[str, str]:
        self.used.add(base_id)
        # RFC 3986: a space, `%`, `#`, `?`, `:` and everything past ASCII are escaped
        return {"uri": quote(relative.removeprefix("./"), safe="/"), "uriBaseId": base_id}

    def bases(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if SRCROOT in self.used:
            out[SRCROOT] = {
                "uri": _dir_uri(self.root),
                "description": {"text": "The directory leashd policy lint ran in."},
            }
        if BUILTIN in self.used and self.builtin is not None:
            out[BUILTIN] = {
                "uri": _dir_uri(self.builtin),
                "description": {"text": "The built-in policies of this leashd installation."},
            }
        return out


def _absolute(p: Path) -> Path:
    return Path(os.path.abspath(p))


def _dir_uri(p: Path) -> str:
    uri = p.as_uri()  # percent-encoded already
    return uri if uri.endswith("/") else uri + "/"


def _region(span: Span) -> dict[str, int]:
    return {"startLine": max(span.line, 1), "startColumn": max(span.column, 1)}


def sarif(findings: list[Finding], root: str | Path | None = None) -> dict[str, Any]:
    places = _Places(Path(root) if root is not None else Path.cwd())
    rules = [
        {
            "id": r.code,
            "name": r.kind,
            "shortDescription": {"text": r.title},
            "fullDescription": {"text": r.description},
            "help": {"text": r.page(), "markdown": r.page()},
            "defaultConfiguration": {"level": _SARIF_LEVEL[r.severity]},
            "properties": {"tags": ["policy", r.kind]},
        }
        for r in CATALOG
    ]
    index = {r.code: n for n, r in enumerate(CATALOG)}
    results = []
    for f in findings:
        location: dict[str, Any] = {
            "physicalLocation": {
                "artifactLocation": places.artifact(f.location.file),
                "region": _region(f.location),
            }
        }
        if f.rule:
            location["logicalLocations"] = [{"name": f.rule, "kind": "member"}]
        result: dict[str, Any] = {
            "ruleId": f.code,
            "ruleIndex": index[f.code],
            "level": _SARIF_LEVEL[f.severity],
            "message": {"text": f.message},
            "locations": [location],
            # Stable across edits that move lines: the finding is about these rules.
            "partialFingerprints": {"leashdFinding/v1": _fingerprint(f)},
            "properties": {"related": list(f.related)},
        }
        related = [
            {
                "id": n,
                "physicalLocation": {
                    "artifactLocation": places.artifact(span.file),
                    "region": _region(span),
                },
                "message": {"text": f"{name!r}: {_RELATED_ROLE.get(f.kind, 'a related rule')}"},
            }
            for n, (name, span) in enumerate(zip(f.related, f.related_spans, strict=False))
        ]
        if related:
            result["relatedLocations"] = related
        if f.example is not None:
            result["properties"]["example"] = f.example
        results.append(result)
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": "leashd",
                "version": __version__,  # leashd or leashd-policy: the same
                "informationUri": "https://pypi.org/project/leashd/",
                "rules": rules,
            }
        },
        "results": results,
        "columnKind": "unicodeCodePoints",
    }
    bases = places.bases()
    if bases:
        run["originalUriBaseIds"] = bases
    return {"$schema": SCHEMA_URI, "version": "2.1.0", "runs": [run]}


def _fingerprint(f: Finding) -> str:
    what = "\0".join((f.code, f.rule, *f.related, Path(f.location.file).name, f.message))
    return hashlib.sha256(what.encode()).hexdigest()[:32]


# --- GitHub Actions annotations ---------------------------------------------------------------


def _escape_data(s: str) -> str:
    """A message, as the Actions runner unescapes it (`%`, CR and LF)."""
    return s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(s: str) -> str:
    """A property value: the message's escapes, and `:` and `,`, which end a property."""
    return _escape_data(s).replace(":", "%3A").replace(",", "%2C")


def _github_path(file: str, root: Path) -> str:
    path = Path(file)
    if path.is_absolute():
        try:
            return _absolute(path).relative_to(_absolute(root)).as_posix()
        except ValueError:
            return file  # outside the workspace: the file as the policy was loaded
    return path.as_posix()


def _github(f: Finding, root: Path) -> str:
    loc = f.location
    props = ",".join(
        f"{k}={_escape_property(str(v))}"
        for k, v in (
            ("file", _github_path(loc.file, root)),
            ("line", max(loc.line, 1)),
            ("col", max(loc.column, 1)),
            ("title", f"{f.code} {BY_CODE[f.code].kind}"),
        )
    )
    return f"::{_GITHUB_LEVEL[f.severity]} {props}::{_escape_data(f.message)}"


def failing(findings: list[Finding], strict: bool) -> bool:
    """Exit 1: any error, or with `strict` any warning."""
    bad = {"error", "warning"} if strict else {"error"}
    return any(f.severity in bad for f in findings)
