"""IR -> CompiledPolicy: indexes and precompiled matchers, evaluated as bitsets.

Rule i is bit i of a Python int. For a unit, the evaluator starts from the rules its tool
(and, for a shell unit, its program) can reach, then narrows that set one condition kind at a
time: each kind computes, in one pass for all rules at once, the mask of rules whose condition
of that kind holds (argv patterns and flags as regexes over an encoded token string, command
regexes, path globs and legacy path regexes through google-re2 `Set`s). The first matching
rule is the lowest bit left. The cost per unit is a handful of set searches, whatever the
number of rules; the reference interpreter (`reference.py`) stays the oracle it is tested
against.
"""

from __future__ import annotations

from collections.abc import Callable

from leashd.policy import patterns
from leashd.policy.errors import PolicyError, PolicyErrors
from leashd.policy.facts import Context, Unit
from leashd.policy.ir import Policy, Rule
from leashd.policy.matchers import MaskMatcher, MultiPattern
from leashd.policy.plan import KINDS, Entry, Plan, build_plan, tool_mask
from leashd.policy.plan import indices as bits
from leashd.policy.reference import input_text

_MEMO_LIMIT = 16384


def _lowest(mask: int) -> int:
    return (mask & -mask).bit_length() - 1


class _PerProgram:
    """The argv matcher of each program, built the first time a unit of that program is
    decided: the built-ins name some 500 programs and a call uses a few, and building every
    set up front was most of the time `leashd policy eval` took to load a policy."""

    def __init__(self, entries: dict[str, list[Entry]], use_re2: bool):
        self._entries = entries
        self._use_re2 = use_re2
        self._built: dict[str, MaskMatcher] = {}

    def get(self, program: str) -> MaskMatcher | None:
        m = self._built.get(program)
        if m is None and program in self._entries:
            # two threads may both build it: the same matcher, one of them kept
            m = self._built[program] = MaskMatcher(
                self._entries[program], self._use_re2, portable=True
            )
        return m

    def values(self) -> list[MaskMatcher]:
        return list(self._built.values())


