"""Lint decides rules on a command's text against rules on its words, instead of shrugging.

A legacy `command_patterns` regex reads a unit's text (and, for a deny rule, its words and its
pipeline's text); an argv rule reads its words. `shelltext.py` relates the two with a
transducer from a unit's text to its words. These tests pin the verdicts on the cases of
issue 21, check the transducer against the real shell parser on generated commands (every
unit's text is one the transducer relates to its words), and check the lint's claims for all
generated pairs of rules: a pair it says nothing about is decided the same in either order,
and a conflict's example really is decided as the finding says.
"""

from __future__ import annotations

import json
import re
import textwrap

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from leashd.policy.analysis import automata, shelltext
from leashd.policy.analysis.charsets import Partition
from leashd.policy.analysis.lint import lint
from leashd.policy.compiler import compile_policy
from leashd.policy.errors import PolicyError
from leashd.policy.evaluator import Evaluator
from leashd.policy.examples import EXAMPLE_CONTEXT
from leashd.policy.facts import extract
from leashd.policy.yaml_frontend import parse_yaml
from leashd.shell import DYNAMIC
from leashd.shell.parser import parse


def policy_of(rules: str):
    return parse_yaml("rules:\n" + textwrap.indent(textwrap.dedent(rules), "  "), "p.yaml")


def decide(policy, command: str) -> str:
    evaluator = Evaluator(compile_policy(policy, verify=False), EXAMPLE_CONTEXT)
    return evaluator.evaluate("Bash", {"command": command}).action


def reversed_policy(policy):
    return policy.model_copy(update={"rules": tuple(reversed(policy.rules))})


NPM_TEST = r"""
- {name: npm-test, commands: ["npm test"], action: allow}
- {name: npm-publish-tag, command_patterns: ['^npm\s+publish\s+.*--tag'], action: deny}
"""
NPM_ANY = r"""
- {name: npm-any, commands: ["npm"], action: allow}
- {name: npm-publish, command_patterns: ['^npm\s+publish'], action: deny}
"""


# --- the verdicts of issue 21 ----------------------------------------------------------------


def test_npm_test_and_npm_publish_never_meet():
    # `npm test …` is never `npm publish …`, whatever the quoting; the lint says so by
    # saying nothing (no L401 "unanalyzable", no conflict)
    assert lint(policy_of(NPM_TEST)) == []
    pol = policy_of(NPM_TEST)
    commands = [
        "npm test",
        "npm publish --tag x",
        "npm publish --tag x | npm test",
        "npm 'test' --tag",
        "X=1 npm test --tag",
        "npm test && npm publish --tag",
    ]
    for command in commands:
        assert decide(pol, command) == decide(reversed_policy(pol), command), command


def test_npm_and_npm_publish_overlap_with_a_witness_the_evaluator_agrees_with():
    pol = policy_of(NPM_ANY)
    found = lint(pol)
    assert [(f.code, f.kind, f.severity, f.rule, f.related) for f in found] == [
        ("L103", "conflict", "warning", "npm-publish", ("npm-any",))
    ]
    (conflict,) = found
    assert "gets allow" in conflict.message
    call = conflict.example
    assert call is not None and call["tool"] == "Bash"
    # both rules match a unit of it, the earlier decides, and the whole call gets its action
    compiled = compile_policy(pol, verify=False)
    facts = extract(call["tool"], call["input"], EXAMPLE_CONTEXT)
    assert any(
        compiled.matches(0, u, EXAMPLE_CONTEXT) and compiled.matches(1, u, EXAMPLE_CONTEXT)
        for u in facts.units
    )
    assert decide(pol, call["input"]["command"]) == "allow"
    assert decide(reversed_policy(pol), call["input"]["command"]) == "deny"


def test_a_pipeline_the_looser_rule_has_every_stage_of_is_a_conflict():
    pol = policy_of(
        r"""
        - {name: cat, commands: ["cat $"], action: allow}
        - {name: cat-to-cat, command_patterns: ['^cat\s*\|\s*cat'], action: deny}
        """
    )
    (conflict,) = lint(pol)
    assert (conflict.kind, conflict.severity) == ("conflict", "warning")
    command = conflict.example["input"]["command"]
    assert "|" in command
    assert decide(pol, command) == "allow" and decide(reversed_policy(pol), command) == "deny"


def test_regexes_on_different_programs_are_apart_through_the_pipeline_too():
    pol = policy_of(
        r"""
        - {name: status, command_patterns: ['^git[ \t]+status\b'], action: allow}
        - {name: npm-publish, command_patterns: ['^npm[ \t]+publish\b'], action: deny}
        """
    )
    assert lint(pol) == []


