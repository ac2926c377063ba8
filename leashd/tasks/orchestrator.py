"""The task orchestrator: a task's phases as a state machine, each phase an agent turn under the
gate, its state written after every step.

    spec -> explore -> validate -> plan (-> review) -> implement -> test -> pr
                                                          ^            |
                                                          +- failures -+  (up to max_retries)

A task pauses (escalates) and says why when its spec is ambiguous, its plan is not approved,
its retries are exhausted, a phase times out or fails, the agent reports it is blocked by a
denied call, or no test command is known. `resume` answers an escalation (run the phase again,
allow more retries, approve the plan, cancel). `recover` picks up, after a restart, every task
a dead daemon left running: its interrupted phase runs again, and the user is told so.

Thin: the agent (agent/runner.py) runs the turns, the gate decides their calls, the plan
reviewer and the AI approver live in approvers/, the pull request in tasks/publish.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import structlog

from leashd.agent.events import AgentEvent, ToolDenied, ToolDone, ToolStarted, TurnResult
from leashd.approvers.plans import PlanReviewer
from leashd.gate.approvals import Notify
from leashd.gate.gate import Session
from leashd.plural import plural
from leashd.tasks.phases import BY_NAME, Phase, after
from leashd.tasks.publish import pr_body
from leashd.tasks.store import PhaseRun, Task, TaskStore
from leashd.tasks.testcmd import TestConfigError, test_command

log = structlog.get_logger(__name__)

AMBIGUOUS = "AMBIGUOUS:"
BLOCKED = "BLOCKED:"
_OUTPUT_KEPT = 20_000  # characters of a phase's answer stored


class Agent(Protocol):
    async def run(
        self,
        session: Session,
        prompt: str,
        *,
        resume: str | None = ...,
        on_event: Callable[[AgentEvent], Awaitable[None]] | None = ...,
        ask: Notify | None = ...,
        on_conversation: Callable[[str], Awaitable[None]] | None = ...,
        on_lost: Callable[[str], Awaitable[None]] | None = ...,
    ) -> TurnResult: ...


class Reporter(Protocol):
    """Where a task's news goes: the chat it came from, or the terminal of `leashd task`."""

    ask: Notify | None  # a human to approve calls and plans; None: nobody (headless)

    async def progress(self, task: Task, text: str) -> None: ...
    async def escalate(self, task: Task, text: str, choices: list[tuple[str, str]]) -> None: ...
    async def finished(self, task: Task, text: str) -> None: ...


@dataclass(frozen=True)
class TaskSettings:
    max_retries: int = 3
    phase_timeout: float = 1800.0
    backoff: float = 5.0  # seconds before the first retry; doubles each time
    policy: str = "autonomous"


