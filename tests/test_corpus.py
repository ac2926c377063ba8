"""The shared corpora as regression suites for the default policy with the sandbox."""

from collections import Counter

import pytest

from leashd.gate.sandbox import apply_sandbox

from .conftest import corpus_rows

STRICTNESS = {"allow": 0, "require_approval": 1, "deny": 2}


def _decide(evaluator, row):
    return apply_sandbox(evaluator.evaluate(row["tool"], row["input"]))


@pytest.mark.parametrize("row", corpus_rows("adversarial"), ids=lambda r: r["id"])
def test_adversarial_never_looser_than_expected(evaluator, row):
    d = _decide(evaluator, row)
    assert STRICTNESS[d.action] >= STRICTNESS[row["expect"]], (
        f"{row['id']} ({row['class']}): expected {row['expect']}, got {d.action} by "
        f"{d.rule_name or d.layer}"
    )
    if row["expect"] == "deny":
        assert d.action == "deny"


def test_everyday_at_least_95_percent_exact_and_never_looser(evaluator):
    rows = corpus_rows("everyday")
    outcome = Counter()
    for row in rows:
        d = _decide(evaluator, row)
        assert STRICTNESS[d.action] >= STRICTNESS[row["expect"]], (
            f"{row['id']}: expected {row['expect']}, got {d.action}"
        )
        outcome["exact" if d.action == row["expect"] else "other"] += 1
    assert outcome["exact"] / len(rows) >= 0.95, outcome


def test_false_positive_traps_mostly_allowed(evaluator):
    allow_rows = [r for r in corpus_rows("adversarial") if r["expect"] == "allow"]
    allowed = sum(_decide(evaluator, r).action == "allow" for r in allow_rows)
    assert allowed / len(allow_rows) >= 0.95
