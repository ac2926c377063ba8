"""Sets of characters as sorted code-point intervals, and the alphabet they partition.

The automata of the analysis do not run on characters but on classes of characters: two
characters are in the same class when no character set of any pattern in the comparison
tells them apart. A policy's patterns name a few dozen characters and a handful of
categories (`\\w`, `\\d`, `\\s`), so a few dozen classes stand for all of Unicode, each with a
representative character that example strings are written with.

Character semantics follow the stdlib `re` exactly (the engine the reference interpreter
uses): its Unicode categories and its case folding (`lower()` of both sides, plus the extra
cases of `re._casefix`).
"""

from __future__ import annotations

import _sre  # type: ignore[import-not-found]
import array
import re
import sys
from functools import cache
from re import _casefix  # type: ignore[attr-defined]

MAX_CP = 0x10FFFF
Intervals = tuple[tuple[int, int], ...]
EMPTY: Intervals = ()
ALL: Intervals = ((0, MAX_CP),)
NEWLINE: Intervals = ((10, 10),)


def normalize(items: list[tuple[int, int]]) -> Intervals:
    """Sorted, merged, non-overlapping intervals."""
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(items):
        if out and lo <= out[-1][1] + 1:
            if hi > out[-1][1]:
                out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return tuple(out)


def union(*sets: Intervals) -> Intervals:
    return normalize([iv for s in sets for iv in s])


def complement(s: Intervals) -> Intervals:
    out: list[tuple[int, int]] = []
    nxt = 0
    for lo, hi in s:
        if lo > nxt:
            out.append((nxt, lo - 1))
        nxt = hi + 1
    if nxt <= MAX_CP:
        out.append((nxt, MAX_CP))
    return tuple(out)


def size(s: Intervals) -> int:
    return sum(hi - lo + 1 for lo, hi in s)


@cache
def _all_chars() -> str:
    # every code point, surrogates included, decoded from UTF-32 at C speed (a join of
    # chr() takes four times as long, paid by every lint)
    codec = "utf-32-le" if sys.byteorder == "little" else "utf-32-be"
    return array.array("I", range(MAX_CP + 1)).tobytes().decode(codec, "surrogatepass")


@cache
def category(name: str, ascii_only: bool) -> Intervals:
    """`re`'s `\\d`, `\\w`, `\\s` (and their negations) as intervals."""
    negate = name.startswith("not_")
    base = name.removeprefix("not_")
    regex = {"digit": r"\d+", "word": r"\w+", "space": r"\s+"}[base]
    found = normalize(
        [
            (m.start(), m.end() - 1)
            for m in re.finditer(regex, _all_chars()[:128] if ascii_only else _all_chars())
        ]
    )
    return complement(found) if negate else found


def word_chars(ascii_only: bool = False) -> Intervals:
    return category("word", ascii_only)


@cache
def _uppers_of() -> dict[int, tuple[int, ...]]:
    """For each lower-case code point, the others `re` lowers to it."""
    inverse: dict[int, list[int]] = {}
    lower = _sre.unicode_tolower
    text = _all_chars()
    for base in range(0, MAX_CP + 1, 256):
        # Only blocks with cased characters are looked at one by one: a character `re`
        # lowers to another is one `str.lower` changes (the full lower-case mapping
        # differs from the character wherever the simple one does).
        block = text[base : base + 256]
        if block.lower() == block:
            continue
        for cp in range(base, base + len(block)):
            low = lower(cp)
            if low != cp:
                inverse.setdefault(low, []).append(cp)
    return {k: tuple(v) for k, v in inverse.items()}


# Beyond this many code points a case-insensitive range is taken as it is: it already holds
# the case variants of its members (enumerating them would take longer than the lint).
_FOLD_LIMIT = 0x30000


def fold(s: Intervals, ascii_only: bool = False) -> Intervals:
    """The characters a case-insensitive `re` set built from `s` matches."""
    if not s:
        return s
    if ascii_only:
        extra = []
        for lo, hi in s:
            for cp in range(max(lo, 0x41), min(hi, 0x7A) + 1):
                ch = chr(cp)
                if ch.isalpha():
                    extra.append((ord(ch.lower()), ord(ch.lower())))
                    extra.append((ord(ch.upper()), ord(ch.upper())))
        return union(s, tuple(extra))
    if size(s) > _FOLD_LIMIT:
        return s  # such a range already holds the case variants of what it names
    lower = _sre.unicode_tolower
    lowers: set[int] = set()
    for lo, hi in s:
        for cp in range(lo, hi + 1):
            low = lower(cp)
            lowers.add(low)
            lowers.update(_casefix._EXTRA_CASES.get(low, ()))
    uppers = _uppers_of()
    out = set(lowers)
    for low in lowers:
        out.update(uppers.get(low, ()))
    return normalize([(cp, cp) for cp in out])


