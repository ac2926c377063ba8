"""`leashd policy lint`: every finding about a policy, each with a code, a place and proof.

The stages: the examples are run on the compiled policy (example-failed); the rules'
patterns are checked on their own (invalid-pattern, unknown-tool); each rule becomes a
region of automata (regions.py) and rules that match nothing are reported (vacuous); the
rest are compared in order (anomalies.py).
"""

from __future__ import annotations

import difflib
import gc
from typing import Any, NamedTuple, Protocol

from leashd import limits
from leashd.policy import patterns
from leashd.policy.analysis import automata, cache, forked
from leashd.policy.analysis.actions import STRICT, looser, of_rule, said
from leashd.policy.analysis.anomalies import Anomaly, find_anomalies
from leashd.policy.analysis.catalog import BY_KIND
from leashd.policy.analysis.pair_cache import PairCache, RuleFacts, Stats
from leashd.policy.analysis.regions import LANG_KINDS, Region, Regions
from leashd.policy.analysis.relations import Relations
from leashd.policy.analysis.witness import EXTRA, Witnesses
from leashd.policy.compiler import CompiledPolicy, compile_policy
from leashd.policy.examples import verify_examples
from leashd.policy.facts import BUILTIN_TOOLS
from leashd.policy.ir import Policy, Rule, Span
from leashd.policy.locations import shown_file
from leashd.policy.matchers import needs_re

SEVERITIES = ("error", "warning", "info")


class Finding(NamedTuple):
    """(A tuple: a large policy's lint makes tens of thousands, and a frozen dataclass
    takes four times as long to make.)"""

    kind: str
    severity: str
    rule: str
    related: tuple[str, ...]
    message: str
    location: Span
    example: dict[str, Any] | None = None
    # Where the `related` rules are, in the same order (SARIF's relatedLocations).
    related_spans: tuple[Span, ...] = ()

    @property
    def code(self) -> str:
        return BY_KIND[self.kind].code

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "kind": self.kind,
            "severity": self.severity,
            "rule": self.rule,
            "related": list(self.related),
            "message": self.message,
            "location": {
                "file": self.location.file,
                "line": self.location.line,
                "column": self.location.column,
            },
            "example": self.example,
        }


class Progress(Protocol):
    """Told how far the lint is: `done` of `total` steps of `stage` (total 0: one step)."""

    def __call__(self, done: int, total: int, stage: str) -> None: ...


def lint(
    policy: Policy,
    progress: Progress | None = None,
    use_cache: bool = False,
    stats: Stats | None = None,
) -> list[Finding]:
    """Every finding, in source order. The policy must have loaded (duplicate rule names and
    bad regexes are load errors, reported before a lint can start). `use_cache`: reuse the
    findings of an identical policy linted by this same leashd before (cache.py), else what
    the last lint of this stack found about the rules and pairs of rules that did not
    change since (pair_cache.py). `stats`: counts what was analysed and what was reused."""
    # The analysis makes hundreds of thousands of objects that live until it ends, and
    # few reference cycles: collecting while it runs took half the time of a re-lint and
    # freed nothing that mattered (the same peak memory, a 500-rule policy cold).
    collecting = gc.isenabled()
    gc.disable()
    try:
        if progress is not None and use_cache:
            progress(0, 0, "reading the cache")
        k = cache.key(policy) if use_cache else None
        if k is not None:
            rows = cache.load(k)
            if rows is not None:
                try:
                    return [_from_row(r) for r in rows]
                except (KeyError, TypeError, ValueError):
                    pass  # a cache file of another shape: lint afresh
        pairs = PairCache.open(policy, stats) if use_cache else PairCache(policy, stats)
        out = _lint(policy, progress, pairs, save=use_cache)
        if k is not None and len(out) <= _WHOLE_RESULTS:
            cache.store(k, [_row(f) for f in out])
        return out
    finally:
        if collecting:
            gc.enable()


# Results with more findings than this are not stored whole: writing and reading them costs
# about what the pair cache takes to give them again (tens of thousands of findings are
# tens of megabytes of JSON).
_WHOLE_RESULTS = 10_000


def _row(f: Finding) -> dict[str, Any]:
    return {
        "kind": f.kind,
        "severity": f.severity,
        "rule": f.rule,
        "related": list(f.related),
        "message": f.message,
        "location": f.location.model_dump(),
        "example": f.example,
        "related_spans": [s.model_dump() for s in f.related_spans],
    }


