"""The compiled evaluator: tool call -> Decision, with the trace `explain` prints.

An `Evaluator` binds a compiled policy to a context. Decisions are memoised, keyed by the
input fields they can depend on. A decision about paths also depends on the filesystem (a
symlink created after it must change the next one): it is memoised only when every directory
its resolutions looked into is watched, and it is dropped as soon as one of them changes.
Otherwise it is recomputed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from leashd.limits import TooLarge
from leashd.policy.compiler import CompiledPolicy
from leashd.policy.decision import (
    Decision,
    Step,
    UnitDecision,
    combine,
    malformed,
    too_large,
)
from leashd.policy.facts import RESOLVER, Call, Context, Unit, extract
from leashd.policy.fswatch import DependentMemo
from leashd.policy.ir import Rule
from leashd.policy.reference import clamp_opaque
from leashd.policy.tool_inputs import input_problem
from leashd.shell import MEMO_LIMIT, clear_parse_cache

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
    "Grep": ("pattern", "path", "glob"),
    "WebFetch": ("url",),
    "WebSearch": (),
    "SandboxNetworkAccess": ("host", "port"),
}


_ABSENT = object()


# A condition kind as the rule's author wrote it: the .leash keyword or the YAML key.
_LEASH_WORDS = {"argv": "cmd", "mcp_servers": "mcp", "fed_by": "fed-by",
                "command_patterns": "regex", "path_patterns": "path-regex"}  # fmt: skip
_YAML_KEYS = {"argv": "commands"}


def _condition_word(kind: str, rule: Rule) -> str:
    words = _LEASH_WORDS if rule.span.file.endswith(".leash") else _YAML_KEYS
    return words.get(kind, kind)


class Evaluator:
    def __init__(self, compiled: CompiledPolicy, ctx: Context, cache_size: int = 4096):
        self.compiled = compiled
        self.ctx = ctx
        # Insertion-ordered; the oldest entry goes first when full (no reordering on a hit,
        # which keeps the hit path short).
        self._cache = DependentMemo(cache_size)
        RESOLVER.watch.subscribe(self._cache)
        # Per tool, the input fields its decision can depend on: the ones facts are built
        # from, and the ones rules reaching that tool test with an `input` condition.
        self._key_fields: dict[str, tuple[str, ...]] = {}
        for tool, fields in _FACT_KEYS.items():
            reach = compiled.candidates(Unit(tool=tool))
            extra = {
                k for i, r in enumerate(compiled.rules) if reach >> i & 1 for k, _ in r.input or ()
            }
            self._key_fields[tool] = tuple(dict.fromkeys((*fields, *sorted(extra))))
        self._watch = RESOLVER.watch

    # --- per unit -----------------------------------------------------------------------------

    def decide_unit(self, unit: Unit, trace: bool = False) -> UnitDecision:
        compiled = self.compiled
        steps: tuple[Step, ...] = ()
        if trace:
            tried = compiled.trace(unit, self.ctx)
            steps = tuple(
                Step(
                    compiled.rules[i],
                    failed is None,
                    "all conditions hold"
                    if failed is None
                    else f"{_condition_word(failed, compiled.rules[i])} does not hold",
                )
                for i, failed in tried
            )
            index = tried[-1][0] if tried and tried[-1][1] is None else None
        else:
            index = compiled.first_match(unit, self.ctx)
        if index is not None:
            rule = compiled.rules[index]
            return clamp_opaque(
                UnitDecision(unit, rule.action, rule, rule.explain_reason(), "policy", steps)
            )
        action = compiled.policy.settings.default_action
        return clamp_opaque(UnitDecision(unit, action, None, "no rule matched", "default", steps))

    # --- per call -----------------------------------------------------------------------------

    def facts(self, tool: Any, tool_input: Any) -> Call:
        return extract(tool, tool_input, self.ctx)

    def evaluate(self, tool: Any, tool_input: Any, trace: bool = False) -> Decision:
        """Decide a call. Never raises: any failure is a deny naming the error."""
        try:
            # Before the memo: its key holds only the fields facts read, so a remembered
            # allow of `{"file_path": x}` must not answer `{"file_path": x, "limit": "ten"}`.
            problem = input_problem(tool, tool_input)
            if problem is not None:
                return malformed(problem)
            key = None if trace else self._key(tool, tool_input)
            if key is not None:
                self._watch.check()
                hit = self._cache.get(key)
                if hit is not None:
                    return hit[0]
            deps: set[str | None] = set()
            generation = self._watch.generation
            RESOLVER.collect(deps)
            try:
                call = self.facts(tool, tool_input)
            finally:
                RESOLVER.collect(None)
            decision = self.decide(call, trace)
            # Stored only if no change was applied while the facts were gathered: one could
            # have come between two of its lookups.
            self._watch.check()
            if key is not None and None not in deps and self._watch.generation == generation:
                self._cache.put(key, decision, frozenset(deps))
            return decision
        except TooLarge as exc:  # a bound met while matching (a pattern only `re` can run)
            return too_large(exc.reason)
        except Exception as exc:
            return Decision(
                "deny",
                None,
                f"internal error while evaluating: {exc!r}",
                "error",
                error=f"{type(exc).__name__}: {exc}",
            )

    def remembered(self, tool: Any, tool_input: Any) -> Decision | None:
        """The memoised decision of this call, or None; nothing is computed on a miss."""
        if input_problem(tool, tool_input) is not None:
            return None
        key = self._key(tool, tool_input)
        if key is None:
            return None
        self._watch.check()
        hit = self._cache.get(key)
        return hit[0] if hit is not None else None

    def clear_caches(self) -> None:
        """Empty every cache a decision can come from (cold-start measurements)."""
        self._cache.clear()
        self.compiled.clear_memos()
        RESOLVER.clear()
        clear_parse_cache()

    def decide(self, call: Call, trace: bool = False) -> Decision:
        if call.error is not None:
            return too_large(call.error) if call.too_large else malformed(call.error)
        notes = call.parsed.notes if call.parsed is not None else ()
        return combine([self.decide_unit(u, trace) for u in call.units], notes)

    def _key(self, tool: Any, tool_input: Any) -> Any:
        """What the decision can depend on, hashable; None when the call is not memoised."""
        if type(tool_input) is not dict and not isinstance(tool_input, Mapping):
            return None
        fields = self._key_fields.get(tool) if type(tool) is str else None
        if fields is None:
            return None  # MCP and unknown tools: facts may read any field
        if len(fields) == 1:
            v = tool_input.get(fields[0])
            if type(v) is str:
                if len(v) > MEMO_LIMIT:
                    return None  # not kept: huge inputs would fill memory
                return v if tool == "Bash" else (tool, v)  # a bare str key: only Bash's
        values = []
        for k in fields:
            if k not in tool_input:
                values.append(_ABSENT)  # absent and null differ to an `input` condition
                continue
            v = tool_input[k]
            if v is not None and type(v) not in (str, int, float, bool):
                return None
            if type(v) is str and len(v) > MEMO_LIMIT:
                return None
            # True and 1, 0.0 and -0.0 are equal keys but not equal inputs
            values.append((type(v), repr(v) if type(v) is float else v))
        return (tool, *values)
