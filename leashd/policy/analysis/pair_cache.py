"""The lint's memory of the last lint of a policy stack, so that after an edit only what the
edit touched is analysed again (issue 21: a one-rule edit of a 500-rule policy re-lints in
under a second).

What is kept, and what it is keyed by:

- per rule (keys.rule_key: the rule without its source spans): whether it matches nothing
  (vacuous), the conditions the automata cannot hold, the examples that fail. Each is a
  function of the rule alone (an example is checked against its rule on its own).
- per pair of rules i before j: `pairs.Pair`, a function of the two rules alone (pairs.py
  says why not of the rules around them). Reused while both rules are unchanged and i still
  comes before j.
- per union check (j covered by several earlier rules together): keyed by j and the rules
  of the union, the only rules it reads.
- per example search (witness.py): its outcome, and every unit whose deciding rule it read
  (`Outcome.deps`). A search depends on other rules through those alone: a rule now before
  the deciding one that matches the unit would decide it instead. So an outcome is reused
  only when each of those units is still decided by the same rule (`_check`), and the
  search is run afresh otherwise.

A unit's deciding rule F still decides it when F is still there, in the same place relative
to the rules that kept their order (those that did not match the unit before F still do
not), and every rule that is new or moved and now comes before F does not match the unit
either: proved disjoint from a rule known to match it (F, or the pair's two rules when both
match it), proved unable to match its tool or program, its regexes not found in the
unit's texts, or, failing those, so said by the evaluator. A unit no rule matched stays
unmatched while no new rule matches it. The whole call's decision, which a search may read,
also depends on the policy's settings (the default action): outcomes are only reused under
the same settings (keys.world_key). And nothing is reused across a change of alphabet: a
regex with the ASCII flag makes `\\w` and `\\b` ASCII-only for every regex of its kind
(regions.py builds one alphabet per kind).

In the file, a rule is a number given when its key is first seen and kept while the key is
in the stack, so what the next lint reuses is copied as it is, whatever moved around it.
The file is keyed by the analysis (keys.analysis_key): another leashd, Python or parser
never reads it. It is written whole to a temporary file and renamed over the old one, so
two lints of one stack at once (pre-commit runs hooks in parallel) leave one complete file,
never a mix; a file that cannot be read, or is not what it should be, is ignored (and
replaced by the next lint), never an error.
"""

from __future__ import annotations

import array
import bisect
import hashlib
import json
import os
import re
import sys
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from leashd.policy.analysis import keys
from leashd.policy.analysis.argvlang import ArgvLang
from leashd.policy.analysis.cache import cache_dir
from leashd.policy.analysis.pairs import Pair
from leashd.policy.analysis.relations import Relations
from leashd.policy.analysis.witness import FOUND, GONE, NONE, Outcome, Witnesses, signature
from leashd.policy.facts import Unit
from leashd.policy.ir import Policy, Rule
from leashd.policy.matchers import needs_re

_KEEP = 8  # stacks whose files are kept; the least recently written beyond are removed
_KINDS = (GONE, NONE, FOUND)
# A search's record: i, j, kind, call, whole, reach, blind, deciders, deps, then those. `reach`:
# the last place (in the policy that wrote it) of a rule it names as deciding a unit;
# `blind`: it read a unit no rule decides.
_HEAD = 9


@dataclass
class Stats:
    """What a lint computed and what it took from the cache (the tests count on it; time
    is for the benchmarks)."""

    rules: int = 0
    rules_reused: int = 0
    pairs: int = 0
    pairs_reused: int = 0
    unions: int = 0
    unions_reused: int = 0
    searches: int = 0
    searches_reused: int = 0


@dataclass(frozen=True)
class RuleFacts:
    vacuous: str | None  # why the rule matches nothing; None: it may match something
    unanalyzable: dict[str, str]  # condition kind -> why the automata cannot hold it
    # failing examples: (position among the rule's match then not-match examples, message)
    examples: tuple[tuple[int, str], ...] = ()


