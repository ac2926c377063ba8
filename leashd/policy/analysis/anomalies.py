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

The work is done pair by pair (pairs.py: what two rules are to each other, from the two
alone), then rule by rule (covered by one earlier rule or a union of them, else the
findings of its pairs, with example calls where they overlap); pair_cache.py keeps each
piece for the next lint of the same stack.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from leashd.policy.analysis.actions import of_rule
from leashd.policy.analysis.forked import map_shared
from leashd.policy.analysis.pair_cache import PairCache
from leashd.policy.analysis.pairs import ALTERNATIVES, EXCEPTION, SEARCH, Pair, compare
from leashd.policy.analysis.regions import Regions
from leashd.policy.analysis.relations import Relations
from leashd.policy.analysis.witness import FOUND, GONE, Outcome, Witnesses

# progress(done, total, stage): see lint.Progress
Progress = Callable[..., None]


class Anomaly(NamedTuple):
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
    progress: Progress | None = None,
    only: list[int] | None = None,
    cache: PairCache | None = None,
    rel: Relations | None = None,
) -> list[Anomaly]:
    """`only`: the rules to compare (default all); rules that match nothing are left out,
    since they would be "covered" by anything. `cache`: results of an earlier lint to reuse
    and where this one's are kept (pair_cache.py); `rel`: the relations to ask (one shared
    with the caller keeps its automata)."""
    rel = rel if rel is not None else Relations(regions)
    cache = cache if cache is not None else PairCache(regions.policy)
    regs = regions.regions
    live = sorted(set(range(len(regs))) if only is None else set(only))
    cache.live = set(live)
    # Every pair first, from the two rules alone (only those not apart are kept): a search
    # outcome is reused only after checking it against the pairs of the whole policy
    # (pair_cache._holds).
    rows: dict[int, dict[int, Pair]] = {}
    for step, j in enumerate(live):
        if progress is not None:
            progress(step, len(live), "comparing rules")
        row, fresh = cache.row(j, live)
        for i in fresh:
            pair = compare(rel, regs[i], regs[j])
            if not pair.apart:
                row[i] = pair
        if fresh or cache.moved:  # (a row from the cache is in order of its rules)
            row = dict(sorted(row.items()))
        rows[j] = row
        cache.keep_row(j, row, len(fresh))
    # Then rule by rule: covered, or the findings of its pairs. The example searches those
    # need that the cache does not answer are done last, shared among forked processes
    # (forked.py): they are independent, and most of the time of a lint.
    plan: list[tuple[int, list[Anomaly | tuple[int, int, Outcome | None]]]] = []
    todo: list[tuple[int, int, int]] = []  # (i, j, j's step) of the searches to run
    for step, j in enumerate(live):
        if progress is not None:
            progress(step, len(live), "checking pairs")
        rj = regs[j]
        row = rows[j]
        found: list[Anomaly | tuple[int, int, Outcome | None]] = []
        covering = [i for i, p in row.items() if p.covers]
        if not covering:
            covering = _union(cache, rel, regions, j, row)
        if covering:
            # j never decides anything: how it overlaps earlier rules is beside the point
            same = all(of_rule(regs[i].rule) == of_rule(rj.rule) for i in covering)
            found.append(Anomaly("redundant" if same else "shadowed", j, tuple(covering)))
        else:
            for i, p in row.items():
                if p.then == EXCEPTION:
                    found.append(Anomaly("exception", i, (j,)))
                elif p.then == ALTERNATIVES:
                    found.append(Anomaly("exception", i, (j,), "alternatives"))
                elif p.then == SEARCH:
                    got = cache.outcome(i, j, witnesses, rel)
                    found.append((i, j, got))
                    if got is None:
                        todo.append((i, j, step))
        plan.append((j, found))

    def search(item: tuple[int, int, int]) -> tuple[Outcome, dict, dict]:
        i, j, step = item
        if progress is not None:
            progress(step, len(live), "finding examples")
        got = witnesses.search(regs[i], regs[j], rel).outcome(i)
        # what the search worked out about each rule alone, for the next lint's cache
        return got, witnesses.alone.get(i, {}), witnesses.alone.get(j, {})

    done = map_shared(search, todo)
    for (i, j, _), (got, alone_i, alone_j) in zip(todo, done, strict=True):
        cache.keep_outcome(i, j, witnesses.interned(got))
        for r, pieces in ((i, alone_i), (j, alone_j)):
            if pieces:
                witnesses.alone.setdefault(r, {}).update(pieces)
    out: list[Anomaly] = []
    for j, found in plan:
        for x in found:
            if isinstance(x, Anomaly):
                out.append(x)
            else:
                i, j, got = x
                out.extend(_finding(got if got is not None else cache.found(i, j), i, j))
        facts = cache.facts.get(j)
        why_not = facts.unanalyzable if facts is not None else regs[j].unanalyzable
        for kind, why in why_not.items():
            out.append(Anomaly("unanalyzable", j, (), f"the {kind} condition: {why}"))
    return out


def _union(
    cache: PairCache, rel: Relations, regions: Regions, j: int, row: dict[int, Pair]
) -> list[int]:
    """Earlier rules that together cover j, each implied by j on every kind but one."""
    near: dict[str, list[int]] = {}  # kind -> earlier rules implied on all other kinds
    for i, p in row.items():
        if len(p.fails) == 1:
            near.setdefault(p.fails[0], []).append(i)
    regs = regions.regions
    for kind in _UNION_KINDS:
        cands = near.get(kind, [])
        if len(cands) < 2:
            continue
        covered = cache.union(kind, j, cands)
        if covered is None:
            covered = rel.covered_by_union(kind, regs[j], [regs[c] for c in cands])
            cache.keep_union(kind, j, cands, covered)
        if covered:
            return cands
    return []


def _finding(got: Outcome, i: int, j: int) -> list[Anomaly]:
    """The finding of a pair that overlaps, neither inside the other, actions differing,
    from its search: a conflict with the call found, or, when none was, an unanalyzable
    pair."""
    if got.kind == FOUND:
        return [Anomaly("conflict", j, (i,), "", got.call, got.decider(i), got.whole)]
    if got.kind == GONE:
        return []
    return [
        Anomaly(
            "unanalyzable",
            j,
            (i,),
            "could not decide whether they overlap: no call matched by both "
            "was found, and no condition proves them disjoint",
        )
    ]
