"""Regexes as automata: the set of subjects a pattern is *found in*, as a DFA.

Every condition of a policy is, in the end, a regex searched in a subject string (argv
prefixes, flags and wildcards are translated to regexes by `patterns.py`; legacy regexes
are regexes). The set of subjects `re.search(pattern, s)` succeeds on is regular as long as
the pattern has no backreference or lookaround, and so containment (`A ⊆ B`: every subject A
is found in, B is found in too) and overlap are decidable on automata.

The pattern is read by the stdlib's own regex parser (`re._parser`), so the automaton means
exactly what `re` means. `interegular` (the library DESIGN.md names) was the first choice; it
rejects `^`, `$` and `\\b`, which most legacy `command_patterns` use, and its product
construction is quadratic in the number of states, too slow for a 500-rule lint. So the
automata are built here: Thompson's construction over the classes of a shared `Partition`,
then a subset construction that also tracks what zero-width assertions demand of the next
character (`\\b`, `\\B`, `^`, `$`, `\\A`, `\\Z`, exact to `re`, including `$` before a final
newline). Lookarounds, backreferences, atomic groups and possessive repeats raise
`Unanalyzable`: the analysis says so instead of guessing.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from re import _constants as C  # type: ignore[attr-defined]
from re import _parser  # type: ignore[attr-defined]

from leashd.policy.analysis import charsets
from leashd.policy.analysis.charsets import Intervals, Partition

_NFA_LIMIT = 20000
_DFA_LIMIT = 1000


class Unanalyzable(Exception):
    """A pattern (or construct) the analysis cannot turn into an automaton."""


# --- the pattern tree -------------------------------------------------------------------------
# ("set", Intervals) | ("cat", [node]) | ("alt", [node]) | ("rep", lo, hi | None, node)
# | ("at", kind)   kinds: bos (\A, ^), bol (^ multiline), eos (\Z), eol ($), eolm ($ multiline),
#                        wb (\b), nwb (\B)

Node = tuple


@dataclass(frozen=True)
class Pattern:
    """A regex read into the tree above: its character sets are known before any automaton
    is built, so one partition can serve every pattern of a comparison."""

    source: str
    tree: Node
    sets: tuple[Intervals, ...]
    ascii_words: bool


def parse(pattern: str, ignore_case: bool = False) -> Pattern:
    try:
        parsed = _parser.parse(pattern, C.SRE_FLAG_IGNORECASE if ignore_case else 0)
    except Exception as exc:  # re.error and its relatives
        raise Unanalyzable(f"not a valid regex: {exc}") from exc
    flags = parsed.state.flags
    if flags & C.SRE_FLAG_LOCALE:
        raise Unanalyzable("locale-dependent matching (re.LOCALE)")
    sets: dict[Intervals, None] = {}
    tree = _convert(list(parsed), flags, sets)
    return Pattern(pattern, tree, tuple(sets), bool(flags & C.SRE_FLAG_ASCII))


def _charset(s: Intervals, flags: int, sets: dict[Intervals, None]) -> Node:
    if flags & C.SRE_FLAG_IGNORECASE:
        s = charsets.fold(s, bool(flags & C.SRE_FLAG_ASCII))
    sets[s] = None
    return ("set", s)


def _category(code: object, ascii_only: bool) -> Intervals:
    names = {
        C.CATEGORY_DIGIT: "digit",
        C.CATEGORY_NOT_DIGIT: "not_digit",
        C.CATEGORY_WORD: "word",
        C.CATEGORY_NOT_WORD: "not_word",
        C.CATEGORY_SPACE: "space",
        C.CATEGORY_NOT_SPACE: "not_space",
    }
    name = names.get(code)
    if name is None:
        raise Unanalyzable(f"character category {code}")
    return charsets.category(name, ascii_only)


def _class_items(items: list, flags: int) -> Intervals:
    ascii_only = bool(flags & C.SRE_FLAG_ASCII)
    negate = False
    parts: list[tuple[int, int]] = []
    categories: list[tuple[int, int]] = []
    for op, arg in items:
        if op is C.NEGATE:
            negate = True
        elif op is C.LITERAL:
            parts.append((arg, arg))
        elif op is C.RANGE:
            parts.append(arg)
        elif op is C.CATEGORY:
            categories.extend(_category(arg, ascii_only))
        else:
            raise Unanalyzable(f"class item {op}")
    s = charsets.normalize(parts)
    if flags & C.SRE_FLAG_IGNORECASE:
        s = charsets.fold(s, ascii_only)
    # `\w`, `\d`, `\s` and their negations already hold every case of their members
    s = charsets.union(s, tuple(categories))
    return charsets.complement(s) if negate else s


def _convert(items: list, flags: int, sets: dict[Intervals, None]) -> Node:
    out: list[Node] = []
    for op, arg in items:
        if op is C.LITERAL:
            out.append(_charset(((arg, arg),), flags, sets))
        elif op is C.NOT_LITERAL:
            s = ((arg, arg),)
            if flags & C.SRE_FLAG_IGNORECASE:
                s = charsets.fold(s, bool(flags & C.SRE_FLAG_ASCII))
            c = charsets.complement(s)
            sets[c] = None
            out.append(("set", c))
        elif op is C.ANY:
            s = charsets.ALL if flags & C.SRE_FLAG_DOTALL else charsets.complement(charsets.NEWLINE)
            sets[s] = None
            out.append(("set", s))
        elif op is C.IN:
            s = _class_items(arg, flags)
            sets[s] = None
            out.append(("set", s))
        elif op is C.BRANCH:
            out.append(("alt", [_convert(list(b), flags, sets) for b in arg[1]]))
        elif op is C.SUBPATTERN:
            _group, add, remove, sub = arg
            out.append(_convert(list(sub), (flags | add) & ~remove, sets))
        elif op in (C.MAX_REPEAT, C.MIN_REPEAT):
            lo, hi, sub = arg
            node = _convert(list(sub), flags, sets)
            out.append(("rep", lo, None if hi is C.MAXREPEAT else hi, node))
        elif op is C.AT:
            multiline = bool(flags & C.SRE_FLAG_MULTILINE)
            kind = {
                C.AT_BEGINNING: "bol" if multiline else "bos",
                C.AT_BEGINNING_STRING: "bos",
                C.AT_END: "eolm" if multiline else "eol",
                C.AT_END_STRING: "eos",
                C.AT_BOUNDARY: "wb",
                C.AT_NON_BOUNDARY: "nwb",
            }.get(arg)
            if kind is None:
                raise Unanalyzable(f"assertion {arg}")
            out.append(("at", kind))
        elif op in (C.ASSERT, C.ASSERT_NOT):
            raise Unanalyzable("a lookahead or lookbehind")
        elif op in (C.GROUPREF, C.GROUPREF_EXISTS):
            raise Unanalyzable("a backreference")
        else:  # ATOMIC_GROUP, POSSESSIVE_REPEAT and anything newer
            raise Unanalyzable(f"the construct {op}")
    return out[0] if len(out) == 1 else ("cat", out)


# --- NFA ------------------------------------------------------------------------------------


class _NFA:
    def __init__(self, partition: Partition):
        self.partition = partition
        self.eps: list[list[int]] = []
        self.moves: list[list[tuple[int, int]]] = []  # (class mask, target)
        self.asserts: list[list[tuple[str, int]]] = []

    def state(self) -> int:
        if len(self.eps) >= _NFA_LIMIT:
            raise Unanalyzable("the pattern's automaton is too large")
        self.eps.append([])
        self.moves.append([])
        self.asserts.append([])
        return len(self.eps) - 1

    def build(self, node: Node) -> tuple[int, int]:
        kind = node[0]
        if kind == "set":
            a, b = self.state(), self.state()
            mask = self.partition.mask(node[1])
            if mask:
                self.moves[a].append((mask, b))
            return a, b
        if kind == "cat":
            a = b = self.state()
            for sub in node[1]:
                s, e = self.build(sub)
                self.eps[b].append(s)
                b = e
            return a, b
        if kind == "alt":
            a, b = self.state(), self.state()
            for sub in node[1]:
                s, e = self.build(sub)
                self.eps[a].append(s)
                self.eps[e].append(b)
            return a, b
        if kind == "rep":
            _, lo, hi, sub = node
            a = b = self.state()
            for _ in range(lo):
                s, e = self.build(sub)
                self.eps[b].append(s)
                b = e
            if hi is None:
                s, e = self.build(sub)
                self.eps[b].append(s)
                self.eps[e].append(s)
                end = self.state()
                self.eps[b].append(end)
                self.eps[e].append(end)
                return a, end
            end = self.state()
            for _ in range(hi - lo):
                self.eps[b].append(end)
                s, e = self.build(sub)
                self.eps[b].append(s)
                b = e
            self.eps[b].append(end)
            return a, end
        if kind == "at":
            a, b = self.state(), self.state()
            self.asserts[a].append((node[1], b))
            return a, b
        raise AssertionError(kind)  # pragma: no cover


# What the previous character was, for assertions.
_START, _WORD, _NEWLINE, _OTHER = 0, 1, 2, 3
# What an assertion demands of what comes next.
_NEXT_WORD = "W"  # a word character
_NEXT_NONWORD = "N"  # a non-word character (not the end)
_NONWORD_OR_END = "n"  # a non-word character or the end
_END = "E"  # the end
_END_OR_FINAL_NL = "F"  # the end, or a newline that is the last character
_END_OR_NL = "L"  # the end or a newline


def _assert(kind: str, prev: int) -> str | bool | None:
    """False: the assertion fails here; None: it holds; else the demand on what follows."""
    if kind == "bos":
        return None if prev == _START else False
    if kind == "bol":
        return None if prev in (_START, _NEWLINE) else False
    if kind == "eos":
        return _END
    if kind == "eol":
        return _END_OR_FINAL_NL
    if kind == "eolm":
        return _END_OR_NL
    if kind == "wb":
        return _NONWORD_OR_END if prev == _WORD else _NEXT_WORD
    if kind == "nwb":
        if prev == _WORD:
            return _NEXT_WORD
        # `re` never finds \B in an empty string: at the start, the end does not count.
        return _NEXT_NONWORD if prev == _START else _NONWORD_OR_END
    raise AssertionError(kind)  # pragma: no cover


def _consume(demands: frozenset[str], is_word: bool, is_newline: bool) -> frozenset[str] | None:
    """The demands left after one more character, None if it breaks one."""
    left = []
    for d in demands:
        if d == _NEXT_WORD:
            if not is_word:
                return None
        elif d in (_NEXT_NONWORD, _NONWORD_OR_END):
            if is_word:
                return None
        elif d == _END:
            return None
        elif d == _END_OR_FINAL_NL:
            if not is_newline:
                return None
            left.append(_END)
        elif d == _END_OR_NL and not is_newline:
            return None
    return frozenset(left)


def _end_ok(demands: frozenset[str]) -> bool:
    return _NEXT_WORD not in demands and _NEXT_NONWORD not in demands


# --- DFA --------------------------------------------------------------------------------------


class DFA:
    """A complete deterministic automaton over a partition's classes, on local groups.

    `group[c]` is the local symbol of class `c` (classes the pattern cannot tell apart share
    one); `delta[state][group]` is the next state, -1 for the dead state.
    """

    __slots__ = ("delta", "finals", "floating", "group", "ngroups", "partition")

    def __init__(
        self,
        partition: Partition,
        group: list[int],
        delta: list[list[int]],
        finals: frozenset[int],
    ):
        self.partition = partition
        self.group = group
        self.ngroups = max(group) + 1 if group else 0
        self.delta = delta
        self.finals = finals
        # A search DFA of a pattern not tied to the start or end of the subject: with s1 and
        # s2 accepted by two such DFAs, s1 + "\n" + s2 is accepted by both (each match keeps
        # its neighbours, or gets a newline for the subject's edge, which \b, \B and the
        # multiline ^ and $ read the same way). So two of them meet iff neither is empty.
        self.floating = False

    def accepts(self, text: str) -> bool:
        state = 0
        for ch in text:
            state = self.delta[state][self.group[self.partition.class_of(ch)]]
            if state < 0:
                return False
        return state in self.finals

    def is_empty(self) -> bool:
        return find(self, [], lambda a, bs: a) is None


def search_dfa(pattern: Pattern, partition: Partition) -> DFA:
    """The DFA of the strings `pattern` is found in (re.search semantics)."""
    nfa = _NFA(partition)
    start = nfa.state()
    nfa.moves[start].append((partition.all_mask, start))  # anything before the match
    s, e = nfa.build(pattern.tree)
    nfa.eps[start].append(s)
    accept = nfa.state()
    nfa.moves[accept].append((partition.all_mask, accept))  # anything after it
    nfa.eps[e].append(accept)
    dfa = _determinize(nfa, start, accept)
    dfa.floating = not _anchored(pattern.tree)
    return dfa


def _anchored(node: Node) -> bool:
    r"""Does the pattern use \A, \Z, or ^ or $ outside multiline mode?"""
    kind = node[0]
    if kind == "at":
        return node[1] in ("bos", "eos", "eol")
    if kind in ("cat", "alt"):
        return any(_anchored(n) for n in node[1])
    if kind == "rep":
        return _anchored(node[3])
    return False


def _groups(nfa: _NFA) -> list[int]:
    """Local symbols: classes no move of the NFA (nor word-ness, nor newline) tells apart."""
    p = nfa.partition
    masks = sorted({m for moves in nfa.moves for m, _ in moves})
    sig_to_group: dict[tuple, int] = {}
    group = []
    for c in range(p.size):
        bit = 1 << c
        sig = (bool(p.word_mask & bit), c == p.newline_class, *(bool(m & bit) for m in masks))
        group.append(sig_to_group.setdefault(sig, len(sig_to_group)))
    return group


def _determinize(nfa: _NFA, start: int, accept: int) -> DFA:
    p = nfa.partition
    group = _groups(nfa)
    ngroups = max(group) + 1
    rep = [0] * ngroups  # a class standing for each group
    for c in range(p.size - 1, -1, -1):
        rep[group[c]] = c
    eps, moves, asserts = nfa.eps, nfa.moves, nfa.asserts
    important = [bool(m) or st == accept for st, m in enumerate(moves)]
    # Per NFA state and local symbol, where a move goes: computed once, not per DFA state.
    by_group: list[list[list[int]] | None] = [
        [[t for mask, t in m if mask >> rep[g] & 1] for g in range(ngroups)] if m else None
        for m in moves
    ]
    group_word = [bool(p.word_mask >> rep[g] & 1) for g in range(ngroups)]
    group_nl = [rep[g] == p.newline_class for g in range(ngroups)]

    memo: dict[tuple[int, frozenset[str], int], frozenset] = {}

    def closure_one(cfg: tuple[int, frozenset[str]], prev: int) -> frozenset:
        key = (cfg[0], cfg[1], prev)
        hit = memo.get(key)
        if hit is not None:
            return hit
        stack = [cfg]
        seen = {cfg}
        while stack:
            st, dem = stack.pop()
            nxt = [(t, dem) for t in eps[st]]
            for kind, t in asserts[st]:
                r = _assert(kind, prev)
                if r is False:
                    continue
                d2 = dem if r is None else dem | {r}
                if _NEXT_WORD in d2 and d2 & {_NONWORD_OR_END, _NEXT_NONWORD, _END}:
                    continue  # contradictory demands: this path is dead
                nxt.append((t, d2))
            for c in nxt:
                if c not in seen:
                    seen.add(c)
                    stack.append(c)
        # Only states that consume (or accept) tell DFA states apart; the rest were passed.
        hit = memo[key] = frozenset(c for c in seen if important[c[0]])
        return hit

    seen_sets: dict[tuple[frozenset, int], frozenset] = {}

    def closure(configs: set[tuple[int, frozenset[str]]], prev: int) -> frozenset:
        # Many (state, symbol) steps reach the same set of configurations: close it once.
        key = (frozenset(configs), prev)
        hit = seen_sets.get(key)
        if hit is None:
            out: set = set()
            for cfg in configs:
                out |= closure_one(cfg, prev)
            hit = seen_sets[key] = frozenset(out)
        return hit

    empty: frozenset[str] = frozenset()
    first = (closure({(start, empty)}, _START), _START)
    index = {first: 0}
    order = [first]
    delta: list[list[int]] = []
    finals = set()
    i = 0
    while i < len(order):
        if order[i] is _ACCEPTED:
            finals.add(i)
            delta.append([i] * ngroups)
            i += 1
            continue
        configs, _prev = order[i]
        if any(st == accept and _end_ok(dem) for st, dem in configs):
            finals.add(i)
        row = []
        for g in range(ngroups):
            is_word, is_nl = group_word[g], group_nl[g]
            nxt: set[tuple[int, frozenset[str]]] = set()
            for st, dem in configs:
                targets = by_group[st]
                if targets is None:
                    continue
                hit = targets[g]
                if not hit:
                    continue
                left = _consume(dem, is_word, is_nl) if dem else empty
                if left is None:
                    continue
                for t in hit:
                    nxt.add((t, left))
            if not nxt:
                row.append(-1)
                continue
            if (accept, empty) in nxt:
                key = _ACCEPTED  # found: whatever follows, the subject matches
            else:
                prev = _WORD if is_word else _NEWLINE if is_nl else _OTHER
                key = (closure(nxt, prev), prev)
            j = index.get(key)
            if j is None:
                if len(order) >= _DFA_LIMIT:
                    raise Unanalyzable("the pattern's automaton is too large")
                j = index[key] = len(order)
                order.append(key)
            row.append(j)
        delta.append(row)
        i += 1
    return _minimize(DFA(p, group, delta, frozenset(finals)))


def _minimize(d: DFA) -> DFA:
    """The same language with equivalent states merged (Moore's partition refinement), so
    the products the questions below walk stay small, and states from which nothing can be
    accepted any more made dead (-1), so the walks stop there."""
    d = _prune(d)
    n = len(d.delta)
    block = [1 if s in d.finals else 0 for s in range(n)]
    count = len(set(block))
    while True:
        sigs: dict[tuple, int] = {}
        # The dead state -1 indexes the sentinel appended last (a block of its own).
        look = [*block, -1].__getitem__
        new = [
            sigs.setdefault((block[s], *map(look, row)), len(sigs)) for s, row in enumerate(d.delta)
        ]
        if len(sigs) == count:
            break
        block, count = new, len(sigs)
    # renumber so the start state is 0
    order = {block[0]: 0}
    for s in range(n):
        order.setdefault(block[s], len(order))
    delta: list[list[int]] = [[] for _ in range(len(order))]
    done = set()
    for s in range(n):
        b = order[block[s]]
        if b in done:
            continue
        done.add(b)
        delta[b] = [order[block[t]] if t >= 0 else -1 for t in d.delta[s]]
    finals = frozenset(order[block[s]] for s in d.finals)
    return DFA(d.partition, d.group, delta, finals)


def _prune(d: DFA) -> DFA:
    n = len(d.delta)
    back: list[list[int]] = [[] for _ in range(n)]
    for s, row in enumerate(d.delta):
        for t in row:
            if t >= 0:
                back[t].append(s)
    live = set(d.finals)
    stack = list(live)
    while stack:
        for s in back[stack.pop()]:
            if s not in live:
                live.add(s)
                stack.append(s)
    delta = [[t if t in live else -1 for t in row] for row in d.delta]
    return DFA(d.partition, d.group, delta, d.finals)


_ACCEPTED = ("accepted",)


# --- questions over several automata ----------------------------------------------------------


_FIND_BUDGET = 50000  # product states one question may visit


def find(a: DFA, others: Sequence[DFA], accept, budget: int | None = None) -> str | None:
    """The shortest string (as representative characters) on which `accept(a_final,
    [other_final, ...])` holds, walking `a` and `others` in step; None if there is none.

    All automata must share one partition. States where `a` is dead are not explored (every
    question asked here needs `a` to accept). A product larger than `budget` states raises
    `Unanalyzable`: the question is left open rather than answered by a guess.
    """
    budget = _FIND_BUDGET if budget is None else budget
    p = a.partition
    autos = [a, *others]
    # The comparison's alphabet: classes that no automaton involved tells apart are one symbol.
    # (each symbol written with its most readable class: `s` rather than `ſ` for `(?i)s`,
    # and tried in that order: see Partition.readable_order)
    symbols: dict[tuple[int, ...], int] = {}
    groups = [m.group for m in autos]
    for c in p.readable_order:
        symbols.setdefault(tuple(g[c] for g in groups), c)
    classes_of = list(symbols.values())
    columns = [[gs[k] for gs in symbols] for k in range(len(autos))]
    dead = (-1,) * len(classes_of)
    # Per automaton and state, the next state on every symbol (built on first visit): a
    # product state's successors are then one zip of its components' rows.
    rows: list[dict[int, tuple[int, ...]]] = [{-1: dead} for _ in autos]

    def row(k: int, s: int) -> tuple[int, ...]:
        r = rows[k].get(s)
        if r is None:
            d = autos[k].delta[s]
            r = rows[k][s] = tuple(d[g] for g in columns[k])
        return r

    start = tuple(0 for _ in autos)
    parent: dict[tuple[int, ...], tuple[tuple[int, ...], int] | None] = {start: None}
    queue = deque([start])
    while queue:
        cur = queue.popleft()
        finals = [s >= 0 and s in m.finals for s, m in zip(cur[1:], others, strict=True)]
        if accept(cur[0] in a.finals, finals):
            classes = []
            node = cur
            while parent[node] is not None:
                node, c = parent[node]  # type: ignore[misc]
                classes.append(c)
            return p.text(classes[::-1])
        for n, nxt in enumerate(zip(*(row(k, s) for k, s in enumerate(cur)), strict=True)):
            if nxt[0] < 0 or nxt in parent:
                continue
            parent[nxt] = (cur, classes_of[n])
            queue.append(nxt)
            if len(parent) > budget:
                raise Unanalyzable("the comparison's automaton is too large")
    return None


def example(a: DFA) -> str | None:
    """A shortest string `a` accepts."""
    return find(a, [], lambda x, _: x)


def counterexample(a: DFA, covers: Sequence[DFA]) -> str | None:
    """A string `a` accepts and none of `covers` does; None means a ⊆ ∪ covers."""
    return find(a, covers, lambda x, ys: x and not any(ys))


def common(a: DFA, b: DFA) -> str | None:
    """A string both accept; None means they are disjoint."""
    return find(a, [b], lambda x, ys: x and ys[0])
