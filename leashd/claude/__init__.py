"""The Claude Code CLI as leashd starts it, through the agent SDK: which CLI (`find_cli`), the
environment it gets on top of leashd's (`agent_env`), and the tether that ends it, with all
it started, when the leashd process that started it ends (`tethered`, `Tether`; the program
is `tether_program.py`).

Both the agent's turns (`leashd.agent.runner`) and the one model call of the AI approver and
the plan reviewer (`leashd.approvers.model`) start the CLI; this is below both.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shlex
import shutil
import sys
from collections.abc import Iterator, Mapping

import structlog

from leashd.claude import rundir

log = structlog.get_logger(__name__)

PROGRAM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tether_program.py")


def bundled_cli() -> str | None:
    """The Claude Code CLI inside the claude-agent-sdk wheel, if it is there."""
    try:
        import claude_agent_sdk
    except ImportError:
        return None
    path = os.path.join(os.path.dirname(claude_agent_sdk.__file__), "_bundled", "claude")
    return path if os.access(path, os.X_OK) else None


def find_cli() -> str | None:
    """The CLI the agent SDK starts when it is not told which: the one in its wheel, else
    `claude` on the PATH. None when neither is there: the SDK then looks in a few more
    places itself."""
    return bundled_cli() or shutil.which("claude")


def agent_env(environ: Mapping[str, str]) -> dict[str, str]:
    """What the agent's CLI gets on top of the daemon's environment. The SDK passes the whole
    environment on and cannot remove a variable, so leashd's own (`LEASHD_*`: the bot token,
    the audit key, every setting) are emptied.

    Not CLAUDE_CODE_SUBPROCESS_ENV_SCRUB, which would keep the CLI's API key from Bash: it
    leaves empty files on disk as mount points (an empty `package.json`, `.env` and lockfiles
    in the project, `.bashrc` and `.gitconfig` in the home) and forces the permission mode to
    default (no plan mode).

    UV_LINK_MODE=copy: uv links files of its cache into virtualenvs, so a cache file the agent
    could write would change a virtualenv elsewhere; the agent's uv copies instead."""
    out = {name: "" for name in environ if name.upper().startswith("LEASHD_")}
    out["UV_LINK_MODE"] = "copy"
    return out


# --- the tether -----------------------------------------------------------------------------


class Tether:
    """One start of the CLI, tied to this process: give `path` to the agent SDK as its
    `cli_path`, and the SDK starts `tether_program.py`, which starts the CLI with the arguments,
    environment and directory the SDK gives, and ends it, with everything it started, when
    this process ends, however it ends. `remove()` once the turn is over.

    `path` is a stub of a few lines written for this start alone (a fresh name, made with
    O_EXCL) in this user's directory of turn files (`_folder`), which every OS sandbox keeps
    commands from writing; leashd's pid is in it, so that a tether started after leashd died
    starts nothing. Python runs it directly (`#!python -IS`: isolated, no site, so nothing of
    the environment changes what it does or slows it), through /bin/sh only when the
    interpreter's path cannot stand in a `#!` line (`stub`)."""

    def __init__(self, cli: str, python: str | None = None) -> None:
        python = python or sys.executable
        if not python:
            raise OSError("no Python interpreter to run the tether with")
        folder = _folder()
        rundir.remove_stale(folder)
        self.path = os.path.join(folder, f"{os.getpid()}-{secrets.token_hex(8)}")
        _write(self.path, stub(python, cli, os.getpid()))

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.path)

    def __enter__(self) -> Tether:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def tether(cli: str | None = None) -> Tether | None:
    """A tether for the CLI (`find_cli` unless named), or None where there can be none: not
    Linux (PR_SET_PDEATHSIG and child subreapers are Linux's), no CLI found, or no private
    directory to keep the stub in that allows running it. The agent SDK then starts the CLI
    itself, as it always did, and it outlives a leashd that is killed; that is logged."""
    if not sys.platform.startswith("linux"):
        return None
    cli = cli or find_cli()
    if cli is None:
        log.warning("cli_untethered", reason="no Claude Code CLI found; the agent SDK looks")
        return None
    try:
        return Tether(cli)
    except OSError as exc:
        log.warning("cli_untethered", reason=str(exc))
        return None


@contextlib.contextmanager
def tethered(cli: str | None = None) -> Iterator[str | None]:
    """The `cli_path` for one start of the CLI (None: the SDK's own), removed after."""
    t = tether(cli)
    try:
        yield t.path if t is not None else None
    finally:
        if t is not None:
            t.remove()


def stub(python: str, cli: str, leashd_pid: int) -> str:
    """The program `Tether.path` holds: `tether_program.py LEASHD_PID CLI`, and the arguments
    the SDK gives."""
    code = (
        "import sys\n"
        f"sys.argv[1:1] = [{str(leashd_pid)!r}, {cli!r}]\n"
        f"path = {PROGRAM!r}\n"
        "with open(path, 'rb') as f:\n"
        "    code = compile(f.read(), path, 'exec')\n"
        "exec(code, {'__name__': '__main__', '__file__': path})\n"
    )
    if _shebang_safe(python):
        return f"#!{python} -IS\n{code}"
    # through `sh`, which passes the same environment on in an order of its own (dash), and
    # adds PWD when there is none (the SDK sets it with the directory, which leashd always sets)
    return f'#!/bin/sh\nexec {shlex.quote(python)} -I -S -c {shlex.quote(code)} "$@"\n'


def _shebang_safe(python: str) -> bool:
    """Whether the kernel reads `#!python -IS` as meant: an absolute path, no blank in it
    (the first one ends the interpreter's path), short enough for any kernel's limit."""
    return (
        python.startswith("/")
        and python.isprintable()
        and not any(c.isspace() for c in python)
        and len(python.encode()) + len("#! -IS") < 128
    )


def _folder() -> str:
    """The `cli` part of this user's directory of turn files (rundir.py), refused when its
    file system runs nothing."""
    folder = rundir.private_dir("cli")
    if os.statvfs(folder).f_flag & os.ST_NOEXEC:
        raise OSError(f"{folder} is on a file system mounted noexec")
    return folder


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o700)
    os.fchmod(fd, 0o700)  # whatever the umask: the owner must be able to run it
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