def _from_row(r: dict[str, Any]) -> Finding:
    if r["kind"] not in BY_KIND or r["severity"] not in SEVERITIES:
        raise ValueError(f"not a finding: {r!r}")
    return Finding(
        str(r["kind"]),
        str(r["severity"]),
        str(r["rule"]),
        tuple(str(x) for x in r["related"]),
        str(r["message"]),
        cache.span_of(r["location"]),
        r["example"] if isinstance(r["example"], dict) else None,
        tuple(cache.span_of(s) for s in r["related_spans"]),
    )


def _lint(
    policy: Policy, progress: Progress | None, pairs: PairCache, save: bool = False
) -> list[Finding]:
    """`save`: write what was worked out for the next lint (pair_cache.py), once the
    analysis is done and while the findings are worded (forked.Beside)."""

    def stage(name: str, done: int = 0, total: int = 0) -> None:
        if progress is not None:
            progress(done, total, name)

    stage("compiling")
    compiled = compile_policy(policy, verify=False)
    stage("reading patterns")
    regions = Regions(policy, EXTRA)
    rel = Relations(regions)
    out: list[Finding] = []
    vacuous = {}
    n = len(policy.rules)
    for i, r in enumerate(policy.rules):
        stage("checking rules", i, n)
        facts = pairs.rule(i)
        if facts is None:
            region = regions.regions[i]
            facts = RuleFacts(
                _vacuous(region, rel), dict(region.unanalyzable), _failing_examples(compiled, i)
            )
            pairs.keep_rule(i, facts)
        examples = (*r.examples_match, *r.examples_not_match)
        for pos, message in facts.examples:
            span = examples[pos].span
            rule = _rule_at(policy, span.file, span.line)
            out.append(Finding("example-failed", "error", rule.name if rule else "", (),
                               message, Span(file=span.file, line=span.line,
                                             column=span.column)))  # fmt: skip
        if facts.vacuous:
            vacuous[i] = facts.vacuous
    for r in policy.rules:
        out.extend(_pattern_findings(r))
        out.extend(_tool_findings(r))
        out.extend(_whole_command(r))
        if r.approver == "ai" and r.action != "require_approval":
            msg = (f"rule {r.name!r} names approver ai but does not ask ({r.action}): only a "
                   "question is ever put to the AI approver")  # fmt: skip
            out.append(Finding("approver-ignored", "warning", r.name, (), msg, r.span))
    for i, why in vacuous.items():
        r = policy.rules[i]
        out.append(Finding("vacuous", "error", r.name, (), f"rule {r.name!r} matches "
                           f"nothing: {why}", r.span))  # fmt: skip
    live = [i for i in range(n) if i not in vacuous]
    witnesses = Witnesses(compiled, regions)
    pairs.prime(witnesses)
    anomalies = find_anomalies(regions, witnesses, progress, only=live, cache=pairs, rel=rel)
    writer = forked.Beside(pairs.save) if save else None
    try:
        out = _worded(policy, out, anomalies)
    except BaseException:
        if writer is not None:
            writer.cancel()
        raise
    if writer is not None:
        stage("writing the cache")
        writer.wait()
    return out


def _worded(policy: Policy, out: list[Finding], anomalies: list[Anomaly]) -> list[Finding]:
    """The findings of the rules alone (`out`) and of the anomalies, in source order."""
    words = _Words(policy.rules)
    for a in anomalies:
        f = _finding(words, a)
        if f is not None:
            out.append(f)
    ignored = {r.name: set(r.lint_ignore) for r in policy.rules if r.lint_ignore}
    if ignored:
        out = [f for f in out if f.code not in ignored.get(f.rule, ())]
    order = {s: n for n, s in enumerate(SEVERITIES)}
    codes = {kind: rule.code for kind, rule in BY_KIND.items()}
    places: dict[int, tuple[str, int, int]] = {}  # most findings share their rule's span

    def where(f: Finding) -> tuple:
        loc = f.location
        at = places.get(id(loc))
        if at is None:
            at = places[id(loc)] = (loc.file, loc.line, loc.column)
        return (*at, order[f.severity], codes[f.kind])

    out.sort(key=where)
    return out


