"""`leashd policy fmt` for YAML policies: one canonical layout, with every comment kept.

The layout:
- keys in the order of the format (the schema): `version, name, description, settings,
  rules`; in a rule `name, description, reason, risk_level`, its conditions, `action,
  approver, examples, lint_ignore`; in `paths`, `examples` and an example, theirs. Keys a
  policy does not have come after, in the order written (a file that is not a policy keeps
  its order);
- 2 spaces per level, a list's dashes 2 spaces in from its key;
- a list on one line, `[a, b]`, when it fits in 100 columns and holds no comment (nor a
  block string); one element per line otherwise. In a policy a mapping below a rule's keys
  too (`paths: {where: outside}`, an example); the policy itself, its settings, its rules and
  a rule's `examples` are always one key per line, and so is every mapping of other files;
- a blank line between rules and before `rules:`; elsewhere only the blank lines the author
  left around comments;
- a string quoted only where it needs to be: in double quotes when it needs no escape, else
  in single quotes, else in double quotes with escapes. A multi-line string written as a
  block (`|`, `>`) stays a block (`|`), other multi-line strings are one escaped line.
  What is not a string (`300`, `true`) keeps the text it was written with.

Comments: a comment on a line of its own stays above the key or list element after it (a
rule's key moved by the key order takes the comments above it along), or at the end of the
block it was indented into; a comment after a value stays after it. The comments above the
first key of the file stay at the top.

The text is read with PyYAML, the parser the loader reads policies with, so the formatter
and the loader never disagree on what a plain `yes` or `1:30` is: PyYAML's events give the
tree with every scalar's style and place, and a `#` outside every scalar that starts the line
or follows a space is a comment. The layout is printed here (ruamel.yaml's round trip keeps
comments too, but re-attaches them to the key before, which moving keys would scramble).
What the file means cannot change: the formatted text is composed again and compared, node
for node, with the original before it is returned.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml import events as ev

from leashd.policy.errors import PolicyError

WIDTH = 100
YAML_SUFFIXES = (".yaml", ".yml")

_STR = "tag:yaml.org,2002:str"
_LINE_BREAKS = "\r\n\x85\u2028\u2029"
# What libyaml reads differently from the Python parser (leashd.policy.yaml_fast): those
# texts are parsed by the Python parser, as the loader does.
_PYTHON_ONLY = re.compile(r"[\t\ufeff]|[|>][-+0-9]*#")

Pos = tuple[int, int]  # (line, column), both from 0


@dataclass(eq=False)
class _Scalar:
    value: str
    style: str | None  # None: plain; "'", '"', "|", ">"
    tag: str | None  # only a tag written in the text
    anchor: str | None
    start: Pos
    end: Pos


@dataclass(eq=False)
class _Alias:
    name: str
    start: Pos
    end: Pos
    anchor: None = None
    tag: None = None


@dataclass(eq=False)
class _Collection:
    mapping: bool
    flow: bool  # written in flow style
    tag: str | None
    anchor: str | None
    start: Pos
    close: Pos | None  # where a flow collection ends
    elems: list[_Elem] = field(default_factory=list)
    tail: list[str] = field(default_factory=list)  # comments after its last element
    owner: _Elem | None = None
    col: int = 0  # the column its elements are written at
    has_comments: bool = False  # any comment inside, at any depth
    role: str | None = None  # what it is in a policy: "rule", "paths", ...
    printed: list[_Elem] = field(default_factory=list)  # its elements in the printed order


_Node = _Scalar | _Alias | _Collection
_NOTHING = _Alias("", (0, 0), (0, 0))  # an element's value until it is read


@dataclass(eq=False)
class _Elem:
    """A key and its value, or an element of a list (`key` None)."""

    key: _Scalar | None
    node: _Node
    parent: _Collection
    start: Pos
    end: Pos = (0, 0)
    above: list[str] = field(default_factory=list)  # comments, "" for a blank line
    eol: list[str] = field(default_factory=list)
    blank_before: bool = False


@dataclass
class _Comment:
    line: int
    col: int
    text: str
    own_line: bool
    blank_before: bool


# --- reading ---------------------------------------------------------------------------------


def _events(text: str, file: str) -> list[ev.Event]:
    fast = getattr(yaml, "CSafeLoader", None)
    if fast is not None and _PYTHON_ONLY.search(text) is None:
        try:
            return list(yaml.parse(text, Loader=fast))
        except yaml.YAMLError:
            pass  # the Python parser says why, in the loader's words
    try:
        return list(yaml.parse(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError as exc:
        from leashd.policy.yaml_errors import syntax_error

        raise syntax_error(text, file, exc) from None


class _Builder:
    def __init__(self, events: list[ev.Event], lines: list[str], file: str) -> None:
        self.events, self.i = events, 0
        self.lines, self.file = lines, file
        self.elems: list[_Elem] = []  # every element, in the order of the text
        self.scalars: list[_Scalar] = []

    def next(self) -> ev.Event:
        e = self.events[self.i]
        self.i += 1
        return e

    def document(self) -> _Node | None:
        self.next()  # StreamStartEvent
        root = None
        documents = 0
        while not isinstance(self.events[self.i], ev.StreamEndEvent):
            start = self.next()  # DocumentStartEvent
            documents += 1
            if documents > 1:
                line, col = _pos(start.start_mark)
                raise PolicyError(
                    "a policy file holds one YAML document", self.file, line + 1, col + 1
                )
            root = self.node(None)
            self.next()  # DocumentEndEvent
        return root

    def node(self, owner: _Elem | None) -> _Node:
        e = self.next()
        if isinstance(e, ev.AliasEvent):
            return _Alias(e.anchor, _pos(e.start_mark), _pos(e.end_mark))
        tag = None if getattr(e, "tag", None) is None else e.tag
        if isinstance(e, ev.ScalarEvent):
            style = e.style or None
            s = _Scalar(e.value, style, tag, e.anchor, _pos(e.start_mark), _pos(e.end_mark))
            if style in ("|", ">"):
                s.end = self.block_end(s)
            self.scalars.append(s)
            return s
        mapping = isinstance(e, ev.MappingStartEvent)
        c = _Collection(mapping, bool(e.flow_style), tag, e.anchor, _pos(e.start_mark), None)
        c.owner = owner
        end = ev.MappingEndEvent if mapping else ev.SequenceEndEvent
        while not isinstance(self.events[self.i], end):
            key = self.key() if mapping else None
            start = key.start if key is not None else _pos(self.events[self.i].start_mark)
            elem = _Elem(key, _NOTHING, c, start)
            self.elems.append(elem)
            elem.node = self.node(elem)
            if not mapping and not c.flow:
                elem.start = self.dash(elem.start)
            elem.end = _end(elem.node)
            c.elems.append(elem)
        close = self.next()
        if c.flow:
            c.close = _pos(close.end_mark)
        if c.elems:
            c.col = c.elems[0].start[1]
        return c

    def key(self) -> _Scalar:
        key = self.node(None)
        if not isinstance(key, _Scalar):
            line, col = key.start
            what = "an alias" if isinstance(key, _Alias) else "a list or a mapping"
            raise PolicyError(
                f"fmt lays out keys that are strings; this one is {what}",
                self.file,
                line + 1,
                col + 1,
            )
        return key

    def dash(self, start: Pos) -> Pos:
        """Where the dash of a block list's element is: before its node on the same line."""
        line, col = start
        text = self.lines[line] if line < len(self.lines) else ""
        j = col - 1
        while j >= 0 and text[j] == " ":
            j -= 1
        return (line, j) if j >= 0 and text[j] == "-" else start

    def block_end(self, s: _Scalar) -> Pos:
        """The end of a block scalar's last line of text (its end mark lies after the blank
        lines that follow it)."""
        line, col = s.end
        if col == 0:
            line -= 1
        while line > s.start[0] and not self.lines[line].strip():
            line -= 1
        return (line, len(self.lines[line]))


