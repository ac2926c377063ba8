"""This user's directory of turn files in the system temp directory (`leashd-UID`), and its
parts: the sandbox's settings and git excludes of each turn (leashd/agent/sandbox.py) and the
CLI's tether stubs (leashd/claude). Each file is named `PID-…` after the leashd process that
wrote it, so the files of a process that is gone (killed before it could remove them) can be
told apart and removed."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile


def private_dir(*parts: str) -> str:
    """The directory (and `parts` of it, each a directory in the last), made 0700; raises
    OSError when one is anyone else's, a link, or open to others (another user could have
    made it first). Returns the last."""
    path = os.path.join(tempfile.gettempdir(), f"leashd-{os.getuid()}")
    for part in ("", *parts):
        path = os.path.join(path, part) if part else path
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, 0o700)
        st = os.lstat(path)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
            raise OSError(f"{path} is not a directory of this user's alone (mode 0700)")
    return path


def remove_stale(folder: str) -> None:
    """The files in `folder` of leashd processes that are gone."""
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        pid = name.split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(folder, name))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
