"""Per-call evaluation time over the shared corpora: cold and warm, median and p99.

cold: every cache emptied before the pass (decisions, parsed commands, path resolutions,
      matcher memos), so each call pays for parsing, resolving and matching;
warm: the same calls again (`--warm` passes), as a session repeating itself.
Figures are split by kind of call: Bash, file tools, other tools.

    python benchmarks/bench_corpus.py [--cold 5] [--warm 20] [--json]
"""

from __future__ import annotations

import argparse
import json

from _common import FILE_TOOLS, WORLD, load_corpus, machine, summary, time_each

from leashd.policy import Evaluator, compile_policy, load_policies
from leashd.policy.facts import Context


def kind(tool: str) -> str:
    return "bash" if tool == "Bash" else "file" if tool in FILE_TOOLS else "other"


def measure(evaluator: Evaluator, calls: list, cold_passes: int, warm_passes: int) -> dict:
    cold: list[float] = []
    warm: list[float] = []
    for _ in range(cold_passes):
        evaluator.clear_caches()
        cold += time_each(evaluator.evaluate, calls)
    for _ in range(warm_passes):
        warm += time_each(evaluator.evaluate, calls)
    out = {"all": {"cold": summary(cold), "warm": summary(warm)}}
    for k in ("bash", "file", "other"):
        idx = [i for i, (t, _) in enumerate(calls) if kind(t) == k]
        if idx:
            n = len(calls)
            pick_c = [cold[p * n + i] for p in range(cold_passes) for i in idx]
            pick_w = [warm[p * n + i] for p in range(warm_passes) for i in idx]
            out[k] = {"cold": summary(pick_c), "warm": summary(pick_w)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cold", type=int, default=5)
    ap.add_argument("--warm", type=int, default=20)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    evaluator = Evaluator(compile_policy(load_policies([])), Context.create(**WORLD))
    results = {}
    for name in ("everyday", "adversarial"):
        calls = [(r["tool"], r["input"]) for r in load_corpus(name)]
        results[name] = measure(evaluator, calls, args.cold, args.warm)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"# evaluation per call, default + dev-tools policies ({machine()})")
    heads = ("cold med", "cold p99", "warm med", "warm p99")
    print(f"{'corpus':12} {'calls':6} {'n':>5} " + " ".join(f"{h:>9}" for h in heads))
    for name, per in results.items():
        for k, fig in per.items():
            c, w = fig["cold"], fig["warm"]
            print(
                f"{name:12} {k:6} {c['n'] // args.cold:5d} {c['median_us']:9.2f} "
                f"{c['p99_us']:9.2f} {w['median_us']:9.2f} {w['p99_us']:9.2f}"
            )


if __name__ == "__main__":
    main()
