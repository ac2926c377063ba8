"""What an evaluation returns: the decision, the rule that decided it, and the trace."""

from __future__ import annotations

from dataclasses import dataclass, field

from leashd.policy.facts import SANDBOX_NETWORK, Unit
from leashd.policy.ir import STRICTNESS, Action, Approver, Rule

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

    @property
    def approver(self) -> Approver | None:
        """Who answers this unit (None: it is not asked). `ai` only when a require_approval
        rule naming `approver: ai` decided it and nothing keeps the AI out (`ai_withheld`)."""
        if self.action != "require_approval":
            return None
        if self.rule is None or self.rule.approver != "ai" or ai_withheld(self) is not None:
            return "human"
        return "ai"


def ai_withheld(ud: UnitDecision) -> str | None:
    """Why a unit asked about by a rule naming `approver: ai` still goes to a human, or None
    when it does not (or the rule names no AI). As DESIGN.md has it: a deny is never
    overridable, opaque units and paths outside the approved directories never reach an AI,
    and the field means something on require_approval rules only. (The gate's own floor,
    leashd/approvers/routing.py, must agree: explain shows this one.)"""
    rule = ud.rule
    if rule is None or rule.approver != "ai" or ud.action != "require_approval":
        return None
    if ud.unit.opaque is not None:
        return "an opaque command never goes to the AI approver"
    if ud.unit.tool == SANDBOX_NETWORK:
        return "the OS sandbox asks about a host: only a human answers that"
    if rule.action != "require_approval" or ud.layer != "policy":
        return f"rule {rule.name!r} does not ask ({rule.action}): the approver is for ask rules"
    outside = next((p for p in ud.unit.paths if p.where != "inside"), None)
    if outside is not None:
        return f"{outside.shown()} is not inside the approved directories: never for the AI"
    return None


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

    @property
    def approver(self) -> Approver | None:
        """Who answers the call (None: it is not asked). `ai` only when every unit that asks
        goes to the AI: `git push && rm -r x` has the human's question if either does. The
        deciding rule alone (`rule.approver`) does not say it: it is one unit's."""
        if self.action != "require_approval":
            return None
        asking = [u for u in self.units if u.action == "require_approval"]
        return "ai" if asking and all(u.approver == "ai" for u in asking) else "human"

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
