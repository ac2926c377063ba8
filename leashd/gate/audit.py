"""The audit log: append-only JSON Lines, hash chained, one record per decision and per
approval event.

Each record carries `seq` (1, 2, 3, ...), `prev` (the hash of the record before; 64 zeros for
the first) and `hash` (SHA-256 of the record's canonical JSON without `hash`; with a key, an
HMAC: see `audit_chain`). The head file (`PATH.head`) holds the seq and hash of the last
record whose append returned: a record is *confirmed* once the head names it, and only a
confirmed record was acted on.

The writer continues from the head, not from the file. A log shorter than its head says (records
deleted from the end, the file emptied), a last record the head does not name, a record edited:
each is damage, and the writer refuses to append (AuditDamaged) until `leashd audit repair`
seals it. What a crash leaves is not damage, and is put right in the log itself: the record
written after the head (its append never returned, so it never took effect) gets a `void` record
naming it; a record torn by a crash mid-append is sealed, its bytes kept. A writer holds the
lock from its write to its head, and every append first puts right what the last one left, so
a crash leaves at most one record past the head: more than one means the head file was rolled
back (or emptied), which is damage, never a reason to void records that were confirmed. With a
key, the head file carries a MAC, so a head that a forger wrote is damage too. `verify` names
the first line that does not hold (`audit_verify`).

A record is written with one `write` on a file opened for appending, under a lock shared by the
writer's threads and an advisory lock shared with other processes, so records never interleave.
A write that takes part of a record is cut back at once. When a record cannot be written,
`append` raises AuditError: the gate then denies the call (it never acts unaudited).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from leashd.gate.audit_chain import (
    GENESIS,
    HEAD_SIZE,
    Head,
    HeadError,
    canonical,
    head_bytes,
    head_mac_holds,
    head_path,
    key_id,
    parse_head,
    record_hash,
    same_hash,
)
from leashd.gate.audit_verify import MAX_UNCONFIRMED, Verdict, verify

__all__ = [
    "GENESIS", "HEAD_SIZE", "AuditDamaged", "AuditError", "AuditLog", "Head", "Verdict",
    "canonical", "capped_input", "default_path", "describe", "follow", "matches", "now",
    "parse_time",
    "record_hash", "records", "verify",
]  # fmt: skip

FsyncPolicy = Literal["always", "interval", "never"]
FSYNC_POLICIES: tuple[str, ...] = ("always", "interval", "never")
DEFAULT_PATH = Path("~/.leashd/audit.jsonl")
INPUT_CAP = 4096  # characters of a tool input's JSON kept in a record (the hash covers all)
_SCAN_BACK = 64 << 20  # bytes read back from the end to find the record the head names
REPAIR = "run `leashd audit verify` to see it, and `leashd audit repair` to seal it and go on"


class AuditError(Exception):
    """A record could not be written (or the log cannot be continued). `written` is the
    record when it reached the file but its append did not return: it is not confirmed, and
    the next append voids it."""

    def __init__(self, message: str, written: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.written = written


class AuditDamaged(AuditError):
    """The log is damaged (edited, cut short, emptied): nothing is appended until the damage
    is sealed."""


def default_path() -> Path:
    """`LEASHD_AUDIT_LOG_PATH`, else ~/.leashd/audit.jsonl (the daemon's own resolution, with
    LEASHD_HOME and config.yaml, is `Settings.path("audit_log_path")`)."""
    return Path(os.environ.get("LEASHD_AUDIT_LOG_PATH") or DEFAULT_PATH).expanduser()


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def capped_input(tool_input: Any, cap: int = INPUT_CAP) -> dict[str, Any]:
    """The fields a record keeps of a tool input: the input itself when its JSON fits in
    `cap` characters, else the first `cap` characters of it; always the SHA-256 of the whole."""
    try:
        try:
            text = canonical(tool_input).decode()
        except (TypeError, ValueError):  # not JSON at all: kept as its repr, hashed as that
            text = json.dumps(repr(tool_input))
    except RecursionError:
        # nested deeper than JSON can be written: the gate refuses what it cannot record
        return {"input_error": "the input nests too deeply to be recorded"}
    out: dict[str, Any] = {"input_sha256": hashlib.sha256(text.encode()).hexdigest()}
    if len(text) <= cap:
        try:
            out["input"] = json.loads(text)
        except RecursionError:
            out["input_excerpt"] = text
    else:
        out["input_excerpt"] = text[:cap]
        out["input_chars"] = len(text)
    return out


class AuditLog:
    """An append-only, hash-chained JSON Lines file. Safe to share between threads; a second
    process appending to the same file serialises on the file lock and continues the chain.
    With `key`, every record it writes is an HMAC link (see `audit_chain`)."""

    def __init__(
        self,
        path: str | Path,
        fsync: FsyncPolicy = "always",
        interval: float = 1.0,
        *,
        key: bytes | None = None,
    ) -> None:
        if fsync not in FSYNC_POLICIES:
            raise ValueError(f"fsync must be one of {', '.join(FSYNC_POLICIES)}, not {fsync!r}")
        # absolute: each append checks that the path still names the file held open, and a
        # relative path would name another one after a chdir
        self.path = Path(path).expanduser().absolute()
        self._path_s = os.fspath(self.path)  # stat'ed each append: a str spares a conversion
        self.head_path = Path(head_path(self.path))
        self.fsync = fsync
        self.interval = interval
        self.key = key
        self.key_id = key_id(key) if key is not None else None
        self._lock = threading.Lock()
        self._last_sync = 0.0
        self._known: tuple[int, Head] | None = None  # file size and head after our last append
        self._wrote = 0  # the highest seq this writer confirmed: the log never goes back
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            self._head_fd = os.open(self.head_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise AuditError(f"cannot open the audit log {self.path}: {exc.strerror}") from None

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                os.close(self._head_fd)
                self._fd = -1

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def append(self, kind: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Write one record (`kind`: "decision" or "approval") and return it as written.
        Raises AuditError when it could not be written and confirmed, AuditDamaged when the
        log is damaged."""
        with self._locked():
            head = self._resume()
            return self._write(head, kind, fields)

    def resume(self) -> list[dict[str, Any]]:
        """Check the end of the log against the head and put right what a crash left (void
        the records written after the head, seal a torn last record); returns the records
        that took. Raises AuditDamaged on damage. The daemon calls it before its first call."""
        with self._locked():
            size = os.fstat(self._fd).st_size
            before = self._known
            self._resume()
            if before is None or before[0] != size:
                return _records_from(self.path, size)
            return []

    def check(self, whole_below: int = 256 << 20) -> list[str]:
        """What the daemon runs at start, before its first call: `resume` (the end against
        the head, crash leftovers put right), then the whole chain when the log is smaller
        than `whole_below` bytes. Raises AuditDamaged on damage; returns the notices (sealed
        damage, records that did not take effect) to tell the operator."""
        self.resume()
        size = self.path.stat().st_size if self.path.exists() else 0
        if size >= whole_below:
            return [f"{self.path} is {size >> 20} MiB: only its end was checked at start; "
                    "`leashd audit verify` checks the whole chain"]  # fmt: skip
        v = verify(self.path, self.key)
        if v.status not in ("intact", "missing"):
            where = f"line {v.line}: " if v.line else ""
            raise AuditDamaged(f"{self.path}: {where}{v.message}: {REPAIR}")
        return list(v.notices)

    def repair(self, by: str = "leashd audit repair") -> list[dict[str, Any]]:
        """Seal every damage `verify` finds, so the log can be continued: each seal holds
        where the damaged bytes are, how many and their SHA-256; they stay in place and
        `verify` reports them for good. Returns the seals written ([] when there was no
        damage). A keyed log is repaired only with its key."""
        seals: list[dict[str, Any]] = []
        with self._locked():
            self._still_at_path()  # a seal in a file nobody can read any more seals nothing
            for _ in range(8):  # one seal per damage; a log with more is left to a person
                v = verify(self.path, self.key)
                if v.status in ("intact", "unchecked", "missing"):
                    if v.status == "unchecked" or (v.key_ids and self.key is None):
                        raise AuditError(
                            f"{self.path} is keyed (key {', '.join(v.key_ids)}): set "
                            "LEASHD_AUDIT_KEY or audit_key_file to repair it"
                        )
                    break
                if v.key_ids and self.key is None:
                    raise AuditError(
                        f"{self.path} is keyed (key {', '.join(v.key_ids)}): a seal without "
                        "the key would be one more break; set LEASHD_AUDIT_KEY or audit_key_file"
                    )
                seals.append(self._seal(v, by))
            else:
                raise AuditDamaged(f"{self.path} has more damage than one repair seals")
            self._known = None
        return seals

    # --- inside the locks ---------------------------------------------------------------------

    def _locked(self) -> _Locked:
        return _Locked(self)

    def _resume(self) -> Head:
        """The head to continue from. The fast path: nobody wrote since our last append."""
        size = self._still_at_path().st_size
        known = self._known
        if known is not None and known[0] == size:
            return known[1]
        head = self._read_head()
        if head.seq < self._wrote:
            raise AuditDamaged(
                f"{self.path} went back from record {self._wrote} to {head.seq} while this "
                f"process was writing it: {REPAIR}"
            )
        torn, past = self._tail(size, head)
        if torn is not None:
            offset, data = torn
            last = past[-1] if past else {"seq": head.seq, "hash": head.hash}
            seal = {
                "damage": "a record torn by a crash or a full disk mid-append (its append "
                "never returned: it did not take effect)",
                "offset": offset, "length": len(data) + 1,
                "sha256": hashlib.sha256(data + b"\n").hexdigest(),
                "by": "the writer, on its next append",
            }  # fmt: skip
            head = Head(last["seq"], last["hash"])
            written = self._write(head, "seal", seal, lead=b"\n", size=size, seq=last["seq"] + 1)
            head, size = Head(written["seq"], written["hash"]), os.fstat(self._fd).st_size
        elif past:
            head = Head(past[-1]["seq"], past[-1]["hash"])
        voids = [r["seq"] for r in past if r.get("kind") != "void"]
        if voids:
            reason = (
                "written, but the append never returned (a crash, or a failed fsync or head "
                "write): the call or answer they record was not acted on"
            )
            written = self._write(head, "void", {"voids": voids, "reason": reason})
            head = Head(written["seq"], written["hash"])
        elif past and torn is None:
            self._confirm(head, os.fstat(self._fd).st_size)
        return head

    def _still_at_path(self) -> os.stat_result:
        """The log's fstat, once it is known that its path and its head's still name the
        files this writer holds. Appending to a log that was deleted (or moved aside, or
        replaced) would confirm records nobody can read: the gate would act on them, and
        `verify` would find nothing, or another file. One stat and two fstats an append:
        ~2.5 us against the ~22 us an append costs (benchmarks/bench_audit.py)."""
        held = os.fstat(self._fd)
        try:
            there = os.stat(self._path_s)
        except OSError:
            there = None
        what = None
        if held.st_nlink == 0 or there is None:
            what = "no file is at its path any more"
        elif (there.st_ino, there.st_dev) != (held.st_ino, held.st_dev):
            what = "another file is at its path"
        elif os.fstat(self._head_fd).st_nlink == 0:
            what = f"its head file {self.head_path} is gone, or another file"
        if what is not None:
            raise AuditError(
                f"the audit log {self.path} was deleted or replaced while this process was "
                f"writing it ({what}): nothing more is written to it, so every call is denied; "
                "restart leashd, and run `leashd audit verify` to see what the log says now"
            )
        return held

    def _read_head(self) -> Head:
        try:
            raw = os.pread(self._head_fd, HEAD_SIZE * 2, 0)
            head = parse_head(raw) or Head(0, GENESIS)
        except HeadError as exc:
            raise AuditDamaged(f"{self.head_path}: {exc}: {REPAIR}") from None
        if head.key_id is not None:
            self._check_key({"key_id": head.key_id})  # no key, or another: AuditError
            if self.key is None or not head_mac_holds(head, self.key):
                raise AuditDamaged(
                    f"{self.head_path}: the head file was not written with the key (its MAC "
                    f"does not match): it was rewritten or rolled back: {REPAIR}"
                )
        return head

    def _tail(self, size: int, head: Head) -> tuple[tuple[int, bytes] | None, list[dict[str, Any]]]:
        """What follows the record the head names: a torn last record (its offset and bytes)
        and the whole records after the head. Raises AuditDamaged when the end does not
        hold (the head's record missing or changed, records that do not link)."""
        with open(self.path, "rb") as f:
            end = _after_last_newline(f, size)
            f.seek(end)
            torn = (end, f.read()) if end < size else None
            back = min(end, 1 << 16)
            while True:
                f.seek(end - back)
                lines = f.read(back).split(b"\n")
                lines.pop()  # what follows the last newline: nothing, `end` is just after it
                if back < end and lines:
                    lines.pop(0)  # may start mid-line
                found = self._find_head_record(lines, head)
                if found is not None or back >= end:
                    break
                if back >= _SCAN_BACK:
                    raise AuditDamaged(
                        f"the record the head file of {self.path} names ({head.seq}) is not "
                        f"in the last {_SCAN_BACK >> 20} MiB of the log: {REPAIR}"
                    )
                back = min(end, back * 4)
        if found is None:
            if head.seq > 0:
                raise AuditDamaged(self._shorter(lines, head))
            found = -1  # nothing confirmed yet: every record is past the head
        past = [self._parse(raw, "past the head") for raw in lines[found + 1 :] if raw]
        expect_seq, expect_prev = head.seq + 1, head.hash
        for rec in past:
            if rec["seq"] != expect_seq or rec["prev"] != expect_prev:
                raise AuditDamaged(
                    f"record {rec['seq']} of {self.path} does not follow the one the head "
                    f"file names ({head.seq}): {REPAIR}"
                )
            self._check_key(rec)
            expect_seq, expect_prev = rec["seq"] + 1, rec["hash"]
        self._one_past_at_most(head, past)
        return torn, past

    def _one_past_at_most(self, head: Head, past: list[dict[str, Any]]) -> None:
        """What a crash can leave past the head: the one record whose append never returned,
        and voids of it whose own appends never returned (a head write failing again and
        again). Anything more was confirmed once, and the head went back over it: voiding
        it would record real calls as never made."""
        unconfirmed = [r for r in past if r.get("kind") != "void"]
        if len(unconfirmed) > MAX_UNCONFIRMED:
            raise AuditDamaged(
                f"{len(unconfirmed)} records of {self.path} follow the one its head file "
                f"names ({head.seq}), and a crash leaves one at most: the head file was rolled "
                f"back or emptied (or the machine lost power before it was written); nothing "
                f"is voided or appended: {REPAIR}"
            )
        seqs = {r["seq"] for r in past}
        for rec in past:
            named = rec.get("voids") if rec.get("kind") == "void" else None
            if isinstance(named, list) and not all(isinstance(s, int) and s in seqs for s in named):
                raise AuditDamaged(
                    f"record {rec['seq']} of {self.path} voids records at or before the one "
                    f"its head file names ({head.seq}): the head file was rolled back: {REPAIR}"
                )

    def _find_head_record(self, lines: list[bytes], head: Head) -> int | None:
        """The index of the line holding the head's record, checked; None if not among them."""
        if head.seq == 0:
            return None
        for i in range(len(lines) - 1, -1, -1):
            raw = lines[i]
            if not raw:
                continue
            rec = self._parse(raw, "at the end")
            if rec["seq"] < head.seq:
                raise AuditDamaged(self._shorter(lines, head, last=rec["seq"]))
            if rec["seq"] == head.seq:
                if not same_hash(head.hash, rec["hash"]):
                    raise AuditDamaged(
                        f"the last record of {self.path} is not the one its head file names "
                        f"(record {head.seq}): {REPAIR}"
                    )
                self._check_key(rec)
                if rec.get("key_id") is not None and head.key_id is None:
                    # a keyed record is only ever named by a keyed head, with its MAC
                    raise AuditDamaged(
                        f"{self.head_path}: the head file names keyed record {head.seq} but "
                        f"carries no MAC: it was written without the key: {REPAIR}"
                    )
                return i
        return None

    def _shorter(self, lines: list[bytes], head: Head, last: int | None = None) -> str:
        if last is None:
            last = 0
            for raw in reversed(lines):
                if raw:
                    last = self._parse(raw, "at the end")["seq"]
                    break
        gone = "emptied" if last == 0 else "cut short"
        return (
            f"{self.path} is shorter than its head file says: {_missing(last + 1, head.seq)} "
            f"(the log was {gone}); nothing is appended to it: {REPAIR}"
        )

    def _parse(self, raw: bytes, where: str) -> dict[str, Any]:
        try:
            rec = json.loads(raw)
        except (ValueError, RecursionError):
            rec = None
        if not (
            isinstance(rec, dict)
            and isinstance(rec.get("seq"), int)
            and isinstance(rec.get("hash"), str)
            and "prev" in rec
        ):
            raise AuditDamaged(f"a line {where} of {self.path} is not a record: {REPAIR}")
        return rec

    def _check_key(self, rec: dict[str, Any]) -> None:
        """A record's own hash, under the key it names: a keyed log is continued only with
        its key, and an edited record is not continued at all."""
        rid = rec.get("key_id")
        what = f"record {rec['seq']}" if "seq" in rec else "head file"
        if rid is not None and self.key is None:
            raise AuditError(
                f"{self.path} is keyed (key {rid}) and no key is set: set LEASHD_AUDIT_KEY or "
                "audit_key_file to continue it"
            )
        if rid is not None and rid != self.key_id:
            raise AuditError(
                f"{self.path} was written with another key (key {rid}; this one is "
                f"{self.key_id}): start a new log to change keys (docs/audit.md)"
            )
        if "hash" in rec and not same_hash(record_hash(rec, self.key), rec["hash"]):
            raise AuditDamaged(f"{what} of {self.path} was edited: {REPAIR}")

    def _write(
        self,
        head: Head,
        kind: str,
        fields: dict[str, Any],
        *,
        lead: bytes = b"",
        size: int | None = None,
        seq: int | None = None,
    ) -> dict[str, Any]:
        """Append one record after `head` and confirm it (sync, then the head file)."""
        # the chain's own keys last: a caller's fields never replace them
        record = {**fields, "seq": seq or head.seq + 1, "time": now(), "kind": kind}
        record.pop("key_id", None)
        if self.key is not None:
            record["key_id"] = self.key_id
        record["prev"] = head.hash
        record["hash"] = record_hash(record, self.key)
        data = lead + canonical(record) + b"\n"
        if size is None:
            size = os.fstat(self._fd).st_size
        written = os.write(self._fd, data)
        if written != len(data):
            # a full disk: the part that was written is cut back, so the log never ends
            # inside a record that this process could have finished
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, size)
            raise AuditError(f"the audit log {self.path} took part of a record (disk full?)")
        try:
            self._sync()
            self._confirm(Head(record["seq"], record["hash"]), size + len(data))
        except OSError as exc:
            self._known = None  # the next append finds this record past the head, and voids it
            raise AuditError(
                f"the audit log {self.path} could not confirm record {record['seq']}: {exc}",
                written=record,
            ) from None
        return record

    def _confirm(self, head: Head, size: int) -> None:
        # overwritten in place, at one fixed length: one small write within a page, instead
        # of a rename per record (which cost more than the rest of an append together)
        os.pwrite(self._head_fd, head_bytes(Head(head.seq, head.hash, self.key_id), self.key), 0)
        self._known = (size, head)
        self._wrote = max(self._wrote, head.seq)

    def _sync(self) -> None:
        if self.fsync == "always" or (
            self.fsync == "interval" and time.monotonic() - self._last_sync >= self.interval
        ):
            os.fsync(self._fd)
            self._last_sync = time.monotonic()

    def _seal(self, v: Verdict, by: str) -> dict[str, Any]:
        """Seal the damage `v` names: from its offset to the end of the file (a seal of
        length 0 when the damage is at the end: records missing, another head)."""
        size = os.fstat(self._fd).st_size
        offset = v.offset if v.offset is not None else size
        with open(self.path, "rb") as f:
            f.seek(offset)
            digest, length, last = hashlib.sha256(), 0, b""
            while chunk := f.read(1 << 20):
                digest.update(chunk)
                length += len(chunk)
                last = chunk[-1:]
        lead = b"\n" if length and last != b"\n" else b""
        digest.update(lead)
        fields: dict[str, Any] = {
            "damage": v.message,
            "offset": offset,
            "length": length + len(lead),
            "sha256": digest.hexdigest(),
            "by": by,
        }
        if v.line is not None:
            fields["from_line"] = v.line
        if v.head is not None:
            fields["head"] = {"seq": v.head.seq, "hash": v.head.hash}
            if v.head.seq > v.prev_seq and offset == size:
                fields["missing"] = [v.prev_seq + 1, v.head.seq]
        seq = max(v.max_seq, v.head.seq if v.head else 0, v.prev_seq) + 1
        return self._write(Head(v.prev_seq, v.prev_hash), "seal", fields, lead=lead, seq=seq)


