"""What the OS sandbox costs: per Bash call with the real Claude Code CLI, and per turn for the
settings (the walk of the approved directories for credentials).

Per call: turns of `--calls` Bash calls (`true`, which the policy allows at once) go through
`ClaudeAgent` with the sandbox enforced and off; turns of the two interleaved (AB BA) in one
process, against the fake Messages API of the tests (`tests/fakes/anthropic_api.py`). A
call's time is taken from the fake's side: from the request answered with the call's tool_use
to the request that brings its tool_result back. That span holds the reply's streaming, the
gate (PreToolUse hook), the CLI running the command (in bubblewrap, or not) and the next
request, the same in every mode but for the sandbox. Printed per mode: median and p90 per call,
the first call of a turn apart (the sandbox is set up then), and whole turns; then the
difference and the ratio.

Per turn: `sandbox.plan()` with the built-in policies' probe (as `ClaudeAgent._sandbox` does)
on generated trees of 1,000, 10,000 and 100,000 files, 0.1% of them credentials by name and
1% look-alikes the policy lets Read open. First run (the gate's memos empty) and the median
of `--runs` more (memos warm, as in a session's later turns).

Then the sandbox as leashd runs it in projects where the scan finds `--hidden` credential
files (test certificates, 100 to a directory): per-call times again, since each hidden path is
a mount at every call, with how many paths the settings hide after `sandbox.HIDDEN_PATHS`
(past it, directories are hidden whole) and the size of the settings file.

    python benchmarks/bench_sandbox.py [--calls 20] [--turns 8] [--hidden 100,300,1000]
                                       [--hidden-calls 10] [--runs 3]
                                       [--sizes 1000,10000,100000] [--skip-cli]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import logging
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import structlog
from _common import ROOT, machine

sys.path.insert(0, str(ROOT))  # the tests' fakes and world

from leashd.agent import sandbox
from leashd.agent.runner import AgentConfig, ClaudeAgent, bundled_cli
from leashd.gate.audit import AuditLog
from leashd.gate.gate import Gate, Session
from leashd.policy.loader import DEFAULT_POLICIES, load_compiled
from tests.conftest import agent_world

# (sandbox mode, environment on top of leashd's): the sandbox as leashd runs it; no sandbox.
CONFIGS = {
    "enforce": ("enforce", {}),
    "off": ("off", {}),
}


def pct(values: list[float], q: float) -> float:
    """The q-quantile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --- per Bash call, with the real CLI ------------------------------------------------------


class Clock:
    """When each request reached the fake API, and which tool_use its reply carried."""

    def __init__(self, fake) -> None:
        self.seen: list[tuple[float, dict, list[str]]] = []  # (time, body, tool ids replied)
        self._lock = threading.Lock()
        original = fake._next

        def timed(body):
            t = time.perf_counter()
            reply = original(body)
            ids = [b["id"] for b in (reply.blocks if reply else []) if b["type"] == "tool_use"]
            with self._lock:
                self.seen.append((t, body, ids))
            return reply

        fake._next = timed

    def reset(self) -> None:
        with self._lock:
            self.seen.clear()

    def spans(self, ids: list[str]) -> list[float]:
        """Seconds from the request answered with each tool_use to the one with its result."""
        asked = {i: t for t, _, replied in self.seen for i in replied}
        back: dict[str, float] = {}
        for t, body, _ in self.seen:  # in order: the first request that holds the result
            for msg in body.get("messages") or []:
                content = msg.get("content") if isinstance(msg, dict) else None
                for block in content if isinstance(content, list) else []:
                    if isinstance(block, dict) and block.get("type") == "tool_result":
                        back.setdefault(block["tool_use_id"], t)
        missing = [i for i in ids if i not in asked or i not in back]
        if missing:
            raise RuntimeError(f"no timing for {len(missing)} calls: the turn went otherwise")
        return [back[i] - asked[i] for i in ids]


async def one_turn(agent: ClaudeAgent, fake, clock: Clock, session: Session, calls: int):
    clock.reset()
    ids = [fake.call("Bash", {"command": "true", "description": "nothing"}) for _ in range(calls)]
    fake.say("done")

    async def on_event(event) -> None:
        pass

    t0 = time.perf_counter()
    result = await agent.run(session, "go", resume=None, on_event=on_event, ask=None)
    took = time.perf_counter() - t0
    if result.error:
        raise RuntimeError(f"the turn failed: {result.error}")
    results = fake.tool_results()
    failed = [i for i in ids if results.get(i) != "(Bash completed with no output)"]
    if failed:
        raise RuntimeError(f"a call did not run as expected: {results.get(failed[0])!r}")
    return clock.spans(ids), took


