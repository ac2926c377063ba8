"""Argv prefix patterns compared token by token, grouped by program.

An argv pattern is a small automaton over *words*: each token is a set of words (a step),
`**` is a loop over any word, `$` is the end, and after the last token any words follow
(a prefix). Two patterns are compared on those word automata directly:

- overlap: a walk of both in step, where a joint step needs a word in both tokens;
- containment: a simulation (every step of one is answered by a step of the other with a
  token that contains it), which is sound: a pattern it says is contained really is.

The questions about single words ("is every word this token accepts also accepted by that
one?", "a word both accept") are answered once each (memoised): literal words by matching,
wildcards on their own small automata (wordglobs.py). Rules
are indexed by program name, so only alternatives for the same program are ever compared
(DESIGN.md: "compare per argv token, grouped by program").
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from functools import cached_property

from leashd.policy import patterns
from leashd.policy.analysis import wordglobs
from leashd.policy.analysis.automata import Unanalyzable
from leashd.policy.ir import Rule

ANY = ("*",)


@dataclass(frozen=True)
class WordSet:
    """One token: the words matching any of `globs` (`lenient`: as a rule that asks)."""

    globs: tuple[str, ...]
    lenient: bool = False

    # Computed once per token (cached in the instance; the fields stay frozen): the
    # lint asks them for thousands of token pairs.
    @cached_property
    def universal(self) -> bool:
        return "*" in self.globs or "**" in self.globs

    @cached_property
    def _literals(self) -> tuple[str, ...]:
        return tuple(g for g in self.globs if patterns.is_literal(g))

    def literals(self) -> tuple[str, ...]:
        return self._literals

    @cached_property
    def _wildcards(self) -> tuple[str, ...]:
        return tuple(g for g in self.globs if not patterns.is_literal(g))

    def wildcards(self) -> tuple[str, ...]:
        return self._wildcards

    def has(self, word: str) -> bool:
        """Does a known (not run-time) word match?"""
        return self.universal or patterns.any_wildcard(self.globs, word)


EVERY_WORD = WordSet(ANY)


@dataclass(frozen=True)
class Alt:
    """One argv alternative as a word automaton over positions 0..n (n: the free tail)."""

    tokens: tuple[WordSet | str, ...]  # a WordSet, or "**" / "$"

    @classmethod
    def of(cls, tokens: tuple[tuple[str, ...], ...], lenient: bool) -> Alt:
        out: list[WordSet | str] = []
        for ti, alts in enumerate(tokens):
            if alts in (("**",), ("$",)):
                out.append(alts[0])
            else:
                # the first token names the program: never lenient (see patterns.argv_matches)
                out.append(WordSet(alts, lenient and ti > 0))
        return cls(tuple(out))

    def closure(self, i: int) -> list[int]:
        """Positions reachable from i without reading a word (through `**`)."""
        out = [i]
        while i < len(self.tokens) and self.tokens[i] == "**":
            i += 1
            out.append(i)
        return out

    @cached_property
    def _accepts(self) -> tuple[bool, ...]:
        n = len(self.tokens)
        # `$` ends argv: it accepts only when every token after it can match nothing more
        # (`**`, `$`), as in patterns.argv_matches; `git $ push` matches nothing at all.
        rest_empty = [all(t in ("**", "$") for t in self.tokens[k + 1 :]) for k in range(n)]
        return tuple(
            any(k == n or (self.tokens[k] == "$" and rest_empty[k]) for k in self.closure(i))
            for i in range(n + 1)
        )

    def accepts_here(self, i: int) -> bool:
        """May argv end at position i?"""
        return self._accepts[i]

    @cached_property
    def _moves(self) -> tuple[list[tuple[WordSet, int]], ...]:
        return tuple(self._moves_at(i) for i in range(len(self.tokens) + 1))

    def moves(self, i: int) -> list[tuple[WordSet, int]]:
        return self._moves[i]

    def _moves_at(self, i: int) -> list[tuple[WordSet, int]]:
        out: list[tuple[WordSet, int]] = []
        for k in self.closure(i):
            if k == len(self.tokens) or self.tokens[k] == "**":
                out.append((EVERY_WORD, k))  # the free tail, or a `**` loop
            elif self.tokens[k] != "$":
                tok = self.tokens[k]
                assert isinstance(tok, WordSet)
                out.append((tok, k + 1))
        return out

    def per_program(self) -> list[Alt]:
        """This alternative split by the literal programs of its first token (`a|b X` is
        `a X` and `b X`): a rule often lists programs that differ in what else applies."""
        progs = self.programs()
        if progs is None or len(progs) < 2:
            return [self]
        first = self.tokens[0]
        assert isinstance(first, WordSet)
        return [Alt((WordSet((p,), first.lenient), *self.tokens[1:])) for p in progs]

    def programs(self) -> tuple[str, ...] | None:
        """The literal program names it can apply to; None: a wildcard program."""
        first = self.tokens[0] if self.tokens else "**"
        if not isinstance(first, WordSet) or first.wildcards() or first.universal:
            return None
        return tuple(first.globs)


@dataclass
class ArgvLang:
    """One rule's argv condition: its alternatives, indexed by program name."""

    alts: tuple[Alt, ...]
    by_program: dict[str, list[Alt]] = field(default_factory=dict)
    wild: list[Alt] = field(default_factory=list)  # alternatives with a wildcard program

    @classmethod
    def of(cls, rule: Rule) -> ArgvLang:
        assert rule.argv is not None
        lenient = rule.action == "require_approval"
        return cls.of_patterns(tuple(p.tokens for p in rule.argv), lenient)

    @classmethod
    def of_patterns(cls, pats: tuple[tuple[tuple[str, ...], ...], ...], lenient: bool) -> ArgvLang:
        alts = tuple(dict.fromkeys(Alt.of(tokens, lenient) for tokens in pats))
        lang = cls(alts)
        for a in alts:
            progs = a.programs()
            if progs is None:
                lang.wild.append(a)
            else:
                for p in progs:
                    lang.by_program.setdefault(p, []).append(a)
        return lang

    def facing(self, a: Alt) -> list[Alt]:
        """This rule's alternatives that may apply to a program `a` applies to."""
        progs = a.programs()
        if progs is None:
            return list(self.alts)
        out = list(self.wild)
        for p in progs:
            out.extend(x for x in self.by_program.get(p, ()) if x not in out)
        return out


