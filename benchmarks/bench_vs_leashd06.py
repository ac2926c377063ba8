"""leashd against the published leashd 0.6.0 policy engine, same calls, same run.

0.6.0 is installed into its own venv (the package names collide): `benchmarks/.venv-leashd06`,
made on first use with `pip install leashd==0.6.0`, or the interpreter named by
$LEASHD06_PYTHON. Its engine is timed in a child process on the same machine, between two
measurements of ours, and the ratios are printed. Targets (issue 2): cold median >= 3x
faster, warm median >= 20x faster, file-tool calls <= 5 us.

    python benchmarks/bench_vs_leashd06.py [--warm 20]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import venv
from pathlib import Path

from _common import FILE_TOOLS, WORLD, load_corpus, machine, summary, time_each

from leashd.policy import Evaluator, compile_policy, load_policies
from leashd.policy.facts import Context

HERE = Path(__file__).resolve().parent


def leashd06_python() -> str:
    if os.environ.get("LEASHD06_PYTHON"):
        return os.environ["LEASHD06_PYTHON"]
    env = HERE / ".venv-leashd06"
    python = env / "bin" / "python"
    if not python.exists():
        print("creating benchmarks/.venv-leashd06 with leashd==0.6.0 ...", file=sys.stderr)
        venv.create(env, with_pip=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "leashd==0.6.0"], check=True)
    return str(python)


def theirs(calls: list, warm: int) -> dict:
    job = json.dumps({"calls": calls, "warm": warm})
    done = subprocess.run(
        [leashd06_python(), str(HERE / "leashd06_worker.py")],
        input=job,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def ours(evaluator: Evaluator, calls: list, warm: int) -> dict:
    evaluator.clear_caches()
    cold = time_each(evaluator.evaluate, calls)
    hot: list[float] = []
    for _ in range(warm):
        hot += time_each(evaluator.evaluate, calls)
    return {"cold": cold, "warm": hot}


def pick(samples: list[float], n: int, idx: list[int]) -> list[float]:
    return [samples[p * n + i] for p in range(len(samples) // n) for i in idx]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--warm", type=int, default=20)
    args = ap.parse_args()
    evaluator = Evaluator(compile_policy(load_policies([])), Context.create(**WORLD))
    print(f"# leashd vs leashd 0.6.0, default + dev-tools, per call ({machine()})")
    print(f"{'corpus':12} {'calls':5} {'':9} {'0.6.0':>8} {'leashd':>8} {'faster':>7}")
    for name in ("everyday", "adversarial"):
        calls = [[r["tool"], r["input"]] for r in load_corpus(name)]
        first = ours(evaluator, calls, args.warm)
        base = theirs(calls, args.warm)
        second = ours(evaluator, calls, args.warm)
        n = len(calls)
        groups = {
            "all": list(range(n)),
            "bash": [i for i, c in enumerate(calls) if c[0] == "Bash"],
            "file": [i for i, c in enumerate(calls) if c[0] in FILE_TOOLS],
        }
        for group, idx in groups.items():
            for phase in ("cold", "warm"):
                mine = summary(pick(first[phase], n, idx) + pick(second[phase], n, idx))
                old = summary(pick(base[phase], n, idx))
                ratio = old["median_us"] / mine["median_us"]
                print(
                    f"{name:12} {group:5} {phase + ' med':9} {old['median_us']:8.2f} "
                    f"{mine['median_us']:8.2f} {ratio:6.1f}x"
                )


if __name__ == "__main__":
    main()