def _failing_examples(compiled: CompiledPolicy, index: int) -> tuple[tuple[int, str], ...]:
    """The rule's examples that do not behave as they say: (position among its match then
    not-match examples, message). An example is checked against its rule alone."""
    rule = compiled.rules[index]
    examples = (*rule.examples_match, *rule.examples_not_match)
    if not examples:
        return ()
    others = frozenset(range(len(compiled.rules))) - {index}
    out = []
    used: set[int] = set()
    for err in verify_examples(compiled, skip=others):
        # the example it is about: the first one at that place not yet named (examples
        # at one place give the same finding, whichever is named)
        pos = next(
            n
            for n, ex in enumerate(examples)
            if n not in used
            and (ex.span.file, ex.span.line, ex.span.column) == (err.file, err.line, err.column)
        )
        used.add(pos)
        out.append((pos, err.message))
    return tuple(out)


def _rule_at(policy: Policy, file: str, line: int) -> Rule | None:
    best = None
    for r in policy.rules:
        if r.span.file == file and r.span.line <= line:
            best = r
    return best


def _q(rule: Rule, file: str | None = None) -> str:
    """A rule as a finding names it: its line, and its file (`file`) when that is not the
    file of the rule the finding is about."""
    where = f"{file}:{rule.span.line}" if file is not None else f"line {rule.span.line}"
    return f"{rule.name!r} ({said(rule)}, {where})"


class _Words:
    """What findings say of each rule, worked out once per lint: a large policy's lint
    words tens of thousands of findings about the same few hundred rules."""

    def __init__(self, rules: tuple[Rule, ...]):
        self.rules = rules
        self.quoted = [_q(r) for r in rules]  # as `_q` writes it, in the rule's own file
        self._files = [r.span.file for r in rules]
        # a built-in by its name; any other file as the stack names it (not relative to the
        # current directory: the words are kept in the cache, keyed by the policy alone)
        shown: dict[str, str] = {}
        for f in self._files:
            if f not in shown:
                name, builtin, _ = shown_file(f)
                shown[f] = name if builtin and name else f
        self._elsewhere = [_q(r, shown[r.span.file]) for r in rules]  # from another file
        self.spans = {r.name: r.span for r in rules}  # where each rule is, by name
        self.said = [said(r) for r in rules]
        self.strict = [STRICT[of_rule(r)] for r in rules]

    def q(self, i: int, about: int) -> str:
        """Rule i as a finding about rule `about` names it."""
        return self.quoted[i] if self._files[i] == self._files[about] else self._elsewhere[i]


def _finding(w: _Words, a: Anomaly) -> Finding | None:
    if a.kind == "conflict":  # most findings of a large policy: first, and directly
        return _conflict(w, a)
    rules, spans = w.rules, w.spans
    r = rules[a.rule]

    def finding(kind: str, severity: str, related: tuple[str, ...], msg: str,
                example: dict[str, Any] | None = None) -> Finding:  # fmt: skip
        # with the places of the rules it names
        places = tuple(spans[n] for n in related)
        return Finding(kind, severity, r.name, related, msg, r.span, example, places)

    related = tuple(rules[i].name for i in a.related)
    if a.kind in ("shadowed", "redundant"):
        covers = " and ".join(w.q(i, a.rule) for i in a.related)
        together = " together" if len(a.related) > 1 else ""
        if a.kind == "shadowed":
            msg = (f"rule {r.name!r} ({said(r)}) can never fire: every call it matches is "
                   f"decided first by {covers}{together}")  # fmt: skip
            return finding("shadowed", "error", related, msg)
        msg = (f"rule {r.name!r} never decides anything: {covers}{together} already "
               f"{said(r)} every call it matches")  # fmt: skip
        return finding("redundant", "warning", related, msg)
    if a.kind == "exception" and a.detail == "alternatives":
        later = w.q(a.related[0], a.rule)
        msg = (f"rule {r.name!r} ({said(r)}) carves exceptions out of the later {later}: "
               "each of its argv patterns overlapping that rule lies wholly inside it")  # fmt: skip
        return finding("exception", "info", related, msg)
    if a.kind == "exception":
        later = w.q(a.related[0], a.rule)
        msg = (f"rule {r.name!r} ({said(r)}) is an exception to the later {later}: it "
               f"matches only calls that one matches too")  # fmt: skip
        return finding("exception", "info", related, msg)
    first = rules[a.related[0]] if a.related else None
    looser_first = first is not None and looser(first, r)
    # unanalyzable
    if first is not None:
        if not looser_first:
            return None  # if they do overlap, the stricter rule decides: nothing to report
        msg = (f"could not decide whether rule {r.name!r} ({said(r)}) overlaps the earlier, "
               f"looser {w.q(a.related[0], a.rule)}: no call matching both was found, and no "
               "condition proves them disjoint")  # fmt: skip
        return finding("unanalyzable", "warning", related, msg)
    # A condition the automata cannot hold: no claim about the rule is made from it (never
    # contained, never disjoint), and overlaps are still found by example. Information.
    msg = f"rule {r.name!r}: {a.detail}; comparisons with this rule are not proved"
    return finding("unanalyzable", "info", (), msg)


