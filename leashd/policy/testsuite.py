"""Policy test suites: calls with the decision and the deciding rule they must get.

A suite names its policies, the world the calls run in, and the cases:

    policies: [default, dev-tools]
    context: {cwd: /home/dev/project, home: /home/dev, approved_dirs: [/home/dev/project]}
    sandbox: true
    cases:
      - {command: "git status", expect: allow, rule: read-only-git}
      - {tool: Read, input: {file_path: .env}, expect: deny, rule: credential-files}

`rule: null` expects the policy's default action or the sandbox to decide; a case without
`rule` only checks the decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import yaml

from leashd.gate.sandbox import apply_sandbox
from leashd.policy.decision import Decision
from leashd.policy.errors import PolicyError
from leashd.policy.evaluator import Evaluator
from leashd.policy.facts import Context
from leashd.policy.ir import ACTIONS, Rule
from leashd.policy.loader import load_compiled
from leashd.resources import data_dir

_UNSET = object()


@dataclass(frozen=True)
class CaseResult:
    suite: str
    index: int
    name: str
    tool: str
    input: dict[str, Any]
    expect: str
    expect_rule: object
    decision: Decision

    @property
    def checks_rule(self) -> bool:
        return self.expect_rule is not _UNSET

    @property
    def passed(self) -> bool:
        if self.decision.action != self.expect:
            return False
        return not self.checks_rule or self.decision.rule_name == self.expect_rule


def builtin_suites() -> list[Path]:
    return sorted((data_dir("policies") / "tests").glob("*.yaml"))


def _fail(path: str, message: str) -> PolicyError:
    return PolicyError(message, path, 1, 1)


def run_suite(path: Path, rules_seen: list[Rule] | None = None) -> list[CaseResult]:
    """Run one suite; `rules_seen` (if given) gets the rules of the policy it tests."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise _fail(str(path), f"cannot read test suite: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("cases"), list):
        raise _fail(str(path), "a test suite is a mapping with a 'cases' list")
    specs = doc.get("policies") or []
    base = path.parent
    resolved = [
        s if not str(s).endswith((".yaml", ".yml", ".leash")) else str(base / s) for s in specs
    ]
    # As the runtime loads them: built-ins from compiled/ when it is current.
    compiled = load_compiled(resolved)
    policy = compiled.policy
    if rules_seen is not None:
        rules_seen.extend(policy.rules)
    c = doc.get("context") or {}
    ctx = Context.create(
        cwd=c.get("cwd", "/home/dev/project"),
        home=c.get("home", "/home/dev"),
        approved_dirs=c.get("approved_dirs", ()),
        mode=c.get("mode", "default"),
    )
    evaluator = Evaluator(compiled, ctx)
    sandbox = bool(doc.get("sandbox", True))
    results = []
    for i, case in enumerate(doc["cases"], 1):
        if not isinstance(case, dict) or case.get("expect") not in ACTIONS:
            raise _fail(str(path), f"case {i}: needs 'expect' ({', '.join(ACTIONS)})")
        tool = case.get("tool", "Bash")
        tool_input = case.get("input")
        if "command" in case:
            tool_input = {"command": case["command"]}
        decision = evaluator.evaluate(tool, tool_input)
        if sandbox:
            decision = apply_sandbox(decision)
        results.append(
            CaseResult(
                suite=str(path),
                index=i,
                name=str(case.get("name") or case.get("command") or tool),
                tool=tool,
                input=tool_input if isinstance(tool_input, dict) else {},
                expect=case["expect"],
                expect_rule=case.get("rule", _UNSET),
                decision=decision,
            )
        )
    return results


@dataclass(frozen=True)
class Coverage:
    """Which rules decided at least one unit of some case."""

    rules: tuple[Rule, ...]  # every rule of the policies under test, once
    exercised: frozenset[tuple[str, str]]  # (source file, rule name)

    @staticmethod
    def key(rule: Rule) -> tuple[str, str]:
        return (rule.span.file, rule.name)

    @property
    def missed(self) -> list[Rule]:
        return [r for r in self.rules if self.key(r) not in self.exercised]

    @property
    def percent(self) -> float:
        return 100.0 * (len(self.rules) - len(self.missed)) / max(len(self.rules), 1)


def coverage(results: list[CaseResult], rules_seen: list[Rule]) -> Coverage:
    rules = tuple({Coverage.key(r): r for r in rules_seen}.values())
    hit = {
        Coverage.key(u.rule)
        for res in results
        for u in (*res.decision.units, res.decision)
        if u.rule is not None
    }
    return Coverage(rules, frozenset(hit))


def junit_xml(results: list[CaseResult]) -> str:
    failures = sum(not r.passed for r in results)
    lines = [f'<testsuite name="leashd-policy" tests="{len(results)}" failures="{failures}">']
    for r in results:
        lines.append(f'  <testcase classname="{escape(r.suite)}" name="{escape(r.name)}">')
        if not r.passed:
            msg = (
                f"expected {r.expect} ({r.expect_rule if r.checks_rule else '-'})"
                f", got {r.decision.action} ({r.decision.rule_name})"
            )
            lines.append(f'    <failure message="{escape(msg, {chr(34): "&quot;"})}"/>')
        lines.append("  </testcase>")
    lines.append("</testsuite>")
    return "\n".join(lines) + "\n"
