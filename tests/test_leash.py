"""The .leash language: parsed into the same IR as YAML, printed back, errors with their place."""

from __future__ import annotations

import textwrap

import pytest

from leashd.policy.diff import _without_spans
from leashd.policy.errors import PolicyError
from leashd.policy.ir import Policy
from leashd.policy.leash_frontend import parse_leash
from leashd.policy.leash_printer import print_policy
from leashd.policy.loader import BUILTIN_NAMES, load_policies
from leashd.policy.yaml_frontend import parse_yaml


def same_ir(a: Policy, b: Policy) -> bool:
    """Equal as policies: every rule and setting, wherever each came from."""
    dump = [_without_spans(r.model_dump(mode="json")) for r in a.rules]
    return dump == [_without_spans(r.model_dump(mode="json")) for r in b.rules] and (
        a.settings.model_dump(exclude_unset=True) == b.settings.model_dump(exclude_unset=True)
    )


def leash(text: str) -> Policy:
    return parse_leash(textwrap.dedent(text), "p.leash")


@pytest.mark.parametrize("name", BUILTIN_NAMES)
def test_every_built_in_prints_to_leash_and_reads_back_the_same(name):
    policy = load_policies([name])
    text = print_policy(policy)
    back = parse_leash(text, f"{name}.leash")
    assert same_ir(policy, back)
    assert print_policy(back) == text  # printing is canonical: a fixed point


def test_a_leash_policy_means_what_the_same_yaml_means():
    written = leash(
        """
        # the team's rules
        default ask
        approval-timeout 120
        let secrets = [".env", "*.pem"]

        deny credential-files paths @secrets except ".env.example" ignore-case
            reason "Credential files are never read"
            match "cat .env"
            match Read {file_path: "/home/dev/project/.env"}
        deny force-push cmd "git push ** --force" flags ["-f", "--force"]
        ask push cmd "git push" reason 'Sends commits to a remote'
        allow status cmd ["git status", "git log|diff"]
        deny drop regex '(?i)\\bdrop\\s+table' input sql ~ '(?i)drop'
        deny unset-env argv ["env", "-u", ["PATH", "HOME"]] opaque false lint-ignore conflict
        """
    )
    yaml_form = parse_yaml(
        textwrap.dedent(
            r"""
            settings: {default_action: require_approval, approval_timeout_seconds: 120}
            rules:
              - name: credential-files
                action: deny
                paths: {match: [".env", "*.pem"], except: [".env.example"], ignore_case: true}
                reason: Credential files are never read
                examples:
                  match: ["cat .env", {tool: Read, input: {file_path: /home/dev/project/.env}}]
              - {name: force-push, action: deny, commands: ["git push ** --force"],
                 flags: ["-f", "--force"]}
              - {name: push, action: require_approval, commands: ["git push"],
                 reason: Sends commits to a remote}
              - {name: status, action: allow, commands: ["git status", "git log|diff"]}
              - {name: drop, action: deny, command_patterns: ['(?i)\bdrop\s+table'],
                 input: {sql: '(?i)drop'}}
              - {name: unset-env, action: deny, argv: [env, -u, [PATH, HOME]], opaque: false,
                 lint_ignore: [conflict]}
            """
        ),
        "p.yaml",
    )
    assert same_ir(written, yaml_form)
    assert written.rules[0].span.line == 7  # spans point into the .leash text


@pytest.mark.parametrize(
    ("text", "line", "col", "fragment"),
    [
        ('deny x cmd "git push\n', 1, 12, "unterminated string"),
        ('deny x cmnd "git"\n', 1, 8, "unknown keyword 'cmnd' (did you mean 'cmd'?)"),
        ("deny x paths @secrets\n", 1, 14, "undefined name @secrets"),
        ('deny x cmd ["git"\n', 1, 18, "the file ends inside a list"),
        ("deny x match Read {a: 1\n", 1, 24, "the file ends inside `{ }`"),
        ("deny x reason\n", 1, 14, "the file ends too early: expected a string"),
        ("deny x regex '('\n", 1, 14, "bad regex"),
        ('deny x cmd "a"\ndeny x cmd "b"\n', 2, 1, "duplicate rule name 'x'"),
        ('deny x paths "a["\n', 1, 14, "bad glob"),
        ('deny x cmd "git $ push"\n', 1, 12, "must be the last token"),
        ("deny x risk extreme\n", 1, 13, "risk must be one of low"),
        ('deny x reason "a" reason "b"\n', 1, 19, "says `reason` twice"),
        ('deny x cmd "a" } \n', 1, 16, "unexpected '}': expected a clause"),
        ('deny x cmd "a" % \n', 1, 16, "unexpected character '%'"),
    ],
)
def test_errors_point_at_the_place_with_the_source_line(text, line, col, fragment):
    with pytest.raises(PolicyError) as info:
        parse_leash(text, "p.leash")
    err = info.value
    errors = getattr(err, "errors", [err])
    first = errors[0]
    assert (first.file, first.line, first.column) == ("p.leash", line, col), str(err)
    assert fragment in str(err)
    assert "^" in str(err)  # the caret under the column
