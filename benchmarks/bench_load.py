"""How long loading the built-in policies takes: compiled from YAML, against loaded from
`compiled/` (what the runtime does when the files are current). Both produce the same
CompiledPolicy (checked here before timing). Then parsing alone: each built-in's YAML
against its `.leash` form (the same IR, checked first).

Prints, per policy set: the median and p99 over --repeat runs and the ratio.
Run: python benchmarks/bench_load.py [--repeat 30]
"""

from __future__ import annotations

import argparse
import statistics
import time

from _common import p99

from leashd.policy import compile_policy, load_policies
from leashd.policy.diff import _without_spans
from leashd.policy.loader import BUILTIN_NAMES, builtin_path, load_compiled, load_file


def timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def report(label: str, a_name: str, a: list[float], b_name: str, b: list[float]) -> None:
    """One line: each side's median and p99 in ms, and how many times faster b is."""
    ma, mb = statistics.median(a), statistics.median(b)
    print(
        f"{label}  {a_name} median={ma * 1000:6.1f} ms p99={p99(a) * 1000:6.1f} ms  "
        f"{b_name} median={mb * 1000:6.1f} ms p99={p99(b) * 1000:6.1f} ms  "
        f"ratio={ma / mb:.2f}x",
        flush=True,
    )


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
        report(f"{'+'.join(specs):<20} rules={len(source.rules):>4}", "from YAML", a,
               "from compiled/", b)  # fmt: skip
    for name in BUILTIN_NAMES:
        yaml_path = builtin_path(name)
        leash_path = yaml_path.with_suffix(".leash")
        dump = [_without_spans(r.model_dump(mode="json")) for r in load_file(yaml_path).rules]
        assert dump == [
            _without_spans(r.model_dump(mode="json")) for r in load_file(leash_path).rules
        ]
        a = timed(lambda p=yaml_path: load_file(p), args.repeat)
        b = timed(lambda p=leash_path: load_file(p), args.repeat)
        report(f"parse {name:<14} rules={len(dump):>4}", "YAML", a, ".leash", b)


if __name__ == "__main__":
    main()
