"""The audit log: append-only JSON Lines, hash chained, one record per decision and per
approval event.

Each record carries `seq` (1, 2, 3, ...), `prev` (the hash of the record before; 64 zeros for
the first) and `hash` (SHA-256 of the record's canonical JSON without `hash`). Editing a record
breaks its hash; deleting one breaks the next record's `prev` and the sequence; cutting the
file short is caught by the head file (`PATH.head`), which holds the seq and hash of the last
record written. `verify` names the first line that does not hold.

A record is written with one `write` on a file opened for appending, under a lock shared by the
writer's threads and an advisory lock shared with other processes, so records never interleave.
When a record cannot be written, `append` raises AuditError: the gate then denies the call (it
never acts unaudited).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

GENESIS = "0" * 64
FsyncPolicy = Literal["always", "interval", "never"]
FSYNC_POLICIES: tuple[str, ...] = ("always", "interval", "never")
DEFAULT_PATH = Path("~/.leashd/audit.jsonl")
HEAD_SIZE = 128  # bytes of the head file: the last record's seq and hash, space padded
INPUT_CAP = 4096  # characters of a tool input's JSON kept in a record (the hash covers all)


class AuditError(Exception):
    """A record could not be written (or the log cannot be continued)."""


def default_path() -> Path:
    """`LEASHD_AUDIT_LOG_PATH`, else ~/.leashd/audit.jsonl."""
    return Path(os.environ.get("LEASHD_AUDIT_LOG_PATH") or DEFAULT_PATH).expanduser()


def canonical(obj: Any) -> bytes:
    """The bytes a hash is taken over: sorted keys, no spaces, UTF-8 (lone surrogates, which
    JSON allows in a tool input, escaped rather than refused)."""
    return _CANONICAL.encode(obj).encode()


# one encoder for every record: json.dumps builds a new one per call when given options
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def record_hash(record: dict[str, Any]) -> str:
    return hashlib.sha256(canonical({k: v for k, v in record.items() if k != "hash"})).hexdigest()


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


@dataclass(frozen=True)
class Head:
    seq: int
    hash: str


class AuditLog:
    """An append-only, hash-chained JSON Lines file. Safe to share between threads; a second
    process appending to the same file serialises on the file lock and continues the chain."""

    def __init__(
        self, path: str | Path, fsync: FsyncPolicy = "always", interval: float = 1.0
    ) -> None:
        if fsync not in FSYNC_POLICIES:
            raise ValueError(f"fsync must be one of {', '.join(FSYNC_POLICIES)}, not {fsync!r}")
        self.path = Path(path).expanduser()
        self.head_path = self.path.with_name(self.path.name + ".head")
        self.fsync = fsync
        self.interval = interval
        self._lock = threading.Lock()
        self._last_sync = 0.0
        self._known: tuple[int, Head] | None = None  # file size after our last append
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            self._head_fd = os.open(self.head_path, os.O_WRONLY | os.O_CREAT, 0o600)
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
        Raises AuditError when it could not be written whole."""
        with self._lock:
            if self._fd < 0:
                raise AuditError("the audit log is closed")
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX)
                try:
                    size = os.fstat(self._fd).st_size
                    known = self._known
                    head = known[1] if known and known[0] == size else self._last(size)
                    # the chain's own keys last: a caller's fields never replace them
                    record = {**fields, "seq": head.seq + 1, "time": now(), "kind": kind}
                    record["prev"] = head.hash
                    record["hash"] = record_hash(record)
                    line = canonical(record) + b"\n"
                    if os.write(self._fd, line) != len(line):
                        raise AuditError("the audit log took part of a record (disk full?)")
                    self._sync()
                    head = Head(record["seq"], record["hash"])
                    self._write_head(head)
                    self._known = (size + len(line), head)
                finally:
                    fcntl.flock(self._fd, fcntl.LOCK_UN)
            except OSError as exc:
                raise AuditError(f"cannot write the audit log {self.path}: {exc}") from None
        return record

    # --- inside the lock -------------------------------------------------------------------

    def _last(self, size: int) -> Head:
        """The head to continue from: the last record of the file, which another process
        may have written since this one's last append."""
        if size == 0:
            return Head(0, GENESIS)
        with open(self.path, "rb") as f:
            back = min(size, 1 << 16)
            while True:
                f.seek(size - back)
                tail = f.read(back)
                start = tail.rfind(b"\n", 0, len(tail) - 1)
                if start >= 0 or back == size:
                    break
                back = min(size, back * 4)
        if not tail.endswith(b"\n"):
            raise AuditError(f"{self.path} ends inside a record: run `leashd audit verify`")
        try:
            last = json.loads(tail[start + 1 :])
            head = Head(int(last["seq"]), str(last["hash"]))
        except (ValueError, KeyError, TypeError):
            raise AuditError(
                f"the last record of {self.path} is damaged: run `leashd audit verify`"
            ) from None
        if record_hash(last) != head.hash:
            raise AuditError(f"the last record of {self.path} was edited: `leashd audit verify`")
        return head

    def _sync(self) -> None:
        if self.fsync == "always" or (
            self.fsync == "interval" and time.monotonic() - self._last_sync >= self.interval
        ):
            os.fsync(self._fd)
            self._last_sync = time.monotonic()

    def _write_head(self, head: Head) -> None:
        # overwritten in place, at one fixed length: one small write within a page, instead
        # of a rename per record (which cost more than the rest of an append together)
        text = f'{{"seq": {head.seq}, "hash": "{head.hash}"}}'.encode()
        os.pwrite(self._head_fd, text.ljust(HEAD_SIZE - 1) + b"\n", 0)


