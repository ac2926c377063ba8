"""IR -> .leash text: the canonical form `leashd policy fmt` writes and `convert` produces.

Parsing the printed text gives the same IR again (spans aside): every condition, reason,
example and setting is printed, in a fixed order, with the shortest quoting that reads back
the same. A rule is one line when it fits in `WIDTH` columns; otherwise its clauses go on
indented lines, one each.
"""

from __future__ import annotations

import json
import re
from typing import Any

from leashd.policy.analysis.catalog import names_of
from leashd.policy.ir import ArgvPattern, Example, Policy, Rule
from leashd.policy.leash_frontend import KEYWORDS
from leashd.policy.yaml_frontend import argv_pattern_text

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


def _argv_list(p: ArgvPattern) -> str:
    toks = [quote(a[0]) if len(a) == 1 else "[" + ", ".join(map(quote, a)) + "]" for a in p.tokens]
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
    return f"{keyword} {ex.tool} {_json(ex.input)}"


def clauses(r: Rule) -> list[str]:
    """The clauses of a rule, in the canonical order."""
    out: list[str] = []
    if r.tools is not None:
        out.append("tools " + items(r.tools, word))
    if r.mcp_servers is not None:
        out.append("mcp " + items(r.mcp_servers, word))
    if r.modes is not None:
        out.append("modes " + items(r.modes, word))
    if r.argv is not None:
        # in order: runs of patterns that fit one string each go in one `cmd`
        run: list[str] = []
        for p in r.argv:
            text = argv_pattern_text(p)
            if text is not None:
                run.append(text)
                continue
            if run:
                out.append("cmd " + items(run))
                run = []
            out.append(_argv_list(p))
        if run:
            out.append("cmd " + items(run))
        if not r.argv:
            out.append("cmd []")
    if r.flags is not None:
        out.append("flags " + items(r.flags))
    if r.env is not None:
        out.append("env " + items(r.env, word))
    if r.fed_by is not None:
        out.append("fed-by " + items(r.fed_by, word))
    if r.opaque is not None:
        out.append("opaque" if r.opaque else "opaque false")
    if r.wrapper is not None:
        out.append("wrapper" if r.wrapper else "wrapper false")
    if r.command_patterns is not None:
        out.append("regex " + items([x.pattern for x in r.command_patterns], raw))
    if r.path_patterns is not None:
        out.append("path-regex " + items([x.pattern for x in r.path_patterns], raw))
    if r.paths is not None:
        c = r.paths
        parts = ["paths " + items(c.globs)] if c.globs else []
        if c.except_globs:
            parts.append("except " + items(c.except_globs))
        if c.access != "any":
            parts.append("access " + c.access)
        if c.where != "anywhere":
            parts.append("where " + c.where)
        if c.via != "any":
            parts.append("via " + c.via)
        if c.ignore_case:
            parts.append("ignore-case")
        if not parts:
            parts.append("access any")  # a path condition that holds for any path
        out.extend(parts)
    if r.hosts is not None:
        out.append("hosts " + items(r.hosts))
    for key, rx in r.input or ():
        out.append(f"input {word(key)} ~ {raw(rx.pattern)}")
    if r.reason is not None:
        out.append("reason " + quote(r.reason))
    if r.description is not None:
        out.append("description " + quote(r.description))
    if r.risk_level != "medium":
        out.append("risk " + r.risk_level)
    if r.lint_ignore:
        out.append("lint-ignore " + items(names_of(r.lint_ignore), word))
    out.extend(_example("match", ex) for ex in r.examples_match)
    out.extend(_example("no-match", ex) for ex in r.examples_not_match)
    return out


def _wrap(clause: str) -> str:
    """A clause too long for one line, with its list over several: `cmd` lists one pattern
    per line, other lists filled to the width."""
    keyword, _, rest = clause.partition(" ")
    if len(clause) + 4 <= WIDTH or not rest.startswith("[") or not rest.endswith("]"):
        return clause
    elements = _split_list(rest[1:-1])
    if elements is None:
        return clause
    lines: list[str] = []
    if keyword in ("cmd", "argv"):
        lines = [e + "," for e in elements]
    else:
        cur = ""
        for e in elements:
            piece = e + ","
            if cur and len(cur) + 1 + len(piece) > WIDTH - 8:
                lines.append(cur)
                cur = piece
            else:
                cur = f"{cur} {piece}" if cur else piece
        if cur:
            lines.append(cur)
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


def rule_text(r: Rule) -> str:
    head = f"{_ACTION[r.action]} {word(r.name)}"
    body = clauses(r)
    one_line = " ".join([head, *body])
    if len(one_line) <= WIDTH:
        return one_line
    return head + "".join("\n    " + _wrap(c) for c in body)


def yaml_comments(text: str) -> tuple[list[str], dict[str, list[str]]]:
    """The whole-line comments of a YAML policy: those before `rules:` (the file's header),
    and per rule name those above it or inside it. (Comments after a value on the same line
    are left out: telling them from a `#` inside a string takes a YAML parser.)"""
    header: list[str] = []
    by_rule: dict[str, list[str]] = {}
    pending: list[str] = []
    current: str | None = None
    seen_rules = False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            pending.append(stripped)
            continue
        m = _YAML_RULE.match(line)
        if m:
            current = m.group(1).strip().strip("'\"")
            by_rule.setdefault(current, []).extend(pending)
            pending = []
        elif re.match(r"rules\s*:", line):
            seen_rules = True
            header.extend(pending)
            pending = []
        elif current is not None and pending and stripped:
            by_rule[current].extend(pending)  # inside the rule: kept with it
            pending = []
        elif not seen_rules and pending and stripped:
            header.extend(pending)
            pending = []
    if pending:
        header.extend(pending) if current is None else by_rule[current].extend(pending)
    return header, by_rule


_YAML_RULE = re.compile(r"\s*-\s+(?:\{\s*)?name\s*:\s*([^,}#]+)")


def print_policy(
    policy: Policy,
    header: list[str] | None = None,
    comments: dict[str, list[str]] | None = None,
) -> str:
    """`header`: comment lines for the top of the file; `comments`: per rule name, comment
    lines to print above it (see `yaml_comments`)."""
    out: list[str] = list(header or [])
    if out:
        out.append("")
    s = policy.settings
    if "default_action" in s.model_fields_set:
        out.append(f"default {_ACTION[s.default_action]}")
    if "approval_timeout_seconds" in s.model_fields_set:
        out.append(f"approval-timeout {s.approval_timeout_seconds}")
    if out and out[-1] != "":
        out.append("")
    for r in policy.rules:
        text = rule_text(r)
        notes = (comments or {}).get(r.name, [])
        if ("\n" in text or notes) and out and out[-1] != "":
            out.append("")  # a rule over several lines stands apart
        out.extend(notes)
        out.append(text)
        if "\n" in text:
            out.append("")
    return "\n".join(out).rstrip("\n") + "\n"
