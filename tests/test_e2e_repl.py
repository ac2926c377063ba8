"""End to end, the terminal REPL (`leashd start -f` in tmux) against the real Claude Code CLI
and the fake Messages API: switching directories, notices arriving while the REPL is idle
or a line is half-typed, a message arriving during a turn, an approval arriving while that
message's question is open, an approval nobody answers, and "approve similar". Effects are
checked on disk, in the audit log and in the SQLite store.

Every step waits for a state: the prompt (the REPL is idle), a question on screen, a request
the fake API holds until the test lets it go (`held_until`). The world, the fixtures and the
REPL helpers are those of test_e2e_daemon.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from leashd.agent.runner import bundled_cli
from tests import test_e2e_daemon
from tests.fakes.anthropic_api import text, tool
from tests.test_e2e_daemon import LEASHD, World, prompted_fake, socket_path, start_repl
from tests.test_terminal_repl import held_until, prompted, tool_result
from tests.tmux import Tmux, until

# the harness's fixtures, used here under the same names
world = test_e2e_daemon.world
term = test_e2e_daemon.term

pytestmark = pytest.mark.skipif(
    bundled_cli() is None, reason="the Claude Code CLI bundled with claude-agent-sdk is missing"
)

ASKED = "[y]es / [n]o"
BUSY = "A turn is running: [q]ueue"
IDLE = "›"  # the prompt with nothing typed after it, as a line of the screen


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
    listed = term.wait_idle()
    assert f"1. {world.proj}  (current)" in listed and f"2. {other}\n" in listed
    term.type(f"/dir {world.home}/./other")  # a path, as typed: resolved before it is matched
    assert f"Working in {other} (new conversation)." in term.wait_idle()
    term.type("/dir")
    assert f"2. {other}  (current)" in term.wait_idle()
    term.type(f"/dir {world.outside}")
    assert f"{world.outside} is not an approved directory" in term.wait_idle()

    term.type("mark where you are")
    term.wait_for(ASKED)
    term.type("y")
    assert "Marked the spot." in term.wait_idle()

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
    assert f"Working in {other} (new conversation)." in term.wait_idle()
    term.key("C-d")
    term.wait_dead()
    term.close()

    again = Tmux(socket_path("b"))
    try:
        start_repl(world, again)
        again.type("/status")
        assert f"in {other}" in again.wait_idle()
    finally:
        again.close()


# --- notices while idle --------------------------------------------------------------------------


def add_dir(world: World, name: str) -> str:
    """`leashd add-dir`: the running daemon reloads its configuration and says so in the
    REPL, a notice arriving while nobody asked for anything (as a task's progress does).
    Returns the start of that notice."""
    path = world.home / name
    path.mkdir()
    done = subprocess.run([*LEASHD, "add-dir", str(path)], env=world.env, capture_output=True,
                          text=True)  # fmt: skip
    assert done.returncode == 0 and "the running daemon was told" in done.stdout, done
    config = yaml.safe_load((world.leashd_home / "config.yaml").read_text())
    return f"(configuration reloaded: {len(config['approved_directories'])} approved directories"


def lines(term: Tmux) -> list[str]:
    """The screen's lines (wrapped rows joined), blank ones left out."""
    return [line.rstrip() for line in term.screen().splitlines() if line.strip()]


def test_repl_notices_while_idle_are_shown_above_the_one_prompt(world, term):
    """Each notice is printed above the prompt, which is drawn again under it: the screen
    shows the notices once each, then one prompt, and no empty prompts between them."""
    start_repl(world, term)
    notices = []
    for name in ("one", "two", "three"):
        notices.append(add_dir(world, name))
        term.wait_for(notices[-1])
    until(lambda: lines(term)[-1] == IDLE, what="the prompt under the notices")

    shown = lines(term)
    assert [line for line in shown if line.startswith(IDLE)] == [IDLE]
    assert [line.split(";")[0] for line in shown[-4:-1]] == notices
    assert shown[-1] == IDLE
    for notice in notices:
        assert sum(line.startswith(notice) for line in shown) == 1, notice
    x, y = term.cursor()
    assert (x, term.rows()[y].rstrip()) == (2, IDLE)  # the cursor after the prompt


def test_repl_a_line_half_typed_when_a_notice_arrives_stays_and_is_sent_whole(world, term):
    world.fake.reply(text("Hello to you."), when=prompted("hello world"))
    start_repl(world, term)
    term.type("hello wor", enter=False)
    until(lambda: lines(term)[-1] == "› hello wor", what="the half-typed line")
    before = term.cursor()

    notice = add_dir(world, "other")
    term.wait_for(notice)
    until(lambda: lines(term)[-1] == "› hello wor", what="the line drawn again")

    shown = lines(term)
    assert shown[-2].startswith(notice) and shown[-1] == "› hello wor"
    assert [line for line in shown if line.startswith(IDLE)] == ["› hello wor"]  # no other
    assert term.cursor() == (before[0], before[1] + 1)  # where it was, a row lower
    term.type("ld")
    screen = term.wait_idle()
    assert "› hello world\nHello to you." in screen
    assert world.fake.user_texts() == ["hello world"]


# --- a message during a turn --------------------------------------------------------------------


def test_repl_message_during_a_turn_can_be_queued(world, term):
    f = world.fake
    go = threading.Event()  # the first turn goes on only once the message is queued
    f.call("Bash", {"command": "echo working", "description": "work"})
    f.reply(text("First done."), when=held_until(go, tool_result))
    f.reply(text("Second done."), when=prompted("second task"))
    start_repl(world, term)

    term.type("first task")
    term.wait_for("🔧 Bash: echo working")
    term.type("second task")
    term.wait_for(f'{BUSY} "second task" or [i]nterrupt the turn?')
    term.type("q")
    term.wait_for("Queued: it runs when this turn ends.")
    go.set()
    screen = term.wait_idle()

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
    f.reply(text("First done."), when=tool_result)
    f.reply(text("Second done."), when=prompted("second task"))
    start_repl(world, term)

    term.type("first task")
    term.wait_for("🔧 Bash: sleep 20")
    term.type("second task")
    term.wait_for(BUSY)
    started = time.monotonic()
    term.type("i")
    term.wait_for("⏹ interrupted")
    stopped = time.monotonic() - started
    screen = term.wait_idle()

    # the sleep did not hold the turn (the CLI refuses a sleep of 25 s or more)
    assert stopped < 15
    assert not sleeping(world.proj, "sleep 20")
    assert "Second done." in screen
    assert "First done." not in screen
    assert "Queued" not in screen
    texts = f.user_texts()
    assert texts[0] == "first task" and texts[-1] == "second task"
    assert not term.dead()


def test_repl_queue_question_is_withdrawn_when_the_turn_ends_and_the_message_runs(world, term):
    """The turn ends while the user is still choosing between queue and interrupt: there is
    nothing left to choose; the screen says the message goes now, and it runs (it once
    waited in a queue nothing drained)."""
    f = world.fake
    go = threading.Event()  # the first turn ends only once the question is open
    f.call("Bash", {"command": "echo working", "description": "work"})
    f.reply(text("First done."), when=held_until(go, tool_result))
    f.reply(text("Second done."), when=prompted("second task"))
    start_repl(world, term)

    term.type("first task")
    term.wait_for("🔧 Bash: echo working")
    term.type("second task")
    term.wait_for(BUSY)
    go.set()
    screen = term.wait_idle()

    withdrawn = screen.index('(that turn is over: "second task" goes now)')
    assert screen.index("First done.") < withdrawn < screen.index("Second done.")
    assert "Queued" not in screen
    assert f.user_texts() == ["first task", "second task"]


def test_repl_approval_while_the_queue_question_is_open_takes_the_answer(world, term):
    """An approval arrives while "queue or interrupt?" is open: it is asked first, so `y`
    approves it; then the queue question comes back and `q` answers it."""
    f = world.fake
    go = threading.Event()  # the model asks for the write once the queue question is open
    on = threading.Event()  # and ends its turn once the question has its answer
    f.reply(tool("Write", {"file_path": str(world.proj / "a.txt"), "content": "a\n"}),
            when=held_until(go, prompted("first task")))  # fmt: skip
    f.reply(text("Wrote a.txt."), when=held_until(on, tool_result))
    f.reply(text("Second done."), when=prompted("second task"))
    start_repl(world, term)

    term.type("first task")
    until(lambda: prompted_fake(world), what="the model asked")  # and is held
    term.type("second task")
    term.wait_for(BUSY)
    go.set()
    screen = term.wait_for(ASKED)
    assert "the question above is set aside" in screen.split(BUSY)[1]
    term.type("y")
    term.wait_for(BUSY, count=2)
    term.type("q")
    term.wait_for("Queued: it runs when this turn ends.")
    on.set()
    screen = term.wait_idle()

    assert (world.proj / "a.txt").read_text() == "a\n"
    assert approval_events(world) == ["requested", "approved"]
    approved = [r for r in world.records() if r.get("event") == "approved"]
    assert [r.get("who") for r in approved] == ["terminal"]
    order = [screen.index(ASKED), screen.index("→ approved"), screen.rindex(BUSY),
             screen.index("Queued"), screen.index("Wrote a.txt."),
             screen.index("Second done.")]  # fmt: skip
    assert order == sorted(order)
    assert f.user_texts() == ["first task", "second task"]


def test_repl_a_line_typed_as_soon_as_the_answer_shows_is_a_new_message(world, term):
    """What a person does: read the answer, type the next message at once. This test types
    as soon as the answer's text is on screen, without waiting for the prompt: the answer
    is shown only once its turn is over, so the line must start a new turn, never meet "a
    turn is running" (it once did: the answer came 37-58 ms before the end of its turn)."""
    f = world.fake
    f.say("First answer.")
    f.reply(text("Second answer."), when=prompted("next question"))
    start_repl(world, term)

    term.type("first question")
    term.wait_for("First answer.")
    term.type("next question")
    screen = term.wait_idle()

    assert "Second answer." in screen
    assert "A turn is running" not in screen
    assert f.user_texts() == ["first question", "next question"]


# --- an approval nobody answers ------------------------------------------------------------------


def test_repl_unanswered_approval_expires_denied(world, term):
    f = world.fake
    write = f.call("Write", {"file_path": str(world.proj / "late.txt"), "content": "late\n"})
    f.say("Nobody answered, so nothing was written.")
    start_repl(world, term, LEASHD_APPROVAL_TIMEOUT_SECONDS="2")

    asked_at = time.monotonic()
    term.type("write late.txt")
    term.wait_for(ASKED)
    screen = term.wait_idle()

    assert "Nobody answered, so nothing was written." in screen
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
    assert "Still here." in term.wait_idle()


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
    screen = term.wait_idle()
    assert "→ approved-similar" in screen and "Touched one." in screen

    term.type("touch two, then the others")
    screen = term.wait_for("[y]es / [n]o / [s]imilar (mkdir build) ?")
    # touch two.txt was not asked about: the only question so far besides the first
    assert screen.count(ASKED) == 2
    term.type("n")
    assert "Two touched, the rest was not allowed." in term.wait_idle()

    term.type("/clear")
    assert "New conversation started." in term.wait_idle()
    term.type("touch three")
    term.wait_for("[s]imilar (touch) ?", count=2)
    term.type("n")
    assert "Three is up to you." in term.wait_idle()

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
