"""How two regions relate: containment (sound) and overlap (possible / proved impossible).

`implied(j, i)` answers "does every unit rule j matches also match rule i?" kind by kind; a
kind counts as implied only when that is proved (automata, or the very same condition), so
a rule reported as shadowed really never fires. `covered_by_union` proves the same for a set
of earlier rules that together cover one kind. `disjoint(a, b)` proves that no unit matches
both, from the kinds whose subject is one per unit (tool, argv, flags, command text, an
input field); kinds with several subjects per unit (paths, hosts, variables) cannot prove
it, since one path may satisfy one rule and another path the other.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from leashd.policy import patterns
from leashd.policy.analysis import automata, shelltext, wordglobs
from leashd.policy.analysis.actions import looser, of_rule
from leashd.policy.analysis.argvlang import ArgvLang, Words, WordSet
from leashd.policy.analysis.automata import DFA, Unanalyzable
from leashd.policy.analysis.regions import LANG_KINDS, Lang, PathLang, Region, Regions
from leashd.shell.wrappers import wrapper_argv

# What `counterexample` answers when the automata are too large to walk: "not proved" (not
# None, which would claim containment).
NOT_PROVED = "<not proved>"
# What a wrapper unit's argv always matches (a superset, from the shell parser's own table).
_WRAPPERS = ArgvLang.of_patterns(wrapper_argv(), lenient=False)
# Kinds in the order they are tried (cheapest, most often decisive first).
KINDS = ("tools", "modes", "opaque", "wrapper", "argv", "flags", "command", "path_regex",
         "paths", "hosts", "env", "fed_by", "input")  # fmt: skip


def _raw(kind: str, r) -> object:
    """A condition as written, without source spans (equal conditions mean the same)."""
    if kind == "command":
        v = r.command_patterns
        return None if v is None else tuple((x.pattern, x.ignore_case) for x in v)
    if kind == "path_regex":
        v = r.path_patterns
        return None if v is None else tuple((x.pattern, x.ignore_case) for x in v)
    if kind == "argv":
        return None if r.argv is None else tuple(p.tokens for p in r.argv)
    if kind == "input":
        return None if r.input is None else tuple((k, x.pattern, x.ignore_case) for k, x in r.input)
    return getattr(r, kind)


class Relations:
    def __init__(self, regions: Regions):
        self.regions = regions
        self.words = Words()
        self._memo: dict[tuple, object] = {}

    # --- automata questions, memoised by the identity of the DFAs involved ---------------

    def counterexample(self, kind: str, a: Lang, covers: list[Lang]) -> str | None:
        """A subject in `a` and in none of `covers`; None: a ⊆ ∪ covers."""
        if any(len(c) == 0 for c in covers):
            return None
        key = ("cx", kind, _ids(a), tuple(_ids(c) for c in covers))
        if key not in self._memo:
            try:
                self._memo[key] = self._search(kind, a, covers)
            except Unanalyzable:
                self._memo[key] = NOT_PROVED
        return self._memo[key]  # type: ignore[return-value]

    def common(self, kind: str, a: Lang, b: Lang) -> str | None:
        """A subject in both `a` and `b`; None: they are disjoint.

        Unions are taken apart alternative by alternative (walking all alternatives of a
        union in parallel is a subset construction, exponential in their number)."""
        key = ("common", kind, _ids(a), _ids(b))
        if key not in self._memo:
            try:
                self._memo[key] = self._common([*a, *b])
            except Unanalyzable:
                self._memo[key] = ""  # too large to decide: they may overlap
        return self._memo[key]  # type: ignore[return-value]

    def _common(self, unions: list[tuple[DFA, ...]]) -> str | None:
        if not unions:
            return ""
        if len(unions) == 1:
            return min(
                (x for x in (automata.example(d) for d in unions[0]) if x is not None),
                key=len,
                default=None,
            )
        first, rest = unions[0], unions[1:]
        for alt in first:
            pruned = [tuple(d for d in u if self._meets(alt, d)) for u in rest]
            if any(not u for u in pruned):
                continue
            for combo in _choices(pruned):
                if all(self._meets(x, y) for n, x in enumerate(combo) for y in combo[n + 1 :]):
                    got = automata.find(alt, list(combo), lambda p, qs: p and all(qs))
                    if got is not None:
                        return got
        return None

    def _search(self, kind: str, a: Lang, covers: list[Lang]) -> str | None:
        """A subject in every union of `a` and, per cover, outside at least one of its unions.

        The walk is split on the alternatives of `a`'s first union: each alternative is the
        automaton that prunes the walk, and cover alternatives disjoint from it are dropped
        first (they can never accept), which keeps the product small.
        """
        if not a:
            a = ((self.regions.universe(kind),),)
        first, rest = a[0], list(a[1:])
        flat_rest = [d for u in rest for d in u]
        rest_sizes = [len(u) for u in rest]
        for alt in first:
            # each cover, without the alternatives that can never accept what `alt` accepts;
            # a cover left with an empty union can accept none of it
            kept = [[tuple(d for d in u if self._meets(alt, d)) for u in c] for c in covers]
            kept = [c for c in kept if all(c)]
            cover_sizes = [[len(u) for u in c] for c in kept]
            flat = flat_rest + [d for c in kept for u in c for d in u]

            def accept(a_final: bool, finals: list[bool], cover_sizes=cover_sizes) -> bool:
                if not a_final:
                    return False
                pos = 0
                for n in rest_sizes:  # in every other union of `a`
                    if not any(finals[pos : pos + n]):
                        return False
                    pos += n
                for sizes in cover_sizes:  # and outside some union of every cover
                    inside = True
                    for n in sizes:
                        inside = inside and any(finals[pos : pos + n])
                        pos += n
                    if inside:
                        return False
                return True

            got = automata.find(alt, flat, accept)
            if got is not None:
                return got
        return None

    def argv_example(self, a: Region, b: Region) -> list[str] | None:
        """An argv both rules' argv conditions match; None: none does."""
        assert a.argv is not None and b.argv is not None
        return self.argv_meet(a.argv, b.argv)

    def argv_meet(self, x: ArgvLang, y: ArgvLang) -> list[str] | None:
        """An argv both match; None: none does. A word question too large to answer
        (`Unanalyzable`) gives [] here: not proved disjoint, and no example words."""
        try:
            return self.words.example(x, y)
        except Unanalyzable:
            return []

    def _meets(self, x: DFA, y: DFA) -> bool:
        if x is y:
            return True
        key = ("meets", id(x), id(y))
        if key not in self._memo:
            if x.floating and y.floating:  # a string with a match of each accepts both
                self._memo[key] = not x.is_empty() and not y.is_empty()
                return bool(self._memo[key])
            try:
                self._memo[key] = automata.find(x, [y], lambda p, qs: p and qs[0]) is not None
            except Unanalyzable:
                self._memo[key] = True  # not proved disjoint
        return bool(self._memo[key])

    # --- containment ------------------------------------------------------------------------

    def implied_kind(self, kind: str, j: Region, i: Region) -> bool:
        """Is rule i's condition of `kind` proved to hold wherever rule j matches?"""
        ri, rj = i.rule, j.rule
        if kind == "tools":
            return self.counterexample("tools", j.tools, [i.tools]) is None
        if kind == "modes":
            return i.modes is None or (j.modes is not None and j.modes <= i.modes)
        if kind in ("opaque", "wrapper"):
            want = getattr(i, kind)
            return want is None or getattr(j, kind) == want
        if kind == "paths":
            if i.paths is None:
                return True
            if j.paths is None:
                return False
            if _same_paths(ri.paths, rj.paths):
                return True
            return self._path_implied(j.paths, i.paths)
        if kind == "input":
            return self._input_implied(j, i)
        # a language kind
        if _condition_absent(kind, ri):
            return True
        if _condition_absent(kind, rj):
            return False
        if kind == "command" and j.deny_subjects and not i.deny_subjects:
            return False  # j also matches on the pipeline's text, i does not look there
        same = _raw(kind, rj) == _raw(kind, ri)
        # argv words known only at run time match differently in rules that ask (lenient)
        lenient_i, lenient_j = (r.action == "require_approval" for r in (ri, rj))
        if same and (kind != "argv" or lenient_i == lenient_j):
            return True
        if kind == "argv":
            assert i.argv is not None and j.argv is not None
            return self.words.contained(j.argv, [i.argv])
        if kind == "flags":
            return self.flags_contained(rj.flags, [ri.flags])
        li, lj = i.langs.get(kind), j.langs.get(kind)
        if li is None or lj is None:
            return False  # unanalyzable: not proved
        return self.counterexample(kind, lj, [li]) is None

    def flags_contained(self, flags: tuple[str, ...], covers: list[tuple[str, ...]]) -> bool:
        """Is every word one of `flags` finds also found by a flag of `covers`? (Then every
        unit with one of `flags` has one of theirs.) Unanalyzable flags: not proved."""
        key = ("flags", flags, tuple(covers))
        if key not in self._memo:
            try:
                cover_lines = [x for c in covers for f in c for x in wordglobs.flag_lines(f)]
                self._memo[key] = all(
                    wordglobs.counterexample(line, cover_lines) is None
                    for f in flags
                    for line in wordglobs.flag_lines(f)
                )
            except Unanalyzable:
                self._memo[key] = False
        return bool(self._memo[key])

    def _path_meta_implied(self, pj: PathLang, pi: PathLang) -> bool:
        ci, cj = pi.cond, pj.cond
        if ci.access != "any" and cj.access != ci.access:
            return False
        if ci.via == "redirect" and cj.via != "redirect":
            return False
        return pj.where <= pi.where

    def _excepts_implied(self, pj: PathLang, pi: PathLang) -> bool:
        """Whatever i excepts, j excepts too: a path j accepts is never one i excepts."""
        if not pi.cond.except_globs:
            return True
        if not pj.cond.except_globs:
            return False
        if pi.excepts is None or pj.excepts is None:  # unanalyzable: only the same globs
            return (pi.cond.except_globs, pi.cond.ignore_case) == (
                pj.cond.except_globs,
                pj.cond.ignore_case,
            )
        return self.counterexample("globs", pi.excepts, [pj.excepts]) is None

    def _path_implied(self, pj: PathLang, pi: PathLang) -> bool:
        if not self._path_meta_implied(pj, pi) or not self._excepts_implied(pj, pi):
            return False
        if not pi.cond.globs:
            return True
        if not pj.cond.globs or pj.globs is None or pi.globs is None:
            return False
        return self.counterexample("globs", pj.globs, [pi.globs]) is None

    def _input_implied(self, j: Region, i: Region) -> bool:
        if i.rule.input is None:
            return True
        if j.rule.input is None:
            return False
        if _raw("input", i.rule) == _raw("input", j.rule):
            return True
        for key, _ in i.rule.input:
            li, lj = i.input.get(key), j.input.get(key)
            if li is None or lj is None:
                return False
            if self.counterexample("input", lj, [li]) is not None:
                return False
        return True

    def failing(self, j: Region, i: Region, limit: int = 2) -> list[str]:
        """The kinds of rule i not proved to hold wherever j matches (at most `limit`)."""
        out = []
        for kind in KINDS:
            if not self.implied_kind(kind, j, i):
                out.append(kind)
                if len(out) >= limit:
                    break
        return out

    def covered_by_union(self, kind: str, j: Region, cands: list[Region]) -> bool:
        """Do `cands` (each implied by j on every other kind) cover j's `kind` together?"""
        if kind == "tools":
            return self.counterexample("tools", j.tools, [c.tools for c in cands]) is None
        if kind == "modes":  # every candidate names modes: that is the kind it fails on
            return j.modes is not None and j.modes <= frozenset().union(*(c.modes for c in cands))
        if kind == "argv":
            covers = [c.argv for c in cands]
            if j.argv is None or any(c is None for c in covers):
                return False
            return self.words.contained(j.argv, covers)  # type: ignore[arg-type]
        if kind == "flags":
            if j.rule.flags is None or any(c.rule.flags is None for c in cands):
                return False
            return self.flags_contained(j.rule.flags, [c.rule.flags for c in cands])  # type: ignore[misc]
        if kind in LANG_KINDS:
            if kind == "command" and j.deny_subjects and not all(c.deny_subjects for c in cands):
                return False
            lj = j.langs.get(kind)
            covers = [c.langs.get(kind) for c in cands]
            if lj is None or any(c is None for c in covers):
                return False
            return self.counterexample(kind, lj, covers) is None  # type: ignore[arg-type]
        if kind == "paths":
            pj = j.paths
            if pj is None or pj.globs is None:
                return False
            covers = []
            for c in cands:
                pc = c.paths
                if pc is None or not self._path_meta_implied(pj, pc):
                    return False
                if not self._excepts_implied(pj, pc):
                    return False
                if pc.globs is None:
                    return True
                covers.append(pc.globs)
            return self.counterexample("globs", pj.globs, covers) is None
        return False

    def alternatives_inside(self, i: Region, j: Region) -> bool:
        """Is every argv alternative of i, program by program, that overlaps j's argv wholly
        inside it, with i's other conditions implied by j's? Then i carves whole
        alternatives out of j (`docker --version $` out of `docker **`)."""
        if i.argv is None or j.argv is None or self.failing(i, j) != ["argv"]:
            return False
        w = self.words
        pieces = [piece for a in i.argv.alts for piece in a.per_program()]
        try:
            return all(
                any(w.simulates(a, b) for b in j.argv.facing(a))
                for a in pieces
                if any(w.meet(a, b) is not None for b in j.argv.facing(a))
            )
        except Unanalyzable:
            return False  # not proved

    # --- command texts --------------------------------------------------------------------------

    def _build(self, key: tuple, make):
        """A memoised automaton; `Unanalyzable` (too large) is remembered and raised again."""
        if key not in self._memo:
            try:
                self._memo[key] = make()
            except Unanalyzable as exc:
                self._memo[key] = exc
        got = self._memo[key]
        if isinstance(got, Unanalyzable):
            raise got
        return got

    def _argv_words(self, r: Region, sep: str, shadows: bool = False) -> DFA:
        """The words of the units r's argv matches, joined by `sep` (shelltext.words_regex)."""
        assert r.argv is not None
        partition = self.regions.kinds["command"].partition

        def make() -> DFA:
            rx = shelltext.words_regex(r.argv.alts, sep, shadows)
            return automata.search_dfa(automata.parse(rx), partition)

        return self._build(("argv-words", r.index, sep, shadows), make)

    def _texts(self, r: Region | None, shadows: bool, plain: bool) -> shelltext.Texts:
        """The texts of the units r's argv matches (r None: of any unit)."""
        tau = self._spelling(plain)

        def make() -> shelltext.Texts:
            words = self._argv_words(r, shelltext.SEP, shadows) if r is not None else None
            return shelltext.Texts(tau, words)

        return self._build(("texts", r.index if r else None, shadows, plain), make)

    def _texts_of_words(self, d: DFA, plain: bool) -> shelltext.Texts:
        """The texts of the units whose words text (`Unit.words_text`) `d` accepts, a
        program run by a path included (its text spells the path, its words the name)."""
        tau = self._spelling(plain, shadows=True)
        key = ("texts-of-words", id(d), plain)
        return self._build(key, lambda: shelltext.Texts(tau, d, " "))

    def text_answer(self, a: Region, b: Region) -> TextAnswer | None:
        """Can a unit of one rule have a text the other's regexes find? None: not a question
        about texts (a rule says nothing about a unit's words nor its text, or a regex is one
        the automata cannot hold). Each rule must name a program or have regexes; one of them
        must have regexes, and a rule with regexes and no argv is read on its text alone."""
        if not self.regions.texts or of_rule(a.rule) == of_rule(b.rule):
            return None
        if a.rule.command_patterns is None and b.rule.command_patterns is None:
            return None
        for r in (a, b):
            has_text = r.rule.command_patterns is not None
            if has_text and r.langs.get("command") is None:
                return None  # a regex the automata cannot hold: no claim from it
            if not has_text and r.argv is None:
                return None
        key = ("text", a.index, b.index)
        if key not in self._memo:
            try:
                self._memo[key] = self._text_answer(a, b)
            except Unanalyzable:
                self._memo[key] = TextAnswer(False)
        return self._memo[key]  # type: ignore[return-value]

    def _text_answer(self, a: Region, b: Region) -> TextAnswer:
        # A program run by a path is two units with one text, `.venv/bin/npm test` and, as
        # the rules for npm see it, `npm test`. Where the rule with argv names programs
        # only (so never the path itself), is the looser one, and the other looks at the
        # text alone, the unit of the path is that other rule's in either order: the
        # strictest decision of the call does not depend on theirs, and the unit under
        # the bare name need not be modelled.
        shadows = True
        if len([r for r in (a, b) if r.argv is not None]) == 1:
            named = a if a.argv is not None else b
            text = b if named is a else a
            shadows = not (
                _names_programs(named)
                and all(getattr(text.rule, c) is None for c in _UNIT_CONDITIONS)
                and looser(named.rule, text.rule)
            )
        deny = next((r for r in (a, b) if r.deny_subjects and r.rule.command_patterns), None)
        other = (b if deny is a else a) if deny is not None else None
        questions = [self._own_text(a, b, shadows, plain=False)]
        if deny is not None and other is not None:
            questions.append(self._own_words(other, deny, plain=False))
            questions.append(self._pipeline(other, deny, shadows, plain=False))
        if all(q is None for q in questions):
            return TextAnswer(True)

        def examples() -> Iterator[str]:
            """Commands from the overlap, cheapest first, made only as they are asked for."""
            seen = set()
            searches = [
                lambda: self._by_path(a, b) if shadows else None,
                lambda: self._own_text(a, b, shadows, plain=True),
                lambda: self._own_words(other, deny, plain=True) if deny else None,
                lambda: self._pipeline(other, deny, shadows, plain=True) if deny else None,
            ]
            for search in searches:
                try:
                    got = search()
                except Unanalyzable:
                    continue
                if got and got != shelltext.NOT_MODELLED and got not in seen:
                    seen.add(got)
                    yield got

        return TextAnswer(False, examples)

    def _one_word(self) -> DFA:
        """Texts of one unquoted word with no slash, nothing the shell reads specially."""
        rx = r"^[^ \t\n\r\f\v'\"\\$`{}<>&|;()#/\x00]+\Z"
        return automata.search_dfa(automata.parse(rx), self._partition())

    def _by_path(self, a: Region, b: Region) -> str | None:
        """A program run by a path whose directories spell what the rule with regexes finds,
        and whose name and words are the other rule's: `git\\x1cstatus/npm publish` is also
        `npm publish` (a shadow unit with the path's text). A guess: the evaluator checks it."""
        named, text = (a, b) if a.argv is not None else (b, a)
        if named.argv is None or text.argv is not None:
            return None
        (union,) = text.langs.get("command") or ((),)
        word = self._build(("one-word",), self._one_word)
        for d in union:
            head = automata.find(d, [word], lambda x, ys: x and ys[0])  # one plain word
            if not head:
                continue
            words = self.argv_meet(named.argv, named.argv)  # the rule's own words
            if words:
                tail = " ".join(shlex.quote(w.replace(patterns.DYN, "x")) for w in words)
                return f"{head}/{tail}"
        return None

    def _conditions(self, r: Region, shadows: bool, plain: bool) -> list[shelltext.Machine]:
        """r's conditions on a unit's own text, as machines over it."""
        out: list[shelltext.Machine] = [
            self._texts(r if r.argv is not None else None, shadows, plain)
        ]
        out.extend(shelltext.any_of(u) for u in r.langs.get("command") or ())
        return out

    def _partition(self):
        return self.regions.kinds["command"].partition

    def _find_text(
        self,
        stage: list[shelltext.Machine],
        pipe: list[shelltext.Machine] | None = None,
        **how,
    ) -> str | None:
        """shelltext.find_text; where a machine outgrew its limit on subsets made by earlier
        questions, the question again on fresh machines (shelltext.Outgrown)."""
        p = self._partition()
        try:
            return shelltext.find_text(p, stage, pipe or (), **how)
        except shelltext.Outgrown:
            for m in (*stage, *(pipe or ())):
                if isinstance(m, shelltext.Texts):
                    m.reset()
            return shelltext.find_text(p, stage, pipe or (), **how)

    def _own_text(self, a: Region, b: Region, shadows: bool, plain: bool) -> str | None:
        """A unit text both rules' conditions hold on (None: there is none)."""
        machines = self._conditions(a, shadows, plain) + self._conditions(b, shadows, plain)
        return self._find_text(machines, budget=_budget(plain))

    def _own_words(self, other: Region, deny: Region, plain: bool) -> str | None:
        """A unit of `other` whose words `deny`'s regexes find (as a command: its words
        quoted, or a text of `other`'s regexes), if `deny`'s other conditions allow it."""
        deny_text = [shelltext.any_of(u) for u in deny.langs.get("command") or ()]
        extra = [shelltext.OfDFA(self._argv_words(deny, " "))] if deny.argv is not None else []
        if other.argv is not None:
            first = shelltext.OfDFA(self._argv_words(other, " "))
            got = self._find_text([first, *extra, *deny_text], budget=_budget(plain))
            return None if got is None else " ".join(shlex.quote(w) for w in got.split(" "))
        # a text `other`'s regexes find whose words `deny`'s find
        own = [shelltext.any_of(u) for u in other.langs.get("command") or ()]
        (deny_union,) = deny.langs.get("command") or ((),)
        for d in deny_union:
            machines = [self._texts_of_words(d, plain), *own]
            got = self._find_text(machines, budget=_budget(plain))
            if got is not None:
                return got
        return None

    def _pipeline(self, other: Region, deny: Region, shadows: bool, plain: bool) -> str | None:
        """A plain pipeline whose every stage `other` matches and whose text `deny`'s
        regexes find; NOT_MODELLED when `deny` has conditions that hold unit by unit."""
        if any(getattr(deny.rule, c) is not None for c in _UNIT_CONDITIONS):
            return shelltext.NOT_MODELLED
        pipe = [shelltext.any_of(u) for u in deny.langs.get("command") or ()]
        stage = self._conditions(other, shadows, plain)
        return self._find_text(
            stage, pipe, pipeline=True, compound=not plain, budget=_budget(plain)
        )

    def _spelling(self, plain: bool, shadows: bool = False) -> shelltext.Spelling:
        key = ("spelling", plain, shadows)
        if key not in self._memo:
            partition = self.regions.kinds["command"].partition
            assert partition is not None
            self._memo[key] = shelltext.spelling(partition, plain, shadows)
        return self._memo[key]  # type: ignore[return-value]

    # --- overlap ------------------------------------------------------------------------------

    def disjoint(self, a: Region, b: Region) -> str | None:
        """A kind that proves no unit matches both rules, or None if they may overlap."""
        if self.common("tools", a.tools, b.tools) is None:
            return "tools"
        if a.modes is not None and b.modes is not None and not a.modes & b.modes:
            return "modes"
        for kind in ("opaque", "wrapper"):
            x, y = getattr(a, kind), getattr(b, kind)
            if x is not None and y is not None and x != y:
                return kind
        for x, y in ((a, b), (b, a)):
            # a wrapper unit's program is one the shell parser unwraps
            if (
                x.wrapper is True
                and y.argv is not None
                and self.argv_meet(y.argv, _WRAPPERS) is None
            ):
                return "wrapper"
        if a.argv is not None and b.argv is not None and self.argv_example(a, b) is None:
            return "argv"
        for kind in ("flags", "command"):
            if kind == "command" and (a.deny_subjects or b.deny_subjects):
                continue
            if not (a.has(kind) and b.has(kind)):
                continue  # (no automaton built for a question that cannot be asked)
            la, lb = a.langs.get(kind), b.langs.get(kind)
            if la is not None and lb is not None and self.common(kind, la, lb) is None:
                return kind
        for key in set(a.input) & set(b.input):
            if self.common("input", a.input[key], b.input[key]) is None:
                return "input"
        return None


