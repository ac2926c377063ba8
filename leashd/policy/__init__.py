"""The policy compiler: sources -> IR -> compiled policy -> evaluator.

Stages, one file each: `yaml_frontend` (YAML -> IR), `ir`, `facts` (tool call -> units),
`compiler` (IR -> indexes and matchers), `evaluator` (decisions and traces), `reference`
(the plain interpreter the evaluator is tested against), `examples`, `loader`.
"""

from leashd.policy.compiler import CompiledPolicy, compile_policy
from leashd.policy.decision import Decision, UnitDecision
from leashd.policy.errors import PolicyError, PolicyErrors
from leashd.policy.evaluator import Evaluator
from leashd.policy.facts import Context, Unit, extract
from leashd.policy.ir import Policy, Rule
from leashd.policy.loader import load_policies
from leashd.policy.yaml_frontend import load_yaml, parse_yaml

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
