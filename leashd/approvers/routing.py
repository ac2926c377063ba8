"""The hard floor: which calls the AI approver may ever see.

Only a `require_approval` whose every asking unit was decided by a policy rule that names
`approver: ai`. Never a deny (nobody overrides one), never a unit the analysis could not see
through (opaque), never a sandbox verdict (a path outside the approved directories, the OS
sandbox asking about a host), never the built-in default action. A policy that puts
`approver: ai` on a deny or an allow changes nothing: only asking rules are routed.
"""

from __future__ import annotations

from typing import Any

from leashd.policy.decision import Decision, ai_withheld
from leashd.policy.facts import SANDBOX_NETWORK


def why_not_ai(tool: Any, decision: Decision) -> str | None:
    """None when the AI approver may answer this call; else why a human must. Stricter than
    `Decision.approver` (what explain shows), never looser: any opaque or sandbox-decided
    unit keeps the whole call from the AI, whatever its own answer."""
    if decision.action != "require_approval":
        return f"the policy's answer is {decision.action}, not a question"
    if tool == SANDBOX_NETWORK:
        return "the OS sandbox asks about a host: only a human answers that"
    if decision.layer != "policy":
        return f"decided by the {decision.layer}, not by a rule"
    for u in decision.units:
        if u.unit.opaque:
            return f"{u.unit.describe()!r} is opaque to the analysis"
        if u.layer != "policy" and u.action != "allow":
            return f"{u.unit.describe()!r} is decided by the {u.layer}"
        withheld = ai_withheld(u)
        if withheld is not None:
            return withheld
    if decision.approver != "ai":
        human = next(
            (u for u in decision.units if u.action == "require_approval" and u.approver != "ai"),
            None,
        )
        rule = human.rule.name if human is not None and human.rule is not None else None
        return f"{rule or 'the default action'} asks a human"
    return None
