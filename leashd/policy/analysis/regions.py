"""What a rule matches, as automata: one region per rule, one language per condition kind.

A rule is a conjunction of conditions; each condition is a regex (or several, ORed) searched
in one subject: the tool name, the encoded flags, the command text, a path, a host, an input
field. Argv prefixes are the exception: they are word automata (argvlang.py), compared token
by token and per program. A region holds, per kind, the language of subjects the
condition accepts, as a conjunction of DFAs (an empty tuple is "anything"). Everything of
one kind shares one `Partition`, so any two languages of that kind can be compared.

The tool language also carries what a condition implies about the tool: an argv condition
only holds for shell units (tool `Bash`), a path condition only for tools that touch paths,
an MCP server condition only for `mcp__server__*` tools. Comparing rules per tool is then
comparing tool languages, exactly, wildcards included.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import cached_property

from leashd.policy import patterns
from leashd.policy.analysis import automata, shelltext
from leashd.policy.analysis.argvlang import ArgvLang
from leashd.policy.analysis.automata import DFA, Pattern, Unanalyzable
from leashd.policy.analysis.charsets import Intervals, Partition
from leashd.policy.ir import PathCondition, Policy, Rule

# A language: a conjunction of unions of DFAs (each DFA one regex). () is every string.
Lang = tuple[tuple[DFA, ...], ...]

# What a condition implies about the tool a unit comes from (see facts.py).
_SHELL_TOOLS = r"^Bash\Z"
_PATH_TOOLS = (
    r"^(?:Bash|Read|NotebookRead|LS|Write|Edit|MultiEdit|NotebookEdit|Glob|Grep|WebFetch)\Z"
    r"|^mcp__(?s:.)+?__(?s:.)"
)
_HOST_TOOLS = r"^(?:Bash|WebFetch|SandboxNetworkAccess)\Z|^mcp__(?s:.)+?__(?s:.)"
_NOTHING = r"[^\s\S]"  # a regex no string contains
_WHERE_SETS = {
    "anywhere": frozenset({"inside", "outside", "temp", "system", "unknown"}),
    "inside": frozenset({"inside"}),
    "outside": frozenset({"outside", "unknown"}),
    "temp": frozenset({"temp"}),
    "system": frozenset({"system"}),
}
# Kinds whose condition is a language over one subject (paths and input are composite).
LANG_KINDS = ("flags", "command", "path_regex", "hosts", "env", "fed_by")


class PathLang:
    """A `paths` condition: one path must satisfy all of it. The glob automata are built
    when first asked for (most questions are decided by access and place first)."""

    def __init__(self, cond: PathCondition, region: Region):
        self.cond = cond
        self.where: frozenset[str] = _WHERE_SETS[cond.where]
        self._region = region

    @cached_property
    def globs(self) -> Lang | None:
        """None: any path, even one with no spelling a glob can see."""
        return self._region._lang("globs") if self.cond.globs else None

    @cached_property
    def excepts(self) -> Lang | None:
        """None: nothing excepted."""
        return self._region._lang("globs_except") if self.cond.except_globs else None


class Region:
    """One rule as languages, one per condition kind. The automata are built the first time a
    question asks for them: a lint that takes most comparisons from its cache (pair_cache.py)
    builds only those of the rules it compares afresh."""

    def __init__(self, index: int, rule: Rule, owner: Regions, plan: dict):
        self.index = index
        self.rule = rule
        self.modes = frozenset(rule.modes) if rule.modes is not None else None
        self.opaque = rule.opaque
        self.wrapper = rule.wrapper
        self.argv = ArgvLang.of(rule) if rule.argv is not None else None
        # command regexes also see the pipeline and the words (deny rules)
        self.deny_subjects = rule.action == "deny"
        self._owner = owner
        self._plan = plan
        self._built: dict[str, Lang | None] = {}
        self._why: dict[str, str] = {}

    def has(self, kind: str) -> bool:
        """Does the rule have a condition of this language kind (LANG_KINDS)?"""
        return kind in self._plan

    def _lang(self, name: str) -> Lang | None:
        """The language of one planned condition; None: none planned, or one the automata
        cannot hold (why: in `_why`)."""
        if name not in self._built:
            got = None
            if name in self._plan:
                try:
                    got = self._owner._lang(name, self._plan[name])
                except Unanalyzable as exc:
                    self._why[name] = str(exc)
            self._built[name] = got
        return self._built[name]

    @cached_property
    def tools(self) -> Lang:
        got = self._lang("tools")
        return got if got is not None else ()

    @cached_property
    def langs(self) -> _Langs:
        return _Langs(self)

    @cached_property
    def paths(self) -> PathLang | None:
        r = self.rule
        if r.paths is None:
            return None
        return PathLang(r.paths, self)

    @cached_property
    def input_keys(self) -> tuple[str, ...]:
        """The input fields the rule has a condition on (no automaton built)."""
        return tuple(name[6:] for name in self._plan if name.startswith("input:"))

    def input_lang(self, key: str) -> Lang | None:
        """The language of one input field's condition (None: none, or unanalyzable)."""
        return self._lang("input:" + key)

    @cached_property
    def input(self) -> dict[str, Lang]:
        out = {}
        for name in self._plan:
            if name.startswith("input:"):
                got = self._lang(name)
                if got is not None:
                    out[name[6:]] = got
        return out

    @cached_property
    def unanalyzable(self) -> dict[str, str]:
        """Conditions the analysis could not turn into automata: kind -> why (every
        automaton of the rule is built to know)."""
        r = self.rule
        out: dict[str, str] = {}

        def note(name: str) -> None:
            self._lang(name)
            if name in self._why:
                out[name] = self._why[name]

        for name in ("tools", *LANG_KINDS):
            note(name)
        if r.flags is not None and not self._plan.get("flags"):
            out["flags"] = "a flag wildcard that can also match inside `--name=value`"
        if r.paths is not None and r.paths.globs:
            note("globs")
        if r.paths is not None and r.paths.except_globs:
            note("globs_except")
        for name in self._plan:
            if name.startswith("input:"):
                note(name)
        return out


