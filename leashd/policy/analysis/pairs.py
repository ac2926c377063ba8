"""What two rules are to each other, from their conditions alone: the unit of the lint's work.

For rules i before j, `compare` answers everything the anomalies need that depends on the
two rules and nothing else: whether they are proved disjoint, which conditions of i are not
proved to hold wherever j matches (none: i covers j), and, for rules with different
actions that overlap, whether i is an exception carved out of j or the pair needs an
example call (witness.py, which also depends on the rest of the policy).

Nothing here depends on the other rules of the policy: not the order questions are asked
in (shelltext.Outgrown), nor the alphabet the other rules' patterns cut (the examples are
written with the same characters however it is cut, charsets.Partition). That is what lets
pair_cache.py keep a pair's result for as long as the two rules are unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

from leashd.policy.analysis.actions import of_rule
from leashd.policy.analysis.regions import Region
from leashd.policy.analysis.relations import Relations

# What an overlapping pair with different actions is, past containment.
NOTHING = 0  # nothing to report from the pair itself (apart, covering, or the same action)
EXCEPTION = 1  # every unit i matches, j matches too: i carves a case out of j
ALTERNATIVES = 2  # each of i's argv alternatives that overlaps j lies wholly inside it
SEARCH = 3  # they overlap, neither inside the other: an example call decides the finding


@dataclass(frozen=True)
class Pair:
    apart: bool  # proved: no unit matches both
    fails: tuple[str, ...] = ()  # kinds of i not proved wherever j matches (at most 2)
    then: int = NOTHING

    @property
    def covers(self) -> bool:
        """Does i match every unit j matches?"""
        return not self.apart and not self.fails


APART = Pair(True)


def compare(rel: Relations, ri: Region, rj: Region) -> Pair:
    """The pair ri before rj (both match something: vacuous rules are never compared)."""
    if rel.disjoint(ri, rj) is not None:
        # No unit matches both: i covers no part of j, adds nothing to a union that covers
        # j, and is no exception.
        return APART
    fails = tuple(rel.failing(rj, ri))
    if not fails or of_rule(ri.rule) == of_rule(rj.rule):
        return Pair(False, fails)
    if not rel.failing(ri, rj, limit=1):
        return Pair(False, fails, EXCEPTION)
    if rel.alternatives_inside(ri, rj):
        return Pair(False, fails, ALTERNATIVES)
    return Pair(False, fails, SEARCH)
