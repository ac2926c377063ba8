"""What a `command_patterns` regex can see of a unit that an argv rule matches.

A legacy regex is searched in a unit's *text*: the source of its simple command as the
shell parser read it (quotes, escapes, assignments and redirections included; for a command
a wrapper runs, its words re-quoted), and, for a deny rule, also in its *words* (argv
joined by spaces, as `Unit.words_text` builds them) and in the text of the *pipeline* it
is in. An argv rule constrains the words. This module relates the two: a transducer from a
unit's text to its words, `SPELLING`, walked in step with automata over both sides, so
that "can a unit whose argv this rule matches have a text that regex finds?" is a question
about automata, decided like the others.

The transducer over-approximates what the parser does (leashd/shell/parser.py), so a
question it answers "never" is never: a word's characters are spelled as themselves,
backslash-escaped, or inside single or double quotes (`'~x'` is the word `./~x`, as the
parser reads it); blanks (`[ \\t\\n\\r\\f\\v]`, tree-sitter's) and backslash-newlines
separate words; assignments and redirections may come before the program. Past a
character whose meaning is only known at run time or that makes words the text does not
spell one by one (`$`, a backquote, braces, `<`, `>`, `&`, `(`, `)`, NUL) anything may follow
on both sides. An unquoted `|` or `;` ends a simple command, so no unit text holds one.
tests/test_lint_decides.py checks all of this against the parser on generated commands
(which found tree-sitter's own readings: `'a b'\\c` is two words, and so is `a\n\\b`).

Three questions decide a pair of rules (the looser one "A", a deny rule "B" with regexes):
1. a unit A matches whose text B's regexes find (the unit's own text);
2. the same, on its words (deny rules only);
3. a pipeline whose every stage A matches and whose text B's regexes find (deny rules
   only): the order of A and B then decides the whole call, since every stage is A's.
   A stage may also be a compound command (`{ …; }`, `( … )`, `if …`), taken as A's.
Not modelled: a pipeline whose first stage calls a function or an alias defined in the
same command (the pipeline's text names the function, its units run the body). Every
deny regex can be met that way; the lint does not report it pair by pair.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from leashd.policy import patterns
from leashd.policy.analysis.argvlang import Alt, WordSet
from leashd.policy.analysis.automata import DFA, Unanalyzable
from leashd.policy.analysis.charsets import Intervals, Partition, normalize

# --- the characters the transducer tells apart ------------------------------------------------


def _chars(s: str) -> Intervals:
    return normalize([(ord(c), ord(c)) for c in s])


BLANKS = _chars(" \t\n\r\f\v")
SEP = "\x00"  # between two words on the argv side
_SQ, _DQ, _BS, _NL = _chars("'"), _chars('"'), _chars("\\"), _chars("\n")
# Characters past which the text and the words go their own ways (expansions, brace lists,
# redirections, NUL of a re-quoted unknown word).
# (`a(b)` is `a` and a word known at run time; tree-sitter reads `a } }` as `a`, `} }`)
_WILD = _chars("$`{}<>&\x00()")
_REDIRECT_START = _chars("<>&{0123456789")
_CLOSERS = _chars("|;")  # end a simple command when unquoted
_NAME_START = normalize([(0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)])
_NAME = normalize([*_NAME_START, (0x30, 0x39)])
_COMPOUND_START = _chars("{(!")
_RESERVED = ("if", "for", "while", "until", "case", "select", "function", "time", "coproc")
# Single characters the transducer writes or reads by themselves.
_SINGLES = " ./\\=+[{$`>|&#'\"\n~" + "".join(sorted(set("".join(_RESERVED))))
# Every set above: the partition of the kind these questions are asked in must have been
# built with them (regions.py adds them).
SETS: tuple[Intervals, ...] = (
    BLANKS,
    _WILD,
    _REDIRECT_START,
    _CLOSERS,
    _NAME_START,
    _NAME,
    _COMPOUND_START,
    *(_chars(c) for c in _SINGLES),
    _chars(SEP),
)


def _minus(a: Intervals, b: Intervals) -> Intervals:
    out = []
    for lo, hi in a:
        cur = lo
        for blo, bhi in b:
            if bhi < cur or blo > hi:
                continue
            if blo > cur:
                out.append((cur, blo - 1))
            cur = max(cur, bhi + 1)
        if cur <= hi:
            out.append((cur, hi))
    return tuple(out)


_ALL: Intervals = ((0, 0x10FFFF),)
# What a word's character can be: anything but NUL (which the argv side uses between
# words; a text with a NUL goes to SINK).
_CHAR: Intervals = ((1, 0x10FFFF),)
_WORD = _minus(_ALL, normalize([*BLANKS, *_SQ, *_DQ, *_BS, *_WILD, *_CLOSERS]))
_ANY_BUT_NL = _minus(_CHAR, _NL)
_IN_SQ = _minus(_CHAR, _SQ)
_IN_DQ = _minus(_CHAR, normalize([*_DQ, *_BS, *_chars("$`")]))
_DQ_ESCAPED = _chars('$`"\\')
_DQ_KEPT = _minus(_CHAR, normalize([*_DQ_ESCAPED, *_NL]))


# --- the transducer ---------------------------------------------------------------------------

# Edge kinds: COPY reads a character of the text and writes the same to the words; TEXT
# only reads; EMIT only writes (a fixed character); EPS neither; BREAK writes the break
# between two words: NUL to the argv automata (words hold no NUL, so argv is exact), a
# space to the regexes read on the words text (`Unit.words_text` joins words with one).
COPY, TEXT, EMIT, EPS, BREAK = range(5)
# The state past a wild character: both sides free from there on.
SINK = 0


@dataclass(frozen=True)
class Spelling:
    """The transducer over one partition: `edges[state]` is a list of (kind, mask, target),
    the mask a set of classes (for EMIT, the class of the character written)."""

    partition: Partition
    edges: tuple[tuple[tuple[int, int, int], ...], ...]
    accepting: frozenset[int]
    start: int  # the start of a unit's text
    plain: bool


class _Builder:
    def __init__(self, partition: Partition, plain: bool):
        self.p = partition
        self.plain = plain
        self.edges: list[list[tuple[int, int, int]]] = []
        self.state()  # SINK
        self.add(SINK, TEXT, _ALL, SINK)
        self.add(SINK, EMIT_ANY, _ALL, SINK)

    def state(self) -> int:
        self.edges.append([])
        return len(self.edges) - 1

    def add(self, a: int, kind: int, chars: Intervals, b: int) -> None:
        if kind == EMIT_ANY:
            for cls in range(self.p.size):
                if self.p.mask(chars) >> cls & 1:
                    self.edges[a].append((EMIT, 1 << cls, b))
            return
        mask = self.p.mask(chars) if kind != EPS else 0
        if kind == EPS or mask:
            self.edges[a].append((kind, mask, b))

    def emit(self, a: int, text: str, b: int) -> None:
        """Write `text` to the words, reading nothing."""
        for n, ch in enumerate(text):
            nxt = b if n == len(text) - 1 else self.state()
            self.add(a, EMIT, _chars(ch), nxt)
            a = nxt

    def read(self, a: int, text: str, b: int) -> None:
        """Read `text`, writing nothing."""
        for n, ch in enumerate(text):
            nxt = b if n == len(text) - 1 else self.state()
            self.add(a, TEXT, _chars(ch), nxt)
            a = nxt

    def wild(self, a: int, chars: Intervals = _WILD) -> None:
        if not self.plain:
            self.add(a, TEXT, chars, SINK)


EMIT_ANY = 99  # builder-only: an EMIT edge for every class of a set


def spelling(partition: Partition, plain: bool = False, shadows: bool = False) -> Spelling:
    """The transducer. `plain`: without the wild characters (no SINK, no comments, no
    redirections but a final `>'…'`), so that a text it accepts is one the parser reads as
    the transducer says: an example, not only a possibility. `shadows`: the text may spell
    a path before the program the words start with, as for a program run by a path, seen
    under its bare name (`.venv/bin/python` as `python`); where the words are an argv
    rule's, `words_regex(shadows=True)` says the same more cheaply."""
    b = _Builder(partition, plain)
    pre, word, u, u_bs, sq, dq, dq_bs, dq_kept, gap, gap_bs = (b.state() for _ in range(10))
    # a word: unquoted characters, escapes, quotes
    b.add(word, COPY, _WORD, u)
    b.add(u, COPY, _WORD, u)
    # tree-sitter may read newlines as the start of the next word (`a\n\n\\b` is `a`,
    # `\n\nb`), after a blank or not
    nl_word, nl_more = b.state(), b.state()
    b.edges[u].append((BREAK, 0, nl_word))
    b.add(nl_word, COPY, _NL, nl_more)
    b.add(word, COPY, _NL, nl_more)
    b.add(nl_more, COPY, _NL, nl_more)
    b.add(nl_more, EPS, (), word)
    for at in (word, u):
        b.add(at, TEXT, _BS, u_bs)
        b.add(at, TEXT, _SQ, sq)
        b.add(at, TEXT, _DQ, dq)
        b.wild(at)
        b.wild(at, _chars("#"))  # `"~"#b`: tree-sitter reads a word known at run time
        # a quoted part starting with `~` is read as `./~` (parser: _literal_tilde)
        for quote, inside in ((_SQ, sq), (_DQ, dq)):
            tilde, dot_slash = b.state(), b.state()
            b.add(at, TEXT, quote, tilde)
            b.emit(tilde, "./", dot_slash)
            b.add(dot_slash, COPY, _chars("~"), inside)
    b.wild(word, _chars("="))  # `a =={` is `a`, `{` to tree-sitter
    b.add(u_bs, TEXT, _NL, u)  # a backslash-newline is nothing inside a word...
    b.add(u_bs, TEXT, _NL, gap)  # ...or, to tree-sitter, a break between two words
    b.add(u_bs, COPY, _ANY_BUT_NL, u)
    b.add(u_bs, TEXT, _chars(" \t\v\f"), gap)  # tree-sitter: `a\\<tab>b` is `a`, `b`
    b.wild(u_bs, _chars("{\x00"))  # `\{a,b\}` is expanded all the same
    # tree-sitter may start another word at a backslash with no blank before it (`a}\\b`
    # is `a}`, `b`), and after a closing quote (`'a b'\\c` is two words)
    escaped_word = b.state()
    b.edges[u].append((BREAK, 0, escaped_word))
    b.add(escaped_word, TEXT, _BS, u_bs)
    closed = b.state()
    b.add(closed, EPS, (), u)
    b.edges[closed].append((BREAK, 0, word))
    b.add(sq, COPY, _IN_SQ, sq)
    b.add(sq, TEXT, _SQ, closed)
    b.wild(sq, _chars("{\x00"))  # a brace list is expanded across quotes too
    b.add(dq, COPY, _IN_DQ, dq)
    b.add(dq, TEXT, _DQ, closed)
    b.add(dq, TEXT, _BS, dq_bs)
    b.wild(dq, _chars("$`{\x00"))
    b.add(dq_bs, COPY, _DQ_ESCAPED, dq)
    b.add(dq_bs, TEXT, _NL, dq)
    b.add(dq_bs, EMIT, _BS, dq_kept)  # `\x` in double quotes keeps its backslash
    b.add(dq_kept, COPY, _DQ_KEPT, dq)
    b.wild(dq_bs, _chars("\x00"))
    b.wild(dq_kept, _chars("\x00"))
    # between words
    b.add(u, TEXT, BLANKS, gap)
    b.add(gap, TEXT, BLANKS, gap)
    b.add(gap, TEXT, _BS, gap_bs)
    b.add(gap_bs, TEXT, _NL, gap)
    b.add(gap_bs, TEXT, _chars(" \t\v\f"), gap)  # tree-sitter: `a \\ b` is `a`, `b`
    b.edges[gap].append((BREAK, 0, word))
    b.wild(gap)  # `a $` is argv `a`: what follows a wild character need not be a word
    if plain:
        # a redirection at the end, its target in single quotes: `cat >'|sh'`
        target, inside, done = b.state(), b.state(), b.state()
        b.read(gap, ">", target)
        b.add(target, TEXT, _SQ, inside)
        b.add(inside, TEXT, _IN_SQ, inside)
        b.add(inside, TEXT, _SQ, done)
        accepting = {u, gap, done}
    else:
        b.add(gap, TEXT, _REDIRECT_START, SINK)  # a redirection: `2>&1`, `<<EOF`, `{fd}>x`
        # a comment: tree-sitter may read words out of it (`a #\\<nl>\\<nl>b`)
        b.add(gap, TEXT, _chars("#"), SINK)
        # pre: an empty word (`sh -c ''` runs argv ['']); an open quote: the text of a
        # command tree-sitter recovered from an error ends inside one
        accepting = {u, gap, SINK, pre, sq, dq, u_bs, dq_bs}
    prog = b.state()
    b.add(prog, EPS, (), word)
    if shadows:  # a path, text only, then the program's name
        path, p_sq, p_dq, p_bs = (b.state() for _ in range(4))
        b.add(prog, EPS, (), path)
        slash = _chars("/")
        b.add(path, TEXT, _minus(_WORD, slash), path)
        b.add(path, TEXT, slash, path)
        b.add(path, TEXT, slash, word)
        b.add(path, TEXT, _SQ, p_sq)
        b.add(p_sq, TEXT, _minus(_IN_SQ, slash), p_sq)
        b.add(p_sq, TEXT, slash, p_sq)
        b.add(p_sq, TEXT, slash, sq)  # the quote goes on into the name
        b.add(p_sq, TEXT, _SQ, path)
        b.add(path, TEXT, _DQ, p_dq)
        b.add(p_dq, TEXT, _minus(_IN_DQ, slash), p_dq)
        b.add(p_dq, TEXT, slash, p_dq)
        b.add(p_dq, TEXT, slash, dq)
        b.add(p_dq, TEXT, _DQ, path)
        b.add(path, TEXT, _BS, p_bs)
        b.add(p_bs, TEXT, _CHAR, path)
        b.wild(path)
        b.wild(p_dq, _chars("$`{\x00"))
    # before the program: blanks, assignments (`A=1 B='x y' cmd`), redirections
    b.add(pre, EPS, (), prog)
    b.add(pre, TEXT, BLANKS, pre)
    name, value, v_sq, v_dq, v_dq_bs, v_bs = (b.state() for _ in range(6))
    b.add(pre, TEXT, _NAME_START, name)
    b.add(name, TEXT, _NAME, name)
    b.read(name, "=", value)
    plus = b.state()
    b.read(name, "+", plus)
    b.read(plus, "=", value)
    b.add(value, TEXT, _minus(_ALL, normalize([*BLANKS, *_SQ, *_DQ, *_BS, *_WILD])), value)
    b.add(value, TEXT, _SQ, v_sq)
    b.add(v_sq, TEXT, _IN_SQ, v_sq)
    b.add(v_sq, TEXT, _SQ, value)
    b.add(value, TEXT, _DQ, v_dq)
    b.add(v_dq, TEXT, _minus(_ALL, normalize([*_DQ, *_BS])), v_dq)
    b.add(v_dq, TEXT, _BS, v_dq_bs)
    b.add(v_dq_bs, TEXT, _ALL, v_dq)
    b.add(v_dq, TEXT, _DQ, value)
    b.add(value, TEXT, _BS, v_bs)
    b.add(v_bs, TEXT, _ALL, value)
    b.add(value, TEXT, BLANKS, pre)
    # tree-sitter may end a value with no blank: `a=1\\b` and `a=#}` run `b` and `}`
    b.add(value, EPS, (), prog)
    # `A=$(…)`, `a[i]=…`, `>out npm test`, `2>&1`: anything may follow
    b.wild(value)
    b.wild(name, _chars("["))
    b.wild(pre, _REDIRECT_START)
    return Spelling(partition, tuple(tuple(e) for e in b.edges), frozenset(accepting), pre, plain)


