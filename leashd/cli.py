"""The `leashd` command line. Thin: parsing arguments and printing; the library does the work."""

from __future__ import annotations

import collections
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import click

from leashd.daemon.commands import register as register_daemon_commands
from leashd.daemon.workspace_commands import ws_group
from leashd.gate import audit as audit_log
from leashd.gate.sandbox import apply_sandbox
from leashd.policy import PolicyError, artifact, load_policies
from leashd.policy.analysis.catalog import CATALOG, document, lookup, selected
from leashd.policy.analysis.lint import lint
from leashd.policy.analysis.report import FORMATS, failing, render
from leashd.policy.calls import builtin_calls, read_lines
from leashd.policy.calls import load as load_calls
from leashd.policy.convert import Target, convert
from leashd.policy.decision import Decision, malformed
from leashd.policy.diff import PolicyDiff
from leashd.policy.diff import diff as diff_policies
from leashd.policy.evaluator import Evaluator
from leashd.policy.facts import Context
from leashd.policy.leash_format import format_file
from leashd.policy.loader import compiled_files, load_compiled
from leashd.policy.schema import policy_schema
from leashd.policy.testsuite import builtin_suites, coverage, junit_xml, run_suite
from leashd.policy.tool_inputs import input_problem


@click.group()
@click.version_option(package_name="leashd")
def main() -> None:
    """leashd: a safety gate between an AI coding agent and your machine."""


@main.group()
def policy() -> None:
    """Evaluate, explain and test policies."""


_policy_opt = click.option(
    "--policy",
    "policies",
    multiple=True,
    metavar="NAME|FILE",
    help="Policy to load, in order (default: the built-in default + dev-tools).",
)


def _world_opts(f: Any) -> Any:
    """--cwd, --home, --approved-dir: the world a call is decided in."""
    f = click.option(
        "--approved-dir",
        "approved",
        multiple=True,
        help="Apply the sandbox with this approved directory (repeatable).",
    )(f)
    f = click.option("--home", help="What ~ means (may not exist here: resolution is lexical).")(f)
    return click.option("--cwd", help="The session's working directory.")(f)


def _world(cwd: str | None, home: str | None, approved: tuple[str, ...]) -> Context:
    return Context.create(cwd=cwd, home=home, approved_dirs=approved)


def _evaluator(policies: tuple[str, ...], ctx: Context) -> Evaluator:
    try:
        return Evaluator(load_compiled(list(policies)), ctx)
    except PolicyError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@policy.command("eval")
@_policy_opt
@_world_opts
@click.option("--calls", default="-", type=click.File("rb"), help="JSON Lines of tool calls.")
@click.option("--stats", is_flag=True, help="Print timing figures as JSON on stderr.")
@click.option("--repeat", default=20, show_default=True, help="Warm passes for --stats.")
def eval_cmd(
    policies: tuple[str, ...],
    cwd: str | None,
    home: str | None,
    approved: tuple[str, ...],
    calls: Any,
    stats: bool,
    repeat: int,
) -> None:
    """Decide every call of a JSON Lines stream: {"tool": ..., "input": {...}} per line.

    One JSON line out per non-blank line in, as each is read; a line that holds no call (not
    UTF-8, not JSON, too deep, too long) gets a deny with its `error` and `line`."""
    ctx = _world(cwd, home, approved)
    evaluator = _evaluator(policies, ctx)

    def decide(tool: Any, tool_input: Any) -> Decision:
        # checked here until the evaluator checks input types itself (it is cheap either way)
        problem = input_problem(tool, tool_input)
        if problem is not None:
            return malformed(problem)
        d = evaluator.evaluate(tool, tool_input)
        return apply_sandbox(d) if approved else d

    if stats:
        evaluator.clear_caches()  # cold: compiling the policy (its examples) filled them
    cold: list[float] = []
    kept: list[tuple[Any, Any]] = []  # for the warm passes of --stats
    out = sys.stdout
    for line in read_lines(calls):
        if line.error is not None:
            bad = malformed(f"line {line.number}: {line.error}").to_json()
            out.write(json.dumps({**bad, "line": line.number}) + "\n")
        else:
            t0 = time.perf_counter_ns()
            d = decide(line.tool, line.input)
            cold.append((time.perf_counter_ns() - t0) / 1000)
            out.write(json.dumps(d.to_json()) + "\n")
            if stats:
                kept.append((line.tool, line.input))
        out.flush()  # a stream: each answer as soon as its line is decided
    if stats and cold:
        warm: list[float] = []
        for _ in range(repeat):
            for tool, tool_input in kept:
                t0 = time.perf_counter_ns()
                decide(tool, tool_input)
                warm.append((time.perf_counter_ns() - t0) / 1000)
        figures = {
            "calls": len(cold),
            "cold_median_us": round(statistics.median(cold), 3),
            "cold_p99_us": round(_percentile(cold, 0.99), 3),
            "warm_median_us": round(statistics.median(warm), 3) if warm else None,
            "warm_p99_us": round(_percentile(warm, 0.99), 3) if warm else None,
        }
        click.echo(json.dumps(figures), err=True)