def _pos(mark: Any) -> Pos:
    return (mark.line, mark.column)


def _end(node: _Node) -> Pos:
    if isinstance(node, _Collection):
        if node.close is not None:
            return node.close
        return _end(node.elems[-1].node) if node.elems else node.start
    return node.end


_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")


def _lines(text: str) -> tuple[list[str], list[int]]:
    """The lines of `text` as PyYAML counts them, and where each starts."""
    starts, lines, at = [0], [], 0
    for m in _BREAK.finditer(text):
        lines.append(text[at : m.start()])
        at = m.end()
        starts.append(at)
    lines.append(text[at:])
    return lines, starts


def _comments(
    text: str, lines: list[str], starts: list[int], scalars: list[_Scalar]
) -> list[_Comment]:
    """Every comment: a `#` outside every scalar, at the start of a line or after a space."""

    def offset(p: Pos) -> int:
        return min(starts[p[0]] + p[1], len(text)) if p[0] < len(starts) else len(text)

    inside = bytearray(len(text) + 1)
    for s in scalars:
        start = s.start
        if s.style in ("|", ">"):  # the header's own comment (`|  # note`) is a comment
            start = (s.start[0] + 1, 0)
        a, b = offset(start), offset(s.end)
        if b > a:
            inside[a:b] = b"\x01" * (b - a)
    out: list[_Comment] = []
    for n, line in enumerate(lines):
        col = line.find("#")
        while col != -1:
            at = starts[n] + col
            if not inside[at] and (col == 0 or line[col - 1] in " \t"):
                own = not line[:col].strip()
                blank = own and n > 0 and not lines[n - 1].strip()
                out.append(_Comment(n, col, line[col:].rstrip(), own, blank))
                break
            col = line.find("#", col + 1)
    return out