class Orchestrator:
    def __init__(
        self,
        store: TaskStore,
        agent_for: Callable[[str, str], Agent],
        settings: TaskSettings,
        publish: Callable[[Task, str], Awaitable[tuple[str | None, str | None, str]]],
        reviewer: PlanReviewer | None = None,
    ) -> None:
        self.store = store
        self.agent_for = agent_for  # (policy, directory) -> the agent whose gate runs it
        self.settings = settings
        self.publish = publish  # (task, PR body) -> (branch, PR URL, what the user should know)
        self.reviewer = reviewer
        self._running: dict[int, asyncio.Task[Task]] = {}

    @property
    def more_retries(self) -> int:
        """The retries `/task more` adds: the configured number, and at least one (with
        LEASHD_TASK_MAX_RETRIES=0 the button would otherwise allow nothing)."""
        return max(self.settings.max_retries, 1)

    # --- the doors ------------------------------------------------------------------------------

    async def create(self, chat: str, directory: str, description: str) -> Task:
        return await self.store.create(
            chat, directory, description, self.settings.policy, self.settings.max_retries
        )

    def start(self, task: Task, reporter: Reporter) -> asyncio.Task[Task]:
        """Run `task` in the background (one run per task at a time)."""
        running = self._running.get(task.id)
        if running is not None and not running.done():
            return running
        job = asyncio.create_task(self.run(task, reporter), name=f"leashd-task-{task.id}")
        self._running[task.id] = job
        job.add_done_callback(lambda _: self._running.pop(task.id, None))
        return job

    async def stop(self) -> None:
        """The daemon stops: running phases end (their tasks stay `running`, so the next
        start resumes them where they were)."""
        jobs = [j for j in self._running.values() if not j.done()]
        for job in jobs:
            job.cancel()
        if jobs:
            await asyncio.gather(*jobs, return_exceptions=True)

    async def cancel(self, task_id: int) -> Task | None:
        """Cancel a task: its running phase is stopped, it is marked cancelled."""
        job = self._running.get(task_id)
        if job is not None and not job.done():
            job.cancel()
            with _suppress_cancel():
                await job
        task = await self.store.get(task_id)
        if task is None or not task.active:
            return task
        await self.store.event(task_id, "cancelled", "cancelled by the user")
        return await self.store.save(replace(task, status="cancelled", escalation=None))

    async def resume(
        self, task_id: int, how: str, reporter: Reporter, feedback: str = ""
    ) -> Task | None:
        """Answer a paused task: `retry` its phase, `more` retries, `approve` its plan,
        `revise` its plan with `feedback`, or `cancel`."""
        task = await self.store.get(task_id)
        if task is None or task.status != "paused":
            return task
        if how == "cancel":
            return await self.cancel(task_id)
        if how == "more":
            task = replace(task, max_retries=task.max_retries + self.more_retries)
            if task.phase == "test" and task.failures:
                # paused because the tests still failed: that failure is the first of the
                # retries allowed now, sent back to implement (testing the same code again
                # would only fail again)
                task = _retry(task, task.failures)
        elif how == "approve" and task.phase == "plan":
            task = replace(task, phase="implement")
        elif how == "revise" and task.phase == "plan":
            task = replace(task, failures=f"\n\nThe plan was sent back: {feedback}")
        await self.store.event(task_id, "resumed", how + (f": {feedback}" if feedback else ""))
        task = await self.store.save(replace(task, status="running", escalation=None))
        self.start(task, reporter)
        return task

    async def recover(self, reporter_for: Callable[[Task], Reporter]) -> list[Task]:
        """After a restart: every task a dead daemon left running goes on at its phase (said
        to its chat); paused ones stay paused, waiting for their answer."""
        resumed = []
        for task in await self.store.active():
            runs = await self.store.interrupted(task.id)
            if task.status != "running":
                continue
            phase = BY_NAME[task.phase]
            reporter = reporter_for(task)
            if runs and not phase.repeatable:
                why = (
                    f"the daemon stopped during phase {phase.name}, which cannot be run "
                    "again safely: check the project, then retry or cancel"
                )
                await self._pause(task, why, reporter)
                continue
            said = (
                f"The daemon restarted during phase {phase.name}: it runs again."
                if runs
                else f"The daemon restarted: going on at phase {phase.name}."
            )
            await self.store.event(task.id, "recovered", said)
            await reporter.progress(task, f"Task {task.id}: {said}")
            self.start(task, reporter)
            resumed.append(task)
        return resumed

    # --- the machine ----------------------------------------------------------------------------

    async def run(self, task: Task, reporter: Reporter) -> Task:
        """Drive `task` until it is done, paused, failed or cancelled."""
        try:
            while task.status == "running":
                task = await self._step(task, reporter)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must not leave a task looking alive
            log.error("task failed", task=task.id, error=repr(exc))
            task = await self._pause(task, f"leashd failed: {type(exc).__name__}: {exc}", reporter)
        return task

    async def _step(self, task: Task, reporter: Reporter) -> Task:
        phase = BY_NAME[task.phase]
        if phase.name == "test" and not task.test_command:
            command, problem = _test_command(task)
            if command is None:
                return await self._pause(task, problem, reporter)
            task = await self.store.save(replace(task, test_command=command))
        if not phase.agent:
            return await self._pr(task, reporter)
        run = await self.store.start_phase(task, phase.name)
        await reporter.progress(task, f"Task {task.id}: {phase.name}…")
        try:
            async with asyncio.timeout(self.settings.phase_timeout):
                result, seen = await self._turn(task, phase, reporter)
        except TimeoutError:
            await self.store.end_phase(replace(run, status="failed", output="timed out"))
            why = f"phase {phase.name} took longer than {self.settings.phase_timeout:g} s"
            return await self._pause(task, why, reporter)
        task = await self.store.get(task.id) or task  # the conversation id stored meanwhile
        run = replace(
            run,
            cost_usd=await self._phase_cost(task, result),
            duration_ms=result.duration_ms,
            input_tokens=result.input_tokens,
            output_tokens=result.output_tokens,
            output=result.text[-_OUTPUT_KEPT:],
            status="done" if result.ok else "failed",
        )
        await self.store.end_phase(run)
        await reporter.progress(task, _phase_line(task, run))
        if not result.ok:
            why = f"phase {phase.name} failed: {result.error or 'interrupted'}"
            return await self._pause(task, why, reporter)
        tripped = await self._breaker_tripped(task, seen)
        if tripped is not None:
            return await self._pause(task, tripped, reporter)
        return await self._next(task, phase, result, seen, reporter)

    async def _breaker_tripped(self, task: Task, seen: Seen) -> str | None:
        """Why the task pauses when its AI approver's breaker tripped during the phase (said
        once: after that, a human answers its questions and the task goes on)."""
        breaker = seen.breaker
        if not breaker or breaker.get("state") != "tripped":
            return None
        if any(kind == "breaker-tripped" for _, kind, _ in await self.store.events(task.id)):
            return None
        why = f"the AI approver stood down: {breaker.get('why')}"
        await self.store.event(task.id, "breaker-tripped", why)
        return why + "; from here on a human answers this task's questions"

    async def _phase_cost(self, task: Task, result: TurnResult) -> float:
        """This phase's share: the CLI reports its conversation's running total, and a task's
        phases go on one conversation (a new one starts the total again)."""
        runs = await self.store.phases(task.id)
        before = sum(r.cost_usd for r in runs if r.status != "running")
        return result.cost_usd - before if result.cost_usd >= before else result.cost_usd

    async def _next(
        self, task: Task, phase: Phase, result: TurnResult, seen: Seen, reporter: Reporter
    ) -> Task:
        text = result.text.strip()
        first = text.splitlines()[0].strip() if text else ""
        if phase.name in ("spec", "validate") and first.startswith(AMBIGUOUS):
            return await self._pause(
                task, f"the task needs you: {text[len(AMBIGUOUS) :].strip()}", reporter
            )
        if first.startswith(BLOCKED):
            denied = "; ".join(f"{d.summary} ({d.reason})" for d in seen.denied[-3:])
            why = f"the agent is blocked: {text[len(BLOCKED) :].strip()}"
            return await self._pause(
                task, why + (f" — denied: {denied}" if denied else ""), reporter
            )
        if phase.name in ("spec", "validate"):
            task = replace(task, spec=text)
        if phase.name == "plan":
            task = replace(task, plan=text)
            return await self._reviewed(task, reporter)
        if phase.name == "implement":
            task = replace(task, failures="")
        if phase.name == "test":
            return await self._tested(task, seen, reporter)
        following = after(phase.name)
        assert following is not None
        return await self.store.save(replace(task, phase=following.name))

    async def _reviewed(self, task: Task, reporter: Reporter) -> Task:
        """The plan, reviewed by the AI reviewer (up to its rounds) or by the human."""
        task = await self.store.save(task)
        if self.reviewer is None:
            return await self._pause(
                task, "the plan waits for your approval:\n\n" + task.plan, reporter, plan=True
            )
        rounds = sum(1 for r in await self.store.phases(task.id) if r.phase == "plan")
        review = await self.reviewer.review(task.description, task.spec, task.plan)
        await self.store.event(task.id, f"plan-{review.outcome}", review.feedback)
        if review.approved:
            await reporter.progress(
                task, f"Task {task.id}: plan approved by the AI reviewer: {review.feedback}"
            )
            return await self.store.save(replace(task, phase="implement"))
        if review.outcome == "error" or rounds >= self.reviewer.max_rounds:
            why = (
                f"the AI reviewer sent the plan back {rounds} times"
                if review.outcome != "error"
                else f"the AI plan reviewer failed: {review.feedback}"
            )
            return await self._pause(
                task, f"{why}; the plan waits for you:\n\n{task.plan}", reporter, plan=True
            )
        await reporter.progress(
            task, f"Task {task.id}: plan sent back by the AI reviewer: {review.feedback}"
        )
        return await self.store.save(
            replace(task, failures=f"\n\nThe plan was sent back: {review.feedback}")
        )

    async def _tested(self, task: Task, seen: Seen, reporter: Reporter) -> Task:
        ran = seen.command_result(task.test_command)
        if ran is not None and not ran.is_error:
            await self.store.event(task.id, "tests-passed", task.test_command)
            return await self.store.save(replace(task, phase="pr", failures=""))
        denied = next((d for d in seen.denied if d.summary.strip() == task.test_command), None)
        if denied is not None:  # no fix to the code would help: the policy must allow it
            why = f"the test command `{task.test_command}` was not allowed to run: {denied.reason}"
            return await self._pause(task, why, reporter)
        failures = ran.output if ran is not None else "the test command was not run"
        if task.retries >= task.max_retries:
            why = (
                f"the tests still fail after {plural(task.retries, 'retry', 'retries')}:\n"
                f"{failures[-1500:]}"
            )
            task = await self.store.save(replace(task, failures=failures))
            return await self._pause(task, why, reporter, retryable=True)
        task = _retry(task, failures)
        await self.store.event(task.id, "tests-failed", failures[-2000:])
        delay = self.settings.backoff * 2 ** (task.retries - 1)
        await reporter.progress(
            task,
            f"Task {task.id}: tests failed; retry {task.retries} of "
            f"{task.max_retries} in {delay:g} s",
        )
        await asyncio.sleep(delay)
        return await self.store.save(task)

    async def _pr(self, task: Task, reporter: Reporter) -> Task:
        run = await self.store.start_phase(task, "pr")
        costs = await self.store.phases(task.id)
        body = _pr_body(task, costs)
        branch, url, note = await self.publish(task, body)
        await self.store.end_phase(replace(run, status="done", output=note))
        task = replace(task, branch=branch, pr_url=url, status="done")
        await self.store.event(task.id, "done", url or note)
        task = await self.store.save(task)
        total = sum(r.cost_usd for r in costs)
        said = f"Task {task.id} done (${total:.4f}): " + (url or note)
        await reporter.finished(task, said)
        return task

    async def _pause(
        self,
        task: Task,
        why: str,
        reporter: Reporter,
        *,
        plan: bool = False,
        retryable: bool = False,
    ) -> Task:
        task = await self.store.save(replace(task, status="paused", escalation=why))
        await self.store.event(task.id, "escalated", why)
        # (label, the message a button sends): the chat's own `/task` answers
        n = task.id
        choices = [("Run the phase again", f"/task retry {n}")]
        if plan:
            choices = [("Approve the plan", f"/task approve {n}")]
            why += f"\n\nTo send it back: /task revise {n} WHAT TO CHANGE"
        if retryable:
            label = f"Allow {plural(self.more_retries, 'more retry', 'more retries')}"
            choices.append((label, f"/task more {n}"))
        choices.append(("Cancel the task", f"/task cancel {n}"))
        await reporter.escalate(task, f"Task {task.id} paused at {task.phase}: {why}", choices)
        return task

    # --- a turn ---------------------------------------------------------------------------------

    async def _turn(self, task: Task, phase: Phase, reporter: Reporter) -> tuple[TurnResult, Seen]:
        agent = self.agent_for(task.policy, task.directory)
        session = Session(
            f"task-{task.id}",
            task.chat,
            task.directory,
            phase.mode,
            task_id=f"task:{task.id}",
            task=f"task {task.id} ({phase.name}): {task.description}",
        )
        prompt = phase.prompt.format(
            description=task.description,
            spec=task.spec,
            plan=task.plan,
            failures=task.failures,
            command=task.test_command,
        )
        if phase.name == "plan" and task.failures:
            prompt += task.failures  # the reviewer's feedback on the last plan
        seen = Seen()

        async def on_conversation(conversation: str) -> None:
            current = await self.store.get(task.id)
            if current is not None:
                await self.store.save(replace(current, agent_session_id=conversation))

        result = await agent.run(
            session,
            prompt,
            resume=task.agent_session_id,
            on_event=seen.take,
            ask=reporter.ask,
            on_conversation=on_conversation,
        )
        seen.breaker = getattr(agent, "gate", None) and agent.gate.breaker_state(session)
        return result, seen


