"""The compiled evaluator: tool call -> Decision, with the trace `explain` prints.

An `Evaluator` binds a compiled policy to a context. Calls whose facts do not depend on the
filesystem (no paths) are memoised in an LRU keyed by the input fields the decision can
depend on; calls with paths are re-resolved every time, because a symlink created after a
decision must change the next one.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from leashd.policy.compiler import CompiledPolicy, UnitMatches
from leashd.policy.decision import Decision, Step, UnitDecision, combine, malformed
from leashd.policy.facts import Call, Context, Unit, extract
from leashd.policy.reference import clamp_opaque

# Input fields facts are built from, per tool; every other field only matters to rules with
# an `input` condition, and those keys are added per policy.
_FACT_KEYS: dict[str, tuple[str, ...]] = {
    "Bash": ("command",),
    "Read": ("file_path",),
    "Write": ("file_path",),
    "Edit": ("file_path",),
    "MultiEdit": ("file_path",),
    "NotebookEdit": ("notebook_path",),
    "NotebookRead": ("notebook_path",),
    "LS": ("path",),
    "Glob": ("pattern", "path"),
    "Grep": ("pattern", "path"),
    "WebFetch": ("url",),
    "WebSearch": (),
}


class Evaluator:
    def __init__(self, compiled: CompiledPolicy, ctx: Context, cache_size: int = 4096):
        self.compiled = compiled
        self.ctx = ctx
        self._cache: OrderedDict[tuple[Any, ...], Decision] = OrderedDict()
        self._cache_size = cache_size
        self._input_keys = tuple(
            sorted({k for r in compiled.policy.rules for k, _ in (r.input or ())})
        )

    # --- per unit -----------------------------------------------------------------------------

    def decide_unit(self, unit: Unit, trace: bool = False) -> UnitDecision:
        matches = UnitMatches(self.compiled, unit)
        steps: list[Step] = []
        ctx = self.ctx
        for cr in self.compiled.candidates(unit):
            failed = None
            for name, check in cr.checks:
                if not check(unit, ctx, matches):
                    failed = name
                    break
            if failed is None:
                if trace:
                    steps.append(Step(cr.rule, True, "all conditions hold"))
                return clamp_opaque(
                    UnitDecision(
                        unit,
                        cr.rule.action,
                        cr.rule,
                        cr.rule.explain_reason(),
                        "policy",
                        tuple(steps),
                    )
                )
            if trace:
                steps.append(Step(cr.rule, False, f"{failed} does not hold"))
        action = self.compiled.policy.settings.default_action
        return clamp_opaque(
            UnitDecision(unit, action, None, "no rule matched", "default", tuple(steps))
        )

    # --- per call -----------------------------------------------------------------------------

    def facts(self, tool: Any, tool_input: Any) -> Call:
        return extract(tool, tool_input, self.ctx)

    def evaluate(self, tool: Any, tool_input: Any, trace: bool = False) -> Decision:
        """Decide a call. Never raises: any failure is a deny naming the error."""
        try:
            key = None if trace else self._key(tool, tool_input)
            if key is not None:
                hit = self._cache.get(key)
                if hit is not None:
                    self._cache.move_to_end(key)
                    return hit
            call = self.facts(tool, tool_input)
            decision = self.decide(call, trace)
            if key is not None and not any(u.paths for u in call.units):
                self._cache[key] = decision
                if len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
            return decision
        except Exception as exc:
            return Decision(
                "deny",
                None,
                f"internal error while evaluating: {exc!r}",
                "error",
                error=f"{type(exc).__name__}: {exc}",
            )

    def decide(self, call: Call, trace: bool = False) -> Decision:
        if call.error is not None:
            return malformed(call.error)
        notes = call.parsed.notes if call.parsed is not None else ()
        return combine([self.decide_unit(u, trace) for u in call.units], notes)

    def _key(self, tool: Any, tool_input: Any) -> tuple[Any, ...] | None:
        if not isinstance(tool, str) or not isinstance(tool_input, Mapping):
            return None
        keys = _FACT_KEYS.get(tool)
        if keys is None:
            return None  # MCP and unknown tools: facts may read any field
        values = []
        for k in (*keys, *self._input_keys):
            v = tool_input.get(k)
            if v is not None and not isinstance(v, (str, int, float, bool)):
                return None
            values.append(v)
        return (tool, *values)
