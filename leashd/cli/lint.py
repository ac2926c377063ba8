"""`leashd policy lint` and `leashd policy rule`: findings about policies, and their pages."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import click

from leashd.cli.lazy import examples
from leashd.cli.options import exit_with, format_option
from leashd.policy.analysis.catalog import CATALOG, document, lookup, selected
from leashd.policy.analysis.lint import Finding, lint
from leashd.policy.analysis.report import FORMATS, failing, render
from leashd.policy.errors import PolicyError, PolicyErrors
from leashd.policy.loader import load_policies


def _codes(value: str | None) -> list[str]:
    items = [x.strip() for x in (value or "").split(",") if x.strip()]
    for x in items:
        if not any(r.code.startswith(x.upper()) or r.kind == x.lower() for r in CATALOG):
            raise click.BadParameter(f"{x!r} is no lint code, code prefix or name")
    return items


class _Progress:
    """Where the lint is, on a terminal, once it has taken longer than a second: loading the
    policies, compiling, checking each rule, comparing the rules, finding example calls.

    The lint says where it is (`__call__`); a thread draws it every few tenths of a second,
    so that a long step with nothing to count (loading a large policy) still shows."""

    def __init__(self) -> None:
        self.state: tuple[int, int, str] = (0, 0, "loading")
        self.shown = False
        self.done = threading.Event()
        self.thread: threading.Thread | None = None
        if sys.stderr.isatty():
            self.thread = threading.Thread(target=self._draw_while_running, daemon=True)
            self.thread.start()

    def __call__(self, done: int, total: int, stage: str = "comparing rules") -> None:
        self.state = (done, total, stage)

    def _draw_while_running(self) -> None:
        if self.done.wait(1.0):
            return  # finished within a second: nothing to show
        while not self.done.is_set():
            self._draw()
            self.done.wait(0.2)

    def _draw(self) -> None:
        done, total, stage = self.state
        if total:
            width = 30
            filled = width * done // total
            bar = "#" * filled + "-" * (width - filled)
            line = f"lint: {stage:<17} [{bar}] {done}/{total} rules"
        else:
            line = f"lint: {stage}..."
        sys.stderr.write("\r" + line.ljust(_WIDTH)[:_WIDTH])
        sys.stderr.flush()
        self.shown = True

    def close(self) -> None:
        self.done.set()
        if self.thread is not None:
            self.thread.join()
        if self.shown:
            sys.stderr.write("\r" + " " * _WIDTH + "\r")
            sys.stderr.flush()


_WIDTH = 72  # columns the progress line takes (and clears)


@click.command(
    "lint",
    epilog=examples(
        "leashd policy lint",
        "leashd policy lint team.yaml --strict --select L1,L2",
        "leashd policy lint team.yaml --format sarif -o lint.sarif",
    ),
)
@click.argument("files", nargs=-1, metavar="[FILE|NAME]...")
@format_option(*FORMATS)
@click.option("--strict", is_flag=True, help="Warnings fail too (exit 1).")
@click.option("--select", help="Only these codes, code prefixes or names (comma-separated).")
@click.option("--ignore", help="Not these codes, code prefixes or names (comma-separated).")
@click.option("--show-info", is_flag=True, help="Also print info findings (text format).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the report here.")
@click.option(
    "--no-cache", is_flag=True, help="Analyse afresh, without reading or writing the cache."
)
@click.option(
    "--affected",
    is_flag=True,
    help="FILEs are files that changed: lint each stack of the project (.leashd.toml or "
    "[tool.leashd]) that uses one, and each file in no stack alone (the pre-commit hook).",
)
def lint_cmd(
    files: tuple[str, ...],
    fmt: str,
    strict: bool,
    select: str | None,
    ignore: str | None,
    show_info: bool,
    output: str | None,
    no_cache: bool = False,
    affected: bool = False,
) -> None:
    """Find rules that never fire, overlap, match nothing or fail their examples.

    The FILEs form one stack, in order. No FILE: the project's stacks (`stacks` in
    .leashd.toml or pyproject's [tool.leashd]), else the configured policies (the built-in
    default + dev-tools). Exit 0 when nothing fails, 1 on errors (and warnings with
    --strict), 2 when a policy cannot be loaded."""
    selected_codes, ignored_codes = _codes(select), _codes(ignore)
    findings: list[Finding] = []
    seen: set[tuple[str, str, str]] = set()
    errors: list[PolicyError] = []
    try:
        stacks = _stacks(files, affected)
    except PolicyError as exc:
        exit_with(exc)
    for specs in stacks:  # every stack is linted: one that fails to load stops no other
        progress = _Progress()  # from the loading on
        try:
            pol = load_policies(list(specs))
            found = lint(pol, progress, use_cache=not no_cache)
        except PolicyErrors as exc:
            errors.extend(exc.errors)
            continue
        except PolicyError as exc:
            errors.append(exc)
            continue
        finally:
            progress.close()
        for f in found:  # a file in two stacks: its own findings once
            key = (f.code, str(f.location), f.message)
            if key not in seen:
                seen.add(key)
                findings.append(f)
    if errors:
        exit_with(PolicyErrors(errors))
    findings = [f for f in findings if selected(f.code, selected_codes, ignored_codes)]
    report = render(findings, fmt, show_info)
    if output:
        Path(output).write_text(report, encoding="utf-8")
    else:
        click.echo(report, nl=False)
    sys.exit(1 if failing(findings, strict) else 0)


def _stacks(files: tuple[str, ...], affected: bool) -> list[tuple[str, ...]]:
    if files and not affected:
        return [files]
    from leashd.cli.project import affected_stacks, find_project

    project = find_project()
    if affected:
        return [specs for _name, specs in affected_stacks(project, list(files))]
    if project.stacks:
        return list(project.stacks.values())
    return [()]  # the configured policies


@click.command(
    "rule",
    epilog=examples(
        "leashd policy rule",
        "leashd policy rule L101",
        "leashd policy rule shadowed",
        "leashd policy rule --all > docs/lint-rules.md",
    ),
)
@click.argument("code", required=False)
@click.option("--all", "show_all", is_flag=True, help="Every page, as docs/lint-rules.md.")
def rule_cmd(code: str | None, show_all: bool) -> None:
    """Explain a lint code (`L101` or `shadowed`): what, why, an example, the fix. With no
    CODE, list every code."""
    if show_all:
        click.echo(document(), nl=False)
        return
    if code is None:
        for r in CATALOG:
            click.echo(f"{r.code}  {r.kind:<16} {r.severity:<8} {r.summary.split('. ')[0]}")
        return
    found = lookup(code)
    if found is None:
        click.echo(f"no lint rule {code!r}; `leashd policy rule` lists them", err=True)
        sys.exit(2)
    click.echo(found.page(), nl=False)
