"""The pre-commit hooks, run by the real pre-commit in scratch repositories.

The hooks are served the way a user gets them: the hooks repository that
packaging/pre-commit/make_repo.py builds, installing leashd-policy (the policy tools alone,
built here from this checkout) into pre-commit's own virtualenv. What is checked is what a
user sees: which commits the hooks let through, what they print, and how much they install.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import leashd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "packaging" / "pre-commit"))
from make_repo import make_repo  # noqa: E402


def build_wheel(project: Path, dest: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dest), str(project)],
        check=True,
        capture_output=True,
    )


def dir_size(path: Path) -> int:
    return sum(f.lstat().st_size for f in path.rglob("*") if not f.is_symlink() and f.is_file())


ALPHA = """\
rules:
  - name: project-reads
    tools: [Bash]
    commands: ["ls"]
    action: allow
"""
BETA = ALPHA.replace('"ls"', '"cat"')
# Alone, a clean policy; stacked on the built-in default (as the daemon loads it), the
# default's read-only allows already decide every call this rule matches.
TEAM = """\
name: team
rules:
  - name: env-for-debugging
    tools: [Read]
    paths: ["**/.env"]
    action: allow
    reason: the dev needs it
"""
SUITE = """\
policies: [../team.leash]
cases:
  - name: make runs
    tool: Bash
    input: {command: make}
    expect: allow
