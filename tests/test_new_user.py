"""What a new user meets first, and must not be tripped by: `init -y` never approves a
directory unasked, nor `/` or the home directory without --allow-broad-dir; `start -f` and
`run` without credentials say how to log in for leashd; `dirs` writes to stdout only; a
failed `run` says so once, in leashd's words.

Each test has its own HOME, LEASHD_HOME and XDG_CONFIG_HOME, and no model credentials unless
it gives some."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import uuid

import pytest
import structlog
import yaml
from click.testing import CliRunner

from leashd.agent.runner import bundled_cli
from leashd.cli import main
from leashd.daemon.doctor import CREDENTIAL_VARIABLES
from tests.conftest import ROOT, worlds_dir
from tests.fakes.anthropic_api import FakeAnthropic


@pytest.fixture
def home(tmp_path, monkeypatch):
    """tmp/home is HOME and the working directory; tmp/home/proj a project in it."""
    for name in list(os.environ):
        if name.startswith("LEASHD_") or name in ("CLAUDE_CONFIG_DIR", "ANTHROPIC_BASE_URL"):
            monkeypatch.delenv(name)
    for name, _ in CREDENTIAL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    user = tmp_path / "home"
    (user / "proj").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(user))
    monkeypatch.setenv("LEASHD_HOME", str(tmp_path / "leashd"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("LEASHD_SANDBOX", "off")  # what is tested here comes before it
    monkeypatch.chdir(user)
    return user


def leashd(*args: str, input: str | None = None):
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


def config_file(home):
    return home.parent / "leashd" / "config.yaml"


# --- init never approves a directory unasked ---------------------------------------------------


def test_init_yes_without_dir_refuses_and_says_to_pass_dir(home):
    r = leashd("init", "-y")
    assert r.exit_code == 2
    assert "--dir DIR" in r.stderr
    assert not config_file(home).exists()  # the current directory was not approved


def test_init_yes_without_dir_keeps_the_directories_already_approved(home):
    assert leashd("init", "-y", "--dir", "proj").exit_code == 0
    r = leashd("init", "-y", "--mode", "plan")
    assert r.exit_code == 0, r.output
    assert yaml.safe_load(config_file(home).read_text())["approved_directories"] == [
        str(home / "proj")
    ]


@pytest.mark.parametrize(
    ("given", "said"),
    [("~", "your home directory"), (".", "your home directory"), ("/", "the root directory"),
     ("..", "above your home directory")],
)  # fmt: skip
def test_init_refuses_root_and_home_without_allow_broad_dir(home, given, said):
    r = leashd("init", "-y", "--dir", given)
    assert r.exit_code == 2
    assert said in r.stderr and "--allow-broad-dir" in r.stderr
    assert not config_file(home).exists()


def test_allow_broad_dir_approves_the_home_directory(home):
    r = leashd("init", "-y", "--dir", "~", "--allow-broad-dir")
    assert r.exit_code == 0, r.output
    assert yaml.safe_load(config_file(home).read_text())["approved_directories"] == [str(home)]


def test_the_wizard_offers_no_broad_directory_and_refuses_one_typed(home):
    answers = ["", "~", "proj", "", "default", ""]  # Enter: no default; ~ refused; proj
    r = leashd("init", input="\n".join(answers) + "\n")
    assert r.exit_code == 0, r.output
    assert f"[{home}]" not in r.output  # the home directory was not offered
    assert "is your home directory" in r.output
    assert yaml.safe_load(config_file(home).read_text())["approved_directories"] == [
        str(home / "proj")
    ]


def test_the_wizard_offers_the_current_directory_when_it_is_a_project(home, monkeypatch):
    monkeypatch.chdir(home / "proj")
    r = leashd("init", input="\n" * 4)
    assert r.exit_code == 0, r.output
    assert f"[{home / 'proj'}]" in r.output


# --- credentials before starting ----------------------------------------------------------------


@pytest.mark.parametrize("command", [["start", "-f"], ["run", "-p", "hello", "--dir", "proj"]])
def test_without_credentials_start_and_run_say_how_to_log_in_for_leashd(home, monkeypatch,
                                                                       command):  # fmt: skip
    monkeypatch.setenv("LEASHD_APPROVED_DIRECTORIES", str(home / "proj"))
    r = leashd(*command)
    assert r.exit_code == 2
    assert "ANTHROPIC_API_KEY" in r.stderr
    cli = bundled_cli() or "claude"
    assert f"`{cli} auth login`" in r.stderr
    assert "/login" not in r.stderr.replace(" auth login", "")  # never the CLI's own advice
    assert "leashd doctor" in r.stderr


def test_a_claude_login_file_counts_as_credentials(home, monkeypatch):
    monkeypatch.setenv("LEASHD_APPROVED_DIRECTORIES", str(home / "proj"))
    (home / ".claude").mkdir()
    (home / ".claude" / ".credentials.json").write_text('{"claudeAiOauth": {}}')
    r = leashd("start")  # past the check: then refused for want of a bot token
    assert r.exit_code == 2
    assert "no Telegram bot token" in r.stderr and "credentials" not in r.stderr


def test_an_api_key_counts_as_credentials(home, monkeypatch):
    monkeypatch.setenv("LEASHD_APPROVED_DIRECTORIES", str(home / "proj"))
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    r = leashd("start")
    assert r.exit_code == 2 and "no Telegram bot token" in r.stderr


# --- dirs: stdout only -------------------------------------------------------------------------


def test_dirs_writes_the_directories_and_their_source_to_stdout_only(home):
    assert leashd("init", "-y", "--dir", "proj").exit_code == 0
    r = leashd("dirs")
    assert r.exit_code == 0
    assert r.stderr == ""
    lines = r.stdout.splitlines()
    assert lines[0] == str(home / "proj")
    assert lines[1].startswith("[config.yaml: ") and str(config_file(home)) in lines[1]


# --- a failed run: one clean message ------------------------------------------------------------


@pytest.mark.skipif(bundled_cli() is None, reason="the bundled Claude Code CLI is missing")
def test_a_failed_run_prints_one_clean_message_and_logs_the_details():
    root = worlds_dir() / uuid.uuid4().hex[:12]
    proj = root / "home" / "proj"
    proj.mkdir(parents=True)
    try:
        with FakeAnthropic() as fake:
            fake.fail(500)
            env = {
                **fake.env(str(root / "home")),
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "LEASHD_HOME": str(root / "leashd"),
                "PYTHONPATH": str(ROOT),
                "LANG": "C.UTF-8",
            }
            p = subprocess.run(
                [sys.executable, "-m", "leashd.cli", "run", "--dir", str(proj), "-p", "hi"],
                env=env, cwd=proj, capture_output=True, text=True, timeout=120,
                stdin=subprocess.DEVNULL,
            )  # fmt: skip
        assert p.returncode == 1
        lines = [line for line in p.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("leashd: the agent failed:"), p.stderr
        assert p.stdout == ""
        # the details are in the log file
        logged = (root / "leashd" / "logs" / "leashd.log").read_text().splitlines()
        [done] = [json.loads(x) for x in logged if '"request_completed"' in x]
        assert "500" in done["error"]
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def logging_restored():
    """`run` configures the process's logging: put it back for the tests after."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
            h.close()
    for h in handlers:
        if h not in root.handlers:
            root.addHandler(h)
    root.setLevel(level)
    structlog.reset_defaults()


