"""What a YAML policy's text says beyond its meaning: where its comments are and the names of
its anchors, so that converting it to .leash keeps both.

A whole-line comment belongs to the file's header (before `rules:`), to the rule below it, or
to a place inside a rule: above one of its keys, or above an element of one of its lists. The
place is named as the YAML format names it (`commands` item 3, `paths.except`), which is how
the .leash printer finds the clause it goes with. Comments after a value on the same line are
left out: telling them from a `#` inside a string takes the scanner, and they are rare.

An anchored list (`&mk [test, lint]`, used again as `*mk`) is a set the author named; in
.leash it becomes `let mk = [...]`, used as `@mk`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import yaml
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode


@dataclass
class Place:
    """Inside a rule: above key `key` (`paths.match`), or above its list's element `index`
    (the list's length: after its last element)."""

    key: str
    index: int | None
    lines: list[str]


@dataclass
class RuleComments:
    above: list[str] = field(default_factory=list)
    inside: list[Place] = field(default_factory=list)


@dataclass
class YamlSource:
    header: list[str] = field(default_factory=list)
    rules: dict[str, RuleComments] = field(default_factory=dict)
    footer: list[str] = field(default_factory=list)
    anchors: dict[str, tuple[str, ...]] = field(default_factory=dict)  # lists of scalars


class _Composer(yaml.SafeLoader):
    """Composes as the safe loader does, keeping the anchors it saw (it forgets them at the
    end of each document) and the lines where aliases were used (an alias gives back the
    anchored node, whose marks are where the anchor was written)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.kept: dict[str, Node] = {}
        self.alias_lines: list[int] = []

    def compose_node(self, parent, index):  # type: ignore[no-untyped-def]
        if self.check_event(AliasEvent):
            self.alias_lines.append(self.peek_event().start_mark.line)
        node = super().compose_node(parent, index)
        for name, anchored in self.anchors.items():
            self.kept.setdefault(name, anchored)
        return node


def _last_line(node: Node, floor: int = -1) -> int | None:
    """The last line (0-based) holding the node's own text. None for an alias: a node used
    at `floor` (a text offset) but written before it, elsewhere."""
    if node.start_mark.index < floor:
        return None
    if isinstance(node, ScalarNode):
        end = node.end_mark
        return end.line if end.column > 0 else end.line - 1  # a block scalar ends at col 0
    if isinstance(node, SequenceNode):
        found = [_last_line(n, node.start_mark.index) for n in node.value]
    elif isinstance(node, MappingNode):
        found = [_last_line(v, k.start_mark.index) for k, v in node.value]
    else:  # pragma: no cover - compose gives only these three
        found = []
    lines = [x for x in found if x is not None]
    if node.flow_style:  # the closing bracket
        lines.append(node.end_mark.line)
    return max(lines, default=node.start_mark.line)


def _value_end(k: Node, v: Node) -> int:
    last = _last_line(v, k.start_mark.index)
    return k.start_mark.line if last is None else last


def _scalar_lines(node: Node, out: set[int]) -> None:
    """Lines inside multi-line scalars, where a `#` is text and no comment."""
    if isinstance(node, ScalarNode):
        last = _last_line(node)
        out.update(range(node.start_mark.line + 1, (last or 0) + 1))
    elif isinstance(node, SequenceNode):
        for n in node.value:
            _scalar_lines(n, out)
    elif isinstance(node, MappingNode):
        for k, v in node.value:
            _scalar_lines(k, out)
            _scalar_lines(v, out)


def _place(pairs: list[tuple[Node, Node]], line: int, prefix: str) -> tuple[str, int | None]:
    """Where a comment on `line` goes among a rule's (or a nested mapping's) key/value pairs."""
    for k, v in pairs:
        key = prefix + str(k.value)
        if not (k.start_mark.line < line <= _value_end(k, v)):
            continue
        if isinstance(v, SequenceNode):
            index = next((j for j, n in enumerate(v.value) if n.start_mark.line > line), None)
            return key, len(v.value) if index is None else index
        if isinstance(v, MappingNode):
            if key == "input":  # a clause per field: the field below the comment
                below = [j for j, (kk, _) in enumerate(v.value) if kk.start_mark.line > line]
                return key, below[0] if below else len(v.value) - 1
            return _place(v.value, line, key + ".")
        return key, None
    for k, _ in pairs:
        if k.start_mark.line > line:
            return prefix + str(k.value), None
    return prefix.rstrip(".") or "", None


def read_yaml_source(text: str) -> YamlSource:
    """The whole-line comments of a YAML policy with their places, and its anchored lists.
    Text that is no YAML mapping gives every comment to the header (the loader reports what
    is wrong with it)."""
    out = YamlSource()
    composer = _Composer(text)
    try:
        root = composer.get_single_node()
    except yaml.YAMLError:
        root = None
    finally:
        composer.dispose()
    for name, node in composer.kept.items():
        if isinstance(node, SequenceNode) and all(isinstance(n, ScalarNode) for n in node.value):
            out.anchors[name] = tuple(str(n.value) for n in node.value)
    in_scalar: set[int] = set()
    if root is not None:
        _scalar_lines(root, in_scalar)
    comments = [
        (n, line.strip().lstrip("\ufeff"))  # a byte order mark before the first comment
        for n, line in enumerate(text.splitlines())
        if line.strip().lstrip("\ufeff").startswith("#") and n not in in_scalar
    ]
    rules_key, rules = None, []
    if isinstance(root, MappingNode):
        for k, v in root.value:
            if k.value == "rules" and isinstance(v, SequenceNode):
                rules_key = k.start_mark.line
                rules = [r for r in v.value if isinstance(r, MappingNode)]
    spans = []
    for i, r in enumerate(rules):
        # a rule's last line: its own text's, or an alias it uses (`- *targets`) after that
        until = rules[i + 1].start_mark.line if i + 1 < len(rules) else len(text.splitlines())
        last = max(
            [_last_line(r) or 0]
            + [a for a in composer.alias_lines if r.start_mark.line <= a < until]
        )
        spans.append((r.start_mark.line, last, r))
    for line, comment in comments:
        if rules_key is None or line < rules_key:
            out.header.append(comment)
            continue
        inside = next((r for first, last, r in spans if first <= line <= last), None)
        if inside is not None:
            name = _name(inside)
            key, index = _place(inside.value, line, "")
            notes = out.rules.setdefault(name, RuleComments())
            if notes.inside and (notes.inside[-1].key, notes.inside[-1].index) == (key, index):
                notes.inside[-1].lines.append(comment)
            else:
                notes.inside.append(Place(key, index, [comment]))
            continue
        below = next((r for first, _, r in spans if first > line), None)
        if below is None:
            out.footer.append(comment)
        else:
            out.rules.setdefault(_name(below), RuleComments()).above.append(comment)
    return out


def _name(rule: MappingNode) -> str:
    return next((str(v.value) for k, v in rule.value if k.value == "name"), "")
