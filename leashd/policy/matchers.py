"""Multi-pattern matchers: many regexes, one pass (google-re2 `Set`, stdlib `re` fallback)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from leashd import limits

try:  # google-re2 is a dependency; the fallback keeps an odd platform working.
    import re2 as _re2
except ImportError:  # pragma: no cover - exercised by the use_re2=False tests
    _re2 = None

# Syntax RE2 does not have (lookarounds, backreferences, atomic groups, conditionals, \Z,
# \A, \G): such a pattern is matched with `re` on its own, never dropped. Also constructs
# both accept but read differently: POSIX classes and a `[` inside a class (`re` sees a set of
# characters), `{,n}` and `{0n}` (literal text to `re`), `\B` (differs at an empty string).
_RE_ONLY_OUTSIDE_CLASSES = re.compile(r"\(\?<?[=!]|\(\?P=|\(\?>|\(\?\(|\{,|\{0\d")
_RE_ONLY_ESCAPES = frozenset("123456789ZAGB")


def needs_re(pattern: str) -> bool:
    """Whether only `re` can run `pattern` as `re` reads it: RE2 lacks its syntax, or reads
    it differently. Character classes are skipped over, so `[{,}]` is not `{,n}`. In doubt,
    True: `re` always gives `re`'s answer."""
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            if i + 1 < n and pattern[i + 1] in _RE_ONLY_ESCAPES:
                return True
            i += 2
        elif c == "[":
            i += 1
            if i < n and pattern[i] == "^":
                i += 1
            if i < n and pattern[i] == "]":  # a `]` first in a class is a member
                i += 1
            while i < n and pattern[i] != "]":
                if pattern[i] == "[":
                    return True
                i += 2 if pattern[i] == "\\" else 1
            i += 1
        elif c in "({" and _RE_ONLY_OUTSIDE_CLASSES.match(pattern, i):  # each starts so
            return True
        else:
            i += 1
    return False


# Where RE2 and `re` read the same regex differently: `\s` (RE2 leaves out \v and \x1c-\x1f),
# `\w`, `\d`, `\b` and case folding beyond ASCII, and `$` (`re` also matches before a final
# newline). A subject free of all of these gets the same answer from both.
_RE2_DIFFERENT = re.compile(r"[\x0b\x1c-\x1f]|\n\Z")


_RE2_SET_MEMORY = 64 << 20  # bytes per set; a larger policy is split over several sets


def _has_surrogates(text: str) -> bool:
    """Lone surrogates: not UTF-8, so not for RE2."""
    if text.isascii():
        return False
    try:
        text.encode()
    except UnicodeEncodeError:
        return True
    return False


def re2_agrees(text: str) -> bool:
    return text.isascii() and _RE2_DIFFERENT.search(text) is None


class MultiPattern:
    """Many regexes, one search: `hits(text)` is the set of indices that match."""

    def __init__(
        self, regexes: Iterable[tuple[str, bool]], use_re2: bool = True, portable: bool = False
    ):
        """`portable`: the regexes mean the same to RE2 and `re` on any subject (leashd
        writes them); otherwise a subject where the engines differ is matched with `re`."""
        regexes = list(regexes)
        self._portable = portable
        self._regexes = regexes
        self._compiled: dict[int, re.Pattern[str]] = {}  # each compiled once, on first need
        self._all: list[re.Pattern[str]] | None = None
        self._re2_sets: list[tuple[Callable[[bytes], list[int]], list[int]]] = []
        self._fallback: list[tuple[int, re.Pattern[str]]] = []  # only `re` can run these
        self.size = 0
        groups: dict[bool, list[tuple[int, str]]] = {True: [], False: []}
        for i, (pattern, ignore_case) in enumerate(regexes):
            self.size += 1
            if use_re2 and _re2 is not None and not needs_re(pattern):
                groups[ignore_case].append((i, pattern))
            else:
                self._fallback.append((i, self._re(i)))
        for ignore_case, items in groups.items():
            if items:
                self._build_sets(items, ignore_case)
        self._slow_indices = frozenset(i for i, _ in self._fallback)
        # One RE2 set and no fallback is the common case: skip the general loop for it.
        self._single = (
            self._re2_sets[0] if len(self._re2_sets) == 1 and not self._fallback else None
        )

    def _build_sets(self, items: list[tuple[int, str]], ignore_case: bool) -> None:
        """One RE2 set for `items`, or several when one would exceed RE2's memory budget."""
        options = _re2.Options()
        options.case_sensitive = not ignore_case
        options.never_nl = False
        options.dot_nl = False
        options.max_mem = _RE2_SET_MEMORY
        s = _re2.Set.SearchSet(options)
        index: list[int] = []
        for i, pattern in items:
            try:
                s.Add(pattern)  # ids are dense, in the order added
                index.append(i)
            except Exception:
                self._fallback.append((i, self._re(i)))
        if not index:
            return
        try:
            s.Compile()
        except Exception:
            if len(items) == 1:
                self._fallback.append((items[0][0], self._re(items[0][0])))
                return
            half = len(items) // 2
            self._build_sets(items[:half], ignore_case)
            self._build_sets(items[half:], ignore_case)
            return
        # The binding's own object: its Python wrapper adds two calls per match.
        self._re2_sets.append((s._set.Match, index))

    def _re(self, i: int) -> re.Pattern[str]:
        hit = self._compiled.get(i)
        if hit is None:
            pattern, ignore_case = self._regexes[i]
            hit = self._compiled[i] = re.compile(pattern, re.I if ignore_case else 0)
        return hit

    @property
    def _all_re(self) -> list[re.Pattern[str]]:
        """Every pattern for `re`, compiled on first need: most policies never need them
        (RE2 answers), and compiling them all up front was most of the compile time."""
        if self._all is None:
            self._all = [self._re(i) for i in range(len(self._regexes))]
        return self._all

    def re2_reads(self, text: str) -> bool:
        """Whether RE2 answers for `re` on `text` (else every pattern is `re`'s to run)."""
        if not self._re2_sets:
            return not self._fallback  # no pattern at all, or only `re`'s (handled apart)
        return (self._portable or re2_agrees(text)) and not _has_surrogates(text)

    def search_one(self, i: int, text: str) -> bool:
        return self._re(i).search(text) is not None

    def hits(self, text: str, linear_only: bool = False) -> list[int]:
        """Indices of the patterns that match somewhere in `text` (no order promised).

        `linear_only`: leave out the patterns only `re` can run (see `MaskMatcher`); the
        others are still run by `re` where the engines read `text` differently."""
        if not self._re2_sets or (not self._portable and not re2_agrees(text)):
            return self._by_re(text, linear_only)
        try:
            data = text.encode()
        except UnicodeEncodeError:  # lone surrogates: not UTF-8, so not for RE2
            return self._by_re(text, linear_only)
        if self._single is not None:
            match, index = self._single
            found = match(data)
            return [index[k] for k in found] if found else []
        out: list[int] = []
        for match, index in self._re2_sets:
            for k in match(data) or ():
                out.append(index[k])
        if not linear_only:
            for i, rx in self._fallback:
                if rx.search(text):
                    out.append(i)
        return out

    def _by_re(self, text: str, linear_only: bool) -> list[int]:
        if not linear_only:
            return [i for i, rx in enumerate(self._all_re) if rx.search(text)]
        slow = self._slow_indices
        return [i for i, rx in enumerate(self._all_re) if i not in slow and rx.search(text)]


