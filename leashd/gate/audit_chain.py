"""What links the audit log's records: their canonical bytes, their hash (or HMAC) and the head
file that names the last record whose append returned.

A record's `hash` is SHA-256 of its canonical JSON without `hash`. With a key (optional), the
record also carries `key_id` and its `hash` is an HMAC-SHA256 under the key, so someone who
cannot read the key cannot recompute it after deleting or editing a record. The key id is an
HMAC of a fixed text, so it tells keys apart without telling anything of the key.

A keyed log's head file carries a MAC too. Without it, anyone who can read the log can write a
head naming any record of it (the seq and hash are in the record), and roll the head back.
With it, a head is one the writer wrote; a copy of an earlier one can still be put back, which
is what `docs/audit.md` says the head cannot prove.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64
# bytes of the head file: the last record's seq and hash (and, keyed, the key id and a MAC),
# space padded; a head of an earlier version (128 bytes, no MAC) is read all the same
HEAD_SIZE = 256
MIN_KEY_BYTES = 16


@dataclass(frozen=True)
class Head:
    seq: int
    hash: str
    key_id: str | None = None  # a keyed log's head says so, even when its records are gone
    mac: str | None = None  # a keyed head's HMAC over the three above (`head_mac`)


def canonical(obj: Any) -> bytes:
    """The bytes a hash is taken over: sorted keys, no spaces, UTF-8 (lone surrogates, which
    JSON allows in a tool input, escaped rather than refused)."""
    return _CANONICAL.encode(obj).encode()


# one encoder for every record: json.dumps builds a new one per call when given options
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def key_id(key: bytes) -> str:
    """A short name of a key, to tell keys apart in records and messages."""
    return hmac.new(key, b"leashd audit key id", hashlib.sha256).hexdigest()[:16]


def record_hash(record: dict[str, Any], key: bytes | None = None) -> str:
    """The hash a record must carry: an HMAC under `key` when the record names a key, else
    SHA-256. A keyed record asked for without a key gets its plain SHA-256, which it never
    carries: callers check `key_id` first."""
    body = canonical({k: v for k, v in record.items() if k != "hash"})
    if key is not None and "key_id" in record:
        return hmac.new(key, body, hashlib.sha256).hexdigest()
    return hashlib.sha256(body).hexdigest()


def same_hash(a: str, b: Any) -> bool:
    return isinstance(b, str) and hmac.compare_digest(a.encode(), b.encode())


def head_path(path: os.PathLike[str] | str) -> str:
    return os.fspath(path) + ".head"


class HeadError(ValueError):
    """The head file holds something that is not a head."""


def parse_head(raw: bytes) -> Head | None:
    """The head a head file holds; None when it is empty (nothing confirmed yet)."""
    text = raw.strip()
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        raise HeadError("the head file is damaged (not JSON)") from None
    seq, hash_ = (data.get("seq"), data.get("hash")) if isinstance(data, dict) else (None, None)
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0 or not isinstance(hash_, str):
        raise HeadError("the head file is damaged (no seq and hash)")
    kid, mac = data.get("key_id"), data.get("mac")
    return Head(
        seq, hash_, kid if isinstance(kid, str) else None, mac if isinstance(mac, str) else None
    )


def head_mac(head: Head, key: bytes) -> str:
    """The MAC a keyed head carries. Its own prefix: a head's MAC is never a record's hash."""
    body = canonical({"seq": head.seq, "hash": head.hash, "key_id": head.key_id})
    return hmac.new(key, b"leashd audit head\n" + body, hashlib.sha256).hexdigest()


def head_mac_holds(head: Head, key: bytes) -> bool:
    return head.mac is not None and same_hash(head_mac(head, key), head.mac)


def head_bytes(head: Head, key: bytes | None = None) -> bytes:
    """The head file's bytes; with `key`, keyed and MAC'd (`head.key_id` is the key's id)."""
    kid = f', "key_id": "{head.key_id}"' if head.key_id else ""
    mac = f', "mac": "{head_mac(head, key)}"' if key is not None and head.key_id else ""
    text = f'{{"seq": {head.seq}, "hash": "{head.hash}"{kid}{mac}}}'.encode()
    return text.ljust(HEAD_SIZE - 1) + b"\n"
