"""`leashd policy eval` and `leashd policy explain`: calls decided by the compiled policy."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, replace
from typing import Any

import click

from leashd.cli.lazy import examples
from leashd.cli.options import exit_with, format_option, policy_option, world, world_options
from leashd.gate.sandbox import apply_sandbox
from leashd.policy.calls import read_lines
from leashd.policy.compiler import CompiledPolicy
from leashd.policy.decision import (
    Decision,
    Step,
    UnitDecision,
    ai_withheld,
    malformed,
    strictest,
)
from leashd.policy.errors import PolicyError
from leashd.policy.evaluator import Evaluator
from leashd.policy.facts import Context, Unit
from leashd.policy.ir import PathCondition, Rule, Span
from leashd.policy.loader import load_compiled
from leashd.policy.locations import Location, locate
from leashd.policy.plan import KINDS
from leashd.policy.tool_inputs import input_problem
from leashd.shell.model import DYNAMIC


def _evaluator(policies: tuple[str, ...], ctx: Context) -> Evaluator:
    try:
        return Evaluator(load_compiled(list(policies)), ctx)
    except PolicyError as exc:
        exit_with(exc)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _text_line(number: int, d: Decision) -> str:
    return _visible(f"{number}: {d.action} by {d.rule_name or d.layer}: {d.reason}")


@click.command(
    "eval",
    epilog=examples(
        """echo '{"tool": "Bash", "input": {"command": "rm -rf /"}}' | leashd policy eval""",
        "leashd policy eval --calls calls.jsonl --policy strict --format text",
        "leashd policy eval --calls calls.jsonl --stats > /dev/null",
    ),
)
@policy_option
@world_options
@click.option(
    "--calls",
    default="-",
    type=click.File("rb"),
    help="JSON Lines of tool calls, one per line (default: standard input).",
)
@click.option("--stats", is_flag=True, help="Print timing figures as JSON on stderr.")
@click.option("--repeat", default=20, show_default=True, help="Warm passes for --stats.")
@format_option("json", "text", default="json")
def eval_cmd(
    policies: tuple[str, ...],
    cwd: str | None,
    home: str | None,
    approved: tuple[str, ...],
    mode: str,
    calls: Any,
    stats: bool,
    repeat: int,
    fmt: str,
) -> None:
    """Decide every call of a JSON Lines stream: {"tool": ..., "input": {...}} per line.

    One line out per non-blank line in, as each is read: a JSON object (`decision`, `rule`,
    `reason`), or with --format text `LINE: DECISION by RULE: REASON`. A line that holds no
    call (not UTF-8, not JSON, too deep, too long) gets a deny with its `error` and `line`."""
    ctx = world(cwd, home, approved, mode)
    evaluator = _evaluator(policies, ctx)

    def decide(tool: Any, tool_input: Any) -> Decision:
        # checked here until the evaluator checks input types itself (it is cheap either way)
        problem = input_problem(tool, tool_input)
        if problem is not None:
            return malformed(problem)
        d = evaluator.evaluate(tool, tool_input)
        return apply_sandbox(d) if approved else d

    if stats:
        evaluator.clear_caches()  # cold: compiling the policy (its examples) filled them
    cold: list[float] = []
    kept: list[tuple[Any, Any]] = []  # for the warm passes of --stats
    out = sys.stdout
    for line in read_lines(calls):
        if line.error is not None:
            d = malformed(f"line {line.number}: {line.error}")
            shown = json.dumps({**d.to_json(), "line": line.number})
        else:
            t0 = time.perf_counter_ns()
            d = decide(line.tool, line.input)
            cold.append((time.perf_counter_ns() - t0) / 1000)
            shown = json.dumps(d.to_json())
            if stats:
                kept.append((line.tool, line.input))
        out.write((_text_line(line.number, d) if fmt == "text" else shown) + "\n")
        out.flush()  # a stream: each answer as soon as its line is decided
    if stats and cold:
        import statistics  # only for --stats: its import is some 10 ms of every start

        warm: list[float] = []
        for _ in range(repeat):
            for tool, tool_input in kept:
                t0 = time.perf_counter_ns()
                decide(tool, tool_input)
                warm.append((time.perf_counter_ns() - t0) / 1000)
        figures = {
            "calls": len(cold),
            "cold_median_us": round(statistics.median(cold), 3),
            "cold_p99_us": round(_percentile(cold, 0.99), 3),
            "warm_median_us": round(statistics.median(warm), 3) if warm else None,
            "warm_p99_us": round(_percentile(warm, 0.99), 3) if warm else None,
        }
        click.echo(json.dumps(figures), err=True)


# --- explain -------------------------------------------------------------------------------

# `--explain` levels, OPA's words; each shows what the one before does and more. Without it,
# explain shows what decided each unit.
LEVELS = ("notes", "fails", "full")
_DEPTH = {None: 0, "notes": 1, "fails": 2, "full": 3}

# What decided a unit (or a call) when no rule did.
_LAYERS = {
    "default": "the default action",
    "sandbox": "the sandbox",
    "shadow": "no rule",
    "input": "the input check",
    "limit": "a size limit",
    "error": "an internal error",
}


def _layer_words(layer: str) -> str:
    return _LAYERS.get(layer, f"the {layer} layer")


@dataclass(frozen=True, slots=True)
class NearMiss:
    """A rule tried before the deciding one that failed on exactly one of its conditions."""

    rule: Rule
    why: str  # the evaluator's words: `paths does not hold`
    condition: Span | None  # where the failed condition is written, when the IR says


# Conditions that say how a unit is run, not what it does: holding says little on its own.
_QUALIFIERS = frozenset({"modes", "opaque", "wrapper"})


def near_misses(evaluator: Evaluator, ud: UnitDecision) -> list[NearMiss]:
    """The rules of `ud`'s trace (tried before the deciding one) that nearly matched: a rule
    is a near miss when it is about this unit (its tool, which every rule of the trace has,
    and its program when the rule names programs: a `commands` condition that holds), fails
    exactly one condition, and has a condition other than modes/opaque/wrapper that holds.
    Deterministic: trace order, each rule once."""
    tried = [s for s in ud.steps if not s.matched]
    if not tried:
        return []
    compiled = evaluator.compiled
    held = _conditions_held(compiled, ud.unit, evaluator.ctx)
    index: dict[int, int] = {}
    for i, r in enumerate(compiled.rules):
        index.setdefault(id(r), i)
    out = []
    for step in tried:
        bit = 1 << index[id(step.rule)]
        kinds = [k for k in KINDS if compiled.has[k] & bit]
        failed = [k for k in kinds if not held[k] & bit]
        telling = [k for k in kinds if k not in failed and k not in _QUALIFIERS]
        if len(failed) == 1 and failed[0] != "argv" and telling:
            # one failure: it is the first one too, which the trace names in the rule's words
            out.append(NearMiss(step.rule, step.why, _condition_span(step.rule, failed[0])))
    return out


def _conditions_held(compiled: CompiledPolicy, unit: Unit, ctx: Context) -> dict[str, int]:
    """Per condition kind, the mask of the unit's candidate rules whose condition of that
    kind holds: what `CompiledPolicy.trace` computes before it keeps the first failure only.
    (Its step table is private; a public `held` there would serve lint and test too.)"""
    cand = compiled.candidates(unit)
    return {kind: ok(unit, ctx, cand & compiled.has[kind]) for kind, ok in compiled._steps}


def _condition_span(rule: Rule, kind: str) -> Span | None:
    value = getattr(rule, kind, None)
    span: Span | None = None
    if isinstance(value, PathCondition):
        span = value.span
    elif kind == "input" and value:
        span = value[0][1].span
    elif kind in ("argv", "command_patterns", "path_patterns") and value:
        span = value[0].span
    return span if span is not None and span.line > 0 else None


def _decider(ud: UnitDecision) -> str:
    """The rule's name, or in parentheses (no rule has those) what decided instead."""
    return ud.rule.name if ud.rule is not None else f"({_layer_words(ud.layer)})"