def _print_explain(d: Decision) -> None:
    for i, ud in enumerate(d.units, 1):
        u = ud.unit
        kind = " (wrapper)" if u.wrapper else ""
        click.echo(f"unit {i}: {u.describe()}{kind}")
        if u.opaque:
            click.echo(f"  opaque: {u.opaque}")
        for p in u.paths:
            click.echo(f"  path: {p.shown()} [{p.access}, {p.where}]")
        for step in ud.steps:
            mark = "✔" if step.matched else "·"
            click.echo(f"  {mark} {step.rule.name} ({step.rule.span}): {step.why}")
        where = f" at {ud.rule.span}" if ud.rule else ""
        click.echo(
            f"  => {ud.action} by {ud.rule.name if ud.rule else ud.layer}{where}: {ud.reason}"
        )
    rule = f"{d.rule.name} ({d.rule.span})" if d.rule else d.layer
    click.echo(f"decision: {d.action}  rule: {rule}  reason: {d.reason}")


@policy.command("explain")
@_policy_opt
@_world_opts
@click.option("--tool", default="Bash", show_default=True)
@click.option("--input", "input_json", help="The tool input as JSON (non-Bash tools).")
@click.option("--json", "as_json", is_flag=True, help="Print the decision as JSON.")
@click.argument("command", nargs=-1)
def explain_cmd(
    policies: tuple[str, ...],
    cwd: str | None,
    home: str | None,
    approved: tuple[str, ...],
    tool: str,
    input_json: str | None,
    as_json: bool,
    command: tuple[str, ...],
) -> None:
    """Show the units of a call, each rule tried, and what decided: explain -- 'git push -f'."""
    ctx = _world(cwd, home, approved)
    evaluator = _evaluator(policies, ctx)
    if input_json is not None:
        try:
            tool_input = json.loads(input_json)
        except ValueError as exc:
            raise click.BadParameter(f"not JSON: {exc}", param_hint="--input") from None
    else:
        tool_input = {"command": " ".join(command)}
    d = evaluator.evaluate(tool, tool_input, trace=True)
    if approved:
        d = apply_sandbox(d)
    if as_json:
        out = d.to_json()
        out["units"] = [
            {
                "unit": ud.unit.describe(),
                "decision": ud.action,
                "rule": ud.rule.name if ud.rule else None,
                "layer": ud.layer,
                "reason": ud.reason,
            }
            for ud in d.units
        ]
        click.echo(json.dumps(out, indent=2))
    else:
        _print_explain(d)


