"""The one model call the AI approver and the plan reviewer make: a single turn with no tools,
through the agent SDK (the bundled Claude Code CLI), so it uses the credentials, base URL and
retries the agent's turns use, and can do nothing but answer. The CLI is started as the
agent's is (`leashd.claude`): the same environment, and tethered to this process."""

from __future__ import annotations

import asyncio
import os
import tempfile
from dataclasses import dataclass

from leashd import claude


@dataclass(frozen=True)
class ModelAnswer:
    text: str
    cost_usd: float = 0.0
    error: str | None = None  # the call failed or timed out: there is no answer


async def ask_model(
    system: str, prompt: str, *, model: str | None = None, timeout: float = 60.0
) -> ModelAnswer:
    """One turn: `system` as the system prompt, `prompt` as the user's message, no tools, no
    settings, hooks, MCP servers or project files (CLAUDE.md) of anyone's."""
    from claude_agent_sdk import ClaudeAgentOptions, ResultMessage, query

    with (
        tempfile.TemporaryDirectory(prefix="leashd-approver-") as empty,
        claude.tethered() as cli_path,
    ):
        options = ClaudeAgentOptions(
            cwd=empty,  # nothing of the project's to read, even by accident
            env=claude.agent_env(os.environ),
            cli_path=cli_path,  # None: the SDK's own, untethered
            tools=[],
            max_turns=1,
            setting_sources=[],
            system_prompt=system,
            model=model,
            mcp_servers={},
        )
        text, cost, error = "", 0.0, None
        try:
            async with asyncio.timeout(timeout):
                async for message in query(prompt=prompt, options=options):
                    if isinstance(message, ResultMessage):
                        cost = message.total_cost_usd or 0.0
                        if message.is_error:
                            error = "; ".join(message.errors or []) or message.subtype
                        text = message.result or ""
        except TimeoutError:
            return ModelAnswer("", cost, f"no answer within {timeout:g} s")
        except Exception as exc:  # a CLI that fails to start, a dropped connection, …
            return ModelAnswer("", cost, f"{type(exc).__name__}: {exc}")
    return ModelAnswer(text, cost, error)
