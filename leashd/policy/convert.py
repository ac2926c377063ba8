"""Converting a policy file between YAML and .leash, keeping every decision and rule name.

The IR carries the meaning; comments are carried over from YAML to .leash in their places
(the file's header, above a rule, above a clause, between the elements of a list).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from leashd.policy.leash_printer import print_policy
from leashd.policy.loader import load_file
from leashd.policy.yaml_printer import print_yaml
from leashd.policy.yaml_source import read_yaml_source

Target = Literal["leash", "yaml"]


def convert(source: Path, target: Target) -> str:
    """The text of `source` (a .yaml/.yml or .leash policy) in the `target` language.
    Raises PolicyError, with the place, when the source does not load."""
    policy = load_file(source)
    if target == "yaml":
        return print_yaml(policy)
    original = None
    if source.suffix in (".yaml", ".yml"):
        original = read_yaml_source(source.read_text(encoding="utf-8"))
    return print_policy(policy, original, share=True)