# --- comments to their places ----------------------------------------------------------------


class _Places:
    def __init__(self, root: _Node | None, elems: list[_Elem], lines: list[str]) -> None:
        self.root, self.elems, self.lines = root, elems, lines
        self.head: list[str] = []  # above the document's first key (or its only value)
        self.tail: list[str] = []  # when the document holds no collection
        self.starting: dict[int, list[_Elem]] = {}
        self.ending: dict[int, list[_Elem]] = {}
        for e in elems:
            self.starting.setdefault(e.start[0], []).append(e)
            self.ending.setdefault(e.end[0], []).append(e)
            e.blank_before = e.start[0] > 0 and not lines[e.start[0] - 1].strip()
        self.first_lines = [e.start[0] for e in elems]

    def place(self, comments: list[_Comment]) -> None:
        import bisect

        for c in comments:
            if not c.own_line:
                target = self.eol_target(c)
                if target is not None:
                    target.eol.append(c.text)
                    continue
            i = bisect.bisect_right(self.first_lines, c.line)
            nxt = self.elems[i] if i < len(self.elems) else None
            prev = self.elems[i - 1] if i > 0 else None
            box = self.tail_of(prev, nxt, c.col) if prev is not None else None
            if box is not None:
                lines = box.tail
            elif nxt is not None:
                lines = nxt.above
            elif self.root is not None and not self.elems and c.line < self.root.start[0]:
                lines = self.head  # above a document that is one value
            else:
                lines = self.tail
            if c.blank_before:
                lines.append("")
            lines.append(c.text)
        for e in self.elems:  # a second comment after one value goes above it
            if len(e.eol) > 1:
                e.above.extend(e.eol[1:])
                del e.eol[1:]
        if isinstance(self.root, _Collection) and self.root.elems:
            first = self.root.elems[0]
            self.head, first.above = first.above, []

    def eol_target(self, c: _Comment) -> _Elem | None:
        def before(e: _Elem) -> bool:
            return e.end[0] == c.line and e.end[1] <= c.col

        # the outermost element ending on the line (`key: value  # note`, `]  # note`); one
        # holding a block ends on its last line, which is that block's own
        ending = [e for e in self.ending.get(c.line, []) if before(e) and not _is_block(e.node)]
        if ending:
            return ending[0]
        # the last one begun on the line: `key:  # note` above its block
        starting = [e for e in self.starting.get(c.line, []) if e.start[1] < c.col]
        return starting[-1] if starting else None

    def tail_of(self, prev: _Elem, nxt: _Elem | None, col: int) -> _Collection | None:
        """The block a comment indented past the next element belongs to: the deepest one
        ended before it with its elements at the comment's column or left of it."""
        if nxt is not None and col <= nxt.start[1]:
            return None
        around: set[int] = set()
        e: _Elem | None = nxt
        while e is not None:
            around.add(id(e.parent))
            e = e.parent.owner
        box: _Collection | None = prev.parent
        while box is not None:
            if id(box) not in around and box.col <= col:
                return box
            box = box.owner.parent if box.owner is not None else None
        return None


