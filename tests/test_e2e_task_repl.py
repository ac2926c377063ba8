"""`/task` in the terminal REPL: `leashd start -f` in tmux, the real CLI scripted by the fake
Messages API phase by phase, real git with a bare remote, a fake GitHub, real SQLite. The
stories: the user types `/task …`, the task goes through its phases to its pull request while
the REPL shows each step, then `/tasks` lists it with its PR; a task whose tests fail pauses,
says what the user can type (the terminal has no buttons), and `/task more N` typed there
takes it on to its PR."""

from __future__ import annotations

import pytest

from leashd.agent.runner import bundled_cli
from tests import test_e2e_daemon
from tests.fakes.github_api import FakeGitHub
from tests.test_e2e_daemon import start_repl
from tests.test_e2e_task_chat import implement, implement_and_test, read_only_phases, repository
from tests.test_e2e_tasks import BUGGY, FIXED, STILL_BUGGY, git

# the harness's fixtures, used here under the same names
world = test_e2e_daemon.world
term = test_e2e_daemon.term

pytestmark = pytest.mark.skipif(
    bundled_cli() is None, reason="the Claude Code CLI bundled with claude-agent-sdk is missing"
)

BRANCH = "leashd/1-fix-add-in-calc-py"


@pytest.fixture
def github():
    with FakeGitHub() as fake:
        fake.add_repo("acme/calc")
        yield fake


def prompts(screen: str) -> list[str]:
    """The prompt lines on the screen: the lines typed at it, and the empty one."""
    return [line.rstrip() for line in screen.splitlines() if line.startswith("›")]


def start(world, term, github, **env: str) -> None:
    start_repl(world, term, LEASHD_TASK_ORCHESTRATOR="true", LEASHD_AUTO_PLAN_REVIEWER="true",
               LEASHD_GITHUB_API_URL=github.url, LEASHD_GITHUB_TOKEN=github.token,
               LEASHD_TASK_RETRY_BACKOFF_SECONDS="0", **env)  # fmt: skip


def test_repl_task_runs_to_its_pull_request_and_tasks_lists_it(world, term, github):
    bare = repository(world)
    read_only_phases(world)
    implement_and_test(world)
    start(world, term, github)

    term.type("/task Fix add() in calc.py")
    term.wait_for(f"Task 1 started in {world.proj}: Fix add() in calc.py")
    term.wait_for("Task 1 done", timeout=120)
    screen = term.wait_idle()

    # each progress line was printed above the prompt, drawn again under it: the one empty
    # prompt is the last line, none is left between the lines of the task
    assert prompts(screen) == ["› /task Fix add() in calc.py", "›"]

    # what the user saw: each phase as it began and ended, the review, the PR's address
    lines = [line.strip() for line in screen.splitlines()]
    for phase in ("spec", "explore", "validate", "plan", "implement", "test"):
        assert f"Task 1: {phase}…" in lines, phase
        assert any(line.startswith(f"Task 1: {phase} done in ") for line in lines), phase
    assert "Task 1: plan approved by the AI reviewer: minimal and tested" in screen
    done = next(line for line in lines if "Task 1 done" in line)
    assert done.endswith("https://github.com/acme/calc/pull/1"), done
    order = [screen.index(f"Task 1: {p}…") for p in ("spec", "plan", "implement", "test")]
    assert order == sorted(order) and order[-1] < screen.index("Task 1 done")

    # the effects: one PR from the task's branch, the fix committed on the remote
    (pr,) = github.pulls
    assert pr.head == BRANCH and pr.base == "main"
    assert "Make add() return a + b" in pr.body
    assert git(bare, "show", f"{BRANCH}:calc.py") == FIXED.strip()
    assert ".env" not in git(bare, "ls-tree", "-r", "--name-only", BRANCH).split()
    assert world.fake.unexpected == 0

    term.type("/tasks")
    listed = term.wait_idle().split("› /tasks", 1)[-1]
    assert "#1 done at pr" in listed and "Fix add() in calc.py" in listed
    assert "spec $" in listed and "implement $" in listed and "test $" in listed
    assert "PR: https://github.com/acme/calc/pull/1" in listed


def test_repl_paused_task_says_what_to_type_and_more_retries_take_it_to_its_pr(world, term,
                                                                               github):  # fmt: skip
    bare = repository(world)
    read_only_phases(world)
    implement(world, BUGGY, STILL_BUGGY, "FAILED")
    implement(world, STILL_BUGGY, FIXED, "PASSED")  # the retry gets it right
    start(world, term, github, LEASHD_TASK_MAX_RETRIES="0")

    term.type("/task Fix add() in calc.py")
    screen = term.wait_for("To answer:", timeout=120)
    term.wait_idle()
    # what happened, and the answers as commands to type (the buttons of a chat)
    assert "Task 1 paused at test: the tests still fail after 0 retries:\nExit code 1\n" in screen
    assert ("To answer: /task retry 1 to run the phase again, /task more 1 to allow 1 more "
            "retry, or /task cancel 1 to cancel the task.") in screen  # fmt: skip
    term.type("/tasks")
    listed = term.wait_idle().split("› /tasks", 1)[-1]
    assert "#1 paused at test" in listed
    assert "waiting: the tests still fail after 0 retries:" in listed
    assert github.pulls == []

    term.type("/task more 1")
    term.wait_for("Task 1: going on (more).")
    term.wait_for("Task 1 done", timeout=120)
    screen = term.wait_idle()
    assert prompts(screen) == ["› /task Fix add() in calc.py", "› /tasks", "› /task more 1", "›"]
    after = screen.split("› /task more 1", 1)[1]  # what followed the line typed
    assert after.index("Task 1: implement…") < after.index("Task 1: test…")
    assert "paused" not in after
    (pr,) = github.pulls
    assert pr.head == BRANCH and "passed after 1 retry" in pr.body
    assert git(bare, "show", f"{BRANCH}:calc.py") == FIXED.strip()
    assert world.fake.unexpected == 0
