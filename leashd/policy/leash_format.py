"""`leashd policy fmt`: .leash text in its canonical layout, with everything the author wrote.

Unlike the IR printer (`leash_printer.py`, for converting), this works on the parse tree, so
`let` names and their `@` uses, includes, the order of clauses and every comment stay. What
changes is only the layout: one statement per line where it fits in the width, otherwise a
clause per indented line and long lists wrapped; a blank line around multi-line rules; one
quoting per string kind. Formatting formatted text changes nothing.
"""

from __future__ import annotations

from pathlib import Path

from lark import Token, Tree, UnexpectedInput

from leashd.policy.errors import PolicyError
from leashd.policy.leash_frontend import (
    _parser_with_comments,
    _syntax_error,
    _with_source,
    string_value,
)
from leashd.policy.leash_printer import Clause, layout_rule, let_statement, quote, raw
from leashd.policy.leash_printer import word as bare

_KEYWORD = {
    "tools": "tools", "flags": "flags", "paths": "paths", "except": "except",
    "access": "access", "where": "where", "via": "via", "regex": "regex",
    "path_regex": "path-regex", "hosts": "hosts", "mcp": "mcp", "modes": "modes", "env": "env",
    "fed_by": "fed-by", "reason": "reason", "description": "description", "risk": "risk",
    "lint_ignore": "lint-ignore", "cmd": "cmd", "argv": "argv", "approver": "approver",
}  # fmt: skip


class _BadString(Exception):
    def __init__(self, tok: Token, problem: str) -> None:
        self.tok, self.problem = tok, problem


def _string(tree: Tree) -> str:
    tok = tree.children[0]
    text, problem = string_value(tok)
    if problem:
        raise _BadString(tok, problem)
    return raw(text) if tok.type == "SQ_STRING" else quote(text)


def _value(item: Tree | Token | None) -> str:
    if isinstance(item, Token):
        return str(item)
    assert item is not None
    if item.data == "string":
        return _string(item)
    if item.data == "word":
        return str(item.children[0])
    if item.data == "ref":
        return "@" + str(item.children[0])
    if item.data == "list":
        return "[" + ", ".join(_value(c) for c in item.children if c is not None) + "]"
    if item.data == "object":
        pairs = []
        for pair in item.children:
            if pair is None:
                continue
            k, v = pair.children
            pairs.append(f"{_value(k)}: {_value(v)}")
        return "{" + ", ".join(pairs) + "}"
    if item.data == "json_list":
        return "[" + ", ".join(_value(c) for c in item.children if c is not None) + "]"
    if item.data in ("number", "boolean"):
        return str(item.children[0])
    if item.data == "null":
        return "null"
    raise AssertionError(item)  # pragma: no cover


def _clause(c: Tree) -> str:
    kind, args = c.data, c.children
    if kind in _KEYWORD:
        return f"{_KEYWORD[kind]} {_value(args[0])}"
    if kind == "ignore_case":
        return "ignore-case"
    if kind in ("opaque", "wrapper"):
        return kind if not args or args[0] is None else f"{kind} {args[0]}"
    if kind == "input":
        return f"input {_value(args[0])} ~ {_value(args[1])}"
    if kind in ("match", "no_match"):
        ex = args[0]
        word = "match" if kind == "match" else "no-match"
        if len(ex.children) == 1:
            return f"{word} {_value(ex.children[0])}"
        tool = ex.children[0]
        name = str(tool) if isinstance(tool, Token) else string_value(tool.children[0])[0]
        return f"{word} {bare(name)} {_value(ex.children[1])}"
    raise AssertionError(kind)  # pragma: no cover


def _item_index(value: Tree, line: int) -> int:
    """The element of a list a comment on `line` goes above: the first one ending on that
    line or after it (after the last one: the list's length)."""
    elements = [e for e in value.children if e is not None]
    return next((i for i, e in enumerate(elements) if e.meta.end_line >= line), len(elements))


def _is_list(value: object) -> bool:
    return isinstance(value, Tree) and value.data == "list"


def _rule_clauses(clauses: list[Tree], comments: list[Token]) -> list[Clause]:
    """The clauses of a rule with the comments written among them: each above the clause on
    whose line (or before whose line) it is, or above the element of a list it is among."""
    out = [Clause(_clause(c)) for c in clauses]
    for t in comments:
        line = t.line or 0
        k = next((i for i, c in enumerate(clauses) if c.meta.end_line >= line), len(out) - 1)
        value = (clauses[k].children or [None])[0]
        if _is_list(value) and value.meta.line <= line <= value.meta.end_line:
            out[k].item_notes.setdefault(_item_index(value, line), []).append(str(t).rstrip())
        else:
            out[k].notes.append(str(t).rstrip())
    return out


