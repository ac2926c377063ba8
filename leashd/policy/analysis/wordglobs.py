"""Single-word wildcards (`--force*`, `*deploy*`, `-[a-z]`) as tiny automata, walked directly.

An argv token is a set of wildcards over one word. A brace-free wildcard is a line of
elements, each one character from a set or a run of them (`*`); braces make several lines.
Such a line is an automaton whose only nondeterminism is where a run ends, so:

- two lines overlap iff a walk of both in step reaches both ends (a product of positions);
- a line is inside a union of lines iff no walk of the line reaches its end while the
  union, determinised on the fly (a set of positions per line), is outside every end.

This is the question `automata.search_dfa` answers for any regex, at a fraction of the cost
(no assertions to track, no DFA to build first), which matters because a lint asks it for
thousands of token pairs. The lines are read from the same regex the evaluator uses
(`patterns.token_word_regex`), through `automata.parse`, so they mean what the evaluator
means; a wildcard that does not fit the shape raises `Unanalyzable` for the caller to use
the general automata.
"""

from __future__ import annotations

from collections import deque
from functools import lru_cache

from leashd.policy import patterns
from leashd.policy.analysis import automata
from leashd.policy.analysis.automata import Unanalyzable
from leashd.policy.analysis.charsets import Intervals, Partition

# An element: (is_run, characters). A line: a tuple of elements.
Element = tuple[bool, Intervals]
Line = tuple[Element, ...]
_MAX_LINES = 64  # brace expansions one wildcard may make
_MAX_STATES = 20000  # subset states one containment question may visit


@lru_cache(maxsize=16384)
def lines(glob: str, lenient: bool) -> tuple[Line, ...]:
    """The lines of one wildcard on one word."""
    tree = automata.parse(patterns.token_word_regex((glob,), lenient)).tree
    return tuple(tuple(x) for x in _linear(tree))


_SEP_RX = r"\x00"


@lru_cache(maxsize=16384)
def flag_lines(flag: str) -> tuple[Line, ...]:
    """The lines of the words a flag condition finds (see `patterns.flag_regex`).

    A flag's regex is `SEP word SEP` over the encoded argv, with `word` free of SEP: it holds
    for a unit iff one of its words is in that word language. So one set of flags implies
    another iff its word language is inside the other's (a unit of that one word tells them
    apart otherwise), which is a question about lines, not about automata over whole argvs.
    """
    rx = patterns.flag_regex(flag)
    if rx is None or not (rx.startswith(_SEP_RX) and rx.endswith(_SEP_RX)):
        raise Unanalyzable("a flag wildcard that can also match inside `--name=value`")
    word = rx[len(_SEP_RX) : -len(_SEP_RX)]
    tree = automata.parse("^(?:" + word + r")\Z").tree
    return tuple(tuple(x) for x in _linear(tree))


def _linear(node: tuple) -> list[list[Element]]:
    kind = node[0]
    if kind == "set":
        return [[(False, node[1])]]
    if kind == "rep" and node[1] == 0 and node[2] is None and node[3][0] == "set":
        return [[(True, node[3][1])]]
    if kind == "at" and node[1] in ("bos", "eos"):
        return [[]]  # the anchors the full-match regex is wrapped in
    if kind == "cat":
        out: list[list[Element]] = [[]]
        for item in node[1]:
            out = [a + b for a in out for b in _linear(item)]
            if len(out) > _MAX_LINES:
                raise Unanalyzable("too many brace expansions")
        return out
    if kind == "alt":
        return [x for item in node[1] for x in _linear(item)]
    raise Unanalyzable(f"not a simple wildcard: {kind}")


def _closure(line: Line, i: int) -> list[int]:
    out = [i]
    while i < len(line) and line[i][0]:
        i += 1
        out.append(i)
    return out


def _moves(line: Line, i: int) -> list[tuple[Intervals, int]]:
    out = []
    for k in _closure(line, i):
        if k < len(line):
            is_run, chars = line[k]
            out.append((chars, k if is_run else k + 1))
    return out


def _ends(line: Line, i: int) -> bool:
    return _closure(line, i)[-1] == len(line)


def common(a: Line, b: Line) -> str | None:
    """A shortest word both lines accept, or None."""
    parent: dict[tuple[int, int], tuple[tuple[int, int], str] | None] = {(0, 0): None}
    queue = deque([(0, 0)])
    while queue:
        cur = queue.popleft()
        if _ends(a, cur[0]) and _ends(b, cur[1]):
            out = []
            node = cur
            while (step := parent[node]) is not None:
                node, ch = step
                out.append(ch)
            return "".join(reversed(out))
        for sa, i2 in _moves(a, cur[0]):
            for sb, k2 in _moves(b, cur[1]):
                if (i2, k2) in parent:
                    continue
                ch = _shared_char(sa, sb)
                if ch is not None:
                    parent[(i2, k2)] = (cur, ch)
                    queue.append((i2, k2))
    return None


def counterexample(a: Line, covers: list[Line]) -> str | None:
    """A word `a` accepts and no line of `covers` does; None: a ⊆ ∪ covers."""
    if a in covers:
        # Also what keeps common cases cheap: a cover of many short-flag lines
        # (`-[A-Za-z0-9]*d[A-Za-z0-9]*`, ...) determinises into a subset per letter seen.
        return None
    partition = Partition([s for line in (a, *covers) for _, s in line], assertions=False)
    masks = {s: partition.mask(s) for line in (a, *covers) for _, s in line}
    start_cover = frozenset((n, p) for n, c in enumerate(covers) for p in _closure(c, 0))
    start = (0, start_cover)
    parent: dict[tuple[int, frozenset], tuple[tuple, int] | None] = {start: None}
    queue = deque([start])
    while queue:
        cur = queue.popleft()
        i, held = cur
        if _ends(a, i) and not any(p == len(covers[n]) for n, p in held):
            classes = []
            node = cur
            while (step := parent[node]) is not None:
                node, c = step
                classes.append(c)
            return partition.text(classes[::-1])
        for chars, i2 in _moves(a, i):
            m = masks[chars]
            for c in range(partition.size):
                if not (m >> c) & 1:
                    continue
                nxt = frozenset(
                    (n, q)
                    for n, p in held
                    for s, p2 in _moves(covers[n], p)
                    if (masks[s] >> c) & 1
                    for q in _closure(covers[n], p2)
                )
                state = (i2, nxt)
                if state not in parent:
                    parent[state] = (cur, c)
                    queue.append(state)
                    if len(parent) > _MAX_STATES:
                        raise Unanalyzable("the wildcards' containment question is too large")
    return None


def _shared_char(x: Intervals, y: Intervals) -> str | None:
    """A character in both sets, printable ASCII where there is one."""
    best = None
    for lo, hi in x:
        for lo2, hi2 in y:
            a, b = max(lo, lo2), min(hi, hi2)
            if a > b:
                continue
            for cp in (ord("x"), ord("a"), ord("0"), a):
                if a <= cp <= b and (best is None or _nicer(cp, best)):
                    best = cp
                    break
            pr = max(a, 0x21)
            if pr <= min(b, 0x7E) and (best is None or _nicer(pr, best)):
                best = pr
    return None if best is None else chr(best)


def _nicer(cp: int, than: int) -> bool:
    def rank(c: int) -> int:
        return 0 if chr(c).isalnum() and c < 0x80 else 1 if 0x21 <= c <= 0x7E else 2

    return rank(cp) < rank(than)
