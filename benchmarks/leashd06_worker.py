"""Runs inside a venv with leashd 0.6.0 (the package names collide): times its policy engine.

Reads {"calls": [[tool, input], ...], "warm": N} on stdin and prints per-call microseconds
for one cold pass and N warm passes as JSON. 0.6.0 has no caches, so both are the same work;
it is timed exactly as the gate called it: tool-name normalisation, classify_compound,
evaluate, on its built-in default + dev-tools policies (what it loads by default).
"""

import contextlib
import gc
import io
import json
import sys
import time
from pathlib import Path

with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    from leashd.core.safety.gatekeeper import normalize_tool_name
    from leashd.core.safety.policy import PolicyEngine

    import leashd

    shipped = Path(leashd.__file__).parent / "policies"
    engine = PolicyEngine([shipped / "default.yaml", shipped / "dev-tools.yaml"])


def decide(tool, tool_input):
    return engine.evaluate(engine.classify_compound(normalize_tool_name(tool), tool_input))


def timed(calls):
    out = []
    clock = time.perf_counter_ns
    gc.disable()
    for tool, tool_input in calls:
        t0 = clock()
        decide(tool, tool_input)
        out.append((clock() - t0) / 1000)
    gc.enable()
    return out


job = json.load(sys.stdin)
calls = job["calls"]
cold = timed(calls)
warm = []
for _ in range(job["warm"]):
    warm += timed(calls)
print(json.dumps({"version": leashd.__version__, "cold": cold, "warm": warm}))
