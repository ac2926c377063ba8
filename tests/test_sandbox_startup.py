"""Where the OS sandbox cannot run: `start`, `start -f`, `run` and `init` stop and say what to
install (never a silent fall back to the policy alone), LEASHD_SANDBOX=off lets them run, and
with it off the user is told: `leashd status`, `/status`, and the first turn of a session.

The commands run as real processes with a PATH that has every tool but bwrap; the engine's
part runs in this process with a stand-in agent (no agent turn is needed to pin it)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from leashd.agent.events import TurnResult
from leashd.agent.sandbox import SandboxConfig
from leashd.daemon.engine import SANDBOX_OFF, Engine
from leashd.daemon.storage import MemoryStore
from leashd.gate.audit import AuditLog
from leashd.gate.gate import Gate

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "123456789:AAE" + "x" * 32
# what the commands could reach for: all of it there but bubblewrap
TOOLS = ("python3", "git", "socat", "sh", "env", "true", "node", "rg")


def path_without(tmp_path: Path, missing: str = "bwrap") -> str:
    """A PATH of symlinks to the tools this machine has, `missing` left out."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in (*TOOLS, "bwrap"):
        real = shutil.which(tool)
        if tool != missing and real and not (bin_dir / tool).exists():
            (bin_dir / tool).symlink_to(real)
    return str(bin_dir)


@pytest.fixture
def world(tmp_path):
    (tmp_path / "proj").mkdir()
    (tmp_path / "home").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEASHD_")}
    env.update(
        PATH=path_without(tmp_path),
        HOME=str(tmp_path / "home"),
        LEASHD_HOME=str(tmp_path / "leashd"),
        LEASHD_APPROVED_DIRECTORIES=str(tmp_path / "proj"),
        ANTHROPIC_API_KEY="sk-ant-test",
        ANTHROPIC_BASE_URL="http://127.0.0.1:9",  # nothing would be reached, were it asked
        PYTHONPATH=str(ROOT),
    )
    return SimpleNamespace(root=tmp_path, env=env, home=tmp_path / "leashd")


