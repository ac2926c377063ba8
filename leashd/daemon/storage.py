"""Sessions, messages and approvals: SQLite through aiosqlite (WAL), or memory for tests.

A chat has one current session at a time (`/clear` starts another; the old one is kept). A
session remembers its directory, its mode, its workspace and the agent's own session id, so
the conversation resumes after the daemon restarts. The schema is versioned (`PRAGMA
user_version`) and migrated forward in order at open.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import aiosqlite


@dataclass(frozen=True)
class SessionRow:
    id: int
    chat: str
    directory: str
    mode: str
    agent_session_id: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    # what the agent reports as its conversation's cost so far (it counts resumed turns too)
    agent_cost_usd: float = 0.0
    # The workspace the session works in (leashd/workspaces.py), and its directories as the
    # session last worked in them: a change to the file since is noticed and said, never
    # taken on silently (Engine._workspace_now).
    workspace: str | None = None
    workspace_dirs: tuple[str, ...] = ()


@dataclass(frozen=True)
class MessageRow:
    session_id: int
    role: str  # user | assistant | error
    text: str
    cost_usd: float = 0.0
    duration_ms: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    created_at: float = 0.0


@dataclass(frozen=True)
class ApprovalRow:
    request_id: str
    session_id: int
    tool: str
    summary: str
    outcome: str | None = None  # approved | rejected | expired | ... ; None while waiting
    who: str | None = None
    created_at: float = 0.0
    resolved_at: float | None = None


class Store(Protocol):
    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def current_session(self, chat: str) -> SessionRow | None: ...
    async def new_session(self, chat: str, directory: str, mode: str,
                          workspace: str | None = None,
                          workspace_dirs: tuple[str, ...] = ()) -> SessionRow: ...  # fmt: skip
    async def update_session(self, row: SessionRow) -> SessionRow: ...
    async def add_message(self, msg: MessageRow) -> None: ...
    async def messages(self, session_id: int) -> list[MessageRow]: ...
    async def add_approval(self, row: ApprovalRow) -> None: ...
    async def resolve_approval(self, request_id: str, outcome: str, who: str | None) -> None: ...
    async def close_approvals(self, request_ids: list[str], outcome: str) -> int: ...
    async def approvals(self, session_id: int) -> list[ApprovalRow]: ...
    async def totals(self, session_id: int) -> tuple[float, int, int]: ...


# Each entry moves the schema one version up; never edit one that has shipped.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE sessions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        chat TEXT NOT NULL,
        directory TEXT NOT NULL,
        mode TEXT NOT NULL,
        agent_session_id TEXT,
        current INTEGER NOT NULL DEFAULT 1,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE UNIQUE INDEX sessions_current ON sessions(chat) WHERE current = 1;
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        session_id INTEGER NOT NULL REFERENCES sessions(id),
        role TEXT NOT NULL,
        text TEXT NOT NULL,
        cost_usd REAL NOT NULL DEFAULT 0,
        duration_ms INTEGER NOT NULL DEFAULT 0,
        input_tokens INTEGER NOT NULL DEFAULT 0,
        output_tokens INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL
    );
    CREATE INDEX messages_session ON messages(session_id);
    CREATE TABLE approvals (
        request_id TEXT PRIMARY KEY,
        session_id INTEGER NOT NULL REFERENCES sessions(id),
        tool TEXT NOT NULL,
        summary TEXT NOT NULL,
        outcome TEXT,
        who TEXT,
        created_at REAL NOT NULL,
        resolved_at REAL
    );
    CREATE INDEX approvals_session ON approvals(session_id);
    """,
    "ALTER TABLE sessions ADD COLUMN agent_cost_usd REAL NOT NULL DEFAULT 0;",
    # a session's workspace: its name, and its directories as a JSON list
    """
    ALTER TABLE sessions ADD COLUMN workspace TEXT;
    ALTER TABLE sessions ADD COLUMN workspace_dirs TEXT NOT NULL DEFAULT '[]';
    """,
    # tasks (leashd/tasks): one row per task, one per run of a phase, and what happened
    """
    CREATE TABLE tasks (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        chat TEXT NOT NULL,
        directory TEXT NOT NULL,
        description TEXT NOT NULL,
        policy TEXT NOT NULL,
        status TEXT NOT NULL,
        phase TEXT NOT NULL,
        retries INTEGER NOT NULL DEFAULT 0,
        max_retries INTEGER NOT NULL,
        agent_session_id TEXT,
        spec TEXT NOT NULL DEFAULT '',
        plan TEXT NOT NULL DEFAULT '',
        failures TEXT NOT NULL DEFAULT '',
        test_command TEXT NOT NULL DEFAULT '',
        branch TEXT,
        pr_url TEXT,
        escalation TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE INDEX tasks_chat ON tasks(chat);
    CREATE TABLE task_phases (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        task_id INTEGER NOT NULL REFERENCES tasks(id),
        phase TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        status TEXT NOT NULL,
        cost_usd REAL NOT NULL DEFAULT 0,
        duration_ms INTEGER NOT NULL DEFAULT 0,
        input_tokens INTEGER NOT NULL DEFAULT 0,
        output_tokens INTEGER NOT NULL DEFAULT 0,
        output TEXT NOT NULL DEFAULT '',
        started_at REAL NOT NULL,
        ended_at REAL
    );
    CREATE INDEX task_phases_task ON task_phases(task_id);
    CREATE TABLE task_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        task_id INTEGER NOT NULL REFERENCES tasks(id),
        at REAL NOT NULL,
        kind TEXT NOT NULL,
        text TEXT NOT NULL
    );
    CREATE INDEX task_events_task ON task_events(task_id);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


class StorageError(Exception):
    pass


class SqliteStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
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
            raise StorageError("the store is not open")
        return self._db

    async def current_session(self, chat: str) -> SessionRow | None:
        async with self.db.execute(
            "SELECT id, chat, directory, mode, agent_session_id, created_at, updated_at, "
            "agent_cost_usd, workspace, workspace_dirs FROM sessions "
            "WHERE chat = ? AND current = 1",
            (chat,),
        ) as cur:
            row = await cur.fetchone()
        if not row:
            return None
        return SessionRow(*row[:-1], _dirs_of(row[-1]))

    async def new_session(self, chat: str, directory: str, mode: str,
                          workspace: str | None = None,
                          workspace_dirs: tuple[str, ...] = ()) -> SessionRow:  # fmt: skip
        now = time.time()
        db = self.db
        await db.execute("UPDATE sessions SET current = 0 WHERE chat = ? AND current = 1", (chat,))
        cur = await db.execute(
            "INSERT INTO sessions (chat, directory, mode, current, created_at, updated_at, "
            "workspace, workspace_dirs) VALUES (?, ?, ?, 1, ?, ?, ?, ?)",
            (chat, directory, mode, now, now, workspace, json.dumps(list(workspace_dirs))),
        )
        await db.commit()
        assert cur.lastrowid is not None
        return SessionRow(cur.lastrowid, chat, directory, mode, None, now, now, 0.0, workspace,
                          tuple(workspace_dirs))  # fmt: skip

    async def update_session(self, row: SessionRow) -> SessionRow:
        row = replace(row, updated_at=time.time())
        cur = await self.db.execute(
            "UPDATE sessions SET directory = ?, mode = ?, agent_session_id = ?, updated_at = ?, "
            "agent_cost_usd = ?, workspace = ?, workspace_dirs = ? WHERE id = ?",
            (
                row.directory,
                row.mode,
                row.agent_session_id,
                row.updated_at,
                row.agent_cost_usd,
                row.workspace,
                json.dumps(list(row.workspace_dirs)),
                row.id,
            ),
        )
        await self.db.commit()
        if cur.rowcount == 0:
            raise StorageError(f"no session {row.id}")
        return row

    async def add_message(self, msg: MessageRow) -> None:
        await self.db.execute(
            "INSERT INTO messages (session_id, role, text, cost_usd, duration_ms, input_tokens, "
            "output_tokens, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (msg.session_id, msg.role, msg.text, msg.cost_usd, msg.duration_ms,
             msg.input_tokens, msg.output_tokens, msg.created_at or time.time()),
        )  # fmt: skip
        await self.db.commit()

    async def messages(self, session_id: int) -> list[MessageRow]:
        async with self.db.execute(
            "SELECT session_id, role, text, cost_usd, duration_ms, input_tokens, output_tokens, "
            "created_at FROM messages WHERE session_id = ? ORDER BY id",
            (session_id,),
        ) as cur:
            return [MessageRow(*r) for r in await cur.fetchall()]

    async def add_approval(self, row: ApprovalRow) -> None:
        await self.db.execute(
            "INSERT OR REPLACE INTO approvals (request_id, session_id, tool, summary, outcome, "
            "who, created_at, resolved_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (row.request_id, row.session_id, row.tool, row.summary, row.outcome, row.who,
             row.created_at or time.time(), row.resolved_at),
        )  # fmt: skip
        await self.db.commit()

    async def resolve_approval(self, request_id: str, outcome: str, who: str | None) -> None:
        await self.db.execute(
            "UPDATE approvals SET outcome = ?, who = ?, resolved_at = ? "
            "WHERE request_id = ? AND outcome IS NULL",
            (outcome, who, time.time(), request_id),
        )
        await self.db.commit()

    async def close_approvals(self, request_ids: list[str], outcome: str) -> int:
        """End these approvals if they still wait (nobody decided them: a daemon that died
        left them), with the time. Returns how many were still waiting."""
        now = time.time()
        cur = await self.db.executemany(
            "UPDATE approvals SET outcome = ?, resolved_at = ? "
            "WHERE request_id = ? AND outcome IS NULL",
            [(outcome, now, rid) for rid in request_ids],
        )
        await self.db.commit()
        return max(cur.rowcount, 0)

    async def approvals(self, session_id: int) -> list[ApprovalRow]:
        async with self.db.execute(
            "SELECT request_id, session_id, tool, summary, outcome, who, created_at, resolved_at "
            "FROM approvals WHERE session_id = ? ORDER BY created_at",
            (session_id,),
        ) as cur:
            return [ApprovalRow(*r) for r in await cur.fetchall()]

    async def totals(self, session_id: int) -> tuple[float, int, int]:
        async with self.db.execute(
            "SELECT COALESCE(SUM(cost_usd), 0), COALESCE(SUM(input_tokens), 0), "
            "COALESCE(SUM(output_tokens), 0) FROM messages WHERE session_id = ?",
            (session_id,),
        ) as cur:
            row = await cur.fetchone()
        assert row is not None
        return float(row[0]), int(row[1]), int(row[2])


def _dirs_of(text: str | None) -> tuple[str, ...]:
    """A session's workspace directories as stored. What does not read as a list of paths
    reads as none: the next turn of a session in a workspace then finds them changed, says
    so and takes the workspace's directories from its file (never more than it names)."""
    try:
        dirs = json.loads(text or "[]")
    except ValueError:
        return ()
    if not isinstance(dirs, list) or not all(isinstance(d, str) for d in dirs):
        return ()
    return tuple(dirs)


