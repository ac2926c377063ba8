"""Sessions, messages and approvals, in SQLite and in memory: the same behaviour from both,
what survives a restart (SQLite), and the schema's versioning."""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import replace

import pytest

from leashd.daemon import storage
from leashd.daemon.storage import (
    SCHEMA_VERSION,
    ApprovalRow,
    MemoryStore,
    MessageRow,
    SessionRow,
    SqliteStore,
    StorageError,
    open_store,
)

BACKENDS = ["sqlite", "memory"]


def make_store(backend: str, tmp_path):
    return SqliteStore(tmp_path / "db" / "messages.db") if backend == "sqlite" else MemoryStore()


def run_with(store, body):
    """Open the store, run `body(store)`, close it; returns what the body returned."""

    async def go():
        await store.open()
        try:
            return await body(store)
        finally:
            await store.close()

    return asyncio.run(go())


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path):
    return make_store(request.param, tmp_path)


def user_version(path) -> int:
    with sqlite3.connect(path) as db:
        return db.execute("PRAGMA user_version").fetchone()[0]


# --- sessions ------------------------------------------------------------------------------


def test_a_chat_without_a_session_has_none(store):
    async def body(s):
        return await s.current_session("chat-1")

    assert run_with(store, body) is None


def test_new_session_becomes_the_chats_current_session(store):
    async def body(s):
        row = await s.new_session("chat-1", "/work/proj", "default")
        return row, await s.current_session("chat-1")

    row, current = run_with(store, body)
    assert current == row
    assert (current.chat, current.directory, current.mode) == ("chat-1", "/work/proj", "default")
    assert current.agent_session_id is None
    assert current.created_at > 0


def test_new_session_replaces_the_current_one_and_keeps_the_old_and_its_messages(store):
    async def body(s):
        old = await s.new_session("chat-1", "/work/proj", "default")
        await s.add_message(MessageRow(old.id, "user", "hello"))
        await s.add_message(MessageRow(old.id, "assistant", "hi", cost_usd=0.5))
        new = await s.new_session("chat-1", "/work/proj", "plan")
        return old, new, await s.current_session("chat-1"), await s.messages(old.id)

    old, new, current, old_messages = run_with(store, body)
    assert new.id != old.id
    assert current == new
    assert [m.text for m in old_messages] == ["hello", "hi"]


def test_sessions_of_different_chats_are_independent(store):
    async def body(s):
        a = await s.new_session("chat-a", "/a", "default")
        b = await s.new_session("chat-b", "/b", "auto")
        await s.new_session("chat-b", "/b2", "plan")  # /clear in chat b only
        return a, b, await s.current_session("chat-a"), await s.current_session("chat-b")

    a, b, current_a, current_b = run_with(store, body)
    assert current_a == a
    assert current_b.directory == "/b2"
    assert current_b.id not in (a.id, b.id)


def test_update_session_changes_mode_directory_and_agent_session(store):
    async def body(s):
        row = await s.new_session("chat-1", "/work/proj", "default")
        updated = await s.update_session(
            replace(row, mode="auto", directory="/work/other", agent_session_id="ag-1")
        )
        return row, updated, await s.current_session("chat-1")

    row, updated, current = run_with(store, body)
    assert current == updated
    assert (current.mode, current.directory, current.agent_session_id) == (
        "auto",
        "/work/other",
        "ag-1",
    )
    assert current.id == row.id
    assert current.updated_at >= row.updated_at


@pytest.mark.parametrize(
    "backend",
    ["sqlite", "memory"],
)
def test_update_of_a_session_that_does_not_exist_is_an_error(backend, tmp_path):
    store = make_store(backend, tmp_path)

    async def body(s):
        with pytest.raises(StorageError):
            await s.update_session(SessionRow(999, "chat-1", "/x", "plan"))
        return await s.current_session("chat-1")

    assert run_with(store, body) is None