# --- the words of an argv rule, joined as `Unit.words_text` joins them ----------------------


def words_regex(alts: Sequence[Alt], sep: str = SEP, shadows: bool = False) -> str:
    """The words of the units argv alternatives match, as a full-match regex over the
    words joined by `sep`: NUL (the transducer's BREAK, exact about where words end) or a
    space (`Unit.words_text`).

    argv[0] is the program, or an absolute path to it in a system directory (`/usr/bin/
    git`); with `shadows`, any path to it: a program run by a path (`.venv/bin/python`) is
    also a unit whose argv[0] is the bare name (`python`) but whose text spells the path,
    which this lets the transducer read as the words. A word only known at run time is `$?`
    in the words text, which the wildcard of a bare `*` (or of a rule that asks) accepts.
    """
    s = re.escape(sep)
    bodies = []
    for alt in alts:
        out = [r"(?:[^\x00]*/)?" if shadows else r"(?:/[^\x00]*/)?"]
        for n, tok in enumerate(alt.tokens):
            if tok == "$":
                out.append(r"\Z")
                continue
            sep_n = "" if n == 0 else s
            if tok == "**":
                out.append(f"(?:{s}.*)?")
                continue
            assert isinstance(tok, WordSet)
            out.append(sep_n + "(?:" + _word_body(tok) + ")")
        out.append(f"(?:{s}.*)?")
        bodies.append("".join(out))
    return r"(?s)^(?:" + "|".join(bodies) + r")\Z"