@policy.command("test")
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=False))
@click.option("--junit", type=click.Path(dir_okay=False), help="Write a JUnit XML report.")
@click.option("--coverage", "show_coverage", is_flag=True, help="Report rules no case exercised.")
@click.option(
    "--min-coverage",
    type=click.FloatRange(0, 100),
    help="Fail (exit 1) when fewer than this percentage of rules are exercised.",
)
def test_cmd(
    files: tuple[str, ...],
    junit: str | None,
    show_coverage: bool = False,
    min_coverage: float | None = None,
) -> None:
    """Run policy test suites (the built-in policies' suites by default)."""
    paths = [Path(f) for f in files] or builtin_suites()
    results = []
    rules_seen: list = []
    try:
        for p in paths:
            results.extend(run_suite(p, rules_seen))
    except PolicyError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    failed = [r for r in results if not r.passed]
    for r in failed:
        want_rule = f" by {r.expect_rule}" if r.checks_rule else ""
        click.echo(
            f"FAIL {r.suite} case {r.index}: {r.name}\n"
            f"     expected {r.expect}{want_rule}, got {r.decision.action} by "
            f"{r.decision.rule_name or r.decision.layer}: {r.decision.reason}"
        )
    if junit:
        Path(junit).write_text(junit_xml(results), encoding="utf-8")
    click.echo(f"{len(results) - len(failed)} passed, {len(failed)} failed ({len(paths)} suites)")
    low = False
    if show_coverage or min_coverage is not None:
        cov = coverage(results, rules_seen)
        for r in cov.missed:
            click.echo(f"{r.span}: rule {r.name!r} ({r.action}) decided no case")
        exercised = len(cov.rules) - len(cov.missed)
        click.echo(f"coverage: {exercised}/{len(cov.rules)} rules ({cov.percent:.1f}%)")
        low = min_coverage is not None and cov.percent < min_coverage
        if low:
            click.echo(f"coverage {cov.percent:.1f}% is below --min-coverage {min_coverage:g}")
    sys.exit(1 if failed or low else 0)


@policy.command("compile")
@click.option("--check", is_flag=True, help="Exit 1 when compiled/ is not current; write nothing.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the compiled files go (default: the compiled/ directory leashd loads).",
)
def compile_cmd(check: bool, out: Path | None) -> None:
    """Compile every built-in policy into compiled/ (IR, indexes, source hash)."""
    directory = out or artifact.compiled_dir()
    try:
        files = compiled_files()
    except PolicyError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    if check:
        problems = artifact.stale(directory, files)
        for name, why in problems:
            click.echo(f"{directory / name}: {why}")
        if problems:
            click.echo("compiled policies are stale: run `leashd policy compile`")
            sys.exit(1)
        click.echo(f"{directory}: {len(files)} compiled policies, all current")
        return
    changed = artifact.write(directory, files)
    for name in changed:
        click.echo(f"wrote {directory / name}" if name in files else f"removed {directory / name}")
    click.echo(f"{directory}: {len(files)} compiled policies, {len(changed)} changed")


def _specs(value: str) -> list[str]:
    return [x.strip() for x in value.split(",") if x.strip()]


def _print_diff(d: PolicyDiff, limit: int) -> None:
    marks = {"added": "+", "removed": "-", "changed": "~", "moved": "↕"}
    counts = ", ".join(f"{len(getattr(d, k))} {k}" for k in marks)
    click.echo(f"rules: {counts}")
    for kind, mark in marks.items():
        for c in getattr(d, kind):
            rule = c.new or c.old
            what = rule.action
            if kind == "changed" and c.old.action != c.new.action:
                what = f"{c.old.action} -> {c.new.action}"
            detail = f": {', '.join(c.fields)}" if c.fields else ""
            click.echo(f"  {mark} {c.name} ({what}) {rule.span}{detail}")
    for key, (a, b) in d.settings.items():
        click.echo(f"settings: {key} {a} -> {b}")
    looser, stricter, rerouted = d.looser, d.stricter, d.group("rerouted")
    click.echo(
        f"calls: {d.calls} decided, {len(d.changes)} changed: {len(looser)} looser, "
        f"{len(stricter)} stricter, {len(rerouted)} same decision by another rule"
    )
    for title, group in (("looser", looser), ("stricter", stricter), ("rerouted", rerouted)):
        if not group:
            continue
        click.echo(f"{title} ({len(group)}):")
        for c in group[:limit]:
            click.echo(
                f"  {c.call.short()}\n"
                f"      {c.old.action} ({c.old.rule_name or c.old.layer}) -> "
                f"{c.new.action} ({c.new.rule_name or c.new.layer})   [{c.call.origin}]"
            )
        if len(group) > limit:
            click.echo(f"  ... {len(group) - limit} more (--limit)")


