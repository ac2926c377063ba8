"""`/task` and `/tasks` in a chat: the orchestrator's door for Telegram and the REPL.

/task Add a health check endpoint     start a task in the session's directory
/task retry|more|approve|cancel N     answer a paused task (the escalation's buttons)
/task revise N WHAT TO CHANGE         send its plan back with that feedback
/tasks                                the chat's tasks: phase, time, cost per phase, PR
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from leashd.gate.approvals import Notify

if TYPE_CHECKING:
    from leashd.connectors.base import Connector
    from leashd.tasks.orchestrator import Orchestrator
    from leashd.tasks.store import Task

USAGE = (
    "/task DESCRIPTION starts an unattended task here: spec → explore → validate → plan → "
    "implement → test → pull request. /task retry|more|approve|cancel N answers a paused "
    "one; /task revise N WHAT TO CHANGE sends its plan back. /tasks lists them."
)
OFF = "/task is off: set LEASHD_TASK_ORCHESTRATOR=true (docs/tasks.md)."
_ANSWERS = ("retry", "more", "approve", "cancel", "revise")


@dataclass
class ChatReporter:
    """A task's news, said in the chat it came from."""

    connector: Connector
    chat: str
    ask: Notify | None

    async def progress(self, task: Task, text: str) -> None:
        await self.connector.send(self.chat, text)

    async def escalate(self, task: Task, text: str, choices: list[tuple[str, str]]) -> None:
        # the answers as buttons, and named in the text: the terminal has no buttons
        await self.connector.send(self.chat, text + _answers(choices), choices)

    async def finished(self, task: Task, text: str) -> None:
        await self.connector.send(self.chat, text)


async def task_command(
    orch: Orchestrator, reporter: ChatReporter, directory: str, arg: str
) -> str | None:
    """Do what `/task ARG` says; returns the reply (None: the reporter has said it)."""
    words = arg.split()
    if not words:
        return USAGE
    if words[0] in _ANSWERS and len(words) >= 2 and words[1].isdigit():
        task_id = int(words[1])
        task = await orch.store.get(task_id)
        if task is None or task.chat != reporter.chat:
            return f"No task {task_id} in this chat (/tasks lists them)."
        feedback = " ".join(words[2:])
        if words[0] == "revise" and not feedback:
            return f"/task revise {task_id} WHAT TO CHANGE: say what the plan should change."
        if task.status != "paused":
            return f"Task {task_id} is {task.status}, not waiting for an answer."
        done = await orch.resume(task_id, words[0], reporter, feedback)
        if words[0] == "cancel":
            return f"Task {task_id} cancelled."
        return f"Task {task_id}: going on ({words[0]})." if done is not None else None
    active = [t for t in await orch.store.of_chat(reporter.chat) if t.active]
    if active:
        t = active[0]
        return (f"Task {t.id} is still {t.status} at {t.phase}: one task per chat at a time "
                f"(/task cancel {t.id} ends it).")  # fmt: skip
    task = await orch.create(reporter.chat, directory, arg.strip())
    orch.start(task, reporter)
    return f"Task {task.id} started in {directory}: {task.description}"


async def cancel_task(orch: Orchestrator, chat: str) -> Task | None:
    """Cancel the chat's active task (`/cancel`), if it has one."""
    for t in await orch.store.of_chat(chat):
        if t.active:
            return await orch.cancel(t.id)
    return None


async def tasks_list(
    orch: Orchestrator, chat: str, breaker: Callable[[Task], str | None] = lambda _: None
) -> str:
    """The chat's tasks; `breaker` says a task's AI approver state, when it has one."""
    tasks = await orch.store.of_chat(chat)
    if not tasks:
        return "No tasks in this chat yet. " + USAGE
    lines = []
    for t in tasks:
        runs = await orch.store.phases(t.id)
        costs: dict[str, float] = {}
        for r in runs:
            costs[r.phase] = costs.get(r.phase, 0.0) + r.cost_usd
        total = sum(costs.values())
        per_phase = ", ".join(f"{p} ${c:.4f}" for p, c in costs.items() if p != "pr")
        lines.append(f"#{t.id} {t.status} at {t.phase}, {_elapsed(t)}, ${total:.4f}: "
                     f"{t.description[:80]}")  # fmt: skip
        if per_phase:
            lines.append(f"   {per_phase}")
        if t.pr_url:
            lines.append(f"   PR: {t.pr_url}")
        if t.status == "paused" and t.escalation:
            lines.append(f"   waiting: {t.escalation.splitlines()[0][:200]}")
        said = breaker(t)
        if said:
            lines.append(f"   {said}")
    return "\n".join(lines)


def _answers(choices: list[tuple[str, str]]) -> str:
    """The (label, command) choices of an escalation in words: `To answer: /task retry 4 to
    run the phase again, …, or /task cancel 4 to cancel the task.`"""
    said = [f"{command} to {label[:1].lower()}{label[1:]}" for label, command in choices]
    if not said:
        return ""
    listed = said[0] if len(said) == 1 else ", ".join(said[:-1]) + ", or " + said[-1]
    return f"\n\nTo answer: {listed}."


def _elapsed(task: Task) -> str:
    seconds = int((time.time() if task.active else task.updated_at) - task.created_at)
    minutes, seconds = divmod(max(seconds, 0), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"