class _Old:
    """What the file holds: rules by their numbers (`ids`, in the order of the policy that
    wrote it)."""

    def __init__(self, data: dict[str, Any], sections: dict[str, memoryview]):
        rules = data["rules"]
        self.keys: list[str] = [str(k) for k, _ in rules]
        self.ids: list[int] = [int(n) for _, n in rules]
        self.next_id = int(data["next_id"])
        self.world = str(data["world"])
        self.ascii = [str(k) for k in data["ascii"]]
        if len(set(self.keys)) != len(rules) or len(set(self.ids)) != len(rules):
            raise ValueError("a rule twice")
        if not all(0 <= n < self.next_id for n in self.ids):
            raise ValueError("not a rule's number")
        self.facts: dict[int, RuleFacts] = {}
        for n, (vacuous, why, examples) in data["facts"]:
            if not (vacuous is None or isinstance(vacuous, str)) or not isinstance(why, dict):
                raise ValueError("not the facts of a rule")
            self.facts[int(n)] = RuleFacts(
                vacuous,
                {str(a): str(b) for a, b in why.items()},
                tuple((int(pos), str(msg)) for pos, msg in examples),
            )
        self.kinds = [Pair(False, tuple(map(str, f)), int(then)) for f, then in data["kinds"]]
        # per rule, pieces of example calls its conditions alone decide (witness._alone)
        self.alone: dict[int, dict[str, Any]] = {}
        for n, pieces in data["alone"]:
            for what, value in pieces.items():
                ok = value is None or isinstance(value, str)
                if what == "paths":
                    ok = isinstance(value, list) and all(isinstance(x, str) for x in value)
                if not ok:
                    raise ValueError("not a piece of an example")
            self.alone[int(n)] = pieces
        self.pairs = _ints(sections["pairs"])  # (i, j, kind) of the pairs not apart
        if len(self.pairs) % 3:
            raise ValueError("a pair cut short")
        if self.pairs and not 0 <= min(self.pairs[2::3]) <= max(self.pairs[2::3]) < len(self.kinds):
            raise ValueError("not a pair")
        self.unions: dict[tuple[str, int, tuple[int, ...]], bool] = {}
        for kind, j, cands, covered in data["unions"]:
            self.unions[(str(kind), int(j), tuple(int(c) for c in cands))] = bool(covered)
        # calls, written back as they are: a Bash call with a command alone as that command
        self.calls_json = bytes(sections["calls"])
        self.raw_calls: list[Any] = json.loads(self.calls_json)
        self.ncalls = len(self.raw_calls)
        # per call, per unit, what command regexes are searched in (witness.subjects):
        # read only when a rule with regexes is new or moved
        self.subjects_json = bytes(sections["subjects"])
        self._subjects: list[Any] | None = None
        if not all(isinstance(c, str | dict) for c in self.raw_calls):
            raise ValueError("not a call")
        self._calls: dict[int, dict[str, Any]] = {}
        # per call, its units' tools and programs, as numbers in the table `sigs` (-1: not
        # known); `units` holds, call after call, how many units and their numbers
        self.sigs = [(str(t), None if p is None else str(p)) for t, p in data["sigs"]]
        self.units = _ints(sections["units"])
        self._unit_at: array.array | None = None  # made when first asked (`unit_at`)
        self.searches = _ints(sections["searches"])
        # (i, j) -> (start, end) of its record, from the index the writer made (walking the
        # records here took a tenth of a re-lint); each record is checked when it is read
        index = _ints(sections["index"])
        if len(index) % 4 or (
            index and not 0 <= min(index[2::4]) <= max(index[3::4]) <= len(self.searches)
        ):
            raise ValueError("not an index of the searches")
        self.search_at: dict[tuple[int, int], tuple[int, int]] = dict(
            zip(
                zip(index[0::4], index[1::4], strict=True),
                zip(index[2::4], index[3::4], strict=True),
                strict=True,
            )
        )

    @property
    def unit_at(self) -> array.array:
        """Where each call's units start in `units` (a re-lint that moved no rule never
        asks)."""
        if self._unit_at is None:
            out, units, at = array.array("i"), self.units, 0
            for _ in range(self.ncalls):
                out.append(at)
                if units[at] < 0:
                    raise ValueError("not a number of units")
                at += 1 + units[at]
            if at != len(units):
                raise ValueError("units cut short")
            self._unit_at = out
        return self._unit_at

    def call(self, n: int) -> dict[str, Any]:
        got = self._calls.get(n)
        if got is None:
            row = self.raw_calls[n]
            got = self._calls[n] = (
                {"tool": "Bash", "input": {"command": row}} if isinstance(row, str) else row
            )
        return got

    def subjects(self, call: int, k: int) -> tuple[str | None, ...] | None:
        """What command regexes are searched in, in unit k of a call (None: not known)."""
        if self._subjects is None:
            self._subjects = json.loads(self.subjects_json)
            if len(self._subjects) != len(self.raw_calls):
                raise ValueError("not the subjects of the calls")
        units = self._subjects[call]
        got = units[k] if units is not None and k < len(units) else None
        if got is None:
            return None
        text, pipeline, words = got
        if text is True:  # the command itself
            row = self.raw_calls[call]
            text = row if isinstance(row, str) else row["input"]["command"]
        if not all(x is None or isinstance(x, str) for x in (text, pipeline, words)):
            raise ValueError("not the subjects of a unit")
        # (a pipeline or words the same as the text were left out: searched all the same)
        return text, pipeline, words

    def sig(self, call: int, k: int) -> int:
        """The number (in `sigs`) of the tool and program of unit k of a call; -1: not
        known."""
        if call < 0:
            raise ValueError("not a call")
        at = self.unit_at[call]
        if not 0 <= k < self.units[at]:
            raise ValueError("not a unit of the call")
        n = self.units[at + 1 + k]
        if not -1 <= n < len(self.sigs):
            raise ValueError("not a tool and program")
        return n


