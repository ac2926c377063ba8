"""The daemon and its audit log, end to end: `leashd run` as a real process with the real
Claude Code CLI against the fake Messages API, and `leashd audit` on the log it writes.

- A damaged log (cut short) stops the daemon before it takes a call, until `audit repair`
  seals the damage; `verify` then reports the sealed damage for good.
- A writer killed with SIGKILL in the middle of a large record leaves a torn last record: the
  daemon's next start seals it, keeping its bytes, and goes on.
- When the gate cannot write the log (the file may not grow: a full disk), the calls are
  denied and `leashd run` exits 3.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from leashd.agent.runner import bundled_cli
from leashd.gate.audit import AuditLog, records
from tests.conftest import worlds_dir
from tests.fakes.anthropic_api import FakeAnthropic

LEASHD = [sys.executable, "-m", "leashd.cli"]

pytestmark = pytest.mark.skipif(bundled_cli() is None, reason="no bundled Claude Code CLI")


class World:
    def __init__(self, root: Path, fake: FakeAnthropic) -> None:
        self.home = root / "home"
        self.proj = self.home / "proj"
        self.leashd_home = self.home / ".leashd"
        self.proj.mkdir(parents=True)
        self.leashd_home.mkdir()
        (self.proj / "notes.txt").write_text("hello\n")
        (self.leashd_home / "config.yaml").write_text(f"approved_directories: [{self.proj}]\n")
        self.fake = fake
        self.env = {
            **fake.env(str(self.home)),
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LEASHD_HOME": str(self.leashd_home),
            "LEASHD_AUDIT_FSYNC": "always",
            "LEASHD_STORAGE_BACKEND": "memory",
            "LANG": "C.UTF-8",
        }

    @property
    def audit(self) -> Path:
        return self.leashd_home / "audit.jsonl"

    def leashd(self, *args: str, preexec=None, timeout: float = 180):  # type: ignore[no-untyped-def]
        return subprocess.run(
            [*LEASHD, *args],
            env=self.env,
            cwd=self.proj,
            capture_output=True,
            text=True,
            timeout=timeout,
            preexec_fn=preexec,
        )

    def run(self, prompt: str, preexec=None):  # type: ignore[no-untyped-def]
        return self.leashd("run", "--dir", str(self.proj), "-p", prompt, preexec=preexec)


@pytest.fixture
def world():
    root = worlds_dir() / uuid.uuid4().hex[:12]
    root.mkdir()
    with FakeAnthropic() as fake:
        yield World(root, fake)
    shutil.rmtree(root, ignore_errors=True)


def test_a_log_cut_short_stops_the_daemon_until_repair_seals_it(world):
    world.fake.call("Bash", {"command": "cat notes.txt", "description": "read"})
    world.fake.say("first")
    assert world.run("one").returncode == 0
    world.fake.call("Bash", {"command": "cat notes.txt", "description": "read"})
    world.fake.say("second")
    assert world.run("two").returncode == 0
    rows = world.audit.read_bytes().splitlines(keepends=True)
    assert len(rows) == 2
    world.audit.write_bytes(b"".join(rows[:-1]))  # the last record deleted
    before = world.audit.read_bytes()
    asked = len(world.fake.requests)

    p = world.run("three")
    assert p.returncode == 3, p.stderr
    assert "the audit log cannot be continued" in p.stderr and "audit repair" in p.stderr
    assert "record 2 is missing (the log was cut short)" in p.stderr
    assert world.audit.read_bytes() == before  # nothing appended, no fresh chain
    assert len(world.fake.requests) == asked  # the agent never started

    v = world.leashd("audit", "verify")
    assert v.returncode == 1 and "record 2 is missing: the log was cut short" in v.stdout, v.stdout
    r = world.leashd("audit", "repair")
    assert r.returncode == 0 and "sealed: record 2 is missing" in r.stdout, r.stdout + r.stderr
    world.fake.say("back")
    assert world.run("four").returncode == 0
    v = world.leashd("audit", "verify")
    assert v.returncode == 0, v.stdout
    assert "notice:" in v.stdout and "sealed damage" in v.stdout and "cut short" in v.stdout


_WRITER = """
import sys
from leashd.gate.audit import AuditLog
log = AuditLog(sys.argv[1], fsync="never")
big = "x" * (24 << 20)
print("ready", flush=True)
i = 0
while True:
    log.append("decision", {"tool": "Bash", "decision": "allow", "i": i, "pad": big})
    i += 1
"""


def _kill_mid_append(path: Path, attempts: int = 60) -> bytes | None:
    """SIGKILL a process appending 24 MiB records until one dies inside a write; returns the
    torn bytes it left (None if no kill landed inside a write)."""
    for n in range(attempts):
        p = subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(path)],
            stdout=subprocess.PIPE,
            cwd=Path(__file__).resolve().parents[1],
        )
        assert p.stdout is not None and p.stdout.readline() == b"ready\n"
        size0 = path.stat().st_size
        # wait for the state: the file growing means a write is under way
        deadline = time.monotonic() + 10
        while path.stat().st_size == size0 and time.monotonic() < deadline:
            pass
        time.sleep(0.001 * (n % 7))
        p.send_signal(signal.SIGKILL)
        p.wait()
        data = path.read_bytes()
        if not data.endswith(b"\n"):
            return data[data.rfind(b"\n") + 1 :]
        # not torn: the next writer puts right whatever the kill left, as the daemon would
        with AuditLog(path, fsync="never") as log:
            log.resume()
    return None


def test_a_record_torn_by_sigkill_is_sealed_at_the_next_start_and_kept(world):
    torn = _kill_mid_append(world.audit)
    if torn is None:
        pytest.skip("no SIGKILL landed inside a write in 60 tries")
    torn_at = world.audit.stat().st_size - len(torn)
    v = world.leashd("audit", "verify")
    assert v.returncode == 1 and "ends inside a record" in v.stdout

    world.fake.say("still here")
    p = world.run("go on")  # the daemon starts: it seals the torn record and runs
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "still here"
    data = world.audit.read_bytes()
    assert data[torn_at : torn_at + len(torn)] == torn  # the torn bytes stay where they were
    seal = next(r for r in records(world.audit) if r.get("kind") == "seal")
    assert seal["offset"] == torn_at and seal["length"] == len(torn) + 1
    assert seal["sha256"] == hashlib.sha256(torn + b"\n").hexdigest()
    v = world.leashd("audit", "verify")
    assert v.returncode == 0, v.stdout
    assert "sealed damage: a record torn by a crash" in v.stdout


def _records_of(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_bytes().splitlines() if x.startswith(b"{")]


def test_run_exits_3_when_the_gate_could_not_audit_and_denied_for_it(world):
    # a log already a few MiB long, which the run may not grow (RLIMIT_FSIZE): as a full disk
    with AuditLog(world.audit, fsync="never") as log:
        for _ in range(40):
            log.append("decision", {"tool": "Read", "decision": "allow", "pad": "y" * 65536})
    size = world.audit.stat().st_size

    def no_growth() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size + 64, size + 64))

    world.fake.call("Bash", {"command": "cat notes.txt", "description": "read"})
    world.fake.say("could not read it")
    p = world.run("read the notes", preexec=no_growth)
    assert p.returncode == 3, (p.returncode, p.stderr)
    assert "the audit log could not be written" in p.stderr
    results = world.fake.tool_results()
    assert any("audit log cannot be written" in t for t in results.values()), results
    assert "hello" not in world.fake.seen()  # the call did not run
    assert world.audit.stat().st_size == size  # and nothing half-written was left
    assert _records_of(world.audit)[-1]["tool"] == "Read"