# --- reading -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    ok: bool
    records: int
    message: str
    line: int | None = None  # the first bad line (1-based)


def verify(path: str | Path) -> Verdict:
    """Check the chain of the log at `path` and its head file; the first line that does not
    hold is named."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            bad, seq, last_hash, lines = _check_lines(f)
    except OSError as exc:
        return Verdict(False, 0, f"cannot read {path}: {exc.strerror}")
    if bad is not None:
        return bad
    head_path = path.with_name(path.name + ".head")
    try:
        text = head_path.read_text()
        if not text and seq == 0:  # a log opened and never written to
            return Verdict(True, 0, "0 records")
        head = json.loads(text)
    except FileNotFoundError:
        return Verdict(seq == 0, seq, f"{seq} records; no head file to check the end against")
    except (OSError, ValueError):
        return Verdict(False, seq, f"the head file {head_path} is damaged")
    if not isinstance(head, dict) or not isinstance(head.get("seq"), int):
        return Verdict(False, seq, f"the head file {head_path} is damaged")
    if head["seq"] > seq:
        missing = f"records {seq + 1}..{head['seq']} are missing: the log was cut short"
        return Verdict(False, seq, missing, lines + 1)
    if head["seq"] == seq and head.get("hash") != last_hash:
        return Verdict(False, seq, "the last record is not the one the head file names", lines)
    return Verdict(True, seq, f"{seq} records, chain intact")


def _check_lines(f) -> tuple[Verdict | None, int, str, int]:  # type: ignore[no-untyped-def]
    """Walk the chain: (the first failure or None, the last seq, its hash, lines read)."""
    prev, seq, n = GENESIS, 0, 0
    for n, raw in enumerate(f, 1):
        problem = None
        record: Any = None
        if not raw.endswith(b"\n"):
            problem = "the file ends inside a record (cut short)"
        else:
            try:
                record = json.loads(raw)
            except ValueError:
                problem = "not a JSON record"
        if problem is None and (
            not isinstance(record, dict) or not {"seq", "prev", "hash"} <= record.keys()
        ):
            problem = "not an audit record (no seq, prev or hash)"
        elif problem is None and record["hash"] != record_hash(record):
            problem = f"record {record['seq']} was edited: its hash does not match"
        elif problem is None and raw != canonical(record) + b"\n":
            # same values, other bytes (an escape spelt differently): still not as written
            problem = f"record {record['seq']} was edited: it is not as it was written"
        elif problem is None and record["seq"] != seq + 1:
            # a record deleted, or put out of order
            problem = f"expected record {seq + 1}, found {record['seq']}"
        elif problem is None and record["prev"] != prev:
            problem = "the chain breaks: prev is not the hash of the record before"
        if problem is not None:
            return Verdict(False, seq, problem, n), seq, prev, n
        prev, seq = record["hash"], record["seq"]
    return None, seq, prev, n


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


def matches(record: dict[str, Any], **want: str | None) -> bool:
    """Whether a record has each wanted field (`tool`, `decision`, `rule`, `session`, or
    `event` for approvals) equal to its value; `since`/`until` bound its ISO time."""
    since, until = want.pop("since", None), want.pop("until", None)
    when = str(record.get("time", ""))
    if (since and when < since) or (until and when > until):
        return False
    return all(v is None or str(record.get(k)) == v for k, v in want.items())


def describe(record: dict[str, Any]) -> str:
    """One line for a person: seq, time, session, then what was decided or done."""
    head = f"{record.get('seq')} {record.get('time')} [{record.get('session', '-')}]"
    kind = record.get("kind")
    if kind == "approval":
        what = record.get("summary") or record.get("tool", "")
        return f"{head} approval {record.get('event')} by {record.get('who', '-')}: {what}"
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
