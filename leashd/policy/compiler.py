"""IR -> CompiledPolicy: indexes and precompiled matchers the evaluator runs.

- a tool index: tool name -> the rules that can apply to it, in order;
- a program index for shell units: program -> candidate rules, in order;
- every condition as a predicate closed over precompiled patterns;
- command regexes and path globs of all rules in multi-pattern matchers (google-re2 `Set`,
  one pass returns every pattern that matches), with stdlib `re` where RE2 cannot take a
  pattern (lookarounds, backreferences) or is not installed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from leashd.policy import patterns
from leashd.policy.errors import PolicyError, PolicyErrors
from leashd.policy.facts import Context, Unit
from leashd.policy.ir import PathCondition, Policy, Rule
from leashd.policy.reference import input_text

try:  # google-re2 is a dependency; the fallback keeps an odd platform working.
    import re2 as _re2
except ImportError:  # pragma: no cover - exercised by test_fallback via monkeypatch
    _re2 = None

_RE2_UNSUPPORTED = re.compile(r"\(\?<?[=!]|\\[1-9]|\(\?P=|\(\?>|\\[ZAG]|\(\?\(")


class MultiPattern:
    """Many regexes, one search: `hits(text)` is the set of indices that match."""

    def __init__(self, regexes: Iterable[tuple[str, bool]], use_re2: bool = True):
        self._re2_sets: list[tuple[object, list[int]]] = []
        self._fallback: list[tuple[int, re.Pattern[str]]] = []
        self.size = 0
        groups: dict[bool, list[tuple[int, str]]] = {True: [], False: []}
        for i, (pattern, ignore_case) in enumerate(regexes):
            self.size += 1
            if use_re2 and _re2 is not None and not _RE2_UNSUPPORTED.search(pattern):
                groups[ignore_case].append((i, pattern))
            else:
                self._fallback.append((i, re.compile(pattern, re.I if ignore_case else 0)))
        for ignore_case, items in groups.items():
            if not items:
                continue
            options = _re2.Options()
            options.case_sensitive = not ignore_case
            options.never_nl = False
            options.dot_nl = False
            s = _re2.Set.SearchSet(options)
            index: list[int] = []
            for i, pattern in items:
                try:
                    s.Add(pattern)  # returns len(index): Set ids are dense
                    index.append(i)
                except Exception:
                    self._fallback.append((i, re.compile(pattern, re.I if ignore_case else 0)))
            s.Compile()
            self._re2_sets.append((s, index))

    def hits(self, text: str) -> frozenset[int]:
        out: set[int] = set()
        for s, index in self._re2_sets:
            for k in s.Match(text) or ():  # type: ignore[attr-defined]
                out.add(index[k])
        for i, rx in self._fallback:
            if rx.search(text):
                out.add(i)
        return frozenset(out)


Check = Callable[[Unit, Context, "UnitMatches"], bool]


@dataclass(frozen=True, slots=True)
class CompiledRule:
    index: int
    rule: Rule
    checks: tuple[tuple[str, Check], ...]  # (condition name, predicate), cheapest first
    shell_only: bool  # has a condition only shell units can satisfy


class UnitMatches:
    """Per-unit results of the multi-pattern matchers, computed on first use."""

    __slots__ = ("_cmd", "_globs", "_legacy_paths", "_pipe", "compiled", "unit")

    def __init__(self, compiled: CompiledPolicy, unit: Unit):
        self.compiled = compiled
        self.unit = unit
        self._cmd: frozenset[int] | None = None
        self._pipe: frozenset[int] | None = None
        self._globs: list[frozenset[int]] | None = None
        self._legacy_paths: frozenset[int] | None = None

    def command_hits(self) -> frozenset[int]:
        if self._cmd is None:
            text = self.unit.text
            self._cmd = self.compiled.command_set.hits(text) if text is not None else frozenset()
        return self._cmd

    def pipeline_hits(self) -> frozenset[int]:
        if self._pipe is None:
            p = self.unit.pipeline
            self._pipe = (
                self.compiled.command_set.hits(p)
                if p is not None and p != self.unit.text
                else frozenset()
            )
        return self._pipe

    def glob_hits(self) -> list[frozenset[int]]:
        """For each path of the unit: the glob ids any of its spellings match."""
        if self._globs is None:
            gs = self.compiled.glob_set
            self._globs = [
                frozenset().union(*(gs.hits(s) for s in p.subjects())) if p.path else frozenset()
                for p in self.unit.paths
            ]
        return self._globs

    def legacy_path_hits(self) -> frozenset[int]:
        if self._legacy_paths is None:
            ps = self.compiled.path_regex_set
            self._legacy_paths = frozenset().union(
                *(ps.hits(p.path) for p in self.unit.paths if p.path is not None)
            )
        return self._legacy_paths


class CompiledPolicy:
    """A policy ready to evaluate. Build with `compile_policy`."""

    def __init__(self, policy: Policy, use_re2: bool = True):
        self.policy = policy
        command_regexes: list[tuple[str, bool]] = []
        self._cmd_owner: list[int] = []
        globs: list[tuple[str, bool]] = []
        self._glob_ids: dict[tuple[str, bool], int] = {}
        path_regexes: list[tuple[str, bool]] = []
        self._path_owner: list[int] = []
        for i, rule in enumerate(policy.rules):
            for r in rule.command_patterns or ():
                command_regexes.append((r.pattern, r.ignore_case))
                self._cmd_owner.append(i)
            for r in rule.path_patterns or ():
                path_regexes.append((r.pattern, r.ignore_case))
                self._path_owner.append(i)
            if rule.paths is not None:
                for g in (*rule.paths.globs, *rule.paths.except_globs):
                    key = (g, rule.paths.ignore_case)
                    if key not in self._glob_ids:
                        self._glob_ids[key] = len(globs)
                        globs.append((patterns.glob_regex(g), rule.paths.ignore_case))
        self.command_set = MultiPattern(command_regexes, use_re2)
        self.path_regex_set = MultiPattern(path_regexes, use_re2)
        self.glob_set = MultiPattern(globs, use_re2)
        owners: dict[int, set[int]] = {}
        for pid, rule_index in enumerate(self._cmd_owner):
            owners.setdefault(rule_index, set()).add(pid)
        self._cmd_pattern_ids = {k: frozenset(v) for k, v in owners.items()}
        powners: dict[int, set[int]] = {}
        for pid, rule_index in enumerate(self._path_owner):
            powners.setdefault(rule_index, set()).add(pid)
        self._path_pattern_ids = {k: frozenset(v) for k, v in powners.items()}
        self.rules = tuple(self._compile_rule(i, r) for i, r in enumerate(policy.rules))
        self._by_tool: dict[str, tuple[CompiledRule, ...]] = {}
        self._by_program: dict[tuple[str, bool, bool], tuple[CompiledRule, ...]] = {}
        self._wild_memo: dict[tuple[tuple[str, ...], str], bool] = {}

    # --- indexes --------------------------------------------------------------------------

    def candidates(self, unit: Unit) -> tuple[CompiledRule, ...]:
        """Rules that can match `unit`, in policy order (memoised per tool and program)."""
        by_tool = self._by_tool.get(unit.tool)
        if by_tool is None:
            by_tool = tuple(
                cr
                for cr in self.rules
                if (cr.rule.tools is None or patterns.any_wildcard(cr.rule.tools, unit.tool))
                and (unit.tool == "Bash" or not cr.shell_only)
            )
            self._by_tool[unit.tool] = by_tool
        if unit.tool != "Bash":
            return by_tool
        key = (unit.program or "", bool(unit.argv), 0 in unit.dynamic)
        by_program = self._by_program.get(key)
        if by_program is None:
            program, has_argv, dyn = key
            by_program = tuple(
                cr
                for cr in by_tool
                if cr.rule.argv is None
                or any(
                    p.tokens[0] == ("**",)
                    or (p.tokens[0] == ("$",) and not has_argv)
                    or (has_argv and patterns.token_matches(p.tokens[0], program, dyn))
                    for p in cr.rule.argv
                )
            )
            self._by_program[key] = by_program
        return by_program

    def _wild(self, pats: tuple[str, ...], value: str, ignore_case: bool = False) -> bool:
        key = (pats, value.lower() if ignore_case else value)
        hit = self._wild_memo.get(key)
        if hit is None:
            hit = patterns.any_wildcard(pats, value, ignore_case)
            if len(self._wild_memo) < 100_000:
                self._wild_memo[key] = hit
        return hit

    # --- conditions -> predicates -------------------------------------------------------------

    def _compile_rule(self, i: int, rule: Rule) -> CompiledRule:
        checks: list[tuple[str, Check]] = []
        if rule.modes is not None:
            modes = frozenset(rule.modes)
            checks.append(("modes", lambda u, c, m: c.mode in modes))
        if rule.mcp_servers is not None:
            servers = rule.mcp_servers
            checks.append(
                (
                    "mcp_servers",
                    lambda u, c, m: u.server is not None and self._wild(servers, u.server),
                )
            )
        if rule.opaque is not None:
            want = rule.opaque
            checks.append(("opaque", lambda u, c, m: (u.opaque is not None) == want))
        if rule.wrapper is not None:
            wrapper = rule.wrapper
            checks.append(("wrapper", lambda u, c, m: u.wrapper == wrapper))
        if rule.argv is not None:
            pats = tuple(p.tokens for p in rule.argv)
            checks.append(
                (
                    "argv",
                    lambda u, c, m: (
                        u.program is not None
                        and any(
                            patterns.argv_matches(t, u.argv, u.program, u.dynamic) for t in pats
                        )
                    ),
                )
            )
        if rule.flags is not None:
            flags = rule.flags
            checks.append(
                (
                    "flags",
                    lambda u, c, m: any(patterns.flag_present(f, u.argv, u.dynamic) for f in flags),
                )
            )
        if rule.env is not None:
            names = rule.env
            checks.append(("env", lambda u, c, m: any(self._wild(names, e) for e in u.env)))
        if rule.fed_by is not None:
            progs = rule.fed_by
            checks.append(("fed_by", lambda u, c, m: any(self._wild(progs, p) for p in u.fed_by)))
        if rule.hosts is not None:
            hosts = rule.hosts
            checks.append(
                ("hosts", lambda u, c, m: any(self._wild(hosts, h, True) for h in u.hosts))
            )
        if rule.command_patterns is not None:
            ids = self._cmd_pattern_ids.get(i, frozenset())
            if rule.action == "deny":
                checks.append(
                    (
                        "command_patterns",
                        lambda u, c, m: (
                            bool(ids & m.command_hits()) or bool(ids & m.pipeline_hits())
                        ),
                    )
                )
            else:
                checks.append(("command_patterns", lambda u, c, m: bool(ids & m.command_hits())))
        if rule.path_patterns is not None:
            pids = self._path_pattern_ids.get(i, frozenset())
            checks.append(("path_patterns", lambda u, c, m: bool(pids & m.legacy_path_hits())))
        if rule.paths is not None:
            checks.append(("paths", self._path_check(rule.paths)))
        if rule.input is not None:
            compiled_input = tuple(
                (key, re.compile(rx.pattern, re.I if rx.ignore_case else 0))
                for key, rx in rule.input
            )

            def input_check(u: Unit, c: Context, m: UnitMatches) -> bool:
                for key, rx in compiled_input:
                    if key not in u.input or not rx.search(input_text(u.input[key])):
                        return False
                return True

            checks.append(("input", input_check))
        shell_only = any(
            x is not None for x in (rule.argv, rule.flags, rule.command_patterns, rule.fed_by)
        ) or True in (rule.opaque, rule.wrapper)
        return CompiledRule(i, rule, tuple(checks), shell_only)

    def _path_check(self, cond: PathCondition) -> Check:
        want = frozenset(self._glob_ids[(g, cond.ignore_case)] for g in cond.globs)
        unwanted = frozenset(self._glob_ids[(g, cond.ignore_case)] for g in cond.except_globs)
        access = cond.access
        redirect_only = cond.via == "redirect"
        where_ = cond.where
        places = {"outside": ("outside", "unknown")}.get(where_, (where_,))

        def check(u: Unit, c: Context, m: UnitMatches) -> bool:
            hits = None
            for k, p in enumerate(u.paths):
                if access != "any" and p.access != access:
                    continue
                if redirect_only and p.source != "redirect":
                    continue
                if where_ != "anywhere" and p.where not in places:
                    continue
                if want or unwanted:
                    if hits is None:
                        hits = m.glob_hits()
                    h = hits[k]
                    if want and not (want & h):
                        continue
                    if unwanted & h:
                        continue
                return True
            return False

        return check


def compile_policy(policy: Policy, use_re2: bool = True, verify: bool = True) -> CompiledPolicy:
    """Compile a policy; with `verify`, every rule's examples are checked first."""
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
    compiled = CompiledPolicy(policy, use_re2)
    if verify:
        from leashd.policy.examples import verify_examples

        errors = verify_examples(compiled)
        if errors:
            raise PolicyErrors(errors)
    return compiled
