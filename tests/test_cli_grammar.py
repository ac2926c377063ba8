"""One grammar for every command: -h is --help, machine output through --format (--json kept
where it was), help for every option, examples for every command, counts in words that
agree with them."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from leashd.cli import main
from leashd.plural import plural


def _walk(group: click.Group, path: tuple[str, ...]) -> list[tuple[tuple[str, ...], click.Command]]:
    ctx = click.Context(group)
    out = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, name
        out.append(((*path, name), command))
        if isinstance(command, click.Group):
            out.extend(_walk(command, (*path, name)))
    return out


COMMANDS = _walk(main, ())
PATHS = [path for path, _ in COMMANDS]


def _id(path: tuple[str, ...]) -> str:
    return " ".join(path)


def test_the_walk_finds_every_command():
    assert {("policy", "eval"), ("policy", "lint"), ("audit", "search"), ("ws", "add"),
            ("service", "install"), ("run",), ("demo",)} <= set(PATHS)  # fmt: skip


@pytest.mark.parametrize("path", [(), *PATHS], ids=lambda p: _id(p) or "leashd")
def test_dash_h_is_help_everywhere(path):
    short = CliRunner().invoke(main, [*path, "-h"])
    long = CliRunner().invoke(main, [*path, "--help"])
    assert short.exit_code == 0, short.output
    assert short.output == long.output and "Usage:" in short.output


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[_id(p) for p in PATHS])
def test_every_option_says_what_it_does(path, command):
    for param in command.params:
        if isinstance(param, click.Option):
            assert param.help, f"leashd {_id(path)} {param.opts[0]} has no help"


@pytest.mark.parametrize(
    ("path", "command"), [((), main), *COMMANDS], ids=["leashd", *map(_id, PATHS)]
)
def test_every_command_shows_an_example(path, command):
    # in the epilog (`lazy.examples`), or the help text's own "Example:" paragraph
    help_text = CliRunner().invoke(main, [*path, "--help"]).output
    _, found, after = help_text.partition("Example")
    assert found, f"leashd {_id(path)} --help shows no example"
    lines = [line.strip() for line in after.splitlines()[1:] if line.strip()]
    assert any(f"leashd {_id(path)}".strip() in line for line in lines), lines
    if command.epilog:  # kept on their own lines, not rewrapped
        for line in command.epilog.splitlines()[2:]:
            assert line in help_text


# --- --format ---------------------------------------------------------------------------------

MACHINE_OUTPUT = {
    ("policy", "eval"): ("json", "text"),
    ("policy", "explain"): ("text", "json"),
    ("policy", "lint"): ("text", "json", "sarif", "github"),
    ("policy", "test"): ("text", "json", "junit"),
    ("policy", "diff"): ("text", "json"),
    ("audit", "tail"): ("text", "json"),
    ("audit", "search"): ("text", "json"),
}
JSON_ALIAS = {("policy", "explain"), ("audit", "tail"), ("audit", "search")}


@pytest.mark.parametrize("path", sorted(MACHINE_OUTPUT), ids=_id)
def test_machine_output_is_chosen_with_format(path):
    command = dict(COMMANDS)[path]
    options = {o: p for p in command.params if isinstance(p, click.Option) for o in p.opts}
    assert tuple(options["--format"].type.choices) == MACHINE_OUTPUT[path]
    assert ("--json" in options) == (path in JSON_ALIAS)


CALL = {"tool": "Bash", "input": {"command": "git status"}}


def test_json_is_format_json():
    runner = CliRunner()
    by_flag = runner.invoke(main, ["policy", "explain", "--json", "--", "git status"])
    by_format = runner.invoke(main, ["policy", "explain", "--format", "json", "--", "git status"])
    assert by_flag.exit_code == 0 and by_flag.output == by_format.output
    assert json.loads(by_flag.output)["decision"] == "allow"
    both = runner.invoke(main, ["policy", "explain", "--json", "--format", "text", "--", "ls"])
    assert both.exit_code == 2 and "--json is --format json" in both.output


def test_eval_speaks_text_too():
    runner = CliRunner()
    lines = json.dumps(CALL) + "\n{not json\n"
    as_json = runner.invoke(main, ["policy", "eval"], input=lines)
    as_text = runner.invoke(main, ["policy", "eval", "--format", "text"], input=lines)
    assert as_json.exit_code == as_text.exit_code == 0
    first, bad = (json.loads(x) for x in as_json.output.splitlines())
    assert as_text.output.splitlines() == [
        f"1: allow by {first['rule']}: {first['reason']}",
        f"2: deny by input: {bad['reason']}",
    ]


def test_test_reports_as_json_and_junit(tmp_path):
    (tmp_path / "team.yaml").write_text(
        "rules:\n  - {name: status, commands: ['git status'], action: allow}\n"
    )
    (tmp_path / "suite.yaml").write_text(
        "policies: [team.yaml]\ncases:\n"
        "  - {command: git status, expect: allow, rule: status}\n"
        "  - {command: git push, expect: deny}\n"
    )
    suite = str(tmp_path / "suite.yaml")
    runner = CliRunner()
    doc = json.loads(runner.invoke(main, ["policy", "test", suite, "--format", "json"]).output)
    assert (doc["passed"], doc["failed"]) == (1, 1)
    assert [c["passed"] for c in doc["cases"]] == [True, False]
    assert doc["cases"][0]["rule"] == "status" and doc["cases"][1]["decision"] != "deny"
    junit = runner.invoke(main, ["policy", "test", suite, "--format", "junit"])
    assert junit.exit_code == 1 and "<testsuite" in junit.output
    assert 'tests="2" failures="1"' in junit.output  # the report --junit FILE writes


def test_audit_tail_format_json_is_json_lines(tmp_path):
    from leashd.gate.audit import AuditLog

    log = tmp_path / "audit.jsonl"
    with AuditLog(log) as audit:
        audit.append("decision", {"tool": "Bash", "decision": "allow"})
    runner = CliRunner()
    by_format = runner.invoke(main, ["audit", "tail", str(log), "--format", "json"])
    by_flag = runner.invoke(main, ["audit", "tail", str(log), "--json"])
    assert by_format.exit_code == 0 and by_format.output == by_flag.output
    assert json.loads(by_format.output)["tool"] == "Bash"


# --- what the help lists ------------------------------------------------------------------------


@pytest.mark.parametrize("path", [(), ("policy",), ("audit",), ("service",), ("ws",)], ids=_id)
def test_a_group_lists_every_subcommand_in_full(path):
    group = main if not path else dict(COMMANDS)[path]
    shown = CliRunner().invoke(main, [*path, "--help"]).output
    listed = shown.split("Commands:")[1]
    for name in group.list_commands(click.Context(group)):
        assert f"\n  {name} " in listed, name
    assert "..." not in listed  # short helps whole, not cut


def test_policy_short_help_names_every_policy_command():
    from leashd.cli import COMMANDS as ROOT
    from leashd.cli.policy import COMMANDS as POLICY

    for name in POLICY:
        assert name in ROOT["policy"][1]


# --- counts ---------------------------------------------------------------------------------


def test_plural():
    assert [plural(n, "finding") for n in (0, 1, 2)] == ["0 findings", "1 finding", "2 findings"]
    assert plural(1, "policy", "policies") == "1 policy"
    assert plural(3, "directory", "directories") == "3 directories"


def _write(tmp_path: Path, name: str, text: str) -> str:
    (tmp_path / name).write_text(text)
    return str(tmp_path / name)


def test_lint_counts_in_words_that_agree(tmp_path):
    one = _write(
        tmp_path,
        "one.yaml",
        "rules:\n"
        "  - {name: a, commands: ['git status'], action: allow}\n"
        "  - {name: b, commands: ['git status'], action: deny}\n",
    )
    out = CliRunner().invoke(main, ["policy", "lint", one, "--no-cache"]).output
    assert out.splitlines()[-1] == "1 finding: 1 error, 0 warnings, 0 info"
    none = _write(tmp_path, "none.yaml", "rules:\n  - {name: a, tools: [Read], action: allow}\n")
    out = CliRunner().invoke(main, ["policy", "lint", none, "--no-cache"]).output
    assert out.splitlines()[-1] == "0 findings: 0 errors, 0 warnings, 0 info"


def test_test_counts_suites_and_rules_in_words_that_agree(tmp_path):
    _write(
        tmp_path, "team.yaml", "rules:\n  - {name: status, commands: [git status], action: allow}\n"
    )
    suite = _write(
        tmp_path,
        "suite.yaml",
        "policies: [team.yaml]\ncases:\n  - {command: git status, expect: allow}\n",
    )
    out = CliRunner().invoke(main, ["policy", "test", suite, "--coverage"]).output
    assert "1 passed, 0 failed (1 suite)" in out
    assert "coverage: 1/1 rule (100.0%)" in out


def test_fmt_counts_files_in_words_that_agree(tmp_path):
    messy = _write(tmp_path, "team.leash", 'allow   status cmd "git status"\n')
    out = CliRunner().invoke(main, ["policy", "fmt", "--check", messy])
    assert out.exit_code == 1 and "1 file would be reformatted" in out.output


def test_audit_verify_counts_records_in_words_that_agree(tmp_path):
    from leashd.gate.audit import AuditLog

    log = tmp_path / "audit.jsonl"
    with AuditLog(log) as audit:
        audit.append("decision", {"tool": "Bash", "decision": "allow"})
    out = CliRunner().invoke(main, ["audit", "verify", str(log)])
    assert out.exit_code == 0 and "1 record, chain intact" in out.output, out.output


def test_workspaces_count_directories_in_words_that_agree(tmp_path, monkeypatch):
    monkeypatch.setenv("LEASHD_HOME", str(tmp_path / "home"))
    project = tmp_path / "project"
    project.mkdir()
    out = CliRunner().invoke(main, ["ws", "add", "shop", str(project)])
    assert out.exit_code == 0 and "shop: 1 directory (" in out.output, out.output


@pytest.mark.parametrize(
    ("args", "meant"), [(["polcy"], "policy"), (["policy", "evl"], "eval"), (["ws", "lst"], "list")]
)
def test_a_misspelt_command_is_named_among_every_command(args, meant):
    # the commands of a lazy group are suggested before any of them was imported
    out = CliRunner().invoke(main, args)
    assert out.exit_code == 2 and f"Did you mean {meant!r}?" in out.output, out.output