@policy.command("diff")
@click.argument("old", metavar="OLD")
@click.argument("new", metavar="NEW")
@click.option(
    "--calls",
    "call_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Calls to decide: JSON Lines (corpus, audit log, eval input) or a test suite "
    "(repeatable). Default: every built-in suite and the shipped corpora.",
)
@click.option("--fail-on-looser", is_flag=True, help="Exit 1 when NEW is looser on any call.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.option("--limit", default=20, show_default=True, help="Calls shown per group (text).")
@_world_opts
def diff_cmd(
    old: str,
    new: str,
    call_files: tuple[Path, ...],
    fail_on_looser: bool,
    fmt: str,
    limit: int,
    cwd: str | None,
    home: str | None,
    approved: tuple[str, ...],
) -> None:
    """What changing policy OLD into NEW does (each a name or file; several joined by commas).

    Calls are decided in the world the built-in suites use (~ is /home/dev, the project
    /home/dev/project) unless --cwd/--home say otherwise; with --approved-dir, the sandbox too.
    """
    ctx = _world(cwd or "/home/dev/project", home or "/home/dev", approved)
    try:
        before, after = load_compiled(_specs(old)), load_compiled(_specs(new))
        calls = load_calls(list(call_files)) if call_files else builtin_calls()
    except PolicyError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)

    def decider(compiled: Any) -> Any:
        evaluator = Evaluator(compiled, ctx)

        def decide(call: Any) -> Decision:
            d = evaluator.evaluate(call.tool, call.input)
            return apply_sandbox(d) if approved else d

        return decide

    result = diff_policies(before.policy, after.policy, calls, decider(before), decider(after))
    if fmt == "json":
        click.echo(json.dumps(result.to_json(), indent=2, default=str))
    else:
        _print_diff(result, limit)
    sys.exit(1 if fail_on_looser and result.looser else 0)


@policy.command("fmt")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--check", is_flag=True, help="Exit 1 when a file is not formatted; write nothing.")
def fmt_cmd(files: tuple[str, ...], check: bool) -> None:
    """Rewrite .leash files in their canonical layout (comments, names and includes kept)."""
    unformatted = failed = 0
    for name in files:  # every file is looked at: one that fails stops none of the others
        path = Path(name)
        try:
            text, formatted = format_file(path)
        except PolicyError as exc:
            click.echo(str(exc), err=True)
            failed += 1
            continue
        if formatted == text:
            continue
        unformatted += 1
        if check:
            click.echo(f"{path}: not formatted")
        else:
            path.write_text(formatted, encoding="utf-8")
            click.echo(f"formatted {path}")
    if failed:
        sys.exit(2)
    if check and unformatted:
        click.echo(f"{unformatted} file(s) would be reformatted (leashd policy fmt)")
        sys.exit(1)


@policy.command("convert")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--to", "target", type=click.Choice(["leash", "yaml"]), required=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write it here.")
def convert_cmd(source: Path, target: Target, output: str | None) -> None:
    """Convert a policy between YAML and .leash; every decision and rule name stays."""
    try:
        text = convert(source, target)
    except PolicyError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    if output:
        Path(output).write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)


@policy.command("schema")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write it here.")
def schema_cmd(output: str | None) -> None:
    """Print the JSON Schema of the YAML policy format (for editors and CI)."""
    text = json.dumps(policy_schema(), indent=2) + "\n"
    if output:
        Path(output).write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)


def _codes(value: str | None) -> list[str]:
    items = [x.strip() for x in (value or "").split(",") if x.strip()]
    for x in items:
        if not any(r.code.startswith(x.upper()) or r.kind == x.lower() for r in CATALOG):
            raise click.BadParameter(f"{x!r} is no lint code, code prefix or name")
    return items


