"""Order anomalies on small policies: each kind found where it is, and not where it is not."""

from __future__ import annotations

import textwrap

from leashd.policy.analysis.anomalies import find_anomalies
from leashd.policy.analysis.regions import Regions
from leashd.policy.analysis.witness import EXTRA, Witnesses
from leashd.policy.compiler import compile_policy
from leashd.policy.yaml_frontend import parse_yaml


def anomalies(yaml_rules: str) -> tuple[list, dict[str, int]]:
    policy = parse_yaml("rules:\n" + textwrap.indent(textwrap.dedent(yaml_rules), "  "))
    compiled = compile_policy(policy, verify=False)
    regions = Regions(policy, EXTRA)
    found = find_anomalies(regions, Witnesses(compiled, regions))
    names = {r.name: i for i, r in enumerate(policy.rules)}
    return found, names


def kinds_about(found, names, rule: str) -> set[str]:
    return {a.kind for a in found if a.rule == names[rule]}


def test_a_narrower_later_rule_is_shadowed_by_a_wider_earlier_one():
    found, names = anomalies(
        """
        - {name: git-push, tools: [Bash], commands: ["git push"], action: require_approval}
        - {name: force-push, tools: [Bash], commands: ["git push --force"], action: deny}
        """
    )
    shadowed = [a for a in found if a.kind == "shadowed"]
    assert [(a.rule, a.related) for a in shadowed] == [(names["force-push"], (names["git-push"],))]


def test_same_action_is_redundant_not_shadowed():
    found, names = anomalies(
        """
        - {name: reads, commands: ["cat|head|tail"], action: allow}
        - {name: cat, commands: ["cat"], action: allow}
        """
    )
    assert kinds_about(found, names, "cat") == {"redundant"}


def test_several_earlier_rules_together_shadow_a_later_one():
    found, names = anomalies(
        """
        - {name: pem, tools: [Read], paths: {match: ["*.pem"]}, action: deny}
        - {name: key, tools: [Read], paths: {match: ["*.key"]}, action: deny}
        - {name: both, tools: [Read], paths: {match: ["*.pem", "*.key"]}, action: allow}
        """
    )
    (finding,) = [a for a in found if a.kind == "shadowed"]
    assert finding.rule == names["both"]
    assert set(finding.related) == {names["pem"], names["key"]}


def test_tools_are_compared_per_tool():
    found, names = anomalies(
        """
        - {name: read-env, tools: [Read], paths: {match: [".env"]}, action: deny}
        - {name: write-env, tools: [Write], paths: {match: [".env"]}, action: deny}
        - {name: env-any, tools: [Read, Write], paths: {match: [".env"]}, action: require_approval}
        """
    )
    assert kinds_about(found, names, "env-any") == {"shadowed"}


def test_an_earlier_narrow_rule_of_another_action_is_an_exception():
    found, names = anomalies(
        """
        - {name: force-push, commands: ["git push --force"], action: deny}
        - {name: git-push, commands: ["git push"], action: require_approval}
        """
    )
    assert [(a.kind, a.rule, a.related) for a in found] == [
        ("exception", names["force-push"], (names["git-push"],))
    ]


def test_a_partial_overlap_is_a_conflict_with_an_example_both_match():
    found, names = anomalies(
        """
        - {name: git-read, commands: ["git log|show"], action: allow}
        - {name: no-secrets, command_patterns: ['(?i)\\bsecret\\b'], action: deny}
        """
    )
    (conflict,) = [a for a in found if a.kind == "conflict"]
    assert conflict.rule == names["no-secrets"] and conflict.related == (names["git-read"],)
    command = conflict.example["input"]["command"]
    assert command.split()[:2] in (["git", "log"], ["git", "show"])
    assert "secret" in command.lower()


def test_rules_on_different_programs_have_nothing_to_say():
    found, _ = anomalies(
        """
        - {name: npm, commands: ["npm install"], action: require_approval}
        - {name: git, commands: ["git status"], action: allow}
        - {name: pip, commands: ["pip install"], action: deny}
        """
    )
    assert found == []


def test_word_boundaries_and_anchors_are_read_exactly():
    # `^sudo\b` never matches `sudoedit`: the second rule is not shadowed by the first
    found, names = anomalies(
        """
        - {name: sudo, command_patterns: ['^sudo\\b'], action: deny}
        - {name: sudoedit, command_patterns: ['^sudoedit\\b'], action: require_approval}
        - {name: sudo-ls, command_patterns: ['^sudo ls'], action: require_approval}
        """
    )
    assert "shadowed" not in kinds_about(found, names, "sudoedit")
    assert kinds_about(found, names, "sudo-ls") == {"shadowed"}


def test_a_lookahead_is_unanalyzable_never_assumed_disjoint():
    found, names = anomalies(
        """
        - {name: push, command_patterns: ['git push(?! --dry-run)'], action: deny}
        - {name: git, commands: ["git"], action: allow}
        """
    )
    about = [a for a in found if a.rule == names["push"] and a.kind == "unanalyzable"]
    assert about and "lookahead" in about[0].detail


def test_a_question_too_large_to_decide_is_never_taken_as_proved(monkeypatch):
    from leashd.policy.analysis import automata

    monkeypatch.setattr(automata, "_FIND_BUDGET", 1)
    found, names = anomalies(
        """
        - {name: git-push, commands: ["git push"], action: require_approval}
        - {name: force-push, commands: ["git push --force"], action: deny}
        """
    )
    # the shadowing is real, but with no room to prove it, it is not claimed
    assert "shadowed" not in kinds_about(found, names, "force-push")


def test_an_end_marker_before_more_words_matches_nothing_to_the_analysis_too():
    # The loader refuses `git $ push`; an IR built another way must still be read as the
    # evaluator reads it: nothing can follow the end of argv.
    from leashd.policy.analysis.argvlang import ArgvLang, Words

    words = Words()
    never = ArgvLang.of_patterns(((("git",), ("$",), ("push",)),), lenient=False)
    git = ArgvLang.of_patterns(((("git",),),), lenient=False)
    assert words.example(never, git) is None
    assert not words.contained(git, [never])
    ends = ArgvLang.of_patterns(((("git",), ("$",), ("**",)),), lenient=False)
    assert words.example(ends, git) == ["git"]
