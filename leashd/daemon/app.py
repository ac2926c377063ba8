"""Putting the daemon together from its settings: audit log, gate, approvals, store, agent,
engine. The connectors and the process around it are chosen by the caller."""

from __future__ import annotations

import gc
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from leashd.agent.runner import AgentConfig, ClaudeAgent
from leashd.agent.sandbox import SandboxConfig
from leashd.approvers.ai import AIApprover
from leashd.approvers.breaker import Limits
from leashd.approvers.plans import PlanReviewer
from leashd.daemon import process
from leashd.daemon.config import Settings, leashd_home
from leashd.daemon.engine import Engine
from leashd.daemon.middleware import Auth, RateLimit
from leashd.daemon.storage import Store, open_store
from leashd.gate.approvals import ApprovalCoordinator
from leashd.gate.audit import AuditError, AuditLog, head_path
from leashd.gate.audit_key import ENV as KEY_ENV
from leashd.gate.audit_key import AuditKeyError, load_key
from leashd.gate.gate import Gate, pending_in_log
from leashd.policy.loader import DEFAULT_POLICIES
from leashd.tasks.loop import LoopSettings
from leashd.tasks.orchestrator import Orchestrator, TaskSettings
from leashd.tasks.publish import GitHubConfig, publish
from leashd.tasks.store import Task, TaskStore

log = structlog.get_logger(__name__)


@dataclass
class Daemon:
    settings: Settings
    audit: AuditLog
    gate: Gate
    approvals: ApprovalCoordinator | None
    store: Store
    agent: ClaudeAgent
    engine: Engine
    recovered: int = 0  # approvals found pending from a daemon that died, now denied
    tasks: Orchestrator | None = None  # /task, when LEASHD_TASK_ORCHESTRATOR is on

    async def close(self) -> None:
        await self.engine.stop()
        if self.tasks is not None:
            await self.tasks.stop()
            await self.tasks.store.close()
        await self.gate.bus.drain()
        await self.store.close()
        self.audit.close()


def ai_approver(settings: Settings) -> AIApprover | None:
    """The AI approver the settings ask for (LEASHD_AUTO_APPROVER), or None."""
    if not settings.auto_approver:
        return None
    limits = Limits(
        max_approvals=settings.auto_approver_max_calls,
        window=settings.auto_approver_window_seconds,
        max_denials=settings.auto_approver_max_denials,
    )
    return AIApprover(
        model=settings.auto_approver_model,
        timeout=settings.auto_approver_timeout_seconds,
        limits=limits,
    )


def loop_settings(settings: Settings) -> LoopSettings | None:
    """The autonomous loop after /edit turns (LEASHD_AUTONOMOUS_LOOP), or None."""
    if not settings.autonomous_loop:
        return None
    return LoopSettings(
        max_retries=settings.autonomous_max_retries,
        backoff=settings.task_retry_backoff_seconds,
        pr=settings.autonomous_pr,
    )


def pull_request(settings: Settings) -> Callable[[str, str, str, str], Awaitable[str]]:
    """How leashd opens a pull request for work in a directory (tasks/publish.py)."""
    token = settings.github_token.get_secret_value() if settings.github_token else None
    github = GitHubConfig(api_url=settings.github_api_url.rstrip("/"), token=token)

    async def open_pr(directory: str, name: str, description: str, body: str) -> str:
        result = await publish(directory, name, description, body, github=github)
        return result.summary()

    return open_pr


def plan_reviewer(settings: Settings) -> PlanReviewer | None:
    """The AI plan reviewer the settings ask for (LEASHD_AUTO_PLAN_REVIEWER), or None."""
    if not settings.auto_plan_reviewer:
        return None
    return PlanReviewer(model=settings.auto_plan_model, max_rounds=settings.auto_plan_max_rounds)


