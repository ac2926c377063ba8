"""Example calls from the overlap of two rules, checked by the compiled evaluator.

A finding's example must be real: a call that, evaluated for real (shell parse, facts,
compiled matchers), gives a unit both rules match. Candidates come from the rules' own
`examples.match` and from strings drawn from the intersection of their languages (argv
words, flags, a path both path conditions accept, a host, input fields); the first candidate
the evaluator confirms is the example.

Calls are evaluated in a fixed world (HOME /home/dev, project /home/dev/project), the one
the built-in suites and corpora use; nothing there needs to exist on this machine.

A search comes to an `Outcome` that names every unit whose deciding rule it read: that is
all it depends on besides the two rules, and what the pair cache (pair_cache.py) checks
before it reuses an outcome in a later lint.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from leashd.policy.analysis.actions import looser, of_decision, of_rule
from leashd.policy.analysis.regions import PathLang, Region, Regions
from leashd.policy.compiler import CompiledPolicy
from leashd.policy.evaluator import Evaluator
from leashd.policy.facts import Context, Unit, extract
from leashd.policy.patterns import DYN, SEP
from leashd.shell import DYNAMIC

HOME = "/home/dev"
PROJECT = "/home/dev/project"
# Path spellings for each `where`, as regexes over glob subjects (absolute or ~/...).
WHERE_SHAPES = {
    "inside": [r"^/home/dev/project/[^\x00\n/]", r"^~/project/[^\x00\n/]"],
    "outside": [r"^~/[^p\x00\n]", r"^/srv/[^\x00\n]", r"^/etc/[^\x00\n]", r"^/home/[^d\x00\n]"],
    "temp": [r"^/tmp/[^\x00\n]"],
    "system": [r"^/usr/[^\x00\n]"],
    "unknown": [],
}
_PATH_CHARS = r"^[^\x00\x01\n\"'$`\\]*\Z"
# Extra regexes the witness search needs in the shared partitions.
EXTRA = {
    "globs": [(r, False) for shapes in WHERE_SHAPES.values() for r in shapes]
    + [(_PATH_CHARS, False)],
}
_TOOL_PATH_FIELDS = {
    "Read": "file_path",
    "Write": "file_path",
    "Edit": "file_path",
    "MultiEdit": "file_path",
    "NotebookEdit": "notebook_path",
    "NotebookRead": "notebook_path",
    "LS": "path",
}


_MORE = 6


class Witness(NamedTuple):
    call: dict[str, Any]
    decider: int  # the rule that decides the unit both rules match
    whole: bool  # the whole call gets the decider's action


@dataclass
class Trial:
    """A candidate call, as the evaluator saw it: per unit, the rule that decides it (the
    first that matches; None: no rule does; UNASKED: a unit both rules do not match, whose
    decision is only asked with the whole call's) and whether both rules of the pair match
    it; and, once asked, the action the whole call gets ("" if it could not be evaluated)."""

    call: dict[str, Any]
    units: tuple[tuple[int | None, bool], ...] = ()
    whole: str | None = None
    # per unit, its tool and program (None: none, or one only known at run time)
    sigs: tuple[tuple[str, str | None], ...] = ()
    facts: tuple[Unit, ...] = field(default=(), repr=False, compare=False)

    def deciders(self) -> list[int]:
        """For each unit both rules match, the rule that decides it (one of the two, or a
        rule before both); empty when no unit is matched by both."""
        return [first for first, both in self.units if both and first is not None]


UNASKED = -2

# A unit a search read the deciding rule of: that rule (-1: none), whether both rules of
# the pair match the unit, the call, the unit's index in it; what can prove a rule does not
# match it without the evaluator:
# the unit's tool and program (`signature`), and the texts command regexes are searched in
# (`subjects`).
Subjects = tuple[str | None, str | None, str | None]
Dep = tuple[int, bool, dict[str, Any], int, tuple[str, str | None], Subjects]

# What a search comes to.
GONE = 0  # the commands' texts prove the two rules never meet: nothing to report
NONE = 1  # no call both match was found: an unanalyzable pair
FOUND = 2  # a call both match: a conflict


class Outcome(NamedTuple):
    """What the example search of a pair i before j comes to, and all it read of the rest
    of the policy: `deps`, the units whose deciding rule it looked at, each as (that rule,
    or -1 for none; whether both rules match the unit; the call; the unit's index in it).

    A search only reads of other rules which one decides a unit of a call it tries (the
    units both rules match, and every unit of a call whose whole decision it asks for). So
    while each unit of `deps` is decided by the same rule, the same search comes to the
    same outcome (pair_cache.py checks that, and reuses it). Each unit also comes with its
    tool and program, which may prove a rule does not match it without the evaluator."""

    kind: int
    call: dict[str, Any] | None = None
    # () : the call's unit both match is decided by i; else the rules deciding the units
    # both match (all before i), of which the earliest is named
    deciders: tuple[int, ...] = ()
    whole: bool = False  # the whole call gets the deciding rule's action
    deps: tuple[Dep, ...] = ()

    def decider(self, i: int) -> int:
        return min(self.deciders) if self.deciders else i


@dataclass
class Search:
    """The example search of a pair, as it went: the trials of the first round, whether the
    commands' texts prove the rules apart (None: not asked, or not a question about texts),
    the trials of the round on those texts; and what it found: `gone` (apart after all,
    nothing to report) or `found` (None: no call both rules match)."""

    first: list[Trial] = field(default_factory=list)
    apart: bool | None = None
    second: list[Trial] = field(default_factory=list)
    found: Witness | None = None
    gone: bool = False

    def outcome(self, i: int) -> Outcome:
        """What the search comes to, for the pair i (earlier) and another rule."""
        deps: dict[tuple[int, bool, int, int], Dep] = {}
        trials = (*self.first, *self.second)
        for t in trials:
            for k, (first, both) in enumerate(t.units):
                if both or t.whole is not None:  # (then every unit's rule was asked)
                    assert first != UNASKED
                    f = -1 if first is None else first
                    dep = (f, both, t.call, k, t.sigs[k], subjects(t.facts[k]))
                    deps.setdefault((f, both, id(t.call), k), dep)
        kept = tuple(deps.values())
        if self.gone:
            return Outcome(GONE, deps=kept)
        w = self.found
        if w is None:
            return Outcome(NONE, deps=kept)
        deciders: tuple[int, ...] = ()
        if w.decider != i:
            trial = next(t for t in trials if t.call is w.call)
            deciders = tuple(sorted(set(trial.deciders())))
        return Outcome(FOUND, w.call, deciders, w.whole, kept)


def subjects(u: Unit) -> Subjects:
    """What command regexes are searched in, in a unit: its text, and for a deny rule's also
    the pipeline's text and its words (compiler.py `_ok_commands`)."""
    return u.text, u.pipeline, u.words_text()


def signature(u: Unit) -> tuple[str, str | None]:
    """A unit's tool and program (None: it has none, or one only known at run time)."""
    known = u.program is not None and 0 not in u.dynamic and DYNAMIC not in u.program
    return u.tool, u.program if known else None


class Witnesses:
    def __init__(self, compiled: CompiledPolicy, regions: Regions):
        self.compiled = compiled
        self.regions = regions
        self.ctx = Context.create(cwd=PROJECT, home=HOME, approved_dirs=[PROJECT])
        self.evaluator = Evaluator(compiled, self.ctx)
        # Candidate calls, one object per call: searches share many (`cat`), and the
        # cache keeps each once (pair_cache.py).
        self._calls: dict[str, dict[str, Any]] = {}
        # per rule, pieces of candidates its conditions alone decide (`_alone`)
        self.alone: dict[int, dict[str, Any]] = {}

    def search(self, ri: Region, rj: Region, rel) -> Search:
        """A call rules i (earlier) and j overlap on. Candidates come from the rules' own
        examples and languages; where the looser rule comes first and no call it decides
        for the whole was found, from the commands' texts too (shelltext.py), which may
        also prove that the two never meet."""
        out = Search()
        found = self.common(ri, rj, self._fresh(ri, rj, rel, None, out.first))
        looser_first = looser(ri.rule, rj.rule)
        if looser_first and (found is None or not found.whole):
            # No call yet that the looser rule first decides more loosely: ask what the
            # commands' texts allow (stricter first, a call found is decided strictly,
            # and none found is no finding).
            answer = rel.text_answer(ri, rj)
            out.apart = None if answer is None else answer.apart
            if answer is not None and answer.apart:
                out.gone = True  # they never meet on a command's text (shelltext.py)
                return out
            if answer is not None:
                texts = answer.examples()
                better = self.common(ri, rj, self._fresh(ri, rj, rel, texts, out.second))
                if better is not None and (found is None or better.whole):
                    found = better
        out.found = found
        return out

    def _fresh(
        self, ra: Region, rb: Region, rel, texts: Iterable[str] | None, log: list[Trial]
    ) -> Iterator[Trial]:
        """Trials of the candidates, made as they are asked for and kept in `log`."""
        for call in self._candidates(ra, rb, rel, texts):
            t = self.trial(self._interned(call), ra.index, rb.index)
            log.append(t)
            yield t

    def _interned(self, call: dict[str, Any]) -> dict[str, Any]:
        inp = call["input"]
        if call["tool"] == "Bash" and len(inp) == 1 and type(inp.get("command")) is str:
            key = inp["command"]
        else:
            key = "\0" + json.dumps(call, sort_keys=True)
        return self._calls.setdefault(key, call)

    def interned(self, o: Outcome) -> Outcome:
        """The outcome with its calls this process's own objects (one from a forked process
        brings copies): the cache writes each call once, by identity."""
        call = self._interned(o.call) if o.call is not None else None
        deps = tuple((f, both, self._interned(c), *rest) for f, both, c, *rest in o.deps)
        return o._replace(call=call, deps=deps)

    def units_of(self, call: dict[str, Any]) -> tuple[Unit, ...] | None:
        """The units of a call (None: it is no call the evaluator can take apart)."""
        try:
            facts = extract(call["tool"], call["input"], self.ctx)
        except Exception:
            return None
        return None if facts.error is not None else facts.units

    def trial(self, call: dict[str, Any], a: int, b: int) -> Trial:
        found = self.units_of(call)
        if found is None:
            return Trial(call)
        units: list[tuple[int | None, bool]] = []
        for u in found:
            both = self.compiled.matches(a, u, self.ctx) and self.compiled.matches(b, u, self.ctx)
            if both:
                first = self.compiled.first_match(u, self.ctx)
                # a unit both match is decided by `a`, `b` or an earlier rule
                assert first is not None and first <= min(a, b)
                units.append((first, True))
            else:
                units.append((UNASKED, False))
        return Trial(call, tuple(units), sigs=tuple(signature(u) for u in found), facts=found)

    def common(self, ra: Region, rb: Region, trials: Iterable[Trial]) -> Witness | None:
        """A call both rules match, and the rule that decides it; one decided by the earlier
        of the two where there is one, and then one whose decision is that rule's (no other
        unit of the call is decided more strictly, so the finding's "`X` gets allow" holds
        for the whole call: `whole`). None if no such call was found."""
        first = min(ra.index, rb.index)
        fallback = None
        more = _MORE  # candidates tried for a whole call once one the earlier rule decides
        for t in trials:
            deciders = t.deciders()
            if first in deciders:
                if self._decided_by(t, first):
                    return Witness(t.call, first, True)
                if fallback is None or fallback.decider != first:
                    fallback = Witness(t.call, first, False)
            elif deciders and fallback is None:
                fallback = Witness(t.call, min(deciders), False)
            if fallback is not None and fallback.decider == first:
                more -= 1
                if more < 0:
                    break
        return fallback

    def _decided_by(self, t: Trial, index: int) -> bool:
        """Does the whole call get rule `index`'s action (the strictest of its units'; an AI
        question only when the AI approver answers the whole call, actions.py)?"""
        action = of_rule(self.compiled.rules[index])
        if action == "deny":
            return True  # nothing is stricter
        if t.whole is None:
            try:
                t.whole = of_decision(self.evaluator.evaluate(t.call["tool"], t.call["input"]))
            except Exception:
                t.whole = ""
            # what the whole decision read: the rule deciding each unit
            t.units = tuple(
                (self.compiled.first_match(u, self.ctx), both)
                if first == UNASKED
                else (first, both)
                for (first, both), u in zip(t.units, t.facts, strict=True)
            )
        return t.whole == action

    # --- candidates -----------------------------------------------------------------------

    def _candidates(self, ra: Region, rb: Region, rel, texts: Iterable[str] | None = None):
        if texts is not None:
            flags = self._one("flags", ra, rb, rel)
            extra = [w for w in (flags or "").split(SEP) if w]
            for text in texts:
                yield {"tool": "Bash", "input": {"command": text}}
                if extra:  # a flag condition the text question left out
                    yield {"tool": "Bash", "input": {"command": " ".join([text, *extra])}}
            return
        for r in (ra, rb):
            for ex in r.rule.examples_match:
                yield {"tool": ex.tool, "input": dict(ex.input)}
        tool = rel.common("tools", ra.tools, rb.tools)
        if tool is None:
            return
        inputs = self._input_fields(ra, rb, rel)
        paths = self._paths(ra, rb, rel)
        host = self._one("hosts", ra, rb, rel)
        if tool == "Bash":
            yield from self._commands(ra, rb, rel, paths, host, inputs)
            return
        if tool in _TOOL_PATH_FIELDS:
            for p in paths or ["/home/dev/project/a"]:
                yield {"tool": tool, "input": {_TOOL_PATH_FIELDS[tool]: p, **inputs}}
        elif tool in ("Glob", "Grep"):
            for p in paths or ["/home/dev/project"]:
                yield {"tool": tool, "input": {"pattern": "a", "path": p, **inputs}}
        elif tool == "WebFetch":
            yield {"tool": tool, "input": {"url": f"https://{host or 'example.com'}/", **inputs}}
        elif tool == "SandboxNetworkAccess":
            yield {"tool": tool, "input": {"host": host or "example.com", **inputs}}
        else:
            base = dict(inputs)
            if host:
                base.setdefault("url", f"https://{host}/")
            for p in paths:
                yield {"tool": tool, "input": {"path": p, **base}}
            yield {"tool": tool, "input": base}

    def _alone(self, r: Region, what: str, make: Callable[[], Any]) -> Any:
        """A piece of a candidate that only rule r's conditions decide (the other rule of
        the pair has none of that kind): one per rule, whichever rule it is paired with,
        and kept from one lint to the next (pair_cache.py)."""
        mine = self.alone.setdefault(r.index, {})
        if what not in mine:
            mine[what] = make()
        return mine[what]

    def _one(self, kind: str, ra: Region, rb: Region, rel) -> str | None:
        """A subject of `kind` both rules' conditions accept (one rule's alone when the
        other has none, or one the automata cannot hold); None: none."""
        if ra.has(kind) and rb.has(kind):
            la, lb = ra.langs.get(kind), rb.langs.get(kind)
            if la is not None and lb is not None:
                return rel.common(kind, la, lb)
            if la is None and lb is None:
                return None
            r = rb if la is None else ra
        elif ra.has(kind) or rb.has(kind):
            r = ra if ra.has(kind) else rb
        else:
            return None
        return self._alone(r, kind, lambda: self._common_alone(kind, r.langs.get(kind), rel))

    @staticmethod
    def _common_alone(kind: str, lang, rel) -> str | None:
        return None if lang is None else rel.common(kind, lang, ())

    def _input_fields(self, ra: Region, rb: Region, rel) -> dict[str, str]:
        out = {}
        keys = {*ra.input_keys, *rb.input_keys}
        for key in sorted(keys):  # sorted: the same example every run
            la = ra.input_lang(key) if key in ra.input_keys else None
            lb = rb.input_lang(key) if key in rb.input_keys else None
            if la is not None and lb is not None:
                got = rel.common("input", la, lb)
            elif la is None and lb is None:
                continue  # (conditions the automata cannot hold)
            else:
                r, lang = (rb, lb) if la is None else (ra, la)
                got = self._alone(
                    r, "input:" + key, lambda lang=lang: rel.common("input", lang, ())
                )
            if got is not None:
                out[key] = got
        return out

    def _paths(self, ra: Region, rb: Region, rel) -> list[str]:
        conds = [p for p in (ra.paths, rb.paths) if p is not None]
        if not conds:
            return []
        if len(conds) == 1:
            r = ra if ra.paths is not None else rb
            return self._alone(r, "paths", lambda: self._paths_of(conds, rel))
        return self._paths_of(conds, rel)

    def _paths_of(self, conds: list[PathLang], rel) -> list[str]:
        wheres = set.intersection(*(set(p.where) for p in conds))
        out = []
        chars = self.regions.kinds["globs"].dfa((_PATH_CHARS, False))
        for where in sorted(wheres):
            for shape in WHERE_SHAPES[where]:
                lang = [(chars,), (self.regions.kinds["globs"].dfa((shape, False)),)]
                for p in conds:
                    lang.extend(p.globs or ())
                got = rel.common("globs", tuple(lang[:1]), tuple(lang[1:]))
                if got:  # "" is "too large to decide", not a path
                    out.append(got)
        return out[:4]

    def _commands(self, ra, rb, rel, paths, host, inputs):
        words: list[str] | None = None
        if ra.argv is not None or rb.argv is not None:
            if ra.argv is not None and rb.argv is not None:
                words = rel.argv_example(ra, rb)
            else:
                one = ra.argv or rb.argv
                words = rel.argv_meet(one, one)
            words = [w.replace(DYN, "x") for w in words or ()]
        flags_text = self._one("flags", ra, rb, rel)
        if flags_text is not None:
            words = words or ["cat"]
            words += [w for w in flags_text.split(SEP) if w and w not in words[1:]]
        if words is None:
            words = ["cat"]
        base = " ".join(shlex.quote(w) for w in words)
        prefixes = [""]
        name = self._one("env", ra, rb, rel)
        if name:
            # set on the unit, or by `env`: a wrapper, so the unit's text is the words alone
            prefixes += [f"{name}=x ", f"env {name}=x "]
        feeder = self._one("fed_by", ra, rb, rel)
        if feeder:
            prefixes.append(f"{shlex.quote(feeder)} https://example.com/x | ")
        if not words:  # `$`: a unit of assignments only
            base, prefixes = ("", [f"{name}=x"]) if name else ("X=1", [""])
        if True in (ra.wrapper, rb.wrapper) and words:
            # a wrapper unit: the words as the command a wrapper runs
            prefixes += [p + "timeout 5 " for p in prefixes]
        tails = [""]
        access = {p.cond.access for p in (ra.paths, rb.paths) if p is not None}
        for p in paths:
            if "write" in access:
                tails.append(" > " + shlex.quote(p))
                tails.append(" | tee " + shlex.quote(p))
            else:
                tails.append(" " + shlex.quote(p))
                tails.append(" < " + shlex.quote(p))
        urls = [f" https://{host}/"] if host else []
        if host is None:
            # hosts no one host satisfies both: a unit has several (one each)
            each = [
                self._alone(
                    r, "hosts", lambda r=r: self._common_alone("hosts", r.langs.get("hosts"), rel)
                )
                for r in (ra, rb)
                if r.has("hosts")
            ]
            if len(each) == 2 and all(each):
                urls.append("".join(f" https://{h}/" for h in each))
        path_tails = tails[1:]
        tails.extend(urls)
        tails.extend(p + url for p in path_tails for url in urls)  # a path and a host
        for prefix in prefixes:
            for tail in tails:
                command = (prefix + base).strip() + tail
                yield {"tool": "Bash", "input": {"command": command, **inputs}}
        text = self._one("command", ra, rb, rel)
        if text:
            yield {"tool": "Bash", "input": {"command": text, **inputs}}
            if name:
                yield {"tool": "Bash", "input": {"command": f"env {name}=x {text}", **inputs}}
            # the text a command regex wants, as an argument of the words argv wants
            yield {"tool": "Bash", "input": {"command": base + " " + text, **inputs}}
            yield {"tool": "Bash", "input": {"command": base + " " + shlex.quote(text), **inputs}}
            for tail in tails[1:]:
                yield {"tool": "Bash", "input": {"command": text + tail, **inputs}}