def leashd(w, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "leashd.cli", *args],
        env={**w.env, **env},
        cwd=w.root,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def said_it_cannot_run(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 2, (done.stdout, done.stderr)
    err = done.stderr
    assert "the OS sandbox cannot run: bwrap is not installed" in err
    assert "sudo apt-get install bubblewrap socat" in err  # what to install
    assert "LEASHD_SANDBOX=off" in err  # and how to do without, on purpose
    if shutil.which("socat"):
        assert "socat is not installed" not in err  # the message names what is missing


# --- the commands stop ------------------------------------------------------------------------


def test_start_in_the_foreground_stops_before_the_daemon_starts(world):
    done = leashd(world, "start", "-f")
    said_it_cannot_run(done)
    assert "type a message" not in done.stdout  # no REPL
    assert not (world.home / "daemon.lock").exists()  # no daemon took the lock


def test_start_in_the_background_stops_before_spawning(world):
    bot = {"LEASHD_TELEGRAM_BOT_TOKEN": TOKEN, "LEASHD_ALLOWED_USER_IDS": "42"}
    try:
        done = leashd(world, "start", **bot)
    finally:
        leashd(world, "stop", "--timeout", "10", **bot)  # were one spawned, it ends here
    said_it_cannot_run(done)
    assert "leashd started" not in done.stdout
    assert not (world.home / "logs" / "daemon.out").exists()  # nothing was spawned
    assert not (world.home / "daemon.lock").exists()


def test_run_stops_before_the_agent(world):
    done = leashd(world, "run", "-p", "hi", "--dir", str(world.root / "proj"))
    said_it_cannot_run(done)
    assert done.stdout == ""
    assert not (world.home / "audit.jsonl").exists()  # no gate was built


def test_init_stops_before_asking_or_writing(world):
    done = leashd(world, "init", "-y", "--dir", str(world.root / "proj"))
    said_it_cannot_run(done)
    assert not (world.home / "config.yaml").exists()


def test_init_asks_nothing_before_it_stops(world):
    """Without -y init would prompt; it must stop before the first question."""
    done = leashd(world, "init")
    said_it_cannot_run(done)
    assert "Directories the agent may work in" not in done.stdout


def test_a_missing_socat_is_named_too(world):
    (world.root / "nosocat").mkdir()
    done = leashd(world, "start", "-f", PATH=path_without(world.root / "nosocat", "socat"))
    assert done.returncode == 2
    assert "socat is not installed" in done.stderr
    assert "bwrap is not installed" not in done.stderr


# --- LEASHD_SANDBOX=off lets them run ---------------------------------------------------------


def test_with_the_sandbox_off_init_runs_without_bubblewrap(world):
    done = leashd(world, "init", "-y", "--dir", str(world.root / "proj"), LEASHD_SANDBOX="off")
    assert done.returncode == 0, done.stderr
    assert (world.home / "config.yaml").is_file()


def test_with_the_sandbox_off_the_terminal_daemon_runs_without_bubblewrap(world):
    done = leashd(world, "start", "-f", LEASHD_SANDBOX="off")  # stdin at its end: it leaves
    assert done.returncode == 0, done.stderr
    assert "type a message" in done.stdout and "leashd stopped" in done.stdout
    assert "cannot run" not in done.stderr


def test_init_reads_the_sandbox_setting_of_a_config_that_no_longer_loads(world):
    """init mends a configuration whose directory is gone: its `sandbox: off` still counts."""
    world.home.mkdir()
    (world.home / "config.yaml").write_text(
        f"approved_directories: [{world.root / 'gone'}]\nsandbox: 'off'\n"
    )
    env = {k: v for k, v in world.env.items() if k != "LEASHD_APPROVED_DIRECTORIES"}
    done = subprocess.run(
        [sys.executable, "-m", "leashd.cli", "init", "-y", "--dir", str(world.root / "proj")],
        env=env, cwd=world.root, capture_output=True, text=True, timeout=60,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert str(world.root / "proj") in (world.home / "config.yaml").read_text()


# --- leashd status ----------------------------------------------------------------------------


def test_status_says_the_sandbox_is_off_and_where_that_was_set(world):
    done = leashd(world, "status", LEASHD_SANDBOX="off")
    assert done.returncode == 3  # not running, as before
    lines = done.stdout.splitlines()
    assert lines[0] == "leashd is not running."
    assert lines[1] == ("sandbox: off (LEASHD_SANDBOX=off): only the policy guards what Bash runs")


def test_status_names_the_config_file_that_turned_it_off(world):
    world.home.mkdir()
    (world.home / "config.yaml").write_text("sandbox: 'off'\n")
    done = leashd(world, "status")
    assert done.returncode == 3
    assert f"sandbox: off (config.yaml: {world.home / 'config.yaml'}:1)" in done.stdout


def test_status_says_the_sandbox_is_enforced_by_default(world):
    done = leashd(world, "status")
    assert done.returncode == 3
    assert "sandbox: enforced" in done.stdout and "off" not in done.stdout


# --- the engine: /status and the warning at a session's first turn ----------------------------


class Agent:
    """What the engine uses of the agent: its sandbox setting, run and interrupt."""

    def __init__(self, mode: str, log: list[str]) -> None:
        self.config = SimpleNamespace(sandbox=SandboxConfig(mode=mode))  # type: ignore[arg-type]
        self.log = log
        self.conversations = 0

    async def run(self, session, text, *, resume, on_event, ask, on_conversation, on_lost):
        self.log.append(f"run: {text}")
        if resume is None:
            self.conversations += 1
            resume = f"conv-{self.conversations}"
            await on_conversation(resume)
        return TurnResult(f"answer to {text}", resume)

    async def interrupt(self, session_id: str) -> bool:
        return False


class Connector:
    name = "terminal"

    def __init__(self, log: list[str], fail_sends: int = 0) -> None:
        self.log = log
        self.fail_sends = fail_sends

    async def send(self, chat, text, choices=()):
        if self.fail_sends:
            self.fail_sends -= 1
            raise ConnectionError("the network is down")
        self.log.append(f"send: {text}")

    async def event(self, chat, event):
        pass

    async def result(self, chat, result):
        self.log.append(f"result: {result.text}")

    async def ask(self, req):
        raise AssertionError("nothing is asked here")

    async def expired(self, req):
        pass

    async def busy(self, chat, text):
        return "queue"


@pytest.fixture
def engine_for(tmp_path):
    proj = tmp_path / "proj"
    proj.mkdir()
    audits: list[AuditLog] = []

    def make(mode: str, log: list[str], store: MemoryStore | None = None) -> Engine:
        audit = AuditLog(tmp_path / "audit.jsonl")
        audits.append(audit)
        gate = Gate.from_specs([], audit, approved_dirs=[str(proj)], home=str(tmp_path))
        return Engine(gate, Agent(mode, log), store or MemoryStore(),  # type: ignore[arg-type]
                      approvals=None, default_dir=str(proj))  # fmt: skip

    yield make
    for a in audits:
        a.close()


def say(engine: Engine, conn: Connector, *texts: str, chat: str = "c1") -> None:
    async def go():
        for text in texts:
            await engine.handle(conn, chat, "me", text)
            await engine.wait_idle(chat)

    asyncio.run(go())


def test_the_first_turn_of_a_session_is_warned_before_it_runs_when_the_sandbox_is_off(engine_for):
    log: list[str] = []
    e = engine_for("off", log)
    say(e, Connector(log), "one", "two")
    assert log == [
        f"send: {SANDBOX_OFF}",  # before the agent runs
        "run: one",
        "result: answer to one",
        "run: two",  # the turns after are not warned again
        "result: answer to two",
    ]
    assert "LEASHD_SANDBOX=off" in SANDBOX_OFF and "only the policy" in SANDBOX_OFF


def test_a_new_session_and_a_restarted_daemon_warn_again(engine_for):
    log: list[str] = []
    store = MemoryStore()
    e = engine_for("off", log, store)
    conn = Connector(log)
    say(e, conn, "one", "/clear", "two", "three")
    assert log.count(f"send: {SANDBOX_OFF}") == 2  # the first session, then the /clear one
    log.clear()
    restarted = engine_for("off", log, store)  # the same sessions, a new daemon
    say(restarted, conn, "four", "five")
    assert log[0] == f"send: {SANDBOX_OFF}" and log.count(f"send: {SANDBOX_OFF}") == 1
    assert "run: four" in log


def test_a_warning_that_could_not_be_sent_is_tried_at_the_next_turn(engine_for):
    log: list[str] = []
    e = engine_for("off", log)
    conn = Connector(log, fail_sends=1)
    say(e, conn, "one", "two")
    assert log == ["run: one", "result: answer to one",
                   f"send: {SANDBOX_OFF}", "run: two", "result: answer to two"]  # fmt: skip


def test_no_warning_when_the_sandbox_is_enforced(engine_for):
    log: list[str] = []
    say(engine_for("enforce", log), Connector(log), "one")
    assert log == ["run: one", "result: answer to one"]


def test_slash_status_says_whether_the_sandbox_is_on(engine_for):
    for mode, line in (("off", "Sandbox: OFF — only the policy guards what Bash runs"),
                       ("enforce", "Sandbox: enforced")):  # fmt: skip
        log: list[str] = []
        say(engine_for(mode, log), Connector(log), "/status")
        (status,) = [entry for entry in log if entry.startswith("send: Session")]
        assert line in status.splitlines()[-1], status
        assert all(not entry.startswith("run:") for entry in log)  # a command, not a turn
