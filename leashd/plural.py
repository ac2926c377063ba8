"""Counted nouns for messages: "1 finding", "2 findings", "0 policies"."""

from __future__ import annotations


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """`count` and the noun in the number it takes (`nouns`: the plural, when adding an s
    does not make it: `plural(n, "policy", "policies")`)."""
    return f"{count} {noun if count == 1 else nouns or noun + 's'}"