def _word_body(tok: WordSet) -> str:
    if tok.universal:
        return ".*"
    # the evaluator's own regex for the token (`^…\Z`, over a word without NUL); what a
    # lenient wildcard also covers, a word's unknown parts, is `$?` in the words text
    rx = patterns.token_word_regex(tok.globs, tok.lenient)
    assert rx.startswith("^") and rx.endswith(r"\Z")
    return rx[1:-2]


# --- the transducer composed with an automaton on one side ------------------------------------


# --- machines: automata read one character at a time ---------------------------------------
#
# A question is a walk of several machines in step over one partition's classes: DFAs,
# unions of DFAs, and `Texts`, the transducer composed with a DFA on its words side, whose
# states are built only as a walk reaches them (and kept, for the next question).


class Machine:
    """next(state, class) -> state, or -1: dead; the start state is 0."""

    def next(self, s, cls: int):  # pragma: no cover - an interface
        raise NotImplementedError

    def final(self, s) -> bool:  # pragma: no cover - an interface
        raise NotImplementedError

    def symbol(self, cls: int):
        """What this machine tells classes apart by (classes with one symbol act alike)."""
        raise NotImplementedError  # pragma: no cover - an interface

    start = 0


class OfDFA(Machine):
    def __init__(self, d: DFA):
        self.d = d

    def next(self, s: int, cls: int) -> int:
        return self.d.delta[s][self.d.group[cls]]

    def final(self, s: int) -> bool:
        return s in self.d.finals

    def symbol(self, cls: int) -> int:
        return self.d.group[cls]


