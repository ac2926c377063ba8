"""Multi-pattern matchers: many regexes, one pass (google-re2 `Set`, stdlib `re` fallback)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

try:  # google-re2 is a dependency; the fallback keeps an odd platform working.
    import re2 as _re2
except ImportError:  # pragma: no cover - exercised by the use_re2=False tests
    _re2 = None

# Syntax RE2 does not have (lookarounds, backreferences, atomic groups, \Z): such a pattern is
# matched with `re` on its own, never dropped.
# Also constructs both accept but read differently: POSIX classes (`re` sees a set of
# characters), `{,n}` and `{0n}` (literal text to `re`), `\B` (differs at an empty string).
_RE2_UNSUPPORTED = re.compile(
    r"\(\?<?[=!]|\\[1-9]|\(\?P=|\(\?>|\\[ZAG]|\(\?\(|\[\[?:|\{,|\{0\d|\\B"
)
# Where RE2 and `re` read the same regex differently: `\s` (RE2 leaves out \v and \x1c-\x1f),
# `\w`, `\d`, `\b` and case folding beyond ASCII, and `$` (`re` also matches before a final
# newline). A subject free of all of these gets the same answer from both.
_RE2_DIFFERENT = re.compile(r"[\x0b\x1c-\x1f]|\n\Z")


_RE2_SET_MEMORY = 64 << 20  # bytes per set; a larger policy is split over several sets


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
        self._fallback: list[tuple[int, re.Pattern[str]]] = []
        self.size = 0
        groups: dict[bool, list[tuple[int, str]]] = {True: [], False: []}
        for i, (pattern, ignore_case) in enumerate(regexes):
            self.size += 1
            if use_re2 and _re2 is not None and not _RE2_UNSUPPORTED.search(pattern):
                groups[ignore_case].append((i, pattern))
            else:
                self._fallback.append((i, self._re(i)))
        for ignore_case, items in groups.items():
            if items:
                self._build_sets(items, ignore_case)
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

    def hits(self, text: str) -> list[int]:
        """Indices of the patterns that match somewhere in `text` (no order promised)."""
        if not self._re2_sets or (not self._portable and not re2_agrees(text)):
            return [i for i, rx in enumerate(self._all_re) if rx.search(text)]
        try:
            data = text.encode()
        except UnicodeEncodeError:  # lone surrogates: not UTF-8, so not for RE2
            return [i for i, rx in enumerate(self._all_re) if rx.search(text)]
        if self._single is not None:
            match, index = self._single
            found = match(data)
            return [index[k] for k in found] if found else []
        out: list[int] = []
        for match, index in self._re2_sets:
            for k in match(data) or ():
                out.append(index[k])
        for i, rx in self._fallback:
            if rx.search(text):
                out.append(i)
        return out


class MaskMatcher:
    """Patterns owned by rules: `mask(text)` is the bitmask of rules with a matching pattern.

    Results are memoised per text (the answer depends on nothing else), bounded in size.
    """

    def __init__(
        self,
        patterns: list[tuple[str, bool, int]],
        use_re2: bool = True,
        portable: bool = False,
        memo: int = 8192,
    ):
        self._set = MultiPattern(((p, ic) for p, ic, _ in patterns), use_re2, portable)
        self._owner = [1 << rule for _, _, rule in patterns]
        self._memo: dict[str, int] = {}
        self._memo_size = memo

    def mask(self, text: str) -> int:
        m = self._memo.get(text)
        if m is None:
            m = 0
            owner = self._owner
            for k in self._set.hits(text):
                m |= owner[k]
            if len(self._memo) >= self._memo_size:
                self._memo.clear()
            self._memo[text] = m
        return m

    def clear(self) -> None:
        self._memo.clear()
