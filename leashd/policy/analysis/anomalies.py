"""Order anomalies between rules (Al-Shaer & Hamed): shadowed, redundant, exception, conflict.

For rules Ri before Rj, with M(R) the units R matches:
- shadowed / redundant: M(Rj) ⊆ M(Ri), or ⊆ the union of several earlier rules; Rj never
  decides anything. Shadowed when a covering rule has another action, redundant otherwise.
- exception: M(Ri) ⊊ M(Rj) with another action: Ri carves a case out of Rj (usually meant).
- conflict: the two overlap, neither contains the other, actions differ: order decides the
  overlap. Reported only with an example call that both rules really match (the compiled
  evaluator checks it); when none can be found the pair is reported as unanalyzable.

Containment is proved (automata, see relations.py), never guessed, so a rule reported
shadowed is one that cannot fire.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from leashd.policy.analysis.regions import Region, Regions
from leashd.policy.analysis.relations import Relations
from leashd.policy.analysis.witness import Witnesses
from leashd.policy.ir import STRICTNESS


@dataclass(frozen=True)
class Anomaly:
    kind: str  # shadowed | redundant | exception | conflict | unanalyzable
    rule: int  # the rule the finding is about
    related: tuple[int, ...]
    detail: str = ""
    example: dict | None = None
    decider: int | None = None  # the rule that decides the example (conflicts)
    whole: bool = True  # the example as a whole gets the decider's action (conflicts)


_UNION_KINDS = ("tools", "modes", "argv", "flags", "command", "path_regex", "paths", "hosts",
                "env", "fed_by")  # fmt: skip


def find_anomalies(
    regions: Regions,
    witnesses: Witnesses,
    progress: Callable[[int, int], None] | None = None,
    only: list[int] | None = None,
) -> list[Anomaly]:
    """`only`: the rules to compare (default all); rules that match nothing are left out,
    since they would be "covered" by anything."""
    rel = Relations(regions)
    regs = regions.regions
    out: list[Anomaly] = []
    live = set(range(len(regs)) if only is None else only)
    for j, rj in enumerate(regs):
        if progress is not None:
            progress(j, len(regs))
        if j not in live:
            continue
        covering: list[int] = []
        near: dict[str, list[Region]] = {}  # kind -> earlier rules implied on all other kinds
        pairs: list[Anomaly] = []  # findings about j and one earlier rule
        for i in range(j):
            if i not in live:
                continue
            ri = regs[i]
            apart = rel.disjoint(ri, rj)
            if apart is not None:
                # No unit matches both: i covers no part of j (j is not empty: vacuous rules
                # are left out), adds nothing to a union that covers j, and is no exception.
                continue
            fails = rel.failing(rj, ri)
            if not fails:
                covering.append(i)
                continue
            if len(fails) == 1:
                near.setdefault(fails[0], []).append(ri)
            if ri.rule.action == rj.rule.action:
                continue
            if not rel.failing(ri, rj, limit=1):
                pairs.append(Anomaly("exception", i, (j,)))
                continue
            if rel.alternatives_inside(ri, rj):
                pairs.append(Anomaly("exception", i, (j,), "alternatives"))
                continue
            found = witnesses.common(ri, rj, rel)
            looser_first = STRICTNESS[ri.rule.action] < STRICTNESS[rj.rule.action]
            if looser_first and (found is None or not found.whole):
                # No call yet that the looser rule first decides more loosely: ask what the
                # commands' texts allow (stricter first, a call found is decided strictly,
                # and none found is no finding).
                answer = rel.text_answer(ri, rj)
                if answer is not None and answer.apart:
                    continue  # they never meet on a command's text (shelltext.py)
                if answer is not None:
                    better = witnesses.common(ri, rj, rel, answer.examples())
                    if better is not None and (found is None or better.whole):
                        found = better
            if found is not None:
                pairs.append(
                    Anomaly(
                        "conflict",
                        j,
                        (i,),
                        example=found.call,
                        decider=found.decider,
                        whole=found.whole,
                    )
                )
            else:
                pairs.append(
                    Anomaly(
                        "unanalyzable",
                        j,
                        (i,),
                        "could not decide whether they overlap: no call matched by both "
                        "was found, and no condition proves them disjoint",
                    )
                )
        if not covering:
            for kind in _UNION_KINDS:
                cands = near.get(kind, [])
                if len(cands) >= 2 and rel.covered_by_union(kind, rj, cands):
                    covering = [c.index for c in cands]
                    break
        if covering:
            # j never decides anything: how it overlaps earlier rules is beside the point
            same = all(regs[i].rule.action == rj.rule.action for i in covering)
            out.append(Anomaly("redundant" if same else "shadowed", j, tuple(covering)))
        else:
            out.extend(pairs)
        for kind, why in rj.unanalyzable.items():
            out.append(Anomaly("unanalyzable", j, (), f"the {kind} condition: {why}"))
    return out
