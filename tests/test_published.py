"""Every policy a published leashd 0.x release shipped loads unchanged, converts to .leash and
back, and keeps every decision and every deciding rule name.

The files come from the real wheels (tests/fetch_published.py, run by the test command before
pytest); 31 releases ship 154 policy files, 22 of them distinct.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leashd.policy import Evaluator, compile_policy
from leashd.policy.calls import builtin_calls
from leashd.policy.convert import convert
from leashd.policy.leash_format import format_leash
from leashd.policy.loader import load_file

from .fetch_published import DEFAULT_DEST, VERSIONS, read_manifest
from .test_leash import same_ir

MANIFEST = read_manifest(DEFAULT_DEST)


def _distinct() -> list[tuple[str, Path]]:
    """One (id, path) per distinct file: `name@first-last` releases that shipped it."""
    by_digest: dict[str, list[tuple[str, str]]] = {}
    for version in VERSIONS:  # in release order
        for name, digest in sorted((MANIFEST or {}).get(version, {}).items()):
            by_digest.setdefault(digest, []).append((version, name))
    out = []
    for shipped in by_digest.values():
        (first, name), (last, _) = shipped[0], shipped[-1]
        span = first if first == last else f"{first}-{last}"
        out.append((f"{name}@{span}", DEFAULT_DEST / first / name))
    return out


DISTINCT = _distinct()


def test_every_published_release_was_fetched():
    assert MANIFEST is not None, (
        "the published leashd 0.x policies are missing: run `python tests/fetch_published.py` "
        "(the README's test command does)"
    )
    assert len(DISTINCT) == len({d for files in MANIFEST.values() for d in files.values()})
    assert {"default.yaml", "strict.yaml", "dev-tools.yaml"} <= set(MANIFEST["0.5.0"]) | set(
        MANIFEST["0.18.1"]
    )


class _Forms:
    """One published file loaded as it is, converted to .leash, and converted back to YAML."""

    def __init__(self, path: Path, tmp: Path, world) -> None:
        self.original = load_file(path)  # loads unchanged: no edit, no error
        self.leash_path = tmp / (path.stem + ".leash")
        self.leash_path.write_text(convert(path, "leash"), encoding="utf-8")
        self.leash = load_file(self.leash_path)
        self.yaml_path = tmp / (path.stem + ".back.yaml")
        self.yaml_path.write_text(convert(self.leash_path, "yaml"), encoding="utf-8")
        self.back = load_file(self.yaml_path)
        self.evaluators = [
            Evaluator(compile_policy(p), world) for p in (self.original, self.leash, self.back)
        ]

    def decisions(self, tool: str, tool_input: dict) -> set[tuple[str, str | None]]:
        return {
            (d.action, d.rule_name) for d in (e.evaluate(tool, tool_input) for e in self.evaluators)
        }


@pytest.fixture(scope="module")
def forms(tmp_path_factory):
    from leashd.policy.facts import Context

    from .conftest import WORLD

    world = Context.create(**WORLD)
    return {
        ident: _Forms(path, tmp_path_factory.mktemp(ident.replace("@", "-")), world)
        for ident, path in DISTINCT
    }


@pytest.mark.parametrize("ident", [i for i, _ in DISTINCT])
def test_a_published_policy_converts_both_ways_to_the_same_policy(forms, ident):
    f = forms[ident]
    assert f.original.rules, ident
    assert same_ir(f.original, f.leash) and same_ir(f.original, f.back)
    text = f.leash_path.read_text()
    assert format_leash(text, str(f.leash_path)) == text  # the converter writes canonical form


@pytest.mark.parametrize("ident", [i for i, _ in DISTINCT])
def test_a_published_policy_keeps_every_decision_on_the_known_calls(forms, ident):
    f = forms[ident]
    calls = builtin_calls()
    assert len(calls) > 2000
    decided_by = set()
    for c in calls:
        got = f.decisions(c.tool, c.input)
        assert len(got) == 1, (c.origin, c.short(), got)
        decided_by |= {name for _, name in got}
    # the calls reach the policy's rules, not only its default
    assert len(decided_by - {None}) >= min(3, len(f.original.rules)), decided_by


def _text_for(pattern: str) -> st.SearchStrategy[str]:
    return st.from_regex(re.compile(pattern), fullmatch=False).filter(lambda s: "\x00" not in s)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(st.data())
def test_published_policies_keep_decisions_on_calls_made_from_their_own_patterns(forms, data):
    """Calls drawn from each rule's own regexes, so every rule is exercised, not just those
    the known calls happen to reach."""
    f = forms[data.draw(st.sampled_from(sorted(forms)), label="policy")]
    rule = data.draw(
        st.sampled_from([r for r in f.original.rules if r.command_patterns or r.path_patterns])
    )
    if rule.command_patterns and (not rule.path_patterns or data.draw(st.booleans())):
        rx = data.draw(st.sampled_from(rule.command_patterns))
        tool, tool_input = "Bash", {"command": data.draw(_text_for(rx.pattern))}
    else:
        rx = data.draw(st.sampled_from(rule.path_patterns))
        tool = data.draw(st.sampled_from(rule.tools or ("Read",)))
        tool_input = {"file_path": data.draw(_text_for(rx.pattern))}
    got = f.decisions(tool, tool_input)
    assert len(got) == 1, (rule.name, tool, tool_input, got)
