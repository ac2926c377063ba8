"""The reference interpreter: the plain first-match loop over the IR.

Slow and obvious on purpose. It is the oracle the compiled evaluator is tested against
(they must agree on every call), so it shares nothing with the compiler but the meaning of
the pattern languages (`patterns.py`) and the facts.
"""

from __future__ import annotations

import json
import re

from leashd.policy import patterns
from leashd.policy.decision import Decision, UnitDecision, combine, malformed, too_large
from leashd.policy.facts import Call, Context, PathFact, Unit
from leashd.policy.ir import PathCondition, Policy, Rule


def _search(pattern: str, ignore_case: bool, text: str) -> bool:
    return re.search(pattern, text, re.I if ignore_case else 0) is not None


def _path_ok(cond: PathCondition, p: PathFact) -> bool:
    if cond.access != "any" and p.access != cond.access:
        return False
    if cond.via == "redirect" and p.source != "redirect":
        return False
    if cond.where == "outside":
        if p.where not in ("outside", "unknown"):
            return False
    elif cond.where != "anywhere" and p.where != cond.where:
        return False
    subjects = p.subjects()
    if cond.globs and not any(
        patterns.compiled_glob(g, cond.ignore_case).match(s) for g in cond.globs for s in subjects
    ):
        return False
    return not any(
        patterns.compiled_glob(g, cond.ignore_case).match(s)
        for g in cond.except_globs
        for s in subjects
    )


def input_text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def first_failure(rule: Rule, unit: Unit, ctx: Context) -> str | None:
    """The first condition of `rule` that `unit` fails, or None when the rule matches."""
    if rule.tools is not None and not patterns.any_wildcard(rule.tools, unit.tool):
        return f"tool {unit.tool} is not one of {', '.join(rule.tools)}"
    if rule.mcp_servers is not None and (
        unit.server is None or not patterns.any_wildcard(rule.mcp_servers, unit.server)
    ):
        return "not a tool of the MCP servers " + ", ".join(rule.mcp_servers)
    if rule.modes is not None and ctx.mode not in rule.modes:
        return f"mode {ctx.mode} is not one of {', '.join(rule.modes)}"
    if rule.opaque is not None and (unit.opaque is not None) != rule.opaque:
        return "the unit is opaque" if unit.opaque else "the unit is not opaque"
    if rule.wrapper is not None and unit.wrapper != rule.wrapper:
        return "the unit is a wrapper" if unit.wrapper else "the unit is not a wrapper"
    if rule.argv is not None and (
        unit.program is None
        or not any(
            patterns.argv_matches(
                p.tokens, unit.argv, unit.program, unit.dynamic, rule.action == "require_approval"
            )
            for p in rule.argv
        )
    ):
        return "argv matches none of the patterns"
    if rule.flags is not None and not any(
        patterns.flag_present(f, unit.argv, unit.dynamic) for f in rule.flags
    ):
        return "none of the flags " + ", ".join(rule.flags) + " is given"
    if rule.command_patterns is not None:
        texts = [t for t in (unit.text,) if t is not None]
        if rule.action == "deny":
            # extra subjects that can only make a deny match more: the whole pipeline, and
            # the words without their quotes
            texts.extend(t for t in (unit.pipeline, unit.words_text()) if t is not None)
        if not any(
            _search(r.pattern, r.ignore_case, t) for r in rule.command_patterns for t in texts
        ):
            return "no command pattern matches"
    if rule.path_patterns is not None and not any(
        p.path is not None and _search(r.pattern, r.ignore_case, p.path)
        for r in rule.path_patterns
        for p in unit.paths
    ):
        return "no path pattern matches"
    if rule.paths is not None and not any(_path_ok(rule.paths, p) for p in unit.paths):
        return "no path matches the path condition"
    if rule.hosts is not None and not any(
        patterns.any_wildcard(rule.hosts, h, ignore_case=True) for h in unit.hosts
    ):
        return "no host matches " + ", ".join(rule.hosts)
    if rule.env is not None and not any(patterns.any_wildcard(rule.env, e) for e in unit.env):
        return "sets none of the variables " + ", ".join(rule.env)
    if rule.fed_by is not None and not any(
        patterns.any_wildcard(rule.fed_by, p) for p in unit.fed_by
    ):
        return "fed by none of " + ", ".join(rule.fed_by)
    if rule.input is not None:
        for key, regex in rule.input:
            if key not in unit.input:
                return f"the input has no {key!r}"
            if not _search(regex.pattern, regex.ignore_case, input_text(unit.input[key])):
                return f"input {key!r} does not match"
    return None


def decide_unit(policy: Policy, unit: Unit, ctx: Context) -> UnitDecision:
    for rule in policy.rules:
        if first_failure(rule, unit, ctx) is None:
            return clamp_opaque(UnitDecision(unit, rule.action, rule, rule.explain_reason()))
    action = policy.settings.default_action
    return clamp_opaque(UnitDecision(unit, action, None, "no rule matched", "default"))


def clamp_opaque(d: UnitDecision) -> UnitDecision:
    """Settle a unit's decision. Opaque never allows: what leashd cannot see, a human must.
    A shadow unit (a program run by path, seen under its plain name) counts only when a rule
    decides it; the default action is for the unit as written."""
    if d.unit.shadow and d.rule is None:
        return UnitDecision(d.unit, "allow", None, "no rule names this program", "shadow", d.steps)
    if d.action == "allow" and d.unit.opaque is not None:
        return UnitDecision(
            d.unit,
            "require_approval",
            d.rule,
            f"{d.unit.opaque}; an opaque command is never allowed",
            "opaque",
            d.steps,
        )
    return d


def evaluate(policy: Policy, call: Call, ctx: Context) -> Decision:
    if call.error is not None:
        return too_large(call.error) if call.too_large else malformed(call.error)
    return combine([decide_unit(policy, u, ctx) for u in call.units])
