"""The policy compiler: sources -> IR -> compiled policy -> evaluator.

Stages, one file each: `yaml_frontend` (YAML -> IR), `ir`, `facts` (tool call -> units),
`compiler` (IR -> indexes and matchers), `evaluator` (decisions and traces), `reference`
(the plain interpreter the evaluator is tested against), `examples`, `loader`.

Names are imported on first use: `leashd policy eval` of a compiled built-in policy needs
neither PyYAML nor the analysis, and should not pay for them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_WHERE = {
    "CompiledPolicy": "compiler",
    "compile_policy": "compiler",
    "Decision": "decision",
    "UnitDecision": "decision",
    "PolicyError": "errors",
    "PolicyErrors": "errors",
    "Evaluator": "evaluator",
    "Context": "facts",
    "Unit": "facts",
    "extract": "facts",
    "Policy": "ir",
    "Rule": "ir",
    "load_policies": "loader",
    "load_yaml": "yaml_frontend",
    "parse_yaml": "yaml_frontend",
}
__all__ = [
    "CompiledPolicy",
    "Context",
    "Decision",
    "Evaluator",
    "Policy",
    "PolicyError",
    "PolicyErrors",
    "Rule",
    "Unit",
    "UnitDecision",
    "compile_policy",
    "extract",
    "load_policies",
    "load_yaml",
    "parse_yaml",
]

if TYPE_CHECKING:
    from leashd.policy.compiler import CompiledPolicy, compile_policy
    from leashd.policy.decision import Decision, UnitDecision
    from leashd.policy.errors import PolicyError, PolicyErrors
    from leashd.policy.evaluator import Evaluator
    from leashd.policy.facts import Context, Unit, extract
    from leashd.policy.ir import Policy, Rule
    from leashd.policy.loader import load_policies
    from leashd.policy.yaml_frontend import load_yaml, parse_yaml


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'leashd.policy' has no attribute {name!r}")
    return getattr(importlib.import_module(f"leashd.policy.{_WHERE[name]}"), name)
