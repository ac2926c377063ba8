"""End to end, the terminal REPL (`leashd start -f` in tmux) against the real Claude Code CLI
and the fake Messages API: switching directories, a message arriving during a turn, an
approval nobody answers, and "approve similar". Effects are checked on disk, in the audit
log and in the SQLite store.

The world, the fixtures and the REPL helpers are those of test_e2e_daemon.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from leashd.agent.runner import bundled_cli
from tests import test_e2e_daemon
from tests.fakes.anthropic_api import text
from tests.test_e2e_daemon import World, socket_path, start_repl
from tests.tmux import Tmux

# the harness's fixtures, used here under the same names
world = test_e2e_daemon.world
term = test_e2e_daemon.term

pytestmark = pytest.mark.skipif(
    bundled_cli() is None, reason="the Claude Code CLI bundled with claude-agent-sdk is missing"
)

ASKED = "[y]es / [n]o"


def prompted(words: str):  # type: ignore[no-untyped-def]
    """A `when` for the fake: the request's latest message is the user's prompt `words`
    (the first request of that turn, not one carrying a tool's result)."""

    def when(body: dict[str, Any]) -> bool:
        messages = body.get("messages") or []
        return bool(messages) and words in json.dumps(messages[-1])

    return when


def turns_done(term: Tmux, n: int) -> str:
    """Until `n` turns have ended (each ends with its summary line, after it is stored)."""
    return term.wait_for("\n— $", count=n)


def sleeping(cwd: Path, command: str) -> bool:
    """Whether a process running `command` in `cwd` is left (read from /proc)."""
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            here = os.readlink(proc / "cwd")
        except OSError:
            continue
        if here == str(cwd) and b" ".join(a for a in argv if a).decode(errors="replace") == command:
            return True
    return False


@contextlib.contextmanager
def db(world: World) -> Iterator[sqlite3.Connection]:
    """The daemon's SQLite store, read only."""
    path = world.leashd_home / "messages.db"
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        yield conn


def approval_events(world: World) -> list[str]:
    return [r["event"] for r in world.records() if r.get("kind") == "approval"]


def decision_for(world: World, needle: str) -> dict:
    """The one decision record whose input mentions `needle`."""
    found = [d for d in world.decisions() if needle in json.dumps(d.get("input"))]
    assert len(found) == 1, found
    return found[0]


# --- /dir ---------------------------------------------------------------------------------------


def test_repl_dir_lists_and_switches_and_the_agent_works_there(world, term):
    other = world.home / "other"
    other.mkdir()
    (world.leashd_home / "config.yaml").write_text(
        f"approved_directories: [{world.proj}, {other}]\n"
    )
    f = world.fake
    pwd = f.call("Bash", {"command": "pwd", "description": "where"})
    f.call("Bash", {"command": "touch made-here.txt", "description": "mark"})
    f.say("Marked the spot.")
    start_repl(world, term)

    term.type("/dir")
    listed = term.wait_for(f"2. {other}")
    assert f"1. {world.proj}  (current)" in listed
    term.type(f"/dir {world.home}/./other")  # a path, as typed: resolved before it is matched
    term.wait_for(f"Working in {other} (new conversation).")
    term.type("/dir")
    term.wait_for(f"2. {other}  (current)")
    term.type(f"/dir {world.outside}")
    term.wait_for(f"{world.outside} is not an approved directory")

    term.type("mark where you are")
    term.wait_for(ASKED)
    term.type("y")
    term.wait_for("Marked the spot.")
    turns_done(term, 1)

    # the agent ran in the directory switched to: its shell, and a relative path
    assert f.tool_results()[pwd].strip() == str(other)
    assert (other / "made-here.txt").exists()
    assert not (world.proj / "made-here.txt").exists()
    touch = decision_for(world, "touch made-here.txt")
    assert touch["decision"] == "allow" and touch["cwd"] == str(other)
    # the switch is a new session, stored with its directory; the old one is kept
    with db(world) as conn:
        rows = conn.execute(
            "SELECT directory, current, agent_session_id FROM sessions WHERE chat = 'terminal' "
            "ORDER BY id"
        ).fetchall()
    assert [(d, c) for d, c, _ in rows] == [(str(world.proj), 0), (str(other), 1)]
    assert rows[1][2]  # the agent's conversation there, to resume


def test_repl_status_after_dir_switch_survives_a_restart(world, term):
    """The directory switched to is where the chat's session stays, also after a restart."""
    other = world.home / "other"
    other.mkdir()
    (world.leashd_home / "config.yaml").write_text(
        f"approved_directories: [{world.proj}, {other}]\n"
    )
    start_repl(world, term)
    term.type("/dir 2")
    term.wait_for(f"Working in {other} (new conversation).")
    term.key("C-d")
    term.wait_dead()
    term.close()

    again = Tmux(socket_path("b"))
    try:
        start_repl(world, again)
        again.type("/status")
        again.wait_for(f"in {other}")
    finally:
        again.close()


# --- a message during a turn --------------------------------------------------------------------


def test_repl_message_during_a_turn_can_be_queued(world, term):
    f = world.fake
    f.call("Bash", {"command": "sleep 4", "description": "wait"})
    f.say("First done.")
    f.reply(text("Second done."), when=prompted("second task"))
    start_repl(world, term)

    term.type("first task")
    term.wait_for("🔧 Bash: sleep 4")
    term.type("second task")
    term.wait_for("[q]ueue this message or [i]nterrupt the turn?")
    term.type("q")
    term.wait_for("Queued: it runs when this turn ends.")
    term.wait_for("Second done.")
    screen = turns_done(term, 2)

    # the first turn ran to its end, then the queued message, in the same conversation
    assert screen.index("First done.") < screen.index("Second done.")
    assert "interrupted" not in screen
    assert f.user_texts() == ["first task", "second task"]
    assert f.unexpected == 0
    with db(world) as conn:
        said = conn.execute(
            "SELECT role, text FROM messages ORDER BY id"
        ).fetchall()  # fmt: skip
    assert said == [("user", "first task"), ("assistant", "First done."),
                    ("user", "second task"), ("assistant", "Second done.")]  # fmt: skip


def test_repl_message_during_a_turn_can_interrupt_it(world, term):
    f = world.fake
    f.call("Bash", {"command": "sleep 20", "description": "wait long"})
    # only if the first turn were let run on would the model see the sleep's result
    f.reply(
        text("First done."), when=lambda body: "tool_result" in json.dumps(body["messages"][-1])
    )
    f.reply(text("Second done."), when=prompted("second task"))
    start_repl(world, term)

    term.type("first task")
    term.wait_for("🔧 Bash: sleep 20")
    started = time.monotonic()
    term.type("second task")
    term.wait_for("[q]ueue this message or [i]nterrupt the turn?")
    term.type("i")
    term.wait_for("⏹ interrupted")
    screen = term.wait_for("Second done.")

    # the sleep did not hold the next turn (the CLI refuses a sleep of 25 s or more)
    assert time.monotonic() - started < 15
    assert not sleeping(world.proj, "sleep 20")
    assert "First done." not in screen
    assert "Queued" not in screen
    texts = f.user_texts()
    assert texts[0] == "first task" and texts[-1] == "second task"
    assert not term.dead()


def test_repl_message_queued_just_as_the_turn_ends_still_runs(world, term):
    """The turn ends while the user is still choosing between queue and interrupt: the
    message must run all the same, not wait in a queue nothing drains."""
    f = world.fake
    f.call("Bash", {"command": "sleep 2", "description": "wait"})
    f.say("First done.")
    f.reply(text("Second done."), when=prompted("second task"))
    start_repl(world, term)

    term.type("first task")
    term.wait_for("🔧 Bash: sleep 2")
    term.type("second task")
    term.wait_for("[q]ueue this message or [i]nterrupt the turn?")
    turns_done(term, 1)  # the first turn is over; the question is still open
    term.type("q")
    term.wait_for("Second done.", timeout=30)
    turns_done(term, 2)
    assert f.user_texts() == ["first task", "second task"]


# --- an approval nobody answers ------------------------------------------------------------------


def test_repl_unanswered_approval_expires_denied(world, term):
    f = world.fake
    write = f.call("Write", {"file_path": str(world.proj / "late.txt"), "content": "late\n"})
    f.say("Nobody answered, so nothing was written.")
    start_repl(world, term, LEASHD_APPROVAL_TIMEOUT_SECONDS="2")

    asked_at = time.monotonic()
    term.type("write late.txt")
    term.wait_for(ASKED)
    term.wait_for("⌛ approval expired, denied")
    term.wait_for("Nobody answered, so nothing was written.")
    screen = turns_done(term, 1)

    assert time.monotonic() - asked_at < 30
    assert not (world.proj / "late.txt").exists()
    assert f"Write {world.proj / 'late.txt'}" in screen.split("⌛ approval expired, denied")[1]
    assert approval_events(world) == ["requested", "expired"]
    [d] = world.decisions()
    assert (d["decision"], d["layer"], d["approval"]) == ("deny", "approval", "expired")
    assert d["reason"] == "no answer within 2 s"
    assert d["policy_decision"] == "require_approval" and d["rule"] == "file-writes"
    result = f.tool_results()[write]
    assert "Denied by leashd (approval): no answer within 2 s" in result
    with db(world) as conn:
        [(outcome, who)] = conn.execute("SELECT outcome, who FROM approvals").fetchall()
    assert (outcome, who) == ("expired", None)
    # the REPL goes on: a message after it is a message, not a late answer
    f.say("Still here.")
    term.type("hello again")
    term.wait_for("Still here.")


# --- approve similar -----------------------------------------------------------------------------


def test_repl_approve_similar_covers_the_same_program_in_this_session_only(world, term):
    """What is "similar": the same program and subcommand (similar_scope in
    leashd/gate/approvals.py). `touch one.txt` offers the scope `touch`; `touch two.txt` is
    then covered, `mkdir build` is not, a deny stays a deny, and /clear (a new session)
    forgets the scope."""
    f = world.fake
    f.call("Bash", {"command": "touch one.txt", "description": "one"})
    f.say("Touched one.")
    f.call("Bash", {"command": "touch two.txt", "description": "two"})
    sneaky = f.call("Bash", {"command": "touch ../outside/sneaky.txt", "description": "out"})
    f.call("Bash", {"command": "mkdir build", "description": "dir"})
    f.say("Two touched, the rest was not allowed.")
    f.call("Bash", {"command": "touch three.txt", "description": "three"})
    f.say("Three is up to you.")
    start_repl(world, term)

    term.type("touch one")
    term.wait_for("[y]es / [n]o / [s]imilar (touch) ?")
    term.type("s")
    term.wait_for("→ approved-similar")
    term.wait_for("Touched one.")
    turns_done(term, 1)

    term.type("touch two, then the others")
    screen = term.wait_for("[y]es / [n]o / [s]imilar (mkdir build) ?")
    # touch two.txt was not asked about: the only question so far besides the first
    assert screen.count(ASKED) == 2
    term.type("n")
    term.wait_for("Two touched, the rest was not allowed.")
    turns_done(term, 2)

    term.type("/clear")
    term.wait_for("New conversation started.")
    term.type("touch three")
    screen = term.wait_for("[s]imilar (touch) ?", count=2)
    term.type("n")
    term.wait_for("Three is up to you.")

    assert (world.proj / "one.txt").exists() and (world.proj / "two.txt").exists()
    assert not (world.outside / "sneaky.txt").exists()
    assert not (world.proj / "build").exists()
    assert not (world.proj / "three.txt").exists()
    assert "Denied by leashd (policy)" in f.tool_results()[sneaky]
    assert approval_events(world) == [
        "requested", "approved-similar",  # touch one.txt
        "similar",  # touch two.txt, covered
        "requested", "rejected",  # mkdir build
        "requested", "rejected",  # touch three.txt after /clear
    ]  # fmt: skip
    two = decision_for(world, "touch two.txt")
    assert (two["decision"], two["layer"], two["approval"]) == ("allow", "approval", "similar")
    assert "approve similar" in two["reason"]
    out = decision_for(world, "sneaky.txt")
    assert (out["decision"], out["rule"]) == ("deny", "write-outside-project")
    one = decision_for(world, "touch one.txt")
    assert (one["decision"], one.get("approval"), one.get("who")) == (
        "allow", "approved-similar", "terminal",
    )  # fmt: skip
