"""A repository's policy project (`.leashd.toml` / `[tool.leashd]`): which stacks `lint` and
which suites `test` check, given the files that changed, through the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from leashd.cli import main
from leashd.cli.project import affected_stacks, affected_suites, find_project
from leashd.policy.errors import PolicyError

RULE = """\
rules:
  - name: {name}
    tools: [Bash]
    commands: ["{cmd}"]
    action: allow
"""
# Stacked on the built-in default, this rule never decides: the default allows it first.
REDUNDANT = """\
rules:
  - name: env-for-debugging
    tools: [Read]
    paths: ["**/.env"]
    action: allow
"""


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / ".git").mkdir()
    (tmp_path / "policies" / "tests").mkdir(parents=True)
    (tmp_path / "policies" / "a.yaml").write_text(RULE.format(name="same", cmd="ls"), "utf-8")
    (tmp_path / "policies" / "b.yaml").write_text(RULE.format(name="same", cmd="cat"), "utf-8")
    (tmp_path / "policies" / "team.yaml").write_text(REDUNDANT, "utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _lint(*args: str):
    return CliRunner().invoke(main, ["policy", "lint", "--strict", *args])


def test_without_a_project_each_changed_file_is_linted_alone(repo: Path):
    # The same rule name in two files that are never loaded together is no error ...
    assert _lint("--affected", "policies/a.yaml", "policies/b.yaml").exit_code == 0
    # ... while the files named without --affected form one stack, as they always have.
    joined = _lint("policies/a.yaml", "policies/b.yaml")
    assert joined.exit_code == 2 and "duplicate rule name 'same'" in joined.output


@pytest.mark.parametrize("config", [".leashd.toml", "pyproject.toml"])
def test_a_stack_is_linted_whole_when_one_of_its_files_changed(repo: Path, config: str):
    table = "[tool.leashd.stacks]" if config == "pyproject.toml" else "[stacks]"
    (repo / config).write_text(f'{table}\nteam = ["default", "policies/team.yaml"]\n', "utf-8")
    result = _lint("--affected", "policies/team.yaml")
    assert result.exit_code == 1
    assert "policies/team.yaml:2:5: L102" in result.output
    # the same finding whichever other files come along, and none for a file in no stack
    assert _lint("--affected", "policies/a.yaml", "policies/team.yaml").output == result.output
    assert _lint("--affected", "policies/a.yaml").exit_code == 0
    # with no file at all, every stack of the project
    assert _lint().output == result.output


def test_the_project_is_found_upward_but_not_past_the_repository(repo: Path):
    (repo / ".leashd.toml").write_text('[stacks]\nt = ["policies/team.yaml"]\n', "utf-8")
    deep = repo / "policies" / "tests"
    project = find_project(deep)
    assert project.source == repo / ".leashd.toml"
    assert project.stacks == {"t": ("policies/team.yaml",)}
    inner = repo / "sub"
    (inner / ".git").mkdir(parents=True)
    assert find_project(inner).source is None  # another repository: not governed by ours


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('stack = ["default"]\n', "unknown key `stack`; did you mean `stacks`?"),
        ("[stacks]\nteam = []\n", "stack `team` takes a non-empty list of policies"),
        ('[stacks]\nteam = "default"\n', "stack `team` takes a non-empty list of policies"),
        (
            '[stacks]\nteam = ["defualt"]\n',
            "'defualt' is neither a built-in policy nor a file; did you mean the built-in "
            "`default`?",
        ),
        ('suites = "tests/*.yaml"\n', "`suites` takes a list of globs"),
        ("[stacks\n", "not valid TOML"),
    ],
)
def test_a_wrong_configuration_is_an_error_naming_the_file(repo: Path, text: str, message: str):
    (repo / ".leashd.toml").write_text(text, "utf-8")
    with pytest.raises(PolicyError) as caught:
        find_project(repo)
    assert caught.value.file == str(repo / ".leashd.toml")
    assert message in str(caught.value)
    result = _lint("--affected", "policies/a.yaml")
    assert result.exit_code == 2 and message in result.output


SUITE = """\
policies: [../team.yaml]
cases:
  - tool: Bash
    input: {command: ls}
    expect: require_approval
"""


def test_a_changed_policy_selects_the_suites_that_test_it(repo: Path):
    suites = repo / "policies" / "tests"
    (suites / "team.yaml").write_text(SUITE, "utf-8")
    (suites / "other.yaml").write_text(SUITE.replace("team", "a"), "utf-8")
    project = find_project(repo)
    assert affected_suites(project, ["policies/team.yaml"]) == [suites / "team.yaml"]
    assert affected_suites(project, ["policies/b.yaml"]) == []
    assert affected_suites(project, ["policies/tests/other.yaml"]) == [suites / "other.yaml"]
    assert affected_stacks(project, ["policies/a.yaml"]) == [
        ("policies/a.yaml", ("policies/a.yaml",))
    ]
    runner = CliRunner()
    nothing = runner.invoke(main, ["policy", "test", "--affected", "policies/b.yaml"])
    assert nothing.exit_code == 0 and "no suite tests the changed files" in nothing.output
    ran = runner.invoke(main, ["policy", "test", "--affected", "policies/team.yaml"])
    assert "1 passed, 0 failed (1 suite)" in ran.output


def test_policy_test_with_no_file_runs_the_projects_suites(repo: Path):
    (repo / "policies" / "tests" / "team.yaml").write_text(SUITE, "utf-8")
    (repo / ".leashd.toml").write_text('suites = ["policies/tests/*.yaml"]\n', "utf-8")
    result = CliRunner().invoke(main, ["policy", "test"])
    assert result.exit_code == 0 and "(1 suite)" in result.output


def test_a_daemon_command_without_the_agent_says_what_to_install(tmp_path: Path):
    """leashd-policy has no agent SDK: `leashd run` must say so, not show a traceback."""
    hider = tmp_path / "sitecustomize.py"
    # None in sys.modules: find_spec answers None and an import fails, as when not installed
    hider.write_text(
        "import sys\nsys.modules.update(claude_agent_sdk=None, aiosqlite=None)\n", "utf-8"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    result = subprocess.run(
        [sys.executable, "-m", "leashd", "run", "-p", "hi", "--dir", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "`leashd run` needs the daemon's packages" in result.stderr
    assert "pip install leashd" in result.stderr and "Traceback" not in result.stderr