# How readable a character is in an example, best first: ASCII letters and digits, the
# space, other printable ASCII, then everything else; by code point within each.
_TIERS: tuple[Intervals, ...] = (
    ((0x30, 0x39), (0x41, 0x5A), (0x61, 0x7A)),
    ((0x20, 0x20),),
    ((0x21, 0x2F), (0x3A, 0x40), (0x5B, 0x60), (0x7B, 0x7E)),
)


def _best(lo: int, hi: int) -> tuple[int, int]:
    """The most readable code point of [lo, hi], as (tier, code point), which orders them."""
    for tier, ranges in enumerate(_TIERS):
        for a, b in ranges:
            if lo <= b and hi >= a:
                return tier, max(lo, a)
    return len(_TIERS), lo


class Partition:
    """The coarsest classes of characters that no set of `sets` tells apart.

    Every class has a representative (a printable ASCII character when the class has one)
    and knows whether its characters are word characters and whether it is the newline,
    which the zero-width assertions (`\\b`, `$`, `^` in multiline mode) depend on.
    """

    def __init__(self, sets: list[Intervals], ascii_words: bool = False, assertions: bool = True):
        """`assertions=False`: for questions without zero-width assertions (wordglobs),
        which need not tell word characters and the newline apart, and are asked so often
        that splitting on the Unicode word characters would cost most of their time."""
        words = word_chars(ascii_words) if assertions else ()
        sets = [words, NEWLINE if assertions else (), *sets]
        events: dict[int, list[tuple[int, int]]] = {}  # code point -> [(set index, +1/-1)]
        for k, s in enumerate(sets):
            for lo, hi in s:
                events.setdefault(lo, []).append((k, 1))
                events.setdefault(hi + 1, []).append((k, -1))
        points = sorted(p for p in events if p <= MAX_CP)
        if not points or points[0] != 0:
            points.insert(0, 0)
        active: set[int] = set()
        by_signature: dict[frozenset[int], int] = {}
        self.segments: list[tuple[int, int, int]] = []  # (lo, hi, class)
        reps: list[tuple[int, int]] = []  # per class, its most readable character (_best)
        for n, p in enumerate(points):
            for k, delta in events.get(p, ()):
                if delta > 0:
                    active.add(k)
                else:
                    active.discard(k)
            hi = points[n + 1] - 1 if n + 1 < len(points) else MAX_CP
            sig = frozenset(active)
            cls = by_signature.get(sig)
            if cls is None:
                cls = by_signature[sig] = len(reps)
                reps.append(_best(p, hi))
            else:
                reps[cls] = min(reps[cls], _best(p, hi))
            self.segments.append((p, hi, cls))
        self.size = len(reps)
        # Each class is written with its most readable character, and the classes are tried
        # most readable first. Both depend only on the characters of a class, never on how
        # finely the other patterns of the policy cut the alphabet: a class cut in two keeps
        # its best character in one part, which comes first. So the example a question
        # finds is the same in any policy the two rules are part of (the lint's pair cache,
        # pairs.py, relies on that).
        self.representative = [chr(cp) for _tier, cp in reps]
        self.readable_order = sorted(range(self.size), key=reps.__getitem__)
        members: list[int] = [0] * len(sets)
        for sig, cls in by_signature.items():
            for k in sig:
                members[k] |= 1 << cls
        self._masks = {s: members[k] for k, s in enumerate(sets)}
        self.word_mask = members[0]
        self.newline_class = next((c for sig, c in by_signature.items() if 1 in sig), -1)
        self.all_mask = (1 << self.size) - 1

    def mask(self, s: Intervals) -> int:
        """The classes `s` is made of (`s` must be one of the sets the partition was built
        from, or a union of its classes)."""
        m = self._masks.get(s)
        if m is not None:
            return m
        m = 0
        for lo, hi, cls in self.segments:
            if any(a <= lo and hi <= b for a, b in s):
                m |= 1 << cls
        self._masks[s] = m
        return m

    def class_of(self, ch: str) -> int:
        cp = ord(ch)
        for lo, hi, cls in self.segments:
            if lo <= cp <= hi:
                return cls
        raise ValueError(ch)  # pragma: no cover - the segments cover every code point

    def text(self, classes: list[int]) -> str:
        return "".join(self.representative[c] for c in classes)