def test_a_whitespace_class_meets_a_program_run_by_a_path():
    # `\s` also finds characters the shell does not split on (`\x1c`): a program run by a
    # path is also a unit under its bare name, whose text is the path's. So `git\x1cstatus/npm
    # publish` is `npm publish` to the deny rule (its words) and `git status` to the allow
    # rule (its text): the allow decides it. A real call, so a real finding.
    pol = policy_of(
        r"""
        - {name: status, command_patterns: ['^git\s+status\b'], action: allow}
        - {name: npm-publish, command_patterns: ['^npm\s+publish\b'], action: deny}
        """
    )
    (conflict,) = lint(pol)
    command = conflict.example["input"]["command"]
    assert (conflict.kind, conflict.severity) == ("conflict", "warning")
    assert decide(pol, command) == "allow" and decide(reversed_policy(pol), command) == "deny"
    assert "\\x1c" in conflict.message  # shown escaped


def test_a_lookaround_is_still_unanalyzable():
    pol = policy_of(
        r"""
        - {name: npm-test, commands: ["npm test"], action: allow}
        - {name: env, command_patterns: ['^npm(?!\s+test)'], action: deny}
        """
    )
    # the automata cannot hold a lookahead: the question stays open, and lint says so
    found = {(f.code, f.severity, f.rule) for f in lint(pol)}
    assert {("L401", "warning", "env"), ("L401", "info", "env")} <= found
    assert not [f for f in found if f[0] == "L103"]


# --- the transducer against the shell parser -----------------------------------------------------

_TEXT_CHARS = st.sampled_from(
    [*"ab ab ab-=", " ", "\t", "'", '"', "\\", "$", "{", "}", ",", "`", "~", "/", "#", "\n",
     "\x1c", "\xa0", "|", ";", "(", ")", "<", ">", "&", "*", "\\\n"]
)  # fmt: skip
_PROGRAMS = st.sampled_from(["a", "npm", "./b/npm", "/usr/bin/npm", "timeout 5 a", "env X=1 a",
                             "X=1 a", "xargs a", "sh -c 'a b'"])  # fmt: skip


def _exact_regex(words: list[str], joined: str, shadows: bool) -> str:
    """The one words string of these words, as a full-match regex (`words_regex` for a
    literal argv)."""
    prefix = r"(?:[^\x00]*/)?" if shadows else r"(?:/[^\x00]*/)?"
    return "(?s)^" + prefix + re.escape(joined).join(re.escape(w) for w in words) + r"\Z"


def _accepts(text: str, words: list[str], joined: str, shadows: bool) -> bool:
    rx = _exact_regex(words, joined, shadows)
    pattern = automata.parse(rx)
    partition = Partition([*shelltext.SETS, *pattern.sets])
    words_dfa = automata.search_dfa(pattern, partition)
    texts = shelltext.Texts(shelltext.spelling(partition, False, shadows), words_dfa, joined)
    state = texts.start
    for ch in text:
        state = texts.next(state, partition.class_of(ch))
        if state == -1:
            return False
    return texts.final(state)


def _check_units(command: str) -> None:
    parsed = parse(command)
    if parsed.error:
        return  # the whole call is opaque: no argv rule allows it
    for u in parsed.units:
        if not u.argv or u.opaque or DYNAMIC in u.argv[0]:
            continue
        # argv[0] as a rule for its program sees it (the program's name, or the path)
        words = [u.argv[0], *(w.replace(DYNAMIC, "$?") for w in u.argv[1:])]
        assert _accepts(u.text, words, shelltext.SEP, shadows=u.shadow), (command, u)
        shown = [w.replace(DYNAMIC, "$?") for w in u.argv]
        assert _accepts(u.text, shown, " ", shadows=True), (command, u.text, shown)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_PROGRAMS, st.lists(_TEXT_CHARS, max_size=14).map("".join))
@example("a", ' b \'c d\' "e\\"f" g\\ h')
@example("npm", " 'test' \"--tag\"")
@example("a", " ~ '~x' \"~y\"")
@example("./b/npm", " test")
@example("a", " x >o y 2>&1 # c")
@example("a", ' {b,c} "{d,e}"f')
@example("a", ' $X "$Y" `z` $(w)')
@example("a", "\x1cb\xa0c \\\nd")
def test_every_units_text_is_one_the_transducer_reads_as_its_words(program, rest):
    _check_units(program + rest)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(_PROGRAMS, st.lists(_TEXT_CHARS, max_size=6).map("".join)),
                min_size=2, max_size=3),
       st.sampled_from([" | ", " && ", "; ", " |& ", "\n"]))  # fmt: skip
