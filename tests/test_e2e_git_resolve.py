"""End to end: a merge that stops on conflicts, resolved from the phone. `leashd start -f` as
a real process, python-telegram-bot against the fake Bot API, the real Claude Code CLI against
the fake Messages API (the scripted model reads the conflicted file and edits it under the
gate), and real git in the approved directory; the effects are checked with git itself.
"""

from __future__ import annotations

import subprocess

import pytest

from leashd.agent.runner import bundled_cli
from tests.fakes.anthropic_api import text, tool
from tests.test_e2e_daemon import World, world  # noqa: F401
from tests.test_e2e_telegram import OWNER, Bot, approvals, bot, last_message  # noqa: F401

pytestmark = pytest.mark.skipif(
    bundled_cli() is None, reason="the Claude Code CLI bundled with claude-agent-sdk is missing"
)

IDENT = {"GIT_AUTHOR_NAME": "Dev", "GIT_AUTHOR_EMAIL": "dev@example.com",
         "GIT_COMMITTER_NAME": "Dev", "GIT_COMMITTER_EMAIL": "dev@example.com"}  # fmt: skip
BASE = 'def greet(name):\n    return "Hello, " + name\n'
MAIN = 'def greet(name):\n    return f"Hello, {name}!"\n'
FEATURE = 'def greet(name):\n    return "Hello, " + name.title()\n'
RESOLVED = 'def greet(name):\n    return f"Hello, {name.title()}!"\n'
ASKED = "stopped on conflicts in: greet.py"  # in the prompt of the resolving turn
# what git leaves in greet.py (the default conflict style; the world's HOME has no gitconfig)
CONFLICT = ('<<<<<<< HEAD\n    return f"Hello, {name}!"\n=======\n'
            '    return "Hello, " + name.title()\n>>>>>>> feature\n')  # fmt: skip


def git(world: World, *args: str) -> str:
    """Real git in the project, with the world's HOME (no gitconfig of the machine's user)."""
    return subprocess.run(["git", "-C", str(world.proj), *args], env={**world.env, **IDENT},
                          capture_output=True, text=True, check=True).stdout  # fmt: skip


def diverged(world: World) -> tuple[str, str]:
    """main and feature both changed greet.py's one line since their common commit; returns
    (main's head, feature's head), main checked out and the tree clean."""
    git(world, "init", "-q", "-b", "main")
    (world.proj / ".gitignore").write_text(".env\n")
    (world.proj / "greet.py").write_text(BASE)
    git(world, "add", "-A")
    git(world, "commit", "-qm", "base")
    git(world, "checkout", "-qb", "feature")
    (world.proj / "greet.py").write_text(FEATURE)
    git(world, "commit", "-qam", "title-case the name")
    git(world, "checkout", "-q", "main")
    (world.proj / "greet.py").write_text(MAIN)
    git(world, "commit", "-qam", "exclaim")
    assert git(world, "status", "--porcelain") == ""
    return git(world, "rev-parse", "main").strip(), git(world, "rev-parse", "feature").strip()


def after_result(tool_id: str):
    """A reply only for the request that carries this tool call's result."""
    return lambda body: tool_id in last_message(body) and "tool_result" in last_message(body)


def merge_stops_on_conflicts(bot: Bot) -> dict:
    bot.says("/git merge feature")
    offer = bot.tg.wait_message(OWNER, "The merge stopped on conflicts", buttons=True)
    assert "greet.py" in offer["text"]
    return offer


def press(bot: Bot, message: dict, label: str) -> dict:
    q = bot.tg.press(OWNER, OWNER, message["message_id"], bot.button(message, label))
    return bot.tg.wait_answer(q)


def approve(bot: Bot, after: int, *shown: str) -> dict:
    ask = bot.tg.wait_message(OWNER, "Approval needed", buttons=True, after=after, timeout=60)
    for s in shown:
        assert s in ask["text"], ask["text"]
    press(bot, ask, "✅ Approve")
    return ask


