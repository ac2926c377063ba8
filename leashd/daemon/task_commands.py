"""`leashd task` and `leashd tasks`: unattended tasks from the shell.

`leashd task "Add a health check endpoint" --dir DIR` runs one task to its end in the
foreground, printing each phase as it goes: exit 0 with the pull request's URL (or the branch
and what is left to do), 1 when it escalated (the reason printed), 2 on bad configuration.
Nobody can be asked here: a call that needs approval is denied unless the AI approver answers
it, and the plan needs the AI plan reviewer (LEASHD_AUTO_PLAN_REVIEWER=true) or it escalates.

`leashd tasks` lists the tasks in the store (the daemon's too); `leashd tasks show ID` shows
one: its phases with cost, time and tokens, and what happened.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import click

from leashd.cli.lazy import examples
from leashd.cli.options import format_option

EXIT_DONE, EXIT_ESCALATED, EXIT_USAGE = 0, 1, 2


@dataclass
class PrintReporter:
    """A task's news on the terminal; nobody to ask."""

    ask: None = None
    escalated: list[str] = field(default_factory=list)

    async def progress(self, task: Any, text: str) -> None:
        click.echo(text)

    async def escalate(self, task: Any, text: str, choices: list[tuple[str, str]]) -> None:
        self.escalated.append(text)
        click.echo(text, err=True)

    async def finished(self, task: Any, text: str) -> None:
        click.echo(text)


async def run_task(settings: Any, description: str, directory: str, policy: str | None) -> int:
    from leashd.daemon.app import build
    from leashd.gate.audit import AuditError
    from leashd.policy.errors import PolicyError

    directory = os.path.realpath(directory)
    settings = settings.model_copy(
        update={"task_orchestrator": True, **({"task_policy": policy} if policy else {})}
    )
    try:
        daemon = await build(
            settings, approvers=None, directories=[directory], default_dir=directory
        )
    except PolicyError as exc:
        click.echo(f"leashd: the policy does not load:\n{exc}", err=True)
        return EXIT_USAGE
    except AuditError as exc:
        click.echo(f"leashd: the audit log cannot be continued: {exc}", err=True)
        return EXIT_USAGE
    orch = daemon.tasks
    assert orch is not None
    reporter = PrintReporter()
    try:
        task = await orch.create("headless", directory, description)
        click.echo(f"Task {task.id} in {directory}: {description}")
        task = await orch.run(task, reporter)
    finally:
        await daemon.close()
    if task.status == "done":
        if task.pr_url:
            click.echo(task.pr_url)
        return EXIT_DONE
    return EXIT_ESCALATED


@click.command(
    "task",
    epilog=examples(
        "leashd task 'Add a health check endpoint' --dir ~/src/app",
        "LEASHD_AUTO_PLAN_REVIEWER=true LEASHD_AUTO_APPROVER=true leashd task 'Fix #12' --dir .",
    ),
)
@click.argument("description")
@click.option(
    "--dir",
    "directory",
    default=".",
    show_default=True,
    type=click.Path(exists=True, file_okay=False),
    help="The repository to work in: the only directory the sandbox approves.",
)
@click.option("--policy", help="The policy implement and test run under (default: autonomous).")
def task_cmd(description: str, directory: str, policy: str | None) -> None:
    """Run a task unattended: spec → explore → validate → plan → implement → test → pull
    request. Exit 0 when done (the PR's URL printed), 1 when it escalated, 2 on bad
    configuration."""
    from leashd.daemon.commands import (
        _logs,
        _require_credentials,
        _require_sandbox,
        load_or_exit,
    )

    if not description.strip():
        raise click.UsageError("say what the task is: leashd task 'Add a health check'")
    config = load_or_exit()
    _require_sandbox(config)
    _require_credentials()
    _logs(config, console=True, told_by_run=True)
    sys.exit(asyncio.run(run_task(config.settings, description, directory, policy)))


@click.group(
    "tasks",
    invoke_without_command=True,
    epilog=examples("leashd tasks", "leashd tasks show 7", "leashd tasks --format json"),
)
@format_option("text", "json")
@click.pass_context
def tasks_group(ctx: click.Context, fmt: str) -> None:
    """The tasks in the store: status, phase, time, cost. `show ID` for one in full."""
    if ctx.invoked_subcommand is None:
        asyncio.run(_list(fmt))


@tasks_group.command("show", epilog=examples("leashd tasks show 7"))
@click.argument("task_id", type=int)
@format_option("text", "json")
def show_cmd(task_id: int, fmt: str) -> None:
    """One task: its phases with cost, time and tokens, and what happened."""
    sys.exit(asyncio.run(_show(task_id, fmt)))


async def _store() -> Any:
    from leashd.daemon.commands import load_or_exit
    from leashd.tasks.store import TaskStore

    settings = load_or_exit().settings
    if settings.storage_backend != "sqlite":
        raise click.ClickException("tasks are kept only with LEASHD_STORAGE_BACKEND=sqlite")
    store = TaskStore(settings.path("storage_path"))
    await store.open()
    return store


async def _list(fmt: str) -> None:
    import json

    store = await _store()
    try:
        async with store.db.execute("SELECT DISTINCT chat FROM tasks") as cur:
            chats = [row[0] for row in await cur.fetchall()]
        tasks = []
        for chat in chats:
            tasks.extend(await store.of_chat(chat, 50))
        tasks.sort(key=lambda t: -t.id)
        rows = []
        for t in tasks:
            cost = sum(r.cost_usd for r in await store.phases(t.id))
            rows.append((t, cost))
    finally:
        await store.close()
    if fmt == "json":
        for t, cost in rows:
            click.echo(json.dumps({**_task_json(t), "cost_usd": round(cost, 6)}))
        return
    if not rows:
        click.echo("no tasks yet (leashd task DESCRIPTION, or /task in a chat)")
    for t, cost in rows:
        click.echo(
            f"#{t.id} {t.status:<9} {t.phase:<9} ${cost:.4f}  {t.description[:70]}"
            + (f"  {t.pr_url}" if t.pr_url else "")
        )


async def _show(task_id: int, fmt: str) -> int:
    import json

    store = await _store()
    try:
        task = await store.get(task_id)
        if task is None:
            click.echo(f"no task {task_id} (leashd tasks lists them)", err=True)
            return 1
        runs = await store.phases(task_id)
        events = await store.events(task_id)
    finally:
        await store.close()
    if fmt == "json":
        click.echo(
            json.dumps(
                {
                    **_task_json(task),
                    "phases": [asdict(r) for r in runs],
                    "events": [{"at": at, "kind": k, "text": t} for at, k, t in events],
                },
                indent=2,
            )
        )
        return 0
    click.echo(
        f"Task {task.id}: {task.description}\n  {task.status} at {task.phase} in "
        f"{task.directory} (chat {task.chat}, policy {task.policy})"
    )
    if task.branch:
        click.echo(f"  branch {task.branch}" + (f", PR {task.pr_url}" if task.pr_url else ""))
    if task.escalation:
        click.echo(f"  waiting: {task.escalation}")
    for r in runs:
        click.echo(
            f"  {r.phase:<9} #{r.attempt} {r.status:<11} ${r.cost_usd:.4f} "
            f"{r.duration_ms / 1000:7.1f} s  {r.input_tokens}/{r.output_tokens} tokens"
        )
    for at, kind, text in events:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))
        click.echo(f"  {when} {kind}: {text.splitlines()[0][:120] if text else ''}")
    return 0


def _task_json(task: Any) -> dict[str, Any]:
    return asdict(task)
