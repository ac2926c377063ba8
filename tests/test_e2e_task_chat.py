"""`/task` through Telegram: `leashd start -f` as a real process, the fake Bot API, the real
CLI scripted by the fake Messages API, real git with a bare remote, a fake GitHub, real SQLite.
The stories: a task from `/task` to its pull request with the costs in `/tasks`; a daemon
killed with SIGKILL in the middle of implement, restarted, the task going on to its PR;
`/cancel` in the middle of a phase; a task whose tests keep failing, paused with buttons, and
the buttons pressed: more retries (it goes on to its PR) or cancel (nothing is pushed)."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest

from leashd.agent.runner import bundled_cli
from tests.fakes.anthropic_api import text, tool
from tests.fakes.github_api import FakeGitHub
from tests.fakes.telegram_api import FakeTelegram
from tests.test_e2e_daemon import LEASHD, World, world  # noqa: F401
from tests.test_e2e_tasks import BUGGY, CHECK, COMMAND, FIXED, GITHUB_URL, STILL_BUGGY, git
from tests.test_e2e_telegram import OWNER, TOKEN, Bot
from tests.tmux import until

pytestmark = pytest.mark.skipif(
    bundled_cli() is None, reason="the Claude Code CLI bundled with claude-agent-sdk is missing"
)


def repository(world: World) -> Path:
    """The project as a git checkout of a bare remote named by a GitHub URL; `.env` (the
    world's canary) stays untracked, as a developer's would."""
    bare = world.root / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    proj = world.proj
    git(proj, "init", "-q", "-b", "main")
    git(proj, "config", "user.name", "Dev")
    git(proj, "config", "user.email", "dev@example.com")
    (proj / "calc.py").write_text(BUGGY)
    (proj / "check.py").write_text(CHECK)
    (proj / ".leashd").mkdir()
    (proj / ".leashd" / "test.yaml").write_text(f"command: {COMMAND}\n")
    git(proj, "add", "calc.py", "check.py", ".leashd", "README.md")
    git(proj, "commit", "-qm", "calc")
    git(proj, "remote", "add", "origin", GITHUB_URL)
    git(proj, "config", f"url.{bare}.insteadOf", GITHUB_URL)
    git(proj, "push", "-q", "-u", "origin", "main")
    return bare


def _reviewing(body: dict) -> bool:
    return "plan reviewer of leashd" in json.dumps(body.get("system", ""))


def _approving(body: dict) -> bool:
    return "approver of leashd" in json.dumps(body.get("system", ""))


def _agent(body: dict) -> bool:
    return not _reviewing(body) and not _approving(body)


def read_only_phases(world: World) -> None:
    for said in ("add() must return the sum; check.py proves it.", "calc.py holds add().",
                 "add() must return the sum; check.py proves it.",
                 "1. Make add() return a + b."):  # fmt: skip
        world.fake.reply(text(said), when=_agent)
    world.fake.reply(text('{"decision": "approve", "feedback": "minimal and tested"}'),
                     when=_reviewing)  # fmt: skip


def implement_and_test(world: World) -> None:
    edit = {"file_path": str(world.proj / "calc.py"), "old_string": BUGGY, "new_string": FIXED}
    world.fake.reply(tool("Edit", edit), when=_agent)
    world.fake.reply(text("Changed calc.py."), when=_agent)
    world.fake.reply(tool("Bash", {"command": COMMAND, "description": "tests"}), when=_agent)
    world.fake.reply(text("PASSED"), when=_agent)


def orphaned_clis(world: World) -> list[int]:
    """The Claude Code CLI processes running with this world's HOME."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"claude" in cmdline and f"HOME={world.home}".encode() in environ:
            found.append(int(proc.name))
    return found


@pytest.fixture
def github():
    with FakeGitHub() as fake:
        fake.add_repo("acme/calc")
        yield fake


@pytest.fixture
def bot(world, github):
    with FakeTelegram(TOKEN) as tg:
        b = Bot(world, tg)
        b.env.update({
            "LEASHD_TASK_ORCHESTRATOR": "true",
            "LEASHD_AUTO_PLAN_REVIEWER": "true",
            "LEASHD_GITHUB_API_URL": github.url,
            "LEASHD_GITHUB_TOKEN": github.token,
            "LEASHD_TASK_RETRY_BACKOFF_SECONDS": "0",
        })  # fmt: skip
        yield b
        if b.proc is not None and b.proc.poll() is None:
            b.stop()
        assert not tg.unknown_methods, tg.unknown_methods


def test_a_task_from_the_chat_to_its_pull_request(world, bot, github):
    bare = repository(world)
    read_only_phases(world)
    # implement first checks a local server, then wants a page from the web: network reads
    # the autonomous policy routes to the AI approver, which says yes to the first and no to
    # the second (nothing leaves the machine in a test either way: the OS sandbox has no
    # network, and the server is not there)
    health = {"command": "curl -s http://localhost:9/health", "description": "health"}
    docs = {"command": "curl -s https://docs.python.org/3/library/operator.html",
            "description": "docs"}  # fmt: skip
    world.fake.reply(tool("Bash", health), when=_agent)
    world.fake.reply(text('{"decision": "approve", "reason": "a local read-only request"}'),
                     when=_approving)  # fmt: skip
    world.fake.reply(tool("Bash", docs), when=_agent)
    world.fake.reply(text('{"decision": "deny", "reason": "the fix needs no documentation"}'),
                     when=_approving)  # fmt: skip
    implement_and_test(world)
    bot.start(LEASHD_AUTO_APPROVER="true")
    bot.says("/task Fix add() in calc.py")
    tg = bot.tg
    tg.wait_message(OWNER, "Task 1 started")
    done = tg.wait_message(OWNER, "Task 1 done", timeout=180)
    assert "/pull/1" in done["text"]
    (pr,) = github.pulls
    assert pr.head == "leashd/1-fix-add-in-calc-py" and "Make add() return a + b" in pr.body
    assert git(bare, "show", f"{pr.head}:calc.py") == FIXED.strip()
    assert ".env" not in git(bare, "ls-tree", "-r", "--name-only", pr.head).split()
    bot.says("/tasks")
    listed = tg.wait_message(OWNER, "#1 done at pr")
    assert "spec $" in listed["text"] and "implement $" in listed["text"]
    assert "PR: " in listed["text"] and "/pull/1" in listed["text"]
    assert "AI approver: on (1 approval in the window, 1 denial in a row)" in listed["text"]
    by_ai = [r for r in world.records() if r.get("approved_by") == "ai"]
    assert [(r["decision"], r["approver_reason"], r["rule"]) for r in by_ai] == [
        ("allow", "a local read-only request", "network-reads"),
        ("deny", "the fix needs no documentation", "network-reads"),
    ]
    # what the closing note of issue 22 shows (pytest -s prints it)
    print(tg.transcript(OWNER), *map(json.dumps, by_ai), sep="\n")


def test_a_daemon_killed_mid_implement_resumes_the_task(world, bot, github):
    bare = repository(world)
    read_only_phases(world)
    world.fake.hang(when=_agent)  # implement never answers
    bot.start()
    bot.says("/task Fix add() in calc.py")
    tg = bot.tg
    tg.wait_message(OWNER, "Task 1: implement…", timeout=180)
    until(lambda: any(_agent(b) and "Implement the plan" in json.dumps(b["messages"])
                      for b in world.fake.requests), timeout=60)  # fmt: skip
    assert bot.proc is not None
    bot.proc.send_signal(signal.SIGKILL)
    bot.proc.wait(30)
    # The CLI the dead daemon started goes with it (its tether kills it): nothing is left to
    # take the replies scripted for the restarted daemon
    until(lambda: not orphaned_clis(world), timeout=15)
    world.fake.release()
    implement_and_test(world)
    seen = len(tg.messages(OWNER))
    bot.start()
    said = tg.wait_message(OWNER, "restarted during phase implement: it runs again",
                           after=seen, timeout=60)  # fmt: skip
    assert said
    done = tg.wait_message(OWNER, "Task 1 done", after=seen, timeout=180)
    assert "/pull/1" in done["text"]
    assert len(github.pulls) == 1
    assert git(bare, "show", "leashd/1-fix-add-in-calc-py:calc.py") == FIXED.strip()
    shown = subprocess.run([*LEASHD, "tasks", "show", "1"], env=bot.env, capture_output=True,
                           text=True, timeout=60)  # fmt: skip
    assert "interrupted" in shown.stdout and "recovered" in shown.stdout


def test_cancel_stops_a_task_in_the_middle_of_a_phase(world, bot, github):
    repository(world)
    world.fake.reply(text("add() must return the sum."), when=_agent)
    world.fake.hang(when=_agent)  # explore never answers
    bot.start()
    bot.says("/task Fix add() in calc.py")
    tg = bot.tg
    tg.wait_message(OWNER, "Task 1: explore…", timeout=120)
    bot.says("/cancel")
    tg.wait_message(OWNER, "Task 1 cancelled")
    world.fake.release()
    bot.says("/tasks")
    assert "#1 cancelled at explore" in tg.wait_message(OWNER, "#1 cancelled")["text"]
    assert github.pulls == []


# --- the escalation's buttons ----------------------------------------------------------------


def implement(world: World, old: str, new: str, said: str) -> None:
    """An implement turn that edits calc.py, then a test turn that runs the test command."""
    edit = {"file_path": str(world.proj / "calc.py"), "old_string": old, "new_string": new}
    world.fake.reply(tool("Edit", edit), when=_agent)
    world.fake.reply(text("Changed calc.py."), when=_agent)
    world.fake.reply(tool("Bash", {"command": COMMAND, "description": "tests"}), when=_agent)
    world.fake.reply(text(said), when=_agent)


def paused_by_failing_tests(world: World, bot: Bot) -> dict:
    """A task whose implement gets add() wrong, with no retries allowed: it pauses at test.
    Returns the escalation message, with its buttons."""
    read_only_phases(world)
    implement(world, BUGGY, STILL_BUGGY, "FAILED")
    bot.start(LEASHD_TASK_MAX_RETRIES="0")
    bot.says("/task Fix add() in calc.py")
    paused = bot.tg.wait_message(OWNER, "Task 1 paused at test", buttons=True, timeout=120)
    said = paused["text"]
    # what happened, and what is needed: the answers, named for a chat without buttons too
    assert "the tests still fail after 0 retries" in said and "Exit code 1" in said
    assert said.endswith(
        "To answer: /task retry 1 to run the phase again, /task more 1 to "
        "allow 1 more retry, or /task cancel 1 to cancel the task."
    ), said
    labels = [b["text"] for row in paused["reply_markup"] for b in row]
    assert labels == ["Run the phase again", "Allow 1 more retry", "Cancel the task"]
    return paused


def test_more_retries_from_the_escalation_sends_the_task_back_to_implement(world, bot, github):
    bare = repository(world)
    paused = paused_by_failing_tests(world, bot)
    implement(world, STILL_BUGGY, FIXED, "PASSED")  # this time the agent gets it right
    tg = bot.tg
    q = tg.press(OWNER, OWNER, paused["message_id"], bot.button(paused, "Allow 1 more retry"))
    assert tg.wait_answer(q)["text"] == "/task more 1"
    tg.wait_message(OWNER, "Task 1: going on (more).")
    done = tg.wait_message(OWNER, "Task 1 done", timeout=120)
    assert done["text"].endswith("https://github.com/acme/calc/pull/1")
    # straight back to implement, told what failed (the unchanged code is not tested again)
    prompts = world.fake.user_texts()
    asked = [said.split(maxsplit=1)[0] for said in prompts]
    assert asked[-4:] == ["Implement", "Run", "Implement", "Run"], asked
    assert prompts[-2].endswith("The tests failed (`python3 check.py`):\nExit code 1")
    assert world.fake.unexpected == 0
    (pr,) = github.pulls
    assert pr.head == "leashd/1-fix-add-in-calc-py"
    assert "passed after 1 retry" in pr.body
    assert git(bare, "show", f"{pr.head}:calc.py") == FIXED.strip()
    bot.says("/tasks")
    assert "PR: https://github.com/acme/calc/pull/1" in tg.wait_message(OWNER, "#1 done")["text"]


def test_cancel_from_the_escalation_ends_the_task_and_pushes_nothing(world, bot, github):
    bare = repository(world)
    paused = paused_by_failing_tests(world, bot)
    tg = bot.tg
    q = tg.press(OWNER, OWNER, paused["message_id"], bot.button(paused, "Cancel the task"))
    assert tg.wait_answer(q)["text"] == "/task cancel 1"
    tg.wait_message(OWNER, "Task 1 cancelled.")
    bot.says("/tasks")
    assert "#1 cancelled at test" in tg.wait_message(OWNER, "#1 cancelled")["text"]
    # a button left on the escalation does nothing now
    seen = len(tg.messages(OWNER))
    q = tg.press(OWNER, OWNER, paused["message_id"], bot.button(paused, "Allow 1 more retry"))
    tg.wait_answer(q)
    tg.wait_message(OWNER, "Task 1 is cancelled, not waiting for an answer.", after=seen)
    assert github.pulls == [] and github.posts() == []
    assert git(bare, "for-each-ref", "--format=%(refname)", "refs/heads") == "refs/heads/main"
    assert git(world.proj, "branch", "--show-current") == "main"
    # the agent's work is left in the checkout, uncommitted, for the user to look at
    assert (world.proj / "calc.py").read_text() == STILL_BUGGY
    assert world.fake.unexpected == 0


# --- headless: `leashd task` and `leashd tasks` -----------------------------------------------


def test_leashd_task_runs_headless_to_its_pull_request_and_leashd_tasks_lists_it(world, github):
    repository(world)
    for said in ("add() must return the sum; check.py proves it.", "calc.py holds add().",
                 "add() must return the sum; check.py proves it.",
                 "1. Make add() return a + b."):  # fmt: skip
        world.fake.reply(text(said), when=_agent)
    world.fake.reply(text('{"decision": "approve", "feedback": "minimal"}'), when=_reviewing)
    implement_and_test(world)
    env = {**world.env, "LEASHD_AUTO_PLAN_REVIEWER": "true", "LEASHD_GITHUB_API_URL": github.url,
           "LEASHD_GITHUB_TOKEN": github.token}  # fmt: skip
    done = subprocess.run([*LEASHD, "task", "Fix add() in calc.py", "--dir", str(world.proj)],
                          env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("Task 1 in ") and "Task 1: implement…" in lines
    assert lines[-1].endswith("/pull/1") and len(github.pulls) == 1
    listed = subprocess.run([*LEASHD, "tasks"], env=env, capture_output=True, text=True,
                            timeout=60)  # fmt: skip
    assert listed.returncode == 0 and "#1 done" in listed.stdout and "/pull/1" in listed.stdout


def test_leashd_task_exits_1_when_the_task_needs_someone(world, github):
    repository(world)
    world.fake.reply(text("AMBIGUOUS: add() or sub()?"), when=_agent)
    env = {**world.env, "LEASHD_GITHUB_API_URL": github.url}
    out = subprocess.run([*LEASHD, "task", "Fix the function", "--dir", str(world.proj)],
                         env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert out.returncode == 1
    assert "Task 1 paused at spec: the task needs you: add() or sub()?" in out.stderr
    assert github.pulls == []