def test_a_merge_conflict_is_resolved_by_the_agent_and_committed_from_the_phone(world, bot):
    f, tg, proj = world.fake, bot.tg, world.proj
    before, feature = diverged(world)
    path = str(proj / "greet.py")
    read = tool("Read", {"file_path": path})
    f.reply(text("Let me look at the conflict."), read,
            when=lambda body: ASKED in last_message(body))  # fmt: skip
    edit = tool("Edit", {"file_path": path, "old_string": CONFLICT,
                         "new_string": '    return f"Hello, {name.title()}!"\n'})  # fmt: skip
    f.reply(edit, when=after_result(read["id"]))
    add = tool("Bash", {"command": "git add greet.py", "description": "stage the resolution"})
    f.reply(add, when=after_result(edit["id"]))
    f.reply(text("Resolved greet.py: title-cased and exclaimed."), when=after_result(add["id"]))
    bot.start(**IDENT)

    offer = merge_stops_on_conflicts(bot)
    assert "<<<<<<<" in (proj / "greet.py").read_text()  # git really stopped there
    press(bot, offer, "🤖 Resolve with AI")
    started = tg.wait_message(OWNER, "The agent resolves the conflicts in greet.py")
    # the gate asks about the edit, then about staging it; the owner approves both
    edit_ask = approve(bot, started["message_id"], path, "file-writes")
    assert "<<<<<<<" in (proj / "greet.py").read_text()  # nothing written before the approval
    approve(bot, edit_ask["message_id"], "git add greet.py")
    resolution = tg.wait_message(OWNER, "The agent's resolution", buttons=True, timeout=60)
    shown = resolution["text"]
    assert '-    return f"Hello, {name}!"' in shown
    assert '+    return f"Hello, {name.title()}!"' in shown
    assert "Resolved greet.py" in tg.wait_message(OWNER, "Resolved greet.py")["text"]
    # not committed until the owner says so
    assert git(world, "rev-parse", "HEAD").strip() == before
    assert (proj / ".git" / "MERGE_HEAD").exists()
    press(bot, resolution, "✅ Commit the merge")
    tg.wait_message(OWNER, "Merge branch 'feature'", buttons=True, after=resolution["message_id"])

    # the merge commit, with both parents, holds the scripted resolution
    merge, *parents = git(world, "rev-list", "--parents", "-n1", "HEAD").split()
    assert parents == [before, feature]
    assert git(world, "rev-parse", "main").strip() == merge  # on main, where the merge began
    assert git(world, "log", "-1", "--format=%s").strip() == "Merge branch 'feature'"
    committed = git(world, "show", "HEAD:greet.py")
    assert committed == RESOLVED == (proj / "greet.py").read_text()
    assert not any(m in committed for m in ("<<<<<<<", "=======", ">>>>>>>"))
    assert git(world, "status", "--porcelain") == ""
    assert not (proj / ".git" / "MERGE_HEAD").exists()

    # what reached the model: the prompt names the file, the Read gave it both sides
    (prompt,) = [last_message(b) for b in f.requests if ASKED in last_message(b)]
    assert "greet.py" in prompt and "Do not commit" in prompt
    seen = f.tool_results()
    # the Read's result numbers the lines: each line of the conflict, both sides, was seen
    assert all(line in seen[read["id"]] for line in CONFLICT.splitlines()), seen[read["id"]]
    assert edit["id"] in seen and add["id"] in seen
    assert f.unexpected == 0

    # the audit log: the owner's git as theirs, the agent's edit and staging as gate decisions
    records = world.records()
    mine = [r for r in records if r.get("kind") == "git"]
    assert [r["event"] for r in mine] == ["merge", "commit"]
    assert {(r["by"], r["who"]) for r in mine} == {("user", str(OWNER))}
    assert mine[0]["argv"] == ["git", "merge", "--no-edit", "feature"] and mine[0]["exit"] != 0
    assert mine[1]["argv"] == ["git", "commit", "--no-edit"] and mine[1]["exit"] == 0
    decided = {r["tool"]: r for r in world.decisions()}
    assert decided["Edit"]["decision"] == "allow" and decided["Edit"]["layer"] == "approval"
    assert decided["Edit"]["policy_decision"] == "require_approval"
    assert decided["Edit"]["rule"] == "file-writes"
    assert decided["Bash"]["policy_decision"] == "require_approval"
    assert approvals(world) == [("requested", None), ("approved", str(OWNER))] * 2


def test_a_merge_the_agent_leaves_in_conflict_is_aborted_to_where_it_was(world, bot):
    f, tg, proj = world.fake, bot.tg, world.proj
    before, _ = diverged(world)
    f.reply(text("Both sides change the same line differently; I would rather you decide."),
            when=lambda body: ASKED in last_message(body))  # fmt: skip
    bot.start(**IDENT)

    offer = merge_stops_on_conflicts(bot)
    press(bot, offer, "🤖 Resolve with AI")
    left = tg.wait_message(OWNER, "Still in conflict", buttons=True, timeout=60)
    assert "greet.py" in left["text"] and bot.button(left, "🔁 Retry")
    press(bot, left, "✋ Abort the merge")
    tg.wait_message(OWNER, "The merge was aborted", after=left["message_id"])
    assert git(world, "rev-parse", "HEAD").strip() == before
    assert (proj / "greet.py").read_text() == MAIN
    assert git(world, "status", "--porcelain") == ""
    mine = [r for r in world.records() if r.get("kind") == "git"]
    assert [r["argv"][1:] for r in mine] == [
        ["merge", "--no-edit", "feature"],
        ["merge", "--abort"],
    ]
    aborted = mine[-1]
    assert aborted["argv"] == ["git", "merge", "--abort"] and aborted["exit"] == 0
    assert aborted["by"] == "user" and aborted["who"] == str(OWNER)
    assert any(ASKED in last_message(b) for b in f.requests) and f.unexpected == 0
    assert world.decisions() == []  # the agent did nothing the gate had to decide