def _keeps_inside(s: Tree) -> bool:
    """Whether comments written within the statement can stay within it: a rule with
    clauses, a `let` of a list. Others (`deny\n# note\nname`) get theirs above."""
    if s.data == "rule":
        return len(s.children) > 2
    return s.data == "let" and _is_list(s.children[1])


def _statement(s: Tree, inside: list[Token]) -> str:
    """A statement in its layout; `inside`: the comments written within it."""
    kind = s.data
    if kind == "rule":
        action, name, *clauses = s.children
        head = f"{action} {_value(name.children[0])}"
        return layout_rule(head, _rule_clauses(clauses, inside))
    if kind == "let":
        name, value = s.children
        notes: dict[int, list[str]] = {}
        for t in inside:
            notes.setdefault(_item_index(value, t.line or 0), []).append(str(t).rstrip())
        return let_statement(str(name), _value(value), notes)
    if kind == "include":
        return f"include {_value(s.children[0])}"
    if kind == "default_action":
        return f"default {s.children[0]}"
    if kind == "approval_timeout":
        return f"approval-timeout {s.children[0]}"
    if kind == "policy_info":
        parts = [f"policy {_value(s.children[0])}"]
        for c in s.children[1:]:
            word = "version" if c.data == "version" else "description"
            parts.append(f"{word} {_value(c.children[0])}")
        return " ".join(parts)
    raise AssertionError(kind)  # pragma: no cover


def format_leash(text: str, file: str = "<policy>") -> str:
    """The canonical layout of `text`; raises PolicyError (with the place) on a syntax error."""
    try:
        return _format(text.removeprefix("\ufeff"), file)
    except _BadString as exc:
        raise _syntax_error_at(exc.tok, exc.problem, text, file) from None
    except RecursionError:
        raise PolicyError("values nested too deeply", file, 1, 1) from None


def _format(text: str, file: str) -> str:
    comments: list[Token] = []
    try:
        tree = _parser_with_comments(comments.append).parse(text)
    except UnexpectedInput as exc:
        raise _syntax_error(exc, text, file) from None
    lines = text.split("\n")
    out: list[str] = []
    pending = sorted(comments, key=lambda t: t.line or 0)
    k = 0
    previous = ""
    for s in tree.children:
        block: list[Token] = []  # comments before the statement (and on its first line)
        inside: list[Token] = []  # comments within it, kept in their place
        while k < len(pending) and (pending[k].line or 0) <= s.meta.end_line:
            t = pending[k]
            within = (t.line or 0) > s.meta.line and _keeps_inside(s)
            (inside if within else block).append(t)
            k += 1
        printed = _statement(s, inside)
        multi = "\n" in printed

        def blank_before(line: int) -> bool:
            return line >= 2 and lines[line - 2].strip() == ""

        first = min([s.meta.line, *(t.line or s.meta.line for t in block)])
        # lets and includes stand as groups apart from what comes before them
        group = s.data in ("let", "include") and s.data != previous
        if (multi or blank_before(first) or group) and out and out[-1]:
            out.append("")
        for t in block:  # a blank line the author left between comments stays
            if t.line != first and blank_before(t.line or 0) and out and out[-1]:
                out.append("")
            out.append(str(t).rstrip())
        # a blank line between comments above and the statement stays (not for a comment on
        # the statement's own line, which moves above it)
        if (
            block
            and all((t.line or 0) < s.meta.line for t in block)
            and blank_before(s.meta.line)
            and out[-1]
        ):
            out.append("")
        out.append(printed)
        if multi:
            out.append("")
        previous = s.data
    tail = [str(t).rstrip() for t in pending[k:]]
    if tail:
        if out and out[-1] != "":
            out.append("")
        out.extend(tail)
    while out and out[-1] == "":
        out.pop()
    return "\n".join(out) + "\n" if out else ""


def _syntax_error_at(tok: Token, problem: str, text: str, file: str) -> PolicyError:
    line, column = tok.line or 1, tok.column or 1
    return PolicyError(_with_source(problem, text, line, column), file, line, column)


def format_file(path: Path) -> tuple[str, str]:
    """A .leash file's text and its canonical layout; PolicyError (with the place) when it
    is not a .leash file, cannot be read or does not parse."""
    if path.suffix != ".leash":
        raise PolicyError("not a .leash file (convert it: leashd policy convert)", str(path))
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PolicyError(f"cannot read: {exc.strerror or exc}", str(path)) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise PolicyError(f"not UTF-8: {exc.reason}", str(path), line, 1) from None
    return text, format_leash(text, str(path))


def check_formatted(text: str, file: str) -> bool:
    try:
        return format_leash(text, file) == text
    except PolicyError:
        return False
