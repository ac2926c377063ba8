"""Rule examples, verified when a policy compiles: a policy that contradicts itself never runs.

An example matches a rule when the rule, on its own, matches at least one unit of the call
(order and other rules aside). Examples are evaluated in a fixed world: HOME /home/dev,
project and cwd /home/dev/project.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from leashd.policy.errors import PolicyError
from leashd.policy.facts import Context, Unit, extract

if TYPE_CHECKING:
    from leashd.policy.compiler import CompiledPolicy, CompiledRule

EXAMPLE_CONTEXT = Context(
    cwd="/home/dev/project", home="/home/dev", approved_dirs=("/home/dev/project",)
)


def rule_matches_unit(compiled: CompiledPolicy, cr: CompiledRule, unit: Unit, ctx: Context) -> bool:
    from leashd.policy.compiler import UnitMatches

    if cr not in compiled.candidates(unit):
        return False
    m = UnitMatches(compiled, unit)
    return all(check(unit, ctx, m) for _, check in cr.checks)


def verify_examples(compiled: CompiledPolicy) -> list[PolicyError]:
    errors: list[PolicyError] = []
    for cr in compiled.rules:
        rule = cr.rule
        for expect, examples in ((True, rule.examples_match), (False, rule.examples_not_match)):
            for ex in examples:
                call = extract(ex.tool, ex.input, EXAMPLE_CONTEXT)
                if call.error:
                    errors.append(
                        PolicyError(
                            f"rule {rule.name!r}: example is not a valid call: {call.error}",
                            ex.span.file,
                            ex.span.line,
                            ex.span.column,
                        )
                    )
                    continue
                got = any(rule_matches_unit(compiled, cr, u, EXAMPLE_CONTEXT) for u in call.units)
                if got != expect:
                    shown = ex.input.get("command") if ex.tool == "Bash" else ex.input
                    verb = "should match but does not" if expect else "should not match but does"
                    errors.append(
                        PolicyError(
                            f"rule {rule.name!r}: example {ex.tool} {shown!r} {verb}",
                            ex.span.file,
                            ex.span.line,
                            ex.span.column,
                        )
                    )
    return errors
