"""What a change to a policy does: rules added, removed, changed and moved, and the calls whose
decision changes, each looser or stricter.

Rules are matched by name. A rule is *changed* when anything but its source location differs
(the fields are named), *moved* when its place among the rules both sides have changed (order
decides, so a move alone can change decisions). Calls are decided by both policies in the same
world; a call is *looser* when the new decision is less strict (deny > require_approval >
allow), *stricter* when more, and *rerouted* when the action is the same but another rule
decides it.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from leashd.policy.calls import Call
from leashd.policy.decision import Decision
from leashd.policy.ir import STRICTNESS, Policy, Rule, without_spans


@dataclass(frozen=True)
class RuleChange:
    name: str
    old: Rule | None
    new: Rule | None
    fields: tuple[str, ...] = ()  # for a changed rule: what differs

    def to_json(self) -> dict[str, Any]:
        rule = self.new or self.old
        assert rule is not None
        return {
            "rule": self.name,
            "action": rule.action,
            "old_action": self.old.action if self.old else None,
            "location": str(rule.span),
            "fields": list(self.fields),
        }


@dataclass(frozen=True)
class CallChange:
    call: Call
    old: Decision
    new: Decision

    @property
    def direction(self) -> str:
        a, b = STRICTNESS[self.old.action], STRICTNESS[self.new.action]
        if a == b and self.old.approver != self.new.approver:
            # the same question, another who answers: an AI answering what a person did is
            # looser (what --fail-on-looser is for), a person taking it back stricter
            return "looser" if self.new.approver == "ai" else "stricter"
        return "looser" if b < a else "stricter" if b > a else "rerouted"

    def to_json(self) -> dict[str, Any]:
        return {
            "tool": self.call.tool,
            "input": self.call.input,
            "origin": self.call.origin,
            "old": _decided(self.old),
            "new": _decided(self.new),
        }


@dataclass
class PolicyDiff:
    added: list[RuleChange] = field(default_factory=list)
    removed: list[RuleChange] = field(default_factory=list)
    changed: list[RuleChange] = field(default_factory=list)
    moved: list[RuleChange] = field(default_factory=list)
    settings: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    calls: int = 0
    changes: list[CallChange] = field(default_factory=list)

    def group(self, direction: str) -> list[CallChange]:
        return [c for c in self.changes if c.direction == direction]

    @property
    def looser(self) -> list[CallChange]:
        return self.group("looser")

    @property
    def stricter(self) -> list[CallChange]:
        return self.group("stricter")

    def to_json(self) -> dict[str, Any]:
        return {
            "rules": {
                kind: [c.to_json() for c in getattr(self, kind)]
                for kind in ("added", "removed", "changed", "moved")
            },
            "settings": {k: {"old": a, "new": b} for k, (a, b) in self.settings.items()},
            "calls": {
                "decided": self.calls,
                **{d: [c.to_json() for c in self.group(d)] for d in _DIRECTIONS},
            },
        }


_DIRECTIONS = ("looser", "stricter", "rerouted")


def rule_changes(old: Policy, new: Policy, out: PolicyDiff) -> None:
    old_by = {r.name: r for r in old.rules}
    new_by = {r.name: r for r in new.rules}
    out.added = [RuleChange(r.name, None, r) for r in new.rules if r.name not in old_by]
    out.removed = [RuleChange(r.name, r, None) for r in old.rules if r.name not in new_by]
    for r in new.rules:
        before = old_by.get(r.name)
        if before is None:
            continue
        a = without_spans(before.model_dump(mode="json"))
        b = without_spans(r.model_dump(mode="json"))
        differ = tuple(k for k in b if a.get(k) != b.get(k))
        if differ:
            out.changed.append(RuleChange(r.name, before, r, differ))
    # Moved: the rules both have, in the old order against the new; those outside the longest
    # common run of the two orders changed place.
    old_order = [r.name for r in old.rules if r.name in new_by]
    new_order = [r.name for r in new.rules if r.name in old_by]
    matcher = difflib.SequenceMatcher(a=old_order, b=new_order, autojunk=False)
    kept = {
        n
        for block in matcher.get_matching_blocks()
        for n in new_order[block.b : block.b + block.size]
    }
    out.moved = [RuleChange(n, old_by[n], new_by[n]) for n in new_order if n not in kept]
    a_set, b_set = old.settings.model_dump(), new.settings.model_dump()
    out.settings = {k: (a_set[k], b_set[k]) for k in b_set if a_set[k] != b_set[k]}


def _decided(d: Decision) -> dict[str, Any]:
    return {"decision": d.action, "rule": d.rule_name,
            **({"approver": "ai"} if d.approver == "ai" else {})}  # fmt: skip


def diff(
    old: Policy,
    new: Policy,
    calls: list[Call],
    decide_old: Callable[[Call], Decision],
    decide_new: Callable[[Call], Decision],
) -> PolicyDiff:
    """Compare two policies on their rules and on `calls`, decided by the two callables."""
    out = PolicyDiff()
    rule_changes(old, new, out)
    out.calls = len(calls)
    for call in calls:
        a, b = decide_old(call), decide_new(call)
        if a.action != b.action or a.rule_name != b.rule_name or a.approver != b.approver:
            out.changes.append(CallChange(call, a, b))
    return out
