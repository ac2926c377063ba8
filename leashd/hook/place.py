"""Where the hook server of this leashd listens, and what a client passes it.

One server per leashd home and per leashd install (interpreter and package directory): a
client never talks to a server running other code. Only light standard modules here (no
pathlib, no dataclasses): the hook's client imports this on every call.
"""

from __future__ import annotations

import os
import sys
import zlib
from collections.abc import Mapping

# The variables a decision depends on, passed from the client to the server besides leashd's
# own settings (LEASHD_*): the home paths are resolved in, the project Claude Code names.
PASSED = ("HOME", "CLAUDE_PROJECT_DIR")
_MAX_SOCKET_PATH = 100  # AF_UNIX paths end at 107 bytes on Linux, 103 on macOS


def leashd_home(env: Mapping[str, str] | None = None) -> str:
    """LEASHD_HOME, else ~/.leashd (the daemon's rule: leashd/daemon/config.py)."""
    env = os.environ if env is None else env
    home = env.get("LEASHD_HOME")
    if home:
        return os.path.expanduser(home) if "HOME" not in env else _expand(home, env["HOME"])
    return os.path.join(env.get("HOME") or os.path.expanduser("~"), ".leashd")


def _expand(path: str, home: str) -> str:
    return home + path[1:] if path == "~" or path.startswith("~/") else path


def install_key() -> str:
    """This interpreter and this leashd package, as a short name."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    raw = f"{sys.executable}\0{package}".encode()
    return f"{zlib.crc32(raw):08x}{zlib.adler32(raw):08x}"


def socket_path(env: Mapping[str, str] | None = None) -> str:
    """The server's socket: in leashd's home, or, when that path is too long for a socket,
    in a directory of this user's under the system's temporary directory."""
    name = f"{install_key()}.sock"
    path = os.path.join(leashd_home(env), "hook", name)
    if len(os.fsencode(path)) <= _MAX_SOCKET_PATH:
        return path
    import tempfile

    return os.path.join(tempfile.gettempdir(), f"leashd-hook-{os.getuid()}", name)


def private_dir(path: str) -> bool:
    """Make `path` (the socket's directory) if needed; True when it is ours and no one
    else's: a directory owned by this user and closed to others."""
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        st = os.lstat(path)
    except OSError:
        return False
    import stat

    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o077


def passed_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    env = os.environ if env is None else env
    return {k: v for k, v in env.items() if k.startswith("LEASHD_") or k in PASSED}