def any_of(dfas: Sequence[DFA]) -> Machine:
    """A machine for a union of DFAs (a plain one for a single DFA: cheaper)."""
    return OfDFA(dfas[0]) if len(dfas) == 1 else AnyOf(dfas)


class AnyOf(Machine):
    """A union of DFAs: its state is theirs, it accepts when one does."""

    def __init__(self, dfas: Sequence[DFA]):
        self.ds = tuple(dfas)
        self.start = tuple(0 for _ in self.ds)

    def next(self, s: tuple[int, ...], cls: int):
        out = tuple(
            x if x < 0 else d.delta[x][d.group[cls]] for x, d in zip(s, self.ds, strict=True)
        )
        return out if any(x >= 0 for x in out) else -1

    def final(self, s: tuple[int, ...]) -> bool:
        return any(x >= 0 and x in d.finals for x, d in zip(s, self.ds, strict=True))

    def symbol(self, cls: int) -> tuple[int, ...]:
        return tuple(d.group[cls] for d in self.ds)


_SUBSET_LIMIT = 20000  # subsets one `Texts` may make


class Outgrown(Unanalyzable):
    """A `Texts` reached its limit of subsets. The subsets are kept from one question to
    the next, so the question that reaches the limit may not be the one that needs them:
    it is asked again on a fresh machine (`Texts.reset`), and only a question that alone
    needs more is unanalyzable. An answer then never depends on the questions asked before
    it (which pairs a lint compares, and in what order: the pair cache relies on that)."""


