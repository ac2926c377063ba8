"""Shared pieces of the benchmarks: the corpora, the world they assume, timing and figures."""

from __future__ import annotations

import gc
import json
import os
import statistics
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORLD = {"cwd": "/home/dev/project", "home": "/home/dev", "approved_dirs": ["/home/dev/project"]}
FILE_TOOLS = {"Read", "Write", "Edit", "MultiEdit", "NotebookEdit", "Glob", "Grep", "LS"}


def corpus_dir() -> Path:
    """The shared corpora (../shared/corpus next to the checkout), else the tests' copy."""
    for candidate in (ROOT.parent / "shared" / "corpus", ROOT / "tests" / "corpus"):
        if (candidate / "everyday.jsonl").exists():
            return candidate
    raise SystemExit("no corpus found: expected ../shared/corpus or tests/corpus")


def load_corpus(name: str) -> list[dict[str, Any]]:
    with open(corpus_dir() / f"{name}.jsonl") as f:
        return [json.loads(line) for line in f if line.strip()]


def time_each(fn: Callable[[Any, Any], Any], calls: Iterable[tuple[Any, Any]]) -> list[float]:
    """Microseconds per call, one call at a time (the garbage collector paused)."""
    out = []
    clock = time.perf_counter_ns
    gc.disable()
    try:
        for tool, tool_input in calls:
            t0 = clock()
            fn(tool, tool_input)
            out.append((clock() - t0) / 1000)
    finally:
        gc.enable()
    return out


def p99(values: list[float]) -> float:
    """The 99th percentile: the value 99% of the samples do not exceed (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "median_us": round(statistics.median(samples), 2),
        "p99_us": round(p99(samples), 2),
        "n": len(samples),
    }


def machine() -> str:
    import platform

    return f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} cpus"
