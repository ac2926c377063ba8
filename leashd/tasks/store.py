"""Tasks in SQLite: the task, each run of each phase (cost, duration, tokens, output) and what
happened, written after every step so that a daemon killed at any moment (`kill -9`) leaves a
task that can be resumed where it was (tasks/orchestrator.py, `recover`).

The tables live in the daemon's database (daemon/storage.py, MIGRATIONS); the memory backend
gets the same schema in an in-memory SQLite database, so the code path is one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields, replace
from pathlib import Path

import aiosqlite

from leashd.daemon.storage import connect

ACTIVE = ("running", "paused")  # a task that is not over
STATUSES = ("running", "paused", "done", "failed", "cancelled")


@dataclass(frozen=True)
class Task:
    id: int
    chat: str
    directory: str
    description: str
    policy: str
    status: str  # running | paused (escalated: waiting for the user) | done | failed | cancelled
    phase: str  # the phase it is in (or ended in)
    retries: int = 0  # test failures sent back to implement so far
    max_retries: int = 3
    agent_session_id: str | None = None  # the agent's conversation, resumed phase to phase
    spec: str = ""
    plan: str = ""
    failures: str = ""  # the last test run's failures, for the next implement
    test_command: str = ""
    branch: str | None = None
    pr_url: str | None = None
    escalation: str | None = None  # why it is paused, what is needed
    created_at: float = 0.0
    updated_at: float = 0.0

    @property
    def active(self) -> bool:
        return self.status in ACTIVE


@dataclass(frozen=True)
class PhaseRun:
    id: int
    task_id: int
    phase: str
    attempt: int
    status: str  # running | done | failed | interrupted
    cost_usd: float = 0.0
    duration_ms: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    output: str = ""
    started_at: float = 0.0
    ended_at: float | None = None


_TASK_COLUMNS = [f.name for f in fields(Task)]
_PHASE_COLUMNS = [f.name for f in fields(PhaseRun)]


class TaskStore:
    """Tasks, on a database path (the daemon's) or in memory (":memory:")."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._db: aiosqlite.Connection | None = None

    async def open(self) -> None:
        self._db = await connect(self.path)

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("the task store is not open")
        return self._db

    # --- tasks -----------------------------------------------------------------------------

    async def create(self, chat: str, directory: str, description: str, policy: str,
                     max_retries: int) -> Task:  # fmt: skip
        now = time.time()
        cur = await self.db.execute(
            "INSERT INTO tasks (chat, directory, description, policy, status, phase, "
            "max_retries, created_at, updated_at) VALUES (?, ?, ?, ?, 'running', 'spec', ?, ?, ?)",
            (chat, directory, description, policy, max_retries, now, now),
        )
        await self.db.commit()
        task_id = cur.lastrowid
        assert task_id is not None
        await self.event(task_id, "created", description)
        found = await self.get(task_id)
        assert found is not None
        return found

    async def save(self, task: Task) -> Task:
        """Write every field of `task` (its id names the row)."""
        task = replace(task, updated_at=time.time())
        columns = [c for c in _TASK_COLUMNS if c != "id"]
        await self.db.execute(
            f"UPDATE tasks SET {', '.join(f'{c} = ?' for c in columns)} WHERE id = ?",
            (*(getattr(task, c) for c in columns), task.id),
        )
        await self.db.commit()
        return task

    async def get(self, task_id: int) -> Task | None:
        async with self.db.execute(
            f"SELECT {', '.join(_TASK_COLUMNS)} FROM tasks WHERE id = ?", (task_id,)
        ) as cur:
            row = await cur.fetchone()
        return Task(*row) if row else None

    async def of_chat(self, chat: str, limit: int = 10) -> list[Task]:
        """The chat's tasks, the active ones first, then the most recent."""
        async with self.db.execute(
            f"SELECT {', '.join(_TASK_COLUMNS)} FROM tasks WHERE chat = ? ORDER BY "
            "status IN ('running', 'paused') DESC, id DESC LIMIT ?",
            (chat, limit),
        ) as cur:
            return [Task(*row) for row in await cur.fetchall()]

    async def active(self) -> list[Task]:
        """Every task that is not over, oldest first (what a restart must pick up)."""
        async with self.db.execute(
            f"SELECT {', '.join(_TASK_COLUMNS)} FROM tasks "
            "WHERE status IN ('running', 'paused') ORDER BY id"
        ) as cur:
            return [Task(*row) for row in await cur.fetchall()]

    # --- phases and events -------------------------------------------------------------------

    async def start_phase(self, task: Task, phase: str) -> PhaseRun:
        async with self.db.execute(
            "SELECT COUNT(*) FROM task_phases WHERE task_id = ? AND phase = ?", (task.id, phase)
        ) as cur:
            row = await cur.fetchone()
        attempt = (row[0] if row else 0) + 1
        now = time.time()
        cur = await self.db.execute(
            "INSERT INTO task_phases (task_id, phase, attempt, status, started_at) "
            "VALUES (?, ?, ?, 'running', ?)",
            (task.id, phase, attempt, now),
        )
        await self.db.commit()
        assert cur.lastrowid is not None
        return PhaseRun(cur.lastrowid, task.id, phase, attempt, "running", started_at=now)

    async def end_phase(self, run: PhaseRun) -> PhaseRun:
        run = replace(run, ended_at=time.time())
        columns = [c for c in _PHASE_COLUMNS if c not in ("id", "task_id", "phase", "attempt")]
        await self.db.execute(
            f"UPDATE task_phases SET {', '.join(f'{c} = ?' for c in columns)} WHERE id = ?",
            (*(getattr(run, c) for c in columns), run.id),
        )
        await self.db.commit()
        return run

    async def phases(self, task_id: int) -> list[PhaseRun]:
        async with self.db.execute(
            f"SELECT {', '.join(_PHASE_COLUMNS)} FROM task_phases WHERE task_id = ? ORDER BY id",
            (task_id,),
        ) as cur:
            return [PhaseRun(*row) for row in await cur.fetchall()]

    async def interrupted(self, task_id: int) -> list[PhaseRun]:
        """Runs left `running` by a daemon that died: marked interrupted, and returned."""
        runs = [r for r in await self.phases(task_id) if r.status == "running"]
        for r in runs:
            await self.end_phase(replace(r, status="interrupted"))
        return runs

    async def event(self, task_id: int, kind: str, text: str) -> None:
        await self.db.execute(
            "INSERT INTO task_events (task_id, at, kind, text) VALUES (?, ?, ?, ?)",
            (task_id, time.time(), kind, text),
        )
        await self.db.commit()

    async def events(self, task_id: int) -> list[tuple[float, str, str]]:
        async with self.db.execute(
            "SELECT at, kind, text FROM task_events WHERE task_id = ? ORDER BY id", (task_id,)
        ) as cur:
            return [(row[0], row[1], row[2]) for row in await cur.fetchall()]
