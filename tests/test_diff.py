"""`leashd policy diff`: rule changes and the calls whose decision changes, looser or stricter."""

from __future__ import annotations

import json
import textwrap

from click.testing import CliRunner

from leashd.cli import main
from leashd.policy.calls import builtin_calls, from_jsonl

OLD = """
rules:
  - {name: no-force-push, commands: ["git push ** --force"], action: deny}
  - {name: git-push, commands: ["git push"], action: require_approval}
  - {name: git-status, commands: ["git status"], action: allow}
  - {name: npm-test, commands: ["npm test"], action: allow}
"""


def run(*args: str):
    return CliRunner().invoke(main, ["policy", "diff", *args])


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def calls_file(tmp_path, *commands: str, extra: list[dict] | None = None):
    rows = [{"tool": "Bash", "input": {"command": c}} for c in commands] + (extra or [])
    path = tmp_path / "calls.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_the_same_policy_changes_nothing(tmp_path):
    old = write(tmp_path, "old.yaml", OLD)
    result = run(old, old, "--calls", calls_file(tmp_path, "git push", "ls"), "--fail-on-looser")
    assert result.exit_code == 0, result.output
    assert "rules: 0 added, 0 removed, 0 changed, 0 moved" in result.output
    assert "calls: 2 decided, 0 changed" in result.output


def test_a_loosened_rule_is_a_looser_call_and_fails_the_gate(tmp_path):
    old = write(tmp_path, "old.yaml", OLD)
    new = write(tmp_path, "new.yaml", OLD.replace("action: require_approval", "action: allow"))
    calls = calls_file(tmp_path, "git push origin main", "git push --force", "git status")
    result = run(old, new, "--calls", calls, "--fail-on-looser")
    assert result.exit_code == 1
    assert "~ git-push (require_approval -> allow)" in result.output
    assert ": action" in result.output
    assert "calls: 3 decided, 1 changed: 1 looser, 0 stricter" in result.output
    assert "Bash git push origin main" in result.output
    # Without the gate flag the same report exits 0: a diff is information until asked.
    assert run(old, new, "--calls", calls).exit_code == 0


def test_stricter_only_passes_the_gate(tmp_path):
    old = write(tmp_path, "old.yaml", OLD)
    new = write(tmp_path, "new.yaml", OLD.replace("name: npm-test", "name: npm-test-gone"))
    new_text = (
        (tmp_path / "new.yaml")
        .read_text()
        .replace('"npm test"], action: allow', '"npm test"], action: deny')
    )
    (tmp_path / "new.yaml").write_text(new_text)
    result = run(old, new, "--calls", calls_file(tmp_path, "npm test"), "--fail-on-looser")
    assert result.exit_code == 0, result.output
    assert "+ npm-test-gone (deny)" in result.output and "- npm-test (allow)" in result.output
    assert "0 looser, 1 stricter" in result.output


def test_a_move_alone_is_reported_and_can_change_decisions(tmp_path):
    old = write(tmp_path, "old.yaml", OLD)
    lines = OLD.strip().splitlines()
    moved = "\n".join([lines[0], lines[2], lines[1], *lines[3:]]) + "\n"  # push before deny
    new = write(tmp_path, "new.yaml", moved)
    result = run(old, new, "--calls", calls_file(tmp_path, "git push --force"), "--format", "json")
    assert result.exit_code == 0
    doc = json.loads(result.output)
    assert [c["rule"] for c in doc["rules"]["moved"]] == ["git-push"]
    assert doc["rules"]["changed"] == []
    (looser,) = doc["calls"]["looser"]
    assert looser["old"] == {"decision": "deny", "rule": "no-force-push"}
    assert looser["new"] == {"decision": "require_approval", "rule": "git-push"}
    assert looser["origin"].endswith("calls.jsonl:1")


def test_calls_from_a_suite_and_an_audit_log(tmp_path):
    old = write(tmp_path, "old.yaml", OLD)
    new = write(tmp_path, "new.yaml", OLD.replace("action: allow", "action: deny"))
    suite = write(
        tmp_path,
        "suite.yaml",
        """
        policies: [old.yaml]
        cases:
          - {command: "git status", expect: allow}
          - {tool: Read, input: {file_path: README.md}, expect: require_approval}
        """,
    )
    audit = calls_file(
        tmp_path,
        "npm test",
        extra=[
            {"event": "approval.resolved", "by": 42},
            {"tool": "Bash", "input": {"command": "npm test"}},
        ],
    )
    result = run(old, new, "--calls", suite, "--calls", audit, "--format", "json")
    doc = json.loads(result.output)
    assert doc["calls"]["decided"] == 3  # the repeated call once; the approval record skipped
    assert {c["input"].get("command") for c in doc["calls"]["stricter"]} == {
        "git status",
        "npm test",
    }