@dataclass(frozen=True)
class TextAnswer:
    """Whether two rules can meet on a command's text (shelltext.py). `apart`: proved they
    never do, on a unit's own text and words nor on a plain pipeline of the looser rule's
    units; otherwise `examples`, commands from the overlap the transducer says the parser
    reads that way (to be checked by the evaluator), possibly none."""

    apart: bool
    examples: Callable[[], Iterator[str]] = lambda: iter(())


# Conditions of a deny rule that hold or fail unit by unit (besides its regexes): with one,
# its regexes meeting a pipeline's text do not make it match every stage.
_UNIT_CONDITIONS = ("argv", "flags", "paths", "path_patterns", "hosts", "env", "fed_by", "opaque",
                    "wrapper", "input")  # fmt: skip


# Product states a search for an example may visit (a question that decides: many more).
_EXAMPLE_BUDGET = 4000


def _budget(plain: bool) -> int:
    return _EXAMPLE_BUDGET if plain else shelltext.QUESTION_BUDGET


def _names_programs(r: Region) -> bool:
    """Does every argv alternative of the rule name its program by a literal name (which
    a unit's program, when run by a path that is not a system directory, never is)?"""
    assert r.argv is not None
    return all(
        isinstance(tok := alt.tokens[0], WordSet)
        and all(patterns.is_literal(g) and "/" not in g for g in tok.globs)
        for alt in r.argv.alts
    )


def _choices(unions: list[tuple[DFA, ...]], limit: int = 256):
    """One alternative from each union, in every combination (at most `limit`)."""
    combos: list[tuple[DFA, ...]] = [()]
    for u in unions:
        combos = [(*c, d) for c in combos for d in u][:limit]
    return combos


def _ids(lang: Lang) -> tuple:
    return tuple(tuple(map(id, u)) for u in lang)


def _condition_absent(kind: str, r) -> bool:
    attr = {"command": "command_patterns", "path_regex": "path_patterns"}.get(kind, kind)
    return getattr(r, attr) is None


def _same_paths(a, b) -> bool:
    return a.model_dump(exclude={"span"}) == b.model_dump(exclude={"span"})
