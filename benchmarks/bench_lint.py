"""How long `leashd policy lint` takes: the built-in policies, generated policies of growing
size (bench_scaling.py's generator; the generated rules stand alone, without the
built-ins), and a generated policy re-linted after one-rule edits (issue 21, item 9).

Prints, per policy: rules, seconds for the whole lint (median of --repeat runs, no cache),
and the findings by severity; the default policies re-linted from the whole-result cache
(what `leashd policy lint` does for an unchanged policy); then, for a generated policy of
--edit-size rules: the cold lint that fills the cache, the re-lint after each of --edits
one-rule edits (the first, the middle and the last rule in turn, each edit on top of the
last: a pattern, a program, a glob or a host changed), with their median and p99, and a
re-lint of a version whose rules are all unchanged (one moved line: the whole-result cache
misses, the pair cache answers everything). Each re-lint runs in a fresh process, as
`leashd policy lint` does (the time is of lint() alone, without starting Python), and the
first three are checked against a lint without the cache. Run:

    python benchmarks/bench_lint.py [--sizes 100,500] [--repeat 3] [--edit-size 500] [--edits 9]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter

from _common import p99
from bench_scaling import generated

from leashd.policy import load_policies
from leashd.policy.analysis.lint import lint
from leashd.policy.ir import ArgvPattern, PathCondition, Policy, Regex, Rule, Span

BUILTINS = (["default"], ["default", "dev-tools"], ["strict"], ["permissive"], ["autonomous"])


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


def edited(rule: Rule, n: int) -> Rule:
    """The rule with its first condition changed (still a rule of the same kind)."""
    if rule.argv:
        tokens = rule.argv[0].tokens
        if len(tokens) > 1:
            argv = ArgvPattern(tokens=(*tokens[:1], (f"ed{n}",), *tokens[2:]))
            return rule.model_copy(update={"argv": (argv,)})
        return rule.model_copy(update={"flags": (f"--edited-{n}",)})
    if rule.command_patterns:
        pattern = re.sub(r"--\w+", f"--ed{n}", rule.command_patterns[0].pattern, count=1)
        return rule.model_copy(update={"command_patterns": (Regex(pattern=pattern),)})
    if rule.paths:
        return rule.model_copy(update={"paths": PathCondition(globs=(f"/data/ed{n}/**",))})
    if rule.hosts:
        return rule.model_copy(update={"hosts": (f"ed{n}.example.test",)})
    return rule.model_copy(update={"action": "deny" if rule.action != "deny" else "allow"})


def with_rule(policy: Policy, k: int, rule: Rule) -> Policy:
    rules = list(policy.rules)
    rules[k] = rule
    return policy.model_copy(update={"rules": tuple(rules)})


# A re-lint as `leashd policy lint` runs it: in a process of its own, which has done nothing
# else (a process that has linted much before forks slower: its heap is larger). Prints the
# seconds of lint(), what it computed and reused, and a digest of its findings.
_RELINT = """
import hashlib, json, pickle, sys, time
from leashd.policy.analysis.lint import lint
from leashd.policy.analysis.pair_cache import Stats
policy = pickle.loads(sys.stdin.buffer.read())
stats = Stats()
t = time.perf_counter()
got = lint(policy, use_cache=True, stats=stats)
took = time.perf_counter() - t
digest = hashlib.sha256(json.dumps([f.to_json() for f in got]).encode()).hexdigest()
print(json.dumps({"seconds": took, "stats": stats.__dict__, "digest": digest}))
"""


def relint(policy: Policy) -> dict:
    run = subprocess.run([sys.executable, "-c", _RELINT], input=pickle.dumps(policy),
                         capture_output=True, check=True, env=os.environ)  # fmt: skip
    return json.loads(run.stdout)


def digest(found: list) -> str:
    return hashlib.sha256(json.dumps([f.to_json() for f in found]).encode()).hexdigest()


def incremental(size: int, edits: int) -> None:
    with tempfile.TemporaryDirectory() as cache:
        os.environ["LEASHD_CACHE_DIR"] = cache
        policy = generated(size)
        t = time.perf_counter()
        lint(policy, use_cache=True)
        print(f"generated {size}, cold, filling the cache: {time.perf_counter() - t:.2f} s")
        times = []
        for n in range(edits):
            k = (0, size // 2, size - 1)[n % 3]
            policy = with_rule(policy, k, edited(policy.rules[k], n))
            got = relint(policy)
            times.append(got["seconds"])
            if n < 3:  # the first, the middle and the last rule: against a lint afresh
                afresh = digest(lint(policy))
                assert got["digest"] == afresh, f"edit {n} of rule {k}: the cache changed a finding"
            st = got["stats"]
            print(
                f"  edit {n}: rule {k:>3} {times[-1]:6.3f} s  pairs compared {st['pairs']} "
                f"(reused {st['pairs_reused']}), searches {st['searches']} "
                f"(reused {st['searches_reused']})",
                flush=True,
            )
        print(
            f"re-lint after a one-rule edit ({edits} edits, each in a fresh process): median "
            f"{statistics.median(times):.3f} s, p99 {p99(times):.3f} s"
        )
        # every rule unchanged, one of them moved down a line: only the pair cache answers
        moved = []
        for n in range(3):
            r = policy.rules[0]
            span = Span(file=r.span.file, line=r.span.line + n + 1, column=r.span.column)
            policy = with_rule(policy, 0, r.model_copy(update={"span": span}))
            moved.append(relint(policy)["seconds"])
        print(
            f"re-lint, no rule changed (pair cache only): median {statistics.median(moved):.3f} s"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100,500")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--edit-size", type=int, default=500)
    ap.add_argument("--edits", type=int, default=9)
    args = ap.parse_args()
    for specs in BUILTINS:
        measure("built-in " + "+".join(specs), load_policies(specs), args.repeat)
    with tempfile.TemporaryDirectory() as cache:
        os.environ["LEASHD_CACHE_DIR"] = cache
        policy = load_policies([])
        lint(policy, use_cache=True)  # fills the cache
        measure("default+dev-tools, cached", policy, max(args.repeat, 5), use_cache=True)
    for n in (int(x) for x in args.sizes.split(",") if x):
        measure(f"generated {n}", generated(n), args.repeat)
    if args.edit_size:
        incremental(args.edit_size, args.edits)


if __name__ == "__main__":
    main()
