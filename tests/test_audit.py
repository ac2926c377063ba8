"""The audit log: every record chained to the one before, every edit, deletion or cut named
by `verify` at its line; a record that cannot be written is an error, never a silent loss."""

from __future__ import annotations

import itertools
import json
import multiprocessing
import os
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from leashd.cli import main
from leashd.gate.audit import (
    AuditDamaged,
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


def test_audit_commands(tmp_path, home):
    log = tmp_path / "audit.jsonl"
    with AuditLog(log) as audit:
        audit.append("decision", {"session": "s1", "tool": "Bash", "decision": "allow",
                                  "rule": "read-only-git", "reason": "Reads"})  # fmt: skip
        audit.append("decision", {"session": "s2", "tool": "Read", "decision": "deny",
                                  "rule": "credential-files", "reason": "Secrets"})  # fmt: skip
        audit.append("approval", {"session": "s1", "event": "approved", "who": "42"})
        audit.append("decision", {"session": "s1", "tool": "Bash", "rule": "pushes",
                                  "decision": "require_approval", "reason": "Asks"})  # fmt: skip
    runner = CliRunner()
    ok = runner.invoke(main, ["audit", "verify", str(log)])
    assert ok.exit_code == 0 and "4 records, chain intact" in ok.output
    for word in ("ask", "require_approval"):  # the language's word and the record's
        asked = runner.invoke(main, ["audit", "search", str(log), "--decision", word, "--json"])
        assert [json.loads(x)["rule"] for x in asked.output.splitlines()] == ["pushes"]
    found = runner.invoke(main, ["audit", "search", str(log), "--decision", "deny", "--json"])
    assert found.exit_code == 0
    assert [json.loads(x)["rule"] for x in found.output.splitlines()] == ["credential-files"]
    by_session = runner.invoke(main, ["audit", "search", str(log), "--session", "s1"])
    assert by_session.output.count("\n") == 3 and "approved" in by_session.output
    tail = runner.invoke(main, ["audit", "tail", str(log), "-n", "2", "--json"])
    assert json.loads(tail.output.splitlines()[0])["event"] == "approved"

    log.write_bytes(log.read_bytes().replace(b'"decision":"deny"', b'"decision":"allow"'))
    bad = runner.invoke(main, ["audit", "verify", str(log)])
    assert bad.exit_code == 1 and f"{log}:2: record 2 was edited" in bad.output


# --- the writer continues from the head, and keeps the evidence (issue 18, item 2) -------------


def _cut(log: Path, keep_lines: int) -> None:
    log.write_bytes(b"".join(lines(log)[:keep_lines]))


@pytest.mark.parametrize(("keep", "gone"), [(3, "cut short"), (0, "emptied")])
def test_a_log_shorter_than_its_head_is_never_continued(tmp_path, keep, gone):
    log = tmp_path / "audit.jsonl"
    write(log, 5)
    _cut(log, keep)
    before = log.read_bytes()
    with AuditLog(log) as audit, pytest.raises(AuditDamaged, match=gone) as err:
        audit.append("decision", {"tool": "Read"})
    assert f"records {keep + 1}..5 are missing" in str(err.value)
    assert "leashd audit repair" in str(err.value)
    assert log.read_bytes() == before  # no fresh chain started
    assert not verify(log).ok


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_for_any_cut_the_writer_refuses_and_verify_fails(tmp_path_factory, data):
    log = tmp_path_factory.mktemp("cut") / "audit.jsonl"
    write(log, 4, input={"command": "ls -la"})
    raw = log.read_bytes()
    cut = data.draw(st.integers(0, len(raw) - 1))
    log.write_bytes(raw[:cut])
    with AuditLog(log) as audit, pytest.raises(AuditDamaged):
        audit.append("decision", {"tool": "Read"})
    assert log.read_bytes() == raw[:cut]
    assert not verify(log).ok


def test_repair_seals_the_damage_and_verify_reports_it_for_good(tmp_path):
    log = tmp_path / "audit.jsonl"
    write(log, 5)
    _cut(log, 3)
    with AuditLog(log) as audit:
        [seal] = audit.repair()
        assert seal["kind"] == "seal" and seal["missing"] == [4, 5] and seal["seq"] == 6
        after = audit.append("decision", {"tool": "Read"})
    assert after["seq"] == 7 and after["prev"] == seal["hash"]
    v = verify(log)
    assert v.ok and v.status == "intact", v
    assert "sealed damage" in v.message
    assert any("records 4..5 are missing" in n for n in v.notices), v.notices
    with AuditLog(log) as audit:
        assert audit.repair() == []  # nothing more to seal


def test_an_edited_record_is_refused_at_start_then_sealed_with_its_bytes_kept(tmp_path):
    log = tmp_path / "audit.jsonl"
    write(log, 5)
    rows = lines(log)
    rows[2] = rows[2].replace(b'"decision":"allow"', b'"decision":"deny"')
    log.write_bytes(b"".join(rows))
    with AuditLog(log) as audit:
        # the daemon's check at start reads the whole log (the writer alone checks the end)
        with pytest.raises(AuditDamaged, match="line 3: record 3 was edited"):
            audit.check()
        [seal] = audit.repair()
        audit.check()
        audit.append("decision", {"tool": "Read"})
    assert seal["from_line"] == 3 and seal["offset"] == len(b"".join(rows[:2]))
    kept = log.read_bytes()[seal["offset"] : seal["offset"] + seal["length"]]
    assert kept == b"".join(rows[2:])  # the evidence stays where it was
    v = verify(log)
    assert v.ok and any("line 3: sealed damage: record 3 was edited" in n for n in v.notices)


def test_a_torn_last_record_is_sealed_on_the_next_append_not_dropped(tmp_path):
    log = tmp_path / "audit.jsonl"
    write(log, 3)
    torn = b'{"decision":"allow","input":{"command":"rm -rf bui'
    with open(log, "ab") as f:
        f.write(torn)  # what kill -9 mid-append leaves: part of a record, head not moved
    assert not verify(log).ok
    with AuditLog(log) as audit:
        after = audit.append("decision", {"tool": "Read"})
    got = list(records(log))
    seal = next(r for r in got if r.get("kind") == "seal")
    assert seal["length"] == len(torn) + 1 and "torn" in seal["damage"]
    assert torn in log.read_bytes()  # kept
    assert after["seq"] == seal["seq"] + 1
    v = verify(log)
    assert v.ok and any("sealed damage" in n and "torn" in n for n in v.notices), v


def test_a_record_past_the_head_is_voided_not_left_as_allow(tmp_path):
    # a crash after the record was written but before the head named it: the append never
    # returned, so the allow it records never took effect
    log = tmp_path / "audit.jsonl"
    write(log, 2)
    head = Path(str(log) + ".head")
    saved = head.read_bytes()
    write(log, 1)
    head.write_bytes(saved)
    v = verify(log)
    assert v.ok and any("3 were written but not yet confirmed" in n for n in v.notices), v
    with AuditLog(log) as audit:
        audit.append("decision", {"tool": "Read"})
    void = next(r for r in records(log) if r.get("kind") == "void")
    assert void["voids"] == [3] and void["seq"] == 4
    v = verify(log)
    assert v.ok and any("records 3 did not take effect" in n for n in v.notices), v


def test_a_record_that_is_written_but_not_confirmed_raises_and_is_voided_next(tmp_path):
    log = tmp_path / "audit.jsonl"
    audit = AuditLog(log)
    audit.append("decision", {"n": 0})
    # the head file's writes fail with ENOSPC from here on (a real device that is full)
    full = os.open("/dev/full", os.O_WRONLY)
    saved = os.dup(audit._head_fd)
    os.dup2(full, audit._head_fd)
    with pytest.raises(AuditError) as err:
        audit.append("decision", {"tool": "Bash", "decision": "allow"})
    assert err.value.written is not None and err.value.written["seq"] == 2
    os.dup2(saved, audit._head_fd)
    audit.append("decision", {"n": 3})
    audit.close()
    got = list(records(log))
    assert [r.get("kind") for r in got] == ["decision", "decision", "void", "decision"]
    assert got[2]["voids"] == [2]
    assert verify(log).ok


def test_a_short_write_is_cut_back_so_the_log_is_not_stuck(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    path = tmp_path / "a.jsonl"
    p = ctx.Process(target=_write_past_a_size_limit, args=(str(path), queue))
    p.start()
    p.join()
    assert queue.get(timeout=5).startswith("AuditError")
    assert path.read_bytes().endswith(b"\n")  # no part of the failed record left behind
    with AuditLog(path) as audit:
        assert audit.append("decision", {"i": 2})["seq"] == 2
    assert verify(path).ok


def test_the_log_never_goes_back_under_a_running_writer(tmp_path):
    log = tmp_path / "audit.jsonl"
    with AuditLog(log) as audit:
        for i in range(4):
            audit.append("decision", {"i": i})
        rows = lines(log)
        log.write_bytes(b"".join(rows[:2]))  # cut, and the head put back to match
        Path(str(log) + ".head").write_bytes(
            (json.dumps({"seq": 2, "hash": json.loads(rows[1])["hash"]}) + "\n").encode()
        )
        with pytest.raises(AuditDamaged, match="went back from record 4 to 2"):
            audit.append("decision", {"i": 9})


# --- the keyed chain ---------------------------------------------------------------------------

KEY = b"k" * 32


def _delete_and_rehash(log: Path, key: bytes | None) -> None:
    """What a forger does: delete record 3, then renumber and re-link the rest."""
    recs = [json.loads(x) for x in lines(log)]
    del recs[2]
    prev = "0" * 64
    for i, r in enumerate(recs, 1):
        r["seq"], r["prev"] = i, prev
        r["hash"] = record_hash(r, key)
        prev = r["hash"]
    log.write_bytes(b"".join(canonical(r) + b"\n" for r in recs))
    Path(str(log) + ".head").write_bytes(
        (json.dumps({"seq": len(recs), "hash": prev}) + "\n").encode()
    )


def test_an_unkeyed_chain_does_not_catch_a_forger_who_recomputes_the_hashes(tmp_path):
    # what the unkeyed chain does not prove (docs/audit.md): this is why the key exists
    log = tmp_path / "audit.jsonl"
    write(log, 5)
    _delete_and_rehash(log, None)
    assert verify(log).ok


def test_a_keyed_chain_catches_a_deleted_record_with_recomputed_hashes(tmp_path):
    log = tmp_path / "audit.jsonl"
    with AuditLog(log, key=KEY) as audit:
        for i in range(5):
            audit.append("decision", {"i": i})
    assert verify(log, key=KEY).ok
    _delete_and_rehash(log, None)  # plain SHA-256: the forger has no key
    v = verify(log, key=KEY)
    assert not v.ok and v.line == 1 and "HMAC does not match" in v.message, v
    _delete_and_rehash(log, b"a guess at the key, 32 bytes...")
    v = verify(log, key=KEY)
    assert not v.ok and v.line == 1 and "HMAC does not match" in v.message, v


def test_a_keyed_log_verified_without_the_key_says_so(tmp_path):
    log = tmp_path / "audit.jsonl"
    with AuditLog(log, key=KEY) as audit:
        audit.append("decision", {"i": 0})
    v = verify(log)
    assert not v.ok and v.status == "unchecked" and "not checked: no key" in v.message
    v = verify(log, key=b"another key, also 32 bytes long!")
    assert not v.ok and v.status == "damaged" and "written with another key" in v.message


def test_a_keyed_log_is_continued_only_with_its_key(tmp_path):
    log = tmp_path / "audit.jsonl"
    with AuditLog(log, key=KEY) as audit:
        audit.append("decision", {"i": 0})
    with AuditLog(log) as audit, pytest.raises(AuditError, match="is keyed"):
        audit.append("decision", {"i": 1})
    with AuditLog(log, key=b"x" * 32) as audit, pytest.raises(AuditError, match="another key"):
        audit.append("decision", {"i": 1})
    with AuditLog(log, key=KEY) as audit:
        _cut(log, 0)
        with pytest.raises(AuditDamaged):
            audit.append("decision", {"i": 1})
    with AuditLog(log) as audit, pytest.raises(AuditError, match="keyed"):
        audit.repair()  # a seal without the key would be one more break


def test_a_key_set_on_an_old_log_proves_what_comes_after(tmp_path):
    log = tmp_path / "audit.jsonl"
    write(log, 2)
    with AuditLog(log, key=KEY) as audit:
        audit.append("decision", {"i": 2})
    v = verify(log, key=KEY)
    assert v.ok and any("first 2 records carry no HMAC" in n for n in v.notices), v
    rows = lines(log)  # a forger turns the keyed record into a plain one
    rec = json.loads(rows[2])
    del rec["key_id"]
    rec["hash"] = record_hash(rec)
    log.write_bytes(b"".join(rows[:2]) + canonical(rec) + b"\n")
    Path(str(log) + ".head").write_bytes(
        (json.dumps({"seq": 3, "hash": rec["hash"]}) + "\n").encode()
    )
    assert verify(log, key=KEY).ok  # no keyed record left: indistinguishable from an old log
    assert any("proves nothing" in n for n in verify(log, key=KEY).notices)


# --- the audit commands read the log the daemon writes (issue 18, item 3) ---------------------


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A leashd home of its own, and no variable naming another log."""
    h = tmp_path / "leashd-home"
    h.mkdir()
    monkeypatch.setenv("LEASHD_HOME", str(h))
    for name in ("LEASHD_AUDIT_LOG_PATH", "LEASHD_AUDIT_KEY", "LEASHD_AUDIT_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no project .env
    return h


def test_audit_commands_follow_leashd_home_and_config_yaml(home, tmp_path):
    runner = CliRunner()
    write(home / "audit.jsonl", 2)  # where the daemon writes with LEASHD_HOME alone
    out = runner.invoke(main, ["audit", "verify"])
    assert out.exit_code == 0 and f"{home / 'audit.jsonl'}: 2 records" in out.output, out.output
    elsewhere = tmp_path / "logs" / "gate.jsonl"  # what a systemd unit's config.yaml may say
    (home / "config.yaml").write_text(f"audit_log_path: {elsewhere}\n")
    write(elsewhere, 3)
    out = runner.invoke(main, ["audit", "verify"])
    assert out.exit_code == 0 and f"{elsewhere}: 3 records" in out.output, out.output
    tail = runner.invoke(main, ["audit", "tail", "-n", "1", "--json"])
    assert json.loads(tail.output)["seq"] == 3
    found = runner.invoke(main, ["audit", "search", "--json"])
    assert len(found.output.splitlines()) == 3


def test_tail_and_search_on_a_new_install_say_there_is_no_log_yet(home):
    runner = CliRunner()
    for args in (["tail"], ["search", "--tool", "Bash"], ["tail", "-f"]):
        out = runner.invoke(main, ["audit", *args])
        assert out.exit_code == 0 and out.exception is None, out.output
        assert f"no audit log yet at {home / 'audit.jsonl'}" in out.output
    out = runner.invoke(main, ["audit", "verify"])
    assert out.exit_code == 1 and "there is no audit log at" in out.output


@pytest.mark.parametrize("bad", ["2026-13-45", "yesterday", "2026-11-22T25:00", "22/11/2026"])
def test_since_and_until_refuse_what_is_not_a_date(home, bad):
    write(home / "audit.jsonl", 1)
    for option in ("--since", "--until"):
        out = CliRunner().invoke(main, ["audit", "search", option, bad])
        assert out.exit_code == 2 and "is not a date or time" in out.output, out.output


def test_since_and_until_bound_records_by_their_time(home):
    log = home / "audit.jsonl"
    write(log, 3)
    rows = [json.loads(x) for x in lines(log)]
    for r, when in zip(rows, ["2026-11-21T23:59:59.000000Z", "2026-11-22T10:00:00.000000Z",
                              "2026-11-23T00:00:00.000000Z"], strict=True):  # fmt: skip
        r["time"] = when
    log.write_bytes(b"".join(canonical(r) + b"\n" for r in rows))  # times only: verify aside

    def seqs(*args: str) -> list[int]:
        out = CliRunner().invoke(main, ["audit", "search", "--json", *args])
        assert out.exit_code == 0, out.output
        return [json.loads(x)["seq"] for x in out.output.splitlines()]

    assert seqs("--since", "2026-11-22", "--until", "2026-11-22") == [2]
    assert seqs("--since", "2026-11-22T10:00") == [2, 3]
    assert seqs("--until", "2026-11-22 09:59:59") == [1]
    assert seqs("--since", "2026-11-22T11:00+02:00", "--until", "2026-11-22T12:00+02:00") == [2]


def test_verify_and_repair_from_the_command_line(home, tmp_path):
    runner = CliRunner()
    log = home / "audit.jsonl"
    write(log, 5)
    _cut(log, 3)
    bad = runner.invoke(main, ["audit", "verify"])
    assert bad.exit_code == 1 and "records 4..5 are missing" in bad.output
    fixed = runner.invoke(main, ["audit", "repair"])
    assert fixed.exit_code == 0 and "sealed: records 4..5 are missing" in fixed.output
    ok = runner.invoke(main, ["audit", "verify"])
    assert ok.exit_code == 0, ok.output
    assert "1 sealed damage" in ok.output and "notice: line 4: sealed damage" in ok.output

    keyed = tmp_path / "keyed.jsonl"
    key_file = tmp_path / "audit.key"
    made = runner.invoke(main, ["audit", "keygen", str(key_file)])
    assert made.exit_code == 0 and oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert runner.invoke(main, ["audit", "keygen", str(key_file)]).exit_code == 1  # kept
    with AuditLog(keyed, key=key_file.read_bytes().strip()) as audit:
        audit.append("decision", {"i": 0})
    without = runner.invoke(main, ["audit", "verify", str(keyed)])
    assert without.exit_code == 3 and "not checked: no key" in without.output
    with_key = runner.invoke(main, ["audit", "verify", str(keyed), "--key-file", str(key_file)])
    assert with_key.exit_code == 0 and "HMAC chain intact" in with_key.output
    (home / "config.yaml").write_text(f"audit_key_file: {key_file}\n")
    assert runner.invoke(main, ["audit", "verify", str(keyed)]).exit_code == 0
    key_file.chmod(0o644)
    loose = runner.invoke(main, ["audit", "verify", str(keyed)])
    assert loose.exit_code == 2 and "chmod 600" in loose.output


def test_the_daemon_keys_its_log_and_keeps_the_key_from_the_agent_s_environment(home, monkeypatch):
    from leashd.daemon.app import open_audit
    from leashd.daemon.config import load_config

    secret = "a key of thirty-two bytes, or so"
    monkeypatch.setenv("LEASHD_AUDIT_KEY", secret)
    audit = open_audit(load_config().settings)
    try:
        assert "LEASHD_AUDIT_KEY" not in os.environ  # the agent's CLI inherits os.environ
        audit.append("decision", {"i": 0})
    finally:
        audit.close()
    assert verify(home / "audit.jsonl", key=secret.encode()).message.endswith("HMAC chain intact")
    assert verify(home / "audit.jsonl").status == "unchecked"
    monkeypatch.setenv("LEASHD_AUDIT_KEY", "short")
    with pytest.raises(AuditError, match="at least 16"):
        open_audit(load_config().settings)


# --- the head file rolled back (review of issue 18, item 2) ------------------------------------


def _head_naming(log: Path, seq: int, **extra: str) -> None:
    """What a forger without the key can write: a head naming record `seq` of the log (its seq
    and hash are in the log for anyone who can read it)."""
    rec = json.loads(lines(log)[seq - 1])
    Path(str(log) + ".head").write_bytes(
        (json.dumps({"seq": seq, "hash": rec["hash"], **extra}) + "\n").encode()
    )


def test_a_head_rolled_back_over_real_records_is_damage_not_a_crash_to_void(tmp_path):
    # a writer under its lock leaves at most one record past the head (the one whose append
    # never returned): five past it were confirmed once, and must not be voided
    log = tmp_path / "audit.jsonl"
    write(log, 6)
    _head_naming(log, 1)
    before = log.read_bytes()
    with AuditLog(log) as audit:
        with pytest.raises(AuditDamaged, match=r"5 records .* follow the one its head file names"):
            audit.check()
        with pytest.raises(AuditDamaged):
            audit.append("decision", {"tool": "Read"})
    assert log.read_bytes() == before  # no void, no record: nothing appended
    v = verify(log)
    assert not v.ok and v.status == "damaged" and "5 records follow" in v.message, v
    out = CliRunner().invoke(main, ["audit", "verify", str(log)])
    assert out.exit_code == 1 and "chain intact" not in out.output, out.output
    with AuditLog(log) as audit:
        [seal] = audit.repair()
        assert seal["seq"] == 7 and seal["prev"] == json.loads(lines(log)[5])["hash"]
        audit.check()
        assert audit.append("decision", {"tool": "Read"})["seq"] == 8
    assert not any(r.get("kind") == "void" for r in records(log))  # records 2..6 stand
    v = verify(log)
    assert v.ok and any("sealed damage: 5 records follow" in n for n in v.notices), v


def test_an_emptied_head_file_is_not_read_as_nothing_confirmed(tmp_path):
    log = tmp_path / "audit.jsonl"
    write(log, 3)
    Path(str(log) + ".head").write_bytes(b"")
    before = log.read_bytes()
    with AuditLog(log) as audit, pytest.raises(AuditDamaged, match="3 records"):
        audit.check()
    assert log.read_bytes() == before
    assert not verify(log).ok


def test_a_head_rolled_back_over_a_void_is_damage(tmp_path):
    # one record that is not a void past the head, but the void before it names a record the
    # head says was confirmed: no crash leaves that, so record 4 is not voided
    log = tmp_path / "audit.jsonl"
    write(log, 2)
    with AuditLog(log, fsync="never") as audit:
        audit.append("void", {"voids": [1], "reason": "written, but the append never returned"})
        audit.append("decision", {"i": 3})
    _head_naming(log, 2)
    before = log.read_bytes()
    with AuditLog(log) as audit, pytest.raises(AuditDamaged, match="voids records at or before"):
        audit.append("decision", {"i": 4})
    assert log.read_bytes() == before


def test_a_void_naming_several_records_is_damage(tmp_path):
    # what a writer of an earlier version left after a rolled-back head (void [2..6]); no
    # writer voids more than the one record its crash can leave
    log = tmp_path / "audit.jsonl"
    write(log, 3)
    with AuditLog(log, fsync="never") as audit:
        audit.append("void", {"voids": [2, 3], "reason": "written, but the append never returned"})
    v = verify(log)
    assert not v.ok and v.line == 4 and "voids 2 records" in v.message, v


def test_a_keyed_head_cannot_be_rolled_back_without_the_key(tmp_path):
    log = tmp_path / "audit.jsonl"
    with AuditLog(log, key=KEY) as audit:
        for i in range(3):
            audit.append("decision", {"i": i})
    head = Path(str(log) + ".head")
    assert b'"mac"' in head.read_bytes()
    kid = json.loads(lines(log)[0])["key_id"]
    # back by one record: with an unkeyed head this is what a crash leaves, so record 3 would
    # be voided; a head the forger wrote has no valid MAC
    for forged in ({"key_id": kid}, {"key_id": kid, "mac": "0" * 64}, {}):
        _head_naming(log, 2, **forged)
        before = log.read_bytes()
        with AuditLog(log, key=KEY) as audit, pytest.raises(AuditDamaged, match="head file"):
            audit.append("decision", {"i": 9})
        assert log.read_bytes() == before
        v = verify(log, key=KEY)
        assert not v.ok and v.status == "damaged" and "head file" in v.message, (forged, v)


def test_an_unkeyed_head_is_still_read_where_no_key_is_set(tmp_path):
    log = tmp_path / "audit.jsonl"
    write(log, 2)
    _head_naming(log, 2)  # the head file as earlier versions wrote it
    with AuditLog(log) as audit:
        assert audit.append("decision", {"i": 2})["seq"] == 3
    assert verify(log).ok


def test_a_replayed_copy_of_a_keyed_head_voids_one_record(tmp_path):
    # what the head's MAC does not close (docs/audit.md): a copy of an earlier head file, put
    # back, is a valid head; one record past it reads as a crash and is voided
    log = tmp_path / "audit.jsonl"
    head = Path(str(log) + ".head")
    with AuditLog(log, key=KEY) as audit:
        audit.append("decision", {"i": 0})
        saved = head.read_bytes()
        audit.append("decision", {"i": 1})
        audit.append("decision", {"i": 2})
    head.write_bytes(saved)  # back by two: refused
    with AuditLog(log, key=KEY) as audit, pytest.raises(AuditDamaged, match="2 records"):
        audit.append("decision", {"i": 3})
    _cut(log, 2)
    head.write_bytes(saved)  # the last record deleted too, and back by one: a crash to the log
    with AuditLog(log, key=KEY) as audit:
        audit.append("decision", {"i": 3})
    assert [r.get("voids") for r in records(log)][2] == [2]
    assert verify(log, key=KEY).ok


# --- the writer writes to the file its path names (review of issue 18, item 2) -----------------


def _unlink_both(log: Path) -> None:
    log.unlink()
    Path(str(log) + ".head").unlink()


def _move_aside(log: Path) -> None:
    log.rename(log.with_suffix(".old"))  # and a new, empty log where it was
    log.touch()


def _unlink_head(log: Path) -> None:
    Path(str(log) + ".head").unlink()


def _replace_head(log: Path) -> None:
    head = Path(str(log) + ".head")
    new = head.with_suffix(".new")
    new.write_bytes(head.read_bytes())
    new.replace(head)


@pytest.mark.parametrize("gone", [_unlink_both, _move_aside, _unlink_head, _replace_head])
def test_a_writer_refuses_to_append_to_a_log_no_longer_at_its_path(tmp_path, gone):
    log = tmp_path / "audit.jsonl"
    with AuditLog(log) as audit:
        audit.append("decision", {"i": 0})
        held = os.open(log, os.O_RDONLY)  # the file the writer holds, whatever its path says
        size = os.fstat(held).st_size
        try:
            gone(log)
            for _ in range(3):  # refused each time: the gate denies every call
                with pytest.raises(AuditError, match="deleted or replaced"):
                    audit.append("decision", {"tool": "Bash", "decision": "allow"})
            assert os.fstat(held).st_size == size  # nothing went into the file it holds
        finally:
            os.close(held)
    if gone is _unlink_both:
        assert verify(log).status == "missing"
    else:  # and nothing into the file the path names now
        assert [r["seq"] for r in records(log)] in ([], [1])