class PairCache:
    """The results of the previous lint of this stack, looked up by the current rules'
    indices; and this lint's results, kept to be written for the next one."""

    def __init__(
        self,
        policy: Policy,
        stats: Stats | None = None,
        old: _Old | None = None,
        persist: bool = False,
    ):
        """`persist`: this lint's results are to be written (`save`); `old`: the previous
        lint's. Neither: a cache that only counts (a lint without the cache)."""
        self.policy = policy
        self.stats = stats if stats is not None else Stats()
        self.persist = persist
        self.keys = [keys.rule_key(r) for r in policy.rules] if persist or old else []
        self.world = keys.world_key(policy)
        self.ascii = _ascii_kinds(policy)
        # the same rule twice (a policy built in code): a key would not name one rule
        self.usable = len(set(self.keys)) == len(self.keys)
        # A regex with the ASCII flag makes `\w` and `\b` ASCII-only for every regex of its
        # kind (one alphabet per kind, regions.py): results of another alphabet are not
        # reused.
        self.old = old if self.usable and old is not None and old.ascii == self.ascii else None
        self.facts: dict[int, RuleFacts] = {}
        self.rows: dict[int, dict[int, Pair]] = {}  # j -> earlier live rules not apart
        self.live: set[int] = set()
        self.unions: dict[tuple[str, int, tuple[int, ...]], bool] = {}
        self.outcomes: dict[tuple[int, int], Outcome] = {}  # searched afresh
        self._kept: list[tuple[int, int]] = []  # old records of the outcomes reused
        self._matched: dict[tuple[int, int, int], bool] = {}  # (rule, call, unit) -> match?
        self._ruled_out: dict[tuple[int, int], bool] = {}  # (rule, tool and program) -> no
        self._apart_sets: dict[int, set[int]] = {}
        self._witnesses: Witnesses | None = None
        self._units: dict[int, tuple[Unit, ...] | None] = {}  # old call -> its units
        old = self.old
        n = len(policy.rules)
        self.ids = list(range(n))
        self._next_id = n
        self._cur_of: dict[int, int] = {}  # old number -> current index
        self._moved: set[int] = set()
        self._changed: list[int] = []  # current indices of rules new or moved, in order
        self._first_changed = n
        self._new: list[int] = []
        self._reused_rows: dict[int, dict[int, Pair]] = {}
        self._old_pos: list[int] = []  # per current rule, its place in the old policy
        if old is None:
            return
        number = dict(zip(old.keys, old.ids, strict=True))
        place = {k: pos for pos, k in enumerate(old.keys)}
        self._next_id = old.next_id
        for i, key in enumerate(self.keys):
            got = number.get(key)
            if got is None:
                got = self._next_id
                self._next_id += 1
                self._new.append(i)
            self.ids[i] = got
            self._cur_of[got] = i
        self._old_pos = [place.get(k, -1) for k in self.keys]
        self._moved = _moved(self._old_pos)
        self._changed = [i for i, o in enumerate(self._old_pos) if o < 0 or i in self._moved]
        self._first_changed = self._changed[0] if self._changed else n
        # Rules of the old policy, from the first, that are still here, not moved and
        # before any rule new or moved: a unit one of them decided still is (`outcome`).
        self._settled = 0
        for number in old.ids:
            i = self._cur_of.get(number)
            if i is None or i in self._moved or i >= self._first_changed:
                break
            self._settled += 1
        # the rules kept in the same places: the old records' places still hold
        self._same_places = all(o in (i, -1) for i, o in enumerate(self._old_pos))
        # the pairs of the old file whose rules are both here, still in that order
        cur, kinds, flat = self._cur_of, old.kinds, old.pairs
        rows = self._reused_rows
        for at in range(0, len(flat), 3):
            i, j = cur.get(flat[at], -1), cur.get(flat[at + 1], -1)
            if 0 <= i < j:
                rows.setdefault(j, {})[i] = kinds[flat[at + 2]]

    # --- the file ------------------------------------------------------------------------------

    @classmethod
    def open(cls, policy: Policy, stats: Stats | None = None) -> PairCache:
        """The stack's cache (an empty one when there is none, or none usable)."""
        path = _path(policy)
        old = None
        if path is not None:
            try:
                data, sections = _unpack(path.read_bytes())
                if data.get("analysis") == keys.analysis_key():
                    old = _Old(data, sections)
            except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError):
                old = None  # missing, unreadable or not ours: lint afresh, write a new one
        return cls(policy, stats, old, persist=True)

    def save(self) -> None:
        """Write this lint's results for the next (nothing when there is no key to file
        them under, or the cache directory cannot be written)."""
        path = _path(self.policy)
        if path is None or not self.persist or not self.usable:
            return
        try:
            data = _pack(*self._encode())
        except (ValueError, IndexError):
            # the old file was not as it should be (parts of it are read lazily): gone, so
            # that the next lint starts afresh
            path.unlink(missing_ok=True)
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
            try:
                tmp.write_bytes(data)
                tmp.replace(path)  # whole or not at all
            finally:
                tmp.unlink(missing_ok=True)
            # the stack's files of other analyses (another leashd) are of no more use
            stack = path.name.rsplit("-", 1)[0]
            for other in path.parent.glob(f"{stack}-*.cache"):
                if other != path:
                    other.unlink(missing_ok=True)
            old = sorted(path.parent.glob("pairs-*.cache"), key=lambda p: p.stat().st_mtime)
            for stale in old[:-_KEEP]:
                stale.unlink(missing_ok=True)
        except OSError:
            return  # read-only home, full disk, a file removed meanwhile: no cache

    def _encode(self) -> tuple[dict[str, Any], dict[str, bytes]]:
        ids = self.ids
        kinds: dict[Pair, int] = {}
        pairs = array.array("i")
        for j, row in self.rows.items():
            for i, p in row.items():
                pairs.extend((ids[i], ids[j], kinds.setdefault(p, len(kinds))))
        # Reused records are copied as they are, calls included: the old table of calls
        # is kept, and calls of new records are added to it (all of it is written afresh
        # when most of it is no longer used).
        old = self.old
        kept = self._kept
        table: list[Any] = []
        sigs: list[Any] = []
        units = array.array("i")
        searches = array.array("i")
        # the first calls of `table` (and their units' subjects), already written as JSON
        prefix, subjects_prefix, written = b"[]", b"[]", 0
        subjects: list[Any] = []
        if old is not None and kept:
            records = (old.searches[start:stop] for start, stop in kept)
            if not self._same_places:
                records = (self._restamp(rec) for rec in records)
            used = len(kept) + len(self.outcomes)
            if len(old.raw_calls) > 4096 and len(old.raw_calls) > 4 * used:
                table, sigs, units, subjects = _compact(old, records, searches)
            else:
                # the old calls as they are (reused records name them)
                table, sigs, units = list(old.raw_calls), list(old.sigs), array.array("i")
                units.frombytes(old.units.tobytes())
                prefix, written = old.calls_json, len(old.raw_calls)
                subjects_prefix = old.subjects_json
                subjects = [None] * written  # (written already)
                for rec in records:
                    searches.extend(rec)
        sig_ids = {s: n for n, s in enumerate(sigs)}
        calls: dict[int, tuple[int, dict[int, int]]] = {}  # call -> (number, unit -> sig)

        def call_id(
            call: dict[str, Any] | None, k: int = 0, sig: tuple | None = None, subj: Any = None
        ) -> int:
            if call is None:
                return -1
            got = calls.get(id(call))
            if got is None:
                got = calls[id(call)] = (len(table), {})
                table.append(_call_row(call))
                subjects.append([])
            if sig is not None:
                got[1][k] = sig_ids.setdefault(sig, len(sig_ids))
                units_of_call = subjects[got[0]]
                while len(units_of_call) <= k:
                    units_of_call.append(None)
                units_of_call[k] = _subjects_row(call, subj)
            return got[0]

        for (i, j), o in self.outcomes.items():
            deciders = [ids[d] for d in o.deciders]
            reach = max((d for d, *_ in o.deps), default=-1)
            reach = max(reach, *o.deciders) if o.deciders else reach
            blind = any(d < 0 for d, *_ in o.deps)
            searches.extend((ids[i], ids[j], o.kind, call_id(o.call), int(o.whole), reach))
            searches.extend((int(blind), len(deciders), len(o.deps), *deciders))
            for first, both, call, k, sig, subj in o.deps:
                n = call_id(call, k, sig, subj)
                searches.extend((-1 if first < 0 else ids[first], int(both), n, k))
        for _n, known in sorted(calls.values(), key=lambda x: x[0]):
            count = max(known, default=-1) + 1
            units.append(count)
            units.extend(known.get(k, -1) for k in range(count))
        sigs = [list(s) for s in sig_ids]
        calls_json = _json_after(prefix, written, table)
        subjects_json = _json_after(subjects_prefix, written, subjects)
        head = {
            "analysis": keys.analysis_key(),
            "world": self.world,
            "ascii": self.ascii,
            "next_id": self._next_id,
            "rules": [[k, n] for k, n in zip(self.keys, ids, strict=True)],
            "facts": [
                [ids[i], [f.vacuous, f.unanalyzable, [list(e) for e in f.examples]]]
                for i, f in self.facts.items()
            ],
            "kinds": [[list(p.fails), p.then] for p in kinds],
            "alone": [
                [ids[i], pieces]
                for i, pieces in (self._witnesses.alone.items() if self._witnesses else ())
                if pieces
            ],
            "unions": [
                [k, ids[j], [ids[c] for c in cs], v] for (k, j, cs), v in self.unions.items()
            ],
            "sigs": sigs,
        }
        sections = {
            "pairs": pairs.tobytes(),
            "calls": calls_json,
            "subjects": subjects_json,
            "units": units.tobytes(),
            "searches": searches.tobytes(),
            "index": _index(searches).tobytes(),
        }
        return head, sections

    # --- per rule --------------------------------------------------------------------------------

    def prime(self, witnesses: Witnesses) -> None:
        """Give the example search what it worked out alone about each rule last time, and
        take what it works out now for the next lint."""
        self._witnesses = witnesses
        if self.old is None:
            return
        for i, n in enumerate(self.ids):
            pieces = self.old.alone.get(n) if self._old_pos[i] >= 0 else None
            if pieces:
                witnesses.alone[i] = dict(pieces)

    def rule(self, i: int) -> RuleFacts | None:
        got = None
        if self.old is not None and self._old_pos[i] >= 0:
            got = self.old.facts.get(self.ids[i])
            r = self.policy.rules[i]
            examples = len(r.examples_match) + len(r.examples_not_match)
            if got is not None and not all(0 <= pos < examples for pos, _ in got.examples):
                got = None  # not this rule's (cannot happen with an undamaged file)
        if got is not None:
            self.stats.rules_reused += 1
            self.facts[i] = got
        return got

    def keep_rule(self, i: int, facts: RuleFacts) -> None:
        self.stats.rules += 1
        self.facts[i] = facts

    # --- pairs -----------------------------------------------------------------------------------

    def row(self, j: int, live: list[int]) -> tuple[dict[int, Pair], list[int]]:
        """For the live rule j, the pairs with earlier live rules that can be reused (those
        not apart; the others are apart) and the earlier live rules to compare j with
        afresh: the new ones, and those that came after j before."""
        before = live[: bisect.bisect_left(live, j)]
        oj = self._old_pos[j] if self.old is not None else -1
        if oj < 0:
            return {}, before
        if j in self._moved:  # anything may have crossed it
            fresh = [i for i in before if not 0 <= self._old_pos[i] < oj]
        else:  # only rules new or moved may have
            fresh = [
                i
                for i in self._changed
                if i < j and i in self.live and not 0 <= self._old_pos[i] < oj
            ]
        self.stats.pairs_reused += len(before) - len(fresh)
        return dict(self._reused_rows.get(j, {})), fresh

    @property
    def moved(self) -> bool:
        """Did rules kept from the old policy change their order?"""
        return bool(self._moved)

    def keep_row(self, j: int, row: dict[int, Pair], compared: int) -> None:
        """The live rule j's pairs not apart (`compared` of them compared afresh)."""
        self.stats.pairs += compared
        self.rows[j] = row

    def _apart(self, x: int, y: int) -> bool:
        lo, hi = (x, y) if x < y else (y, x)
        return lo in self.live and hi in self.live and lo not in self.rows[hi]

    # --- unions ----------------------------------------------------------------------------------

    def union(self, kind: str, j: int, cands: list[int]) -> bool | None:
        got = None
        if self.old is not None and all(self._old_pos[x] >= 0 for x in (j, *cands)):
            got = self.old.unions.get((kind, self.ids[j], tuple(self.ids[c] for c in cands)))
        if got is not None:
            self.stats.unions_reused += 1
            self.unions[(kind, j, tuple(cands))] = got
        return got

    def keep_union(self, kind: str, j: int, cands: list[int], covered: bool) -> None:
        self.stats.unions += 1
        self.unions[(kind, j, tuple(cands))] = covered

    # --- example searches ------------------------------------------------------------------------

    def outcome(self, i: int, j: int, witnesses: Witnesses, rel: Relations) -> Outcome | None:
        """The outcome of the last search of the pair, in current indices, when every unit
        it depends on is still decided by the same rule (every row must be known first:
        keep_row). `rel` proves, and `witnesses` says where no proof does, that a rule
        does not match a unit. The outcome reused is written back as it was."""
        old = self.old
        if old is None or old.world != self.world:
            return None
        ids = self.ids
        where = old.search_at.get((ids[i], ids[j]))  # (a new rule's number is in no record)
        if where is None:
            return None
        start, stop = where
        head = old.searches[start : start + _HEAD]
        if len(head) != _HEAD:
            return None  # not a record of ours (cannot happen with an undamaged file)
        _i, _j, kind, call, whole, reach, blind, nd, ndeps = head
        if not (kind in _KINDS and -1 <= call < old.ncalls and nd >= 0 and ndeps >= 0):
            return None
        if stop != start + _HEAD + nd + 4 * ndeps:
            return None
        if nd or reach >= self._settled or (blind and self._new):
            got = self._check(start + _HEAD, nd, ndeps, i, j, witnesses, rel)
            if got is None:
                return None
            deciders = got
        else:
            deciders = ()  # every rule it read is settled: nothing can come before them
        self._kept.append(where)
        self.stats.searches_reused += 1
        example = old.call(call) if call >= 0 else None
        return Outcome(kind, example, deciders, bool(whole))

    def _check(
        self, at: int, nd: int, ndeps: int, i: int, j: int, w: Witnesses, rel: Relations
    ) -> tuple[int, ...] | None:
        """The deciders of a record (current indices) when every unit it read is still
        decided as it was; else None. (The common answers, a rule new or moved that is
        disjoint from the deciding one or cannot match the unit's program, inline: a
        re-lint asks this of every record.)"""
        old = self.old
        assert old is not None
        arr = old.searches
        try:
            deciders = tuple(self._cur(n) for n in arr[at : at + nd])
            at += nd
            first_changed = self._first_changed
            cur, moved, changed = self._cur_of, self._moved, self._changed
            for _ in range(ndeps):
                first_old, both, call, k = arr[at : at + 4]
                at += 4
                if first_old < 0:
                    if self._new:  # a new rule may match what no rule did
                        self._unmatched(call, k, w, rel)
                    continue
                f = cur.get(first_old, -1)
                if f < 0 or f in moved:
                    return None  # gone, or moved: rules that kept order may now come first
                if f < first_changed:
                    continue  # no rule new or moved before the one that decides it
                sig = old.sig(call, k)
                for y in changed:
                    if y >= f:
                        break
                    away = self._apart_from(y)
                    if f in away or (both and (i in away or j in away)):
                        continue
                    if sig >= 0 and self._ruled_out.get((y, sig)):
                        continue
                    if self._matches(y, call, k, sig, w, rel):
                        return None
        except _Stale:
            return None
        except (ValueError, IndexError):
            return None  # not a record of ours
        return deciders

    def keep_outcome(self, i: int, j: int, outcome: Outcome) -> None:
        """The outcome of a search run afresh (one reused is kept by `outcome`)."""
        self.stats.searches += 1
        self.outcomes[(i, j)] = outcome

    def found(self, i: int, j: int) -> Outcome:
        """The outcome of the pair's search run afresh (`keep_outcome`)."""
        return self.outcomes[(i, j)]

    def _restamp(self, rec: array.array) -> array.array:
        """A kept record with its `reach` in the current places."""
        nd = rec[7]
        firsts = [rec[at] for at in range(_HEAD + nd, len(rec), 4) if rec[at] >= 0]
        rec[5] = max((self._cur_of[n] for n in (*rec[_HEAD : _HEAD + nd], *firsts)), default=-1)
        return rec

    def _cur(self, number: int) -> int:
        """The current index of an old rule that kept its place among the others."""
        got = self._cur_of.get(number)
        if got is None or got in self._moved:
            raise _Stale  # gone, or moved: rules that kept their order may now come first
        return got

    def _unmatched(self, call: int, k: int, w: Witnesses, rel: Relations) -> None:
        """Raises _Stale unless unit k of the old call, which no rule matched, still is
        matched by none: no new rule matches it (a moved one did not before either)."""
        assert self.old is not None
        sig = self.old.sig(call, k)
        for y in self._new:
            if self._matches(y, call, k, sig, w, rel):
                raise _Stale

    def _apart_from(self, y: int) -> set[int]:
        """The rules proved disjoint from rule y."""
        got = self._apart_sets.get(y)
        if got is None:
            got = self._apart_sets[y] = {z for z in self.live if z != y and self._apart(y, z)}
        return got

    def _matches(
        self, rule: int, call: int, k: int, sig: int, w: Witnesses, rel: Relations
    ) -> bool:
        """Does the rule match unit k of the old call? Proved not by the unit's tool and
        program (`sig`, see _Old.sig) where they rule the rule out, else asked of the
        evaluator."""
        assert self.old is not None
        if sig >= 0:
            out = self._ruled_out.get((rule, sig))
            if out is None:
                out = self._ruled_out[(rule, sig)] = _rules_out(rel, rule, self.old.sigs[sig])
            if out:
                return False
        key = (rule, call, k)
        got = self._matched.get(key)
        if got is None:
            subjects = self.old.subjects(call, k)
            if subjects is not None and _regexes_miss(rel.regions.regions[rule].rule, subjects):
                got = self._matched[key] = False
                return got
            if call not in self._units:
                self._units[call] = w.units_of(self.old.call(call))
            units = self._units[call]
            if units is None or k >= len(units):
                raise _Stale  # not the call it was (cannot happen with the same leashd)
            if sig >= 0 and signature(units[k]) != self.old.sigs[sig]:
                raise _Stale
            got = self._matched[key] = w.compiled.matches(rule, units[k], w.ctx)
        return got