class Texts(Machine):
    """The texts whose words, joined by `joined` (NUL, as `words_regex` writes them; a
    space, as `Unit.words_text` does), `words` accepts (None: any words): a lazy subset
    construction over pairs (transducer state, `words`'s state). A pair in SINK accepts
    whatever follows (`words` is alive there: dead pairs are never made)."""

    def __init__(self, t: Spelling, words: DFA | None, joined: str = SEP):
        p = self.partition = t.partition
        self.t = t
        self.words = words
        self.joined = joined
        self.group = words.group if words is not None else [0] * p.size
        self.delta = words.delta if words is not None else [[0]]
        self.finals = words.finals if words is not None else frozenset({0})
        self.sep = p.class_of(joined)
        reach = {t.start}
        todo = [t.start]
        while todo:
            for _, _, q2 in t.edges[todo.pop()]:
                if q2 not in reach:
                    reach.add(q2)
                    todo.append(q2)
        masks = sorted({m for q in reach for k, m, _ in t.edges[q] if k in (COPY, TEXT)})
        self._symbols = [(self.group[c], *(m >> c & 1 for m in masks)) for c in range(p.size)]
        self._closed: dict[tuple[int, int], frozenset[tuple[int, int]]] = {}
        self._moved: dict[tuple[tuple[int, int], int], frozenset[tuple[int, int]]] = {}
        first = self._closure_of((t.start, 0))
        self.subsets: list[frozenset[tuple[int, int]]] = [first]
        self.index = {first: 0}
        self.trans: dict[tuple[int, int], int] = {}
        self._final: list[bool] = []
        self._every: list[bool] = []
        self._note(first)

    def reset(self) -> None:
        """Forget every subset made so far: the machine as it was built."""
        self.__init__(self.t, self.words, self.joined)  # type: ignore[misc]

    def symbol(self, cls: int) -> tuple:
        return self._symbols[cls]

    def _note(self, subset: frozenset[tuple[int, int]]) -> None:
        every = any(q == SINK for q, _ in subset)
        self._every.append(every)
        self._final.append(
            every or any(q in self.t.accepting and o in self.finals for q, o in subset)
        )

    def final(self, s: int) -> bool:
        return self._final[s]

    def next(self, s: int, cls: int) -> int:
        if self._every[s]:
            return s
        key = (s, cls)
        hit = self.trans.get(key)
        if hit is not None:
            return hit
        out: set[tuple[int, int]] = set()
        for pair in self.subsets[s]:
            out |= self._move(pair, cls)
        if not out:
            self.trans[key] = -1
            return -1
        nxt = frozenset(out)
        j = self.index.get(nxt)
        if j is None:
            if len(self.subsets) >= _SUBSET_LIMIT:
                raise Outgrown("the automaton of a command's texts is too large")
            j = self.index[nxt] = len(self.subsets)
            self.subsets.append(nxt)
            self._note(nxt)
        self.trans[key] = j
        return j

    def _closure_of(self, pair: tuple[int, int]) -> frozenset[tuple[int, int]]:
        hit = self._closed.get(pair)
        if hit is not None:
            return hit
        out = {pair}
        stack = [pair]
        while stack:
            q, o = stack.pop()
            for kind, mask, q2 in self.t.edges[q]:
                if kind == EPS:
                    x = (q2, o)
                elif kind in (EMIT, BREAK):  # the words read what is written
                    o2 = self.delta[o][self.group[self.sep if kind == BREAK else _lowest(mask)]]
                    if o2 < 0:
                        continue
                    x = (q2, o2)
                else:
                    continue
                if x not in out:
                    out.add(x)
                    stack.append(x)
        hit = self._closed[pair] = frozenset(out)
        return hit

    def _move(self, pair: tuple[int, int], cls: int) -> frozenset[tuple[int, int]]:
        """The closed pairs one character of text takes `pair` to."""
        key = (pair, cls)
        hit = self._moved.get(key)
        if hit is not None:
            return hit
        q, o = pair
        out: set[tuple[int, int]] = set()
        for kind, mask, q2 in self.t.edges[q]:
            if kind not in (COPY, TEXT) or not mask >> cls & 1:
                continue
            if kind == COPY:
                o2 = self.delta[o][self.group[cls]]
                if o2 >= 0:
                    out |= self._closure_of((q2, o2))
            else:
                out |= self._closure_of((q2, o))
        hit = self._moved[key] = frozenset(out)
        return hit


