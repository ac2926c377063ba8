"""IR -> .leash text: the canonical form `leashd policy fmt` writes and `convert` produces.

Parsing the printed text gives the same IR again (spans aside): every condition, reason,
example and setting is printed, in a fixed order, with the shortest quoting that reads back
the same. A rule is one line when it fits in `WIDTH` columns; otherwise its clauses go on
indented lines, one each.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from leashd.policy.analysis.catalog import names_of
from leashd.policy.ir import ArgvPattern, Example, Policy, Rule
from leashd.policy.leash_frontend import KEYWORDS
from leashd.policy.yaml_frontend import argv_pattern_text
from leashd.policy.yaml_source import Place, RuleComments, YamlSource

WIDTH = 100
_ACTION = {"allow": "allow", "deny": "deny", "require_approval": "ask"}
_BARE = re.compile(r"[A-Za-z_][A-Za-z0-9_.*+/-]*\Z")
# Words a bare value cannot be: the language's keywords, and the JSON constants.
_RESERVED = {*KEYWORDS, "true", "false", "null"}


def quote(text: str) -> str:
    """A string literal: double quotes with JSON escapes."""
    return json.dumps(text, ensure_ascii=False)


def raw(text: str) -> str:
    """A regex: single-quoted, raw (no escapes to double), when it can be."""
    if "\n" in text or "\r" in text:
        return quote(text)
    return "'" + text.replace("'", "''") + "'"


def word(text: str) -> str:
    """A value that may go bare (`Read`, `conflict`) or needs quotes."""
    return text if _BARE.match(text) and text not in _RESERVED else quote(text)


def items(values: tuple[str, ...] | list[str], fmt=quote) -> str:
    if len(values) == 1:
        return fmt(values[0])
    return "[" + ", ".join(fmt(v) for v in values) + "]"


def _argv_list(p: ArgvPattern, names: dict[tuple[str, ...], str] | None = None) -> str:
    toks = [
        f"@{names[a]}" if names and a in names else quote(a[0]) if len(a) == 1 else items(a)
        for a in p.tokens
    ]
    return "argv [" + ", ".join(toks) + "]"


def _json(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{word(str(k))}: {_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_json(v) for v in value) + "]"
    if isinstance(value, str):
        return quote(value)
    return json.dumps(value)


def _example(keyword: str, ex: Example) -> str:
    if ex.bash_command is not None:
        return f"{keyword} {quote(ex.bash_command)}"
    return f"{keyword} {word(ex.tool)} {_json(ex.input)}"


@dataclass
class Clause:
    """One clause of a rule as printed, and the comments that go with it. `key` and `start`
    say which part of the rule it holds, as the YAML format names it (`commands` from item 3),
    so comments written in a YAML rule find their place in the .leash one."""

    text: str
    key: str = ""
    start: int = 0
    count: int = 1
    notes: list[str] = field(default_factory=list)  # comment lines above the clause
    # comment lines above element i of the clause's list (i == its length: before the `]`)
    item_notes: dict[int, list[str]] = field(default_factory=dict)


@dataclass
class Names:
    """The `let` names a printed policy uses: for whole lists (`paths @secrets`) and for the
    alternatives of an argv token (`argv ["make", @targets, "$"]`), each with its value's
    text in the order of first use."""

    lists: dict[tuple[str, ...], str] = field(default_factory=dict)
    tokens: dict[tuple[str, ...], str] = field(default_factory=dict)
    lets: dict[str, str] = field(default_factory=dict)  # name -> value text

    def value(self, values: tuple[str, ...], fmt=quote) -> str:
        name = self.lists.get(tuple(values))
        return f"@{name}" if name else items(values, fmt)


def _lists_of(r: Rule):
    """(keyword, values, formatting) of each list-valued clause of a rule."""
    for keyword, values, fmt in (
        ("tools", r.tools, word), ("mcp", r.mcp_servers, word), ("modes", r.modes, word),
        ("flags", r.flags, quote), ("env", r.env, word), ("fed-by", r.fed_by, word),
        ("regex", r.command_patterns and tuple(x.pattern for x in r.command_patterns), raw),
        ("path-regex", r.path_patterns and tuple(x.pattern for x in r.path_patterns), raw),
        ("paths", r.paths and r.paths.globs, quote),
        ("except", r.paths and r.paths.except_globs, quote),
        ("hosts", r.hosts, quote),
    ):  # fmt: skip
        if values and len(values) > 1:
            yield keyword, tuple(values), fmt


def _common_words(names: list[str]) -> str:
    """The words (split at `-`) all names begin with, else those they all end with."""
    split = [n.split("-") for n in names]
    for ordered in (split, [w[::-1] for w in split]):
        common: list[str] = []
        for words in zip(*ordered, strict=False):
            if len(set(words)) > 1:
                break
            common.append(words[0])
        if common:
            return "-".join(common if ordered is split else common[::-1])
    return names[0]


def shared_names(policy: Policy, anchors: dict[str, tuple[str, ...]] | None = None) -> Names:
    """`let` names for the sets a policy writes out more than once: a YAML anchor's own name
    for an anchored list used again (in a clause or as an argv token's alternatives), and a
    made-up name (after the words the rules' names share: `private-network-hosts`) for a
    clause's list several rules write out. A set then reads as one thing and a change to it
    reaches every use, which is how the language is meant to be written."""
    anchored: dict[tuple[str, ...], str] = {}
    for n, v in (anchors or {}).items():  # two anchors of one list: the first one's name
        if _BARE.match(n) and n not in _RESERVED:
            anchored.setdefault(v, n)
    count: dict[tuple[str, ...], int] = {}
    rules_of: dict[tuple[str, ...], list[str]] = {}
    first: dict[tuple[str, ...], tuple[str, object]] = {}  # keyword and formatting
    as_token: set[tuple[str, ...]] = set()  # anchored lists used as an argv token
    for r in policy.rules:
        for keyword, values, fmt in _lists_of(r):
            count[values] = count.get(values, 0) + 1
            rules_of.setdefault(values, []).append(r.name)
            first.setdefault(values, (keyword, fmt))
        for p in r.argv or ():
            for alts in p.tokens:
                if alts in anchored:
                    count[alts] = count.get(alts, 0) + 1
                    first.setdefault(alts, ("cmd", quote))
                    as_token.add(alts)
    out = Names()
    taken = set(anchored.values())
    for values, (keyword, fmt) in first.items():
        if values in anchored and count[values] > 1:
            name = anchored[values]
        elif len(set(rules_of.get(values, ()))) > 1:
            base = f"{_common_words(list(dict.fromkeys(rules_of[values])))}-{keyword}"
            if not _BARE.match(base) or "*" in base:  # rule names may be any string
                base = f"shared-{keyword}"
            name, n = base, 1
            while name in taken or name in _RESERVED:
                n += 1
                name = f"{base}-{n}"
            taken.add(name)
        else:
            continue
        out.lets[name] = items(values, fmt)  # type: ignore[arg-type]
        if values in rules_of:
            out.lists[values] = name
        if values in as_token:
            out.tokens[values] = name
    return out


def clauses(r: Rule, names: Names | None = None) -> list[Clause]:
    """The clauses of a rule, in the canonical order; with `names`, the sets named there are
    written as `@name`."""
    out: list[Clause] = []
    nm = names or Names()

    def add(text: str, key: str, start: int = 0, count: int = 1) -> None:
        out.append(Clause(text, key, start, count))

    if r.tools is not None:
        add("tools " + nm.value(r.tools, word), "tools", count=len(r.tools))
    if r.mcp_servers is not None:
        add("mcp " + nm.value(r.mcp_servers, word), "mcp_servers", count=len(r.mcp_servers))
    if r.modes is not None:
        add("modes " + nm.value(r.modes, word), "modes", count=len(r.modes))
    if r.argv is not None:
        # in order: runs of patterns that fit one string each go in one `cmd`
        run: list[str] = []
        for i, p in enumerate(r.argv):
            named = any(a in nm.tokens for a in p.tokens)
            text = None if named else argv_pattern_text(p)
            if text is not None:
                run.append(text)
                continue
            if run:
                add("cmd " + items(run), "commands", i - len(run), len(run))
                run = []
            add(_argv_list(p, nm.tokens), "commands", i)
        if run:
            add("cmd " + items(run), "commands", len(r.argv) - len(run), len(run))
        if not r.argv:
            add("cmd []", "commands", count=0)
    for key, keyword, values, fmt in (
        ("flags", "flags", r.flags, quote),
        ("env", "env", r.env, word),
        ("fed_by", "fed-by", r.fed_by, word),
    ):
        if values is not None:
            add(f"{keyword} {nm.value(values, fmt)}", key, count=len(values))
    if r.opaque is not None:
        add("opaque" if r.opaque else "opaque false", "opaque")
    if r.wrapper is not None:
        add("wrapper" if r.wrapper else "wrapper false", "wrapper")
    if r.command_patterns is not None:
        add("regex " + nm.value(tuple(x.pattern for x in r.command_patterns), raw),
            "command_patterns", count=len(r.command_patterns))  # fmt: skip
    if r.path_patterns is not None:
        add("path-regex " + nm.value(tuple(x.pattern for x in r.path_patterns), raw),
            "path_patterns", count=len(r.path_patterns))  # fmt: skip
    if r.paths is not None:
        c = r.paths
        n = len(out)
        if c.globs:
            add("paths " + nm.value(c.globs), "paths.match", count=len(c.globs))
        if c.except_globs:
            add("except " + nm.value(c.except_globs), "paths.except", count=len(c.except_globs))
        if c.access != "any":
            add("access " + c.access, "paths.access")
        if c.where != "anywhere":
            add("where " + c.where, "paths.where")
        if c.via != "any":
            add("via " + c.via, "paths.via")
        if c.ignore_case:
            add("ignore-case", "paths.ignore_case")
        if len(out) == n:
            add("access any", "paths")  # a path condition that holds for any path
    if r.hosts is not None:
        add("hosts " + nm.value(r.hosts), "hosts", count=len(r.hosts))
    for i, (key, rx) in enumerate(r.input or ()):
        add(f"input {word(key)} ~ {raw(rx.pattern)}", "input", i)
    if r.approver != "human":  # a human answers unless the rule says otherwise
        add("approver " + r.approver, "approver")
    if r.reason is not None:
        add("reason " + quote(r.reason), "reason")
    if r.description is not None:
        add("description " + quote(r.description), "description")
    if r.risk_level != "medium":
        add("risk " + r.risk_level, "risk_level")
    if r.lint_ignore:
        add("lint-ignore " + items(names_of(r.lint_ignore), word), "lint_ignore",
            count=len(r.lint_ignore))  # fmt: skip
    for i, ex in enumerate(r.examples_match):
        add(_example("match", ex), "examples.match", i)
    for i, ex in enumerate(r.examples_not_match):
        add(_example("no-match", ex), "examples.not_match", i)
    return out


def layout_rule(head: str, body: list[Clause]) -> str:
    """A rule on one line when it fits and holds no comment; otherwise a clause per indented
    line, each after its comments, long lists wrapped."""
    if not any(c.notes or c.item_notes for c in body):
        one_line = " ".join([head, *(c.text for c in body)])
        if len(one_line) <= WIDTH:
            return one_line
    out = head
    for c in body:
        wrapped = _wrap(c.text, c.item_notes)
        if wrapped is None:  # not a list: its elements' comments go above it
            wrapped = c.text
            notes = c.notes + [n for _, lines in sorted(c.item_notes.items()) for n in lines]
        else:
            notes = c.notes
        out += "".join(f"\n    {n}" for n in notes) + "\n    " + wrapped
    return out


def let_statement(name: str, value: str, notes: dict[int, list[str]] | None = None) -> str:
    """`let NAME = VALUE` on one line when it fits and holds no comment, else its list over
    several lines (the printer and `fmt` both lay lets out with this)."""
    text = f"let {name} = {value}"
    if len(text) <= WIDTH and not notes:
        return text
    wrapped = _wrap(f"{name} {value}", notes, force=True) or f"{name} {value}"
    name, _, rest = wrapped.replace("\n    ", "\n").partition(" ")
    return f"let {name} = {rest}"


def _wrap(
    clause: str, notes: dict[int, list[str]] | None = None, force: bool = False
) -> str | None:
    """A clause with its list over several lines when it is too long for one (or `force`) or
    comments go between its elements: `cmd` lists one pattern per line, other lists filled to
    the width. None when there are such comments but the value is no list to put them in."""
    keyword, _, rest = clause.partition(" ")
    is_list = rest.startswith("[") and rest.endswith("]")
    if not notes and (not is_list or (not force and len(clause) + 4 <= WIDTH)):
        return clause
    elements = _split_list(rest[1:-1]) if is_list and rest != "[]" else ([] if is_list else None)
    if elements is None:
        return None if notes else clause
    notes = notes or {}
    lines: list[str] = []
    cur = ""
    for i, e in enumerate(elements):
        piece = e + ","
        if i in notes or keyword in ("cmd", "argv") or (cur and len(cur) + len(piece) >= WIDTH - 8):
            if cur:
                lines.append(cur)
            lines.extend(notes.get(i, []))
            cur = piece
        else:
            cur = f"{cur} {piece}" if cur else piece
    if cur:
        lines.append(cur)
    lines.extend(n for i, ns in sorted(notes.items()) if i >= len(elements) for n in ns)
    return keyword + " [\n" + "".join(f"        {x}\n" for x in lines) + "    ]"


def _split_list(body: str) -> list[str] | None:
    """The top-level elements of a printed list body (strings may hold commas)."""
    out: list[str] = []
    depth = 0
    start = 0
    i = 0
    while i < len(body):
        c = body[i]
        if c == '"':
            i += 1
            while i < len(body) and body[i] != '"':
                i += 2 if body[i] == "\\" else 1
        elif c == "'":
            i += 1
            while i < len(body) and not (body[i] == "'" and body[i + 1 : i + 2] != "'"):
                i += 2 if body[i] == "'" else 1
        elif c in "[{":
            depth += 1
        elif c in "]}":
            depth -= 1
        elif c == "," and depth == 0:
            out.append(body[start:i].strip())
            start = i + 1
        i += 1
    out.append(body[start:].strip())
    return out if all(out) else None


def _place_comments(body: list[Clause], places: list[Place]) -> list[str]:
    """Put each comment written inside a YAML rule with the clause it was written at; those
    with no clause to go with (above `action:`) are returned, to go above the rule."""
    homeless: list[str] = []
    for p in places:
        key = {"tool": "tools", "argv": "commands"}.get(p.key, p.key)
        index = None if p.key == "argv" else p.index  # `argv:` is one pattern, of tokens
        if key == "paths" and index is not None:
            key = "paths.match"  # `paths: [...]`, the short form
        here = [c for c in body if c.key == key or c.key.startswith(key + ".")]
        if not here:
            homeless.extend(p.lines)
        elif index is None:
            here[0].notes.extend(p.lines)
        elif key in ("input", "examples.match", "examples.not_match"):  # a clause each
            c = next((c for c in here if c.start == index), here[-1])
            c.notes.extend(p.lines)
        else:
            c = next((c for c in here if c.start <= index < c.start + c.count), here[-1])
            if c.text.startswith("argv "):  # one pattern: its list holds tokens, not patterns
                c.notes.extend(p.lines)
            else:
                c.item_notes.setdefault(min(index - c.start, c.count), []).extend(p.lines)
    return homeless


def print_policy(policy: Policy, source: YamlSource | None = None, *, share: bool = False) -> str:
    """The policy as .leash text. `source` (a YAML original's comments and anchors): comments
    are put where they were; with `share`, sets written out more than once become `let`
    names (see `shared_names`)."""
    c = source or YamlSource()
    out: list[str] = list(c.header)
    if out:
        out.append("")
    if policy.name is not None:
        about = f"policy {quote(policy.name)}"
        if policy.description is not None:
            about += f" description {quote(policy.description)}"
        out.append(about)
    s = policy.settings
    if "default_action" in s.model_fields_set:
        out.append(f"default {_ACTION[s.default_action]}")
    if "approval_timeout_seconds" in s.model_fields_set:
        out.append(f"approval-timeout {s.approval_timeout_seconds}")
    if out and out[-1] != "":
        out.append("")
    names = shared_names(policy, c.anchors) if share else Names()
    for name, value in names.lets.items():  # laid out as `fmt` lays lets out
        text = let_statement(name, value)
        if "\n" in text and out and out[-1] != "":
            out.append("")
        out.extend([text, ""] if "\n" in text else [text])
    if names.lets and out[-1] != "":
        out.append("")
    for r in policy.rules:
        notes = c.rules.get(r.name, RuleComments())
        body = clauses(r, names)
        above = notes.above + _place_comments(body, notes.inside)
        text = layout_rule(f"{_ACTION[r.action]} {word(r.name)}", body)
        if ("\n" in text or above) and out and out[-1] != "":
            out.append("")  # a rule over several lines stands apart
        out.extend(above)
        out.append(text)
        if "\n" in text:
            out.append("")
    if c.footer:
        if out and out[-1] != "":
            out.append("")
        out.extend(c.footer)
    return "\n".join(out).rstrip("\n") + "\n"
