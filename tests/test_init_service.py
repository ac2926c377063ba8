"""`leashd init` (prompts and flags) and `leashd service install|uninstall|show`.

Each test has its own LEASHD_HOME and XDG_CONFIG_HOME, so none reads or writes the real
~/.leashd or ~/.config/systemd."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess

import pytest
import yaml
from click.testing import CliRunner

from leashd.cli import main
from leashd.daemon import service

TOKEN = "123456789:AAE" + "x" * 32


@pytest.fixture
def home(tmp_path, monkeypatch):
    for name in list(os.environ):
        if name.startswith("LEASHD_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("LEASHD_HOME", str(tmp_path / "leashd"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "proj").mkdir()
    (tmp_path / "other").mkdir()
    return tmp_path


def leashd(*args: str, input: str | None = None):
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


def saved(home) -> dict:
    return yaml.safe_load((home / "leashd" / "config.yaml").read_text())


# --- init with flags -----------------------------------------------------------------------


def test_init_with_flags_writes_a_config_the_daemon_accepts(home):
    r = leashd("init", "-y", "--dir", "proj", "--dir", str(home / "other"), "--mode", "plan")
    assert r.exit_code == 0, r.output
    data = saved(home)
    assert data["approved_directories"] == [str(home / "proj"), str(home / "other")]
    assert data["default_mode"] == "plan"
    assert "policy_files" not in data  # the built-in default is followed, not frozen
    assert "leashd start -f" in r.output  # no token: the terminal
    r = leashd("config")
    assert r.exit_code == 0 and "LEASHD_DEFAULT_MODE" in r.output and "plan" in r.output


def test_init_again_keeps_what_it_is_not_told_to_change(home):
    (home / "leashd").mkdir()
    (home / "leashd" / "config.yaml").write_text("max_turns: 7\n")
    assert leashd("init", "-y", "--dir", "proj", "--policy", "strict").exit_code == 0
    assert leashd("init", "-y", "--mode", "auto").exit_code == 0
    data = saved(home)
    assert data["max_turns"] == 7
    assert data["approved_directories"] == [str(home / "proj")]
    assert data["policy_files"] == ["strict"]
    assert data["default_mode"] == "auto"


def test_a_bot_token_is_kept_owner_only_and_needs_user_ids(home):
    r = leashd("init", "-y", "--dir", "proj", "--token", TOKEN)
    assert r.exit_code == 2
    assert "user id" in r.output and "@userinfobot" in r.output
    assert not (home / "leashd" / "config.yaml").exists()  # nothing half-written

    r = leashd("init", "-y", "--dir", "proj", "--token", TOKEN, "--user-id", "42")
    assert r.exit_code == 0, r.output
    path = home / "leashd" / "config.yaml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert saved(home)["telegram_bot_token"] == TOKEN
    assert saved(home)["allowed_user_ids"] == ["42"]
    assert "leashd start`" in r.output
    assert TOKEN not in leashd("config").output  # redacted when shown

    assert leashd("init", "-y", "--no-telegram").exit_code == 0
    assert "telegram_bot_token" not in saved(home)


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--dir", "nowhere"], "nowhere is not a directory"),
        (["--token", "https://t.me/mybot"], "not a bot token"),
        (["--token", TOKEN, "--user-id", "@me"], "not a Telegram user id"),
        (["--policy", "no-such-policy"], "no such policy file"),
    ],
)
def test_init_refuses_bad_flags_with_the_reason(home, flags, words):
    r = leashd("init", "-y", "--dir", "proj", *flags)
    assert r.exit_code == 2
    assert words in r.output
    assert not (home / "leashd" / "config.yaml").exists()


def test_a_broken_policy_file_is_found_at_init_not_at_start(home):
    bad = home / "mine.yaml"
    bad.write_text("version: 1\nrules:\n  - name: x\n    action: maybe\n")
    r = leashd("init", "-y", "--dir", "proj", "--policy", str(bad))
    assert r.exit_code == 2
    assert "mine.yaml" in r.output


def test_init_reads_the_0x_telegram_block_and_writes_it_flat(home):
    (home / "leashd").mkdir()
    (home / "leashd" / "config.yaml").write_text(
        f"approved_directories: [{home / 'proj'}]\n"
        f"telegram:\n  bot_token: '{TOKEN}'\n  allowed_user_ids: [42]\n"
    )
    assert leashd("init", "-y").exit_code == 0
    data = saved(home)
    assert "telegram" not in data
    # moved as written (`[42]`), which the daemon reads as ["42"]
    assert data["telegram_bot_token"] == TOKEN and data["allowed_user_ids"] == [42]


# --- init with prompts ---------------------------------------------------------------------


def test_the_wizard_asks_again_until_each_answer_is_valid(home):
    answers = [
        "proj, missing",  # re-asked: missing is not a directory
        "proj",
        "12:short",  # re-asked: not a token
        TOKEN,
        "me",  # re-asked: not a user id
        "42, 43",
        "auto",
        "strict, typo",  # re-asked
        "",  # the default: default, dev-tools
    ]
    r = leashd("init", input="\n".join(answers) + "\n")
    assert r.exit_code == 0, r.output
    assert "missing is not a directory" in r.output
    assert "not a bot token" in r.output
    assert "'me' is not a Telegram user id" in r.output
    assert "no such policy file" in r.output
    assert TOKEN not in r.output  # typed hidden
    data = saved(home)
    assert data["approved_directories"] == [str(home / "proj")]
    assert data["telegram_bot_token"] == TOKEN
    assert data["allowed_user_ids"] == ["42", "43"]
    assert data["default_mode"] == "auto"
    assert "policy_files" not in data


def test_the_wizard_offers_current_values_and_keeps_the_token_on_enter(home):
    flags = ["init", "-y", "--dir", "proj", "--token", TOKEN, "--user-id", "42"]
    assert leashd(*flags).exit_code == 0
    r = leashd("init", input="\n" * 5)
    assert r.exit_code == 0, r.output
    assert f"[{home / 'proj'}]" in r.output and "Enter keeps" in r.output
    data = saved(home)
    assert data["telegram_bot_token"] == TOKEN and data["allowed_user_ids"] == ["42"]
    # 'none' removes the token; the terminal is used then
    r = leashd("init", "--dir", "proj", "--mode", "default", "--policy", "default",
               input="none\n")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "telegram_bot_token" not in saved(home)


# --- service -------------------------------------------------------------------------------


def test_service_install_needs_a_bot_token(home):
    assert leashd("init", "-y", "--dir", "proj").exit_code == 0
    r = leashd("service", "install", "--no-enable")
    assert r.exit_code == 2 and "needs a Telegram bot token" in r.output
    assert not service.unit_path().exists()


def test_service_install_writes_a_unit_that_runs_this_leashd(home):
    assert leashd("init", "-y", "--dir", "proj", "--token", TOKEN, "--user-id", "1").exit_code == 0
    r = leashd("service", "install", "--no-enable")
    assert r.exit_code == 0, r.output
    path = home / "xdg" / "systemd" / "user" / "leashd.service"
    assert service.unit_path() == path
    text = path.read_text()
    assert '-m" "leashd.cli" "start" "-f"' in text
    assert f'Environment="LEASHD_HOME={home / "leashd"}"' in text
    assert "KillSignal=SIGTERM" in text and "WantedBy=default.target" in text
    assert leashd("service", "show").output == text
    again = leashd("service", "install", "--no-enable")
    assert again.exit_code == 0 and "Unchanged" in again.output

    r = leashd("service", "uninstall")
    assert r.exit_code == 0 and not path.exists()
    assert "No unit" in leashd("service", "uninstall").output


def test_unit_arguments_with_spaces_and_specifiers_stay_whole():
    text = service.unit_text(
        {"PATH": "/a b/bin:/usr/bin", "LEASHD_HOME": "/h/100%/$HOME"}, python="/opt/my py/python"
    )
    assert 'ExecStart="/opt/my py/python" "-m"' in text
    assert 'Environment="LEASHD_HOME=/h/100%%/$$HOME"' in text


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_accepts_the_unit(home, tmp_path):
    """systemd's own parser reads the unit, including the quoted paths."""
    odd = tmp_path / "odd dir%"
    odd.mkdir()
    python = odd / "python"
    python.symlink_to(os.path.realpath(shutil.which("python3") or "/usr/bin/python3"))
    unit = tmp_path / "leashd.service"
    unit.write_text(service.unit_text({"PATH": "/usr/bin:/bin", "LEASHD_HOME": str(odd)},
                                      python=str(python)))  # fmt: skip
    p = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    problems = [line for line in p.stderr.splitlines() if "leashd.service" in line]
    assert p.returncode == 0 and not problems, p.stderr
