"""`leashd policy diff`: what changing one policy into another does to real calls."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from leashd.cli.lazy import examples
from leashd.cli.options import exit_with, format_option, world, world_options
from leashd.gate.sandbox import apply_sandbox
from leashd.policy.calls import builtin_calls
from leashd.policy.calls import load as load_calls
from leashd.policy.decision import Decision
from leashd.policy.diff import PolicyDiff
from leashd.policy.diff import diff as diff_policies
from leashd.policy.errors import PolicyError
from leashd.policy.evaluator import Evaluator
from leashd.policy.loader import load_compiled


def _specs(value: str) -> list[str]:
    return [x.strip() for x in value.split(",") if x.strip()]


def _print_diff(d: PolicyDiff, limit: int) -> None:
    marks = {"added": "+", "removed": "-", "changed": "~", "moved": "↕"}
    counts = ", ".join(f"{len(getattr(d, k))} {k}" for k in marks)
    click.echo(f"rules: {counts}")
    for kind, mark in marks.items():
        for c in getattr(d, kind):
            rule = c.new or c.old
            what = rule.action
            if kind == "changed" and c.old.action != c.new.action:
                what = f"{c.old.action} -> {c.new.action}"
            detail = f": {', '.join(c.fields)}" if c.fields else ""
            click.echo(f"  {mark} {c.name} ({what}) {rule.span}{detail}")
    for key, (a, b) in d.settings.items():
        click.echo(f"settings: {key} {a} -> {b}")
    looser, stricter, rerouted = d.looser, d.stricter, d.group("rerouted")
    click.echo(
        f"calls: {d.calls} decided, {len(d.changes)} changed: {len(looser)} looser, "
        f"{len(stricter)} stricter, {len(rerouted)} same decision by another rule"
    )
    for title, group in (("looser", looser), ("stricter", stricter), ("rerouted", rerouted)):
        if not group:
            continue
        click.echo(f"{title} ({len(group)}):")
        for c in group[:limit]:
            click.echo(
                f"  {c.call.short()}\n"
                f"      {_shown(c.old)} ({c.old.rule_name or c.old.layer}) -> "
                f"{_shown(c.new)} ({c.new.rule_name or c.new.layer})   [{c.call.origin}]"
            )
        if len(group) > limit:
            click.echo(f"  ... {len(group) - limit} more (--limit)")


def _shown(d: Decision) -> str:
    """The action, and who answers a question when the AI does."""
    return f"{d.action} (ai)" if d.approver == "ai" else d.action


@click.command(
    "diff",
    epilog=examples(
        "leashd policy diff default strict",
        "leashd policy diff old.yaml new.yaml --fail-on-looser",
        "leashd policy diff default,dev-tools team.yaml --calls audit.jsonl --format json",
    ),
)
@click.argument("old", metavar="OLD")
@click.argument("new", metavar="NEW")
@click.option(
    "--calls",
    "call_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Calls to decide: JSON Lines (corpus, audit log, eval input) or a test suite "
    "(repeatable). Default: every built-in suite and the shipped corpora.",
)
@click.option("--fail-on-looser", is_flag=True, help="Exit 1 when NEW is looser on any call.")
@format_option("text", "json")
@click.option("--limit", default=20, show_default=True, help="Calls shown per group (text).")
@world_options
def diff_cmd(
    old: str,
    new: str,
    call_files: tuple[Path, ...],
    fail_on_looser: bool,
    fmt: str,
    limit: int,
    cwd: str | None,
    home: str | None,
    approved: tuple[str, ...],
    mode: str,
) -> None:
    """What changing policy OLD into NEW does (each a name or file; several joined by commas).

    Calls are decided in the world the built-in suites use (~ is /home/dev, the project
    /home/dev/project) unless --cwd/--home say otherwise; with --approved-dir, the sandbox too.
    """
    ctx = world(cwd or "/home/dev/project", home or "/home/dev", approved, mode)
    try:
        before, after = load_compiled(_specs(old)), load_compiled(_specs(new))
        calls = load_calls(list(call_files)) if call_files else builtin_calls()
    except PolicyError as exc:
        exit_with(exc)

    def decider(compiled: Any) -> Any:
        evaluator = Evaluator(compiled, ctx)

        def decide(call: Any) -> Decision:
            d = evaluator.evaluate(call.tool, call.input)
            return apply_sandbox(d) if approved else d

        return decide

    result = diff_policies(before.policy, after.policy, calls, decider(before), decider(after))
    if fmt == "json":
        click.echo(json.dumps(result.to_json(), indent=2, default=str))
    else:
        _print_diff(result, limit)
    sys.exit(1 if fail_on_looser and result.looser else 0)