def _where(rule: Rule | None) -> Location | None:
    return locate(rule.span) if rule is not None else None


def _deciding_unit(d: Decision) -> int | None:
    """The 1-based number of the unit the call's decision is taken from."""
    if not d.units:
        return None
    top = strictest(list(d.units))
    return next(i for i, ud in enumerate(d.units, 1) if ud is top)


def _with_policy_steps(before: Decision, after: Decision) -> Decision:
    """`after` (the sandbox applied) keeping the policy's trace of each unit the sandbox
    decided: what the rules said is still why they did not decide."""
    if len(before.units) != len(after.units):
        return after
    units = tuple(
        a if a.steps or not b.steps else replace(a, steps=b.steps)
        for a, b in zip(after.units, before.units, strict=True)
    )
    return replace(after, units=units)


# --- explain: text ---


def _visible(line: str) -> str:
    """`line` with what a terminal would not show as itself escaped (a command may hold
    control characters, or a lone surrogate no encoding can write)."""
    if line.isprintable():
        return line
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in line)


def _say(line: str = "") -> None:
    """A line of explain's text form."""
    click.echo(_visible(line))


def _print_explain(d: Decision, level: str | None, evaluator: Evaluator) -> None:
    depth = _DEPTH[level]
    if depth >= 1:
        for note in d.notes:
            _say(f"note: {note}")
    action_w = max((len(_action_text(ud)) for ud in d.units), default=0)
    name_w = max((len(_decider(ud)) for ud in d.units), default=0)
    for i, ud in enumerate(d.units, 1):
        _say(f"unit {i}: {ud.unit.describe()}" + (" (wrapper)" if ud.unit.wrapper else ""))
        if depth >= 1:
            for label, value in _facts_text(ud.unit):
                _say(f"  {label + ':':<8}{value}")
        if depth == 2:
            _print_near_misses(near_misses(evaluator, ud))
        elif depth == 3:
            _print_steps(ud.steps, near_misses(evaluator, ud))
        where = _where(ud.rule)
        row = f"  {_action_text(ud):<{action_w}}  {_decider(ud):<{name_w}}  {where or ''}"
        _say(row.rstrip())
        _say(f"  {'':<{action_w}}  {ud.reason}")
        withheld = ai_withheld(ud)
        if withheld is not None:
            _say(f"  {'':<{action_w}}  a human answers: {withheld}")
    if d.units:
        _say()
    _say(_decision_line(d))