class _Stale(Exception):
    """A recorded outcome that may not hold any more."""


def _rules_out(rel: Relations, rule: int, sig: tuple[str, str | None]) -> bool:
    """Is it proved that the rule matches no unit of this tool and program? By the
    analysis's own languages: the tools the rule reaches (its conditions imply some, as an
    argv condition implies Bash), and the programs its argv patterns name."""
    region = rel.regions.regions[rule]
    tool, program = sig
    if not all(any(d.accepts(tool) for d in union) for union in region.tools):
        return True
    # a program name read as a pattern that matches just that name
    plain = (
        program is not None
        and program not in ("", "$")
        and not any(c in program for c in "*?[]{}\\")
    )
    if plain and region.argv is not None:
        word = ArgvLang.of_patterns((((program,),),), lenient=False)
        return rel.argv_meet(region.argv, word) is None
    return False


def _regexes_miss(rule: Rule, subjects: tuple[str | None, ...]) -> bool:
    """Is it proved that the rule does not match a unit, by its command regexes found in
    none of what they are searched in (the unit's text; a deny rule's also in the text of
    the pipeline and in the words, compiler.py `_ok_commands`)? Searched with `re`, as
    the evaluator does where RE2 would differ; a regex that needs a backtracking engine
    proves nothing (the evaluator may refuse to run it)."""
    patterns = rule.command_patterns
    if patterns is None or any(needs_re(x.pattern) for x in patterns):
        return False
    text, pipeline, words = subjects
    seen = [text] if rule.action != "deny" else [text, pipeline, words]
    found = [s for s in seen if s is not None]
    return not any(
        re.search(x.pattern, s, re.I if x.ignore_case else 0) for x in patterns for s in found
    )