async def build(
    settings: Settings,
    *,
    approvers: set[str] | None,
    directories: list[str] | None = None,
    policies: list[str] | None = None,
    default_dir: str | None = None,
    open_bot: bool = False,
    recover: bool | None = None,
) -> Daemon:
    """The daemon's parts, opened. `approvers` None: nobody can be asked, so whatever needs
    approval is denied (headless runs).

    `recover`: close the approvals a dead daemon left waiting. The daemon, which holds the
    daemon lock, says True; None (`leashd run`) recovers only when no daemon holds the lock,
    so that a run beside a live daemon never records that daemon's waiting approvals as
    ended by a restart (the daemon could approve one after)."""
    dirs = directories if directories is not None else settings.approved_directories
    specs = policies if policies is not None else settings.policy_files
    log.info("engine_building", policies=list(specs) or list(DEFAULT_POLICIES),
             directories=len(dirs), storage=settings.storage_backend)  # fmt: skip
    audit_path = settings.path("audit_log_path")
    audit = open_audit(settings)
    approvals = None
    if approvers is not None:
        approvals = ApprovalCoordinator(
            approvers, explicit_approval_timeout(settings), audit,
            anyone_in_chat=open_bot and not approvers,
        )  # fmt: skip
    try:
        gate = Gate.from_specs(
            specs, audit, approvals=approvals, approved_dirs=dirs,
            home=os.path.expanduser("~"), ai=ai_approver(settings),
            reviewer=plan_reviewer(settings),
        )  # fmt: skip
    except BaseException:
        # a policy that does not load (PolicyError): the caller reports it; leave nothing open
        audit.close()
        raise
    # Approvals a dead daemon left waiting end in SQLite as in the audit log (recover), or
    # their rows would wait for ever. SQLite first: should either step fail, the audit still
    # lists them as waiting and the next start finishes both (closing a row twice is a no-op).
    if recover is None:
        recover = not process.status().running
    store = open_store(settings.storage_backend, settings.path("storage_path"))
    await store.open()
    recovered = 0
    if recover:
        left = [rec["request"] for rec in pending_in_log(audit_path)]
        await store.close_approvals(left, "restart")
        recovered = gate.recover()
    agent = ClaudeAgent(gate, agent_config(settings, list(specs)))
    tasks = None
    if settings.task_orchestrator:
        tasks = await task_orchestrator(settings, audit, approvals, gate)
    middleware = [
        Auth(set(settings.allowed_user_ids), open_bot=open_bot),
        RateLimit(settings.rate_limit_rpm, settings.rate_limit_burst),
    ]
    engine = Engine(
        gate,
        agent,
        store,
        approvals=approvals,
        default_dir=default_dir,
        default_mode=settings.default_mode,
        middleware=middleware,  # type: ignore[arg-type]
        tasks=tasks,
        loop=loop_settings(settings),
        publish=pull_request(settings),
    )
    if approvals is not None:
        approvals.on_expired = engine.expired
    # What is built now lives as long as the daemon (the compiled policies above all): frozen,
    # full garbage collections skip it. A collection runs on whichever thread allocates, the
    # gate's decision thread included, and the event loop waits for it.
    gc.freeze()
    log.info("engine_built", rules=len(gate.compiled.rules), policies=list(gate.specs),
             approval_timeout=approvals.timeout_for(gate.policy_timeout) if approvals else None,
             recovered=recovered)  # fmt: skip
    return Daemon(settings, audit, gate, approvals, store, agent, engine, recovered, tasks)


async def task_orchestrator(
    settings: Settings, audit: AuditLog, approvals: ApprovalCoordinator | None, gate: Gate
) -> Orchestrator:
    """The task orchestrator: its store beside the sessions, one gate per (policy, directory)
    sharing the daemon's audit log, approvals and AI approver, its pull requests on GitHub."""
    path = settings.path("storage_path") if settings.storage_backend == "sqlite" else ":memory:"
    store = TaskStore(path)
    await store.open()
    agents: dict[tuple[str, str], ClaudeAgent] = {}

    def agent_for(policy: str, directory: str) -> ClaudeAgent:
        if (policy, directory) not in agents:
            task_gate = Gate.from_specs(
                [policy], audit, approvals=approvals, approved_dirs=[directory],
                home=os.path.expanduser("~"), ai=gate.ai,
            )  # fmt: skip
            agents[policy, directory] = ClaudeAgent(task_gate, agent_config(settings, [policy]))
        return agents[policy, directory]

    token = settings.github_token.get_secret_value() if settings.github_token else None
    github = GitHubConfig(api_url=settings.github_api_url.rstrip("/"), token=token)

    async def publish_task(task: Task, body: str) -> tuple[str | None, str | None, str]:
        r = await publish(task.directory, task.id, task.description, body, github=github)
        return r.branch, r.pr_url, r.summary()

    task_settings = TaskSettings(
        max_retries=settings.task_max_retries,
        phase_timeout=settings.task_phase_timeout_seconds,
        backoff=settings.task_retry_backoff_seconds,
        policy=settings.task_policy,
    )
    return Orchestrator(store, agent_for, task_settings, publish_task, gate.reviewer)


