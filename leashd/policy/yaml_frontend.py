"""YAML policies -> IR.

Accepts every leashd 0.x policy unchanged (name, tool/tools, command_patterns, path_patterns,
action, reason, description, risk_level, settings.default_action,
settings.approval_timeout_seconds), the conditions leashd adds, and who answers a rule that
asks (`approver`). Every problem is reported as FILE:LINE:COL; a policy with any error is
rejected whole, never loaded in part.
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
    APPROVERS,
    Approver,
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
from leashd.policy.yaml_errors import SourceText, compose, scalar_offsets, value_kind

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
    """Reads nodes into values and collects every error, each at its node. Given the text
    (the YAML front-end), an error carries its source line for the caret and a bad regex
    points at its offending character; the .leash front-end builds nodes of its own text,
    and shows its lines itself."""

    def __init__(self, file: str, text: str | None = None):
        self.file = file
        self.errors: list[PolicyError] = []
        self.source = SourceText(text) if text is not None else None
        self.keys_checked = False  # duplicate keys were reported for the whole document
        self._loader = yaml.SafeLoader("")
        self._unreadable: set[int] = set()  # nodes whose value could not be read

    def span(self, node: Node) -> Span:
        return Span(
            file=self.file, line=node.start_mark.line + 1, column=node.start_mark.column + 1
        )

    def error(self, node: Node, message: str) -> None:
        if id(node) in self._unreadable:  # said once: that its value cannot be read
            return
        s = self.span(node)
        self.error_at(s.line, s.column, message)

    def error_at(self, line: int, column: int, message: str) -> None:
        source = self.source.line(line) if self.source is not None else None
        self.errors.append(PolicyError(message, self.file, line, column, source))

    def value(self, node: Node) -> Any:
        try:
            return self._loader.construct_object(node, deep=True)
        except RecursionError:
            raise
        except Exception:  # a tag PyYAML cannot construct, `!!int abc`, an unhashable key
            self._loader.recursive_objects.clear()
            self._loader.deep_construct = False
            culprit, why = self._culprit(node)
            if id(culprit) not in self._unreadable:
                self.error(culprit, why)
            self._unreadable.update((id(node), id(culprit)))
            return _UNREADABLE

    def _readable(self, node: Node) -> bool:
        try:
            self._loader.construct_object(node, deep=True)
            return True
        except RecursionError:
            raise
        except Exception:
            self._loader.recursive_objects.clear()
            self._loader.deep_construct = False
            return False

    def _culprit(self, node: Node) -> tuple[Node, str]:
        """The innermost node under `node` whose value cannot be read, and why."""
        for child in _children(node):
            if not self._readable(child):
                return self._culprit(child)
        tag = str(node.tag)
        shown = tag.replace("tag:yaml.org,2002:", "!!")
        if tag == "tag:yaml.org,2002:merge":
            return node, "merge keys (`<<`) are not supported in a policy: write the keys out"
        if tag not in self._loader.yaml_constructors:
            return node, (
                f"unknown tag {shown!r}: a policy holds plain YAML values (strings, numbers, "
                "true/false, lists and mappings)"
            )
        if isinstance(node, MappingNode):
            for k, _ in node.value:
                if not isinstance(k, ScalarNode):  # a list or a mapping cannot be a key
                    return k, f"a key must be a string, a number or true/false, not {_kind_of(k)}"
        if isinstance(node, ScalarNode):
            return node, f"{str(node.value)[:40]!r} cannot be read as {shown}"
        return node, f"{_kind_of(node)} cannot be read as {shown}"

    def kind(self, node: Node) -> str:
        """What a node is, as a type error names it."""
        if isinstance(node, ScalarNode):
            v = self.value(node)
            return "an unreadable value" if v is _UNREADABLE else _kind_of(node, v)
        return _kind_of(node)

    def mapping(
        self, node: Node, what: str, shape: str = ""
    ) -> dict[str, tuple[Node, Node]] | None:
        if not isinstance(node, MappingNode):
            self.error(node, f"{_takes(what)} a mapping{shape}, not {self.kind(node)}")
            return None
        out: dict[str, tuple[Node, Node]] = {}
        for k, v in node.value:
            key = self.value(k) if isinstance(k, ScalarNode) else None
            if not isinstance(key, str):
                self.error(k, f"{what}: a key must be a string, not {self.kind(k)}")
                continue
            if key in out:
                if not self.keys_checked:
                    first = out[key][0].start_mark.line + 1
                    self.error(k, f"duplicate key {key!r} (first at line {first})")
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
            self.error(node, f"{_takes(what)} a string, not {self.kind(node)}")
            return None
        if SURROGATE.search(v):
            self.error(node, f"{what} is not valid Unicode (it holds a lone surrogate)")
            return None
        return v

    def strings(
        self, node: Node, what: str, item: str | None = None
    ) -> list[tuple[str, Node]] | None:
        """A string or a list of strings (each an `item`), each with its node."""
        if isinstance(node, ScalarNode) and isinstance(self.value(node), str):
            s = self.string(node, what)
            return None if s is None else [(s, node)]
        if not isinstance(node, SequenceNode):
            self.error(node, f"{_takes(what)} a string or a list of strings, not {self.kind(node)}")
            return None
        out = []
        for one in node.value:
            s = self.string(one, item or f"an item of {_named(what)}")
            if s is not None:
                out.append((s, one))
        if not node.value:
            self.error(node, f"{what} is empty: it would match nothing")
        return out

    def regex_error(self, node: Node, pattern: str, exc: re.error, what: str) -> None:
        """A regex that does not compile, with the caret at the character `re` names."""
        message = f"bad regex in {what}: {exc.msg}"
        columns = getattr(node, "columns", None)  # a .leash string: where each character is
        if columns is not None and exc.pos is not None and 0 <= exc.pos < len(columns):
            self.error_at(self.span(node).line, columns[exc.pos], message)
            return
        if self.source is None or exc.pos is None:
            self.error(node, f"{message} at position {exc.pos}: {pattern!r}")
            return
        exact = isinstance(node, ScalarNode) and node.value == pattern
        offsets = scalar_offsets(self.source.text, node) if exact else None  # type: ignore[arg-type]
        if offsets is not None and 0 <= exc.pos < len(offsets):
            self.error_at(*self.source.position(offsets[exc.pos]), message)
            return
        why = {
            ">": "a folded block's columns are not the pattern's",
            "|": "its indentation is not told exactly",
            '"': "its escapes keep the column from being exact",
        }.get(getattr(node, "style", None) or "", "its line folds keep the column from being exact")
        self.error(
            node,
            f"{message} at position {exc.pos} of the pattern {pattern!r} (the caret marks "
            f"where the string starts: {why})",
        )


_UNREADABLE = object()  # a value YAML can write and a policy cannot hold


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _kind_of(node: Node, value: Any = None) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    return value_kind(value)


def _named(what: str) -> str:
    """A key as a message names it: `tools`, `paths.match`; a phrase stays a phrase."""
    return f"`{what}`" if re.fullmatch(r"[a-z_.]+", what) else what


def _takes(what: str) -> str:
    """`tools` takes ..., an item of `tools` must be ..."""
    named = _named(what)
    return f"{named} takes" if named != what else f"{what} must be"


def _duplicate_keys(r: _Reader, root: Node | None) -> None:
    """Every key written twice in one mapping, anywhere in the document (YAML's loaders keep
    the last silently). Walked without recursion, each node once."""
    stack = [root] if root is not None else []
    seen: set[int] = set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, MappingNode):
            first: dict[tuple[str, str], Node] = {}
            for k, v in node.value:
                if isinstance(k, ScalarNode):
                    key = (str(k.tag), str(k.value))
                    if key in first:
                        line = first[key].start_mark.line + 1
                        r.error(k, f"duplicate key {k.value!r} (first at line {line})")
                    else:
                        first[key] = k
                stack.extend((v, k))
        elif isinstance(node, SequenceNode):
            stack.extend(reversed(node.value))
    r.keys_checked = True


def parse_yaml(text: str, file: str = "<policy>") -> Policy:
    """Parse YAML policy text into the IR, or raise PolicyErrors listing every problem, in
    the order of the text, each with its source line."""
    check_text_size(text, file)
    try:
        root = compose(text, file)
    except RecursionError:
        raise PolicyError("invalid YAML: nested too deeply", file, 1, 1) from None
    r = _Reader(file, text)
    try:
        _duplicate_keys(r, root)
        policy = build_policy(root, file, r)
    except PolicyErrors as exc:
        raise PolicyErrors(sorted(exc.errors, key=lambda e: (e.line, e.column))) from None
    except RecursionError:
        raise PolicyError("values nested too deeply", file, 1, 1) from None
    check_not_empty(policy, file)
    return policy


def build_policy(root: Node | None, file: str, reader: _Reader | None = None) -> Policy:
    """A composed YAML document (or nodes built to look like one, as the .leash front-end
    does) -> the IR. Every check happens here, so both front-ends produce the same IR and
    the same errors, at the place each node says it came from."""
    r = reader or _Reader(file)
    found = len(r.errors)
    for node in long_strings(root):
        r.error(node, too_long(f"the string {node.value[:16]!r}…"))
    if len(r.errors) > found:  # refused before any of them is compiled as a pattern
        raise PolicyErrors(r.errors)
    if root is None or (isinstance(root, ScalarNode) and r.value(root) is None):
        return Policy(rules=(), sources=(file,))  # `---` or `~` alone: no policy either
    top = r.mapping(root, "the policy")
    if top is None:
        raise PolicyErrors(r.errors)
    r.check_keys(top, TOP_KEYS, "the policy")
    about: dict[str, str | None] = {}
    for key in ("name", "description"):
        if key in top:
            about[key] = r.string(top[key][1], key)
    if "version" in top:
        v = r.value(top["version"][1])
        if isinstance(v, bool) or not isinstance(v, int | float | str):
            node = top["version"][1]
            r.error(node, f"`version` takes a string or a number, not {r.kind(node)}")
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
            r.error(node, f"`rules` takes a list of rules, not {r.kind(node)}")
    if r.errors:
        raise PolicyErrors(r.errors)
    return Policy(rules=tuple(rules), settings=settings, sources=(file,), **about)


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
            shown = repr(v) if isinstance(v, int | float) else r.kind(n)
            r.error(
                n, f"`approval_timeout_seconds` takes a positive integer (seconds), not {shown}"
            )
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
            r.regex_error(n, pattern, exc, what)
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
    if isinstance(node, ScalarNode) and isinstance(r.value(node), str):
        text = r.string(node, what)
        if text is None:
            return None
        if not text.split():
            r.error(node, f"{what} is empty")
            return None
        return _checked_end(r, node, argv_pattern_from_text(text, r.span(node)), what)
    if not isinstance(node, SequenceNode):
        r.error(node, f"{_takes(what)} a string or a list of tokens, not {r.kind(node)}")
        return None
    if not node.value:
        r.error(node, f"{what} is empty")
        return None
    tokens: list[tuple[str, ...]] = []
    for tok in node.value:
        alts = r.strings(tok, f"a token of {what}", f"a word of {what}")
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
    if isinstance(node, ScalarNode) and not isinstance(r.value(node), str):
        r.error(node, f"`paths` takes a string, a list or a mapping, not {r.kind(node)}")
        return None
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
            node = m["ignore_case"][1]
            r.error(node, f"`paths.ignore_case` takes true or false, not {r.kind(node)}")
        else:
            kwargs["ignore_case"] = v
    return PathCondition(**kwargs)


def _examples(r: _Reader, node: Node) -> tuple[tuple[Example, ...], tuple[Example, ...]]:
    m = r.mapping(node, "examples", " (match, not_match)")
    if m is None:
        return (), ()
    r.check_keys(m, EXAMPLES_KEYS, "examples")
    out: dict[str, list[Example]] = {"match": [], "not_match": []}
    for key in out:
        if key not in m:
            continue
        seq = m[key][1]
        if not isinstance(seq, SequenceNode):
            r.error(seq, f"`examples.{key}` takes a list, not {r.kind(seq)}")
            continue
        for item in seq.value:
            ex = _example(r, item)
            if ex is not None:
                out[key].append(ex)
    return tuple(out["match"]), tuple(out["not_match"])


def _example(r: _Reader, node: Node) -> Example | None:
    if isinstance(node, ScalarNode) and isinstance(r.value(node), str):
        cmd = r.string(node, "an example")
        return (
            None if cmd is None else Example(tool="Bash", input={"command": cmd}, span=r.span(node))
        )
    if not isinstance(node, MappingNode):
        r.error(node, f"an example must be a command string or a mapping (tool, input), "
                      f"not {r.kind(node)}")  # fmt: skip
        return None
    m = r.mapping(node, "an example")
    if m is None:
        return None
    r.check_keys(m, EXAMPLE_KEYS, "an example")
    if "tool" not in m or "input" not in m:
        r.error(node, "an example needs 'tool' and 'input' (or is a Bash command string)")
        return None
    tool = r.string(m["tool"][1], "example tool")
    value = r.value(m["input"][1])
    if value is _UNREADABLE:
        return None
    if not isinstance(value, dict):
        r.error(m["input"][1], f"example input must be a mapping, not {r.kind(m['input'][1])}")
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


def _did_you_mean(value: Any, words: tuple[str, ...]) -> str:
    """` (did you mean 'ai'?)` for a misspelt word of a fixed set (`AI`, `humna`), else ''."""
    if not isinstance(value, str):
        return ""
    folded = value.strip().lower()  # `AI` and `Human ` are near no word to difflib
    hints = [folded] if folded in words else difflib.get_close_matches(folded, words, n=1)
    return f" (did you mean {hints[0]!r}?)" if hints else ""


def _approver(r: _Reader, node: Node, what: str) -> Approver | None:
    """Who answers the rule when it asks: `human` or `ai`. Allowed on any rule (the gate
    ignores it on allow and deny, and lint says so), so a misrouted deny still loads."""
    v = r.value(node)
    if v in APPROVERS:
        return v
    if isinstance(v, str):
        r.error(
            node,
            f"bad approver {v!r} in {what}: use one of {', '.join(APPROVERS)}"
            f"{_did_you_mean(v, APPROVERS)}",
        )
    else:
        r.error(node, f"`approver` takes {' or '.join(APPROVERS)}, not {r.kind(node)}")
    return None


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
                m["action"][1],
                f"bad action {action!r} in {what}: use one of {', '.join(ACTIONS)}"
                f"{_did_you_mean(action, ACTIONS)}",
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
        if isinstance(seq, SequenceNode) or (
            isinstance(seq, ScalarNode) and isinstance(r.value(seq), str)
        ):
            items = seq.value if isinstance(seq, SequenceNode) else [seq]
            pats = [_argv_pattern(r, it, "an item of commands") for it in items]
            kw["argv"] = tuple(p for p in pats if p is not None)
        else:
            r.error(seq, f"`commands` takes a string or a list of commands, not {r.kind(seq)}")
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
                r.error(m[key][1], f"`{key}` takes true or false, not {r.kind(m[key][1])}")
            kw[key] = v if isinstance(v, bool) else None
    if "input" in m:
        im = r.mapping(m["input"][1], "input", " (field: regex)")
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
    if "approver" in m:
        kw["approver"] = _approver(r, m["approver"][1], what)
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