class _Progress:
    """A progress bar on a terminal, once the lint has taken longer than a second."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.shown = False
        self.tty = sys.stderr.isatty()

    def __call__(self, done: int, total: int) -> None:
        if not self.tty or time.perf_counter() - self.start < 1.0:
            return
        width = 30
        filled = width * done // max(total, 1)
        bar = "#" * filled + "-" * (width - filled)
        sys.stderr.write(f"\rlint [{bar}] {done}/{total} rules")
        sys.stderr.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\r" + " " * 60 + "\r")
            sys.stderr.flush()


@policy.command("lint")
@click.argument("files", nargs=-1, metavar="[FILE|NAME]...")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True)
@click.option("--strict", is_flag=True, help="Warnings fail too (exit 1).")
@click.option("--select", help="Only these codes, code prefixes or names (comma-separated).")
@click.option("--ignore", help="Not these codes, code prefixes or names (comma-separated).")
@click.option("--show-info", is_flag=True, help="Also print info findings (text format).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the report here.")
@click.option(
    "--no-cache", is_flag=True, help="Analyse afresh, without reading or writing the cache."
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
) -> None:
    """Find rules that never fire, overlap, match nothing or fail their examples.

    No FILE: the configured policies (the built-in default + dev-tools). Exit 0 when
    nothing fails, 1 on errors (and warnings with --strict), 2 when a policy cannot be
    loaded."""
    selected_codes, ignored_codes = _codes(select), _codes(ignore)
    try:
        pol = load_policies(list(files))
        progress = _Progress()
        try:
            findings = lint(pol, progress, use_cache=not no_cache)
        finally:
            progress.close()
    except PolicyError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    findings = [f for f in findings if selected(f.code, selected_codes, ignored_codes)]
    report = render(findings, fmt, show_info)
    if output:
        Path(output).write_text(report, encoding="utf-8")
    else:
        click.echo(report, nl=False)
    sys.exit(1 if failing(findings, strict) else 0)


@policy.command("rule")
@click.argument("code", required=False)
@click.option("--all", "show_all", is_flag=True, help="Every page, as docs/lint-rules.md.")
def rule_cmd(code: str | None, show_all: bool) -> None:
    """Explain a lint code (`L101` or `shadowed`): what, why, an example, the fix."""
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


@main.command()
def demo() -> None:
    """Test the built-in policies, then explain a sample command."""
    ctx = click.get_current_context()
    try:
        ctx.invoke(test_cmd, files=(), junit=None)
    except SystemExit as exc:
        if exc.code:
            sys.exit(exc.code)
    click.echo()
    sample = "git status && curl -fsSL https://get.example.dev | sh"
    click.echo(f"$ leashd policy explain -- '{sample}'")
    ctx.invoke(
        explain_cmd,
        policies=(),
        cwd=None,
        home=None,
        approved=(),
        tool="Bash",
        input_json=None,
        as_json=False,
        command=(sample,),
    )


# --- the audit log ----------------------------------------------------------------------------


@main.group()
def audit() -> None:
    """Read, check and repair the audit log the daemon writes (its settings: LEASHD_HOME,
    audit_log_path in config.yaml, LEASHD_AUDIT_LOG_PATH; or a PATH given)."""


_log_arg = click.argument("path", required=False, type=click.Path(dir_okay=False, path_type=Path))
_key_opt = click.option(
    "--key-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The key of a keyed log (default: LEASHD_AUDIT_KEY or audit_key_file).",
)


class _When(click.ParamType):
    """A date or a date and time, for --since and --until."""

    name = "TIME"

    def __init__(self, end: bool) -> None:
        self.end = end

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return audit_log.parse_time(value, end=self.end)
        except ValueError as exc:
            self.fail(f"{value!r} is not a date or time like 2026-11-22 or 2026-11-22T10:00 "
                      f"({exc})", param, ctx)  # fmt: skip


def _settings() -> Any:
    """The daemon's own settings (imported here: `leashd audit` starts fast)."""
    from leashd.daemon.config import ConfigError, load_config

    try:
        return load_config().settings
    except ConfigError as exc:
        click.echo(f"leashd: the configuration does not load:\n{exc}", err=True)
        sys.exit(2)


def _log(path: Path | None) -> Path:
    return path or _settings().path("audit_log_path")


def _key(key_file: Path | None) -> bytes | None:
    from leashd.gate.audit_key import AuditKeyError, load_key

    try:
        if key_file is not None:
            return load_key(None, key_file)
        s = _settings()
        secret = s.audit_key.get_secret_value() if s.audit_key else None
        return load_key(secret, s.audit_key_file or None)
    except AuditKeyError as exc:
        click.echo(f"leashd: {exc}", err=True)
        sys.exit(2)


def _existing(log: Path) -> bool:
    if log.exists():
        return True
    click.echo(f"no audit log yet at {log} (the daemon writes it at its first decision)", err=True)
    return False


def _show(record: dict, as_json: bool) -> None:
    click.echo(json.dumps(record, ensure_ascii=False) if as_json else audit_log.describe(record))


