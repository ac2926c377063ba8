"""The Claude Code CLI, and everything it starts, ends with the leashd process that started it,
even one killed with SIGKILL (`leashd.claude.Tether`; the program is
leashd/claude/tether_program.py).

First the tether on its own, with stand-ins for the CLI: it starts the program with exactly
what it would get from leashd directly, exits as the program exits, and ends the whole tree
when its leashd is gone, whatever session that tree made for itself, and only then (a thread
of leashd ending is not leashd ending). Then the real thing: `leashd start -f` with a turn
waiting on the fake Messages API, or in the middle of a Bash call, killed with SIGKILL; and the
AI approver's one model call, in a process killed the same way.

Processes are found in /proc by parentage, from the process this test started; a process
counts as gone once it is no longer there, or a zombie (a container's pid 1 need not reap),
or its pid belongs to a later process.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from leashd import claude
from leashd.agent.runner import bundled_cli
from leashd.claude import rundir
from tests import test_e2e_daemon as e2e
from tests import test_e2e_telegram
from tests.conftest import ROOT
from tests.tmux import until

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the tether is Linux's (PR_SET_PDEATHSIG)"
)

world = e2e.world  # the fixture: a home, a project and the fake Messages API
bot = test_e2e_telegram.bot  # the fixture: the daemon under a fake Telegram

DEATH = 15.0  # seconds a killed tree gets to be gone, at most (it takes milliseconds)


# --- processes ----------------------------------------------------------------------------------

Proc = tuple[int, int]  # (pid, start time): a pid alone may be reused


def _stat(pid: int) -> tuple[int, str, int] | None:
    """(parent, state, start time) of a process, None when it is not there."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    fields = raw.rsplit(b")", 1)[1].split()
    return int(fields[1]), fields[0].decode(), int(fields[19])