class _Locked:
    """The writer's thread lock, then the file lock shared with other processes."""

    def __init__(self, log: AuditLog) -> None:
        self.log = log

    def __enter__(self) -> None:
        log = self.log
        log._lock.acquire()
        try:
            if log._fd < 0:
                raise AuditError("the audit log is closed")
            fcntl.flock(log._fd, fcntl.LOCK_EX)
        except BaseException:
            log._lock.release()
            raise

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        log = self.log
        try:
            fcntl.flock(log._fd, fcntl.LOCK_UN)
        finally:
            log._lock.release()
        if isinstance(exc, OSError) and not isinstance(exc, AuditError):
            raise AuditError(f"cannot write the audit log {log.path}: {exc}") from None


def _missing(first: int, last: int) -> str:
    return f"record {first} is missing" if first == last else f"records {first}..{last} are missing"


def _after_last_newline(f: Any, size: int) -> int:
    """The offset just after the file's last newline (0 when it has none): where a torn
    record, if any, starts. Read back in chunks: a torn record may be megabytes long."""
    pos = size
    while pos > 0:
        step = min(pos, 1 << 20)
        f.seek(pos - step)
        i = f.read(step).rfind(b"\n")
        if i >= 0:
            return pos - step + i + 1
        pos -= step
    return 0