def test_units_of_lists_and_pipelines_too(stages, joiner):
    _check_units(joiner.join(p + r for p, r in stages))


# --- the lint's claims, for all generated pairs --------------------------------------------------

_ARGV = st.builds(
    lambda prog, toks: " ".join([prog, *toks]),
    st.sampled_from(["npm", "git", "cat"]),
    st.lists(st.sampled_from(["test", "publish", "push", "--tag", "*", "-*", "$", "**"]),
             max_size=2),
)  # fmt: skip
_REGEX = st.sampled_from([
    r"^npm\s+publish", r"^npm\s+publish\s+.*--tag", r"^git\s+(push|status)\b", r"--tag\b",
    r"\bpublish\b", r"^npm\s+test\s*$", r"^cat\s*\|\s*cat", r"\|\s*sh\b", r"^(npm|git)\s",
    r"^\S+\s+-", r"'", r"^cat$",
])  # fmt: skip
_ACTIONS = ["allow", "require_approval", "deny"]
_WORD = st.sampled_from(["test", "publish", "push", "status", "--tag", "x", "-f", "sh"])
_SPELL = st.sampled_from(["{}", "'{}'", '"{}"', "\\{}", "{}''"])
_UNIT = st.builds(
    lambda prefix, prog, words, spells, suffix: prefix + " ".join(
        [prog, *(s.format(w) for w, s in zip(words, spells, strict=False))]
    ) + suffix,
    st.sampled_from(["", "", "X=1 ", "timeout 5 "]),
    st.sampled_from(["npm", "git", "cat", "sh", "/usr/bin/npm", "'npm'"]),
    st.lists(_WORD, max_size=3),
    st.lists(_SPELL, min_size=3, max_size=3),
    st.sampled_from(["", "", " >out", " 2>&1", " # c"]),
)  # fmt: skip
_COMMAND = st.builds(
    lambda units, joiner: joiner.join(units),
    st.lists(_UNIT, min_size=1, max_size=3),
    st.sampled_from([" | ", " && ", "; ", "|"]),
)


def _rule_lines(first, second) -> str:
    lines = []
    for name, (kind, value, action) in (("a", first), ("b", second)):
        key = "commands" if kind == "argv" else "command_patterns"
        lines.append(f"- {{name: {name}, {key}: [{json.dumps(value)}], action: {action}}}")
    return "\n".join(lines) + "\n"


_RULE = st.one_of(
    st.tuples(st.just("argv"), _ARGV, st.sampled_from(_ACTIONS)),
    st.tuples(st.just("regex"), _REGEX, st.sampled_from(_ACTIONS)),
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_RULE, _RULE, st.lists(_COMMAND, min_size=1, max_size=12))
@example(
    ("argv", "npm test", "allow"),
    ("regex", r"^npm\s+publish\s+.*--tag", "deny"),
    ["npm publish --tag x | npm test", "npm test --tag", "npm 'publish' --tag"],
)
def test_what_lint_says_about_a_pair_holds_for_every_call(first, second, commands):
    order = ["allow", "require_approval", "deny"]
    if "regex" not in (first[0], second[0]) or order.index(first[2]) >= order.index(second[2]):
        return  # a looser rule first, and a regex: where lint must decide or say it cannot
    try:
        pol = policy_of(_rule_lines(first, second))
    except PolicyError:
        return  # a generated pattern the loader refuses
    found = [f for f in lint(pol) if f.related]
    kinds = {f.kind for f in found}
    swapped = reversed_policy(pol)
    if not kinds:  # nothing to say: the order of the two decides no call
        for command in commands:
            assert decide(pol, command) == decide(swapped, command), (command, found)
    for f in found:
        if f.kind == "conflict" and f.severity == "warning":
            command = f.example["input"]["command"]
            if "the call itself gets a stricter decision" in f.message:
                # only a unit of it was found: that unit is the earlier rule's
                compiled = compile_policy(pol, verify=False)
                facts = extract("Bash", {"command": command}, EXAMPLE_CONTEXT)
                assert any(compiled.first_match(u, EXAMPLE_CONTEXT) == 0 for u in facts.units)
                assert order.index(decide(pol, command)) > order.index(first[2]), f
                continue
            assert decide(pol, command) == first[2], f
            assert decide(swapped, command) == second[2], f
