"""Regexes as automata: the DFA of a pattern accepts exactly the strings `re.search` finds it
in, assertions and case folding included; questions over several automata are exact."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leashd.policy.analysis import automata
from leashd.policy.analysis.automata import Unanalyzable
from leashd.policy.analysis.charsets import Partition


def dfas(*patterns: str, ignore_case: bool = False) -> list[automata.DFA]:
    parsed = [automata.parse(p, ignore_case) for p in patterns]
    partition = Partition([s for p in parsed for s in p.sets])
    return [automata.search_dfa(p, partition) for p in parsed]


ALPHABET = "ab-_ xK\nſ.1é"

atoms = st.sampled_from(
    ["a", "b", "x", "-", " ", ".", r"\d", r"\w", r"\W", r"\s", "[a-c]", "[^a ]", "k", "(?i:k)",
     "(?i:s)", r"\.", "é"]
)  # fmt: skip
assertions = st.sampled_from(["^", "$", r"\b", r"\B", r"\A", r"\Z"])


@st.composite
def regexes(draw, depth: int = 0) -> str:
    parts = []
    for _ in range(draw(st.integers(1, 4))):
        choice = draw(st.integers(0, 9 if depth < 2 else 6))
        if choice <= 4:
            parts.append(draw(atoms))
        elif choice <= 6:
            parts.append(draw(assertions))
        elif choice == 7:
            parts.append("(?:" + draw(regexes(depth + 1)) + "|" + draw(regexes(depth + 1)) + ")")
        else:
            inner = draw(regexes(depth + 1))
            parts.append("(?:" + inner + ")" + draw(st.sampled_from(["*", "+", "?", "{1,2}"])))
    return "".join(parts)


@settings(max_examples=300, deadline=None)
@given(
    regexes(),
    st.booleans(),
    st.booleans(),
    st.lists(st.text(alphabet=ALPHABET, max_size=6), min_size=1, max_size=15),
)
def test_dfa_accepts_exactly_what_re_search_finds(pattern, ignore_case, multiline, subjects):
    if multiline:
        pattern = "(?m)" + pattern
    (dfa,) = dfas(pattern, ignore_case=ignore_case)
    rx = re.compile(pattern, re.I if ignore_case else 0)
    for s in subjects:
        assert dfa.accepts(s) == (rx.search(s) is not None), (pattern, s)
    example = automata.example(dfa)
    if example is not None:
        assert rx.search(example) is not None


@pytest.mark.parametrize(
    ("pattern", "found_in", "not_found_in"),
    [
        (r"\bsudo\b", ["sudo ls", "x;sudo"], ["pseudo", "sudoers"]),
        (r"^rm\s+-rf", ["rm  -rf /"], [" rm -rf", "xrm -rf"]),
        (r"\.env$", ["a/.env", "a/.env\n"], ["a/.env\n\n", "a/.envrc"]),
        (r"x\Z", ["ax"], ["ax\n"]),
        (r"(?i)kelvin", ["\u212aELVIN", "KeLvIn"], ["kelvn"]),
        (r"\B-", ["--x"], ["a-b"]),
    ],
)
def test_assertions_and_folding_mean_what_re_means(pattern, found_in, not_found_in):
    (dfa,) = dfas(pattern)
    for s in found_in:
        assert dfa.accepts(s), s
    for s in not_found_in:
        assert not dfa.accepts(s), s


def test_containment_and_overlap_with_examples():
    narrow, wide, other = dfas(r"^git push --force", r"^git push", r"^npm ")
    assert automata.counterexample(narrow, [wide]) is None  # narrow ⊆ wide
    cx = automata.counterexample(wide, [narrow])
    assert cx is not None and re.search("^git push", cx) and not re.search("^git push --force", cx)
    both = automata.common(narrow, wide)
    assert both is not None and re.search("^git push --force", both)
    assert automata.common(wide, other) is None


def test_a_union_can_cover_what_no_single_pattern_does():
    target, pem, key = dfas(r"\.(pem|key)$", r"\.pem$", r"\.key$")
    assert automata.counterexample(target, [pem]) is not None
    assert automata.counterexample(target, [key]) is not None
    assert automata.counterexample(target, [pem, key]) is None


@pytest.mark.parametrize(
    "pattern",
    [r"(?=a)a", r"(?!a)b", r"(?<=a)b", r"(a)\1", r"(?>a)", r"a*+", r"(?(1)a|b)"],
)
def test_constructs_without_an_automaton_are_unanalyzable(pattern):
    with pytest.raises(Unanalyzable):
        automata.parse(pattern)


def test_an_empty_language_is_empty():
    (dfa,) = dfas(r"a\bb")  # a word boundary between two word characters: never
    assert dfa.is_empty()
    (dfa,) = dfas(r"a^")
    assert dfa.is_empty()


@settings(max_examples=300, deadline=None)
@given(regexes(), regexes(), st.booleans())
def test_floating_patterns_meet_exactly_when_neither_is_empty(p, q, multiline):
    # The shortcut the lint takes for unanchored patterns (\b and multiline ^/$ allowed):
    # two such search DFAs share a string iff each accepts one. Checked against the product.
    if multiline:
        p, q = "(?m)" + p, "(?m)" + q
    x, y = dfas(p, q)
    product = automata.common(x, y) is not None
    if x.floating and y.floating:
        assert product == (not x.is_empty() and not y.is_empty()), (p, q)
    if product:  # and the string the product finds really is found by both
        text = automata.common(x, y)
        assert re.search(p, text) and re.search(q, text)


def test_anchored_patterns_are_not_floating():
    floating = [d.floating for d in dfas(r"\bgit\b", "(?m)^a$", r"\Aa", "a$", "^a", r"a\Z")]
    assert floating == [True, True, False, False, False, False]


_FLAGS = ["-f", "-d", "-D", "-a", "--force", "--forc*", "--force-with-lease*", "--delete",
          "--*-lease", "-[ab]", "--no-verify", "-fd", "--x=1", "--*", "-*"]  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from(_FLAGS), min_size=1, max_size=3, unique=True),
    st.lists(st.sampled_from(_FLAGS), min_size=1, max_size=6, unique=True),
)
def test_flag_containment_by_words_agrees_with_automata_over_whole_argvs(f, g):
    from leashd.policy import patterns
    from leashd.policy.analysis.relations import Relations

    by_words = Relations(None).flags_contained(tuple(f), [tuple(g)])  # type: ignore[arg-type]
    rx_f = [patterns.flag_regex(x) for x in f]
    rx_g = [patterns.flag_regex(x) for x in g]
    if None in rx_f or None in rx_g:
        assert by_words is False  # not analysable: never claimed
        return
    autos = dfas(*rx_f, *rx_g)
    a, covers = autos[: len(f)], autos[len(f) :]
    exact = all(automata.counterexample(x, covers) is None for x in a)
    assert by_words == exact, (f, g)


def test_a_word_question_past_its_budget_is_unanalyzable(monkeypatch):
    from leashd.policy.analysis import wordglobs

    monkeypatch.setattr(wordglobs, "_MAX_STATES", 5)
    line = wordglobs.lines("--f*", False)[0]
    covers = [x for g in ("--fa*", "--fb*", "--fc*", "--f") for x in wordglobs.lines(g, False)]
    with pytest.raises(Unanalyzable):
        wordglobs.counterexample(line, covers)
