"""What the lint counts as a rule's action: its `action`, with a question put to the AI
approver told apart from one put to a human.

Two `require_approval` rules that overlap are not the same to a user who named `approver: ai`
on one of them: whichever comes first decides who is asked. So for the order anomalies an
AI question is an action of its own, looser than a human's question and stricter than an
allow: an AI-asking rule before an overlapping human-asking one is a conflict that loosens
(a warning, with a call both match), and a human-asking rule that an AI-asking one covers
is shadowed. Everything else the analysis reads of an action (what a deny rule's regexes
look at, how an asking rule matches words known only at run time) is the rule's own.
"""

from __future__ import annotations

from leashd.policy.decision import Decision
from leashd.policy.ir import Rule

AI_ASK = "require_approval (ai)"
STRICT: dict[str, int] = {"allow": 0, AI_ASK: 1, "require_approval": 2, "deny": 3}


def of_rule(rule: Rule) -> str:
    if rule.action == "require_approval" and rule.approver == "ai":
        return AI_ASK
    return rule.action


def of_decision(decision: Decision) -> str:
    """The whole call's: an AI question only when the AI approver would answer it (every
    asking unit names it and nothing keeps it out, Decision.approver)."""
    if decision.action == "require_approval" and decision.approver == "ai":
        return AI_ASK
    return decision.action


def looser(a: Rule, b: Rule) -> bool:
    """Is rule a's action looser than rule b's?"""
    return STRICT[of_rule(a)] < STRICT[of_rule(b)]


def said(rule: Rule) -> str:
    """The rule's action as findings name it."""
    return "require_approval by the AI approver" if of_rule(rule) == AI_ASK else rule.action
