"""The hook's cost per tool call, as Claude Code pays it (one process per call), side by side
with a published peer hook, `cc-safety-net`, on the same calls in the same run.

Each call is a hook input as Claude Code writes it (from the shared corpora, every `--every`th
call, paths moved into a real temporary project, since both hooks look at the filesystem),
piped into each hook command; the time is from spawn to exit. The hooks take turns call by
call, so both see the same machine. Measured:

- `leashd`: the installed command, `python -P -E -m leashd.hook.run`, with its server running
  (what every call after a session's first costs);
- `leashd --no-server`: the same command deciding in its own process (the first call, or an
  install with `--no-server`), on the first `--in-process` calls only;
- `cc-safety-net`: `node .../cc-safety-net.js hook --claude-code` (version `--peer-version`),
  installed with npm into `benchmarks/.cache/cc-safety-net` on first use (or `$CC_SAFETY_NET_JS`);
- the floor: `python -P -E -c pass` and `node -e ''`, a process that does nothing.

Both hooks run in a temporary HOME, so neither reads nor writes the user's configuration.
Run: python benchmarks/bench_hook.py [--every 6] [--rounds 3] [--in-process 10] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from _common import ROOT, load_corpus, machine, p99

PEER = "cc-safety-net"
PEER_VERSION = "2.4.5"
CACHE = ROOT / "benchmarks" / ".cache" / "cc-safety-net"


def peer_script(version: str) -> tuple[Path | None, str]:
    """The peer's entry script, installing it with npm if needed; (None, why) if it cannot."""
    given = os.environ.get("CC_SAFETY_NET_JS")
    if given:
        return Path(given), "from $CC_SAFETY_NET_JS"
    script = CACHE / "node_modules" / PEER / "dist" / "bin" / "cc-safety-net.js"
    if not script.exists():
        if shutil.which("npm") is None or shutil.which("node") is None:
            return None, "npm or node is not installed"
        CACHE.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["npm", "install", "--prefix", str(CACHE), "--no-audit", "--no-fund",
             f"{PEER}@{version}"],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        if done.returncode != 0 or not script.exists():
            return None, f"npm install {PEER}@{version} failed: {done.stderr.strip()[-300:]}"
    meta = json.loads((script.parent.parent.parent / "package.json").read_text())
    return script, f"{PEER} {meta.get('version')}"


def hook_inputs(every: int, project: Path, home: Path) -> list[tuple[str, bytes]]:
    """(label, stdin) for every `every`th call of both corpora, in a real project."""
    out = []
    for corpus in ("everyday", "adversarial"):
        for row in load_corpus(corpus)[::every]:
            text = json.dumps(row["input"])
            text = text.replace("/home/dev/project", str(project)).replace("/home/dev", str(home))
            data = {
                "session_id": "bench", "transcript_path": str(home / "t.jsonl"),
                "cwd": str(project), "permission_mode": "default",
                "hook_event_name": "PreToolUse", "tool_name": row["tool"],
                "tool_input": json.loads(text), "tool_use_id": f"toolu_{row['id']}",
            }  # fmt: skip
            out.append((f"{corpus}:{row['id']}", json.dumps(data).encode()))
    return out


def timed(cmd: list[str], stdin: bytes, env: dict[str, str], cwd: Path) -> tuple[float, str]:
    """Milliseconds from spawn to exit, and the decision (`none`: no answer, Claude Code's
    own rules decide)."""
    t0 = time.perf_counter()
    done = subprocess.run(cmd, input=stdin, env=env, cwd=cwd, capture_output=True)
    ms = (time.perf_counter() - t0) * 1000
    if done.returncode == 2:
        return ms, "deny"
    try:
        return ms, json.loads(done.stdout)["hookSpecificOutput"]["permissionDecision"]
    except (ValueError, KeyError, TypeError):
        return ms, "none"


def stats(samples: list[float]) -> dict[str, float]:
    return {"median_ms": round(statistics.median(samples), 1), "p99_ms": round(p99(samples), 1),
            "n": len(samples)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--every", type=int, default=6, help="take every Nth call of each corpus")
    ap.add_argument("--rounds", type=int, default=3, help="times each call is run per hook")
    ap.add_argument("--in-process", type=int, default=10, help="calls timed with --no-server")
    ap.add_argument("--peer-version", default=PEER_VERSION)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    base = Path(tempfile.mkdtemp(prefix="bench-hook-"))
    home, project = base / "home", base / "home" / "project"
    (project / "app").mkdir(parents=True)
    (project / "app" / "main.py").write_text("print('hi')\n")
    (project / ".env").write_text("KEY=x\n")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LEASHD_", "CLAUDE", "CC_SAFETY_NET"))}  # fmt: skip
    env.update(HOME=str(home), CLAUDE_PROJECT_DIR=str(project))
    py = [sys.executable, "-P", "-E"]
    leashd = [*py, "-m", "leashd.hook.run"]
    hooks: dict[str, list[str]] = {"leashd": leashd}
    script, peer_note = peer_script(args.peer_version)
    if script is not None:
        hooks[PEER] = ["node", str(script), "hook", "--claude-code"]
    floors = {"python -P -E -c pass": [*py, "-c", "pass"]}
    if shutil.which("node"):
        floors["node -e ''"] = ["node", "-e", ""]
    calls = hook_inputs(args.every, project, home)

    times: dict[str, list[float]] = {name: [] for name in [*hooks, "leashd --no-server", *floors]}
    decided: dict[str, Counter[str]] = {name: Counter() for name in hooks}
    try:
        timed(leashd, calls[0][1], env, project)  # starts the server
        for _ in range(50):
            if timed(leashd, calls[0][1], env, project)[0] < 500:
                break
            time.sleep(0.1)
        for rnd in range(args.rounds):
            for _label, stdin in calls:
                for name, cmd in hooks.items():
                    ms, what = timed(cmd, stdin, env, project)
                    times[name].append(ms)
                    if rnd == 0:
                        decided[name][what] += 1
            for name, cmd in floors.items():
                for _ in range(20):
                    times[name].append(timed(cmd, b"", env, project)[0])
        for _label, stdin in calls[: args.in_process]:
            times["leashd --no-server"].append(
                timed([*leashd, "--no-server"], stdin, env, project)[0]
            )
    finally:
        with contextlib.suppress(Exception):
            subprocess.run([*py, "-m", "leashd.hook", "stop"], env=env, capture_output=True,
                           timeout=30)  # fmt: skip
        shutil.rmtree(base, ignore_errors=True)

    result = {
        "machine": machine(),
        "calls": len(calls),
        "rounds": args.rounds,
        "peer": peer_note,
        "latency": {name: stats(v) for name, v in times.items() if v},
        "decisions": {name: dict(c) for name, c in decided.items()},
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{machine()}; {len(calls)} calls x {args.rounds} rounds; peer: {peer_note}")
    print("| hook | n | median ms | p99 ms |")
    print("|---|---|---|---|")
    for name, s in result["latency"].items():
        print(f"| {name} | {s['n']} | {s['median_ms']} | {s['p99_ms']} |")
    print()
    for name, c in decided.items():
        shown = ", ".join(f"{k} {v}" for k, v in sorted(c.items()))
        print(f"{name} decisions: {shown}")


if __name__ == "__main__":
    main()
