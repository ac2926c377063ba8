"""The gate's throughput and its own cost per call, for each fsync policy.

Every call of the corpora goes through `Gate.check` (sandbox, policy, approval, audit record,
events) on default + dev-tools; calls that need approval are answered at once by an approver
(the ask callback presses Approve), so the approval machinery is timed but no human is. In the
same run, the same calls go through `Gate.decide` alone (evaluation and sandbox, nothing
recorded): that is the baseline, and the gate's overhead of a call is its `check` time minus
its `decide` time, measured back to back on the same call, both warm.

Prints, per fsync policy: calls/s over the pass, median and p99 of `check`, of `decide`, and
of the overhead; separately for calls decided at once and for calls that were approved.
Run: python benchmarks/bench_gate.py [--passes 5] [--dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import tempfile
import time
from pathlib import Path

from _common import WORLD, load_corpus, summary

from leashd.gate.approvals import ApprovalCoordinator
from leashd.gate.audit import FSYNC_POLICIES, AuditLog, verify
from leashd.gate.gate import Gate, Session
from leashd.policy.loader import load_compiled


def corpus_calls() -> list[tuple[str, dict]]:
    calls = []
    for name in ("everyday", "adversarial"):
        calls += [(r["tool"], r["input"]) for r in load_corpus(name)]
    return calls


async def measure(gate: Gate, session: Session, calls, passes: int):
    """Per call: (check µs, decide µs, was asked), over `passes` warm passes."""

    async def ask(req):
        gate.approvals.press(req.id, "1", req.chat, "approve")

    for tool, tool_input in calls:  # warm: evaluator memo, parsed commands, resolutions
        await gate.check(session, tool, tool_input, ask)
    out = []
    clock = time.perf_counter_ns
    total = 0
    gc.disable()
    try:
        for _ in range(passes):
            for tool, tool_input in calls:
                t0 = clock()
                verdict = await gate.check(session, tool, tool_input, ask)
                t1 = clock()
                gate.decide(session, tool, tool_input)
                t2 = clock()
                out.append(((t1 - t0) / 1000, (t2 - t1) / 1000, verdict.request is not None))
                total += t1 - t0
    finally:
        gc.enable()
    return out, total / 1e9


def line(label: str, samples: list[float]) -> str:
    s = summary(samples)
    return f"{label} median={s['median_us']:7.1f} p99={s['p99_us']:8.1f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--passes", type=int, default=5)
    ap.add_argument("--dir", type=Path, default=None, help="where the audit logs are written")
    args = ap.parse_args()
    calls = corpus_calls()
    compiled = load_compiled(["default", "dev-tools"])
    base = Path(tempfile.mkdtemp(dir=args.dir))
    session = Session("bench", "chat", WORLD["cwd"])
    print(f"{len(calls)} corpus calls, {args.passes} warm passes per fsync policy")
    for policy in FSYNC_POLICIES:
        passes = args.passes if policy != "always" else 1
        path = base / f"audit-{policy}.jsonl"
        with AuditLog(path, fsync=policy) as log:  # type: ignore[arg-type]
            gate = Gate(
                compiled,
                log,
                ApprovalCoordinator({"1"}, timeout=30, audit=log),
                approved_dirs=WORLD["approved_dirs"],
                home=WORLD["home"],
            )
            samples, seconds = asyncio.run(measure(gate, session, calls, passes))
        assert verify(path).ok
        n = len(samples)
        print(f"\nfsync={policy}: {n} calls, {n / seconds:,.0f} calls/s through check")
        for label, keep in (("decided", False), ("approved", True)):
            rows = [s for s in samples if s[2] == keep]
            if not rows:
                continue
            check = [r[0] for r in rows]
            decide = [r[1] for r in rows]
            over = [r[0] - r[1] for r in rows]
            print(
                f"  {label:<8} n={len(rows):>5}  {line('check', check)}  "
                f"{line('decide', decide)}  {line('overhead', over)}"
            )


if __name__ == "__main__":
    main()