class Words:
    """Questions about argv patterns, memoised."""

    def __init__(self) -> None:
        self._contains: dict[tuple[WordSet, WordSet], bool] = {}
        self._common: dict[tuple[WordSet, WordSet], str | None] = {}
        self._sim: dict[tuple[Alt, Alt], bool] = {}
        self._meet: dict[tuple[Alt, Alt], list[str] | None] = {}

    # --- single words -------------------------------------------------------------------

    def contains(self, s: WordSet, t: WordSet) -> bool:
        """Is every word `s` accepts accepted by `t`? (Unanalyzable: not proved.)"""
        if t.universal or s == t:
            return True
        if s.universal:
            return False
        key = (s, t)
        hit = self._contains.get(key)
        if hit is None:
            hit = all(t.has(w) for w in s.literals())
            wild = s.wildcards()
            if hit and wild:
                try:
                    covers = [x for g in t.globs for x in wordglobs.lines(g, t.lenient)]
                    hit = all(
                        wordglobs.counterexample(x, covers) is None
                        for g in wild
                        for x in wordglobs.lines(g, s.lenient)
                    )
                except Unanalyzable:
                    hit = False
            self._contains[key] = hit
        return hit

    def common(self, s: WordSet, t: WordSet) -> str | None:
        """A word both accept (a readable one where it can), or None if there is none."""
        key = (s, t)
        if key in self._common:
            return self._common[key]
        got = self._common_word(s, t)
        self._common[key] = self._common[(t, s)] = got
        return got

    def _common_word(self, s: WordSet, t: WordSet) -> str | None:
        if s.universal and t.universal:
            return "x"
        for x, y in ((s, t), (t, s)):
            for w in x.literals():
                if y.has(w):
                    return w
        if s.universal or t.universal:
            one = t if s.universal else s
            x_lines = [wordglobs.lines(g, one.lenient) for g in one.wildcards()]
            y_lines = [[_ANY_LINE]]
        else:
            x_lines = [wordglobs.lines(g, s.lenient) for g in s.wildcards()]
            y_lines = [wordglobs.lines(g, t.lenient) for g in t.wildcards()]
        found = [
            w
            for xs in x_lines
            for ys in y_lines
            for x in xs
            for y in ys
            if (w := wordglobs.common(x, y)) is not None
        ]
        return min(found, key=lambda w: (len(w), w), default=None)

    # --- alternatives ---------------------------------------------------------------------

    def simulates(self, a: Alt, b: Alt) -> bool:
        """Is every argv `a` matches matched by `b`? True only when proved."""
        key = (a, b)
        hit = self._sim.get(key)
        if hit is None:
            hit = self._sim[key] = self._simulation(a, b)
        return hit

    def _simulation(self, a: Alt, b: Alt) -> bool:
        # The greatest relation where b's position answers every step of a's position with a
        # step into a related pair; it implies containment.
        na, nb = len(a.tokens) + 1, len(b.tokens) + 1
        rel = {
            (i, k)
            for i in range(na)
            for k in range(nb)
            if not a.accepts_here(i) or b.accepts_here(k)
        }
        changed = True
        while changed:
            changed = False
            for i, k in list(rel):
                for s, i2 in a.moves(i):
                    if not any((i2, k2) in rel and self.contains(s, t) for t, k2 in b.moves(k)):
                        rel.discard((i, k))
                        changed = True
                        break
        return (0, 0) in rel

    def meet(self, a: Alt, b: Alt) -> list[str] | None:
        """The shortest argv both match, as words (`[]`: a unit with no command, only
        assignments, which `$` alone matches); None: they are disjoint."""
        key = (a, b)
        if key not in self._meet:
            self._meet[key] = self._walk(a, b)
        return self._meet[key]

    def _walk(self, a: Alt, b: Alt) -> list[str] | None:
        parent: dict[tuple[int, int], tuple[tuple[int, int], str] | None] = {(0, 0): None}
        queue = deque([(0, 0)])
        while queue:
            cur = queue.popleft()
            if a.accepts_here(cur[0]) and b.accepts_here(cur[1]):
                words = []
                node = cur
                while (step := parent[node]) is not None:
                    node, w = step
                    words.append(w)
                return words[::-1]
            for s, i2 in a.moves(cur[0]):
                for t, k2 in b.moves(cur[1]):
                    if (i2, k2) in parent:
                        continue
                    w = self.common(s, t)
                    if w is not None:
                        parent[(i2, k2)] = (cur, w)
                        queue.append((i2, k2))
        return None

    # --- rules ------------------------------------------------------------------------------

    def contained(self, j: ArgvLang, covers: list[ArgvLang]) -> bool:
        """Is every argv j matches matched by one of `covers`? Alternative by alternative:
        each of j's alternatives, split on its literal words (`git push|fetch` is `git push`
        and `git fetch`), must be contained in one alternative of some cover."""
        return all(
            any(self.simulates(e, b) for c in covers for b in c.facing(e))
            for a in j.alts
            for e in _split(a)
        )

    def example(self, x: ArgvLang, y: ArgvLang) -> list[str] | None:
        """An argv both rules match (as words), or None: no argv matches both. Raises
        `Unanalyzable` for a wildcard too large to walk (Relations.argv_meet catches it)."""
        for a in x.alts:
            for b in y.facing(a):
                got = self.meet(a, b)
                if got is not None:
                    return got
        return None


_MAX_SPLIT = 64


def _split(a: Alt) -> list[Alt]:
    """`a` as alternatives with one literal word per token where it has several (exact:
    the union of the parts is `a`), unless that makes more than _MAX_SPLIT."""
    parts: list[tuple[WordSet | str, ...]] = [()]
    for tok in a.tokens:
        if isinstance(tok, WordSet) and not tok.universal and len(tok.globs) > 1:
            lits, wild = tok.literals(), tok.wildcards()
            options: list[WordSet | str] = [WordSet((w,), tok.lenient) for w in lits]
            if wild:
                options.append(WordSet(wild, tok.lenient))
        else:
            options = [tok]
        parts = [(*p, o) for p in parts for o in options]
        if len(parts) > _MAX_SPLIT:
            return [a]
    return [Alt(p) for p in parts]


_ANY_LINE = ((True, ((0x01, 0x10FFFF),)),)  # any word: a run of anything but SEP
