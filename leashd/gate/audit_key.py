"""Where the audit log's key comes from: `LEASHD_AUDIT_KEY`, or a key file (`audit_key_file`).

The key must be out of the agent's reach, or a forger with the agent's hands could recompute
the chain. A key file in leashd's home is: the OS sandbox denies the agent any read there, and
the file must be readable by its owner only (as ssh insists for its keys). The variable is
removed from the daemon's environment once read, so the agent's CLI does not inherit it, but
a process of the same user that can read /proc/PID/environ could still see it (docs/audit.md).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from leashd.gate.audit_chain import MIN_KEY_BYTES

ENV = "LEASHD_AUDIT_KEY"


class AuditKeyError(ValueError):
    """The key is set badly: both ways, too short, or a key file others can read."""


def load_key(secret: str | None, key_file: str | os.PathLike[str] | None) -> bytes | None:
    """The key, from the variable's value or the file; None when neither is set."""
    if secret and key_file:
        raise AuditKeyError(f"set {ENV} or audit_key_file, not both")
    if secret:
        key = secret.encode()
        where = ENV
    elif key_file:
        path = Path(key_file).expanduser()
        try:
            mode = path.stat().st_mode
            if stat.S_IMODE(mode) & 0o077:
                raise AuditKeyError(
                    f"the audit key file {path} can be read by others than its owner: "
                    f"`chmod 600 {path}`"
                )
            key = path.read_bytes().strip()
        except OSError as exc:
            raise AuditKeyError(f"cannot read the audit key file {path}: {exc.strerror}") from None
        where = str(path)
    else:
        return None
    if len(key) < MIN_KEY_BYTES:
        raise AuditKeyError(
            f"the audit key ({where}) is {len(key)} bytes; it needs at least {MIN_KEY_BYTES} "
            "(`leashd audit keygen FILE` writes one)"
        )
    return key


def write_key_file(path: str | os.PathLike[str]) -> Path:
    """A new random key (32 bytes, hex), in a file readable by its owner only from its first
    byte. Refuses to replace a file: a key that changes orphans the log it signed."""
    path = Path(path).expanduser()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(os.urandom(32).hex() + "\n")
    return path
