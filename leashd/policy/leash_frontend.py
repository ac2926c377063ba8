""".leash policies -> IR.

Lark parses the text (`grammar/leash.lark`); names (`let`) and includes are resolved here;
the result is turned into the node tree a YAML document would have, each node marked with
its place in the .leash file, and built by the YAML front-end's `build_policy`. So both
languages go through the very same checks into the very same IR, and an error in a .leash
file points at the .leash source.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

from lark import (
    Lark,
    Token,
    Tree,
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
)
from yaml.error import Mark
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from leashd.policy.errors import PolicyError, PolicyErrors
from leashd.policy.ir import Policy, merge
from leashd.policy.limits import check_not_empty, check_text_size, read_source
from leashd.policy.loader import BUILTIN_NAMES
from leashd.policy.yaml_frontend import SURROGATE, build_policy, load_yaml
from leashd.resources import data_dir

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_SEQ = "tag:yaml.org,2002:seq"
_MAP = "tag:yaml.org,2002:map"

ACTIONS = {"allow": "allow", "deny": "deny", "ask": "require_approval"}
# clause -> the YAML key it stands for; list clauses may repeat (their values add up)
_LIST_CLAUSES = {
    "tools": "tools",
    "flags": "flags",
    "regex": "command_patterns",
    "path_regex": "path_patterns",
    "hosts": "hosts",
    "mcp": "mcp_servers",
    "modes": "modes",
    "env": "env",
    "fed_by": "fed_by",
    "lint_ignore": "lint_ignore",
}
_SINGLE_CLAUSES = {
    "reason": "reason",
    "description": "description",
    "risk": "risk_level",
    "approver": "approver",
}
_PATH_CLAUSES = {"paths": "match", "except": "except"}
_PATH_WORDS = {"access": "access", "where": "where", "via": "via"}
KEYWORDS = (
    "policy", "version", "description", "default", "approval-timeout", "include", "let",
    "allow", "deny", "ask", "tool", "tools", "cmd", "argv", "flags", "paths", "except",
    "access", "where", "ignore-case", "via", "regex", "path-regex", "hosts", "mcp", "modes",
    "env", "fed-by", "opaque", "wrapper", "input", "approver", "reason", "risk", "match",
    "no-match", "lint-ignore",
)  # fmt: skip


@lru_cache(maxsize=1)
def _grammar() -> str:
    return (data_dir("grammar") / "leash.lark").read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def _parser() -> Lark:
    return Lark(_grammar(), parser="lalr", lexer="contextual", propagate_positions=True)


def _parser_with_comments(sink: Callable[[Token], Any]) -> Lark:
    """A parser that also hands every comment to `sink` (for the formatter)."""
    return Lark(
        _grammar(),
        parser="lalr",
        lexer="contextual",
        propagate_positions=True,
        lexer_callbacks={"COMMENT": sink},
    )


def string_value(tok: Token) -> tuple[str, str | None]:
    """The text of a string token, and what is wrong with it (None when nothing is): a
    double-quoted string holds JSON escapes and no control character."""
    raw = str(tok)
    if tok.type == "SQ_STRING":
        text = raw[1:-1].replace("''", "'")
    else:
        try:
            text = json.loads(raw)
        except ValueError as exc:
            # the message without json's own "line 1 column N (char N)"
            what = str(getattr(exc, "msg", exc)).lower().removesuffix(" at")
            hint = 'JSON escapes only: \\n, \\t, \\", \\\\, \\u00e9'
            return raw[1:-1], f"bad string: {what} ({hint})"
    if SURROGATE.search(text):  # reported here once, not again by the checks after
        return SURROGATE.sub("\ufffd", text), "bad string: a lone surrogate is not Unicode"
    return text, None


def string_columns(tok: Token) -> list[int]:
    """The 1-based column each character of a string token's text is written at (an escape,
    `''` or `\\u00e9`, is at its backslash or first quote), so an error inside the text, a
    regex's, can put its caret under the very character."""
    raw, start = str(tok), tok.column or 1
    columns: list[int] = []
    i = 1
    while i < len(raw) - 1:
        columns.append(start + i)
        if tok.type == "SQ_STRING":
            i += 2 if raw.startswith("''", i) else 1
        elif raw[i] != "\\":
            i += 1
        elif raw[i + 1 : i + 2] != "u":
            i += 2
        elif re.match(r"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F]", raw[i:]):
            i += 12  # a surrogate pair: one character
        else:
            i += 6
    return columns