class Seen:
    """What a turn did that the orchestrator judges it by."""

    def __init__(self) -> None:
        self.started: dict[str, ToolStarted] = {}
        self.done: dict[str, ToolDone] = {}
        self.denied: list[ToolDenied] = []
        self.breaker: dict[str, Any] | None = None  # the AI approver's, after the turn

    async def take(self, event: AgentEvent) -> None:
        if isinstance(event, ToolStarted):
            self.started[event.tool_use_id] = event
        elif isinstance(event, ToolDone):
            self.done[event.tool_use_id] = event
        elif isinstance(event, ToolDenied):
            self.denied.append(event)

    def command_result(self, command: str) -> ToolDone | None:
        """The last run of exactly `command` with Bash, if it ran."""
        for tool_use_id, started in reversed(self.started.items()):
            if started.tool == "Bash" and started.summary.strip() == command.strip():
                return self.done.get(tool_use_id)
        return None


def _test_command(task: Task) -> tuple[str | None, str]:
    """(the command, "") or (None, why there is none)."""
    try:
        found = test_command(Path(task.directory))
    except TestConfigError as exc:
        return None, str(exc)
    if found is None:
        why = "no test command is known for this project: name one in .leashd/test.yaml"
        return None, why + " (`command: pytest -q`)"
    return found.command, ""


