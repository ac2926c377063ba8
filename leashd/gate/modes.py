"""Session modes, applied after the sandbox and the policy.

- `default`: the policy's decision stands.
- `plan`: the agent reads and proposes; it changes nothing until its plan is approved. A unit
  that writes, or that would need approval, is denied; the plan itself (`ExitPlanMode`) always
  goes to a human.
- `auto`: edits inside the approved directories go ahead without asking. Only file-edit tools,
  only when every path is inside and the policy (not the sandbox) asked; a deny stays a deny,
  and a rule that names `auto` among its modes keeps asking.
"""

from __future__ import annotations

from leashd.policy.decision import Decision, UnitDecision, combine

MODES = ("default", "plan", "auto")
EDIT_TOOLS = frozenset({"Write", "Edit", "MultiEdit", "NotebookEdit"})
PLAN_TOOL = "ExitPlanMode"


def apply_mode(decision: Decision, mode: str, tool: object) -> Decision:
    """The decision as this session's mode has it. Never looser than the policy, except
    `auto` mode's edits inside the project, which are the point of that mode."""
    if mode == "default" or decision.error is not None or decision.action == "deny":
        return decision
    if mode not in MODES:
        return Decision("deny", None, f"unknown session mode {mode!r}", "mode")
    if mode == "plan":
        if tool == PLAN_TOOL:
            return Decision(
                "require_approval",
                None,
                "The agent's plan: approve it before anything is changed",
                "mode",
                decision.units,
            )
        if tool in EDIT_TOOLS:  # whatever units it was given: an edit is an edit
            why = "plan mode: nothing is changed until the plan is approved"
            return Decision("deny", decision.rule, why, "mode", decision.units)
        return _map(decision, _plan_unit)
    return _map(decision, _auto_unit)


def _map(decision: Decision, f) -> Decision:  # type: ignore[no-untyped-def]
    if not decision.units:
        return decision
    return combine([f(u) for u in decision.units], decision.notes)


def _plan_unit(u: UnitDecision) -> UnitDecision:
    if u.unit.tool in EDIT_TOOLS or any(p.access == "write" for p in u.unit.paths):
        why = "plan mode: nothing is changed until the plan is approved"
        return UnitDecision(u.unit, "deny", u.rule, why, "mode", u.steps)
    if u.action == "require_approval":
        why = f"plan mode: approve the plan first ({u.reason})"
        return UnitDecision(u.unit, "deny", u.rule, why, "mode", u.steps)
    return u


def _auto_unit(u: UnitDecision) -> UnitDecision:
    if (
        u.action == "require_approval"
        and u.unit.tool in EDIT_TOOLS
        and u.layer in ("policy", "default")
        and u.unit.paths
        and all(p.where == "inside" for p in u.unit.paths)
        and not (u.rule is not None and u.rule.modes is not None and "auto" in u.rule.modes)
    ):
        why = f"auto mode: an edit inside the project goes ahead ({u.reason})"
        return UnitDecision(u.unit, "allow", u.rule, why, "mode", u.steps)
    return u
