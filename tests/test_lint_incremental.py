"""The lint's pair cache: after an edit, what is reused is exactly what a lint afresh finds.

Edits of every kind (a pattern changed, an action changed, rules swapped, moved, deleted or
added) are made to generated policies, each linted with the cache of the version before and
compared with a lint without the cache, finding for finding. The counters of `Stats` show
what was reused (no test here measures time: benchmarks/bench_lint.py does).
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leashd.policy.analysis import automata, keys, pair_cache
from leashd.policy.analysis.charsets import Partition
from leashd.policy.analysis.lint import lint
from leashd.policy.analysis.pair_cache import PairCache, Stats
from leashd.policy.errors import PolicyError
from leashd.policy.yaml_frontend import parse_yaml

# One rule per line: an edit of a rule moves no other rule's line, adding or removing one
# moves those after it (as in a real file).
CONDITIONS = [
    'commands: ["git push"]',
    'commands: ["git *"]',
    'commands: ["git push"], flags: ["-f", "--force"]',
    'commands: ["npm i|install"]',
    'commands: ["npm *"], examples: {match: ["npm test"], not_match: ["git push"]}',
    'commands: ["ls"], examples: {match: ["cat x"]}',
    'commands: ["rm -rf|-fr"]',
    'commands: ["curl *"]',
    r"command_patterns: ['^git\s+push']",
    r"command_patterns: ['rm\s+-[a-z]*r']",
    r"command_patterns: ['curl .*\|\s*sh']",
    r"command_patterns: ['(?i)npm\s']",
    'paths: {match: ["*.env"]}',
    'paths: {match: ["~/.ssh/**"], access: read}',
    "paths: {access: write, where: outside}",
    'hosts: ["*.example.com"]',
    'hosts: ["github.com"]',
    "tools: [Read]",
    "tools: [Read, Write]",
    "tools: [WebFetch]",
    'tools: [Bash], commands: ["cat"]',
]
ACTIONS = ["allow", "deny", "require_approval"]

_rule = st.tuples(st.sampled_from(CONDITIONS), st.sampled_from(ACTIONS))


@st.composite
def _edit(draw, size: int):
    """A one-rule edit of a policy of `size` rules, as (kind, place, other place, rule)."""
    kind = draw(st.sampled_from(["pattern", "action", "swap", "move", "delete", "add"]))
    k = draw(st.integers(0, size - 1))
    m = draw(st.integers(0, size - 1))
    return kind, k, m, draw(_rule)


def _apply(rules: list, edit: tuple) -> list:
    kind, k, m, new = edit
    out = list(rules)
    if kind == "pattern":
        out[k] = (new[0], out[k][1])
    elif kind == "action":
        out[k] = (out[k][0], new[1])
    elif kind == "swap":
        out[k], out[m] = out[m], out[k]
    elif kind == "move":
        out.insert(m, out.pop(k))
    elif kind == "delete" and len(out) > 1:
        del out[k]
    elif kind == "add":
        out.insert(k, new)
    return out


def _text(rules: list) -> str:
    # names follow the rules: a rule keeps its name when it moves
    lines = ["settings: {default_action: require_approval}", "rules:"]
    for cond, action, name in rules:
        lines.append(f"  - {{name: {name}, {cond}, action: {action}}}")
    return "\n".join(lines) + "\n"


def _named(rules: list, names: list[str]) -> list:
    return [(c, a, n) for (c, a), n in zip(rules, names, strict=True)]


@contextmanager
def _cache_dir() -> Iterator[Path]:
    """A cache directory of its own (hypothesis runs many examples in one test)."""
    before = os.environ.get("LEASHD_CACHE_DIR")
    with tempfile.TemporaryDirectory() as d:
        os.environ["LEASHD_CACHE_DIR"] = d
        try:
            yield Path(d)
        finally:
            if before is None:
                del os.environ["LEASHD_CACHE_DIR"]
            else:
                os.environ["LEASHD_CACHE_DIR"] = before


def _policy(text: str):
    return parse_yaml(text, "p.yaml")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_a_lint_after_edits_finds_what_a_lint_afresh_finds(data):
    rules = data.draw(st.lists(_rule, min_size=2, max_size=6))
    names = [f"r{n}" for n in range(len(rules))]
    with _cache_dir():
        try:
            lint(_policy(_text(_named(rules, names))), use_cache=True)
        except PolicyError:
            return
        for step in range(data.draw(st.integers(1, 3))):
            edit = data.draw(_edit(len(rules)))
            kind, k, m, _new = edit
            # the names travel with their rules; an added rule gets a name of its own
            if kind == "swap":
                names[k], names[m] = names[m], names[k]
            elif kind == "move":
                names.insert(m, names.pop(k))
            elif kind == "delete" and len(names) > 1:
                del names[k]
            elif kind == "add":
                names.insert(k, f"new{step}")
            rules = _apply(rules, edit)
            pol = _policy(_text(_named(rules, names)))
            stats = Stats()
            again = lint(pol, use_cache=True, stats=stats)
            assert again == lint(pol), (edit, _text(_named(rules, names)))


def test_a_one_rule_edit_compares_only_that_rules_pairs_again(tmp_path, monkeypatch):
    monkeypatch.setenv("LEASHD_CACHE_DIR", str(tmp_path))
    rules = [(c, a) for c, a in zip(CONDITIONS[:12], ACTIONS * 4, strict=True)]
    names = [f"r{n}" for n in range(len(rules))]
    first = Stats()
    lint(_policy(_text(_named(rules, names))), use_cache=True, stats=first)
    assert first.pairs_reused == first.searches_reused == 0 and first.searches > 0
    rules[5] = ('commands: ["ls -l"]', rules[5][1])
    pol = _policy(_text(_named(rules, names)))
    stats = Stats()
    got = lint(pol, use_cache=True, stats=stats)
    assert got == lint(pol)
    assert (stats.rules, stats.rules_reused) == (1, len(rules) - 1)
    # the edited rule against each other live rule, no more (rule 5 is not vacuous)
    assert 0 < stats.pairs <= len(rules) - 1
    assert stats.pairs_reused == first.pairs - stats.pairs
    assert stats.searches_reused > 0 and stats.searches < first.searches


def test_a_rule_added_before_the_one_deciding_an_example_call_searches_again(tmp_path, monkeypatch):
    # `git push --force` is the call the search of (looser, force) finds, decided by
    # `looser`; a new rule before both that matches the call decides it instead
    monkeypatch.setenv("LEASHD_CACHE_DIR", str(tmp_path))
    base = [
        ('commands: ["git push"]', "allow", "looser"),
        ('commands: ["git *"], flags: ["--force"]', "deny", "force"),
    ]
    before = lint(_policy(_text(base)), use_cache=True)
    (old,) = [f for f in before if f.kind == "conflict"]
    assert "`git push --force` gets allow" in old.message
    edited = [(r"command_patterns: ['--force']", "require_approval", "first"), *base]
    pol = _policy(_text(edited))
    stats = Stats()
    got = lint(pol, use_cache=True, stats=stats)
    assert got == lint(pol)
    (new,) = [f for f in got if f.kind == "conflict" and f.related == ("looser",)]
    assert "decided before both, by 'first'" in new.message
    assert stats.searches >= 1


def test_other_settings_search_again_but_keep_the_pairs(tmp_path, monkeypatch):
    monkeypatch.setenv("LEASHD_CACHE_DIR", str(tmp_path))
    rules = _named([(c, a) for c, a in zip(CONDITIONS[:8], ACTIONS * 3, strict=False)],
                   [f"r{n}" for n in range(8)])  # fmt: skip
    lint(_policy(_text(rules)), use_cache=True)
    text = _text(rules).replace("default_action: require_approval", "default_action: deny")
    pol = _policy(text)
    stats = Stats()
    assert lint(pol, use_cache=True, stats=stats) == lint(pol)
    assert stats.pairs == 0 and stats.pairs_reused > 0
    assert stats.searches_reused == 0


def _one_file(d: Path) -> Path:
    (path,) = d.glob("pairs-*.cache")
    return path


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[: len(b) // 2],  # cut short
        lambda b: b[:-1] + bytes([b[-1] ^ 0x55]),  # a byte changed
        lambda b: b"",
        lambda b: b"leashd lint pair cache\n{not json\n",
        lambda b: json.dumps({"rules": 1}).encode(),
    ],
)
def test_a_damaged_cache_is_ignored_and_rewritten(tmp_path, monkeypatch, damage):
    monkeypatch.setenv("LEASHD_CACHE_DIR", str(tmp_path))
    rules = _named([(c, a) for c, a in zip(CONDITIONS[:6], ACTIONS * 2, strict=True)],
                   [f"r{n}" for n in range(6)])  # fmt: skip
    lint(_policy(_text(rules)), use_cache=True)
    path = _one_file(tmp_path)
    path.write_bytes(damage(path.read_bytes()))
    rules[0] = ('commands: ["ls -a"]', "deny", "r0")  # not the same policy: no whole result
    pol = _policy(_text(rules))
    stats = Stats()
    assert lint(pol, use_cache=True, stats=stats) == lint(pol)
    assert stats.pairs_reused == 0 and stats.rules_reused == 0
    rules[1] = ('commands: ["ls -b"]', "deny", "r1")
    stats = Stats()
    lint(_policy(_text(rules)), use_cache=True, stats=stats)
    assert stats.pairs_reused > 0  # written afresh, and read by the next lint


def test_a_regex_with_the_ascii_flag_changes_every_alphabet_of_its_kind(tmp_path, monkeypatch):
    monkeypatch.setenv("LEASHD_CACHE_DIR", str(tmp_path))
    rules = [
        (r"command_patterns: ['\bcaf\w\b']", "deny", "word"),
        ('commands: ["cafe"]', "allow", "cafe"),
    ]
    lint(_policy(_text(rules)), use_cache=True)
    edited = [*rules, (r"command_patterns: ['(?a)x\b']", "require_approval", "ascii")]
    pol = _policy(_text(edited))
    stats = Stats()
    assert lint(pol, use_cache=True, stats=stats) == lint(pol)
    assert stats.pairs_reused == stats.rules_reused == 0


def test_another_analysis_reads_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("LEASHD_CACHE_DIR", str(tmp_path))
    rules = _named([(c, a) for c, a in zip(CONDITIONS[:6], ACTIONS * 2, strict=True)],
                   [f"r{n}" for n in range(6)])  # fmt: skip
    lint(_policy(_text(rules)), use_cache=True)
    # a leashd whose analysis source differs (or another Python, parser, file layout)
    monkeypatch.setattr(keys, "analysis_key", lambda: "another leashd")
    rules[0] = ('commands: ["ls -a"]', "deny", "r0")
    stats = Stats()
    lint(_policy(_text(rules)), use_cache=True, stats=stats)
    assert stats.pairs_reused == stats.rules_reused == stats.searches_reused == 0
    assert len(list(tmp_path.glob("pairs-*.cache"))) == 1  # the other leashd's file is gone


def test_the_analysis_key_covers_the_source_and_the_file_layout(monkeypatch):
    key = keys.analysis_key()
    assert key is not None
    keys.analysis_key.cache_clear()
    monkeypatch.setattr(keys, "FORMAT", keys.FORMAT + 1)
    try:
        assert keys.analysis_key() != key
    finally:
        keys.analysis_key.cache_clear()


def test_lints_of_one_stack_at_once_leave_a_whole_file(tmp_path, monkeypatch):
    monkeypatch.setenv("LEASHD_CACHE_DIR", str(tmp_path))
    versions = []
    for n in range(4):
        rules = _named([(c, a) for c, a in zip(CONDITIONS[n : n + 5], ACTIONS * 2,
                                               strict=False)],
                       [f"r{k}" for k in range(5)])  # fmt: skip
        versions.append(_policy(_text(rules)))
    caches = [PairCache(p, persist=True) for p in versions]
    for c, p in zip(caches, versions, strict=True):
        lint_into(c, p)

    def write(c: PairCache) -> None:
        for _ in range(20):
            c.save()

    threads = [threading.Thread(target=write, args=(c,)) for c in caches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    opened = PairCache.open(versions[0])
    assert opened.old is not None  # one of them, whole
    assert not list(tmp_path.glob("*.tmp"))


def lint_into(cache: PairCache, pol) -> None:
    """Fill a cache as a lint does (without writing it)."""
    from leashd.policy.analysis import lint as lint_module

    lint_module._lint(pol, None, cache)


def test_the_cache_file_is_per_stack(tmp_path, monkeypatch):
    monkeypatch.setenv("LEASHD_CACHE_DIR", str(tmp_path))
    a = parse_yaml('rules:\n  - {name: a, commands: ["ls"], action: allow}\n', "a.yaml")
    b = parse_yaml('rules:\n  - {name: a, commands: ["ls"], action: allow}\n', "b.yaml")
    lint(a, use_cache=True)
    lint(b, use_cache=True)
    assert len(list(tmp_path.glob("pairs-*.cache"))) == 2


# --- what lets a pair's result be kept: it does not depend on the other rules -------------

_CHARS = "ab-/ .x"


def _parses(regex: str) -> bool:
    try:
        automata.parse(regex)
        return True
    except automata.Unanalyzable:
        return False


_regex = st.text(alphabet=_CHARS + "*+?|", min_size=1, max_size=6).filter(_parses)


@settings(max_examples=150, deadline=None)
@given(
    _regex,
    _regex,
    st.lists(st.text(alphabet=_CHARS + "AZ09_é\n", min_size=1, max_size=3), max_size=4),
)
def test_an_example_is_the_same_however_finely_other_patterns_cut_the_alphabet(a, b, extra):
    """Partition.readable_order: the classes of a policy's other patterns never change the
    string a question about two patterns finds."""
    pa, pb = automata.parse(a), automata.parse(b)
    coarse = Partition([*pa.sets, *pb.sets])
    cut = [tuple((ord(c), ord(c)) for c in sorted(set(x))) for x in extra]
    fine = Partition([*pa.sets, *pb.sets, *(tuple(sorted(s)) for s in cut)])
    got = []
    for p in (coarse, fine):
        da, db = automata.search_dfa(pa, p), automata.search_dfa(pb, p)
        got.append((automata.common(da, db), automata.counterexample(da, [db])))
    assert got[0] == got[1]


def test_a_question_is_answered_the_same_after_others_filled_its_machines(monkeypatch):
    """shelltext.Outgrown: a text question that meets the limit of subsets because earlier
    questions filled the machine is asked again on fresh machines, so it is answered as if
    it came first (a lint that asks only some questions, the rest from the cache, finds
    what a lint of every question does)."""
    from leashd.policy.analysis import shelltext

    text = _text(
        [
            ('commands: ["npm test"]', "allow", "npm-test"),
            (r"command_patterns: ['^npm\s+publish\s+.*--tag']", "deny", "publish"),
            (r"command_patterns: ['^npm\s+run\s+.*--x']", "deny", "run"),
        ]
    )
    pol = _policy(text)
    alone = lint(pol)
    assert not [f for f in alone if f.kind == "unanalyzable"]  # decided: never meet
    # Every machine starts as if earlier questions had made 30 subsets; each question
    # here needs fewer than 40 (32), so it only meets the limit because of them.
    real = shelltext.Texts.__init__

    def grown(self, *args, **kwargs):
        real(self, *args, **kwargs)
        if not getattr(self, "grown", False):  # not again when it is reset
            self.grown = True
            self.subsets.extend(frozenset({(-1, n)}) for n in range(30))
            self._final.extend([False] * 30)
            self._every.extend([False] * 30)

    resets = []
    reset = shelltext.Texts.reset
    monkeypatch.setattr(shelltext.Texts, "__init__", grown)
    monkeypatch.setattr(shelltext.Texts, "reset", lambda t: (resets.append(t), reset(t)))
    monkeypatch.setattr(shelltext, "_SUBSET_LIMIT", 40)
    assert lint(pol) == alone
    assert resets


def test_the_keys_of_a_rule_leave_out_where_it_is_written():
    one = _policy('rules:\n  - {name: a, commands: ["ls"], action: allow}\n')
    two = _policy('rules:\n\n\n  - {name: a, commands: ["ls"], action: allow}\n')
    assert one.rules[0].span != two.rules[0].span
    assert keys.rule_key(one.rules[0]) == keys.rule_key(two.rules[0])
    three = _policy('rules:\n  - {name: a, commands: ["ls"], action: deny}\n')
    assert keys.rule_key(one.rules[0]) != keys.rule_key(three.rules[0])


def test_moved_rules_are_those_out_of_a_longest_run_in_the_old_order():
    assert pair_cache._moved([0, 1, 2, 3]) == set()
    assert pair_cache._moved([0, -1, 1, 2]) == set()  # one added: nothing moved
    assert pair_cache._moved([1, 0, 2, 3]) in ({0}, {1})  # a swap: one of the two
    assert pair_cache._moved([3, 0, 1, 2]) == {0}  # the last moved first