def _lowest(mask: int) -> int:
    return (mask & -mask).bit_length() - 1


# --- questions --------------------------------------------------------------------------------

QUESTION_BUDGET = 50000  # product states one question may visit
NOT_MODELLED = "<not modelled>"  # a question these automata do not answer
_PIPES = (" | ", "|", " |& ")


def _alphabet(p: Partition, machines: Sequence[Machine]) -> list[int]:
    """One class for each set of classes no machine tells apart, readable ones first."""
    sig: dict[tuple, int] = {}
    for c in p.readable_order:
        sig.setdefault(tuple(m.symbol(c) for m in machines), c)
    return list(sig.values())


def find_text(
    p: Partition,
    stage: Sequence[Machine],
    pipe: Sequence[Machine] = (),
    pipeline: bool = False,
    compound: bool = False,
    budget: int = QUESTION_BUDGET,
) -> str | None:
    """A text every machine of `stage` accepts (with `pipeline`: a pipeline text whose
    every stage they all accept, read from the start again at each stage, and that every
    machine of `pipe` accepts as a whole); None if there is none. With `compound`, a stage
    may also be a compound command (`{ …; }`, `( … )`, `if …`), taken as one they accept.
    Raises `Unanalyzable` past `budget` states."""
    machines = [*stage, *pipe]
    ns = len(stage)
    reps = _alphabet(p, machines)
    start = tuple(m.start for m in machines)
    parent: dict[tuple, tuple[tuple, str] | None] = {start: None}
    queue = deque([start])

    def text_of(node: tuple, tail: str = "") -> str:
        out = [tail]
        while (step_ := parent[node]) is not None:
            node, ch = step_
            out.append(ch)
        return "".join(reversed(out))

    def read(node: tuple, text: str, lo: int) -> tuple | None:
        """The machines from index `lo` on, after `text`."""
        cur = list(node)
        for ch in text:
            cls = p.class_of(ch)
            for k in range(lo, len(machines)):
                cur[k] = machines[k].next(cur[k], cls)
                if cur[k] == -1:
                    return None
        return tuple(cur)

    starters = ["{", "(", "!", "[", *(w + " " for w in _RESERVED)] if compound else []
    while queue:
        node = queue.popleft()
        stage_final = all(m.final(s) for m, s in zip(stage, node, strict=False))
        if stage_final and all(m.final(s) for m, s in zip(pipe, node[ns:], strict=True)):
            return text_of(node)
        if pipeline and all(s == m.start for m, s in zip(stage, node, strict=False)):
            for w in starters:  # a compound stage: anything may follow, for `pipe`
                after = read(node, w, ns)
                if after is not None and find_text(p, pipe and [_From(m, s) for m, s in
                                                         zip(pipe, after[ns:], strict=True)],
                                                   budget=budget) is not None:  # fmt: skip
                    return text_of(node, w)
        if pipeline and stage_final:
            for sep in _PIPES:  # the next stage, its machines from the start
                after = read(node, sep, ns)
                if after is None:
                    continue
                nxt = tuple(m.start for m in stage) + after[ns:]
                if nxt not in parent:
                    parent[nxt] = (node, sep)
                    queue.append(nxt)
        for cls in reps:
            nxt = []
            for m, s in zip(machines, node, strict=True):
                x = m.next(s, cls)
                if x == -1:
                    break
                nxt.append(x)
            else:
                key = tuple(nxt)
                if key not in parent:
                    parent[key] = (node, p.representative[cls])
                    queue.append(key)
                    if len(parent) > budget:
                        raise Unanalyzable("the question about the command's text is too large")
    return None


class _From(Machine):
    """A machine started in another state."""

    def __init__(self, m: Machine, s):
        self.m, self.start = m, s

    def next(self, s, cls: int):
        return self.m.next(s, cls)

    def final(self, s) -> bool:
        return self.m.final(s)

    def symbol(self, cls: int):
        return self.m.symbol(cls)