def explicit_approval_timeout(settings: Settings) -> float | None:
    """LEASHD_APPROVAL_TIMEOUT_SECONDS when it was given (config.yaml, .env, the environment,
    a flag: `load_config` validates only the keys given, so they are the fields set), else
    None: then the policies' `approval_timeout_seconds` decides, and past it the default."""
    if "approval_timeout_seconds" in settings.model_fields_set:
        return settings.approval_timeout_seconds
    return None


def open_audit(settings: Settings) -> AuditLog:
    """The audit log, checked before the daemon takes its first call: the end against the
    head (what a crash left put right in the log), the whole chain up to 256 MiB. Damage
    raises AuditDamaged, and the daemon does not run until `leashd audit repair` seals it."""
    secret = settings.audit_key.get_secret_value() if settings.audit_key else None
    try:
        key = load_key(secret, settings.audit_key_file or None)
    except AuditKeyError as exc:
        raise AuditError(str(exc)) from None
    # the agent's CLI inherits this process's environment: the key must not go with it
    os.environ.pop(KEY_ENV, None)
    path = settings.path("audit_log_path")
    path.parent.mkdir(parents=True, exist_ok=True)
    audit = AuditLog(path, fsync=settings.audit_fsync, key=key)
    try:
        for notice in audit.check():
            log.warning("audit log notice", notice=notice)
    except BaseException:
        audit.close()
        raise
    return audit


def agent_config(settings: Settings, policies: list[str] | None = None) -> AgentConfig:
    return AgentConfig(
        sandbox=sandbox_config(settings, policies),
        max_turns=settings.max_turns,
        system_prompt=settings.system_prompt,
        allowed_tools=list(settings.allowed_tools),
        disallowed_tools=list(settings.disallowed_tools),
        mcp_servers=dict(settings.mcp_servers),
        timeout=settings.agent_timeout_seconds,
        streaming=settings.streaming_enabled,
        retries=settings.agent_retries,
    )


def sandbox_config(settings: Settings, policies: list[str] | None = None) -> SandboxConfig:
    """The OS sandbox as configured, with every file of leashd's own to hide from the agent:
    its home (config.yaml with the bot token, the database, the audit log), wherever the
    settings moved a part of it (with the files SQLite and the audit log keep beside it),
    and the `.env` the daemon read its settings from; and the policy files, which the agent
    may read but never change (the next reload or `leashd run` would load them)."""
    storage, audit = settings.path("storage_path"), settings.path("audit_log_path")
    private = [leashd_home(), storage, audit, settings.path("log_dir"), Path(head_path(audit))]
    private += [Path(f"{storage}{suffix}") for suffix in ("-wal", "-shm", "-journal")]
    if settings.audit_key_file:
        private.append(Path(settings.audit_key_file).expanduser())
    dotenv = Path.cwd() / ".env"
    if dotenv.is_file():
        private.append(dotenv)
    return SandboxConfig(
        mode=settings.sandbox,
        writable=tuple(settings.sandbox_writable),
        allowed_domains=tuple(settings.sandbox_allowed_domains),
        excluded_commands=tuple(settings.sandbox_excluded_commands),
        private=tuple(dict.fromkeys(os.path.realpath(p) for p in private)),
        protected=tuple(dict.fromkeys(
            os.path.realpath(p) for p in (policies if policies is not None else
                                          settings.policy_files) if os.path.isfile(p)
        )),
    )  # fmt: skip


def ensure_dir(path: str | Path) -> str:
    return os.path.realpath(os.path.expanduser(str(path)))
