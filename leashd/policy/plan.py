"""IR -> Plan: the indexes of a policy and the sources of its matchers, as plain data.

A plan is what the compiler knows about a policy before it builds a single regex object:
which rules each tool can reach, which rules have each condition kind, and for every
pattern its regex and the rule that owns it. It is plain data so that `compiled/` can store
it (`artifact.py`) and the runtime can skip this stage for a policy compiled ahead of time;
`compiler.py` turns a plan into matchers. Rule i is bit i of every mask.

Plans concatenate like policies do (`concat`): the plan of several files merged is the
concatenation of their plans, so each built-in policy is planned once, on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields
from typing import Any

from leashd.policy import patterns
from leashd.policy.facts import BUILTIN_TOOLS
from leashd.policy.ir import Policy, Rule

# Condition kinds in the order `explain` reports the first one that fails.
KINDS = (
    "modes",
    "mcp_servers",
    "opaque",
    "wrapper",
    "argv",
    "flags",
    "env",
    "fed_by",
    "hosts",
    "command_patterns",
    "path_patterns",
    "paths",
    "input",
)
WHERE = ("inside", "outside", "temp", "system", "unknown")
VALUE_KINDS = ("mcp_servers", "env", "fed_by", "hosts")

# (regex, ignore_case, owner): the owner is a rule index (an input pair index for `input`).
Entry = tuple[str, bool, int]


@dataclass
class Plan:
    size: int
    has: dict[str, int]
    shell_only: int
    opaque_true: int
    wrapper_true: int
    deny: int
    by_tool: dict[str, int]
    argv_by_program: dict[str, list[Entry]]
    argv_wild: list[Entry]
    flags: list[Entry]
    complex_flags: list[tuple[int, str]]
    commands: list[Entry]
    path_regexes: list[Entry]
    globs: list[tuple[str, bool]]
    glob_want: list[int]
    glob_unwanted: list[int]
    no_globs: int
    access_ok: dict[str, int]
    not_redirect_ok: int
    where_ok: dict[str, int]
    value_sets: dict[str, list[Entry]]
    input_keys: dict[str, list[Entry]]
    input_pairs: dict[int, int] = field(default_factory=dict)

    # --- JSON: masks as lists of rule indices (readable, and exact in any JSON reader) ----

    def to_json(self) -> dict[str, Any]:
        return {f.name: _dump(f.name, getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Plan:
        names = {f.name for f in fields(cls)}
        if set(data) != names:
            raise ValueError(f"plan keys differ: {sorted(set(data) ^ names)}")
        plan = cls(**{name: _load(name, data[name]) for name in names})
        plan.check()
        return plan

    def check(self) -> None:
        """Raise ValueError unless the plan fits this leashd and a policy of `size` rules:
        every index the compiler relies on present, every mask and owner in range. (A plan
        read from a file could come from a leashd that knew other tools or kinds.)"""
        full = (1 << self.size) - 1

        def masks_ok(values: Any) -> bool:
            return all(m >= 0 and m & ~full == 0 for m in values)

        expect = {
            "has": set(KINDS),
            "by_tool": set(BUILTIN_TOOLS),
            "access_ok": {"read", "write"},
            "where_ok": set(WHERE),
            "value_sets": set(VALUE_KINDS),
        }
        for name, keys in expect.items():
            if set(getattr(self, name)) != keys:
                raise ValueError(f"plan.{name} has keys {sorted(getattr(self, name))}")
        singles = [getattr(self, n) for n in _MASK_FIELDS]
        dicts = [v for n in _MASK_DICTS for v in getattr(self, n).values()]
        if not masks_ok([*singles, *dicts, *self.glob_want, *self.glob_unwanted]):
            raise ValueError("a plan mask names a rule the policy does not have")
        if not len(self.globs) == len(self.glob_want) == len(self.glob_unwanted):
            raise ValueError("plan glob tables differ in length")
        entries = [
            *self.argv_wild,
            *self.flags,
            *self.commands,
            *self.path_regexes,
            *(e for v in self.argv_by_program.values() for e in v),
            *(e for v in self.value_sets.values() for e in v),
        ]
        owners = [o for _, _, o in entries] + [i for i, _ in self.complex_flags]
        owners += list(self.input_pairs)
        if not all(0 <= o < self.size for o in owners):
            raise ValueError("a plan pattern belongs to a rule the policy does not have")
        pairs = sum(m.bit_count() for m in self.input_pairs.values())
        if not all(0 <= k < pairs for v in self.input_keys.values() for _, _, k in v):
            raise ValueError("a plan input pattern belongs to no rule")


_MASK_FIELDS = {
    "shell_only",
    "opaque_true",
    "wrapper_true",
    "deny",
    "no_globs",
    "not_redirect_ok",
}
_MASK_DICTS = {"has", "by_tool", "access_ok", "where_ok"}
_MASK_LISTS = {"glob_want", "glob_unwanted"}


def indices(mask: int) -> Iterator[int]:
    """The indices of the set bits of `mask`, lowest first."""
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


def _mask_of(items: Iterable[int]) -> int:
    m = 0
    for i in items:
        m |= 1 << int(i)
    return m


def _dump(name: str, value: Any) -> Any:
    if name in _MASK_FIELDS:
        return list(indices(value))
    if name in _MASK_DICTS:
        return {k: list(indices(v)) for k, v in value.items()}
    if name in _MASK_LISTS:
        return [list(indices(v)) for v in value]
    if name == "input_pairs":  # JSON keys are strings
        return {str(k): list(indices(v)) for k, v in value.items()}
    return value


def _entries(items: list) -> list[Entry]:
    return [(str(p), bool(ic), int(o)) for p, ic, o in items]


def _load(name: str, value: Any) -> Any:
    if name == "size":
        return int(value)
    if name in _MASK_FIELDS:
        return _mask_of(value)
    if name in _MASK_DICTS:
        return {str(k): _mask_of(v) for k, v in value.items()}
    if name in _MASK_LISTS:
        return [_mask_of(v) for v in value]
    if name == "input_pairs":
        return {int(k): _mask_of(v) for k, v in value.items()}
    if name in ("argv_by_program", "value_sets", "input_keys"):
        return {str(k): _entries(v) for k, v in value.items()}
    if name in ("argv_wild", "flags", "commands", "path_regexes"):
        return _entries(value)
    if name == "complex_flags":
        return [(int(i), str(f)) for i, f in value]
    if name == "globs":
        return [(str(g), bool(ic)) for g, ic in value]
    raise ValueError(f"unknown plan key {name!r}")  # pragma: no cover - keys checked above


# --- building -------------------------------------------------------------------------------


def shell_only(rule: Rule) -> bool:
    """Conditions only a shell unit can satisfy: the rule never reaches another tool."""
    return any(
        x is not None for x in (rule.argv, rule.flags, rule.command_patterns, rule.fed_by)
    ) or True in (rule.opaque, rule.wrapper)


def tool_mask(rules: tuple[Rule, ...], tool: str, shell_mask: int) -> int:
    """The rules a unit of `tool` can reach (the tool index)."""
    mask = _mask(rules, lambda r: r.tools is None or patterns.any_wildcard(r.tools, tool))
    return mask if tool == "Bash" else mask & ~shell_mask


def _mask(rules: tuple[Rule, ...], pred: Callable[[Rule], bool]) -> int:
    m = 0
    for i, r in enumerate(rules):
        if pred(r):
            m |= 1 << i
    return m


def build_plan(policy: Policy) -> Plan:
    rules = policy.rules
    has = {k: _mask(rules, lambda r, k=k: getattr(r, k) is not None) for k in KINDS}
    shell_mask = _mask(rules, shell_only)
    # argv prefixes: one list per program named literally by a pattern's first token (a
    # small automaton to run), and one for patterns whose first token is a wildcard.
    by_program: dict[str, list[Entry]] = {}
    wild: list[Entry] = []
    for i, r in enumerate(rules):
        for p in r.argv or ():
            entry = (patterns.argv_regex(p.tokens, r.action == "require_approval"), False, i)
            first = p.tokens[0]
            if any(not patterns.is_literal(a) or "$" in a for a in first):
                wild.append(entry)
            else:
                for name in first:
                    by_program.setdefault(name, []).append(entry)
    flags: list[Entry] = []
    complex_flags: list[tuple[int, str]] = []
    for i, r in enumerate(rules):
        for f in r.flags or ():
            rx = patterns.flag_regex(f)
            if rx is None:
                complex_flags.append((i, f))
            else:
                flags.append((rx, False, i))
    globs: list[tuple[str, bool]] = []
    ids: dict[tuple[str, bool], int] = {}
    want: list[int] = []
    unwanted: list[int] = []

    def glob_id(g: str, ic: bool) -> int:
        key = (patterns.glob_regex(g), ic)  # globs spelled apart but equal share an entry
        if key not in ids:
            ids[key] = len(globs)
            globs.append(key)
            want.append(0)
            unwanted.append(0)
        return ids[key]

    for i, r in enumerate(rules):
        c = r.paths
        if c is None:
            continue
        for g in c.globs:
            want[glob_id(g, c.ignore_case)] |= 1 << i
        for g in c.except_globs:
            unwanted[glob_id(g, c.ignore_case)] |= 1 << i
    with_paths = [(i, r.paths) for i, r in enumerate(rules) if r.paths is not None]

    def paths_mask(pred: Callable[[Any], bool]) -> int:
        return _mask_of(i for i, c in with_paths if pred(c))

    input_keys: dict[str, list[Entry]] = {}
    input_pairs: dict[int, int] = {}
    pair = 0
    for i, r in enumerate(rules):
        for key, rx in r.input or ():
            input_keys.setdefault(key, []).append((rx.pattern, rx.ignore_case, pair))
            input_pairs[i] = input_pairs.get(i, 0) | 1 << pair
            pair += 1
    return Plan(
        size=len(rules),
        has=has,
        shell_only=shell_mask,
        opaque_true=_mask(rules, lambda r: r.opaque is True),
        wrapper_true=_mask(rules, lambda r: r.wrapper is True),
        deny=_mask(rules, lambda r: r.action == "deny"),
        by_tool={t: tool_mask(rules, t, shell_mask) for t in BUILTIN_TOOLS},
        argv_by_program=by_program,
        argv_wild=wild,
        flags=flags,
        complex_flags=complex_flags,
        commands=[
            (rx.pattern, rx.ignore_case, i)
            for i, r in enumerate(rules)
            for rx in r.command_patterns or ()
        ],
        path_regexes=[
            (rx.pattern, rx.ignore_case, i)
            for i, r in enumerate(rules)
            for rx in r.path_patterns or ()
        ],
        globs=globs,
        glob_want=want,
        glob_unwanted=unwanted,
        no_globs=paths_mask(lambda c: not c.globs),
        access_ok={a: paths_mask(lambda c, a=a: c.access in ("any", a)) for a in ("read", "write")},
        not_redirect_ok=paths_mask(lambda c: c.via == "any"),
        where_ok={
            w: paths_mask(
                lambda c, w=w: (
                    c.where in ("anywhere", w) or (c.where == "outside" and w == "unknown")
                )
            )
            for w in WHERE
        },
        value_sets={
            kind: [
                (patterns.value_regex(w), kind == "hosts", i)
                for i, r in enumerate(rules)
                for w in getattr(r, kind) or ()
            ]
            for kind in VALUE_KINDS
        },
        input_keys=input_keys,
        input_pairs=input_pairs,
    )


# --- concatenation --------------------------------------------------------------------------


def concat(plans: list[Plan]) -> Plan:
    """The plan of the concatenated policies: rule indices and masks shifted, globs shared."""
    out = build_plan(Policy(rules=()))
    for p in plans:
        _append(out, p)
    return out


def _append(out: Plan, p: Plan) -> None:
    o = out.size
    pairs = sum(v.bit_count() for v in out.input_pairs.values())

    def shift(entries: list[Entry], by: int = o) -> list[Entry]:
        return [(rx, ic, k + by) for rx, ic, k in entries]

    out.size += p.size
    for name in sorted(_MASK_FIELDS):
        setattr(out, name, getattr(out, name) | getattr(p, name) << o)
    for name in sorted(_MASK_DICTS):
        target = getattr(out, name)
        for k, v in getattr(p, name).items():
            target[k] = target.get(k, 0) | v << o
    for name, entries in p.argv_by_program.items():
        out.argv_by_program.setdefault(name, []).extend(shift(entries))
    out.argv_wild.extend(shift(p.argv_wild))
    out.flags.extend(shift(p.flags))
    out.complex_flags.extend((i + o, f) for i, f in p.complex_flags)
    out.commands.extend(shift(p.commands))
    out.path_regexes.extend(shift(p.path_regexes))
    ids = {g: k for k, g in enumerate(out.globs)}
    for g, w, u in zip(p.globs, p.glob_want, p.glob_unwanted, strict=True):
        k = ids.get(g)
        if k is None:
            k = ids[g] = len(out.globs)
            out.globs.append(g)
            out.glob_want.append(0)
            out.glob_unwanted.append(0)
        out.glob_want[k] |= w << o
        out.glob_unwanted[k] |= u << o
    for kind, entries in p.value_sets.items():
        out.value_sets.setdefault(kind, []).extend(shift(entries))
    for key, entries in p.input_keys.items():
        out.input_keys.setdefault(key, []).extend(shift(entries, pairs))
    for i, m in p.input_pairs.items():
        out.input_pairs[i + o] = m << pairs
