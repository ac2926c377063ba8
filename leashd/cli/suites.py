"""`leashd policy test`: policy test suites, their failures and the rules no case decided."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from leashd.cli.lazy import examples
from leashd.cli.options import exit_with, format_option
from leashd.plural import plural
from leashd.policy.errors import PolicyError
from leashd.policy.ir import Rule
from leashd.policy.testsuite import (
    CaseResult,
    builtin_suites,
    coverage,
    format_failure,
    junit_xml,
    run_suites,
    shown_path,
)


def _case_json(r: CaseResult) -> dict[str, Any]:
    return {
        "suite": r.suite,
        "case": r.index,
        "name": r.name,
        "line": r.line,
        "tool": r.tool,
        "input": r.input,
        "expect": r.expect,
        **({"expect_rule": r.expect_rule} if r.checks_rule else {}),
        **({"expect_approver": r.expect_approver} if r.expect_approver is not None else {}),
        "passed": r.passed,
        "rule_location": r.rule_where,
        **r.decision.to_json(),
        "approver": r.approver,  # who is asked: null (nobody), "human" or "ai"
        "layer": r.decision.layer,
    }


@click.command(
    "test",
    epilog=examples(
        "leashd policy test",
        "leashd policy test policies/tests/team.yaml --coverage --min-coverage 90",
        "leashd policy test --format junit > policy-tests.xml",
        "leashd policy test policies/tests/team.yaml --coverage --html coverage/",
        "leashd policy test --affected policies/team.yaml   # the suites that test it",
    ),
)
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=False))
@click.option("--junit", type=click.Path(dir_okay=False), help="Also write a JUnit XML report.")
@click.option("--coverage", "show_coverage", is_flag=True, help="Report rules no case exercised.")
@click.option(
    "--min-coverage",
    type=click.FloatRange(0, 100),
    help="Fail (exit 1) when fewer than this percentage of rules are exercised.",
)
@click.option(
    "--html",
    "html_dir",
    type=click.Path(file_okay=False),
    help="Also write an HTML coverage report into this directory (index.html).",
)
@click.option(
    "--affected",
    is_flag=True,
    help="FILEs are files that changed: run the suites among them and every suite of the "
    "project that tests one of them (what the pre-commit hook runs).",
)
@format_option("text", "json", "junit")
def test_cmd(
    files: tuple[str, ...],
    junit: str | None,
    show_coverage: bool = False,
    min_coverage: float | None = None,
    html_dir: str | None = None,
    fmt: str = "text",
    affected: bool = False,
) -> None:
    """Run policy test suites: the FILEs; with none, the project's suites (`suites` in
    .leashd.toml or pyproject's [tool.leashd]), else the built-in policies' suites.

    Exit 0 when every case passes (and coverage is at least --min-coverage), 1 otherwise,
    2 when a suite or its policies cannot be loaded."""
    rules_seen: list[Rule] = []
    try:
        paths = _suites_to_run(files, affected)
        if not paths:
            click.echo("no suite tests the changed files")
            return
        results = run_suites(paths, rules_seen)  # every suite file's errors at once
    except PolicyError as exc:
        exit_with(exc)
    failed = [r for r in results if not r.passed]
    if junit:
        Path(junit).write_text(junit_xml(results), encoding="utf-8")
    wants_cov = show_coverage or min_coverage is not None or html_dir is not None
    cov = coverage(results, rules_seen) if wants_cov else None
    if html_dir is not None and cov is not None:
        from leashd.policy.coverage_html import write_html

        index = write_html(cov, html_dir)
        click.echo(f"coverage report: {index}", err=fmt != "text")
    low = cov is not None and min_coverage is not None and cov.percent < min_coverage
    if fmt == "json":
        doc: dict[str, Any] = {
            "passed": len(results) - len(failed),
            "failed": len(failed),
            "suites": [str(p) for p in paths],
            "cases": [_case_json(r) for r in results],
        }
        if cov is not None:
            doc["coverage"] = {
                "rules": len(cov.rules),
                "exercised": len(cov.rules) - len(cov.missed),
                "percent": round(cov.percent, 1),
                "missed": [
                    {"rule": r.name, "action": r.action, "location": str(r.span)}
                    for r in cov.missed
                ],
            }
        click.echo(json.dumps(doc, indent=2, default=str))
    elif fmt == "junit":
        click.echo(junit_xml(results), nl=False)
    else:
        _print_text(results, failed, len(paths), cov, min_coverage)
    sys.exit(1 if failed or low else 0)


def _suites_to_run(files: tuple[str, ...], affected: bool) -> list[Path]:
    if files and not affected:
        return [Path(f) for f in files]
    from leashd.cli.project import affected_suites, find_project

    project = find_project()
    if affected:
        return affected_suites(project, list(files))
    return project.suite_files() if project.source is not None else builtin_suites()


def _print_text(
    results: list[CaseResult],
    failed: list[CaseResult],
    suites: int,
    cov: Any,
    min_coverage: float | None,
) -> None:
    for r in failed:
        click.echo(format_failure(r))
    click.echo(
        f"{len(results) - len(failed)} passed, {len(failed)} failed ({plural(suites, 'suite')})"
    )
    if cov is None:
        return
    for r in cov.missed:
        where = f"{shown_path(r.span.file)}:{r.span.line}:{r.span.column}"
        click.echo(f"{where}: rule {r.name!r} ({r.action}) decided no case")
    exercised = len(cov.rules) - len(cov.missed)
    click.echo(f"coverage: {exercised}/{plural(len(cov.rules), 'rule')} ({cov.percent:.1f}%)")
    if min_coverage is not None and cov.percent < min_coverage:
        click.echo(f"coverage {cov.percent:.1f}% is below --min-coverage {min_coverage:g}")