def _records_from(path: Path, offset: int) -> list[dict[str, Any]]:
    with open(path, "rb") as f:
        f.seek(offset)
        out = []
        for raw in f:
            try:
                rec = json.loads(raw)
            except ValueError:
                continue
            if isinstance(rec, dict):
                out.append(rec)
        return out


# --- reading -----------------------------------------------------------------------------------


def records(path: str | Path) -> Iterator[dict[str, Any]]:
    """The records of a log, in order (lines that are no JSON object are skipped; `verify`
    is what reports them)."""
    with open(path, "rb") as f:
        for raw in f:
            try:
                record = json.loads(raw)
            except ValueError:
                continue
            if isinstance(record, dict):
                yield record


def parse_time(text: str, *, end: bool = False) -> datetime:
    """A bound for `search --since/--until`: a date (`2026-11-22`) or a date and time
    (`2026-11-22T10:00`, `2026-11-22 10:00:30`, with or without an offset or `Z`). Without an
    offset it is UTC, as the records are. `end`: a date alone means the end of that day.
    Raises ValueError for anything else (`2026-13-45`)."""
    text = text.strip()
    if not text[:1].isdigit():
        raise ValueError(f"{text!r} is not a date or a time")
    when = datetime.fromisoformat(text)
    if end and len(text) == 10:  # a date alone: up to the end of that day
        when = when.replace(hour=23, minute=59, second=59, microsecond=999999)
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