"""
TEAM_LEASH = 'allow builds tools Bash cmd "make" reason "the build"\n'


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t.invalid", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


@pytest.fixture(scope="module")
def hooks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The hooks repository and the environment pre-commit runs with: its own home, and the
    leashd-policy wheel of this checkout where pip looks for packages."""
    base = tmp_path_factory.mktemp("hooks")
    wheels = base / "wheels"
    build_wheel(REPO / "packaging" / "leashd-policy", wheels)
    repo = base / "leashd-pre-commit"
    tag = make_repo(repo)
    env = {
        **os.environ,
        "PRE_COMMIT_HOME": str(base / "pre-commit-home"),
        "PIP_FIND_LINKS": " ".join(filter(None, [str(wheels), os.environ.get("PIP_FIND_LINKS")])),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    env.pop("VIRTUAL_ENV", None)
    return {"repo": str(repo), "tag": tag, **{f"env:{k}": v for k, v in env.items()}}


def _env(hooks: dict[str, str]) -> dict[str, str]:
    return {k[4:]: v for k, v in hooks.items() if k.startswith("env:")}


@pytest.fixture
def project(tmp_path: Path, hooks: dict[str, str]) -> Path:
    """A scratch repository whose .pre-commit-config.yaml uses the three hooks."""
    root = tmp_path / "project"
    (root / "policies" / "tests").mkdir(parents=True)
    (root / ".pre-commit-config.yaml").write_text(
        f"repos:\n  - repo: {hooks['repo']}\n    rev: {hooks['tag']}\n    hooks:\n"
        "      - id: leashd-policy-lint\n      - id: leashd-policy-test\n"
        "      - id: leashd-policy-fmt\n",
        encoding="utf-8",
    )
    _git(root, "init", "-q")
    return root


def _pre_commit(root: Path, hooks: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    _git(root, "add", "-A")
    return subprocess.run(
        [sys.executable, "-m", "pre_commit", *args],
        cwd=root,
        env=_env(hooks),
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_try_repo_lints_independent_files_each_alone(tmp_path: Path, hooks: dict[str, str]):
    root = tmp_path / "scratch"
    (root / "policies").mkdir(parents=True)
    (root / "policies" / "alpha.yaml").write_text(ALPHA, encoding="utf-8")
    (root / "policies" / "beta.yaml").write_text(BETA, encoding="utf-8")
    _git(root, "init", "-q")
    # Two policies that are never loaded together may share a rule name: no stack joins them.
    ok = _pre_commit(root, hooks, "try-repo", hooks["repo"], "leashd-policy-lint", "--all-files")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "leashd policy lint" in ok.stdout and "Passed" in ok.stdout
    # Named as one stack, they cannot both be loaded: the hook fails and says why.
    (root / ".leashd.toml").write_text(
        '[stacks]\nboth = ["policies/alpha.yaml", "policies/beta.yaml"]\n', encoding="utf-8"
    )
    bad = _pre_commit(root, hooks, "try-repo", hooks["repo"], "leashd-policy-lint", "--all-files")
    assert bad.returncode == 1
    assert "duplicate rule name 'project-reads'" in bad.stdout


def test_the_environment_is_the_policy_tools_alone(project: Path, hooks: dict[str, str]):
    (project / "policies" / "team.yaml").write_text(TEAM, encoding="utf-8")
    result = _pre_commit(project, hooks, "install-hooks")
    assert result.returncode == 0, result.stdout + result.stderr
    home = Path(hooks["env:PRE_COMMIT_HOME"])
    (env,) = home.glob("repo*/py_env-*")
    size = dir_size(env)
    assert size < 50 * 2**20, f"pre-commit's environment takes {size / 2**20:.1f} MiB"
    python = env / "bin" / "python"
    probe = "import importlib.util as u; print(*map(u.find_spec, ['claude_agent_sdk', 'telegram']))"
    shown = subprocess.run([python, "-c", probe], capture_output=True, text=True, check=True)
    assert shown.stdout.split() == ["None", "None"]
    # and its `leashd` is a working policy tool that knows what it is not
    start = subprocess.run([env / "bin" / "leashd", "start"], capture_output=True, text=True)
    assert start.returncode == 1
    assert "pip install leashd" in start.stderr and "Traceback" not in start.stderr
    # what CI runs with it: a SARIF report that names the tool's version
    sarif = subprocess.run(
        [env / "bin" / "leashd", "policy", "lint", "policies/team.yaml", "--format", "sarif"],
        cwd=project,
        capture_output=True,
        text=True,
    )
    assert sarif.returncode == 0, sarif.stderr
    assert json.loads(sarif.stdout)["runs"][0]["tool"]["driver"]["version"] == leashd.__version__


def test_a_stack_is_linted_whole_whichever_file_is_staged(project: Path, hooks: dict[str, str]):
    (project / "policies" / "team.yaml").write_text(TEAM, encoding="utf-8")
    (project / "policies" / "other.yaml").write_text(ALPHA, encoding="utf-8")
    alone = _pre_commit(
        project, hooks, "run", "leashd-policy-lint", "--files", "policies/team.yaml"
    )
    assert alone.returncode == 0, alone.stdout  # team.yaml by itself is clean
    (project / ".leashd.toml").write_text(
        '[stacks]\nteam = ["default", "policies/team.yaml"]\n', encoding="utf-8"
    )
    stacked = _pre_commit(
        project, hooks, "run", "leashd-policy-lint", "--files", "policies/team.yaml"
    )
    assert stacked.returncode == 1
    assert "policies/team.yaml:3:5: L102" in stacked.stdout
    # a change elsewhere neither fails for team.yaml nor hides what is wrong with it
    other = _pre_commit(
        project, hooks, "run", "leashd-policy-lint", "--files", "policies/other.yaml"
    )
    assert other.returncode == 0, other.stdout
    every = _pre_commit(project, hooks, "run", "leashd-policy-lint", "--all-files")
    assert every.returncode == 1 and "L102" in every.stdout


def test_a_changed_policy_runs_the_suites_that_test_it(project: Path, hooks: dict[str, str]):
    (project / "policies" / "team.leash").write_text(TEAM_LEASH, encoding="utf-8")
    (project / "policies" / "tests" / "team.yaml").write_text(SUITE, encoding="utf-8")
    first = _pre_commit(project, hooks, "run", "--all-files")
    assert first.returncode == 0, first.stdout
    # the build command changes; only the policy is part of the commit
    (project / "policies" / "team.leash").write_text(
        TEAM_LEASH.replace('"make"', '"ninja"'), encoding="utf-8"
    )
    second = _pre_commit(
        project, hooks, "run", "leashd-policy-test", "--files", "policies/team.leash"
    )
    assert second.returncode == 1
    assert "policies/tests/team.yaml:3: expected allow" in second.stdout


def test_fmt_check_fails_on_an_unformatted_policy(project: Path, hooks: dict[str, str]):
    (project / "policies" / "team.leash").write_text(
        TEAM_LEASH.replace(" tools", "   tools"), encoding="utf-8"
    )
    result = _pre_commit(project, hooks, "run", "leashd-policy-fmt", "--all-files")
    assert result.returncode == 1
    assert "policies/team.leash: not formatted" in result.stdout
    subprocess.run(
        [sys.executable, "-m", "leashd", "policy", "fmt", "policies/team.leash"],
        cwd=project,
        check=True,
        capture_output=True,
    )
    again = _pre_commit(project, hooks, "run", "leashd-policy-fmt", "--all-files")
    assert again.returncode == 0, again.stdout