def test_the_current_session_resumes_after_the_store_is_closed_and_reopened(tmp_path):
    path = tmp_path / "db" / "messages.db"

    async def first(s):
        row = await s.new_session("chat-1", "/work/proj", "default")
        return await s.update_session(
            replace(row, mode="plan", directory="/work/other", agent_session_id="ag-42")
        )

    async def second(s):
        return await s.current_session("chat-1")

    saved = run_with(SqliteStore(path), first)
    resumed = run_with(SqliteStore(path), second)
    assert resumed == saved
    assert (resumed.mode, resumed.directory, resumed.agent_session_id) == (
        "plan",
        "/work/other",
        "ag-42",
    )


def test_the_agents_cost_so_far_is_kept_with_the_session(store):
    async def body(s):
        row = await s.new_session("chat-1", "/p", "default")
        assert row.agent_cost_usd == 0.0
        await s.update_session(replace(row, agent_session_id="ag-1", agent_cost_usd=1.25))
        return await s.current_session("chat-1")

    current = run_with(store, body)
    assert (current.agent_session_id, current.agent_cost_usd) == ("ag-1", 1.25)


def test_the_agents_cost_survives_a_restart(tmp_path):
    path = tmp_path / "messages.db"

    async def first(s):
        row = await s.new_session("chat-1", "/p", "default")
        await s.update_session(replace(row, agent_cost_usd=0.75))

    run_with(SqliteStore(path), first)
    assert run_with(SqliteStore(path), lambda s: s.current_session("chat-1")).agent_cost_usd == 0.75


def test_a_closed_store_refuses_to_be_used(tmp_path):
    store = SqliteStore(tmp_path / "m.db")

    async def go():
        await store.open()
        await store.close()
        await store.close()  # closing twice is harmless
        with pytest.raises(StorageError, match="not open"):
            await store.current_session("chat-1")

    asyncio.run(go())


# --- messages and totals -------------------------------------------------------------------


def test_messages_come_back_in_the_order_written_with_cost_and_tokens(store):
    async def body(s):
        row = await s.new_session("chat-1", "/p", "default")
        other = await s.new_session("chat-2", "/p", "default")
        await s.add_message(MessageRow(row.id, "user", "fix the tests"))
        await s.add_message(MessageRow(other.id, "user", "not this chat"))
        await s.add_message(
            MessageRow(row.id, "assistant", "done", 0.25, 1200, input_tokens=300, output_tokens=40)
        )
        await s.add_message(MessageRow(row.id, "error", "the agent stopped"))
        return await s.messages(row.id)

    msgs = run_with(store, body)
    assert [(m.role, m.text) for m in msgs] == [
        ("user", "fix the tests"),
        ("assistant", "done"),
        ("error", "the agent stopped"),
    ]
    done = msgs[1]
    assert (done.cost_usd, done.duration_ms, done.input_tokens, done.output_tokens) == (
        0.25,
        1200,
        300,
        40,
    )
    assert all(m.created_at > 0 for m in msgs)  # stamped when not given


def test_a_given_message_time_is_kept(store):
    async def body(s):
        row = await s.new_session("chat-1", "/p", "default")
        await s.add_message(MessageRow(row.id, "user", "hi", created_at=1234.5))
        return await s.messages(row.id)

    assert [m.created_at for m in run_with(store, body)] == [1234.5]


def test_totals_add_up_cost_and_tokens_of_one_session(store):
    async def body(s):
        row = await s.new_session("chat-1", "/p", "default")
        other = await s.new_session("chat-2", "/p", "default")
        empty = await s.totals(row.id)
        await s.add_message(
            MessageRow(row.id, "assistant", "a", 0.5, input_tokens=10, output_tokens=1)
        )
        await s.add_message(
            MessageRow(row.id, "assistant", "b", 0.25, input_tokens=5, output_tokens=2)
        )
        await s.add_message(MessageRow(other.id, "assistant", "c", 9.0, input_tokens=99))
        return empty, await s.totals(row.id)

    empty, totals = run_with(store, body)
    assert empty == (0.0, 0, 0)
    assert totals == (0.75, 15, 3)