def _subjects_row(call: dict[str, Any], subjects: tuple[str | None, ...]) -> list[Any]:
    """A unit's subjects as the file holds them: its text `true` when it is the command,
    a pipeline or words the same as the text left out (null)."""
    text, pipeline, words = subjects
    return [
        True if text is not None and text == call["input"].get("command") else text,
        None if pipeline == text else pipeline,
        None if words == text else words,
    ]


# An inline flag group that sets re.ASCII (`(?a)`, `(?ai)`, `(?a:...)`); found in a regex's
# text, escaped or not (a false alarm only costs a lint without the cache).
_ASCII_FLAG = re.compile(r"\(\?[aiLmsux]*a[aiLmsux]*(?:-[imsx]*)?[:)]")


def _ascii_kinds(policy: Policy) -> list[str]:
    """The regex kinds of the policy with a regex that may set the ASCII flag."""
    out = set()
    for r in policy.rules:
        for kind, regexes in (
            ("command", r.command_patterns or ()),
            ("path_regex", r.path_patterns or ()),
            ("input", [x for _, x in r.input or ()]),
        ):
            if any(_ASCII_FLAG.search(x.pattern) for x in regexes):
                out.add(kind)
    return sorted(out)


def _call_row(call: dict[str, Any]) -> Any:
    """A call as the file holds it: a Bash call with a command alone as that command."""
    inp = call["input"]
    if call["tool"] == "Bash" and len(inp) == 1 and type(inp.get("command")) is str:
        return inp["command"]
    return call