def test_a_malformed_calls_line_is_an_error_with_its_place(tmp_path):
    old = write(tmp_path, "old.yaml", OLD)
    bad = tmp_path / "calls.jsonl"
    bad.write_text('{"tool": "Bash", "input": {"command": "ls"}}\n{not json\n')
    result = run(old, old, "--calls", str(bad))
    assert result.exit_code == 2
    assert f"{bad}:2:1: not a JSON line" in result.output
    bad.write_text('{"tool": "Bash", "input": "ls"}\n')
    assert (
        "needs a string 'tool' and an object 'input'" in run(old, old, "--calls", str(bad)).output
    )


def test_an_unloadable_policy_exits_2(tmp_path):
    bad = write(tmp_path, "bad.yaml", "rules:\n  - {name: x, action: maybe}\n")
    result = run("default", bad)
    assert result.exit_code == 2
    assert "bad.yaml:" in result.output


def test_strict_is_never_looser_than_the_default_on_the_built_in_calls():
    # The default call set: every built-in suite case and the shipped corpora.
    calls = builtin_calls()
    assert len(calls) > 2000
    result = run("default,dev-tools", "strict", "--fail-on-looser", "--limit", "1")
    assert result.exit_code == 0, result.output
    assert f"calls: {len(calls)} decided" in result.output
    assert " 0 looser, " in result.output
    # both ask for what no rule names (leashd 0.6.0: strict asks, it does not refuse); strict
    # waits two minutes for an answer
    assert "default_action" not in result.output
    assert "settings: approval_timeout_seconds 300 -> 120" in result.output


def test_corpus_rows_read_as_calls():
    from leashd.policy.calls import corpus_files

    files = corpus_files()
    assert {p.name for p in files} >= {"everyday.jsonl", "adversarial.jsonl"}
    rows = from_jsonl(files[0])
    assert rows and all(isinstance(c.input, dict) for c in rows)


def test_odd_inputs_in_calls_are_reported_not_crashed_on(tmp_path):
    old = write(tmp_path, "old.yaml", OLD)
    new = write(tmp_path, "new.yaml", OLD.replace("action: deny", "action: allow"))
    suite = write(
        tmp_path,
        "suite.yaml",
        """
        cases:
          - {tool: Read, input: {file_path: 2024-01-01}, expect: require_approval}
        """,
    )
    assert run(old, new, "--calls", suite).exit_code == 0
    assert run(old, new, "--calls", suite, "--format", "json").exit_code == 0
    lone = tmp_path / "calls.jsonl"
    lone.write_text('{"tool": "Bash", "input": {"command": "git push --force \\ud800"}}\n')
    result = run(old, new, "--calls", str(lone))
    assert result.exit_code == 0, result.output
    assert "\\ud800" in result.output  # shown escaped


def test_a_suite_case_that_is_no_call_is_an_error_not_left_out(tmp_path):
    old = write(tmp_path, "old.yaml", OLD)
    suite = write(
        tmp_path,
        "suite.yaml",
        """
        cases:
          - {command: "git status", expect: allow}
          - {tool: Read, input: "README.md", expect: allow}
        """,
    )
    result = run(old, old, "--calls", suite)
    assert result.exit_code == 2
    assert "case 2: needs a 'command', or a 'tool' and an 'input' object" in result.output


def test_handing_a_question_to_the_ai_is_looser_and_taking_it_back_stricter(tmp_path):
    """The same require_approval answered by the AI approver instead of a person is a looser
    decision: `--fail-on-looser` must catch a pull request that routes calls to the AI."""
    human = (
        "rules:\n  - {name: pushes, tools: [Bash], commands: ['git push'], "
        "action: require_approval}\n"
    )
    ai = human.replace("action: require_approval}", "action: require_approval, approver: ai}")
    (tmp_path / "human.yaml").write_text(human)
    (tmp_path / "ai.yaml").write_text(ai)
    calls = tmp_path / "calls.jsonl"
    calls.write_text('{"tool": "Bash", "input": {"command": "git push origin x"}}\n')
    runner = CliRunner()
    looser = runner.invoke(main, ["policy", "diff", str(tmp_path / "human.yaml"),
                                  str(tmp_path / "ai.yaml"), "--calls", str(calls),
                                  "--fail-on-looser"])  # fmt: skip
    assert looser.exit_code == 1
    assert "1 looser" in looser.output and "require_approval (ai) (pushes)" in looser.output
    stricter = runner.invoke(main, ["policy", "diff", str(tmp_path / "ai.yaml"),
                                    str(tmp_path / "human.yaml"), "--calls", str(calls),
                                    "--fail-on-looser"])  # fmt: skip
    assert stricter.exit_code == 0 and "1 stricter" in stricter.output
