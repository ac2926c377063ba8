"""The audit log: every record chained to the one before, every edit, deletion or cut named
by `verify` at its line; a record that cannot be written is an error, never a silent loss."""

from __future__ import annotations

import itertools
import json
import multiprocessing
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from leashd.cli import main
from leashd.gate.audit import (
    AuditError,
    AuditLog,
    canonical,
    capped_input,
    record_hash,
    records,
    verify,
)


def write(path: Path, n: int, **extra) -> list[dict]:
    with AuditLog(path, fsync="never") as log:
        return [
            log.append("decision", {"tool": "Bash", "decision": "allow", "n": i, **extra})
            for i in range(n)
        ]


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def test_records_are_numbered_and_chained(tmp_path):
    log = tmp_path / "audit.jsonl"
    written = write(log, 5)
    assert [r["seq"] for r in written] == [1, 2, 3, 4, 5]
    assert all(b["prev"] == a["hash"] for a, b in itertools.pairwise(written))
    assert list(records(log)) == written
    v = verify(log)
    assert v.ok and v.records == 5, v


def test_a_record_s_fields_never_replace_the_chain_s(tmp_path):
    log = tmp_path / "audit.jsonl"
    with AuditLog(log) as audit:
        audit.append("decision", {"seq": 99, "prev": "x", "hash": "y", "kind": "forged"})
        second = audit.append("decision", {"tool": "Read"})
    assert second["seq"] == 2 and verify(log).ok
    assert next(records(log))["kind"] == "decision"


def test_a_reopened_log_continues_the_chain(tmp_path):
    log = tmp_path / "audit.jsonl"
    write(log, 3)
    again = write(log, 2)
    assert [r["seq"] for r in again] == [4, 5]
    assert verify(log).ok


def _edit(rows: list[bytes]) -> None:
    rows[2] = rows[2].replace(b'"decision":"allow"', b'"decision":"deny"')


def _edit_and_rehash(rows: list[bytes]) -> None:
    # a forger who recomputes the edited record's own hash still breaks the next link
    rec = json.loads(rows[1])
    rec["decision"] = "deny"
    rec["hash"] = record_hash(rec)
    rows[1] = canonical(rec) + b"\n"


def _delete(rows: list[bytes]) -> None:
    del rows[2]


@pytest.mark.parametrize(
    ("tamper", "line", "message"),
    [
        (_edit, 3, "record 3 was edited"),
        (_edit_and_rehash, 3, "chain breaks"),
        (_delete, 3, "expected record 3, found 4"),
    ],
)
def test_tampering_is_named_by_its_line(tmp_path, tamper, line, message):
    log = tmp_path / "audit.jsonl"
    write(log, 5)
    rows = lines(log)
    tamper(rows)
    log.write_bytes(b"".join(rows))
    v = verify(log)
    assert not v.ok and v.line == line and message in v.message, v


def test_a_log_cut_short_is_caught_by_the_head(tmp_path):
    log = tmp_path / "audit.jsonl"
    write(log, 5)
    log.write_bytes(b"".join(lines(log)[:3]))  # the last two records gone, whole lines
    v = verify(log)
    assert not v.ok and "records 4..5 are missing" in v.message
    log.write_bytes(log.read_bytes()[:-10])  # and cut inside a record
    v = verify(log)
    assert not v.ok and v.line == 3 and "ends inside a record" in v.message


def test_a_damaged_log_is_not_continued(tmp_path):
    log = tmp_path / "audit.jsonl"
    write(log, 2)
    log.write_bytes(log.read_bytes().replace(b'"n":1', b'"n":7'))
    with AuditLog(log) as audit, pytest.raises(AuditError, match="edited"):
        audit.append("decision", {"tool": "Read"})
    assert len(lines(log)) == 2  # nothing appended after the damage


@settings(max_examples=80, deadline=None)
@given(st.data())
def test_changing_any_byte_of_any_record_is_detected(tmp_path_factory, data):
    log = tmp_path_factory.mktemp("a") / "audit.jsonl"
    write(log, 6, input={"command": "echo caf\u00e9 && ls"})
    raw = bytearray(log.read_bytes())
    i = data.draw(st.integers(0, len(raw) - 1))
    new = data.draw(st.integers(0, 255).filter(lambda b: b != raw[i]))
    raw[i] = new
    log.write_bytes(bytes(raw))
    v = verify(log)
    assert not v.ok, (i, chr(new))