def _is_block(node: _Node) -> bool:
    return isinstance(node, _Collection) and not node.flow


def _mark_comments(node: _Node) -> bool:
    if not isinstance(node, _Collection):
        return False
    found = bool(node.tail)
    for e in node.elems:
        inner = _mark_comments(e.node)
        found = found or inner or bool(e.above or e.eol)
    node.has_comments = found
    return found


# --- scalars ---------------------------------------------------------------------------------

_ANALYZER = yaml.emitter.Emitter(io.StringIO(), allow_unicode=True)
_RESOLVER = yaml.resolver.Resolver()
_NON_PRINTABLE = re.compile(
    "[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)
_ESCAPES = {
    "\0": "0", "\x07": "a", "\x08": "b", "\t": "t", "\n": "n", "\x0b": "v", "\x0c": "f",
    "\r": "r", "\x1b": "e", '"': '"', "\\": "\\", "\x85": "N", "\u2028": "L", "\u2029": "P",
}  # fmt: skip


def _double_quoted(value: str) -> str:
    out = []
    for ch in value:
        if ch in _ESCAPES:
            out.append("\\" + _ESCAPES[ch])
        elif ch == "\ufeff" or _NON_PRINTABLE.match(ch):
            code = ord(ch)
            out.append(f"\\x{code:02X}" if code < 0x100 else
                       f"\\u{code:04X}" if code < 0x10000 else f"\\U{code:08X}")  # fmt: skip
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _quoted(value: str) -> str:
    """Double quotes when nothing needs escaping, else single quotes, else escapes."""
    simple = not _NON_PRINTABLE.search(value) and not any(
        ch in value for ch in _LINE_BREAKS + "\ufeff\t"
    )
    if simple and '"' not in value and "\\" not in value:
        return '"' + value + '"'
    if simple:
        return "'" + value.replace("'", "''") + "'"
    return _double_quoted(value)


def _plain_allowed(value: str, flow: bool) -> bool:
    a = _ANALYZER.analyze_scalar(value)
    return (
        not a.empty
        and not a.multiline
        and "\t" not in value
        and (a.allow_flow_plain if flow else a.allow_block_plain)
    )


def _literal_allowed(value: str) -> bool:
    """Whether `|` or `|-` gives back exactly `value`."""
    body = value[:-1] if value.endswith("\n") else value
    if not body or body.endswith("\n") or "\n" not in value:
        return False
    if _NON_PRINTABLE.search(value) or any(ch in value for ch in "\r\x85\u2028\u2029\ufeff"):
        return False
    lines = body.split("\n")
    if lines[0][:1] in ("", " ", "\t"):
        return False
    return all(line == line.rstrip(" \t") for line in lines)


def _is_literal(s: _Scalar) -> bool:
    return s.style in ("|", ">") and _literal_allowed(s.value)


def _scalar(s: _Scalar, flow: bool) -> str | None:
    """The scalar's text; None: not on one line in this context (a block scalar, or a value
    that is not a string and cannot be written here)."""
    if s.tag is None and s.style is None:
        kind = _RESOLVER.resolve(yaml.ScalarNode, s.value, (True, False))
        if kind != _STR:  # 300, true, null, a merge key: the text it was written with
            if s.value == "":
                return "null" if flow else ""
            return s.value if _plain_allowed(s.value, flow) else None
    if s.tag == "!":  # a non-specific tag: its meaning depends on the style, kept
        return s.value if s.style is None else _quoted(s.value)
    if not flow and _is_literal(s):
        return None
    if _plain_allowed(s.value, flow) and (
        s.tag is not None or _RESOLVER.resolve(yaml.ScalarNode, s.value, (True, False)) == _STR
    ):
        return s.value
    return _quoted(s.value)


def _tag(tag: str) -> str:
    if tag == "!":
        return "!"
    if tag.startswith("tag:yaml.org,2002:"):
        return "!!" + tag.removeprefix("tag:yaml.org,2002:")
    if tag.startswith("!") and not re.search(r"[\s,\[\]{}]", tag):
        return tag
    return f"!<{tag}>"


def _props(node: _Node) -> str:
    parts = []
    if node.anchor is not None:
        parts.append("&" + node.anchor)
    if node.tag is not None:
        parts.append(_tag(node.tag))
    return " ".join(parts)


# --- key order -------------------------------------------------------------------------------


def _key_orders() -> dict[str, tuple[str, ...]]:
    from leashd.policy.schema import (
        YamlExample,
        YamlExamples,
        YamlPaths,
        YamlPolicy,
        YamlRule,
        YamlSettings,
        keys,
    )

    first = ("name", "description", "reason", "risk_level")
    last = ("action", "approver", "examples", "lint_ignore")  # `approver` qualifies `action`
    conditions = tuple(k for k in keys(YamlRule) if k not in first + last)
    return {
        "policy": tuple(keys(YamlPolicy)),
        "settings": tuple(keys(YamlSettings)),
        "rule": first + conditions + last,
        "paths": tuple(keys(YamlPaths)),
        "examples": tuple(keys(YamlExamples)),
        "example": tuple(keys(YamlExample)),
    }


# What each key's value is, below a mapping of a role: (role of its value, of its elements).
_BELOW: dict[tuple[str, str], tuple[str | None, str | None]] = {
    ("policy", "settings"): ("settings", None),
    ("policy", "rules"): ("rules", "rule"),
    ("rule", "paths"): ("paths", None),
    ("rule", "examples"): ("examples", None),
    ("examples", "match"): (None, "example"),
    ("examples", "not_match"): (None, "example"),
}
_ALWAYS_BLOCK = {"policy", "settings", "rules", "rule", "examples"}


def _arrange(root: _Collection, policy: bool) -> None:
    """Give each collection its role in a policy and its elements their printed order."""
    orders = _key_orders() if policy else {}
    root.role = "policy" if policy else None
    stack = [root]
    while stack:
        c = stack.pop()
        c.printed = _ordered(c, orders.get(c.role or ""))
        for e in c.elems:
            if not isinstance(e.node, _Collection):
                continue
            stack.append(e.node)
            if c.mapping and c.role is not None and e.key is not None:
                below, items = _BELOW.get((c.role, e.key.value), (None, None))
                e.node.role = below
                if items is not None and not e.node.mapping:
                    for item in e.node.elems:
                        if isinstance(item.node, _Collection) and item.node.mapping:
                            item.node.role = items


def _ordered(c: _Collection, order: tuple[str, ...] | None) -> list[_Elem]:
    if not c.mapping or not order or not _reorderable(c):
        return list(c.elems)
    rank = {k: i for i, k in enumerate(order)}

    def key(e: _Elem) -> int:
        assert e.key is not None
        if e.key.value == "<<" and e.key.style is None:  # a merge key first
            return -1
        return rank.get(e.key.value, len(rank))

    return sorted(c.elems, key=key)


def _lift(node: _Node) -> None:
    """Comments above the first line of a list element's block go above its dash (`- `
    shares that line), before anything decides whether the block fits on one line."""
    if not isinstance(node, _Collection):
        return
    for e in node.elems:
        _lift(e.node)
    if node.mapping:
        return
    for e in node.elems:
        inner = e.node
        if isinstance(inner, _Collection) and inner.printed and not _props(inner):
            first = inner.printed[0]
            e.above.extend(first.above)
            first.above = []


def _names(node: _Node, anchors: set[str], aliases: set[str]) -> None:
    if isinstance(node, _Alias):
        aliases.add(node.name)
        return
    if node.anchor is not None:
        anchors.add(node.anchor)
    if isinstance(node, _Collection):
        for e in node.elems:
            if e.key is not None:
                _names(e.key, anchors, aliases)
            _names(e.node, anchors, aliases)


def _reorderable(c: _Collection) -> bool:
    """Whether moving the keys keeps every alias after its anchor: no alias below one key
    names an anchor written below another."""
    found = []
    for e in c.elems:
        anchors: set[str] = set()
        aliases: set[str] = set()
        _names(e.node, anchors, aliases)
        found.append((anchors, aliases))
    for i, (_, aliases) in enumerate(found):
        for j, (anchors, _) in enumerate(found):
            if i != j and aliases & anchors:
                return False
    return True


# --- printing --------------------------------------------------------------------------------


class _Printer:
    def __init__(self, policy: bool) -> None:
        self.out: list[str] = []
        self.policy = policy
        self.flows: dict[int, str | None] = {}

    def blank(self) -> None:
        if self.out and self.out[-1] != "":
            self.out.append("")

    def notes(self, lines: list[str], indent: int) -> None:
        for line in lines:
            if line == "":
                self.blank()
            else:
                self.out.append(" " * indent + line)

    def above(self, e: _Elem, indent: int) -> None:
        self.notes(e.above, indent)
        if e.blank_before and any(e.above):
            self.blank()

    def flow(self, node: _Node) -> str | None:
        """The node on one line, or None."""
        if id(node) not in self.flows:
            self.flows[id(node)] = self._flow(node)
        return self.flows[id(node)]

    def _flow(self, node: _Node) -> str | None:
        if isinstance(node, _Alias):
            return "*" + node.name
        props = _props(node)
        prefix = props + " " if props else ""
        if isinstance(node, _Scalar):
            if node.style in ("|", ">") and _literal_allowed(node.value):
                return None  # a block the author wrote stays a block
            text = _scalar(node, flow=True)
            return None if text is None else prefix + text
        if node.has_comments or node.role in _ALWAYS_BLOCK:
            return None
        if node.mapping and not self.policy:
            return None  # a mapping on one line only in a policy, below a rule's keys
        parts = []
        for e in node.printed:
            value = self.flow(e.node)
            if value is None:
                return None
            if e.key is None:
                parts.append(value)
                continue
            key = _scalar(e.key, flow=True)
            if key is None or e.key.anchor is not None or e.key.tag is not None:
                return None
            parts.append(f"{key}: {value}")
        inner = ", ".join(parts)
        return prefix + ("{" + inner + "}" if node.mapping else "[" + inner + "]")

    def value(self, head: str, node: _Node, eol: list[str], indent: int) -> None:
        """`head` (`key:` or `-`) and the value after it; a block value below, at `indent`."""
        note = "  " + eol[0] if eol else ""
        props = _props(node)
        if isinstance(node, _Scalar):
            text = _scalar(node, flow=False)
            if text is None:
                if not _is_literal(node):  # a value that cannot be written in a block
                    text = _scalar(node, flow=True) or node.value
                    self.out.append(f"{head} {' '.join(filter(None, [props, text]))}{note}")
                    return
                chomp = "|" if node.value.endswith("\n") else "|-"
                self.out.append(f"{head} {' '.join(filter(None, [props, chomp]))}{note}")
                body = node.value[:-1] if node.value.endswith("\n") else node.value
                self.out.extend(" " * indent + line if line else "" for line in body.split("\n"))
                return
            shown = " ".join(filter(None, [props, text]))
            self.out.append(f"{head} {shown}{note}" if shown else head + note)
            return
        if isinstance(node, _Alias):
            self.out.append(f"{head} *{node.name}{note}")
            return
        if not node.elems:
            empty = "{}" if node.mapping else "[]"
            self.out.append(f"{head} {' '.join(filter(None, [props, empty]))}{note}")
            self.notes(node.tail, indent)
            return
        one_line = self.flow(node)
        if one_line is not None and len(head) + 1 + len(one_line) <= WIDTH:
            self.out.append(f"{head} {one_line}{note}")
            return
        self.out.append(f"{head} {props}{note}" if props else head + note)
        self.block(node, indent)

    def block(self, c: _Collection, indent: int) -> None:
        if not c.elems:  # the document itself, empty: `{}` or `[]`
            self.out.append(" " * indent + ("{}" if c.mapping else "[]"))
            self.notes(c.tail, indent)
            return
        for n, e in enumerate(c.printed):
            if c.mapping:
                self.entry(e, indent, first=n == 0)
            else:
                if c.role == "rules" and n:
                    self.blank()
                self.item(e, indent)
        self.notes(c.tail, indent)

    def entry(self, e: _Elem, indent: int, first: bool) -> None:
        assert e.key is not None
        if e.parent.role == "policy" and e.key.value == "rules" and not first:
            self.blank()
        self.above(e, indent)
        key = _scalar(e.key, flow=False)
        if key is None:
            key = _quoted(e.key.value)
        props = _props(e.key)
        head = " " * indent + (props + " " if props else "") + key + ":"
        self.value(head, e.node, e.eol, indent + 2)

    def item(self, e: _Elem, indent: int) -> None:
        node = e.node
        pad = " " * indent
        one_line = self.flow(node)
        if (
            not isinstance(node, _Collection)
            or not node.elems
            or _props(node)
            or (one_line is not None and indent + 2 + len(one_line) <= WIDTH)
        ):
            self.above(e, indent)
            self.value(pad + "-", node, e.eol, indent + 2)
            return
        # `- ` then the first line of the block; a comment after the dash goes above it, and
        # so does what would be above that first line
        outer, self.out = self.out, []
        self.block(node, indent + 2)
        inner, self.out = self.out, outer
        k = next(i for i, line in enumerate(inner) if line and not line.lstrip().startswith("#"))
        self.above(e, indent)
        self.notes(e.eol, indent)
        self.notes([line.strip() for line in inner[:k]], indent)
        self.out.append(pad + "- " + inner[k][indent + 2 :])
        self.out.extend(inner[k + 1 :])

    def document(self, root: _Node | None, head: list[str], tail: list[str]) -> str:
        self.notes(head, 0)
        if isinstance(root, _Collection):
            props = _props(root)
            if props:
                self.out.append(props)
            self.block(root, 0)
        elif root is not None:
            text = self.flow(root)
            if text is None:  # a block scalar alone: written on one line
                assert isinstance(root, _Scalar)
                text = " ".join(filter(None, [_props(root), _double_quoted(root.value)]))
            self.out.append(text)
        self.notes(tail, 0)
        while self.out and self.out[-1] == "":
            self.out.pop()
        return "\n".join(self.out) + "\n" if self.out else ""


def _looks_like_policy(root: _Node | None) -> bool:
    if not isinstance(root, _Collection) or not root.mapping:
        return False
    from leashd.policy.schema import YamlPolicy, keys

    names = {e.key.value for e in root.elems if e.key is not None}
    return "rules" in names or names <= set(keys(YamlPolicy))


# --- the whole -------------------------------------------------------------------------------


def format_yaml(text: str, file: str = "<policy>") -> str:
    """The canonical layout of a YAML policy's text; PolicyError (with the place) when it is
    not YAML that can be laid out."""
    from leashd.policy.limits import check_text_size

    check_text_size(text, file)
    text = text.removeprefix("\ufeff")
    try:
        formatted = _format(text, file)
        _check_same_meaning(text, formatted, file)
    except RecursionError:
        raise PolicyError("values nested too deeply", file, 1, 1) from None
    return formatted


def _format(text: str, file: str) -> str:
    lines, starts = _lines(text)
    built = _Builder(_events(text, file), lines, file)
    root = built.document()
    places = _Places(root, built.elems, lines)
    places.place(_comments(text, lines, starts, built.scalars))
    policy = _looks_like_policy(root)
    if isinstance(root, _Collection):
        _arrange(root, policy)
        _lift(root)
        _mark_comments(root)
    return _Printer(policy).document(root, places.head, places.tail)


def _check_same_meaning(text: str, formatted: str, file: str) -> None:
    """Refuse a layout that does not give back the same nodes (keys in any order)."""
    from leashd.policy.yaml_fast import compose

    try:
        before = _tree(compose(text), set())
    except yaml.YAMLError as exc:  # parsed, yet not one document of nodes (`*undefined`)
        from leashd.policy.yaml_errors import syntax_error

        raise syntax_error(text, file, exc) from None
    try:
        after = _tree(compose(formatted), set())
    except yaml.YAMLError:
        after = None
    if after != before:
        raise PolicyError(
            "fmt would change what this file means, so it is left as it is; this is a bug "
            "in leashd, please report it with the file",
            file,
        )


def _tree(node: yaml.Node | None, visiting: set[int]) -> Any:
    """A node as comparable values: tags and values, a mapping's pairs in any order."""
    if node is None:
        return None
    if id(node) in visiting:  # an alias of a collection inside itself
        return ("again",)
    if isinstance(node, yaml.ScalarNode):
        null = node.tag == "tag:yaml.org,2002:null"  # `~`, `null` and nothing are one value
        return (node.tag, "" if null else node.value)
    visiting.add(id(node))
    if isinstance(node, yaml.SequenceNode):
        shape: Any = [_tree(n, visiting) for n in node.value]
    else:
        pairs = [(_tree(k, visiting), _tree(v, visiting)) for k, v in node.value]
        shape = sorted(pairs, key=repr)
    visiting.discard(id(node))
    return (node.tag, shape)


def format_file(path: Path) -> tuple[str, str]:
    """A YAML policy file's text and its canonical layout; PolicyError (with the place) when
    it cannot be read or is not YAML."""
    from leashd.policy.limits import read_source

    if path.suffix not in YAML_SUFFIXES:
        raise PolicyError("not a YAML file (.yaml or .yml)", str(path))
    text = read_source(path)
    return text, format_yaml(text, str(path))


def check_formatted(text: str, file: str) -> bool:
    try:
        return format_yaml(text, file) == text
    except PolicyError:
        return False


def iter_comments(text: str) -> Iterator[str]:
    """The comments of YAML text, in order (what `fmt` keeps)."""
    text = text.removeprefix("\ufeff")
    lines, starts = _lines(text)
    built = _Builder(_events(text, "<text>"), lines, "<text>")
    built.document()
    for c in _comments(text, lines, starts, built.scalars):
        yield c.text