def _conflict(w: _Words, a: Anomaly) -> Finding:
    rules, strict = w.rules, w.strict
    j = a.rule
    r = rules[j]
    i = a.related[0]
    first = rules[i]
    assert a.example is not None
    shown = _show(a.example)
    looser_first = strict[i] < strict[j]
    d = a.decider if a.decider is not None else i
    side = "looser" if looser_first else "stricter"
    if d == i and not a.whole:
        # a unit of the call is decided by `first`, but another unit decides the call
        how = (f"which decides the overlap: a unit of {shown} gets {w.said[i]} (the "
               "call itself gets a stricter decision from another of its units)")  # fmt: skip
    elif d == i:
        how = f"which decides the overlap: {shown} gets {w.said[i]}"
    else:  # the call found in the overlap is decided by a rule before both
        how = f"but the call found in the overlap, {shown}, is decided before both, by "
        how += w.q(d, j)
    msg = f"rule {r.name!r} ({w.said[j]}) overlaps the earlier, {side} {w.q(i, j)}, {how}"
    # a warning only where order really loosens a call: the looser rule comes first and
    # the call is decided by a rule looser than this one
    severity = "warning" if looser_first and strict[d] < strict[j] else "info"
    name = first.name
    return Finding("conflict", severity, r.name, (name,), msg, r.span, a.example, (w.spans[name],))


def _show(call: dict[str, Any]) -> str:
    inp = call.get("input", {})
    if call.get("tool") == "Bash" and "command" in inp:
        # characters a terminal would not show as themselves, escaped (the example keeps them)
        shown = str(inp["command"])
        if not shown.isprintable():
            shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in shown)
        return f"`{shown}`"
    return f"{call.get('tool')} {inp}"


# --- rules on their own ---------------------------------------------------------------------


def _unclosed_class(glob: str) -> bool:
    i = glob.find("[")
    while i >= 0:
        j = i + 1
        if j < len(glob) and glob[j] in "!^":
            j += 1
        if j < len(glob) and glob[j] == "]":
            j += 1
        close = glob.find("]", j)
        if close < 0:
            return True
        i = glob.find("[", close + 1)
    return False


def _pattern_findings(r: Rule) -> list[Finding]:
    out = []

    def bad(what: str, span: Span | None = None) -> None:
        out.append(Finding("invalid-pattern", "error", r.name, (),
                           f"rule {r.name!r}: {what}", span or r.span))  # fmt: skip

    for p in r.argv or ():
        for tok in p.tokens:
            for alt in tok:
                if alt == "":
                    bad(f"argv token {'|'.join(tok)!r} has an empty alternative", p.span)
                elif _unclosed_class(alt) and alt not in ("[", "[["):  # the test commands
                    bad(f"argv word {alt!r} has an unclosed '[' (read as a literal '[')", p.span)
    for group, globs in (("paths", r.paths.globs if r.paths else ()),
                         ("paths except", r.paths.except_globs if r.paths else ()),
                         ("hosts", r.hosts or ()), ("env", r.env or ()), ("tools", r.tools or ()),
                         ("flags", r.flags or ())):  # fmt: skip
        for g in globs:
            if _unclosed_class(g):
                bad(f"{group} pattern {g!r} has an unclosed '[' (read as a literal '[')")
    for rx in (*(r.command_patterns or ()), *(r.path_patterns or ()),
               *(x for _, x in r.input or ())):  # fmt: skip
        why = _misplaced_anchor(rx.pattern)
        if why:
            bad(f"regex {rx.pattern!r}: {why}", rx.span)
    if r.argv is None:
        for rx in r.command_patterns or ():
            if needs_re(rx.pattern):
                out.append(Finding(
                    "backtracking-pattern", "warning", r.name, (),
                    f"rule {r.name!r}: regex {rx.pattern!r} needs a backtracking engine and "
                    "names no program, so it runs on the text of every command (a command "
                    f"past {limits.BACKTRACK_SUBJECT:,} characters is refused); name the "
                    "programs with `commands`, or rewrite it for RE2",
                    rx.span,
                ))  # fmt: skip
    return out


