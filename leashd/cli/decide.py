"""`leashd policy eval` and `leashd policy explain`: calls decided by the compiled policy."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import click

from leashd.cli.lazy import examples
from leashd.cli.options import exit_with, format_option, policy_option, world, world_options
from leashd.gate.sandbox import apply_sandbox
from leashd.policy.calls import read_lines
from leashd.policy.decision import Decision, malformed
from leashd.policy.errors import PolicyError
from leashd.policy.evaluator import Evaluator
from leashd.policy.facts import Context
from leashd.policy.loader import load_compiled
from leashd.policy.tool_inputs import input_problem


def _evaluator(policies: tuple[str, ...], ctx: Context) -> Evaluator:
    try:
        return Evaluator(load_compiled(list(policies)), ctx)
    except PolicyError as exc:
        exit_with(exc)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _text_line(number: int, d: Decision) -> str:
    return f"{number}: {d.action} by {d.rule_name or d.layer}: {d.reason}"


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
    calls: Any,
    stats: bool,
    repeat: int,
    fmt: str,
) -> None:
    """Decide every call of a JSON Lines stream: {"tool": ..., "input": {...}} per line.

    One line out per non-blank line in, as each is read: a JSON object (`decision`, `rule`,
    `reason`), or with --format text `LINE: DECISION by RULE: REASON`. A line that holds no
    call (not UTF-8, not JSON, too deep, too long) gets a deny with its `error` and `line`."""
    ctx = world(cwd, home, approved)
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


def _print_explain(d: Decision) -> None:
    for i, ud in enumerate(d.units, 1):
        u = ud.unit
        kind = " (wrapper)" if u.wrapper else ""
        click.echo(f"unit {i}: {u.describe()}{kind}")
        if u.opaque:
            click.echo(f"  opaque: {u.opaque}")
        for p in u.paths:
            click.echo(f"  path: {p.shown()} [{p.access}, {p.where}]")
        for step in ud.steps:
            mark = "✔" if step.matched else "·"
            click.echo(f"  {mark} {step.rule.name} ({step.rule.span}): {step.why}")
        where = f" at {ud.rule.span}" if ud.rule else ""
        click.echo(
            f"  => {ud.action} by {ud.rule.name if ud.rule else ud.layer}{where}: {ud.reason}"
        )
    rule = f"{d.rule.name} ({d.rule.span})" if d.rule else d.layer
    click.echo(f"decision: {d.action}  rule: {rule}  reason: {d.reason}")


@click.command(
    "explain",
    epilog=examples(
        "leashd policy explain -- 'git push --force origin main'",
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
@format_option("text", "json", json_alias=True)
@click.argument("command", nargs=-1)
def explain_cmd(
    policies: tuple[str, ...],
    cwd: str | None,
    home: str | None,
    approved: tuple[str, ...],
    tool: str,
    input_json: str | None,
    fmt: str,
    command: tuple[str, ...],
) -> None:
    """Show the units of a call, each rule tried, and what decided: explain -- 'git push -f'."""
    ctx = world(cwd, home, approved)
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
        d = apply_sandbox(d)
    if fmt == "json":
        out = d.to_json()
        out["units"] = [
            {
                "unit": ud.unit.describe(),
                "decision": ud.action,
                "rule": ud.rule.name if ud.rule else None,
                "layer": ud.layer,
                "reason": ud.reason,
            }
            for ud in d.units
        ]
        click.echo(json.dumps(out, indent=2))
    else:
        _print_explain(d)
