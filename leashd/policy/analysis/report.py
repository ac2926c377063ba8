"""Lint findings rendered for people (text), programs (json), code scanning (SARIF 2.1.0)
and GitHub Actions workflow annotations (github)."""

from __future__ import annotations

import json
from collections import Counter
from importlib.metadata import version
from typing import Any

from leashd.policy.analysis.catalog import CATALOG
from leashd.policy.analysis.lint import Finding

FORMATS = ("text", "json", "sarif", "github")
_SARIF_LEVEL = {"error": "error", "warning": "warning", "info": "note"}
_GITHUB_LEVEL = {"error": "error", "warning": "warning", "info": "notice"}


def render(findings: list[Finding], fmt: str, show_info: bool = False) -> str:
    if fmt == "json":
        return json.dumps([f.to_json() for f in findings], indent=2) + "\n"
    if fmt == "sarif":
        return json.dumps(sarif(findings), indent=2) + "\n"
    if fmt == "github":
        return "".join(_github(f) + "\n" for f in findings)
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
    summary = ", ".join(f"{counts[s]} {s}" for s in ("error", "warning", "info"))
    hidden = "" if show_info or not counts["info"] else " (info shown with --show-info)"
    out.append(f"{len(findings)} findings: {summary}{hidden}")
    return "\n".join(out) + "\n"


def sarif(findings: list[Finding]) -> dict[str, Any]:
    rules = [
        {
            "id": r.code,
            "name": r.kind,
            "shortDescription": {"text": r.summary.split(". ")[0].rstrip(".") + "."},
            "fullDescription": {"text": r.summary},
            "help": {"text": r.page(), "markdown": r.page()},
            "defaultConfiguration": {"level": _SARIF_LEVEL[r.severity]},
        }
        for r in CATALOG
    ]
    index = {r.code: n for n, r in enumerate(CATALOG)}
    results = []
    for f in findings:
        result: dict[str, Any] = {
            "ruleId": f.code,
            "ruleIndex": index[f.code],
            "level": _SARIF_LEVEL[f.severity],
            "message": {"text": f.message},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": f.location.file},
                        "region": {
                            "startLine": max(f.location.line, 1),
                            "startColumn": max(f.location.column, 1),
                        },
                    },
                    "logicalLocations": [{"name": f.rule, "kind": "member"}],
                }
            ],
            "properties": {"related": list(f.related)},
        }
        if f.example is not None:
            result["properties"]["example"] = f.example
        results.append(result)
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "leashd",
                        "version": version("leashd"),
                        "rules": rules,
                    }
                },
                "results": results,
            }
        ],
    }


def _escape_data(s: str) -> str:
    return s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(s: str) -> str:
    return _escape_data(s).replace(":", "%3A").replace(",", "%2C")


def _github(f: Finding) -> str:
    loc = f.location
    props = ",".join(
        f"{k}={_escape_property(str(v))}"
        for k, v in (
            ("file", loc.file),
            ("line", max(loc.line, 1)),
            ("col", max(loc.column, 1)),
            ("title", f"{f.code} {f.kind}"),
        )
    )
    return f"::{_GITHUB_LEVEL[f.severity]} {props}::{_escape_data(f.message)}"


def failing(findings: list[Finding], strict: bool) -> bool:
    """Exit 1: any error, or with `strict` any warning."""
    bad = {"error", "warning"} if strict else {"error"}
    return any(f.severity in bad for f in findings)