# --- approvals -----------------------------------------------------------------------------


def test_an_approval_waits_then_is_resolved(store):
    async def body(s):
        row = await s.new_session("chat-1", "/p", "default")
        await s.add_approval(ApprovalRow("req-1", row.id, "Bash", "npm publish"))
        waiting = await s.approvals(row.id)
        await s.resolve_approval("req-1", "approved", "alice")
        return waiting, await s.approvals(row.id)

    waiting, resolved = run_with(store, body)
    assert [(a.request_id, a.tool, a.summary, a.outcome) for a in waiting] == [
        ("req-1", "Bash", "npm publish", None)
    ]
    assert waiting[0].created_at > 0 and waiting[0].resolved_at is None
    [done] = resolved
    assert (done.outcome, done.who) == ("approved", "alice")
    assert done.resolved_at is not None and done.resolved_at >= done.created_at


def test_an_approval_is_resolved_only_once(store):
    async def body(s):
        row = await s.new_session("chat-1", "/p", "default")
        await s.add_approval(ApprovalRow("req-1", row.id, "Bash", "rm -rf build"))
        await s.resolve_approval("req-1", "rejected", "bob")
        first = await s.approvals(row.id)
        await s.resolve_approval("req-1", "approved", "mallory")  # a late second answer
        return first, await s.approvals(row.id)

    first, after = run_with(store, body)
    assert after == first
    assert (after[0].outcome, after[0].who) == ("rejected", "bob")


def test_resolving_an_unknown_approval_changes_nothing(store):
    async def body(s):
        row = await s.new_session("chat-1", "/p", "default")
        await s.add_approval(ApprovalRow("req-1", row.id, "Write", "Write a.py"))
        await s.resolve_approval("no-such-request", "approved", "alice")
        return await s.approvals(row.id)

    [row] = run_with(store, body)
    assert row.outcome is None


def test_approvals_are_listed_per_session(store):
    async def body(s):
        a = await s.new_session("chat-1", "/p", "default")
        b = await s.new_session("chat-2", "/p", "default")
        await s.add_approval(ApprovalRow("r1", a.id, "Bash", "one", created_at=1.0))
        await s.add_approval(ApprovalRow("r2", b.id, "Bash", "two", created_at=2.0))
        await s.add_approval(ApprovalRow("r3", a.id, "Edit", "three", created_at=3.0))
        return await s.approvals(a.id), await s.approvals(b.id)

    a, b = run_with(store, body)
    assert [r.request_id for r in a] == ["r1", "r3"]
    assert [r.request_id for r in b] == ["r2"]


def test_approvals_left_waiting_are_closed_with_the_time_and_decided_ones_are_left(store):
    async def body(s):
        row = await s.new_session("chat-1", "/p", "default")
        for rid in ("left", "other", "decided"):
            await s.add_approval(ApprovalRow(rid, row.id, "Bash", rid, created_at=1.0))
        await s.resolve_approval("decided", "approved", "alice")
        closed = await s.close_approvals(["left", "decided", "no-such-request"], "restart")
        again = await s.close_approvals(["left"], "restart")
        return closed, again, {a.request_id: a for a in await s.approvals(row.id)}

    closed, again, rows = run_with(store, body)
    assert (closed, again) == (1, 0)
    assert (rows["left"].outcome, rows["left"].who) == ("restart", None)
    assert rows["left"].resolved_at is not None and rows["left"].resolved_at > 1.0
    assert rows["other"].outcome is None  # not named: still waiting
    assert (rows["decided"].outcome, rows["decided"].who) == ("approved", "alice")


def test_closed_approvals_stay_closed_after_a_restart(tmp_path):
    path = tmp_path / "messages.db"

    async def left(s):
        row = await s.new_session("chat-1", "/p", "default")
        await s.add_approval(ApprovalRow("req-1", row.id, "Bash", "npm publish"))
        await s.close_approvals(["req-1"], "restart")
        return row.id

    session_id = run_with(SqliteStore(path), left)

    async def after(s):
        return await s.approvals(session_id)

    [row] = run_with(SqliteStore(path), after)
    assert row.outcome == "restart" and row.resolved_at is not None