def descendants(root: int) -> list[Proc]:
    kids: dict[int, list[Proc]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (st := _stat(int(entry))) is not None:
            kids.setdefault(st[0], []).append((int(entry), st[2]))
    found, todo = [], [root]
    while todo:
        for proc in kids.get(todo.pop(), []):
            found.append(proc)
            todo.append(proc[0])
    return found


def alive(proc: Proc) -> bool:
    st = _stat(proc[0])
    return st is not None and st[1] != "Z" and st[2] == proc[1]


def parent(pid: int) -> int:
    st = _stat(pid)
    assert st is not None, f"process {pid} is gone"
    return st[0]


def argv(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0")[:-1]]


def all_gone(procs: list[Proc], what: str) -> None:
    until(lambda: not any(alive(p) for p in procs), timeout=DEATH, what=what)


def stays(check: Callable[[], bool], seconds: float, what: str) -> None:
    """`check()` holds all along `seconds`: a negative, watched for a while (what did not
    happen cannot be waited for)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert check(), what
        time.sleep(0.05)


def with_home(home: Path) -> list[int]:
    """Every process with this HOME in its environment: what test_e2e_task_chat's orphan scan
    looks for."""
    needle = f"HOME={home}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        st = _stat(int(entry))
        if needle in environ and st is not None and st[1] != "Z":
            found.append(int(entry))
    return found


@pytest.fixture
def reaped() -> Iterator[list[Proc]]:
    """Processes this test started; whatever of them is left when it ends (it failed) is
    killed, so that a failure leaves nothing running."""
    procs: list[Proc] = []
    yield procs
    for proc in procs:
        if alive(proc):
            os.kill(proc[0], signal.SIGKILL)


# --- the tether with stand-ins for the CLI ------------------------------------------------------


async def _start(program: str, args: list[str], cwd: Path, env: dict[str, str]) -> tuple:
    """`program` started as the agent SDK starts the CLI (anyio.open_process, pipes, cwd,
    env), to its end: (exit code, stdout)."""
    import anyio

    process = await anyio.open_process([program, *args], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       cwd=str(cwd), env=env)  # fmt: skip
    assert process.stdout is not None
    out = b"".join([chunk async for chunk in process.stdout])
    return await process.wait(), out


def _as_started(tmp_path: Path, program: str, args: list[str], python: str | None = None):
    """What `program` reports started directly, and through a tether."""
    env = {"PATH": "/usr/bin:/bin", "PWD": str(tmp_path), "LANG": "C", "SPACED": "a b\tc",
           "EMPTY": "", "LEASHD_TOKEN": ""}  # fmt: skip
    direct = asyncio.run(_start(program, args, tmp_path, env))
    with claude.Tether(program, python=python) as t:
        tethered = asyncio.run(_start(t.path, args, tmp_path, env))
    return direct, tethered


SAME = ("Umask", "SigBlk", "SigIgn", "SigCgt", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb",
        "NoNewPrivs", "Seccomp", "Groups", "Uid", "Gid", "NSpgid", "NSsid")  # fmt: skip


def _status_fields(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name in SAME:
            out[name] = value.strip()
    return out


@pytest.mark.parametrize("form", ["python", "sh"])
def test_the_cli_starts_through_its_tether_as_it_would_without(tmp_path, form):
    # the stand-in is `cat` itself, exec'd as the CLI is: what it prints of /proc/self is the
    # CLI's argv, environment, working directory (a relative name), signal dispositions and
    # mask, umask, credentials, process group and session
    (tmp_path / "here.txt").write_text("in the working directory\n")
    python = None
    if form == "sh":  # an interpreter's path a `#!` line cannot hold: through /bin/sh
        spaced = tmp_path / "a python"
        spaced.mkdir()
        (spaced / "python").symlink_to(sys.executable)
        python = str(spaced / "python")
        assert not claude._shebang_safe(python)
    cat = shutil.which("cat")
    assert cat is not None
    args = ["/proc/self/cmdline", "/proc/self/environ", "here.txt", "/proc/self/status"]
    (code_d, out_d), (code_t, out_t) = _as_started(tmp_path, cat, args, python)
    assert code_d == code_t == 0
    head_d, status_d = out_d.split(b"Name:\t", 1)
    head_t, status_t = out_t.split(b"Name:\t", 1)
    if form == "python":
        assert head_t == head_d  # argv, environment (bytes, order), the file in the directory
    else:  # dash rebuilds the environment in an order of its own: the same entries
        assert sorted(head_t.split(b"\0")) == sorted(head_d.split(b"\0"))
    assert b"LC_CTYPE" not in head_t  # Python's start of the tether sets it for itself alone
    assert _status_fields(status_t.decode()) == _status_fields(status_d.decode())
    # the open files: 0, 1, 2 (and the one `ls` opens itself), as the SDK leaves them
    ls = shutil.which("ls")
    assert ls is not None
    (_, fds_d), (_, fds_t) = _as_started(tmp_path, ls, ["/proc/self/fd"], python)
    assert fds_t == fds_d == b"0\n1\n2\n3\n"


def test_the_tether_exits_as_the_cli_does_and_passes_sigterm_on(tmp_path):
    sh = shutil.which("sh")
    assert sh is not None
    env = {"PATH": "/usr/bin:/bin", "PWD": str(tmp_path)}
    with claude.Tether(sh) as t:
        assert asyncio.run(_start(t.path, ["-c", "exit 3"], tmp_path, env))[0] == 3
        assert asyncio.run(_start(t.path, ["-c", "kill -TERM $$"], tmp_path, env))[0] == -15

        async def terminated() -> tuple[int, bytes]:
            import anyio

            p = await anyio.open_process([t.path, "-c", "trap 'echo got TERM; exit 7' TERM; "
                                          "echo ready; while :; do sleep 0.05; done"],
                                         cwd=str(tmp_path), env=env)  # fmt: skip
            assert p.stdout is not None
            assert await p.stdout.receive() == b"ready\n"
            p.terminate()  # as the SDK stops a CLI that does not end by itself
            said = await p.stdout.receive()
            return await p.wait(), said

        assert asyncio.run(terminated()) == (7, b"got TERM\n")


DAEMON = """
import os, subprocess, sys, threading, time
from leashd import claude

tether = claude.Tether(sys.argv[1])
started = []

def start():
    started.append(subprocess.Popen([tether.path, *sys.argv[2:]], stdin=subprocess.DEVNULL))

if os.environ.get("FROM_A_THREAD"):
    worker = threading.Thread(target=start)
    worker.start()
    worker.join()  # the thread that started the tether has ended: leashd has not
else:
    start()
print("started", flush=True)
print(started[0].wait(), flush=True)  # what the agent SDK would see
"""


def _stand_in_daemon(tmp_path: Path, cli: str, *args: str, **env: str) -> subprocess.Popen:
    """A process in leashd's place: it starts `cli ARGS` through a tether and waits."""
    return subprocess.Popen(
        [sys.executable, "-c", DAEMON, cli, *args], cwd=tmp_path, stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env}, text=True,
    )  # fmt: skip


TREE = (
    # a child, one in its own session (out of any process group kill), one double-forked
    # (reparented at once); the sleeps are of this test's own, long past any wait here
    "sleep 600 & setsid sleep 601 & (sleep 602 &) ; echo $$ > ready; wait"
)


def _wait_for_tree(tmp_path: Path, daemon: subprocess.Popen) -> list[Proc]:
    until(lambda: (tmp_path / "ready").exists(), what="the stand-in CLI running")

    def sleeps() -> list[Proc]:
        return [p for p in descendants(daemon.pid) if argv(p[0])[:1] == ["sleep"]]

    until(lambda: len(sleeps()) == 3, what="its three sleeps")
    return descendants(daemon.pid)


def test_a_daemon_killed_takes_the_whole_tree_along(tmp_path, reaped):
    daemon = _stand_in_daemon(tmp_path, "/bin/sh", "-c", TREE)
    tree = _wait_for_tree(tmp_path, daemon)
    reaped.extend(tree)
    [(tether, _)] = [p for p in tree if parent(p[0]) == daemon.pid]
    cli = int((tmp_path / "ready").read_text())
    assert parent(cli) == tether  # the CLI runs under its tether, a child of leashd
    daemon.kill()
    daemon.wait()
    all_gone(tree, "the tether, the CLI and all the CLI started")


def test_a_thread_of_the_daemon_ending_is_not_the_daemon_ending(tmp_path, reaped):
    # the parent-death signal comes when the *thread* that started the tether ends
    daemon = _stand_in_daemon(tmp_path, "/bin/sh", "-c", TREE, FROM_A_THREAD="1")
    tree = _wait_for_tree(tmp_path, daemon)
    reaped.extend(tree)
    assert daemon.stdout is not None and daemon.stdout.readline() == "started\n"
    stays(lambda: all(alive(p) for p in tree), 1.0, "the CLI ended with a thread of leashd")
    daemon.kill()
    daemon.wait()
    all_gone(tree, "the tether, the CLI and all the CLI started")


def test_killing_the_tether_kills_the_cli(tmp_path, reaped):
    # the SDK's last resort against a CLI that will not stop: SIGKILL, to the tether. (What
    # the CLI started then outlives it, as it did when the SDK killed the CLI itself: a
    # process killed with SIGKILL ends nothing, and the tether is that process now.)
    daemon = _stand_in_daemon(tmp_path, "/bin/sh", "-c", "echo $$ > ready; exec sleep 600")
    until(lambda: (tmp_path / "ready").exists(), what="the stand-in CLI running")
    tree = descendants(daemon.pid)
    reaped.extend(tree)
    [(tether, _)] = [p for p in tree if parent(p[0]) == daemon.pid]
    cli = int((tmp_path / "ready").read_text())
    os.kill(tether, signal.SIGKILL)
    all_gone([p for p in tree if p[0] == cli], "the CLI")
    assert daemon.stdout is not None
    said = daemon.stdout.read().split()  # the daemon ends once its tether has
    assert said == ["started", str(-signal.SIGKILL)]


def test_a_tether_whose_daemon_is_already_gone_starts_nothing(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid no process has any more: the daemon that wrote the stub, killed
    stub = tmp_path / "stub"
    stub.write_text(claude.stub(sys.executable, "/bin/sh", dead.pid))
    stub.chmod(0o700)
    done = subprocess.run([str(stub), "-c", "touch started"], cwd=tmp_path, timeout=60)
    assert done.returncode == 1
    assert not (tmp_path / "started").exists()


def test_no_tether_where_there_can_be_none(tmp_path, monkeypatch):
    monkeypatch.setattr(rundir.tempfile, "gettempdir", lambda: str(tmp_path))
    (tmp_path / f"leashd-{os.getuid()}").mkdir(mode=0o755)  # not this user's alone
    assert claude.tether("/bin/sh") is None
    with claude.tethered("/bin/sh") as cli_path:
        assert cli_path is None  # the SDK starts the CLI itself, as before


# --- the real CLI, under `leashd start -f` --------------------------------------------------------

needs_cli = pytest.mark.skipif(bundled_cli() is None, reason="no bundled Claude Code CLI")


def _the_cli(daemon: int) -> tuple[list[Proc], int]:
    """Everything the daemon runs, and the CLI's pid, once the CLI is there."""
    cli = bundled_cli()
    found: list[int] = []

    def there() -> bool:
        found[:] = [p for p, _ in descendants(daemon) if argv(p)[:1] == [cli]]
        return len(found) == 1

    until(there, what="one CLI under the daemon")
    return descendants(daemon), found[0]


def same_start(tether: int, cli: int) -> None:
    """The CLI got what the SDK gave its tether: the arguments (the tether's own, past
    `python -IS STUB`), the environment (the block the tether was started with) and the
    working directory."""
    python, flags, _stub, *args = argv(tether)
    assert (python, flags) == (sys.executable, "-IS")  # the daemon's own Python, as this one
    assert argv(cli) == [bundled_cli(), *args]
    environ = [Path(f"/proc/{pid}/environ").read_bytes() for pid in (cli, tether)]
    assert environ[0] == environ[1]
    assert os.readlink(f"/proc/{cli}/cwd") == os.readlink(f"/proc/{tether}/cwd")


def _kill_mid_turn(world, bot, reaped, check_tree: Callable[[list[Proc]], None],
                   window: float = 3.0) -> None:  # fmt: skip
    assert bot.proc is not None
    daemon = bot.proc.pid
    tree, cli = _the_cli(daemon)
    reaped.extend(tree)
    tether = parent(cli)
    assert tether != daemon and parent(tether) == daemon  # leashd -> tether -> CLI
    same_start(tether, cli)
    check_tree(tree)
    seen = len(world.fake.requests)
    bot.proc.send_signal(signal.SIGKILL)
    bot.proc.wait(30)
    all_gone(tree, "the CLI and everything it started")
    assert with_home(world.home) == []  # nothing left for an orphan scan to find
    world.fake.release()  # a CLI still there would now go on to its next request
    stays(lambda: len(world.fake.requests) == seen, window, "a request after the daemon died")


@needs_cli
def test_a_daemon_killed_while_the_model_answers_takes_its_cli_along(world, bot, reaped):
    world.fake.hang()  # the answer starts, and never ends
    bot.start()
    bot.says("think it over")
    until(lambda: world.fake.requests, what="the model asked")

    def sandboxed(tree: list[Proc]) -> None:
        # the OS sandbox's network proxy, a child of the CLI: it would outlive the CLI alone
        assert any(argv(p)[:1] == ["socat"] for p, _ in tree), [argv(p) for p, _ in tree]

    _kill_mid_turn(world, bot, reaped, sandboxed)


@needs_cli
def test_a_daemon_killed_during_a_bash_call_ends_the_command_too(world, bot, reaped):
    # unsandboxed: no bubblewrap to take the command along when the CLI goes; had the command
    # run on, the CLI would have sent its output to the model within 3 s
    loop = "for i in 1 2 3; do cat README.md; sleep 1; done"
    world.fake.call("Bash", {"command": loop, "description": "wait a little"})
    world.fake.say("Done.")
    bot.start(LEASHD_SANDBOX="off")
    bot.says("run the loop")

    def command_running(tree: list[Proc]) -> None:
        assert any(argv(p)[:1] == ["sleep"] for p, _ in tree), [argv(p) for p, _ in tree]

    assert bot.proc is not None
    until(lambda: any(argv(p)[:1] == ["sleep"] for p, _ in descendants(bot.proc.pid)),
          what="the Bash call running")  # fmt: skip
    _kill_mid_turn(world, bot, reaped, command_running, window=5.0)


ASK = """
import asyncio
from leashd.approvers.model import ask_model
print(asyncio.run(ask_model("You are the approver of leashd.", "May I?", timeout=600)))
"""


@needs_cli
def test_the_ai_approvers_model_call_dies_with_its_process(world, reaped):
    world.fake.hang()
    asker = subprocess.Popen([sys.executable, "-c", ASK], cwd=world.proj,
                             env={**world.env, "PYTHONPATH": str(ROOT)})  # fmt: skip
    try:
        until(lambda: world.fake.requests, what="the model asked")
        tree, cli = _the_cli(asker.pid)
        reaped.extend(tree)
        assert parent(parent(cli)) == asker.pid
        same_start(parent(cli), cli)
        seen = len(world.fake.requests)
        asker.kill()
        asker.wait(30)
        all_gone(tree, "the approver's CLI")
        world.fake.release()
        stays(lambda: len(world.fake.requests) == seen, 3.0, "a request after it died")
    finally:
        if asker.poll() is None:
            asker.kill()
            asker.wait()