def _append_many(path: str, n: int, who: str) -> None:
    with AuditLog(path, fsync="never") as log:
        for i in range(n):
            log.append("decision", {"who": who, "i": i})


def test_threads_and_processes_lose_and_duplicate_nothing(tmp_path):
    log = tmp_path / "audit.jsonl"
    shared = AuditLog(log, fsync="never")

    def run(who: str) -> None:
        for i in range(300):
            shared.append("decision", {"who": who, "i": i})

    threads = [threading.Thread(target=run, args=(w,)) for w in ("t1", "t2", "t3", "t4")]
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(str(log), 300, f"p{k}")) for k in (1, 2)]
    for t in (*threads, *procs):
        t.start()
    for t in (*threads, *procs):
        t.join()
    shared.close()
    assert all(p.exitcode == 0 for p in procs)
    got = list(records(log))
    assert [r["seq"] for r in got] == list(range(1, 1801))
    assert sorted((r["who"], r["i"]) for r in got) == sorted(
        (w, i) for w in ("t1", "t2", "t3", "t4", "p1", "p2") for i in range(300)
    )
    assert verify(log).ok


def _write_past_a_size_limit(path: str, queue) -> None:  # type: ignore[no-untyped-def]
    import resource
    import signal

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    log = AuditLog(path, fsync="never")
    log.append("decision", {"i": 0})
    size = Path(path).stat().st_size
    resource.setrlimit(resource.RLIMIT_FSIZE, (size + 100, size + 100))
    try:
        log.append("decision", {"i": 1, "pad": "x" * 500})
        queue.put("written")
    except AuditError as exc:
        queue.put(f"AuditError: {exc}")


def test_a_record_that_cannot_be_written_raises(tmp_path):
    # a real write failure: the file may not grow past a limit (as on a full disk)
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    p = ctx.Process(target=_write_past_a_size_limit, args=(str(tmp_path / "a.jsonl"), queue))
    p.start()
    p.join()
    assert queue.get(timeout=5).startswith("AuditError")
    v = verify(tmp_path / "a.jsonl")
    assert v.records == 1  # the first record stands; the second was never half-counted
    with pytest.raises(AuditError, match="cannot open"):
        AuditLog(tmp_path / "a.jsonl" / "inside-a-file.jsonl")


def test_a_large_input_is_kept_in_part_with_the_hash_of_the_whole():
    small = capped_input({"command": "ls"})
    assert small["input"] == {"command": "ls"} and len(small["input_sha256"]) == 64
    big = capped_input({"content": "x" * 10_000}, cap=100)
    assert "input" not in big and len(big["input_excerpt"]) == 100
    assert big["input_chars"] > 10_000
    assert big["input_sha256"] != capped_input({"content": "x" * 9_999}, cap=100)["input_sha256"]
    assert capped_input({"s": "\ud800"})["input"] == {"s": "\ud800"}  # JSON allows it


def test_audit_commands(tmp_path):
    log = tmp_path / "audit.jsonl"
    with AuditLog(log) as audit:
        audit.append("decision", {"session": "s1", "tool": "Bash", "decision": "allow",
                                  "rule": "read-only-git", "reason": "Reads"})  # fmt: skip
        audit.append("decision", {"session": "s2", "tool": "Read", "decision": "deny",
                                  "rule": "credential-files", "reason": "Secrets"})  # fmt: skip
        audit.append("approval", {"session": "s1", "event": "approved", "who": "42"})
    runner = CliRunner()
    ok = runner.invoke(main, ["audit", "verify", str(log)])
    assert ok.exit_code == 0 and "3 records, chain intact" in ok.output
    found = runner.invoke(main, ["audit", "search", str(log), "--decision", "deny", "--json"])
    assert found.exit_code == 0
    assert [json.loads(x)["rule"] for x in found.output.splitlines()] == ["credential-files"]
    by_session = runner.invoke(main, ["audit", "search", str(log), "--session", "s1"])
    assert by_session.output.count("\n") == 2 and "approved" in by_session.output
    tail = runner.invoke(main, ["audit", "tail", str(log), "-n", "1", "--json"])
    assert json.loads(tail.output)["event"] == "approved"

    log.write_bytes(log.read_bytes().replace(b'"decision":"deny"', b'"decision":"allow"'))
    bad = runner.invoke(main, ["audit", "verify", str(log)])
    assert bad.exit_code == 1 and f"{log}:2: record 2 was edited" in bad.output