# --- the schema ----------------------------------------------------------------------------


def test_a_fresh_file_is_migrated_to_the_current_version_in_wal_mode(tmp_path):
    path = tmp_path / "new" / "dir" / "messages.db"  # parent directories are created

    async def body(s):
        async with s.db.execute("PRAGMA journal_mode") as cur:
            return (await cur.fetchone())[0]

    assert run_with(SqliteStore(path), body).lower() == "wal"
    assert user_version(path) == SCHEMA_VERSION
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"  # persists
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"sessions", "messages", "approvals"} <= tables


def test_a_database_of_the_first_schema_is_upgraded_and_keeps_its_sessions(tmp_path):
    path = tmp_path / "messages.db"
    with sqlite3.connect(path) as db:  # what the first release left behind
        db.executescript(storage.MIGRATIONS[0])
        db.execute(
            "INSERT INTO sessions (chat, directory, mode, agent_session_id, created_at, "
            "updated_at) VALUES ('chat-1', '/p', 'plan', 'ag-7', 1.0, 2.0)"
        )
        db.execute("PRAGMA user_version = 1")

    current = run_with(SqliteStore(path), lambda s: s.current_session("chat-1"))
    assert (current.directory, current.mode, current.agent_session_id) == ("/p", "plan", "ag-7")
    assert current.agent_cost_usd == 0.0
    assert user_version(path) == SCHEMA_VERSION


def test_a_database_from_a_newer_leashd_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "messages.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE future (x)")
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    store = SqliteStore(path)

    with pytest.raises(StorageError) as err:
        asyncio.run(store.open())
    assert str(path) in str(err.value)
    assert str(SCHEMA_VERSION + 1) in str(err.value)
    assert user_version(path) == SCHEMA_VERSION + 1
    with pytest.raises(StorageError):  # the failed open left no connection behind
        _ = store.db


def test_reopening_an_existing_database_does_not_run_migrations_again(tmp_path, monkeypatch):
    path = tmp_path / "messages.db"

    async def first(s):
        row = await s.new_session("chat-1", "/p", "default")
        await s.add_message(MessageRow(row.id, "user", "kept"))
        return row

    row = run_with(SqliteStore(path), first)
    # Were any migration to run again, this one would fail the open.
    monkeypatch.setattr(storage, "MIGRATIONS", ("THIS IS NOT SQL",) * SCHEMA_VERSION)

    async def second(s):
        return await s.current_session("chat-1"), await s.messages(row.id)

    current, msgs = run_with(SqliteStore(path), second)
    assert current == row
    assert [m.text for m in msgs] == ["kept"]
    assert user_version(path) == SCHEMA_VERSION


def test_a_failed_migration_leaves_the_previous_version_intact(tmp_path, monkeypatch):
    path = tmp_path / "messages.db"
    run_with(SqliteStore(path), lambda s: s.new_session("chat-1", "/p", "default"))
    broken = "CREATE TABLE half_done (a); CREATE TABLE broken (;"
    monkeypatch.setattr(storage, "MIGRATIONS", (*storage.MIGRATIONS, broken))
    monkeypatch.setattr(storage, "SCHEMA_VERSION", SCHEMA_VERSION + 1)

    with pytest.raises(sqlite3.Error):
        asyncio.run(SqliteStore(path).open())
    assert user_version(path) == SCHEMA_VERSION
    with sqlite3.connect(path) as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert db.execute("SELECT chat FROM sessions").fetchall() == [("chat-1",)]
    assert "half_done" not in tables


def test_open_store_picks_the_backend(tmp_path):
    assert isinstance(open_store("sqlite", tmp_path / "m.db"), SqliteStore)
    assert isinstance(open_store("memory", tmp_path / "m.db"), MemoryStore)
    with pytest.raises(StorageError, match="postgres"):
        open_store("postgres", tmp_path / "m.db")