def _misplaced_anchor(pattern: str) -> str | None:
    """An anchor that can never hold where it stands (`a^b`, `x\\Zy`)."""
    try:
        tree = automata.parse(pattern).tree
    except automata.Unanalyzable:
        return None
    if tree[0] != "cat":
        return None
    items = tree[1]
    for n, node in enumerate(items):
        if node == ("at", "bos") and any(_consumes(x) for x in items[:n]):
            return "'^' or '\\A' after a character can never match (use it at the start)"
        if node == ("at", "eos") and any(_consumes(x) for x in items[n + 1 :]):
            return "'\\Z' before a character can never match (use it at the end)"
    return None


def _consumes(node: tuple) -> bool:
    """Does the node always read at least one character?"""
    kind = node[0]
    if kind == "set":
        return True
    if kind == "cat":
        return any(_consumes(x) for x in node[1])
    if kind == "alt":
        return all(_consumes(x) for x in node[1])
    if kind == "rep":
        return node[1] > 0 and _consumes(node[3])
    return False


def _tool_findings(r: Rule) -> list[Finding]:
    out = []
    for name in r.tools or ():
        if name.startswith("mcp__") or name in BUILTIN_TOOLS:
            continue
        if not patterns.is_literal(name):
            if any(patterns.wildcard_match(name, t) for t in BUILTIN_TOOLS):
                continue
            msg = f"rule {r.name!r}: the tool pattern {name!r} matches no Claude Code tool"
        else:
            msg = f"rule {r.name!r}: {name!r} is neither a Claude Code tool nor an MCP tool name"
        close = difflib.get_close_matches(name, sorted(BUILTIN_TOOLS), n=1, cutoff=0.6)
        if not close:
            lowered = {t.lower(): t for t in BUILTIN_TOOLS}
            close = [lowered[name.lower()]] if name.lower() in lowered else []
        if close:
            msg += f"; did you mean {close[0]!r}?"
        out.append(Finding("unknown-tool", "warning", r.name, (), msg, r.span))
    return out


# Input fields whose text is a shell command (Bash's `command`, and an MCP server's; see
# facts._MCP_COMMAND_KEYS): an `input` condition on one reads the whole line.
_COMMAND_FIELDS = frozenset(("command", "cmd", "script", "shellcommand", "commandline"))


def _whole_command(r: Rule) -> list[Finding]:
    if r.action != "allow" or not r.input:
        return []
    fields = [f for f, _ in r.input if f.replace("_", "").lower() in _COMMAND_FIELDS]
    if not fields:
        return []
    msg = (f"rule {r.name!r} allows on the {fields[0]!r} input field, which is the command "
           "line whole: a match allows every command the line chains to it (`;`, `&&`, `|`, "
           "`$(…)`); say it with `commands` or `command_patterns`, which match each "
           "command")  # fmt: skip
    return [Finding("whole-command-allow", "warning", r.name, (), msg, r.span)]


def _vacuous(region: Region, rel: Relations) -> str | None:
    r = region.rule
    if r.tools is not None and not r.tools:
        return "its tool set is empty"
    if region.tools and rel.common("tools", region.tools, ()) is None:
        if r.tools is not None:
            return (f"none of its tools ({', '.join(r.tools)}) has what its other conditions "
                    "need (a command, a path or a host)")  # fmt: skip
        return "its conditions need different tools (a shell command and an MCP server)"
    for kind in LANG_KINDS:
        lang = region.langs.get(kind)
        if lang and rel.common(kind, lang, ()) is None:
            return f"its {kind} condition can match no value"
    if region.argv is not None and rel.argv_meet(region.argv, region.argv) is None:
        return "none of its argv patterns can match any command"
    for key, lang in region.input.items():
        if rel.common("input", lang, ()) is None:
            return f"its input condition on {key!r} can match no value"
    globs = region.paths.globs if region.paths is not None else None
    if globs and rel.common("globs", globs, ()) is None:
        return "none of its path globs can match a path"
    return None
