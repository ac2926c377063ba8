"""The autonomous loop: after an `/edit` turn, test, feed the failures back, retry with backoff,
and (optionally) open a pull request — each round said in the chat.

    /edit TEXT -> the agent's turn -> test -> pass: done (PR) / fail: fix turn -> test -> …

On with LEASHD_AUTONOMOUS_LOOP=true; LEASHD_AUTONOMOUS_MAX_RETRIES (3) bounds the fix turns,
LEASHD_TASK_RETRY_BACKOFF_SECONDS the wait before the first (it doubles), and
LEASHD_AUTONOMOUS_PR=true opens the pull request when the tests pass (tasks/publish.py). The
test run is judged as a task's is: a Bash call of exactly the project's test command that
exited 0 (tasks/testcmd.py names the command).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from leashd.agent.events import AgentEvent, TurnResult
from leashd.plural import plural
from leashd.tasks.orchestrator import Seen
from leashd.tasks.phases import BY_NAME
from leashd.tasks.testcmd import TestConfigError, test_command

FIX_PROMPT = (
    "The project's tests failed after your change (`{command}`):\n\n{failures}\n\nFix the code "
    "so that they pass. Do not weaken or delete the tests. Do not commit."
)

# (prompt, where the turn's events go) -> the turn's result
Turn = Callable[[str, Callable[[AgentEvent], Awaitable[None]]], Awaitable[TurnResult]]
Say = Callable[[str], Awaitable[None]]
Publish = Callable[[str], Awaitable[str]]  # PR body -> what to tell the user


@dataclass(frozen=True)
class LoopSettings:
    max_retries: int = 3
    backoff: float = 5.0
    pr: bool = False


async def after_edit(
    directory: str, settings: LoopSettings, turn: Turn, say: Say, publish: Publish | None
) -> bool:
    """Test, fix, retry until the tests pass or the retries run out. True when they pass."""
    try:
        found = test_command(Path(directory))
    except TestConfigError as exc:
        await say(f"Autonomous loop: {exc}")
        return False
    if found is None:
        await say(
            "Autonomous loop: no test command is known for this project (name one in "
            ".leashd/test.yaml: `command: pytest -q`); nothing was tested."
        )
        return False
    command = found.command
    test_prompt = BY_NAME["test"].prompt.format(command=command)
    for attempt in range(settings.max_retries + 1):
        seen = Seen()
        result = await turn(test_prompt, seen.take)
        ran = seen.command_result(command)
        if result.ok and ran is not None and not ran.is_error:
            await say(
                f"Autonomous loop: `{command}` passes"
                + (f" after {plural(attempt, 'fix', 'fixes')}." if attempt else ".")
            )
            if settings.pr and publish is not None:
                await say(await publish(f"`{command}` passed after the change."))
            return True
        denied = next((d for d in seen.denied if d.summary.strip() == command), None)
        if denied is not None:  # not a failing test: fixing code would not help
            await say(
                f"Autonomous loop: the test command `{command}` was not allowed to run "
                f"({denied.reason}); the loop stops."
            )
            return False
        failures = ran.output if ran is not None else "the test command was not run"
        if attempt == settings.max_retries:
            await say(
                f"Autonomous loop: `{command}` still fails after "
                f"{plural(settings.max_retries, 'retry', 'retries')}; over to you:\n"
                f"{failures[-1500:]}"
            )
            return False
        delay = settings.backoff * 2**attempt
        await say(
            f"Autonomous loop: `{command}` failed; fix {attempt + 1} of "
            f"{settings.max_retries} in {delay:g} s"
        )
        await asyncio.sleep(delay)
        await turn(FIX_PROMPT.format(command=command, failures=failures[-4000:]), _ignore)
    return False


async def _ignore(event: AgentEvent) -> None:
    return None