def _action_text(ud: UnitDecision) -> str:
    """The unit's action, with who answers when its rule names the AI approver:
    `require_approval (ai)`, or `(human)` when something keeps the AI out."""
    if ud.approver == "ai":
        return f"{ud.action} (ai)"
    return f"{ud.action} (human)" if ai_withheld(ud) is not None else ud.action


def _call_action_text(d: Decision) -> str:
    """The call's action, saying who answers when any unit's rule names the AI approver
    (the call is the AI's only when every unit that asks is)."""
    named = any(ud.approver == "ai" or ai_withheld(ud) is not None for ud in d.units)
    return f"{d.action} ({d.approver})" if named and d.approver is not None else d.action


def _decision_line(d: Decision) -> str:
    number = _deciding_unit(d)
    by = d.rule.name if d.rule is not None else _layer_words(d.layer)
    line = f"decision: {_call_action_text(d)} by {by}"
    if number is None:
        return f"{line}: {d.reason}"  # no unit above says why
    return f"{line} (unit {number})" if len(d.units) > 1 else line


def _facts_text(u: Unit) -> list[tuple[str, str]]:
    """What the engine saw of a unit, beyond its words: one (label, value) a line."""
    out: list[tuple[str, str]] = []
    if u.server is not None:
        out.append(("server", u.server))
    if u.opaque is not None:
        out.append(("opaque", u.opaque))
    for p in u.paths:
        named = p.shown()
        if p.path is not None and p.raw and p.raw != p.path:
            named = f"{p.raw} → {p.path}"  # resolved: relative, ~, a symlink
        via = f", {p.source}" if p.source else ""
        out.append(("path", f"{named}  ({p.access}, {p.where}{via})"))
    out.extend(("env", name) for name in u.env)
    out.extend(("host", host) for host in u.hosts)
    if u.fed_by:
        out.append(("fed by", ", ".join(sorted(u.fed_by))))
    return out


def _print_near_misses(misses: list[NearMiss]) -> None:
    name_w = max((len(m.rule.name) for m in misses), default=0)
    shown = [str(locate(m.rule.span)) for m in misses]
    where_w = max(map(len, shown), default=0)
    for m, where in zip(misses, shown, strict=True):
        _say(f"  near miss  {m.rule.name:<{name_w}}  {where:<{where_w}}  {_miss_why(m)}")


def _miss_why(m: NearMiss) -> str:
    """The failed condition, and where it is written: its line in the rule's file."""
    if m.condition is None:
        return m.why
    if m.condition.file == m.rule.span.file:
        return f"{m.why} (line {m.condition.line}:{m.condition.column})"
    return f"{m.why} ({locate(m.condition)})"


def _print_steps(steps: tuple[Step, ...], misses: list[NearMiss]) -> None:
    near = {id(m.rule): m for m in misses}
    name_w = max((len(s.rule.name) for s in steps), default=0)
    shown = [str(locate(s.rule.span)) for s in steps]
    where_w = max(map(len, shown), default=0)
    for s, where in zip(steps, shown, strict=True):
        mark = "✔" if s.matched else "·"
        miss = near.get(id(s.rule))
        why = f"{_miss_why(miss)}, a near miss" if miss is not None else s.why
        _say(f"  {mark} {s.rule.name:<{name_w}}  {where:<{where_w}}  {why}")


# --- explain: JSON ---


def explain_json(d: Decision, level: str | None, evaluator: Evaluator) -> dict[str, Any]:
    """The trace as data: `to_json`'s keys (what eval gives), the deciding rule's location,
    and per unit what the text shows at `level`."""
    depth = _DEPTH[level]
    out: dict[str, Any] = d.to_json()
    where = _where(d.rule)
    out["location"] = where.to_json() if where is not None else None
    out["layer"] = d.layer
    out["approver"] = d.approver  # who answers: null (not asked), "human" or "ai"
    out["deciding_unit"] = _deciding_unit(d)
    out["explain"] = level or "short"
    if depth >= 1:
        out["notes"] = list(d.notes)
    out["units"] = [_unit_json(ud, depth, evaluator) for ud in d.units]
    return out