class CompiledPolicy:
    """A policy ready to evaluate. Build with `compile_policy` (or `from_plan`)."""

    def __init__(self, policy: Policy, use_re2: bool = True, plan: Plan | None = None):
        """`plan`: the policy's plan when it is already known (a compiled artifact)."""
        self.policy = policy
        self.rules: tuple[Rule, ...] = policy.rules
        p = plan if plan is not None else build_plan(policy)
        if p.size != len(self.rules):
            raise ValueError(f"plan for {p.size} rules given for a policy of {len(self.rules)}")
        self.plan = p
        self.all = (1 << len(self.rules)) - 1
        self.has = p.has
        self._shell_only = p.shell_only
        self._opaque_true = p.opaque_true
        self._wrapper_true = p.wrapper_true
        self._deny = p.deny
        self._argv_by_program = _PerProgram(p.argv_by_program, use_re2)
        self._argv_wild = MaskMatcher(p.argv_wild, use_re2, portable=True)
        self._flags = MaskMatcher(p.flags, use_re2, portable=True)
        self._complex_flags = p.complex_flags
        # Legacy regexes: command text (deny rules also on the whole pipeline), paths.
        self._commands = MaskMatcher(p.commands, use_re2)
        self._path_regexes = MaskMatcher(p.path_regexes, use_re2)
        self._globs = MultiPattern(p.globs, use_re2)
        self._glob_want = p.glob_want
        self._glob_unwanted = p.glob_unwanted
        self._glob_memo: dict[str, tuple[int, int]] = {}
        self._no_globs = p.no_globs
        self._access_ok = p.access_ok
        self._not_redirect_ok = p.not_redirect_ok
        self._where_ok = p.where_ok
        # Wildcards on whole values (servers, variable names, programs, hosts): one set each.
        self._value_sets = {
            kind: MaskMatcher(entries, use_re2, portable=kind != "hosts")
            for kind, entries in p.value_sets.items()
        }
        # `input` conditions: one matcher per input key; a rule needs all of its pairs.
        self._input_pairs = p.input_pairs
        self._input_keys = {k: MaskMatcher(v, use_re2) for k, v in p.input_keys.items()}
        # Cheapest kinds first; each narrows the candidates the next one has to look at.
        self._steps: tuple[tuple[str, Callable[[Unit, Context, int], int]], ...] = (
            ("modes", self._ok_modes),
            ("opaque", self._ok_opaque),
            ("wrapper", self._ok_wrapper),
            ("mcp_servers", self._ok_servers),
            ("argv", self._ok_argv),
            ("flags", self._ok_flags),
            ("env", self._ok_env),
            ("fed_by", self._ok_fed_by),
            ("hosts", self._ok_hosts),
            ("command_patterns", self._ok_commands),
            ("path_patterns", self._ok_path_regexes),
            ("paths", self._ok_paths),
            ("input", self._ok_input),
        )
        self._memos: list[dict] = []
        # The tool index: planned for every Claude Code tool, for other names on first use.
        self._by_tool: dict[str, int] = dict(p.by_tool)
        # Per tool, only the condition kinds some rule reaching it has (part of the index).
        self._tool_steps: dict[
            str, tuple[tuple[int, Callable[[Unit, Context, int], int]], ...]
        ] = {}
        self._modes: dict[str, int] = self._memo()
        self._values: dict[tuple[str, str], int] = self._memo()

    # --- construction helpers -------------------------------------------------------------

    def _mask(self, pred: Callable[[Rule], bool], among: int | None = None) -> int:
        m = 0
        for i, r in enumerate(self.rules):
            if pred(r):
                m |= 1 << i
        return m if among is None else m & among

    def _memo(self) -> dict:
        d: dict = {}
        self._memos.append(d)
        return d

    def clear_memos(self) -> None:
        """Forget every memoised answer (benchmarks measure cold evaluation with this)."""
        for d in self._memos:
            d.clear()
        self._glob_memo.clear()
        for m in (self._argv_wild, self._flags, self._commands, self._path_regexes):
            m.clear()
        for m in self._argv_by_program.values():
            m.clear()
        for m in (*self._input_keys.values(), *self._value_sets.values()):
            m.clear()

    # --- indexes --------------------------------------------------------------------------

    def candidates(self, unit: Unit) -> int:
        """The rules `unit`'s tool can reach, as a mask (the tool index).

        Shell units need no program index on top: the argv kind is the first one evaluated
        and narrows every rule with an argv condition at once, in one set search.
        """
        by_tool = self._by_tool.get(unit.tool)
        if by_tool is None:
            by_tool = self._tool_mask(unit.tool)
            if len(self._by_tool) < _MEMO_LIMIT:
                self._by_tool[unit.tool] = by_tool
        return by_tool

    def _tool_mask(self, tool: str) -> int:
        return tool_mask(self.rules, tool, self._shell_only)

    # --- evaluation -----------------------------------------------------------------------

    def first_match(self, unit: Unit, ctx: Context) -> int | None:
        """The index of the first rule that matches `unit`, or None."""
        cand = self.candidates(unit)
        steps = self._tool_steps.get(unit.tool)
        if steps is None:
            steps = tuple((self.has[k], ok) for k, ok in self._steps if self.has[k] & cand)
            if len(self._tool_steps) < _MEMO_LIMIT:
                self._tool_steps[unit.tool] = steps
        for has, ok in steps:
            need = cand & has
            if need:
                cand &= ~need | ok(unit, ctx, need)
                if not cand:
                    return None
        return _lowest(cand) if cand else None

    def matches(self, index: int, unit: Unit, ctx: Context) -> bool:
        """Does rule `index` on its own match `unit` (order aside)?"""
        bit = 1 << index
        if not self.candidates(unit) & bit:
            return False
        return all(ok(unit, ctx, bit) & bit for kind, ok in self._steps if self.has[kind] & bit)

    def trace(self, unit: Unit, ctx: Context) -> list[tuple[int, str | None]]:
        """Each candidate rule in order with the first condition kind it fails (None: it
        matches), up to and including the first rule that matches."""
        cand = self.candidates(unit)
        ok = {k: fn(unit, ctx, cand & self.has[k]) for k, fn in self._steps}
        out: list[tuple[int, str | None]] = []
        for i in bits(cand):
            bit = 1 << i
            failed = next((k for k in KINDS if self.has[k] & bit and not ok[k] & bit), None)
            out.append((i, failed))
            if failed is None:
                break
        return out

    # --- one condition kind, all rules at once: the mask of `need` whose condition holds --

    def _ok_modes(self, unit: Unit, ctx: Context, need: int) -> int:
        m = self._modes.get(ctx.mode)
        if m is None:
            m = self._mask(lambda r: r.modes is not None and ctx.mode in r.modes)
            self._modes[ctx.mode] = m
        return m

    def _ok_opaque(self, unit: Unit, ctx: Context, need: int) -> int:
        return self._opaque_true if unit.opaque is not None else need & ~self._opaque_true

    def _ok_wrapper(self, unit: Unit, ctx: Context, need: int) -> int:
        return self._wrapper_true if unit.wrapper else need & ~self._wrapper_true

    def _value_mask(self, kind: str, value: str, ignore_case: bool = False) -> int:
        """Rules whose `kind` wildcards match `value` (server, env name, program, host)."""
        if patterns.SEP not in value:
            return self._value_sets[kind].mask(value + patterns.SEP)
        key = (kind, value)
        m = self._values.get(key)
        if m is None:
            m = self._mask(
                lambda r: (
                    getattr(r, kind) is not None
                    and patterns.any_wildcard(getattr(r, kind), value, ignore_case)
                )
            )
            if len(self._values) >= _MEMO_LIMIT:
                self._values.clear()
            self._values[key] = m
        return m

    def _ok_servers(self, unit: Unit, ctx: Context, need: int) -> int:
        return self._value_mask("mcp_servers", unit.server) if unit.server is not None else 0

    def _ok_env(self, unit: Unit, ctx: Context, need: int) -> int:
        m = 0
        for name in unit.env:
            m |= self._value_mask("env", name)
        return m

    def _ok_fed_by(self, unit: Unit, ctx: Context, need: int) -> int:
        m = 0
        for prog in unit.fed_by:
            m |= self._value_mask("fed_by", prog)
        return m

    def _ok_hosts(self, unit: Unit, ctx: Context, need: int) -> int:
        m = 0
        for host in unit.hosts:
            m |= self._value_mask("hosts", host, True)
        return m

    def _ok_argv(self, unit: Unit, ctx: Context, need: int) -> int:
        if unit.program is None:
            return 0
        argv = unit.argv
        text = (
            patterns.encode_words((unit.program, *argv[1:]), unit.dynamic, keep_known=True)
            if argv
            else ""
        )
        if text is not None:
            named = (
                self._argv_by_program.get(unit.program) if argv and 0 not in unit.dynamic else None
            )
            m = self._argv_wild.mask(text)
            return m | named.mask(text) if named is not None else m
        m = 0  # a word the encoding cannot carry: match those rules one by one
        for i in bits(need):
            if any(
                patterns.argv_matches(
                    p.tokens,
                    argv,
                    unit.program,
                    unit.dynamic,
                    self.rules[i].action == "require_approval",
                )
                for p in self.rules[i].argv or ()
            ):
                m |= 1 << i
        return m

    def _ok_flags(self, unit: Unit, ctx: Context, need: int) -> int:
        argv = unit.argv
        words = argv[1:]
        if "--" in words:
            words = words[: words.index("--")]
        text = patterns.encode_words(words, unit.dynamic, offset=1)
        if text is None:
            m = 0
            for i in bits(need):
                if any(
                    patterns.flag_present(f, argv, unit.dynamic) for f in self.rules[i].flags or ()
                ):
                    m |= 1 << i
            return m
        m = self._flags.mask(patterns.SEP + text)
        for i, flag in self._complex_flags:
            if need & (1 << i) and patterns.flag_present(flag, argv, unit.dynamic):
                m |= 1 << i
        return m

    def _ok_commands(self, unit: Unit, ctx: Context, need: int) -> int:
        text, pipeline = unit.text, unit.pipeline
        m = self._commands.mask(text, need) if text is not None else 0
        deny = need & self._deny
        if deny:
            if pipeline is not None and pipeline != text:
                m |= self._commands.mask(pipeline, deny) & self._deny
            words = unit.words_text()
            if words is not None and words != text:
                m |= self._commands.mask(words, deny) & self._deny
        return m

    def _ok_path_regexes(self, unit: Unit, ctx: Context, need: int) -> int:
        m = 0
        for p in unit.paths:
            if p.path is not None:
                m |= self._path_regexes.mask(p.path, need)
        return m

    def _glob_masks(self, subject: str) -> tuple[int, int]:
        hit = self._glob_memo.get(subject)
        if hit is None:
            want = unwanted = 0
            for k in self._globs.hits(subject):
                want |= self._glob_want[k]
                unwanted |= self._glob_unwanted[k]
            hit = (want, unwanted)
            if len(self._glob_memo) >= _MEMO_LIMIT:
                self._glob_memo.clear()
            self._glob_memo[subject] = hit
        return hit

    def _ok_paths(self, unit: Unit, ctx: Context, need: int) -> int:
        m = 0
        for p in unit.paths:
            pm = self._access_ok[p.access] & self._where_ok[p.where] & need
            if p.source != "redirect":
                pm &= self._not_redirect_ok
            if not pm:
                continue
            want = unwanted = 0
            for subject in p.subjects():
                w2, u2 = self._glob_masks(subject)
                want |= w2
                unwanted |= u2
            m |= pm & (want | self._no_globs) & ~unwanted
        return m

    def _ok_input(self, unit: Unit, ctx: Context, need: int) -> int:
        hits = 0
        pairs_needed = 0  # the pairs of the rules in `need` (a key's patterns are per pair)
        for i in bits(need):
            pairs_needed |= self._input_pairs[i]
        for key, matcher in self._input_keys.items():
            if key in unit.input:
                hits |= matcher.mask(input_text(unit.input[key]), pairs_needed)
        m = 0
        for i in bits(need):
            pairs = self._input_pairs[i]
            if hits & pairs == pairs:
                m |= 1 << i
        return m


def compile_policy(
    policy: Policy,
    use_re2: bool = True,
    verify: bool = True,
    plan: Plan | None = None,
    verified: frozenset[int] = frozenset(),
) -> CompiledPolicy:
    """Compile a policy; with `verify`, every rule's examples are checked first.

    `plan`: the policy's plan, when known ahead of time; `verified`: indices of rules whose
    examples were checked when their compiled file was written.
    """
    duplicates: list[PolicyError] = []
    seen: dict[str, Rule] = {}
    for rule in policy.rules:
        if rule.name in seen:
            first = seen[rule.name]
            duplicates.append(
                PolicyError(
                    f"duplicate rule name {rule.name!r} (first at {first.span})",
                    rule.span.file,
                    rule.span.line,
                    rule.span.column,
                )
            )
        seen.setdefault(rule.name, rule)
    if duplicates:
        raise PolicyErrors(duplicates)
    compiled = CompiledPolicy(policy, use_re2, plan)
    if verify:
        from leashd.policy.examples import verify_examples

        errors = verify_examples(compiled, skip=verified)
        if errors:
            raise PolicyErrors(errors)
    return compiled