class _Langs(Mapping[str, "Lang | None"]):
    """A region's languages of the kinds in LANG_KINDS, each built when first asked for."""

    def __init__(self, region: Region):
        self._region = region

    def __getitem__(self, kind: str) -> Lang | None:
        if kind not in LANG_KINDS:
            raise KeyError(kind)
        return self._region._lang(kind)

    def __iter__(self) -> Iterator[str]:
        return iter(LANG_KINDS)

    def __len__(self) -> int:
        return len(LANG_KINDS)


def _wildcards(ws: tuple[str, ...], ignore_case: bool = False) -> list[tuple[str, bool]]:
    return [("(?s)^(?:" + patterns.wildcard_regex(w) + r")\Z", ignore_case) for w in ws]


class _Kind:
    """The patterns of one condition kind: parsed, then built over one partition, when the
    first automaton of the kind is asked for (a lint that takes its comparisons from the
    cache may never ask)."""

    def __init__(self, name: str):
        self.name = name
        self._keys: dict[tuple[str, bool], None] = {}
        self.parsed: dict[tuple[str, bool], Pattern | Unanalyzable] = {}
        self.sets: list[Intervals] = []  # further character sets the partition must tell apart
        self._partition: Partition | None = None
        self._dfas: dict[tuple[str, bool], DFA] = {}
        self._universe: DFA | None = None

    def add(self, regexes: list[tuple[str, bool]]) -> None:
        assert self._partition is None, "a pattern added after the partition was made"
        for key in regexes:
            self._keys.setdefault(key)

    @property
    def partition(self) -> Partition:
        if self._partition is None:
            self._freeze()
        assert self._partition is not None
        return self._partition

    @property
    def universe(self) -> DFA:
        if self._universe is None:
            everything = automata.parse(r"(?s).*")
            self._universe = automata.search_dfa(everything, self.partition)
        return self._universe

    def _freeze(self) -> None:
        for key in self._keys:
            try:
                # DOTALL-free `.` and friends mean what `re` means: parse as written
                self.parsed[key] = automata.parse(key[0], key[1])
            except Unanalyzable as exc:
                self.parsed[key] = exc
        sets = list(self.sets)
        ascii_words = False
        for p in self.parsed.values():
            if isinstance(p, Pattern):
                sets.extend(p.sets)
                ascii_words = ascii_words or p.ascii_words
        self._partition = Partition(sets, ascii_words)

    def dfa(self, regex: tuple[str, bool]) -> DFA:
        """The DFA of subjects `regex` is found in."""
        hit = self._dfas.get(regex)
        if hit is None:
            partition = self.partition
            p = self.parsed.get(regex)
            if p is None:
                raise KeyError(f"{regex!r} was not added before the partition was made")
            if isinstance(p, Unanalyzable):
                raise p
            hit = self._dfas[regex] = automata.search_dfa(p, partition)
        return hit

    def lang(self, conjuncts: list[list[tuple[str, bool]]]) -> Lang:
        return tuple(tuple(self.dfa(r) for r in dict.fromkeys(c)) for c in conjuncts)