async def connect(path: str | Path) -> aiosqlite.Connection:
    """The database at `path` (":memory:": one in memory), opened as leashd uses it (WAL,
    foreign keys, a busy timeout for a second process) and migrated to the current schema."""
    memory = str(path) == ":memory:"
    if not memory:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    db = await aiosqlite.connect(path)
    try:
        if not memory:
            await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA foreign_keys=ON")
        await db.execute("PRAGMA busy_timeout=5000")
        await migrate(db, Path(path))
    except BaseException:
        await db.close()
        raise
    return db


async def migrate(db: aiosqlite.Connection, path: Path) -> None:
    async with db.execute("PRAGMA user_version") as cur:
        row = await cur.fetchone()
    version = int(row[0]) if row else 0
    if version > SCHEMA_VERSION:
        raise StorageError(
            f"{path}: the database is at schema version {version}, newer than this leashd "
            f"knows ({SCHEMA_VERSION}); upgrade leashd or point LEASHD_STORAGE_PATH elsewhere"
        )
    for n in range(version, SCHEMA_VERSION):
        # one transaction per step: a failed migration leaves the previous version intact
        await db.executescript(f"BEGIN;\n{MIGRATIONS[n]}\nPRAGMA user_version = {n + 1};\nCOMMIT;")


class MemoryStore:
    """The same store, in memory: for tests, and for LEASHD_STORAGE_BACKEND=memory."""

    def __init__(self) -> None:
        self._sessions: dict[int, SessionRow] = {}
        self._current: dict[str, int] = {}
        self._messages: list[MessageRow] = []
        self._approvals: dict[str, ApprovalRow] = {}
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def current_session(self, chat: str) -> SessionRow | None:
        sid = self._current.get(chat)
        return self._sessions.get(sid) if sid is not None else None

    async def new_session(self, chat: str, directory: str, mode: str,
                          workspace: str | None = None,
                          workspace_dirs: tuple[str, ...] = ()) -> SessionRow:  # fmt: skip
        async with self._lock:
            now = time.time()
            row = SessionRow(len(self._sessions) + 1, chat, directory, mode, None, now, now,
                             0.0, workspace, tuple(workspace_dirs))  # fmt: skip
            self._sessions[row.id] = row
            self._current[chat] = row.id
            return row

    async def update_session(self, row: SessionRow) -> SessionRow:
        if row.id not in self._sessions:
            raise StorageError(f"no session {row.id}")
        row = replace(row, updated_at=time.time())
        self._sessions[row.id] = row
        return row

    async def add_message(self, msg: MessageRow) -> None:
        self._messages.append(replace(msg, created_at=msg.created_at or time.time()))

    async def messages(self, session_id: int) -> list[MessageRow]:
        return [m for m in self._messages if m.session_id == session_id]

    async def add_approval(self, row: ApprovalRow) -> None:
        self._approvals[row.request_id] = replace(row, created_at=row.created_at or time.time())

    async def resolve_approval(self, request_id: str, outcome: str, who: str | None) -> None:
        row = self._approvals.get(request_id)
        if row is not None and row.outcome is None:
            self._approvals[request_id] = replace(
                row, outcome=outcome, who=who, resolved_at=time.time()
            )

    async def close_approvals(self, request_ids: list[str], outcome: str) -> int:
        closed = 0
        for rid in request_ids:
            row = self._approvals.get(rid)
            if row is not None and row.outcome is None:
                self._approvals[rid] = replace(row, outcome=outcome, resolved_at=time.time())
                closed += 1
        return closed

    async def approvals(self, session_id: int) -> list[ApprovalRow]:
        return [a for a in self._approvals.values() if a.session_id == session_id]

    async def totals(self, session_id: int) -> tuple[float, int, int]:
        ms = await self.messages(session_id)
        return (
            sum(m.cost_usd for m in ms),
            sum(m.input_tokens for m in ms),
            sum(m.output_tokens for m in ms),
        )


def open_store(backend: str, path: str | Path) -> Store:
    if backend == "sqlite":
        return SqliteStore(path)
    if backend == "memory":
        return MemoryStore()
    raise StorageError(f"unknown storage backend {backend!r} (sqlite or memory)")
