"""YAML policies -> IR.

Accepts every leashd 0.x policy unchanged (name, tool/tools, command_patterns, path_patterns,
action, reason, description, risk_level, settings.default_action,
settings.approval_timeout_seconds) and the conditions leashd adds. Every problem is
reported as FILE:LINE:COL; a policy with any error is rejected whole, never loaded in part.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from leashd.policy.analysis.catalog import lookup
from leashd.policy.errors import PolicyError, PolicyErrors
from leashd.policy.ir import (
    ACTIONS,
    ArgvPattern,
    Example,
    PathCondition,
    Policy,
    Regex,
    Rule,
    Settings,
    Span,
)
from leashd.policy.limits import (
    FORMAT_VERSIONS,
    check_not_empty,
    check_text_size,
    is_format_version,
    long_strings,
    read_source,
    too_long,
)
from leashd.policy.patterns import glob_regex, wildcard_regex
from leashd.policy.schema import (
    YamlExample,
    YamlExamples,
    YamlPaths,
    YamlPolicy,
    YamlRule,
    YamlSettings,
    keys,
)

# The keys each mapping accepts come from the format's models, so `policy schema` and the
# loader always agree on them.
TOP_KEYS = keys(YamlPolicy)
SETTINGS_KEYS = keys(YamlSettings)
RULE_KEYS = keys(YamlRule)
PATH_KEYS = keys(YamlPaths)
EXAMPLES_KEYS = keys(YamlExamples)
EXAMPLE_KEYS = keys(YamlExample)
RISK_LEVELS = ("low", "medium", "high", "critical")
MODES = ("default", "plan", "auto")


class _Reader:
    def __init__(self, file: str):
        self.file = file
        self.errors: list[PolicyError] = []
        self._construct = yaml.SafeLoader("").construct_object

    def span(self, node: Node) -> Span:
        return Span(
            file=self.file, line=node.start_mark.line + 1, column=node.start_mark.column + 1
        )

    def error(self, node: Node, message: str) -> None:
        s = self.span(node)
        self.errors.append(PolicyError(message, s.file, s.line, s.column))

    def value(self, node: Node) -> Any:
        return self._construct(node, deep=True)

    def mapping(self, node: Node, what: str) -> dict[str, tuple[Node, Node]] | None:
        if not isinstance(node, MappingNode):
            self.error(node, f"{what} must be a mapping")
            return None
        out: dict[str, tuple[Node, Node]] = {}
        for k, v in node.value:
            key = self.value(k) if isinstance(k, ScalarNode) else None
            if not isinstance(key, str):
                self.error(k, f"{what}: keys must be strings")
                continue
            if key in out:
                self.error(k, f"{what}: duplicate key {key!r}")
                continue
            out[key] = (k, v)
        return out

    def check_keys(
        self, m: dict[str, tuple[Node, Node]], allowed: tuple[str, ...], what: str
    ) -> None:
        for key, (k, _) in m.items():
            if key not in allowed:
                hint = difflib.get_close_matches(key, allowed, n=1)
                suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
                self.error(k, f"unknown key {key!r} in {what}{suggestion}")

    def string(self, node: Node, what: str) -> str | None:
        v = self.value(node) if isinstance(node, ScalarNode) else None
        if not isinstance(v, str):
            self.error(node, f"{what} must be a string")
            return None
        if SURROGATE.search(v):
            self.error(node, f"{what} is not valid Unicode (it holds a lone surrogate)")
            return None
        return v

    def strings(self, node: Node, what: str) -> list[tuple[str, Node]] | None:
        """A string or a list of strings, each with its node."""
        if isinstance(node, ScalarNode):
            s = self.string(node, what)
            return None if s is None else [(s, node)]
        if not isinstance(node, SequenceNode):
            self.error(node, f"{what} must be a string or a list of strings")
            return None
        out = []
        for item in node.value:
            s = self.string(item, f"each item of {what}")
            if s is not None:
                out.append((s, item))
        if not node.value:
            self.error(node, f"{what} is empty: it would match nothing")
        return out


def parse_yaml(text: str, file: str = "<policy>") -> Policy:
    """Parse YAML policy text into the IR, or raise PolicyErrors listing every problem."""
    check_text_size(text, file)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        raise PolicyError(f"invalid YAML: {exc.problem or exc}", file, line, col) from None
    except yaml.YAMLError as exc:
        raise PolicyError(f"invalid YAML: {exc}", file, 1, 1) from None
    except RecursionError:
        raise PolicyError("invalid YAML: nested too deeply", file, 1, 1) from None
    try:
        policy = build_policy(root, file)
    except RecursionError:
        raise PolicyError("values nested too deeply", file, 1, 1) from None
    check_not_empty(policy, file)
    return policy


def build_policy(root: Node | None, file: str, reader: _Reader | None = None) -> Policy:
    """A composed YAML document (or nodes built to look like one, as the .leash front-end
    does) -> the IR. Every check happens here, so both front-ends produce the same IR and
    the same errors, at the place each node says it came from."""
    r = reader or _Reader(file)
    for node in long_strings(root):
        r.error(node, too_long(f"the string {node.value[:16]!r}…"))
    if r.errors:  # refused before any of them is compiled as a pattern
        raise PolicyErrors(r.errors)
    if root is None or (isinstance(root, ScalarNode) and r.value(root) is None):
        return Policy(rules=(), sources=(file,))  # `---` or `~` alone: no policy either
    top = r.mapping(root, "the policy")
    if top is None:
        raise PolicyErrors(r.errors)
    r.check_keys(top, TOP_KEYS, "the policy")
    for key in ("name", "description"):
        if key in top:
            r.string(top[key][1], key)
    if "version" in top:
        v = r.value(top["version"][1])
        if isinstance(v, bool) or not isinstance(v, int | float | str):
            r.error(top["version"][1], f"version must be a string or a number, not {v!r}")
        elif not is_format_version(v):
            # a policy for a format this leashd does not know could mean anything
            r.error(
                top["version"][1],
                f"unsupported format version {v!r}: this leashd reads version 1 "
                f"(write {FORMAT_VERSIONS[1]!r}, or leave `version` out)",
            )
    settings = Settings()
    if "settings" in top:
        settings = _settings(r, top["settings"][1])
    rules: list[Rule] = []
    if "rules" in top:
        node = top["rules"][1]
        if isinstance(node, SequenceNode):
            names: dict[str, Span] = {}
            for item in node.value:
                rule = _rule(r, item)
                if rule is None:
                    continue
                if rule.name in names:
                    r.error(
                        item, f"duplicate rule name {rule.name!r} (first at {names[rule.name]})"
                    )
                names.setdefault(rule.name, rule.span)
                rules.append(rule)
        elif not (isinstance(node, ScalarNode) and r.value(node) is None):
            r.error(node, "rules must be a list")
    if r.errors:
        raise PolicyErrors(r.errors)
    return Policy(rules=tuple(rules), settings=settings, sources=(file,))


def load_yaml(path: str | Path) -> Policy:
    p = Path(path)
    return parse_yaml(read_source(p), str(p))


def _settings(r: _Reader, node: Node) -> Settings:
    m = r.mapping(node, "settings")
    if m is None:
        return Settings()
    r.check_keys(m, SETTINGS_KEYS, "settings")
    values: dict[str, Any] = {}
    if "default_action" in m:
        v = r.value(m["default_action"][1])
        if v not in ACTIONS:
            r.error(
                m["default_action"][1],
                f"default_action must be one of {', '.join(ACTIONS)}, not {v!r}",
            )
        else:
            values["default_action"] = v
    if "approval_timeout_seconds" in m:
        n = m["approval_timeout_seconds"][1]
        v = r.value(n)
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            r.error(n, f"approval_timeout_seconds must be a positive integer, not {v!r}")
        else:
            values["approval_timeout_seconds"] = v
    return Settings(**values)


def _regexes(r: _Reader, node: Node, what: str) -> tuple[Regex, ...] | None:
    items = r.strings(node, what)
    if items is None:
        return None
    out = []
    for pattern, n in items:
        try:
            re.compile(pattern)
        except re.error as exc:
            r.error(n, f"bad regex in {what}: {exc.msg} at position {exc.pos}: {pattern!r}")
            continue
        out.append(Regex(pattern=pattern, span=r.span(n)))
    return tuple(out)


def _wildcards(r: _Reader, node: Node, what: str) -> tuple[str, ...] | None:
    items = r.strings(node, what)
    if items is None:
        return None
    out = []
    for w, n in items:
        if not w:
            r.error(n, f"empty pattern in {what}")
            continue
        try:
            re.compile(wildcard_regex(w))
        except re.error as exc:
            r.error(n, f"bad wildcard in {what}: {exc.msg}: {w!r}")
            continue
        out.append(w)
    return tuple(out)


def _globs(r: _Reader, node: Node, what: str) -> tuple[str, ...] | None:
    items = r.strings(node, what)
    if items is None:
        return None
    out = []
    for g, n in items:
        if not g:
            r.error(n, f"empty glob in {what}")
            continue
        if g.count("[") != g.count("]") or g.count("{") != g.count("}"):
            r.error(n, f"bad glob in {what}: unbalanced brackets or braces: {g!r}")
            continue
        try:
            re.compile(glob_regex(g))
        except re.error as exc:
            r.error(n, f"bad glob in {what}: {exc.msg}: {g!r}")
            continue
        out.append(g)
    return tuple(out)


def argv_pattern_from_text(text: str, span: Span) -> ArgvPattern:
    tokens = tuple(tuple(tok.split("|")) for tok in text.split())
    return ArgvPattern(tokens=tokens, span=span)


def argv_pattern_text(p: ArgvPattern) -> str | None:
    """The one-string form of a pattern (the inverse of `argv_pattern_from_text`), or None
    when a word holds a space or a `|` and only the token-list form says it."""
    for alts in p.tokens:
        for a in alts:
            if not a or any(c.isspace() for c in a) or "|" in a:
                return None
    return " ".join("|".join(alts) for alts in p.tokens)


def _argv_pattern(r: _Reader, node: Node, what: str) -> ArgvPattern | None:
    if isinstance(node, ScalarNode):
        text = r.string(node, what)
        if text is None:
            return None
        if not text.split():
            r.error(node, f"{what} is empty")
            return None
        return _checked_end(r, node, argv_pattern_from_text(text, r.span(node)), what)
    if not isinstance(node, SequenceNode) or not node.value:
        r.error(node, f"{what} must be a string or a non-empty list of tokens")
        return None
    tokens: list[tuple[str, ...]] = []
    for tok in node.value:
        alts = r.strings(tok, f"a token of {what}")
        if alts is None:
            return None
        for a, n in alts:
            if not a:
                r.error(n, f"empty token in {what}")
                return None
        tokens.append(tuple(a for a, _ in alts))
    return _checked_end(r, node, ArgvPattern(tokens=tuple(tokens), span=r.span(node)), what)


def _checked_end(r: _Reader, node: Node, p: ArgvPattern, what: str) -> ArgvPattern | None:
    """`$` (the end of argv) is a token on its own, and the last one: `git $ push` could
    never match, and in `version $|--short` the `$` would be the literal word `$`."""
    for i, alts in enumerate(p.tokens):
        if "$" not in alts:
            continue
        if alts != ("$",):
            r.error(node, f"{what}: `$` (the end of argv) cannot be an alternative of other "
                          "words; write two patterns, one ending in `$`")  # fmt: skip
            return None
        if any(t not in (("$",), ("**",)) for t in p.tokens[i + 1 :]):
            r.error(node, f"{what}: `$` (the end of argv) must be the last token")
            return None
    return p


def _paths(r: _Reader, node: Node) -> PathCondition | None:
    if not isinstance(node, MappingNode):
        globs = _globs(r, node, "paths")
        return None if globs is None else PathCondition(globs=globs, span=r.span(node))
    m = r.mapping(node, "paths")
    if m is None:
        return None
    r.check_keys(m, PATH_KEYS, "paths")
    kwargs: dict[str, Any] = {"span": r.span(node)}
    if "match" in m:
        kwargs["globs"] = _globs(r, m["match"][1], "paths.match") or ()
    if "except" in m:
        kwargs["except_globs"] = _globs(r, m["except"][1], "paths.except") or ()
    for key, allowed in (
        ("access", ("read", "write", "any")),
        ("where", ("anywhere", "inside", "outside", "temp", "system")),
        ("via", ("any", "redirect")),
    ):
        if key in m:
            v = r.value(m[key][1])
            if v not in allowed:
                r.error(m[key][1], f"paths.{key} must be one of {', '.join(allowed)}, not {v!r}")
            else:
                kwargs[key] = v
    if "ignore_case" in m:
        v = r.value(m["ignore_case"][1])
        if not isinstance(v, bool):
            r.error(m["ignore_case"][1], "paths.ignore_case must be true or false")
        else:
            kwargs["ignore_case"] = v
    return PathCondition(**kwargs)


def _examples(r: _Reader, node: Node) -> tuple[tuple[Example, ...], tuple[Example, ...]]:
    m = r.mapping(node, "examples")
    if m is None:
        return (), ()
    r.check_keys(m, EXAMPLES_KEYS, "examples")
    out: dict[str, list[Example]] = {"match": [], "not_match": []}
    for key in out:
        if key not in m:
            continue
        seq = m[key][1]
        if not isinstance(seq, SequenceNode):
            r.error(seq, f"examples.{key} must be a list")
            continue
        for item in seq.value:
            ex = _example(r, item)
            if ex is not None:
                out[key].append(ex)
    return tuple(out["match"]), tuple(out["not_match"])


def _example(r: _Reader, node: Node) -> Example | None:
    if isinstance(node, ScalarNode):
        cmd = r.string(node, "an example")
        return (
            None if cmd is None else Example(tool="Bash", input={"command": cmd}, span=r.span(node))
        )
    m = r.mapping(node, "an example")
    if m is None:
        return None
    r.check_keys(m, EXAMPLE_KEYS, "an example")
    if "tool" not in m or "input" not in m:
        r.error(node, "an example needs 'tool' and 'input' (or is a Bash command string)")
        return None
    tool = r.string(m["tool"][1], "example tool")
    value = r.value(m["input"][1])
    if not isinstance(value, dict):
        r.error(m["input"][1], "example input must be a mapping")
        return None
    problem = _not_json(value)
    if problem:  # a tool input is JSON: a date or NaN could never be sent, nor printed back
        r.error(m["input"][1], f"example input must be JSON: {problem}")
        return None
    return None if tool is None else Example(tool=tool, input=value, span=r.span(node))


def _not_json(value: Any) -> str | None:
    """What keeps `value` from being a JSON value (as a tool input is), or None."""
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                return f"key {k!r} is not a string"
            problem = _not_json(k) or _not_json(v)
            if problem:
                return problem
        return None
    if isinstance(value, list):
        return next((p for p in map(_not_json, value) if p), None)
    if isinstance(value, str):
        return "a string holds a lone surrogate" if SURROGATE.search(value) else None
    if isinstance(value, float) and not math.isfinite(value):
        return f"{value} is no JSON number"
    if value is None or isinstance(value, (bool, int, float)):
        return None
    return f"{value!r} ({type(value).__name__}) is no JSON value"


SURROGATE = re.compile("[\ud800-\udfff]")  # a lone surrogate: JSON allows it, UTF-8 not


def _rule(r: _Reader, node: Node) -> Rule | None:
    m = r.mapping(node, "a rule")
    if m is None:
        return None
    errors_before = len(r.errors)
    name = r.string(m["name"][1], "name") if "name" in m else None
    if "name" not in m:
        r.error(node, "a rule needs a 'name'")
    what = f"rule {name!r}" if name else "a rule"
    r.check_keys(m, RULE_KEYS, what)
    action = None
    if "action" not in m:
        r.error(node, f"{what} needs an 'action' ({', '.join(ACTIONS)})")
    else:
        action = r.value(m["action"][1])
        if action not in ACTIONS:
            r.error(
                m["action"][1], f"bad action {action!r} in {what}: use one of {', '.join(ACTIONS)}"
            )
    kw: dict[str, Any] = {}
    if "tool" in m and "tools" in m:
        r.error(m["tool"][0], f"{what} has both 'tool' and 'tools'")
    for key in ("tool", "tools"):
        if key in m:
            kw["tools"] = _wildcards(r, m[key][1], key)
    if "argv" in m and "commands" in m:
        r.error(m["argv"][0], f"{what} has both 'argv' and 'commands'")
    if "argv" in m:
        p = _argv_pattern(r, m["argv"][1], "argv")
        kw["argv"] = (p,) if p else None
    if "commands" in m:
        seq = m["commands"][1]
        items = seq.value if isinstance(seq, SequenceNode) else [seq]
        pats = [_argv_pattern(r, it, "an item of commands") for it in items]
        kw["argv"] = tuple(p for p in pats if p is not None)
    simple: dict[str, Callable[[_Reader, Node, str], Any]] = {
        "command_patterns": _regexes,
        "path_patterns": _regexes,
        "flags": _wildcards,
        "hosts": _wildcards,
        "mcp_servers": _wildcards,
        "env": _wildcards,
        "fed_by": _wildcards,
    }
    for key, fn in simple.items():
        if key in m:
            kw[key] = fn(r, m[key][1], key)
    if "modes" in m:
        items = r.strings(m["modes"][1], "modes") or []
        for mode, n in items:
            if mode not in MODES:
                r.error(n, f"unknown mode {mode!r}: use one of {', '.join(MODES)}")
        kw["modes"] = tuple(mode for mode, _ in items)
    if "paths" in m:
        kw["paths"] = _paths(r, m["paths"][1])
    for key in ("opaque", "wrapper"):
        if key in m:
            v = r.value(m[key][1])
            if not isinstance(v, bool):
                r.error(m[key][1], f"{key} must be true or false")
            kw[key] = v if isinstance(v, bool) else None
    if "input" in m:
        im = r.mapping(m["input"][1], "input")
        if im is not None:
            pairs = []
            for key, (_, vnode) in im.items():
                regs = _regexes(r, vnode, f"input.{key}")
                if regs and len(regs) > 1:
                    # all pairs of a rule must hold: a list here would read as "any of"
                    # and be taken as one. Refused rather than guessed.
                    r.error(vnode, f"input.{key} takes one regex; join alternatives with |")
                elif regs:
                    pairs.append((key, regs[0]))
            kw["input"] = tuple(pairs)
    for key in ("reason", "description"):
        if key in m:
            kw[key] = r.string(m[key][1], key)
    if "risk_level" in m:
        v = r.value(m["risk_level"][1])
        if v not in RISK_LEVELS:
            r.error(m["risk_level"][1], f"risk_level must be one of {', '.join(RISK_LEVELS)}")
        else:
            kw["risk_level"] = v
    if "lint_ignore" in m:
        got = r.strings(m["lint_ignore"][1], "lint_ignore")
        if got is not None:
            codes = []
            for code, cnode in got:
                if lookup(code) is None:
                    r.error(cnode, f"lint_ignore: unknown lint code or name {code!r}")
                else:
                    codes.append(lookup(code).code)  # type: ignore[union-attr]
            kw["lint_ignore"] = tuple(codes)
    if "examples" in m:
        kw["examples_match"], kw["examples_not_match"] = _examples(r, m["examples"][1])
    if len(r.errors) > errors_before or name is None or action is None:
        return None
    return Rule(
        name=name,
        action=action,
        span=r.span(node),
        **{k: v for k, v in kw.items() if v is not None},
    )
