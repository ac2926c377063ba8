"""How long the `leashd` command takes from start to answer, beside `ruff --version` measured
in the same run: `leashd --help`, `leashd policy explain -- ls`, `leashd policy eval` of one
call, and `leashd policy lint` of the default policies answered from the lint cache.

Each command runs as its own process, as a user runs it (the `leashd` console script of this
interpreter), --repeat times, the commands taking turns so that whatever else the machine
does falls on all of them alike. CPU is the child's user + system time (`wait4`), wall the
time from spawn to exit. One warm-up run of each comes first (the lint cache), and leashd's
bytecode is compiled beforehand, as installing it does.

The figures are for leashd as installed: with `compiled/` current for the built-in policies.
In a checkout whose `compiled/` is stale (leashd's source or a policy edited since the last
`leashd policy compile`), leashd, the policies and the grammar are copied to a scratch
directory, compiled there and run from there (`--in-place`: measure the checkout as it is).

`--checkout DIR`: measure another tree of leashd (say, a copy of the code before a change),
always from a scratch copy.

Run: python benchmarks/bench_cli.py [--repeat 20] [--in-place] [--checkout DIR]
"""

from __future__ import annotations

import argparse
import compileall
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, machine, p99

CALL = '{"tool": "Bash", "input": {"command": "ls"}}\n'
TARGETS_MS = {"--help": 100, "explain -- ls": 250, "eval, one call": 250, "lint, cached": 300}


def commands(leashd: list[str], call_file: Path) -> dict[str, list[str]]:
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    out = {
        "--help": [*leashd, "--help"],
        "explain -- ls": [*leashd, "policy", "explain", "--", "ls"],
        "eval, one call": [*leashd, "policy", "eval", "--calls", str(call_file)],
        "lint, cached": [*leashd, "policy", "lint"],
    }
    if ruff:
        out["ruff --version"] = [ruff, "--version"]
    return out


def run(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one run; a failing command stops the benchmark."""
    t = time.perf_counter()
    child = subprocess.Popen(
        argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    assert child.stderr is not None
    err = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - t
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {child.returncode}:\n{err.decode()}")
    return usage.ru_utime + usage.ru_stime, wall


def compiled_current(env: dict[str, str], cwd: Path) -> bool:
    """Whether the checkout's compiled/ is current (as `leashd policy compile --check`)."""
    check = [sys.executable, "-m", "leashd", "policy", "compile", "--check"]
    return subprocess.run(check, env=env, cwd=cwd, capture_output=True).returncode == 0


def scratch_copy(checkout: Path, into: Path) -> None:
    """leashd, its data and a current compiled/ under `into` (run with PYTHONPATH=into)."""
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("leashd", "policies", "grammar", "compiled"):
        shutil.copytree(checkout / name, into / name, ignore=skip)
    shutil.copytree(checkout / "tests" / "corpus", into / "tests" / "corpus", ignore=skip)
    # run in `into`: `python -m` puts the working directory first on the path, and a
    # checkout there would be the leashd that runs (and its compiled/ the one written)
    env = {**os.environ, "PYTHONPATH": str(into)}
    compile_ = [sys.executable, "-m", "leashd", "policy", "compile", "--out", "compiled"]
    subprocess.run(compile_, env=env, cwd=into, check=True, capture_output=True)
    check = [sys.executable, "-m", "leashd", "policy", "compile", "--check"]
    if subprocess.run(check, env=env, cwd=into, capture_output=True).returncode != 0:
        raise SystemExit(f"{into}/compiled is not current after `leashd policy compile`")
    # bytecode, as an installed leashd has (PYTHONDONTWRITEBYTECODE would leave every run
    # compiling leashd's source again)
    compileall.compile_dir(str(into / "leashd"), quiet=1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--in-place", action="store_true", help="Measure the checkout as it is.")
    ap.add_argument("--checkout", type=Path, help="Another leashd tree, from a scratch copy.")
    args = ap.parse_args()
    script = Path(sys.executable).with_name("leashd")
    leashd = [str(script)] if script.exists() else [sys.executable, "-m", "leashd"]
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        work = Path(tmp)
        env = {**os.environ, "LEASHD_CACHE_DIR": str(work / "cache")}
        env.pop("PYTHONPATH", None)
        where = "the checkout, compiled/ current"
        if args.checkout or not compiled_current(env, work):
            if args.in_place and not args.checkout:
                where = "the checkout, compiled/ stale (built-ins compiled from YAML)"
                if os.environ.get("PYTHONDONTWRITEBYTECODE"):
                    where += "; PYTHONDONTWRITEBYTECODE is set: bytecode may be missing"
            else:
                checkout = (args.checkout or ROOT).resolve()
                scratch_copy(checkout, work / "leashd-copy")
                env["PYTHONPATH"] = str(work / "leashd-copy")
                where = f"a copy of {checkout} with compiled/ regenerated"
        call_file = work / "call.jsonl"
        call_file.write_text(CALL, encoding="utf-8")
        cmds = commands(leashd, call_file)
        for argv in cmds.values():  # warm-up: bytecode, the lint cache
            run(argv, env, work)
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in cmds}
        for _ in range(args.repeat):
            for name, argv in cmds.items():
                samples[name].append(run(argv, env, work))
    print(f"{machine()}; {args.repeat} runs each; leashd from {where}")
    print()
    print("| command | CPU median ms | CPU p99 ms | wall median ms | wall p99 ms | target |")
    print("|---|---|---|---|---|---|")
    for name, values in samples.items():
        cpu = [c * 1000 for c, _ in values]
        wall = [w * 1000 for _, w in values]
        target = f"< {TARGETS_MS[name]} ms" if name in TARGETS_MS else ""
        print(
            f"| `{name}` | {statistics.median(cpu):.0f} | {p99(cpu):.0f} | "
            f"{statistics.median(wall):.0f} | {p99(wall):.0f} | {target} |"
        )


if __name__ == "__main__":
    main()
