"""The audit log's cost per record, for each fsync policy, against a plain append of the same
JSON line (no chain, no head, no lock) in the same run.

Prints, per policy: records/s, median and p99 latency of `AuditLog.append`, and the baseline's.
Run: python benchmarks/bench_audit.py [--records 5000] [--dir DIR]
(`--dir` chooses the disk: fsync costs what that disk's flush costs.)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from _common import p99

from leashd.gate.audit import FSYNC_POLICIES, AuditLog, capped_input, verify

CALL = {"command": "pytest -q tests/unit && git status --porcelain", "description": "run tests"}


def record(i: int) -> dict:
    fields = {"session": "bench", "tool": "Bash", **capped_input(CALL), "decision": "allow"}
    return {**fields, "rule": "test-runners", "layer": "policy", "reason": "Runs the tests", "i": i}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=5000)
    ap.add_argument("--dir", type=Path, default=None)
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(dir=args.dir))
    for policy in FSYNC_POLICIES:
        n = args.records if policy != "always" else min(args.records, 1000)
        path = base / f"audit-{policy}.jsonl"
        times = []
        with AuditLog(path, fsync=policy) as log:  # type: ignore[arg-type]
            start = time.perf_counter()
            for i in range(n):
                t = time.perf_counter()
                log.append("decision", record(i))
                times.append(time.perf_counter() - t)
            total = time.perf_counter() - start
        assert verify(path).ok
        plain = []
        fd = os.open(base / f"plain-{policy}.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        for i in range(n):
            t = time.perf_counter()
            os.write(fd, json.dumps(record(i)).encode() + b"\n")
            plain.append(time.perf_counter() - t)
        os.close(fd)
        print(
            f"fsync={policy:<8} records={n:>5}  {n / total:8.0f} records/s  "
            f"append median={statistics.median(times) * 1e6:6.1f} us p99={p99(times) * 1e6:7.1f} us"
            f"  plain write median={statistics.median(plain) * 1e6:5.1f} us "
            f"p99={p99(plain) * 1e6:5.1f} us",
            flush=True,
        )


if __name__ == "__main__":
    main()
