"""End to end: a workspace from the phone. `leashd start -f` as a real process,
python-telegram-bot against the fake Bot API, the real Claude Code CLI against the fake
Messages API, real git repositories outside the approved directory and the real OS sandbox;
what happens is checked on disk, in what reached the model and in the audit log.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from leashd.agent.runner import bundled_cli
from tests.test_e2e_daemon import World, world  # noqa: F401
from tests.test_e2e_telegram import OWNER, Bot, bot  # noqa: F401

pytestmark = pytest.mark.skipif(
    bundled_cli() is None, reason="the Claude Code CLI bundled with claude-agent-sdk is missing"
)


def approve_until(bot: Bot, done: str, timeout: float = 90) -> list[str]:
    """Press Approve on each approval the turn asks for until a message with `done` arrives;
    returns what was asked, in order."""
    tg, asked = bot.tg, []

    def next_one(after: int) -> dict | None:
        said = tg.bot_messages(OWNER)
        return next((m for m in said if done in m["text"]), None) or next(
            (m for m in said if m["message_id"] > after and "Approval needed" in m["text"]
             and m["reply_markup"]), None,
        )  # fmt: skip

    seen = 0
    while True:
        found = tg.wait_for(lambda a=seen: next_one(a), timeout, f"{done!r} or an approval")
        if done in found["text"]:
            return asked
        seen = found["message_id"]
        asked.append(found["text"])
        q = tg.press(OWNER, OWNER, seen, bot.button(found, "✅ Approve"))
        tg.wait_answer(q)


def test_ws_from_the_phone_switches_and_the_agent_writes_into_the_second_directory(world, bot):
    """Two repositories outside the approved directory become one workspace from the chat;
    /ws lists it with a button, the press switches, /status shows it, and a turn of the
    real agent writes into the second repository with the Write tool and through Bash in
    the OS sandbox, after the owner approves. The model is told the branches."""
    f, tg = world.fake, bot.tg
    api, web = world.home / "api", world.home / "web"
    for d, branch in ((api, "trunk"), (web, "feature/login")):
        d.mkdir()
        subprocess.run(["git", "init", "-q", "-b", branch, str(d)], check=True)
    f.call("Write", {"file_path": str(web / "hello.txt"), "content": "from the phone\n"})
    f.call("Bash", {"command": "echo sandboxed > ../web/from-bash.txt",
                    "description": "write next door"})  # fmt: skip
    f.say("Both written.")
    bot.start()

    bot.says(f'/ws add my-saas {api} {web} -d "the product"')
    tg.wait_message(OWNER, f"Workspace my-saas: {api}, {web}.")
    bot.says("/ws")
    listing = tg.wait_message(OWNER, "Workspaces", buttons=True)
    assert f"my-saas: {api}, {web} — the product" in listing["text"]
    q = tg.press(OWNER, OWNER, listing["message_id"], bot.button(listing, "my-saas"))
    tg.wait_answer(q)
    switched = tg.wait_message(OWNER, "Working in workspace my-saas")
    assert "on branch feature/login" in switched["text"]
    bot.says("/status")
    status = tg.wait_message(OWNER, "Workspace: my-saas")
    assert f"Session 2 in {api}" in status["text"]  # its first directory; a new conversation

    bot.says("write hello into web, then one more from the shell")
    asked = approve_until(bot, "Both written.")
    assert asked and str(web / "hello.txt") in asked[0]
    assert (web / "hello.txt").read_text() == "from the phone\n"
    assert (web / "from-bash.txt").read_text() == "sandboxed\n"  # the kernel let it through

    # the model was told where it works, with each repository's branch
    system = json.dumps([r.get("system") for r in f.requests])
    assert "my-saas" in system and "the product" in system
    assert f"{api} (git repository, on branch trunk)" in system
    assert f"{web} (git repository, on branch feature/login)" in system
    # the audit log says the session entered it, and each decision names its directories
    records = world.records()
    [entered] = [r for r in records if r.get("event") == "workspace_entered"]
    assert entered["dirs"] == [str(api), str(web)]
    decided = [r for r in records if r.get("kind") == "decision" and r["decision"] == "allow"]
    assert {r["tool"] for r in decided} >= {"Write", "Bash"}
    assert all(r["session_dirs"] == [str(api), str(web)] for r in decided)
    assert world.proj.joinpath("README.md").exists() and not (api / "hello.txt").exists()