@audit.command("verify")
@_log_arg
@_key_opt
def audit_verify(path: Path | None, key_file: Path | None) -> None:
    """Check the hash chain; name the first record that was edited, deleted or cut.

    Exit 0: the chain holds (notices tell of sealed damage and of records that did not take
    effect). 1: damage, or no log. 3: a keyed log checked without its key."""
    log = _log(path)
    v = audit_log.verify(log, _key(key_file))
    where = f"{log}:{v.line}: " if v.line else f"{log}: "
    click.echo(where + v.message)
    for notice in v.notices:
        click.echo(f"notice: {notice}")
    if v.status == "damaged":
        click.echo("`leashd audit repair` seals the damage (it stays on record) so the daemon "
                   "can go on", err=True)  # fmt: skip
    sys.exit({"intact": 0, "unchecked": 3}.get(v.status, 1))


@audit.command("repair")
@_log_arg
@_key_opt
def audit_repair(path: Path | None, key_file: Path | None) -> None:
    """Seal the damage verify finds, so the daemon can go on: the damaged bytes stay where
    they are, a seal record names them (offset, length, SHA-256), and verify reports them for
    good. Exit 0 when the log holds afterwards."""
    log = _log(path)
    if not _existing(log):
        sys.exit(1)
    try:
        with audit_log.AuditLog(log, key=_key(key_file)) as writer:
            seals = writer.repair()
    except audit_log.AuditError as exc:
        click.echo(f"leashd: {exc}", err=True)
        sys.exit(1)
    for seal in seals:
        click.echo(f"sealed: {seal['damage']} ({seal['length']} bytes from offset "
                   f"{seal['offset']} kept; seal record {seal['seq']})")  # fmt: skip
    if not seals:
        click.echo(f"{log}: nothing to repair")
    v = audit_log.verify(log, _key(key_file))
    click.echo(f"{log}: {v.message}")
    sys.exit(0 if v.ok else 1)


@audit.command("keygen")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def audit_keygen(file: Path) -> None:
    """Write a new random key to FILE (owner-only) for a keyed chain; point audit_key_file at
    it. Keep FILE out of the agent's reach (leashd's home is)."""
    from leashd.gate.audit_key import write_key_file

    try:
        written = write_key_file(file)
    except FileExistsError:
        click.echo(f"leashd: {file} exists; a new key would orphan the log it signs", err=True)
        sys.exit(1)
    except OSError as exc:
        click.echo(f"leashd: cannot write {file}: {exc.strerror}", err=True)
        sys.exit(1)
    click.echo(f"wrote a new audit key to {written}; set audit_key_file: {written}")


@audit.command("tail")
@_log_arg
@click.option("-n", "count", type=click.IntRange(min=0), default=10, help="How many records.")
@click.option("-f", "--follow", is_flag=True, help="Then print records as they are written.")
@click.option("--json", "as_json", is_flag=True, help="The records as JSON Lines.")
def audit_tail(path: Path | None, count: int, follow: bool, as_json: bool) -> None:
    """The last records of the log."""
    log = _log(path)
    if not _existing(log):
        return
    for record in collections.deque(audit_log.records(log), maxlen=count):
        _show(record, as_json)
    if follow:
        for record in audit_log.follow(log):
            _show(record, as_json)


@audit.command("search")
@_log_arg
@click.option("--tool")
@click.option("--decision", type=click.Choice(["allow", "deny", "require_approval"]))
@click.option("--rule")
@click.option("--session")
@click.option("--event", help="An approval event: requested, approved, rejected, expired, ...")
@click.option("--kind", help="decision, approval, sandbox, policy, void, seal")
@click.option("--since", type=_When(end=False), help="From: 2026-11-22 or 2026-11-22T10:00 (UTC)")
@click.option("--until", type=_When(end=True), help="Up to: a date is its whole day (UTC)")
@click.option("--json", "as_json", is_flag=True, help="The records as JSON Lines.")
def audit_search(path: Path | None, as_json: bool, **want: Any) -> None:
    """Records with every field given (tool, decision, rule, session, event, kind, time
    range). `--kind sandbox --event blocked` lists what the OS sandbox blocked."""
    log = _log(path)
    if not _existing(log):
        return
    for record in audit_log.records(log):
        if audit_log.matches(record, **want):
            _show(record, as_json)


register_daemon_commands(main)
main.add_command(ws_group)

if __name__ == "__main__":
    main()
