"""The built-in policies against each other: one hard line, and strict never looser.

`permissive` and `autonomous` relax what the default asks about, never what it refuses; `strict`
is never looser than the default anywhere. Checked on every call of the shared corpora and
of every built-in test suite (each policy's own cases included), so a new deny rule in the
default that is not carried over to the others fails here.
"""

from __future__ import annotations

import pytest
import yaml

from leashd.gate.sandbox import apply_sandbox
from leashd.policy import Evaluator, compile_policy, load_policies
from leashd.policy.facts import Context
from leashd.policy.ir import STRICTNESS
from leashd.policy.testsuite import builtin_suites

from .conftest import corpus_rows

WORLD = Context.create(
    cwd="/home/dev/project", home="/home/dev", approved_dirs=["/home/dev/project"]
)


def _calls() -> list[tuple[str, dict]]:
    calls = [(r["tool"], r["input"]) for n in ("everyday", "adversarial") for r in corpus_rows(n)]
    for path in builtin_suites():
        for case in yaml.safe_load(path.read_text())["cases"]:
            if "command" in case:
                calls.append(("Bash", {"command": case["command"]}))
            else:
                calls.append((case["tool"], case["input"]))
    return calls


@pytest.fixture(scope="module")
def decisions() -> dict[str, list[str]]:
    calls = _calls()
    out = {}
    for name, specs in {
        "default": ["default", "dev-tools"],
        "strict": ["strict"],
        "permissive": ["permissive"],
        "autonomous": ["autonomous"],
    }.items():
        ev = Evaluator(compile_policy(load_policies(specs)), WORLD)
        out[name] = [apply_sandbox(ev.evaluate(t, i)).action for t, i in calls]
    out["calls"] = calls  # type: ignore[assignment]
    return out


@pytest.mark.parametrize("name", ["strict", "permissive", "autonomous"])
def test_what_the_default_refuses_every_builtin_refuses(decisions, name):
    missed = [
        c
        for c, d, x in zip(decisions["calls"], decisions["default"], decisions[name], strict=True)
        if d == "deny" and x != "deny"
    ]
    assert not missed, f"{name} lets through {len(missed)} calls the default refuses: {missed[:5]}"


def test_strict_is_never_looser_than_the_default(decisions):
    looser = [
        (c, d, s)
        for c, d, s in zip(
            decisions["calls"], decisions["default"], decisions["strict"], strict=True
        )
        if STRICTNESS[s] < STRICTNESS[d]
    ]
    assert not looser, looser[:5]