class Regions:
    """Every rule of a policy as a region, built over shared partitions."""

    def __init__(self, policy: Policy, extra: dict[str, list[tuple[str, bool]]] | None = None):
        """`extra`: further regexes per kind that later questions will build automata of
        (they must be part of the shared partitions)."""
        self.policy = policy
        self.kinds = {k: _Kind(k) for k in ("tools", *LANG_KINDS, "globs", "input")}
        plans = [self._plan(r) for r in policy.rules]
        # Argv rules against command regexes: the words of each argv alternative, and the
        # characters the shell's quoting tells apart, join the command kind (shelltext.py).
        self.texts = any(r.command_patterns is not None for r in policy.rules)
        if self.texts:
            command = self.kinds["command"]
            command.sets.extend(shelltext.SETS)
            tokens = {
                (alts, r.action == "require_approval" and n > 0)
                for r in policy.rules
                for p in r.argv or ()
                for n, alts in enumerate(p.tokens)
                if alts not in (("**",), ("$",))
            }
            # each token's characters (its automaton is built when a question asks)
            command.add([(patterns.token_word_regex(a, lenient), False) for a, lenient in tokens])
        for kind, regexes in (extra or {}).items():
            self.kinds[kind].add(regexes)
        self.regions = [
            Region(i, r, self, plan)
            for i, (r, plan) in enumerate(zip(policy.rules, plans, strict=True))
        ]

    # --- what regexes each rule needs, per kind --------------------------------------------

    def _plan(self, r: Rule) -> dict[str, list[list[tuple[str, bool]]]]:
        """kind -> list of conjuncts, each a list of ORed regexes."""
        plan: dict[str, list[list[tuple[str, bool]]]] = {}
        tools: list[list[tuple[str, bool]]] = []
        if r.tools is not None:
            tools.append(_wildcards(r.tools) or [(_NOTHING, False)])
        if r.mcp_servers is not None:
            tools.append(
                [
                    ("(?s)^mcp__(?:" + patterns.wildcard_regex(w) + ")__.", False)
                    for w in r.mcp_servers
                ]
                or [(_NOTHING, False)]
            )
        # env: only shell units have variables (an empty list elsewhere, which no pattern of
        # an env condition is found in)
        shell_only = any(
            x is not None for x in (r.argv, r.flags, r.command_patterns, r.fed_by, r.env)
        ) or True in (r.opaque, r.wrapper)
        if shell_only:
            tools.append([(_SHELL_TOOLS, False)])
        if r.paths is not None or r.path_patterns is not None:
            tools.append([(_PATH_TOOLS, False)])
        if r.hosts is not None:
            tools.append([(_HOST_TOOLS, False)])
        plan["tools"] = tools
        if r.flags is not None:
            rx = [patterns.flag_regex(f) for f in r.flags]
            plan["flags"] = [[(x, False) for x in rx if x is not None]] if None not in rx else []
        if r.command_patterns is not None:
            plan["command"] = [[(x.pattern, x.ignore_case) for x in r.command_patterns]]
        if r.path_patterns is not None:
            plan["path_regex"] = [[(x.pattern, x.ignore_case) for x in r.path_patterns]]
        if r.hosts is not None:
            plan["hosts"] = [_wildcards(r.hosts, True)]
        if r.env is not None:
            plan["env"] = [_wildcards(r.env)]
        if r.fed_by is not None:
            plan["fed_by"] = [_wildcards(r.fed_by)]
        if r.paths is not None:
            ic = r.paths.ignore_case
            if r.paths.globs:
                plan["globs"] = [[(patterns.glob_regex(g), ic) for g in r.paths.globs]]
            if r.paths.except_globs:
                excepts = r.paths.except_globs
                plan["globs_except"] = [[(patterns.glob_regex(g), ic) for g in excepts]]
        for key, rx in r.input or ():
            plan.setdefault("input:" + key, []).append([(rx.pattern, rx.ignore_case)])
        for name, conjuncts in plan.items():
            kind = self._kind_of(name)
            for c in conjuncts:
                kind.add(c)
        return plan

    def _kind_of(self, name: str) -> _Kind:
        if name.startswith("input:"):
            return self.kinds["input"]
        if name == "globs_except":
            return self.kinds["globs"]
        return self.kinds[name]

    def _lang(self, name: str, conjuncts: list[list[tuple[str, bool]]]) -> Lang:
        return self._kind_of(name).lang(conjuncts)

    def universe(self, kind: str) -> DFA:
        return self._kind_of(kind).universe