class MaskMatcher:
    """Patterns owned by rules: `mask(text, need)` is the bitmask of rules with a matching
    pattern, at least for the rules in `need`.

    The patterns RE2 takes run in one linear pass for every rule at once, memoised per text
    (the answer depends on nothing else), bounded in size. The rest need `re`'s backtracking,
    whose time can grow with a power of the text's length (`s(.).*\\1.*\\1`): those run only
    for rules still in `need` — by then the cheaper kinds (programs, flags) have narrowed the
    candidates to the units they concern — and never on a text longer than
    `limits.BACKTRACK_SUBJECT`, where the call is refused instead.
    """

    def __init__(
        self,
        patterns: list[tuple[str, bool, int]],
        use_re2: bool = True,
        portable: bool = False,
        memo: int = 8192,
    ):
        self._set = MultiPattern(((p, ic) for p, ic, _ in patterns), use_re2, portable)
        owner = [1 << rule for _, _, rule in patterns]
        self._owner = owner
        self._backtracking = [(owner[i], i) for i, _ in self._set._fallback]
        self._every = [(bit, i) for i, bit in enumerate(owner)]
        self._all_rules = 0
        for bit in owner:
            self._all_rules |= bit
        self.backtracking_rules = 0  # the rules with a pattern only `re` can run
        for bit, _ in self._backtracking:
            self.backtracking_rules |= bit
        self._memo: dict[str, int] = {}
        self._memo_size = memo
        # per text: (rules whose backtracking patterns were run, the ones that matched)
        self._slow_memo: dict[str, tuple[int, int]] = {}

    def mask(self, text: str, need: int = -1) -> int:
        if not self._set.re2_reads(text):
            # RE2 would read this text differently from `re` (see `re2_agrees`), so every
            # pattern is `re`'s, and `re` is only as fast as its patterns allow.
            return self._slow(text, need, self._all_rules, self._every)
        m = self._memo.get(text)
        if m is None:
            m = 0
            owner = self._owner
            for k in self._set.hits(text, linear_only=True):
                m |= owner[k]
            if len(self._memo) >= self._memo_size:
                self._memo.clear()
            self._memo[text] = m
        if need & self.backtracking_rules:
            m |= self._slow(text, need, self.backtracking_rules, self._backtracking)
        return m

    def _slow(self, text: str, need: int, rules: int, patterns: list[tuple[int, int]]) -> int:
        """`re` for the patterns of the rules in `need` (among `rules`), each run once per
        text, never on more than the bound."""
        checked, hit = self._slow_memo.get(text, (0, 0))
        todo = need & rules & ~checked
        if todo:
            if len(text) > limits.BACKTRACK_SUBJECT:
                raise limits.TooLarge(
                    f"a policy pattern would have to run with Python's backtracking `re` (for "
                    f"its own syntax, or for characters of this text outside ASCII) on "
                    f"{len(text):,} characters (the limit is {limits.BACKTRACK_SUBJECT:,}); "
                    "write large files with the Write tool"
                )
            for bit, i in patterns:
                if todo & bit and not hit & bit and self._set.search_one(i, text):
                    hit |= bit
            checked |= todo
            if len(self._slow_memo) >= self._memo_size:
                self._slow_memo.clear()
            self._slow_memo[text] = (checked, hit)
        return hit

    def clear(self) -> None:
        self._memo.clear()
        self._slow_memo.clear()