def _index(searches: array.array) -> array.array:
    """Where each record of `searches` is: (i, j, start, end) per record."""
    out = array.array("i")
    at, end = 0, len(searches)
    while at < end:
        nd, ndeps = searches[at + 7], searches[at + 8]
        stop = at + _HEAD + nd + 4 * ndeps
        out.extend((searches[at], searches[at + 1], at, stop))
        at = stop
    return out


def _compact(
    old: _Old, records: Iterable[array.array], out: array.array
) -> tuple[list[Any], list[tuple[str, str | None]], array.array, list[Any]]:
    """The records kept, added to `out` naming calls of a new table of only those calls
    (with the table of their units' tools and programs, their units and their units'
    subjects)."""
    table: list[Any] = []
    units = array.array("i")
    subjects: list[Any] = []
    old_subjects = json.loads(old.subjects_json)
    renumber: dict[int, int] = {}

    def call_id(n: int) -> int:
        if n < 0:
            return n
        got = renumber.get(n)
        if got is None:
            got = renumber[n] = len(table)
            table.append(old.raw_calls[n])
            subjects.append(old_subjects[n])
            at = old.unit_at[n]
            units.extend(old.units[at : at + 1 + old.units[at]])
        return got

    for rec in records:
        rec[3] = call_id(rec[3])
        for at in range(_HEAD + rec[7], len(rec), 4):
            rec[at + 2] = call_id(rec[at + 2])
        out.extend(rec)
    return table, list(old.sigs), units, subjects


