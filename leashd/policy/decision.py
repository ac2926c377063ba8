"""What an evaluation returns: the decision, the rule that decided it, and the trace."""

from __future__ import annotations

from dataclasses import dataclass, field

from leashd.policy.facts import Unit
from leashd.policy.ir import STRICTNESS, Action, Rule

Layer = str  # "policy", "default", "sandbox", "opaque", "input", "limit"


@dataclass(frozen=True, slots=True)
class Step:
    """One rule tried against one unit, for `explain`."""

    rule: Rule
    matched: bool
    why: str  # the first condition that failed, or "all conditions hold"


@dataclass(frozen=True, slots=True)
class UnitDecision:
    unit: Unit
    action: Action
    rule: Rule | None
    reason: str
    layer: Layer = "policy"
    steps: tuple[Step, ...] = ()


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    rule: Rule | None
    reason: str
    layer: Layer = "policy"
    units: tuple[UnitDecision, ...] = ()
    error: str | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def rule_name(self) -> str | None:
        return self.rule.name if self.rule is not None else None

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "decision": self.action,
            "rule": self.rule_name,
            "reason": self.reason,
        }
        if self.error is not None:
            out["error"] = self.error
        return out


def strictest(decisions: list[UnitDecision]) -> UnitDecision:
    """The first of the strictest unit decisions: deny > require_approval > allow."""
    best = decisions[0]
    for d in decisions[1:]:
        if STRICTNESS[d.action] > STRICTNESS[best.action]:
            best = d
    return best


def combine(units: list[UnitDecision], notes: tuple[str, ...] = ()) -> Decision:
    top = strictest(units)
    return Decision(top.action, top.rule, top.reason, top.layer, tuple(units), notes=notes)


def malformed(error: str) -> Decision:
    return Decision("deny", None, f"malformed tool call: {error}", "input", (), error=error)


def too_large(reason: str) -> Decision:
    """A call past an analysis bound (`leashd.limits`): refused, never half-analysed."""
    return Decision("deny", None, reason, "limit", (), error=reason)
