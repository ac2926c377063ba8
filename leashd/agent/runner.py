"""Claude Code through claude-agent-sdk: one turn of one session, under the gate.

Each turn starts the CLI (the wheel's own build) in the session's directory, resuming the
agent's conversation by its id, so a session outlives the daemon. The CLI is told to keep
every Bash call in the project directory (the gate decides each command as run from there),
to read no settings files (a repository's `.claude/settings.json` could carry hooks that run
outside the gate), and to send every tool call through `GateBridge`. The CLI itself does not
outlive the daemon: it starts through a tether (`leashd.claude.Tether`), and a daemon killed
mid-turn takes it, and all it started, along.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import structlog

from leashd import claude
from leashd.agent import sandbox as os_sandbox
from leashd.agent.events import (
    OUTPUT_KEPT,
    AgentEvent,
    ModeChanged,
    Notice,
    SandboxBlocked,
    Text,
    TextDelta,
    ToolDenied,
    ToolDone,
    ToolStarted,
    TurnResult,
    tool_summary,
)
from leashd.agent.permissions import HOOK_TIMEOUT, GateBridge, result_text
from leashd.agent.sandbox_report import Reader
from leashd.gate.approvals import Notify
from leashd.gate.gate import Gate, Session, Verdict
from leashd.gate.modes import PLAN_TOOL

log = structlog.get_logger(__name__)

OnEvent = Callable[[AgentEvent], Awaitable[None]]
OnConversation = Callable[[str], Awaitable[None]]

# What the CLI says (in its result's `errors`, and on stderr) when `--resume` names a
# conversation whose transcript is not in ~/.claude/projects: it exits 1 before any request.
_NOT_FOUND = "No conversation found with session ID"

# The CLI's own permission modes for ours: the gate decides every call in all of them; `plan`
# also tells the model to propose before it acts.
_CLI_MODE = {"default": "default", "plan": "plan", "auto": "default"}


def _cli_mode(session: Session) -> str:
    """The CLI's permission mode for a session. A task's read-only phases are read-only at
    the gate; the CLI's own plan mode would have the model present its plan for a tap nobody
    is there to give."""
    return "default" if session.task_id else _CLI_MODE.get(session.mode, "default")


_STOP_GRACE = 10.0  # seconds an interrupted CLI gets to wind down before it is stopped


@dataclass
class AgentConfig:
    max_turns: int | None = None
    system_prompt: str | None = None
    allowed_tools: list[str] = field(default_factory=list)  # empty: the CLI's whole set
    disallowed_tools: list[str] = field(default_factory=list)
    mcp_servers: dict[str, Any] = field(default_factory=dict)
    timeout: float = 3600.0
    streaming: bool = True
    env: dict[str, str] = field(default_factory=dict)
    # Tries of a model request after a transient API failure: the CLI's CLAUDE_CODE_MAX_RETRIES
    # (None: whatever the CLI has, its variable or its default of 10). See `_retry_notice`.
    retries: int | None = None
    # the OS sandbox under every Bash call: on unless configured off (LEASHD_SANDBOX=off)
    sandbox: os_sandbox.SandboxConfig = field(default_factory=os_sandbox.SandboxConfig)


@dataclass
class _Turn:
    client: Any
    bridge: GateBridge
    session: Session
    reader: Reader | None = None  # what the sandbox refused, read from Bash output
    bash: dict[str, Any] = field(default_factory=dict)  # tool_use_id -> a Bash call's input
    interrupted: bool = False
    deadline: asyncio.Timeout | None = None
    resume: str | None = None  # the conversation asked for
    conversation: str | None = None  # the one the CLI announced
    on_conversation: OnConversation | None = None


class ClaudeAgent:
    def __init__(self, gate: Gate, config: AgentConfig) -> None:
        self.gate = gate
        self.config = config
        self._turns: dict[str, _Turn] = {}

    def running(self, session_id: str) -> bool:
        return session_id in self._turns

    async def run(
        self,
        session: Session,
        prompt: str,
        *,
        resume: str | None,
        on_event: OnEvent,
        ask: Notify | None,
        on_conversation: OnConversation | None = None,
        on_lost: OnConversation | None = None,
    ) -> TurnResult:
        """Run one turn to its end. Never raises for the agent's failures: they come back as
        `TurnResult.error`. Cancelling it interrupts the agent.

        `on_conversation(id)` is awaited as soon as the CLI announces a conversation other
        than `resume`, so the caller can store it before the turn ends (or fails, or the
        daemon dies): the next turn then continues it. When the CLI no longer has the
        conversation `resume` names, `on_lost(resume)` is awaited and the prompt runs in a
        new conversation; without `on_lost` that is an error instead, never a silent start
        over.

        Transient API failures (overloaded, 5xx, a lost connection) are retried by the CLI
        itself, request by request with exponential backoff, up to `AgentConfig.retries`
        times: a retry re-sends the one model request that failed, never the prompt, so no
        tool runs twice and the conversation goes on. Each retry is told as a `Notice`."""
        log.info("agent_execute_started", session=session.id, mode=session.mode,
                 resumed=resume is not None)  # fmt: skip
        started = time.monotonic()
        result: TurnResult | None = None
        try:
            result, lost = await self._attempt(
                session, prompt, resume, on_event, ask, on_conversation
            )
            if not lost or on_lost is None:
                return result
            assert resume is not None
            log.warning("the agent's conversation is gone", session=session.id,
                        conversation=resume)  # fmt: skip
            await on_lost(resume)
            result, _ = await self._attempt(session, prompt, None, on_event, ask, on_conversation)
            return result
        finally:
            log.info(
                "agent_execute_completed",
                session=session.id,
                duration_ms=int((time.monotonic() - started) * 1000),
                # the CLI's running total for the conversation (the engine's
                # request_completed has this turn's share)
                conversation_cost_usd=result.cost_usd if result is not None else 0.0,
                turns=result.num_turns if result is not None else 0,
                error=result.error if result is not None else "cancelled",
                interrupted=result.interrupted if result is not None else True,
            )

    async def _attempt(
        self,
        session: Session,
        prompt: str,
        resume: str | None,
        on_event: OnEvent,
        ask: Notify | None,
        on_conversation: OnConversation | None,
    ) -> tuple[TurnResult, bool]:
        """One run of the CLI, and whether it refused to start because the conversation
        `resume` names is gone."""
        from claude_agent_sdk import ClaudeSDKClient

        state = {"session": session}
        tools: list[str] = []

        async def on_verdict(tool: str, tool_input: Any, verdict: Verdict) -> None:
            if tool == PLAN_TOOL and verdict.allowed and state["session"].mode == "plan":
                # the same session in default mode: its own directories (a workspace's) stay
                state["session"] = replace(session, mode="default")
                await self._left_plan(session.id, on_event)
            elif not verdict.allowed:
                summary = tool_summary(tool, tool_input)
                await _tell(on_event, ToolDenied(tool, summary, verdict.reason, verdict.layer))

        bridge = GateBridge(self.gate, lambda: state["session"], ask, on_verdict)
        try:
            plan = await self._sandbox(session)
            kept = os_sandbox.TurnFiles(plan, session.cwd, os.environ) if plan else None
        except Exception as exc:  # never a turn without the sandbox it should have
            log.error("could not set up the sandbox", session=session.id, error=repr(exc))
            return TurnResult("", resume, error=f"the OS sandbox could not be set up: "
                              f"{_describe(exc)}"), False  # fmt: skip
        for note in plan.notes if plan is not None else ():
            await _tell(on_event, Notice(note))
        tether: claude.Tether | None = None
        try:
            tether = claude.tether()
            options = self._options(session, resume, bridge, kept, tether)
            client = ClaudeSDKClient(options)
        except BaseException:
            if kept is not None:
                kept.remove()
            if tether is not None:
                tether.remove()
            raise
        turn = _Turn(client, bridge, session, resume=resume, on_conversation=on_conversation)
        if plan is not None:
            hidden = plan.settings["filesystem"]["denyRead"]
            turn.reader = Reader(hidden, session.cwd, self.gate.home or os.path.expanduser("~"))
        self._turns[session.id] = turn
        try:
            try:
                async with asyncio.timeout(self.config.timeout) as turn.deadline:
                    await client.connect()
                    await client.query(prompt)
                    result = await self._receive(turn, on_event, tools)
            except TimeoutError:
                await self._stop(turn)
                # the conversation the CLI announced holds this prompt: the next turn goes on
                # with it rather than starting over without a word
                return TurnResult(
                    "", turn.conversation or resume,
                    error=f"the agent timed out after {self.config.timeout:g} s",
                    tools=tuple(tools),
                ), False  # fmt: skip
            except asyncio.CancelledError:
                await self._stop(turn)
                raise
            except Exception as exc:
                if resume is not None and turn.conversation is None and _conversation_gone(exc):
                    return TurnResult("", resume, error=_describe(exc)), True
                log.error("agent failed", session=session.id, error=repr(exc))
                await self._stop(turn)
                result = TurnResult(
                    "", turn.conversation or resume, error=_describe(exc), tools=tuple(tools)
                )
                return result, False
            if turn.interrupted:
                result = replace(result, interrupted=True, error=None)
            lost = (
                resume is not None
                and turn.conversation is None
                and result.num_turns == 0
                and _NOT_FOUND in (result.error or "")
            )
            return replace(result, tools=tuple(tools)), lost
        finally:
            self._turns.pop(session.id, None)
            bridge.cancel_all()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(_STOP_GRACE):
                    await client.disconnect()
            if kept is not None:
                kept.remove()
            if tether is not None:
                tether.remove()

    async def interrupt(self, session_id: str) -> bool:
        """Stop the running turn: the agent is interrupted and approvals it waits for end
        denied. Returns whether a turn was running."""
        turn = self._turns.get(session_id)
        if turn is None:
            return False
        turn.interrupted = True
        turn.bridge.cancel_all()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(_STOP_GRACE):
                await turn.client.interrupt()
        return True

    # --- inside ---------------------------------------------------------------------------

    async def _left_plan(self, session_id: str, on_event: OnEvent) -> None:
        turn = self._turns.get(session_id)
        if turn is not None:
            with contextlib.suppress(Exception):
                await turn.client.set_permission_mode("default")
        with contextlib.suppress(Exception):
            await on_event(ModeChanged("default"))

    async def _announced(self, turn: _Turn, conversation: str | None) -> None:
        if not conversation or conversation == turn.conversation:
            return
        turn.conversation = conversation
        if conversation != turn.resume and turn.on_conversation is not None:
            await turn.on_conversation(conversation)

    async def _stop(self, turn: _Turn) -> None:
        turn.bridge.cancel_all()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(_STOP_GRACE):
                await turn.client.interrupt()

    async def _sandbox(self, session: Session) -> os_sandbox.Plan | None:
        """The OS sandbox of this turn (None: configured off). The walk for credentials in
        the approved directories runs on a thread: it reads the disk."""
        cfg = self.config.sandbox
        if not cfg.enforced:
            return None
        gate = self.gate
        home = gate.home or os.path.expanduser("~")
        probe = replace(session, mode="default")

        def is_secret(path: str) -> bool:
            return gate.decide(probe, "Read", {"file_path": path}).action == "deny"

        globs = os_sandbox.secret_globs(gate.compiled.rules)
        # the session's own directories (its workspace's) are writable in its turns alone
        dirs = gate.approved_dirs_for(session) or (session.cwd,)
        plan = await asyncio.to_thread(os_sandbox.plan, cfg, dirs, home, is_secret, globs)
        log.debug("sandbox", session=session.id, hidden=len(plan.secrets),
                  scanned=plan.scanned, seconds=round(plan.seconds, 3))  # fmt: skip
        return plan

    def _options(
        self, session: Session, resume: str | None, bridge: GateBridge,
        sandbox: os_sandbox.TurnFiles | None = None, tether: claude.Tether | None = None,
    ) -> Any:  # fmt: skip
        from claude_agent_sdk import ClaudeAgentOptions, HookMatcher

        cfg = self.config
        retries = {} if cfg.retries is None else {"CLAUDE_CODE_MAX_RETRIES": str(cfg.retries)}
        env = {
            # leashd's own settings and secrets never reach the agent
            **claude.agent_env(os.environ),
            **(sandbox.env if sandbox is not None else {}),
            **retries,
            **cfg.env,
            # every Bash call starts in the project directory: the gate decides it from there
            "CLAUDE_BASH_MAINTAIN_PROJECT_WORKING_DIR": "1",
        }
        kwargs: dict[str, Any] = {}
        if tether is not None:
            # the CLI through its tether, with the argv, environment and directory it gets
            # without; no tether (logged): the SDK starts the CLI itself
            kwargs["cli_path"] = tether.path
        if sandbox is not None:
            # a file, not the SDK's `sandbox=`: that goes on the command line as one argument,
            # and Linux refuses an argument past 128 KiB (about 1,700 hidden paths)
            kwargs["settings"] = sandbox.settings_path
        if cfg.allowed_tools:
            # `tools` sets which tools exist; `allowed_tools` would let the CLI run them
            # without asking anyone, which is never what a list here means.
            kwargs["tools"] = list(cfg.allowed_tools)
        kwargs["system_prompt"] = system_prompt(cfg.system_prompt, session.context)
        return ClaudeAgentOptions(
            cwd=session.cwd,
            env=env,
            resume=resume,
            permission_mode=_cli_mode(session),
            max_turns=cfg.max_turns,
            disallowed_tools=list(cfg.disallowed_tools),
            mcp_servers=dict(cfg.mcp_servers),
            setting_sources=[],
            include_partial_messages=cfg.streaming,
            hooks={
                "PreToolUse": [
                    HookMatcher(
                        matcher=None,
                        hooks=[bridge.pre_tool_use],
                        timeout=HOOK_TIMEOUT,
                        on_failure="block",
                    )
                ]
            },
            can_use_tool=bridge.can_use_tool,
            stderr=_stderr_logger(session.id),
            **kwargs,
        )

    async def _receive(self, turn: _Turn, on_event: OnEvent, tools: list[str]) -> TurnResult:
        from claude_agent_sdk import (
            AssistantMessage,
            ResultMessage,
            StreamEvent,
            SystemMessage,
            TextBlock,
            ToolResultBlock,
            ToolUseBlock,
            UserMessage,
        )

        agent_session: str | None = None
        texts: list[str] = []
        async for msg in turn.client.receive_response():
            if isinstance(msg, StreamEvent):
                if msg.parent_tool_use_id is None:
                    delta = _text_delta(msg.event)
                    if delta:
                        await _tell(on_event, TextDelta(delta))
            elif isinstance(msg, SystemMessage):
                if msg.subtype == "init":
                    agent_session = msg.data.get("session_id") or agent_session
                    await self._announced(turn, agent_session)
                elif msg.subtype == "api_retry":
                    log.info("agent_api_retry", session=turn.session.id,
                             attempt=msg.data.get("attempt"), status=msg.data.get("error_status"),
                             delay_ms=msg.data.get("retry_delay_ms"))  # fmt: skip
                    await _tell(on_event, Notice(_retry_notice(msg.data)))
            elif isinstance(msg, AssistantMessage):
                if msg.parent_tool_use_id is not None:
                    # a sub-agent's own talk: its tool calls are gated all the same, and what
                    # the sandbox blocks in its Bash calls is reported like the agent's own
                    self._remember_bash(turn, msg.content, ToolUseBlock)
                    continue
                for block in msg.content:
                    if isinstance(block, TextBlock):
                        texts.append(block.text)
                        await _tell(on_event, Text(block.text))
                    elif isinstance(block, ToolUseBlock):
                        self._remember_bash(turn, [block], ToolUseBlock)
                        tools.append(block.name)
                        summary = tool_summary(block.name, block.input)
                        await _tell(on_event, ToolStarted(block.id, block.name, summary))
            elif isinstance(msg, UserMessage):
                if isinstance(msg.content, list):
                    for block in msg.content:
                        if isinstance(block, ToolResultBlock):
                            # the audit log learns of an allowed call the CLI did not run
                            turn.bridge.tool_result(
                                block.tool_use_id, bool(block.is_error), block.content
                            )
                            await self._blocked(turn, block, on_event)
                            output = result_text(block.content, "\n")[-OUTPUT_KEPT:]
                            done = ToolDone(block.tool_use_id, bool(block.is_error), output)
                            await _tell(on_event, done)
            elif isinstance(msg, ResultMessage):
                usage = msg.usage or {}
                error = None
                if msg.is_error:
                    error = "; ".join(msg.errors or []) or (msg.result or msg.subtype)
                return TurnResult(
                    text=msg.result if msg.result is not None else "\n\n".join(texts),
                    agent_session_id=msg.session_id or agent_session,
                    cost_usd=float(msg.total_cost_usd or 0.0),
                    duration_ms=int(msg.duration_ms or 0),
                    input_tokens=_tokens(usage, "input_tokens"),
                    output_tokens=_tokens(usage, "output_tokens"),
                    num_turns=int(msg.num_turns or 0),
                    error=error,
                    interrupted=(msg.terminal_reason or "").startswith("aborted"),
                )
        return TurnResult(
            "\n\n".join(texts), agent_session, error="the agent ended without a result"
        )

    @staticmethod
    def _remember_bash(turn: _Turn, blocks: Any, tool_use: type) -> None:
        if turn.reader is None or not isinstance(blocks, list):
            return
        for block in blocks:
            if isinstance(block, tool_use) and block.name == "Bash":
                turn.bash[block.id] = block.input
                while len(turn.bash) > 1024:  # results that never came
                    turn.bash.pop(next(iter(turn.bash)))

    async def _blocked(self, turn: _Turn, block: Any, on_event: OnEvent) -> None:
        """What the sandbox refused during an allowed Bash call: audited and shown."""
        tool_input = turn.bash.pop(block.tool_use_id, None)
        if tool_input is None or turn.reader is None:
            return
        found = turn.reader.blocked(result_text(block.content, "\n"))
        if not found:
            return
        lines = [str(b) for b in found]
        self.gate.sandbox_blocked(turn.session, "Bash", tool_input, lines)
        summary = tool_summary("Bash", tool_input)
        await _tell(on_event, SandboxBlocked(block.tool_use_id, summary, tuple(lines)))


def system_prompt(configured: str | None, context: str) -> dict[str, str]:
    """The SDK's `system_prompt` for a turn: Claude Code's own prompt, then the configured
    text, then the session's context (its workspace).

    Always the claude_code preset: left out, the SDK passes `--system-prompt ""` and the CLI
    runs on a one-line agent prompt without Claude Code's instructions for its tools."""
    text = "\n\n".join(p for p in (configured, context) if p)
    prompt = {"type": "preset", "preset": "claude_code"}
    if text:
        prompt["append"] = text
    return prompt