def _is_float(number: str) -> bool:
    return any(c in number for c in ".eE")


def load_leash(path: str | Path) -> Policy:
    return _Loader().load(Path(path), ())


def parse_leash(text: str, file: str = "<policy>") -> Policy:
    """Parse .leash text (includes are resolved against the current directory)."""
    return _Loader().parse(text, file, Path(file).parent, ())


# --- errors -------------------------------------------------------------------------------


def _with_source(message: str, text: str, line: int, column: int) -> str:
    """The message, then the source line and a caret under the column."""
    lines = text.splitlines()
    if not 1 <= line <= len(lines):
        return message
    src = lines[line - 1].replace("\t", " ")
    if len(src) > _SHOWN:  # a long line (a long string) shown around the column only
        start = max(0, min(column - 1 - _SHOWN // 2, len(src) - _SHOWN))
        src = src[start : start + _SHOWN]
        column -= start
    return f"{message}\n    {src}\n    {' ' * (column - 1)}^"


_SHOWN = 120  # characters of a source line an error shows


# The YAML front-end's messages name YAML keys; a .leash author wrote these keywords.
_YAML_TO_LEASH = {
    "command_patterns": "regex",
    "path_patterns": "path-regex",
    "an item of commands": "cmd",
    "commands": "cmd",
    "mcp_servers": "mcp",
    "fed_by": "fed-by",
    "risk_level": "risk",
    "lint_ignore": "lint-ignore",
    "paths.match": "paths",
    "paths.except": "except",
    "paths.access": "access",
    "paths.where": "where",
    "paths.via": "via",
    "default_action": "default",
    "approval_timeout_seconds": "approval-timeout",
}
_YAML_WORDS = re.compile(
    r"(?<![\w.-])("
    + "|".join(map(re.escape, sorted(_YAML_TO_LEASH, key=len, reverse=True)))
    + r")(?![\w-])"
)


def _leash_words(message: str) -> str:
    return _YAML_WORDS.sub(lambda m: _YAML_TO_LEASH[m.group(1)], message)


def _describe(token: Token | None) -> str:
    if token is None or token.type == "$END":
        return "the end of the file"
    return repr(str(token))


_STATEMENTS = ("policy", "default", "approval-timeout", "include", "let", "allow", "deny", "ask")
_CLAUSE_WORDS = {k for k in KEYWORDS if k not in _STATEMENTS}


def _expected(names: set[str]) -> str:
    words = {n.lower().replace("_", "-") for n in names}
    if len(words & _CLAUSE_WORDS) > 5:
        # after a complete clause almost anything may follow: say what kind of thing
        return "a clause (cmd, paths, reason, ...), or the next rule or statement"
    shown = []
    for n in sorted(names):
        if n.startswith("__ANON") or n == "$END":
            continue
        shown.append({"DQ_STRING": "a string", "SQ_STRING": "a string", "WORD": "a word",
                      "NUMBER": "a number", "LSQB": "[", "RSQB": "]", "LBRACE": "{",
                      "RBRACE": "}", "COMMA": ",", "COLON": ":", "EQUAL": "=", "AT": "@",
                      "TILDE": "~", "ACTION": "allow, deny or ask", "BOOL": "true or false",
                      }.get(n, n.lower().replace("_", "-")))  # fmt: skip
    return ", ".join(dict.fromkeys(shown)) or "something else"


def _end_of(text: str) -> tuple[int, int]:
    lines = text.split("\n")
    return len(lines), len(lines[-1]) + 1


def _ends_early(expected: set[str]) -> str:
    if "RBRACE" in expected:
        return "the file ends inside `{ }`: expected `,` or `}` to close it"
    if "RSQB" in expected:
        return "the file ends inside a list: expected `,` or `]` to close it"
    return f"the file ends too early: expected {_expected(expected)}"


def _syntax_error(exc: UnexpectedInput, text: str, file: str) -> PolicyError:
    line, column = max(exc.line, 1), max(exc.column, 1)
    if isinstance(exc, UnexpectedEOF) or (
        isinstance(exc, UnexpectedToken) and exc.token.type == "$END"
    ):
        line, column = _end_of(text.rstrip())  # just after the last thing written
    if isinstance(exc, UnexpectedCharacters):
        ch = text[exc.pos_in_stream] if exc.pos_in_stream < len(text) else ""
        if ch in "\"'":
            msg = "unterminated string (a string ends on the line it starts)"
        else:
            msg = f"unexpected character {ch!r}"
    elif isinstance(exc, UnexpectedEOF):
        msg = _ends_early(set(exc.expected))
    else:
        assert isinstance(exc, UnexpectedToken)
        tok = exc.token
        got = _describe(tok)
        if tok.type == "$END":
            msg = _ends_early(set(exc.expected))
        else:
            msg = f"unexpected {got}: expected {_expected(set(exc.expected))}"
            if tok.type == "WORD":
                hint = difflib.get_close_matches(str(tok), KEYWORDS, n=1)
                if hint:
                    msg = f"unknown keyword {got} (did you mean {hint[0]!r}?)"
    return PolicyError(_with_source(msg, text, line, column), file, line, column)


# --- loading: names, includes -------------------------------------------------------------


class _Loader:
    def __init__(self) -> None:
        self.texts: dict[str, str] = {}

    def load(self, path: Path, stack: tuple[Path, ...]) -> Policy:
        return self.load_with_names(path, stack)[0]

    def load_with_names(self, path: Path, stack: tuple[Path, ...]) -> tuple[Policy, dict]:
        """The policy of a file and the `let` names it defines (an includer sees them)."""
        text = read_source(path)
        builder = self._builder(text, str(path), path.parent, (*stack, path.resolve()))
        return builder.policy, builder.names

    def parse(self, text: str, file: str, base: Path, stack: tuple[Path, ...]) -> Policy:
        return self._builder(text, file, base, stack).policy

    def _builder(self, text: str, file: str, base: Path, stack: tuple[Path, ...]) -> _Builder:
        text = text.removeprefix("\ufeff")  # a byte order mark, as some editors write
        check_text_size(text, file)
        self.texts[file] = text
        try:
            tree = _parser().parse(text)
            builder = _Builder(self, text, file, base, stack)
            builder.policy = builder.build(tree)
        except UnexpectedInput as exc:
            raise _syntax_error(exc, text, file) from None
        except RecursionError:
            raise PolicyError("values nested too deeply", file, 1, 1) from None
        return builder


class _Builder:
    def __init__(self, loader: _Loader, text: str, file: str, base: Path, stack: tuple):
        self.loader = loader
        self.text = text
        self.file = file
        self.base = base
        self.stack = stack
        self.names: dict[str, Node] = {}
        self.errors: list[PolicyError] = []
        self.policy = Policy(rules=())

    # --- nodes ---------------------------------------------------------------------------

    def mark(self, item: Tree | Token) -> Mark:
        if isinstance(item, Token):
            line, col = item.line or 1, item.column or 1
        elif item.meta.empty:  # an empty file's tree: it has no place of its own
            line, col = 1, 1
        else:
            line, col = item.meta.line, item.meta.column
        return Mark(self.file, 0, line - 1, col - 1, None, None)

    def error(self, item: Tree | Token, message: str) -> None:
        m = self.mark(item)
        self.errors.append(
            PolicyError(
                _with_source(message, self.text, m.line + 1, m.column + 1),
                self.file,
                m.line + 1,
                m.column + 1,
            )
        )

    def scalar(self, value: str, at: Tree | Token, tag: str = _STR) -> ScalarNode:
        m = self.mark(at)
        return ScalarNode(tag, value, start_mark=m, end_mark=m)

    def seq(self, items: list[Node], at: Tree | Token) -> SequenceNode:
        m = self.mark(at)
        return SequenceNode(_SEQ, items, start_mark=m, end_mark=m)

    def mapping(self, pairs: list[tuple[Node, Node]], at: Tree | Token) -> MappingNode:
        m = self.mark(at)
        return MappingNode(_MAP, pairs, start_mark=m, end_mark=m)

    def key(self, name: str, at: Tree | Token) -> ScalarNode:
        return self.scalar(name, at)

    # --- values --------------------------------------------------------------------------

    def string(self, tree: Tree) -> str:
        tok = tree.children[0]
        text, problem = string_value(tok)
        if problem:
            self.error(tok, problem)
        return text

    def string_node(self, tree: Tree) -> ScalarNode:
        node = self.scalar(self.string(tree), tree)
        node.columns = string_columns(tree.children[0])  # type: ignore[attr-defined]
        return node

    def value(self, item: Tree | Token, flat: bool = True) -> Node | None:
        """A value as a node: a string, a list (flattened unless `flat` is False, for argv
        tokens), a bare word, or a `let` name."""
        if isinstance(item, Tree) and item.data == "string":
            return self.string_node(item)
        if isinstance(item, Tree) and item.data == "word":
            return self.scalar(str(item.children[0]), item)
        if isinstance(item, Tree) and item.data == "ref":
            name = str(item.children[0])
            got = self.names.get(name)
            if got is None:
                hint = difflib.get_close_matches(name, list(self.names), n=1)
                extra = f" (did you mean @{hint[0]}?)" if hint else ""
                self.error(item, f"undefined name @{name}{extra}: define it with `let` first")
                return None
            return got
        assert isinstance(item, Tree) and item.data == "list", item
        out: list[Node] = []
        for child in item.children:
            if child is None:
                continue
            node = self.value(child, flat)
            if node is None:
                return None
            if flat and isinstance(node, SequenceNode):
                out.extend(node.value)
            else:
                out.append(node)
        return self.seq(out, item)

    def json(self, item: Tree | Token) -> Node:
        if isinstance(item, Tree):
            if item.data == "string":
                return self.scalar(self.string(item), item)
            if item.data == "number":
                text = str(item.children[0])
                return self.scalar(text, item, _FLOAT if _is_float(text) else _INT)
            if item.data == "boolean":
                return self.scalar(str(item.children[0]), item, _BOOL)
            if item.data == "null":
                return self.scalar("null", item, _NULL)
            if item.data == "json_list":
                return self.seq([self.json(c) for c in item.children if c is not None], item)
            if item.data == "object":
                return self.object(item)
        raise AssertionError(item)  # pragma: no cover - the grammar has no other json

    def object(self, tree: Tree) -> MappingNode:
        pairs = []
        for pair in tree.children:
            if pair is None:
                continue
            k, v = pair.children
            key = str(k) if isinstance(k, Token) else self.string(k)
            pairs.append((self.scalar(key, k), self.json(v)))
        return self.mapping(pairs, tree)

    # --- statements ----------------------------------------------------------------------

    def build(self, tree: Tree) -> Policy:
        parts: list[Policy] = []
        top: list[tuple[Node, Node]] = []
        settings: list[tuple[Node, Node]] = []
        rules: list[Node] = []

        def flush() -> None:
            # settings after the last include count too: they are the file's last word
            if rules or settings or not parts:
                doc = list(top)
                if settings:
                    doc.append((self.key("settings", tree), self.mapping(settings, tree)))
                doc.append((self.key("rules", tree), self.seq(list(rules), tree)))
                parts.append(self._build_part(self.mapping(doc, tree)))
                settings.clear()
                rules.clear()

        for stmt in tree.children:
            kind = stmt.data
            if kind == "rule":
                node = self.rule(stmt)
                if node is not None:
                    rules.append(node)
            elif kind == "let":
                name = str(stmt.children[0])
                if name in self.names:
                    self.error(stmt, f"@{name} is already defined")
                node = self.value(stmt.children[1])
                if node is not None:
                    self.names[name] = node
            elif kind == "include":
                flush()
                included = self.include(stmt)
                if included is not None:
                    parts.append(included)
            elif kind == "default_action":
                word = str(stmt.children[0])
                settings.append(
                    (self.key("default_action", stmt), self.scalar(ACTIONS[word], stmt))
                )
            elif kind == "approval_timeout":
                num = stmt.children[0]
                tag = _FLOAT if _is_float(str(num)) else _INT
                settings.append(
                    (self.key("approval_timeout_seconds", stmt), self.scalar(str(num), num, tag))
                )
            elif kind == "policy_info":
                title = self.string(stmt.children[0])
                top.append((self.key("name", stmt), self.scalar(title, stmt)))
                for child in stmt.children[1:]:
                    if child.data == "version":
                        v = child.children[0]
                        if isinstance(v, Token):
                            node = self.scalar(str(v), v, _FLOAT if _is_float(str(v)) else _INT)
                        else:
                            node = self.scalar(self.string(v), v)
                        top.append((self.key("version", child), node))
                    else:
                        text = self.string(child.children[0])
                        top.append((self.key("description", child), self.scalar(text, child)))
        flush()
        if self.errors:
            raise PolicyErrors(self.errors)
        merged = merge(parts)
        names: dict[str, Any] = {}
        for rule in merged.rules:
            if rule.name in names:
                first = names[rule.name]
                self.errors.append(
                    PolicyError(
                        _with_source(
                            f"duplicate rule name {rule.name!r} (first at {first})",
                            self.loader.texts.get(rule.span.file, ""),
                            rule.span.line,
                            rule.span.column,
                        ),
                        rule.span.file,
                        rule.span.line,
                        rule.span.column,
                    )
                )
            names.setdefault(rule.name, rule.span)
        if self.errors:
            raise PolicyErrors(self.errors)
        # what the file says of itself (`policy "…"`), not what a file it includes says
        own = next((p for p in parts if p.sources == (self.file,) and p.name is not None), None)
        policy = Policy(
            rules=merged.rules,
            settings=merged.settings,
            sources=(self.file,),
            name=own.name if own is not None else None,
            description=own.description if own is not None else None,
        )
        check_not_empty(policy, self.file)
        return policy

    def _build_part(self, root: MappingNode) -> Policy:
        try:
            return build_policy(root, self.file)
        except PolicyError as exc:
            errs = exc.errors if isinstance(exc, PolicyErrors) else [exc]
            for e in errs:
                e.message = _with_source(_leash_words(e.message), self.text, e.line, e.column)
                self.errors.append(e)
            return Policy(rules=())

    def include(self, stmt: Tree) -> Policy | None:
        spec = self.string(stmt.children[0])
        if spec in BUILTIN_NAMES:  # `include "default"`: the built-in policy of that name
            shown = data_dir("policies") / f"{spec}.leash"
        else:
            shown = self.base / spec  # named as the includer is: relative stays relative
        target = shown.resolve()
        if target in self.stack:
            chain = " -> ".join(p.name for p in (*self.stack, target))
            self.error(stmt, f"include cycle: {chain}")
            return None
        if not target.exists():
            self.error(stmt, f"included file not found: {target}")
            return None
        try:
            if target.suffix in (".yaml", ".yml"):
                return load_yaml(shown)
            policy, names = self.loader.load_with_names(shown, self.stack)
            for name, node in names.items():  # the included file's names are shared
                if name in self.names:
                    self.error(stmt, f"@{name} is defined both here and in {target.name}")
                self.names[name] = node
            return policy
        except PolicyError as exc:
            self.errors.extend(exc.errors if isinstance(exc, PolicyErrors) else [exc])
            return None

    # --- one rule ------------------------------------------------------------------------

    def rule(self, tree: Tree) -> Node | None:
        action_tok, name_tree, *clauses = tree.children
        name_item = name_tree.children[0]
        name = str(name_item) if isinstance(name_item, Token) else self.string(name_item)
        pairs: list[tuple[Node, Node]] = [
            (self.key("name", tree), self.scalar(name, name_tree)),
            (self.key("action", action_tok), self.scalar(ACTIONS[str(action_tok)], action_tok)),
        ]
        lists: dict[str, tuple[Tree, list[Node]]] = {}
        singles: dict[str, Node] = {}
        path: dict[str, Node] = {}
        path_at: Tree | None = None
        inputs: list[tuple[Node, Node]] = []
        examples: dict[str, list[Node]] = {"match": [], "not_match": []}
        argv_nodes: list[Node] = []
        argv_at: Tree | None = None

        def once(key: str, clause: Tree, node: Node) -> None:
            if key in singles:
                self.error(clause, f"rule {name!r} says `{clause.data.replace('_', '-')}` twice")
                return
            singles[key] = node

        for clause in clauses:
            kind = clause.data
            args = clause.children
            if kind in ("cmd", "argv"):
                # one list of argv prefixes, in the order written, whichever the form
                node = self.value(args[0], flat=kind == "cmd")
                if node is None:
                    continue
                if kind == "cmd":
                    argv_nodes.extend(node.value if isinstance(node, SequenceNode) else [node])
                else:
                    argv_nodes.append(node)
                argv_at = argv_at or clause
            elif kind in _LIST_CLAUSES:
                node = self.value(args[0])
                if node is None:
                    continue
                items = node.value if isinstance(node, SequenceNode) else [node]
                entry = lists.setdefault(_LIST_CLAUSES[kind], (clause, []))
                entry[1].extend(items)
            elif kind in _SINGLE_CLAUSES:
                arg = args[0]
                text = str(arg) if isinstance(arg, Token) else self.string(arg)
                once(_SINGLE_CLAUSES[kind], clause, self.scalar(text, arg))
            elif kind in _PATH_CLAUSES:
                node = self.value(args[0])
                if node is None:
                    continue
                key = _PATH_CLAUSES[kind]
                path_at = path_at if path_at is not None and kind != "paths" else clause
                items = node.value if isinstance(node, SequenceNode) else [node]
                if key in path:
                    path[key].value.extend(items)  # type: ignore[attr-defined]
                else:
                    path[key] = self.seq(list(items), clause)
            elif kind in _PATH_WORDS:
                key = _PATH_WORDS[kind]
                if key in path:
                    self.error(clause, f"rule {name!r} says `{kind}` twice")
                path[key] = self.scalar(str(args[0]), args[0])
                path_at = path_at or clause
            elif kind == "ignore_case":
                path["ignore_case"] = self.scalar("true", clause, _BOOL)
                path_at = path_at or clause
            elif kind in ("opaque", "wrapper"):
                value = str(args[0]) if args and args[0] is not None else "true"
                once(kind, clause, self.scalar(value, clause, _BOOL))
            elif kind == "input":
                field, regex = args
                key = str(field) if isinstance(field, Token) else self.string(field)
                node = self.value(regex)
                if node is not None:
                    inputs.append((self.scalar(key, field), node))
            elif kind in ("match", "no_match"):
                examples["match" if kind == "match" else "not_match"].append(self.example(args[0]))
        for key, (clause, items) in lists.items():
            pairs.append((self.key(key, clause), self.seq(items, clause)))
        if argv_at is not None:
            pairs.append((self.key("commands", argv_at), self.seq(argv_nodes, argv_at)))
        for key, node in singles.items():
            pairs.append((self.key(key, tree), node))
        if path:
            at = path_at if path_at is not None else tree
            pairs.append((self.key("paths", at), self._path_mapping(path, at)))
        if inputs:
            pairs.append((self.key("input", tree), self.mapping(inputs, tree)))
        if examples["match"] or examples["not_match"]:
            ex_pairs = [(self.key(k, tree), self.seq(v, tree)) for k, v in examples.items() if v]
            pairs.append((self.key("examples", tree), self.mapping(ex_pairs, tree)))
        return self.mapping(pairs, tree)

    def _path_mapping(self, path: dict[str, Node], at: Tree) -> MappingNode:
        return self.mapping([(self.key(k, at), v) for k, v in path.items()], at)

    def example(self, tree: Tree) -> Node:
        if len(tree.children) == 1:  # a Bash command
            first = tree.children[0]
            return self.scalar(self.string(first), first)
        tool, obj = tree.children
        name = str(tool) if isinstance(tool, Token) else self.string(tool)
        return self.mapping(
            [
                (self.key("tool", tool), self.scalar(name, tool)),
                (self.key("input", obj), self.object(obj)),
            ],
            tree,
        )
