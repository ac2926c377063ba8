"""How long loading the built-in policies takes: compiled from YAML, against loaded from
`compiled/` (what the runtime does when the files are current). Both produce the same
CompiledPolicy (checked here before timing).

Prints, per policy set: the median and p99 over --repeat runs and the ratio.
Run: python benchmarks/bench_load.py [--repeat 30]
"""

from __future__ import annotations

import argparse
import statistics
import time

from leashd.policy import compile_policy, load_policies
from leashd.policy.loader import load_compiled


def timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=30)
    args = ap.parse_args()
    for specs in (["default", "dev-tools"], ["strict"], ["permissive"], ["autonomous"]):
        source = compile_policy(load_policies(specs))
        ready = load_compiled(specs)
        assert source.policy == ready.policy and source.plan == ready.plan
        a = timed(lambda s=specs: compile_policy(load_policies(s)), args.repeat)
        b = timed(lambda s=specs: load_compiled(s), args.repeat)
        ma, mb = statistics.median(a), statistics.median(b)
        print(
            f"{'+'.join(specs):<20} rules={len(source.rules):>4}  "
            f"from YAML median={ma * 1000:6.1f} ms p99={p99(a) * 1000:6.1f} ms  "
            f"from compiled/ median={mb * 1000:6.1f} ms p99={p99(b) * 1000:6.1f} ms  "
            f"ratio={ma / mb:.1f}x",
            flush=True,
        )


if __name__ == "__main__":
    main()
