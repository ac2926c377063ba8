"""IR -> YAML text, for `leashd policy convert --to yaml`: loading the output gives the same IR
(spans aside). Keys come in the order the built-in policies use."""

from __future__ import annotations

from typing import Any

import yaml

from leashd.policy.analysis.catalog import names_of
from leashd.policy.ir import ArgvPattern, Example, Policy, Rule
from leashd.policy.yaml_frontend import argv_pattern_text


def _argv(p: ArgvPattern) -> Any:
    """A prefix as one string where that reads back the same, else a list of tokens."""
    text = argv_pattern_text(p)
    return text if text is not None else [t[0] if len(t) == 1 else list(t) for t in p.tokens]


def _example(ex: Example) -> Any:
    if ex.bash_command is not None:
        return ex.bash_command
    return {"tool": ex.tool, "input": ex.input}


def rule_dict(r: Rule) -> dict[str, Any]:
    d: dict[str, Any] = {"name": r.name}
    if r.description is not None:
        d["description"] = r.description
    if r.reason is not None:
        d["reason"] = r.reason
    if r.risk_level != "medium":
        d["risk_level"] = r.risk_level
    for key in ("tools", "mcp_servers", "modes"):
        value = getattr(r, key)
        if value is not None:
            d[key] = list(value)
    if r.argv is not None:
        d["commands"] = [_argv(p) for p in r.argv]
    for key in ("flags", "env", "fed_by"):
        value = getattr(r, key)
        if value is not None:
            d[key] = list(value)
    for key in ("opaque", "wrapper"):
        if getattr(r, key) is not None:
            d[key] = getattr(r, key)
    if r.command_patterns is not None:
        d["command_patterns"] = [x.pattern for x in r.command_patterns]
    if r.path_patterns is not None:
        d["path_patterns"] = [x.pattern for x in r.path_patterns]
    if r.paths is not None:
        c = r.paths
        p: dict[str, Any] = {"match": list(c.globs)} if c.globs else {}
        if c.except_globs:
            p["except"] = list(c.except_globs)
        for key, default in (("access", "any"), ("where", "anywhere"), ("via", "any")):
            if getattr(c, key) != default:
                p[key] = getattr(c, key)
        if c.ignore_case:
            p["ignore_case"] = True
        d["paths"] = p
    if r.hosts is not None:
        d["hosts"] = list(r.hosts)
    if r.input is not None:
        d["input"] = {k: rx.pattern for k, rx in r.input}
    d["action"] = r.action
    if r.approver != "human":  # next to the action it qualifies
        d["approver"] = r.approver
    if r.lint_ignore:
        d["lint_ignore"] = names_of(r.lint_ignore)
    if r.examples_match or r.examples_not_match:
        ex: dict[str, Any] = {}
        if r.examples_match:
            ex["match"] = [_example(e) for e in r.examples_match]
        if r.examples_not_match:
            ex["not_match"] = [_example(e) for e in r.examples_not_match]
        d["examples"] = ex
    return d


def print_yaml(policy: Policy) -> str:
    doc: dict[str, Any] = {}
    for key in ("name", "description"):
        if getattr(policy, key) is not None:
            doc[key] = getattr(policy, key)
    settings = policy.settings.model_dump(include=policy.settings.model_fields_set)
    if settings:
        doc["settings"] = settings
    doc["rules"] = [rule_dict(r) for r in policy.rules]
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100)