def test_a_failed_run_shows_no_log_line_of_the_failure_it_tells(home, monkeypatch,
                                                                logging_restored):  # fmt: skip
    """The turn's error is logged (file) and returned (told once by the run); an error of
    something else, which nothing else tells, still reaches the console."""
    from leashd.daemon import headless

    monkeypatch.setenv("LEASHD_APPROVED_DIRECTORIES", str(home / "proj"))
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")

    async def run_once(settings, prompt, **kw):
        structlog.get_logger("leashd.agent.runner").error("agent failed", error="ProcessError")
        structlog.get_logger("leashd.daemon.engine").warning("could not say it", error="x")
        structlog.get_logger("leashd.gate.events").error("event handler failed", name="n")
        print("leashd: the agent failed: the CLI exited 1", file=sys.stderr)
        return headless.EXIT_AGENT_ERROR

    monkeypatch.setattr(headless, "run_once", run_once)
    r = leashd("run", "-p", "hi", "--dir", "proj")
    assert r.exit_code == 1
    lines = r.stderr.splitlines()
    assert not any("agent failed" in x and "ProcessError" in x for x in lines), r.stderr
    assert lines[-1] == "leashd: the agent failed: the CLI exited 1"
    assert any("event handler failed" in x for x in lines)  # not the run's to tell
    assert any("could not say it" in x for x in lines)  # warnings stay
    logged = (home.parent / "leashd" / "logs" / "leashd.log").read_text()
    assert "ProcessError" in logged  # the details are kept


def test_add_dir_refuses_the_home_and_the_root_without_the_flag(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from leashd.cli import main

    home = tmp_path / "home"
    (home / "proj").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("LEASHD_HOME", str(tmp_path / "lh"))
    runner = CliRunner()
    for broad in (str(home), "/"):
        r = runner.invoke(main, ["add-dir", broad])
        assert r.exit_code == 2 and "--allow-broad-dir" in r.output, r.output
    assert not (tmp_path / "lh" / "config.yaml").exists()  # nothing approved
    assert runner.invoke(main, ["add-dir", str(home / "proj")]).exit_code == 0
    r = runner.invoke(main, ["add-dir", str(home), "--allow-broad-dir"])
    assert r.exit_code == 0, r.output
    assert str(home) in (tmp_path / "lh" / "config.yaml").read_text()


def test_init_keeps_a_0x_checkout_path_as_the_built_in_it_names(tmp_path, monkeypatch):
    from leashd.daemon.wizard import check_policies

    monkeypatch.chdir(tmp_path)  # no policies/ here: the 0.x README's path names the built-in
    assert check_policies("policies/strict.yaml, dev-tools") == ["strict", "dev-tools"]
    own = tmp_path / "policies" / "strict.yaml"
    own.parent.mkdir()
    own.write_text(
        "version: '1'\nname: mine\nrules:\n  - {name: r, tools: [Read], action: allow}\n"
    )
    assert check_policies("policies/strict.yaml") == [str(own)]  # a file that exists is the file