def matches(
    record: dict[str, Any],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    **want: str | None,
) -> bool:
    """Whether a record has each wanted field (`tool`, `decision`, `rule`, `session`, or
    `event` for approvals) equal to its value, and its time within [since, until]."""
    if since is not None or until is not None:
        try:
            when = datetime.fromisoformat(str(record.get("time")))
        except ValueError:
            return False  # no time to place it by
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        if (since is not None and when < since) or (until is not None and when > until):
            return False
    return all(v is None or str(record.get(k)) == v for k, v in want.items())


def describe(record: dict[str, Any]) -> str:
    """One line for a person: seq, time, session, then what was decided or done."""
    head = f"{record.get('seq')} {record.get('time')} [{record.get('session', '-')}]"
    kind = record.get("kind")
    if kind == "approval":
        what = record.get("summary") or record.get("tool", "")
        return f"{head} approval {record.get('event')} by {record.get('who', '-')}: {what}"
    if kind == "void":
        return f"{head} void: records {record.get('voids')} did not take effect"
    if kind == "seal":
        return f"{head} seal: {record.get('damage')} ({record.get('length')} bytes kept)"
    if kind == "git":  # the user's own /git (leashd/git/suite.py)
        argv = record.get("argv")
        shown = " ".join(str(a) for a in argv) if isinstance(argv, list) else "git"
        return (f"{head} git by {record.get('by', '?')} {record.get('who', '-')} in "
                f"{record.get('cwd')}: {shown} (exit {record.get('exit')})")  # fmt: skip
    if kind == "sandbox" and record.get("event") == "blocked":
        given = record.get("input")
        command = given.get("command") if isinstance(given, dict) else None
        what = "; ".join(str(b) for b in record.get("blocked") or [])
        return f"{head} sandbox blocked: {record.get('tool')} {command or ''} -- {what}"
    if kind == "sandbox" and record.get("workspace"):  # a session entered, left, saw a change
        dirs = record.get("dirs")
        shown = ", ".join(str(d) for d in dirs) if isinstance(dirs, list) else ""
        return f"{head} sandbox {record.get('event')} {record.get('workspace')}: {shown}".rstrip()
    if kind != "decision":  # a policy reload, an approved directory added or removed
        more = record.get("path") or record.get("error") or record.get("specs") or ""
        return f"{head} {kind} {record.get('event')} {more}".rstrip()
    given = record.get("input")
    command = given.get("command") if isinstance(given, dict) else None
    units = record.get("units")
    if isinstance(command, str):
        shown = f"{record.get('tool')} {command}"
    elif isinstance(units, list) and units and isinstance(units[0], dict) and "unit" in units[0]:
        shown = str(units[0]["unit"])  # a file tool with its resolved path
    else:
        excerpt = json.dumps(given) if given is not None else record.get("input_excerpt", "")
        shown = f"{record.get('tool')} {excerpt}"
    rule = f" by {record['rule']}" if record.get("rule") else ""
    if record.get("voids") is not None:
        rule += f" (record {record['voids']} did not run)"
    return (
        f"{head} {record.get('decision')}{rule} ({record.get('layer', 'policy')}): "
        f"{shown} -- {record.get('reason', '')}"
    )


def follow(path: str | Path, poll: float = 0.5) -> Iterator[dict[str, Any]]:
    """The records appended to a log from now on (for `tail -f`)."""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        pending = b""
        while True:
            chunk = f.readline()
            if not chunk:
                time.sleep(poll)
                continue
            pending += chunk
            if not pending.endswith(b"\n"):
                continue  # a record still being written
            try:
                record = json.loads(pending)
            except ValueError:
                record = None
            pending = b""
            if isinstance(record, dict):
                yield record
