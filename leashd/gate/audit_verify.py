"""Checking an audit log: the chain, the head file, the key, and the damage that was sealed.

The walk reads the log line by line. A line that does not hold (not a record, edited, out of
sequence, not linked to the one before, written with another key) is damage, unless a `seal`
record further on names it: `leashd audit repair` (or the writer, for a record torn by a crash)
seals damage by appending a record that holds the byte offset and length of the damaged part
and the SHA-256 of its bytes, which stay where they were. Verification goes on after the seal,
whose `prev` is the last good record before the damage; the damage is reported as a notice,
for as long as the log exists.

Two other record kinds explain themselves: `void` names the record that was written but whose
append never returned (a crash, a failed fsync), so what it says never took effect; and a
`seal` of length 0 records a discrepancy at the end (records missing, a head file that names
another record) without covering any bytes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal

from leashd.gate.audit_chain import (
    GENESIS,
    Head,
    HeadError,
    canonical,
    head_mac_holds,
    head_path,
    key_id,
    parse_head,
    record_hash,
    same_hash,
)
from leashd.plural import plural

Status = Literal["intact", "unchecked", "damaged", "missing", "unreadable"]
# Records past the head that a crash can explain: a writer holds its lock from the write to
# the head, and puts right what the last append left before its own, so one at most (voids of
# it aside). More means the head was rolled back or emptied: damage, never something to void.
MAX_UNCONFIRMED = 1


@dataclass(frozen=True)
class Verdict:
    ok: bool
    records: int
    message: str
    line: int | None = None  # the first bad line (1-based)
    status: Status = "intact"
    notices: tuple[str, ...] = ()
    # Where the damage starts and the last good record before it: what a seal needs.
    offset: int | None = None
    prev_seq: int = 0
    prev_hash: str = GENESIS
    max_seq: int = 0  # the highest seq seen anywhere (a seal continues past it)
    size: int = 0  # bytes of the log when it was read
    head: Head | None = None  # what the head file said, read before the log
    key_ids: tuple[str, ...] = ()  # the keys the records name


@dataclass
class _Walk:
    key: bytes | None
    head: Head | None = None
    prev: str = GENESIS
    seq: int = 0
    lines: int = 0
    max_seq: int = 0
    keyed: int = 0
    unchecked: int = 0
    unkeyed_before_keyed: int = 0
    head_hash: str | None = None  # the hash of the record the head names, when seen
    head_keyed: bool = False  # whether that record is keyed (then so must the head be)
    voided: set[int] = field(default_factory=set)
    voids_at: set[int] = field(default_factory=set)  # the seqs of the void records
    key_ids: dict[str, None] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)


def verify(path: str | Path, key: bytes | None = None) -> Verdict:
    """Check the chain of the log at `path` against its head file (and, with `key`, every
    keyed record's HMAC). The first line that does not hold, and is not sealed, is named."""
    path = Path(path)
    hp = Path(head_path(path))
    try:
        head_raw: bytes | None = hp.read_bytes()
    except FileNotFoundError:
        head_raw = None
    except OSError as exc:
        return Verdict(False, 0, f"cannot read {hp}: {exc.strerror}", status="unreadable")
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below, after the walk
    except FileNotFoundError:
        if head_raw:
            return Verdict(False, 0, "the log is gone, but its head file is there: it was "
                           "deleted", status="damaged", offset=0)  # fmt: skip
        return Verdict(False, 0, f"there is no audit log at {path} yet", status="missing")
    except OSError as exc:
        return Verdict(False, 0, f"cannot read {path}: {exc.strerror}", status="unreadable")
    head: Head | None = None
    head_problem = None
    try:
        head = parse_head(head_raw) if head_raw is not None else None
    except HeadError as exc:
        head_problem = str(exc)
    w = _Walk(key, head)
    if head is not None and head.key_id is not None:
        w.key_ids[head.key_id] = None  # keyed, even if no keyed record is left
    with f:
        bad = _walk(f, w)
        size = f.tell()
    common: dict[str, Any] = {
        "notices": tuple(w.notices), "max_seq": w.max_seq, "size": size, "head": head,
        "key_ids": tuple(w.key_ids),
    }  # fmt: skip
    if bad is not None:
        line, offset, problem = bad
        return Verdict(False, w.seq, problem, line, "damaged", offset=offset, prev_seq=w.seq,
                       prev_hash=w.prev, **common)  # fmt: skip
    at_end = {"offset": size, "prev_seq": w.seq, "prev_hash": w.prev, **common}
    # the end, against the head file
    if head_problem is not None:
        return Verdict(False, w.seq, head_problem, status="damaged", **at_end)
    if head_raw is None and w.seq > 0:
        return Verdict(False, w.seq, "there is no head file to check the end against: it "
                       "was deleted", status="damaged", **at_end)  # fmt: skip
    if head is not None and (problem := _head_problem(head, w)) is not None:
        return Verdict(False, w.seq, problem, status="damaged", **at_end)
    confirmed = head.seq if head is not None else 0
    if confirmed > w.seq:
        gone = "emptied" if w.lines == 0 else "cut short"
        what = (
            f"record {confirmed}" if confirmed == w.seq + 1 else f"records {w.seq + 1}..{confirmed}"
        )
        missing = f"{what} {'is' if confirmed == w.seq + 1 else 'are'} missing: the log was {gone}"
        return Verdict(False, w.seq, missing, w.lines + 1, "damaged", **at_end)
    if (
        head is not None
        and confirmed > 0
        and not (w.head_hash and same_hash(w.head_hash, head.hash))
    ):
        wrong = f"record {confirmed} is not the one the head file names"
        return Verdict(False, w.seq, wrong, None, "damaged", **at_end)
    past = [s for s in range(confirmed + 1, w.seq + 1) if s not in w.voided]
    if len(unconfirmed := [s for s in past if s not in w.voids_at]) > MAX_UNCONFIRMED:
        many = (f"{len(unconfirmed)} records follow the one the head file names (record "
                f"{confirmed}), and a crash leaves one at most: the head file was rolled back "
                "or emptied (or the machine lost power before it was written)")  # fmt: skip
        return Verdict(False, w.seq, many, None, "damaged", **at_end)
    notices = list(w.notices)
    if past:
        notices.append(
            f"records {_span(past)} were written but not yet confirmed (an append in "
            "progress, or one that never returned: it did not take effect)"
        )
    if key is not None and w.unkeyed_before_keyed:
        notices.append(
            f"the first {w.unkeyed_before_keyed} records carry no HMAC (written before the "
            "key was set): only the records after them are proven"
        )
    if key is not None and w.keyed == 0 and w.seq > 0:
        notices.append("no record carries an HMAC: the key proves nothing about this log")
    at_end["notices"] = tuple(notices)
    if w.unchecked:
        ids = ", ".join(w.key_ids)
        return Verdict(
            False,
            w.seq,
            f"{plural(w.seq, 'record')}, links intact, but {plural(w.unchecked, 'keyed record')}"
            f" (key {ids}) {'was' if w.unchecked == 1 else 'were'} not checked: no key was "
            "given (LEASHD_AUDIT_KEY or audit_key_file)",
            status="unchecked",
            **at_end,
        )
    how = "HMAC chain intact" if w.keyed and key is not None else "chain intact"
    sealed = sum(1 for n in notices if "sealed damage" in n)
    more = f"; {sealed} sealed damage (see the notices)" if sealed else ""
    return Verdict(
        True, w.seq, f"{plural(w.seq, 'record')}, {how}{more}", status="intact", **at_end
    )


def _head_problem(head: Head, w: _Walk) -> str | None:
    """Whether a head could have been written by the writer: a keyed head's MAC under the
    key, and a keyed last record named by a keyed head. Without the key, nothing is said here
    (the keyed records are reported unchecked)."""
    if w.key is None:
        return None
    if head.key_id is not None:
        if head.key_id != key_id(w.key):
            return f"the head file was written with another key (key {head.key_id})"
        if not head_mac_holds(head, w.key):
            return ("the head file was not written with the key (its MAC does not match): it "
                    "was rewritten or rolled back")  # fmt: skip
    elif w.head_keyed:
        return (
            f"the head file names keyed record {head.seq} but carries no MAC: it was "
            "written without the key"
        )
    return None


def _span(seqs: list[int]) -> str:
    return str(seqs[0]) if len(seqs) == 1 else f"{seqs[0]}..{seqs[-1]}"


def _lines(f: BinaryIO) -> Iterator[tuple[int, bytes]]:
    offset = 0
    for raw in f:
        yield offset, raw
        offset += len(raw)


def _walk(f: BinaryIO, w: _Walk) -> tuple[int, int, str] | None:
    """Walk every line; returns (line, offset, problem) of the first damage not sealed."""
    lines = _lines(f)
    for offset, raw in lines:
        w.lines += 1
        record, problem = _check(raw, offset, w)
        if problem is None:
            _advance(record, w)
            _notice(record, w)
            continue
        line = w.lines
        if not _find_seal(lines, offset, raw, w):
            return line, offset, problem
    return None


def _notice(record: dict[str, Any], w: _Walk) -> None:
    """What a void, or a seal of length 0, tells whoever reads the log."""
    kind = record.get("kind")
    if kind == "void" and isinstance(record.get("voids"), list):
        w.voids_at.add(record["seq"])
        voids = [s for s in record["voids"] if isinstance(s, int)]
        w.voided.update(voids)
        if voids:
            w.notices.append(
                f"line {w.lines}: records {', '.join(map(str, voids))} did not take effect: "
                f"{record.get('reason', '')}".rstrip(": ")
            )
    elif kind == "seal":
        w.notices.append(
            f"line {w.lines}: sealed damage: {record.get('damage', '?')} (recorded at the "
            f"end; sealed {record.get('time', '?')} by {record.get('by', '?')})"
        )


def _check(raw: bytes, offset: int, w: _Walk) -> tuple[Any, str | None]:
    """The record on a line and, if it does not hold, why."""
    if not raw.endswith(b"\n"):
        return None, "the file ends inside a record (cut short, or a crash mid-append)"
    try:
        record = json.loads(raw)
    except (ValueError, RecursionError):
        return None, "not a JSON record"
    if not isinstance(record, dict) or not {"seq", "prev", "hash"} <= record.keys():
        return None, "not an audit record (no seq, prev or hash)"
    seq = record["seq"]
    if not isinstance(seq, int) or isinstance(seq, bool):
        return None, "not an audit record (its seq is no number)"
    if (problem := _check_hash(record, w)) is not None:
        return record, problem
    if raw != canonical(record) + b"\n":
        # same values, other bytes (an escape spelt differently): still not as written
        return record, f"record {seq} was edited: it is not as it was written"
    # a seal of length 0 where it stands records records missing before it: its seq jumps
    jumps = (
        record.get("kind") == "seal" and record.get("offset") == offset
        and record.get("length") == 0 and seq > w.seq
    )  # fmt: skip
    if seq != w.seq + 1 and not jumps:
        return record, f"expected record {w.seq + 1}, found {seq}"  # deleted, or reordered
    if record["prev"] != w.prev:
        return record, "the chain breaks: prev is not the hash of the record before"
    voids = record.get("voids")
    if record.get("kind") == "void" and isinstance(voids, list) and len(voids) > 1:
        # a writer voids the one record a crash leaves past the head; several were confirmed,
        # and a head rolled back over them had an earlier writer void them
        return record, (f"record {seq} voids {len(voids)} records, and a crash leaves one at "
                        "most: the head file was rolled back before it was written")  # fmt: skip
    return record, None


def _check_hash(record: dict[str, Any], w: _Walk) -> str | None:
    seq = record["seq"]
    rid = record.get("key_id")
    if rid is not None:
        w.keyed += 1
        w.key_ids[str(rid)] = None
        if w.key is None:
            w.unchecked += 1  # its links are checked; its HMAC cannot be
            return None
        if rid != key_id(w.key):
            return (f"record {seq} was written with another key (key {rid}; the key given "
                    f"is {key_id(w.key)})")  # fmt: skip
        if not same_hash(record_hash(record, w.key), record["hash"]):
            return f"record {seq} was edited: its HMAC does not match"
        return None
    if not same_hash(record_hash(record), record["hash"]):
        return f"record {seq} was edited: its hash does not match"
    if w.key is not None:
        if w.keyed:
            return (f"record {seq} carries no HMAC, after keyed records: it was rewritten "
                    "without the key")  # fmt: skip
        w.unkeyed_before_keyed += 1
    return None


def _seal_holds(record: Any, w: _Walk) -> bool:
    """Whether a record is a seal whose own hash and link hold."""
    if not isinstance(record, dict) or record.get("kind") != "seal":
        return False
    if not {"seq", "prev", "hash", "offset", "length"} <= record.keys():
        return False
    if not isinstance(record["seq"], int) or record["seq"] <= w.seq:
        return False
    saved = (w.keyed, w.unchecked, w.unkeyed_before_keyed)
    if _check_hash(record, w) is not None:
        w.keyed, w.unchecked, w.unkeyed_before_keyed = saved
        return False
    return record["prev"] == w.prev


def _accept_seal(record: dict[str, Any], w: _Walk, line: int, what: str) -> None:
    w.notices.append(
        f"line {line}: sealed damage: {record.get('damage', '?')} ({what}; sealed "
        f"{record.get('time', '?')} by {record.get('by', '?')})"
    )
    _advance(record, w)


def _advance(record: dict[str, Any], w: _Walk) -> None:
    w.prev, w.seq = record["hash"], record["seq"]
    w.max_seq = max(w.max_seq, w.seq)
    if w.head is not None and w.seq == w.head.seq:
        w.head_hash = record["hash"]
        w.head_keyed = record.get("key_id") is not None


def _find_seal(lines: Iterator[tuple[int, bytes]], start: int, first: bytes, w: _Walk) -> bool:
    """From the damaged line at `start` on, the seal that covers the damage: a seal record
    whose offset is `start` and whose length and SHA-256 are those of the bytes between."""
    digest = hashlib.sha256(first)
    from_line = w.lines
    for offset, raw in lines:
        w.lines += 1
        if raw.endswith(b"\n") and b'"seal"' in raw:
            try:
                record = json.loads(raw)
            except (ValueError, RecursionError):
                record = None
            if (
                isinstance(record, dict)
                and record.get("offset") == start
                and record.get("length") == offset - start
                and record.get("sha256") == digest.hexdigest()
                and _seal_holds(record, w)
            ):
                kept = f"lines {from_line}..{w.lines - 1}, {offset - start} bytes kept"
                _accept_seal(record, w, from_line, kept)
                return True
        digest.update(raw)
    return False