def _retry(task: Task, failures: str) -> Task:
    """The task sent back to implement with what failed: one retry more used."""
    return replace(
        task,
        retries=task.retries + 1,
        phase="implement",
        failures=f"\n\nThe tests failed (`{task.test_command}`):\n{failures}",
    )


def _phase_line(task: Task, run: PhaseRun) -> str:
    took = run.duration_ms / 1000
    return f"Task {task.id}: {run.phase} {run.status} in {took:.1f} s, ${run.cost_usd:.4f}"


def _pr_body(task: Task, runs: list[PhaseRun]) -> str:
    rows = "\n".join(
        f"| {r.phase} | {r.attempt} | {r.status} | ${r.cost_usd:.4f} "
        f"| {r.duration_ms / 1000:.1f} s |"
        for r in runs
        if r.phase != "pr"
    )
    retried = f" after {plural(task.retries, 'retry', 'retries')}" if task.retries else ""
    return pr_body(
        task_id=task.id,
        spec=task.spec,
        plan=task.plan,
        tests=f"`{task.test_command}` passed{retried}.",
        cost_usd=sum(r.cost_usd for r in runs),
        cost_table=f"| phase | attempt | status | cost | time |\n|---|---|---|---|---|\n{rows}",
    )


class _suppress_cancel:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> bool:
        return kind is not None and issubclass(kind, asyncio.CancelledError)
