"""A reload (SIGHUP, what `leashd add-dir` sends) that fails is said to the user and audited,
whatever failed: config.yaml (garbage, a directory that is not there) or a policy file (an
empty one above all: issue 18 saw a SIGHUP turn 125 rules into none). What is in force stays.
The real daemon in tmux, the real Claude Code CLI against the fake Messages API; the world and
helpers are those of test_e2e_daemon.
"""

from __future__ import annotations

import os
import signal

import pytest

from leashd.agent.runner import bundled_cli
from leashd.policy.loader import builtin_path
from tests import test_e2e_daemon
from tests.test_e2e_daemon import World, start_repl

world = test_e2e_daemon.world
term = test_e2e_daemon.term

pytestmark = pytest.mark.skipif(
    bundled_cli() is None, reason="the Claude Code CLI bundled with claude-agent-sdk is missing"
)


def hang_up(world: World) -> None:
    """SIGHUP to the daemon, as `leashd add-dir` sends it (which cannot edit a broken file)."""
    pid = int((world.leashd_home / "leashd.pid").read_text().split()[0])
    os.kill(pid, signal.SIGHUP)


def reload_records(world: World) -> list[dict]:
    return [r for r in world.records() if r.get("kind") in ("config", "policy", "sandbox")]


def test_a_config_reload_that_fails_is_told_and_audited_and_changes_nothing(world, term):
    config = world.leashd_home / "config.yaml"
    start_repl(world, term)

    config.write_text("approved_directories: [unclosed\n")  # not YAML
    hang_up(world)
    screen = term.wait_for("configuration was not reloaded")
    assert f"{config}" in screen and "cannot read the config file" in screen
    [failed] = reload_records(world)
    assert (failed["kind"], failed["event"]) == ("config", "reload_failed")
    assert str(config) in failed["error"]

    gone = world.home / "gone"
    config.write_text(f"approved_directories: [{world.proj}, {gone}]\n")
    hang_up(world)
    screen = term.wait_for("configuration was not reloaded", count=2)
    assert f"{gone} is not a directory" in screen
    assert [r["event"] for r in reload_records(world)] == ["reload_failed"] * 2

    # the daemon goes on, with what was in force, and a good file reloads
    other = world.home / "other"
    other.mkdir()
    config.write_text(f"approved_directories: [{world.proj}, {other}]\n")
    hang_up(world)
    term.wait_for("configuration reloaded: 2 approved directories")
    assert reload_records(world)[-2]["event"] == "dir_added"
    term.key("C-d")
    term.wait_dead()


def test_an_emptied_policy_file_on_reload_keeps_every_deny(world, term):
    team = world.home / "team.yaml"
    team.write_text(builtin_path("default").read_text())
    config = world.leashd_home / "config.yaml"
    config.write_text(f"approved_directories: [{world.proj}]\npolicy_files: [{team}]\n")
    f = world.fake
    f.call("Bash", {"command": "cat .env", "description": "show the env"})
    f.say("It was refused.")
    start_repl(world, term)

    team.write_text("")  # an editor truncated it, a script failed half-way
    hang_up(world)
    screen = term.wait_for("the policy was not reloaded")
    assert f"{team}:1:1: the policy is empty" in screen
    assert [(r["kind"], r["event"]) for r in reload_records(world)] == [("policy", "reload_failed")]

    term.type("show me .env")
    term.wait_for("It was refused.")
    [decision] = world.decisions()
    assert (decision["decision"], decision["rule"]) == ("deny", "credential-files")
    term.key("C-d")
    term.wait_dead()


def test_a_failed_reload_reaches_the_telegram_user(world):
    from tests.test_e2e_telegram import OWNER, TOKEN, Bot, FakeTelegram

    with FakeTelegram(TOKEN) as tg:
        bot = Bot(world, tg)
        bot.start()
        try:
            bot.says("/status")  # the owner's chat with the bot: a bot cannot start one
            tg.wait_message(OWNER, "Mode: default")
            config = world.leashd_home / "config.yaml"
            config.write_text(f"approved_directories: [{world.proj}]\nmax_turn: 3\n")  # a typo
            hang_up(world)
            told = tg.wait_message(OWNER, "configuration was not reloaded")
            assert "unknown key 'max_turn'" in told["text"]
            [failed] = reload_records(world)
            assert (failed["kind"], failed["event"]) == ("config", "reload_failed")
        finally:
            assert bot.stop() == 0, bot.output()
