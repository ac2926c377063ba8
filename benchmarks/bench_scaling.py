"""How evaluation time grows with the number of rules: 10, 100, 1,000 and 10,000.

Each policy is N generated rules in front of the built-in default + dev-tools. The generated
rules look like real ones and reach the corpus calls: argv prefixes on the programs the
corpora use (with subcommands and flags they do not use, so they are tried and fail), path
globs, legacy regexes, hosts and MCP servers. Every corpus call is evaluated with empty
caches (cold) and again (warm); the medians are compared with N = 10.
Target (issue 2): from 10 to 10,000 rules the median grows at most 2x.

    python benchmarks/bench_scaling.py [--sizes 10,100,1000,10000]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from _common import WORLD, load_corpus, machine, time_each

from leashd.policy import Evaluator, compile_policy, load_policies
from leashd.policy.facts import Context
from leashd.policy.ir import ArgvPattern, PathCondition, Policy, Regex, Rule, merge

PROGRAMS = [
    "git",
    "npm",
    "pytest",
    "ls",
    "cat",
    "grep",
    "rg",
    "docker",
    "curl",
    "make",
    "cargo",
    "go",
    "python3",
    "uv",
    "sed",
    "find",
]
ACTIONS = ("allow", "deny", "require_approval")


def generated(n: int, seed: int = 7) -> Policy:
    rnd = random.Random(seed)
    rules = []
    for i in range(n):
        kind = i % 6
        fields: dict = {}
        if kind in (0, 1):
            prog = rnd.choice(PROGRAMS)
            fields["argv"] = (ArgvPattern(tokens=((prog,), (f"sub{i}", f"alt{i}"), ("*",))),)
        elif kind == 2:
            prog = rnd.choice(PROGRAMS)
            fields["argv"] = (ArgvPattern(tokens=((prog,),)),)
            fields["flags"] = (f"--gen-flag-{i}", f"-{chr(65 + i % 26)}{i % 10}")
        elif kind == 3:
            fields["paths"] = PathCondition(globs=(f"/data/area{i}/**", f"*.gen{i}"))
        elif kind == 4:
            fields["command_patterns"] = (Regex(pattern=rf"^{rnd.choice(PROGRAMS)}\s+--x{i}\b"),)
        else:
            fields["hosts"] = (f"h{i}.example.test",)
        rules.append(Rule(name=f"gen-{i}", action=rnd.choice(ACTIONS), **fields))
    return Policy(rules=tuple(rules))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10,100,1000,10000")
    ap.add_argument("--cold", type=int, default=3)
    ap.add_argument("--warm", type=int, default=10)
    args = ap.parse_args()
    base = load_policies([])
    calls = [(r["tool"], r["input"]) for r in load_corpus("everyday")]
    calls += [(r["tool"], r["input"]) for r in load_corpus("adversarial")]
    ctx = Context.create(**WORLD)
    print(f"# scaling over generated rules + default + dev-tools ({machine()})")
    print(f"{'rules':>6} {'compile s':>10} {'cold med':>9} {'x':>5} {'warm med':>9} {'x':>5}")
    first = None
    for n in (int(s) for s in args.sizes.split(",")):
        policy = merge([generated(n), base])
        t0 = time.perf_counter()
        evaluator = Evaluator(compile_policy(policy, verify=False), ctx)
        compile_s = time.perf_counter() - t0
        cold: list[float] = []
        for _ in range(args.cold):
            evaluator.clear_caches()
            cold += time_each(evaluator.evaluate, calls)
        warm: list[float] = []
        for _ in range(args.warm):
            warm += time_each(evaluator.evaluate, calls)
        c, w = statistics.median(cold), statistics.median(warm)
        first = first or (c, w)
        print(f"{n:6d} {compile_s:10.2f} {c:9.2f} {c / first[0]:5.2f} {w:9.2f} {w / first[1]:5.2f}")


if __name__ == "__main__":
    main()