def _retry_notice(data: dict[str, Any]) -> str:
    """What the user is told when the CLI tries a failed model request again (its
    `api_retry` message): why, when, and how many tries are left."""
    status = data.get("error_status")
    kind = data.get("error")
    if kind == "overloaded":
        why = "the API is overloaded"
    elif kind == "rate_limit":
        why = "the API's rate limit was reached"
    elif status is None:
        why = "the connection to the API failed"
    else:
        why = "the API request failed"
    code = f" ({status})" if status is not None else ""
    delay = (data.get("retry_delay_ms") or 0) / 1000
    attempt, most = data.get("attempt"), data.get("max_retries")
    of = f" {attempt} of {most}" if attempt is not None and most is not None else ""
    return f"{why}{code}; trying again in {delay:.1f} s (retry{of})"


def _tokens(usage: dict[str, Any], key: str) -> int:
    total = usage.get(key) or 0
    if key == "input_tokens":
        total += (usage.get("cache_read_input_tokens") or 0) + (
            usage.get("cache_creation_input_tokens") or 0
        )
    return int(total)


def _text_delta(event: dict[str, Any]) -> str:
    if event.get("type") != "content_block_delta":
        return ""
    delta = event.get("delta") or {}
    return delta.get("text", "") if delta.get("type") == "text_delta" else ""


async def _tell(on_event: OnEvent, event: AgentEvent) -> None:
    """A connector that cannot show something must not stop the turn."""
    try:
        await on_event(event)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.warning("connector failed to show an event", error=repr(exc))


def _conversation_gone(exc: BaseException) -> bool:
    """Whether the CLI refused to start because the conversation to resume is gone."""
    data = getattr(exc, "data", None)  # claude_agent_sdk.ResultError: the CLI's result
    if isinstance(data, dict) and data.get("startup_failure_reason") == "resume_target_not_found":
        return True
    errors = getattr(exc, "errors", None)
    return isinstance(errors, list) and any(_NOT_FOUND in str(e) for e in errors)


def _describe(exc: BaseException) -> str:
    name = type(exc).__name__
    text = str(exc).strip().splitlines()
    return f"{name}: {text[0]}" if text else name


def _stderr_logger(session_id: str) -> Callable[[str], None]:
    def write(line: str) -> None:
        if line.strip():
            log.debug("claude stderr", session=session_id, line=line.rstrip()[:500])

    return write


def bundled_cli() -> str | None:
    """The Claude Code CLI inside the claude-agent-sdk wheel, if it is there."""
    return claude.bundled_cli()
