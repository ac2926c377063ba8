"""How long `leashd policy lint` takes: the built-in policies, and generated policies of
growing size (bench_scaling.py's generator; the generated rules stand alone, without the
built-ins).

Prints, per policy: rules, seconds for the whole lint (median of --repeat runs, no cache),
and the findings by severity; then the default policies re-linted from the result cache
(what `leashd policy lint` does for an unchanged policy). Run:
python benchmarks/bench_lint.py [--sizes 100,500] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections import Counter

from bench_scaling import generated

from leashd.policy import load_policies
from leashd.policy.analysis.lint import lint


def measure(name: str, policy, repeat: int, use_cache: bool = False) -> None:
    times = []
    found = []
    for _ in range(repeat):
        t = time.perf_counter()
        found = lint(policy, use_cache=use_cache)
        times.append(time.perf_counter() - t)
    counts = Counter(f.severity for f in found)
    print(
        f"{name:<28} rules={len(policy.rules):>4}  median={statistics.median(times):7.2f} s  "
        f"min={min(times):7.2f} s  errors={counts['error']} warnings={counts['warning']} "
        f"info={counts['info']}",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100,500")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    for specs in (["default", "dev-tools"], ["strict"], ["permissive"], ["autonomous"]):
        measure("built-in " + "+".join(specs), load_policies(specs), args.repeat)
    with tempfile.TemporaryDirectory() as cache:
        os.environ["LEASHD_CACHE_DIR"] = cache
        policy = load_policies([])
        lint(policy, use_cache=True)  # fills the cache
        measure("default+dev-tools, cached", policy, max(args.repeat, 5), use_cache=True)
    for n in (int(x) for x in args.sizes.split(",") if x):
        measure(f"generated {n}", generated(n), args.repeat)


if __name__ == "__main__":
    main()