def _json_after(prefix: bytes, written: int, rows: list[Any]) -> bytes:
    """A JSON list: the `written` rows as `prefix` holds them, then the rest of `rows`."""
    more = json.dumps(rows[written:], separators=(",", ":")).encode()
    if not written:
        return more
    return prefix if more == b"[]" else prefix[:-1] + b"," + more[1:]


def _ints(data: memoryview) -> array.array:
    out = array.array("i")
    if len(data) % out.itemsize:
        raise ValueError("numbers cut short")
    out.frombytes(data)
    return out


# The file: this line, a line of JSON (what is small, and the sections' names and sizes),
# then the sections: numbers as the machine holds them, calls as JSON. A checksum of the
# sections catches a file cut short or damaged; it is then not read, and rewritten.
_MAGIC = b"leashd lint pair cache\n"


def _pack(head: dict[str, Any], sections: dict[str, bytes]) -> bytes:
    body = b"".join(sections.values())
    head = {
        **head,
        "sections": [[name, len(data)] for name, data in sections.items()],
        "numbers": [sys.byteorder, array.array("i").itemsize],
        "crc": zlib.crc32(body),
    }
    return _MAGIC + json.dumps(head, separators=(",", ":")).encode() + b"\n" + body


def _unpack(data: bytes) -> tuple[dict[str, Any], dict[str, memoryview]]:
    if not data.startswith(_MAGIC):
        raise ValueError("not a pair cache")
    end = data.index(b"\n", len(_MAGIC))
    head = json.loads(data[len(_MAGIC) : end])
    body = memoryview(data)[end + 1 :]
    if head["numbers"] != [sys.byteorder, array.array("i").itemsize]:
        raise ValueError("numbers of another machine")
    if zlib.crc32(body) != head["crc"]:
        raise ValueError("damaged")
    sections = {}
    at = 0
    for name, size in head["sections"]:
        sections[str(name)] = body[at : at + size]
        at += size
    if at != len(body):
        raise ValueError("cut short")
    return head, sections


