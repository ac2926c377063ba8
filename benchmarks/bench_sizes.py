"""Cold decision time against the size of one call, for the shapes that used to freeze the gate.

Each shape is generated at 10, 100, 1,000, 10,000 and 100,000 words (and the ones that stay
under the command bound at more), plus a 1 MB command; every call is decided with every cache
emptied first (cold), `--runs` times, on default + dev-tools in a real project directory (so
paths are resolved on a real filesystem). Printed per size: the median and the slowest run,
the time per word, the growth against the size ten times smaller (a linear stage gives 10x or
less; the bound makes it fall), the decision and its layer (`limit`: refused at a bound).

Then the event loop: each shape's slowest call goes through `Gate.check` while a ticker on
the same loop measures how late it wakes (every millisecond); the worst lateness is printed,
against a baseline pass of the ticker with no call at all, in the same process.

    python benchmarks/bench_sizes.py [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _common import machine

from leashd.gate.audit import AuditLog
from leashd.gate.gate import Gate, Session
from leashd.policy import Evaluator
from leashd.policy.facts import Context
from leashd.policy.loader import DEFAULT_POLICIES, load_compiled

SIZES = (10, 100, 1_000, 10_000, 100_000)


def nested_substitutions(n: int) -> str:
    return "echo " + "$(echo " * n + "x" + ")" * n


def shapes(project: str) -> dict[str, Callable[[int], tuple[str, dict]]]:
    return {
        "git add N files": lambda n: (
            "Bash",
            {"command": "git add " + " ".join(f"src/m{i}.py" for i in range(n))},
        ),
        "ls|ls|… N": lambda n: ("Bash", {"command": "ls|" * n + "ls"}),
        "sudo sudo … N": lambda n: ("Bash", {"command": "sudo " * n + "ls"}),
        "bash -c … N": lambda n: ("Bash", {"command": "bash -c " * n + "ls"}),
        "$(echo $(… N deep": lambda n: ("Bash", {"command": nested_substitutions(n)}),
        "ls x x … N": lambda n: ("Bash", {"command": "ls " + "x " * n}),
        "Read, N-component path": lambda n: (
            "Read",
            {"file_path": project + "/" + "/".join(["d"] * n) + "/f.py"},
        ),
        # Shapes found while bounding the above: tree-sitter's error recovery on malformed
        # input, a heredoc line of expansions, text outside ASCII (every regex on `re`), a
        # long word under nested substitutions, an MCP input of many commands.
        "malformed: ))a//e N": lambda n: ("Bash", {"command": "echo " + "))a//e" * n}),
        "heredoc line of N $x/": lambda n: ("Bash", {"command": "cat <<E\n" + "$x/" * n + "\nE"}),
        "é then N http://": lambda n: ("Bash", {"command": "echo 'é" + "http://" * n + "'"}),
        "N KB word, 100 $( deep": lambda n: (
            "Bash",
            {"command": "echo " + "$(echo " * 100 + "x" * (n * 1024 // 100) + ")" * 100},
        ),
        "MCP input, N commands": lambda n: ("mcp__sh__run", {"command": ["ls src"] * n}),
    }


def cold(ev: Evaluator, tool: str, tool_input: dict, runs: int) -> tuple[list[float], object]:
    times, decision = [], None
    for _ in range(runs):
        ev.clear_caches()
        t0 = time.perf_counter()
        decision = ev.evaluate(tool, tool_input)
        times.append((time.perf_counter() - t0) * 1000)
    return times, decision


async def loop_lateness(action: Callable[[], object] | None) -> float:
    """The worst lateness (ms) of a 1 ms ticker while `action` (a coroutine factory) runs."""
    worst = 0.0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal worst
        while not done.is_set():
            t0 = time.perf_counter()
            await asyncio.sleep(0.001)
            worst = max(worst, (time.perf_counter() - t0) * 1000 - 1)

    tick = asyncio.create_task(ticker())
    await asyncio.sleep(0.01)
    if action is None:
        await asyncio.sleep(0.5)
    else:
        await action()
    done.set()
    await tick
    return worst


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    compiled = load_compiled(DEFAULT_POLICIES)
    with tempfile.TemporaryDirectory(prefix="leashd-bench-", dir=Path.home()) as tmp:
        project = str(Path(tmp, "project"))
        Path(project, "src").mkdir(parents=True)
        ctx = Context.create(project, str(Path.home()), [project], "default")
        ev = Evaluator(compiled, ctx)
        print(f"# cold decision time by call size ({machine()}, {args.runs} runs each)\n")
        print("| shape | N | bytes | median ms | max ms | µs/word | ×10 growth | decision |")
        print("|---|---|---|---|---|---|---|---|")
        slowest: dict[str, tuple[float, str, dict]] = {}  # the slowest call of each shape
        for name, make in shapes(project).items():
            before = None
            for n in SIZES:
                tool, tool_input = make(n)
                size = len(json.dumps(tool_input, ensure_ascii=False).encode())
                times, d = cold(ev, tool, tool_input, args.runs)
                med = statistics.median(times)
                growth = f"{med / before:.1f}" if before else "—"
                before = med
                verdict = f"{d.action} ({d.layer})"
                print(f"| {name} | {n:,} | {size:,} | {med:.2f} | {max(times):.2f} | "
                      f"{med * 1000 / n:.2f} | {growth} | {verdict} |")  # fmt: skip
                if med >= slowest.get(name, (-1.0,))[0]:
                    slowest[name] = (med, tool, tool_input)
        megabyte = ("Bash", {"command": "ls " + "x " * (1 << 19)})
        times, d = cold(ev, *megabyte, args.runs)
        print(f"| 1 MB command | {1 << 19:,} | {1 << 20:,} | {statistics.median(times):.2f} | "
              f"{max(times):.2f} | — | — | {d.action} ({d.layer}) |")  # fmt: skip
        slowest["1 MB command"] = (statistics.median(times), *megabyte)

        gc.freeze()  # as the daemon does once it is built (leashd/daemon/app.py)
        print("\n# the event loop while the gate decides the slowest call of each shape\n")
        print("| call | worst ticker lateness ms |")
        print("|---|---|")
        with AuditLog(Path(tmp, "audit.jsonl"), fsync="never") as audit:
            gate = Gate(compiled, audit, approved_dirs=[project], temp_dirs=())
            session = Session("bench", "bench", project)
            print(f"| (nothing: baseline) | {asyncio.run(loop_lateness(None)):.2f} |")
            for name, (_, tool, tool_input) in slowest.items():
                lateness = asyncio.run(
                    loop_lateness(lambda t=tool, i=tool_input: gate.check(session, t, i))
                )
                print(f"| {name} | {lateness:.2f} |")


if __name__ == "__main__":
    main()