def per_call(calls: int, turns: int) -> dict[str, dict[str, list[float]]]:
    out = {c: {"first": [], "rest": [], "turn": []} for c in CONFIGS}
    with agent_world() as (fake, root, home, proj):
        (proj / "README.md").write_text("a project\n")
        (proj / ".env").write_text("TOKEN=not-for-the-agent\n")  # one secret to hide
        gate = Gate.from_specs([], AuditLog(root / "audit.jsonl", fsync="never"),
                               approved_dirs=[str(proj)], home=str(home))  # fmt: skip
        agents = {c: ClaudeAgent(gate, AgentConfig(timeout=300, env=env,
                                                   sandbox=sandbox.SandboxConfig(mode=mode)))
                  for c, (mode, env) in CONFIGS.items()}  # fmt: skip
        clock = Clock(fake)
        session = Session("bench", "bench", str(proj), "default")
        # a turn of each first, unmeasured: the CLI's first start, caches made, stubs written
        for m in CONFIGS:
            asyncio.run(one_turn(agents[m], fake, clock, session, 2))
        for i in range(turns):
            for m in list(CONFIGS) if i % 2 == 0 else list(CONFIGS)[::-1]:
                spans, took = asyncio.run(one_turn(agents[m], fake, clock, session, calls))
                out[m]["first"].append(spans[0])
                out[m]["rest"] += spans[1:]
                out[m]["turn"].append(took)
                print(f"  turn {i + 1}/{turns} {m:17}: {took:5.2f} s, call median "
                      f"{statistics.median(spans) * 1000:6.1f} ms", flush=True)  # fmt: skip
    return out


def many_hidden(hidden: int, calls: int) -> tuple[list[float], int, float, str | None]:
    """One turn of `calls` Bash calls under the sandbox (as leashd runs it) in a project where
    the scan finds `hidden` credential files (test certificates, 100 to a directory): each
    path hidden is one more mount for bubblewrap at every call. Returns the per-call times,
    the paths the scan hides (after HIDDEN_PATHS), the settings' size in KiB, and the error
    when the turn failed."""
    with agent_world() as (fake, root, home, proj):
        for i in range(hidden):
            (proj / f"certs{i // 100}").mkdir(exist_ok=True)
            (proj / f"certs{i // 100}" / f"test{i}.pem").write_text("-----BEGIN-----\n")
        gate = Gate.from_specs([], AuditLog(root / "audit.jsonl", fsync="never"),
                               approved_dirs=[str(proj)], home=str(home))  # fmt: skip
        probe = Session("bench", "bench", str(proj), "default")

        def is_secret(path: str) -> bool:
            return gate.decide(probe, "Read", {"file_path": path}).action == "deny"

        plan = sandbox.plan(sandbox.SandboxConfig(), gate.approved_dirs, str(home), is_secret,
                            sandbox.secret_globs(gate.compiled.rules))  # fmt: skip
        kib = len(json.dumps({"sandbox": plan.settings})) / 1024
        agent = ClaudeAgent(gate, AgentConfig(timeout=300))
        clock = Clock(fake)
        try:
            asyncio.run(one_turn(agent, fake, clock, probe, 1))  # the first start
            spans, took = asyncio.run(one_turn(agent, fake, clock, probe, calls))
        except RuntimeError as exc:
            return [], len(plan.secrets), kib, str(exc)
        print(f"  {hidden:,} hidden: {took:5.2f} s, call median "
              f"{statistics.median(spans) * 1000:6.1f} ms", flush=True)  # fmt: skip
    return spans, len(plan.secrets), kib, None


