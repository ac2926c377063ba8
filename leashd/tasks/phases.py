"""The phases of a task, as data: what each asks of the agent, in which mode, and whether it
can be run again after a crash without harm.

spec -> explore -> validate -> plan -> implement -> test -> pr. The first four are read-only
(the session is in plan mode: the gate refuses every change); implement and test run under the
task's policy (the built-in `autonomous` unless the task names another). `pr` is no agent
turn: leashd itself commits, pushes and opens the pull request (tasks/publish.py).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Phase:
    name: str
    mode: str  # the gate's mode for its turn: plan (read-only) or default
    prompt: str  # what the agent is asked; {description}, {spec}, {plan}, {failures}, {command}
    # Whether running it again after a crash is harmless: a read-only phase is; implement is,
    # because the agent sees the files as it left them and goes on; the test run is.
    repeatable: bool = True
    agent: bool = True  # False: leashd does it itself


PHASES: tuple[Phase, ...] = (
    Phase(
        "spec",
        "plan",
        "You are starting an unattended task in this repository. The task, as the user "
        "wrote it:\n\n{description}\n\nWrite a short specification: what will be true when "
        "the task is done, what is out of scope, and how it can be checked. If the task is too "
        "ambiguous to specify without asking the user, answer with a first line exactly "
        "`AMBIGUOUS:` followed by the question to ask. Do not change any file.",
    ),
    Phase(
        "explore",
        "plan",
        "Explore the repository for the specification above: the files, functions and tests "
        "the change touches, and the conventions to follow. Summarise what you found. Do not "
        "change any file.",
    ),
    Phase(
        "validate",
        "plan",
        "Check the specification against what you found: is it feasible here, does anything "
        "contradict it? Adjust the specification if needed and state it in full. If it cannot "
        "be done, answer with a first line exactly `AMBIGUOUS:` and why. Do not change any "
        "file.",
    ),
    Phase(
        "plan",
        "plan",
        "Write the implementation plan: the steps, the files to change, the tests to add. "
        "Do not change any file.",
    ),
    Phase(
        "implement",
        "default",
        "Implement the plan:\n\n{plan}\n\nMake the changes and add the tests. Do not commit "
        "and do not push: leashd does that when the tests pass. If a call you cannot do "
        "without is denied, stop and answer with a first line `BLOCKED:` and what you "
        "need.{failures}",
    ),
    Phase(
        "test",
        "default",
        "Run the project's tests with exactly this command, once, with the Bash tool, from "
        "the project directory, and nothing else:\n\n{command}\n\nThen say PASSED or FAILED.",
    ),
    Phase("pr", "default", "", agent=False),
)
BY_NAME = {p.name: p for p in PHASES}
READ_ONLY = frozenset(p.name for p in PHASES if p.mode == "plan")


def after(name: str) -> Phase | None:
    """The phase that follows `name`, None after the last."""
    names = [p.name for p in PHASES]
    i = names.index(name)
    return PHASES[i + 1] if i + 1 < len(PHASES) else None