def _moved(old_of: list[int]) -> set[int]:
    """Rules kept from the old policy (old_of[i] >= 0) whose order relative to the other
    kept rules changed: those outside one longest run of kept rules still in their old
    order (a longest increasing subsequence of their old places)."""
    seq = [(o, i) for i, o in enumerate(old_of) if o >= 0]
    tails: list[int] = []  # the least old place ending a run of each length
    ends: list[int] = []  # where in seq that run ends
    back = [-1] * len(seq)
    for n, (o, _i) in enumerate(seq):
        k = bisect.bisect_left(tails, o)
        if k == len(tails):
            tails.append(o)
            ends.append(n)
        else:
            tails[k] = o
            ends[k] = n
        back[n] = ends[k - 1] if k > 0 else -1
    keep: set[int] = set()
    n = ends[-1] if ends else -1
    while n >= 0:
        keep.add(seq[n][1])
        n = back[n]
    return {i for _o, i in seq if i not in keep}


def _path(policy: Policy) -> Path | None:
    analysis = keys.analysis_key()
    if analysis is None:
        return None
    # one file per stack: the same source files in the same order (a one-rule edit keeps
    # them; policies built in code have none, and share one), and per analysis
    stack = hashlib.sha256(json.dumps(list(policy.sources)).encode()).hexdigest()
    return cache_dir() / f"pairs-{stack[:24]}-{analysis[:12]}.cache"