def _unit_json(ud: UnitDecision, depth: int, evaluator: Evaluator) -> dict[str, Any]:
    where = _where(ud.rule)
    out: dict[str, Any] = {
        "unit": ud.unit.describe(),
        "decision": ud.action,
        "rule": ud.rule.name if ud.rule else None,
        "layer": ud.layer,
        "reason": ud.reason,
        "approver": ud.approver,
        "location": where.to_json() if where is not None else None,
        "wrapper": ud.unit.wrapper,
    }
    withheld = ai_withheld(ud)
    if withheld is not None:  # the rule names the AI, and a human answers: why
        out["approver_withheld"] = withheld
    if depth >= 1:
        out["facts"] = _facts_json(ud.unit)
    if depth >= 2:
        out["near_misses"] = [_miss_json(m) for m in near_misses(evaluator, ud)]
    if depth >= 3:
        out["steps"] = [
            {
                "rule": s.rule.name,
                "action": s.rule.action,
                "location": locate(s.rule.span).to_json(),
                "matched": s.matched,
                "why": s.why,
            }
            for s in ud.steps
        ]
    return out


def _facts_json(u: Unit) -> dict[str, Any]:
    return {
        "tool": u.tool,
        "server": u.server,
        "program": u.program,
        "argv": [_run_time(a, "<dynamic>") for a in u.argv],
        "opaque": u.opaque,
        "paths": [
            {
                "raw": _run_time(p.raw, "<run time>") if p.raw is not None else None,
                "path": p.path,  # None: only known at run time
                "access": p.access,
                "where": p.where,
                "via": p.source,
            }
            for p in u.paths
        ],
        "env": list(u.env),
        "hosts": list(u.hosts),
        "fed_by": sorted(u.fed_by),
    }


def _run_time(word: str, shown: str) -> str:
    """A word with its parts known only at run time marked as `describe` and `shown` do."""
    return word.replace(DYNAMIC, shown)


def _miss_json(m: NearMiss) -> dict[str, Any]:
    return {
        "rule": m.rule.name,
        "action": m.rule.action,
        "location": locate(m.rule.span).to_json(),
        "why": m.why,
        "condition_location": locate(m.condition).to_json() if m.condition is not None else None,
    }


@click.command(
    "explain",
    epilog=examples(
        "leashd policy explain -- 'git push --force origin main'",
        "leashd policy explain --explain fails --policy team.yaml -- 'npm test'",
        """leashd policy explain --tool Read --input '{"file_path": ".env"}'""",
        "leashd policy explain --policy strict --format json -- 'npm install left-pad'",
    ),
)
@policy_option
@world_options
@click.option(
    "--tool", default="Bash", show_default=True, help="The tool the call is for (Bash, Read, …)."
)
@click.option(
    "--input", "input_json", metavar="JSON", help="The tool input as JSON (non-Bash tools)."
)
@click.option(
    "--explain",
    "level",
    type=click.Choice(LEVELS),
    default=None,
    help="More than what decided each unit: notes (what leashd saw of each unit), fails "
    "(also the near misses: rules that failed on one condition), full (every rule tried).",
)
@format_option("text", "json", json_alias=True)
@click.argument("command", nargs=-1)
def explain_cmd(
    policies: tuple[str, ...],
    cwd: str | None,
    home: str | None,
    approved: tuple[str, ...],
    mode: str,
    tool: str,
    input_json: str | None,
    level: str | None,
    fmt: str,
    command: tuple[str, ...],
) -> None:
    """Show how a call is decided: each unit and the rule that decided it, with where that
    rule is written; --explain for more. explain -- 'git push -f'."""
    if input_json is None and not command:
        raise click.UsageError("no call to explain: give a command (explain -- 'CMD') or --input")
    if input_json is not None and command:
        raise click.UsageError("give a command or --input, not both")
    ctx = world(cwd, home, approved, mode)
    evaluator = _evaluator(policies, ctx)
    if input_json is not None:
        try:
            tool_input = json.loads(input_json)
        except ValueError as exc:
            raise click.BadParameter(f"not JSON: {exc}", param_hint="--input") from None
    else:
        tool_input = {"command": " ".join(command)}
    d = evaluator.evaluate(tool, tool_input, trace=True)
    if approved:
        d = _with_policy_steps(d, apply_sandbox(d))
    if fmt == "json":
        click.echo(json.dumps(explain_json(d, level, evaluator), indent=2))
    else:
        _print_explain(d, level, evaluator)
