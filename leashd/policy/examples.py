"""Rule examples, verified when a policy compiles: a policy that contradicts itself never runs.

An example matches a rule when the rule, on its own, matches at least one unit of the call
(order and other rules aside). Examples are evaluated in a fixed world: HOME /home/dev,
project and cwd /home/dev/project.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from leashd.policy.errors import PolicyError
from leashd.policy.facts import Context, extract

if TYPE_CHECKING:
    from leashd.policy.compiler import CompiledPolicy

EXAMPLE_CONTEXT = Context(
    cwd="/home/dev/project", home="/home/dev", approved_dirs=("/home/dev/project",)
)


def verify_examples(
    compiled: CompiledPolicy, skip: frozenset[int] = frozenset()
) -> list[PolicyError]:
    """Errors for every example that does not behave as it says; rules in `skip` aside."""
    errors: list[PolicyError] = []
    for index, rule in enumerate(compiled.rules):
        if index in skip:
            continue
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
                units = [u for u in call.units if not u.shadow]  # the command as written
                got = any(compiled.matches(index, u, EXAMPLE_CONTEXT) for u in units)
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