def report_calls(out: dict[str, dict[str, list[float]]], calls: int, turns: int) -> None:
    print(f"\n# per Bash call (`true`), real CLI {cli_version()}, {turns} turns × {calls} calls "
          f"per mode ({machine()})\n")  # fmt: skip
    print("| sandbox | calls | median ms | p90 ms | first call of a turn, median ms "
          "| turn median s |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for m in CONFIGS:
        every = out[m]["first"] + out[m]["rest"]
        print(f"| {m} | {len(every)} | {statistics.median(every) * 1000:.1f} | "
              f"{pct(every, 0.9) * 1000:.1f} | {statistics.median(out[m]['first']) * 1000:.1f} "
              f"| {statistics.median(out[m]['turn']):.2f} |")  # fmt: skip
    off = out["off"]["first"] + out["off"]["rest"]
    med_off, p90_off = statistics.median(off), pct(off, 0.9)
    print()
    for m in ("enforce",):
        on = out[m]["first"] + out[m]["rest"]
        med_on, p90_on = statistics.median(on), pct(on, 0.9)
        turn = statistics.median(out[m]["turn"]) - statistics.median(out["off"]["turn"])
        print(f"{m} against off, per call: +{(med_on - med_off) * 1000:.1f} ms median "
              f"({med_on / med_off:.2f}×), +{(p90_on - p90_off) * 1000:.1f} ms p90 "
              f"({p90_on / p90_off:.2f}×); per turn: +{turn:.2f} s")  # fmt: skip


def cli_version() -> str:
    import subprocess

    cli = bundled_cli()
    try:
        said = subprocess.run([cli, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired, TypeError):
        return "?"
    return said.stdout.split()[0] if said.stdout.split() else "?"


# --- per turn: the settings ---------------------------------------------------------------

SECRETS = (".env", "server.pem", "id_rsa", "credentials.json", "private.key")
LOOK_ALIKES = (".env.example", "server.pem.md", "id_rsa.pub", "credentials.md", "key.pub")


def grow(top: Path, files: int) -> None:
    """A tree of `files` files, 20 to a directory and up to 10 directories in each: 0.1% of
    the files credentials by name, 1% look-alikes the policy lets Read open, the rest source."""
    wanted = -(-files // 20)  # directories
    queue, made, dirs = collections.deque([top]), 0, 1
    top.mkdir(parents=True, exist_ok=True)
    while made < files:
        d = queue.popleft()
        for i in range(min(20, files - made)):
            k, kind = made % 100, made // 100 % 5
            secret = k == 0 and made % 1000 == 0
            name = SECRETS[kind] if secret else LOOK_ALIKES[kind] if k == 1 else f"m{i}.py"
            (d / name).touch()
            made += 1
        for j in range(min(10, wanted - dirs)):
            (d / f"pkg{j}").mkdir()
            queue.append(d / f"pkg{j}")
            dirs += 1


def per_turn(sizes: list[int], runs: int) -> None:
    compiled = load_compiled(DEFAULT_POLICIES)
    print(f"\n# sandbox.plan() per turn, default policies ({machine()})\n")
    print("| files | entries walked | hidden | first run s | warm median s |")
    print("|---|---|---|---|---|")
    for n in sizes:
        base = Path(tempfile.mkdtemp(prefix="leashd-bench-", dir=Path.home()))
        try:
            home = base / "home"
            proj = home / "proj"
            grow(proj, n)
            gate = Gate(compiled, AuditLog(base / "audit.jsonl", fsync="never"),
                        approved_dirs=[str(proj)], home=str(home))  # fmt: skip
            probe = Session("bench", "bench", str(proj), "default")

            def is_secret(path: str, gate=gate, probe=probe) -> bool:
                return gate.decide(probe, "Read", {"file_path": path}).action == "deny"

            globs = sandbox.secret_globs(gate.compiled.rules)
            config = sandbox.SandboxConfig()
            times, p = [], None
            for _ in range(runs + 1):
                t0 = time.perf_counter()
                p = sandbox.plan(config, [str(proj)], str(home), is_secret, globs,
                                 which=lambda _: None)  # fmt: skip
                times.append(time.perf_counter() - t0)
            assert p is not None
            print(f"| {n:,} | {p.scanned:,} | {len(p.secrets):,} | {times[0]:.3f} | "
                  f"{statistics.median(times[1:]):.3f} |", flush=True)  # fmt: skip
        finally:
            shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=20, help="Bash calls per turn")
    ap.add_argument("--turns", type=int, default=8, help="measured turns per mode")
    ap.add_argument("--runs", type=int, default=3, help="warm runs of plan() per size")
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--hidden", default="100,200,1000,5000",
                    help="files hidden in the project, per measurement ('': skip)")  # fmt: skip
    ap.add_argument("--hidden-calls", type=int, default=10, help="Bash calls per hidden turn")
    ap.add_argument("--skip-cli", action="store_true", help="only plan()")
    args = ap.parse_args()
    if not args.skip_cli:
        if bundled_cli() is None:
            raise SystemExit("no bundled Claude Code CLI (claude-agent-sdk)")
        found = sandbox.problems()
        if found:
            raise SystemExit(sandbox.unavailable_text(found))
        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
        report_calls(per_call(args.calls, args.turns), args.calls, args.turns)
        if args.hidden:
            print(f"\n# the sandbox with many files hidden, {args.hidden_calls} calls each\n")
            rows = [(n, *many_hidden(n, args.hidden_calls)) for n in _ints(args.hidden)]
            print("\n| credential files | paths hidden | settings KiB | median ms | p90 ms |")
            print("|---|---|---|---|---|")
            for n, spans, paths, kib, error in rows:
                if error:
                    print(f"| {n:,} | {paths:,} | {kib:.0f} | {error[:80]} | |")
                else:
                    print(f"| {n:,} | {paths:,} | {kib:.0f} | "
                          f"{statistics.median(spans) * 1000:.1f} | "
                          f"{pct(spans, 0.9) * 1000:.1f} |")  # fmt: skip
    per_turn(_ints(args.sizes), args.runs)


def _ints(text: str) -> list[int]:
    return [int(s) for s in text.split(",") if s.strip()]


if __name__ == "__main__":
    main()
