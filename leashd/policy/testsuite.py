"""Policy test suites: calls with the decision and the deciding rule they must get.

A suite names its policies, the world the calls run in, and the cases (docs/testing.md;
suite_file.py reads it):

    policies: [default, dev-tools]
    context: {cwd: /home/dev/project, home: /home/dev, approved_dirs: [/home/dev/project]}
    sandbox: true
    cases:
      - {command: "git status", expect: allow, rule: read-only-git}
      - {tool: Read, input: {file_path: .env}, expect: deny, rule: credential-files}

`rule: null` expects the policy's default action or the sandbox to decide; a case without
`rule` only checks the decision. `expect_approver: human|ai` (with `expect: require_approval`)
also checks who is asked, as the gate routes the call (leashd/approvers/routing.py). A
failing case reads as

    suite.yaml:14: expected deny by credential-files, got allow by read-only (team.yaml:40)
    suite.yaml:15: expected require_approval (ai), got require_approval (human) by push (t.yaml:9)

at the case's own line, with the place of the rule that decided; the JUnit report says the
same. `coverage` tells which rules decided some case; coverage_html.py draws it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from leashd.approvers.routing import why_not_ai
from leashd.gate.sandbox import apply_sandbox
from leashd.policy.decision import Decision
from leashd.policy.errors import PolicyError, PolicyErrors
from leashd.policy.evaluator import Evaluator
from leashd.policy.ir import Rule
from leashd.policy.loader import load_compiled
from leashd.policy.locations import shown_file
from leashd.policy.suite_file import UNSET, Suite, read_suite
from leashd.resources import data_dir

__all__ = [
    "CaseResult",
    "Coverage",
    "Suite",
    "builtin_suites",
    "coverage",
    "format_failure",
    "junit_xml",
    "read_suite",
    "run_suite",
    "run_suites",
    "shown_path",
]


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
    line: int = 0  # where the case is written in its suite
    expect_approver: str | None = None  # who must be asked; None: not checked

    @property
    def checks_rule(self) -> bool:
        return self.expect_rule is not UNSET

    @property
    def approver(self) -> str | None:
        """Who the gate asks (None: nobody, the call is not a question): `ai` only when the
        AI approver may answer it (`why_not_ai`, the gate's floor), else `human`."""
        if self.decision.action != "require_approval":
            return None
        return "ai" if why_not_ai(self.tool, self.decision) is None else "human"

    @property
    def rule_passed(self) -> bool:
        return not self.checks_rule or self.decision.rule_name == self.expect_rule

    @property
    def approver_passed(self) -> bool:
        return self.expect_approver is None or self.approver == self.expect_approver

    @property
    def passed(self) -> bool:
        return self.decision.action == self.expect and self.rule_passed and self.approver_passed

    @property
    def failed_on(self) -> str:
        """What a failing case got wrong first: `decision`, `rule` or `approver` (the
        JUnit failure's type)."""
        if self.decision.action != self.expect:
            return "decision"
        return "rule" if not self.rule_passed else "approver"

    @property
    def where(self) -> str:
        """`FILE:LINE` of the case, the file as `shown_path` shows it."""
        file = shown_path(self.suite)
        return f"{file}:{self.line}" if self.line > 0 else file

    @property
    def rule_where(self) -> str | None:
        """`FILE:LINE` of the rule that decided, or None when no rule did."""
        rule = self.decision.rule
        if rule is None or rule.span.line <= 0:
            return None
        return f"{shown_path(rule.span.file, mark_builtin=True)}:{rule.span.line}"

    def failure(self) -> str:
        """What went wrong, in one line: `expected X [by R], got Y by RULE (FILE:LINE)`; a
        case with `expect_approver` says who on both sides: `require_approval (ai)`."""
        want, got = self.expect, self.decision.action
        if self.expect_approver is not None:
            want += f" ({self.expect_approver})"
            got += f" ({self.approver})" if self.approver is not None else ""
        if self.checks_rule:
            want += f" by {self.expect_rule}" if self.expect_rule is not None else " by no rule"
        got += f" by {decided_by(self.decision)}"
        where = self.rule_where
        return f"expected {want}, got {got}" + (f" ({where})" if where else "")

    def call(self) -> str:
        """The call as a person writes it: the command of a Bash call, else tool and input."""
        command = self.input.get("command")
        if self.tool == "Bash" and set(self.input) == {"command"} and isinstance(command, str):
            return command
        return f"{self.tool} {json.dumps(self.input, ensure_ascii=False, sort_keys=True)}"


_LAYERS = {
    "default": "the default action",
    "sandbox": "the sandbox",
    "opaque": "the opaque-command guard",
    "input": "the input check (a malformed call)",
    "limit": "a size limit",
}


def decided_by(decision: Decision) -> str:
    """The deciding rule's name, or what decided when no rule did."""
    if decision.rule is not None:
        return decision.rule.name
    return _LAYERS.get(decision.layer, f"the {decision.layer} layer")


def format_failure(r: CaseResult) -> str:
    """A failing case for people: `FILE:LINE: expected …, got … by RULE (FILE:LINE)`, then
    the call and the decision's reason, indented (and why a human is asked, when the case
    expected the AI approver)."""
    text = f"{r.where}: {r.failure()}\n    call: {r.call()}\n    reason: {r.decision.reason}"
    if r.expect_approver == "ai" and r.approver == "human":
        text += f"\n    why a human: {why_not_ai(r.tool, r.decision)}"
    return text


def shown_path(file: str, mark_builtin: bool = False) -> str:
    """A file as messages show it (`locations.shown_file`: a built-in policy by its name, a
    file under the current directory relative to it, else absolute); with `mark_builtin`, a
    built-in one as `built-in default.yaml`."""
    name, builtin, _ = shown_file(file)
    return f"built-in {name}" if builtin and mark_builtin else name


def builtin_suites() -> list[Path]:
    return sorted((data_dir("policies") / "tests").glob("*.yaml"))


def run_suite(path: str | Path, rules_seen: list[Rule] | None = None) -> list[CaseResult]:
    """Run one suite; `rules_seen` (if given) gets the rules of the policy it tests. Raises
    PolicyError for a suite that cannot be read (every mistake of the file at once) and for
    policies that cannot be loaded."""
    suite = read_suite(path)
    # As the runtime loads them: built-ins from compiled/ when it is current.
    compiled = load_compiled(list(suite.policies))
    if rules_seen is not None:
        rules_seen.extend(compiled.policy.rules)
    evaluator = Evaluator(compiled, suite.context())
    results = []
    for case in suite.cases:
        decision = evaluator.evaluate(case.tool, case.input)
        if suite.sandbox:
            decision = apply_sandbox(decision)
        results.append(
            CaseResult(
                suite=str(suite.path),
                index=case.index,
                name=case.name,
                tool=case.tool,
                input=case.input,
                expect=case.expect,
                expect_rule=case.rule,
                decision=decision,
                line=case.line,
                expect_approver=case.expect_approver,
            )
        )
    return results


def run_suites(
    paths: Iterable[str | Path], rules_seen: list[Rule] | None = None
) -> list[CaseResult]:
    """Run every suite; when any cannot be read or loaded, one PolicyError with the errors
    of all of them (a policy two suites share is reported once)."""
    results: list[CaseResult] = []
    errors: dict[tuple[str, int, int, str], PolicyError] = {}
    for path in paths:
        try:
            results.extend(run_suite(path, rules_seen))
        except PolicyErrors as exc:
            for e in exc.errors:
                errors.setdefault((e.file, e.line, e.column, e.message), e)
        except PolicyError as exc:
            errors.setdefault((exc.file, exc.line, exc.column, exc.message), exc)
    if len(errors) == 1:
        raise next(iter(errors.values()))
    if errors:
        raise PolicyErrors(list(errors.values()))
    return results


# --- coverage ---------------------------------------------------------------------------------


RuleKey = tuple[str, str]


@dataclass(frozen=True)
class Coverage:
    """Which rules decided at least one unit of some case, and which cases."""

    rules: tuple[Rule, ...]  # every rule of the policies under test, once
    exercised: frozenset[RuleKey]  # (source file, rule name)
    decided: Mapping[RuleKey, tuple[CaseResult, ...]] = field(default_factory=dict)
    suites: tuple[str, ...] = ()
    cases: int = 0
    failed: int = 0

    @staticmethod
    def key(rule: Rule) -> RuleKey:
        return (_same_file(rule.span.file), rule.name)

    @property
    def missed(self) -> list[Rule]:
        return [r for r in self.rules if self.key(r) not in self.exercised]

    @property
    def percent(self) -> float:
        return 100.0 * (len(self.rules) - len(self.missed)) / max(len(self.rules), 1)

    def cases_of(self, rule: Rule) -> tuple[CaseResult, ...]:
        """The cases in which `rule` decided a unit."""
        return self.decided.get(self.key(rule), ())


def _same_file(file: str) -> str:
    """One name per file, however a suite reached it (`tests/../team.yaml`)."""
    return file if file.startswith("<") else os.path.normpath(os.path.abspath(file))


def coverage(results: list[CaseResult], rules_seen: list[Rule]) -> Coverage:
    """Which rules the cases decided. A team's suites test its own policies stacked on the
    built-ins: its coverage is of its own rules (the built-ins have their suites, and their
    hundreds of rules would make any team's figure meaningless); a built-in's suites, of it."""
    every = {Coverage.key(r): r for r in rules_seen}
    own = {k: r for k, r in every.items() if not shown_file(r.span.file)[1]}
    rules = tuple((own or every).values())
    decided: dict[RuleKey, list[CaseResult]] = {}
    for res in results:
        keys = {
            Coverage.key(u.rule) for u in (*res.decision.units, res.decision) if u.rule is not None
        }
        for k in keys:
            decided.setdefault(k, []).append(res)
    return Coverage(
        rules,
        frozenset(decided),
        {k: tuple(v) for k, v in decided.items()},
        suites=tuple(dict.fromkeys(r.suite for r in results)),
        cases=len(results),
        failed=sum(not r.passed for r in results),
    )


# --- JUnit ------------------------------------------------------------------------------------

# What XML 1.0 cannot hold, even escaped: shown as `\xNN` / `\uNNNN`.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml(s: str) -> str:
    return _NOT_XML.sub(lambda m: repr(m.group())[1:-1], s)


def _attr(s: object) -> str:
    return quoteattr(_xml(str(s)))


def junit_xml(results: list[CaseResult]) -> str:
    """A JUnit XML report: a `<testsuite>` per suite file, a `<testcase>` per case with the
    suite's `file` and the case's `line`; a failure's message is the line `leashd policy
    test` prints for it (`FILE:LINE: expected …, got … by RULE (FILE:LINE)`)."""
    by_suite: dict[str, list[CaseResult]] = {}
    for r in results:
        by_suite.setdefault(r.suite, []).append(r)
    failures = sum(not r.passed for r in results)
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<testsuites name="leashd policy test" tests="{len(results)}" failures="{failures}"'
        ' errors="0">',
    ]
    for suite, cases in by_suite.items():
        file = shown_path(suite)
        failed = sum(not r.passed for r in cases)
        lines.append(
            f'  <testsuite name={_attr(file)} tests="{len(cases)}" failures="{failed}"'
            f' errors="0" file={_attr(file)}>'
        )
        for r in cases:
            head = (
                f"    <testcase classname={_attr(file)} name={_attr(r.name)}"
                f' file={_attr(file)} line="{r.line}"'
            )
            if r.passed:
                lines.append(head + "/>")
                continue
            kind = r.failed_on
            lines.append(head + ">")
            lines.append(
                f"      <failure message={_attr(f'{r.where}: {r.failure()}')}"
                f" type={_attr(kind)}>{escape(_xml(format_failure(r)))}</failure>"
            )
            lines.append("    </testcase>")
        lines.append("  </testsuite>")
    lines.append("</testsuites>")
    return "\n".join(lines) + "\n"
