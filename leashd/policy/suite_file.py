"""A policy test suite's file -> its policies, its world and its cases, each case with the
line it is written on.

Every mistake of a file is reported at once, each at its place (`FILE:LINE:COL`, the source
line and a caret), an unknown key or value with a did-you-mean. The keys each mapping takes
come from the suite's models in schema.py, so `leashd policy schema --suite` and this reader
agree on them; the format is described in docs/testing.md.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from leashd.policy.errors import PolicyError, PolicyErrors
from leashd.policy.facts import Context
from leashd.policy.ir import ACTIONS, APPROVERS
from leashd.policy.schema import (
    HOME_PATTERN,
    SUITE_DEFAULT_CWD,
    SUITE_DEFAULT_HOME,
    SUITE_DIR_PATTERN,
    YamlSuite,
    YamlSuiteCase,
    YamlSuiteContext,
    keys,
)
from leashd.policy.yaml_errors import SourceText, syntax_error, value_kind

SUITE_KEYS = keys(YamlSuite)
CONTEXT_KEYS = keys(YamlSuiteContext)
CASE_KEYS = keys(YamlSuiteCase)
MODES = ("default", "plan", "auto")
POLICY_SUFFIXES = (".yaml", ".yml", ".leash")
# Words an author may reach for, and the value the format spells them with (a hint only).
_ACTION_WORDS = {
    "ask": "require_approval",
    "approve": "require_approval",
    "approval": "require_approval",
    "prompt": "require_approval",
    "block": "deny",
    "refuse": "deny",
    "reject": "deny",
    "forbid": "deny",
    "permit": "allow",
    "accept": "allow",
}
_APPROVER_WORDS = {
    "llm": "ai",
    "model": "ai",
    "user": "human",
    "person": "human",
    "developer": "human",
}
_WORDS = {ACTIONS: _ACTION_WORDS, APPROVERS: _APPROVER_WORDS}


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()  # a case without `rule`: only its decision is checked


@dataclass(frozen=True)
class Case:
    index: int  # 1-based, among the suite's cases
    line: int  # where the case is written
    column: int
    name: str
    tool: str
    input: dict[str, Any]
    expect: str
    rule: Any  # UNSET, None (no rule decides) or a rule's name
    expect_approver: str | None = None  # who must be asked (require_approval): human or ai


@dataclass(frozen=True)
class Suite:
    path: Path
    policies: tuple[str, ...]  # as the loader takes them: built-in names, or file paths
    cwd: str
    home: str
    approved_dirs: tuple[str, ...]
    mode: str
    sandbox: bool
    cases: tuple[Case, ...]

    def context(self) -> Context:
        return Context.create(
            cwd=self.cwd, home=self.home, approved_dirs=self.approved_dirs, mode=self.mode
        )


def read_suite(path: str | Path) -> Suite:
    """A suite file, or a PolicyError (PolicyErrors when there are several) naming every
    mistake in it, in the order of the text."""
    path = Path(path)
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyError(f"the test suite is not UTF-8: {exc.reason}", file) from None
    except OSError as exc:
        if path.is_dir():
            raise PolicyError("a directory, not a test suite", file) from None
        raise PolicyError(f"cannot read test suite: {exc.strerror or exc}", file) from None
    return parse_suite(text, path)


def parse_suite(text: str, path: Path) -> Suite:
    from leashd.policy import yaml_fast

    file = str(path)
    try:
        root = yaml_fast.compose(text)
    except yaml.YAMLError as exc:
        raise syntax_error(text, file, exc) from None
    except RecursionError:
        raise PolicyError("invalid YAML: nested too deeply", file, 1, 1) from None
    r = _Reader(file, text)
    try:
        suite = r.suite(root, path)
    except RecursionError:
        raise PolicyError("values nested too deeply", file, 1, 1) from None
    errors = sorted(r.errors, key=lambda e: (e.line, e.column))
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise PolicyErrors(errors)
    assert suite is not None
    return suite


class _Reader:
    """Reads nodes into values and collects every error, each at its node."""

    def __init__(self, file: str, text: str):
        self.file = file
        self.source = SourceText(text)
        self.errors: list[PolicyError] = []
        self._loader = yaml.SafeLoader("")

    def error(self, node: Node, message: str) -> None:
        line, column = node.start_mark.line + 1, node.start_mark.column + 1
        self.errors.append(PolicyError(message, self.file, line, column, self.source.line(line)))

    # --- values and their kinds -------------------------------------------------------------

    def value(self, node: Node) -> Any:
        try:
            return self._loader.construct_object(node, deep=True)
        except RecursionError:
            raise
        except Exception:  # a tag PyYAML cannot construct, `!!int abc`, an unhashable key
            self._loader.recursive_objects.clear()
            self._loader.deep_construct = False
            tag = str(node.tag).replace("tag:yaml.org,2002:", "!!")
            self.error(
                node,
                f"this value cannot be read (its tag is {tag!r}): a suite holds plain YAML "
                "values (strings, numbers, true/false, lists and mappings)",
            )
            return _UNREADABLE

    def kind(self, node: Node) -> str:
        if isinstance(node, MappingNode):
            return "a mapping"
        if isinstance(node, SequenceNode):
            return "a list"
        return _kind_of_value(self.value(node))

    def mapping(self, node: Node) -> dict[str, tuple[Node, Node]]:
        """A mapping's keys with their nodes; keys written twice and keys that are no
        strings are errors."""
        assert isinstance(node, MappingNode)
        out: dict[str, tuple[Node, Node]] = {}
        for k, v in node.value:
            key = self.value(k) if isinstance(k, ScalarNode) else None
            if not isinstance(key, str):
                self.error(k, f"a key must be a string, not {self.kind(k)}")
                continue
            if key in out:
                first = out[key][0].start_mark.line + 1
                self.error(k, f"duplicate key {key!r} (first at line {first})")
                continue
            out[key] = (k, v)
        return out

    def check_keys(
        self, m: dict[str, tuple[Node, Node]], allowed: tuple[str, ...], what: str
    ) -> set[str]:
        """Unknown keys are errors; returns the keys suggested for them (not reported
        missing again)."""
        suggested: set[str] = set()
        for key, (k, _) in m.items():
            if key in allowed:
                continue
            hint = difflib.get_close_matches(key, allowed, n=1)
            suggested.update(hint)
            also = f" (did you mean {hint[0]!r}?)" if hint else f" (one of {_listed(allowed)})"
            self.error(k, f"unknown key {key!r} in {what}{also}")
        return suggested

    def string(self, node: Node, what: str) -> str | None:
        v = self.value(node) if isinstance(node, ScalarNode) else None
        if isinstance(v, str):
            return v
        if v is not _UNREADABLE:
            self.error(node, f"{_takes(what)} a string, not {self.kind(node)}{_quote_hint(node)}")
        return None

    def choice(self, node: Node, what: str, allowed: tuple[str, ...]) -> str | None:
        v = self.value(node) if isinstance(node, ScalarNode) else None
        if v is _UNREADABLE:
            return None
        if isinstance(v, str) and v in allowed:
            return v
        shown = repr(v) if isinstance(v, str) else self.kind(node)
        message = f"{_takes(what)} {_listed(allowed)}, not {shown}"
        if isinstance(v, str):
            folded = v.strip().lower()  # `AI` and `Deny ` are near no word to difflib
            hint = folded if folded in allowed else _WORDS.get(allowed, {}).get(folded)
            hint = hint or next(iter(difflib.get_close_matches(folded, allowed, n=1)), None)
            if hint:
                message += f" (did you mean {hint!r}?)"
        self.error(node, message)
        return None

    # --- the suite --------------------------------------------------------------------------

    def suite(self, root: Node | None, path: Path) -> Suite | None:
        if not isinstance(root, MappingNode):
            if root is None or (isinstance(root, ScalarNode) and self.value(root) is None):
                self.errors.append(
                    PolicyError(
                        "the test suite is empty: it is a mapping with a `cases` list",
                        self.file,
                        1,
                        1,
                        self.source.line(1),
                    )
                )
            else:
                self.error(
                    root,
                    f"a test suite is a mapping ({_listed(SUITE_KEYS, 'and')}), not "
                    f"{self.kind(root)}",
                )
            return None
        m = self.mapping(root)
        hinted = self.check_keys(m, SUITE_KEYS, "the suite")
        policies = self.policies(m["policies"][1], path.parent) if "policies" in m else ()
        context = self.context(m["context"][1]) if "context" in m else {}
        sandbox = True
        if "sandbox" in m:
            node = m["sandbox"][1]
            v = self.value(node) if isinstance(node, ScalarNode) else None
            if isinstance(v, bool):
                sandbox = v
            elif v is not _UNREADABLE:
                self.error(node, f"`sandbox` takes true/false, not {self.kind(node)}")
        cases: list[Case] = []
        if "cases" in m:
            node = m["cases"][1]
            if isinstance(node, SequenceNode):
                for i, c in enumerate(node.value, 1):
                    case = self.case(c, i)
                    if case is not None:
                        cases.append(case)
            else:
                self.error(node, f"`cases` takes a list of cases, not {self.kind(node)}")
        elif "cases" not in hinted:
            self.error(
                root, "a suite needs `cases`: a list of calls and the decisions they must get"
            )
        return Suite(
            path=path,
            policies=policies,
            cwd=context.get("cwd", SUITE_DEFAULT_CWD),
            home=context.get("home", SUITE_DEFAULT_HOME),
            approved_dirs=tuple(context.get("approved_dirs", ())),
            mode=context.get("mode", "default"),
            sandbox=sandbox,
            cases=tuple(cases),
        )

    def policies(self, node: Node, base: Path) -> tuple[str, ...]:
        if isinstance(node, ScalarNode) and isinstance(self.value(node), str):
            items = [node]
        elif isinstance(node, SequenceNode):
            items = list(node.value)
            if not items:
                self.error(
                    node,
                    "`policies` is empty: name the policies under test, or leave `policies` "
                    "out for the default ones (default, dev-tools)",
                )
        else:
            self.error(
                node,
                "`policies` takes a policy (a built-in name or a file) or a list of them, "
                f"not {self.kind(node)}",
            )
            return ()
        out = []
        for item in items:
            spec = self.string(item, "an item of `policies`")
            if spec is not None:
                resolved = self.policy(item, spec, base)
                if resolved is not None:
                    out.append(resolved)
        return tuple(out)

    def policy(self, node: Node, spec: str, base: Path) -> str | None:
        """A policy as the loader takes it: a built-in's name, or a file's path, relative to
        the suite's directory."""
        from leashd.policy.loader import BUILTIN_NAMES, builtin_name

        if spec.endswith(POLICY_SUFFIXES):
            path = base / spec
            if path.is_file():
                return str(path)
            what = "a directory, not a policy file" if path.is_dir() else "no such policy file"
            self.error(node, f"{what}: {path} (a file is named relative to the suite)")
            return None
        if builtin_name(spec) is not None:
            return spec
        hint = difflib.get_close_matches(spec, BUILTIN_NAMES, n=1)
        names = f"did you mean {hint[0]!r}?" if hint else _listed(BUILTIN_NAMES)
        self.error(
            node,
            f"{spec!r} is not a built-in policy ({names}); a policy file is named with its "
            f"extension ({_listed(POLICY_SUFFIXES)})",
        )
        return None

    def context(self, node: Node) -> dict[str, Any]:
        if not isinstance(node, MappingNode):
            self.error(
                node,
                f"`context` takes a mapping ({_listed(CONTEXT_KEYS, 'and')}), not "
                f"{self.kind(node)}",
            )
            return {}
        m = self.mapping(node)
        self.check_keys(m, CONTEXT_KEYS, "the context")
        out: dict[str, Any] = {}
        if "cwd" in m:
            cwd = self.directory(m["cwd"][1], "cwd")
            if cwd is not None:
                out["cwd"] = cwd
        if "home" in m:
            home_node = m["home"][1]
            home = self.string(home_node, "home")
            if home is not None and not _matches(HOME_PATTERN, home):
                self.error(home_node, f"`home` takes an absolute path, not {home!r}")
            elif home is not None:
                out["home"] = home
        if "approved_dirs" in m:
            dirs_node = m["approved_dirs"][1]
            if isinstance(dirs_node, SequenceNode):
                if not dirs_node.value:
                    self.error(
                        dirs_node,
                        "`approved_dirs` is empty: leave it out to approve the working directory",
                    )
                found = [self.directory(n, "an item of `approved_dirs`") for n in dirs_node.value]
                out["approved_dirs"] = [d for d in found if d is not None]
            elif isinstance(dirs_node, ScalarNode) and isinstance(self.value(dirs_node), str):
                one = self.directory(dirs_node, "approved_dirs")
                out["approved_dirs"] = [one] if one is not None else []
            else:
                self.error(
                    dirs_node,
                    f"`approved_dirs` takes a directory or a list of them, not "
                    f"{self.kind(dirs_node)}",
                )
        if "mode" in m:
            mode = self.choice(m["mode"][1], "mode", MODES)
            if mode is not None:
                out["mode"] = mode
        return out

    def directory(self, node: Node, what: str) -> str | None:
        d = self.string(node, what)
        if d is None:
            return None
        if not _matches(SUITE_DIR_PATTERN, d):
            self.error(
                node,
                f"{_takes(what)} an absolute path or one under `~` (`/home/dev/project`, "
                f"`~/project`), not {d!r}: a relative one would depend on where the suite runs",
            )
            return None
        return d

    def case(self, node: Node, index: int) -> Case | None:
        if not isinstance(node, MappingNode):
            self.error(
                node,
                "a case is a mapping (`command`, or `tool` and `input`; `expect`; `rule`), "
                f"not {self.kind(node)}",
            )
            return None
        found = len(self.errors)
        m = self.mapping(node)
        hinted = self.check_keys(m, CASE_KEYS, "a case")

        def text(key: str) -> str | None:
            return self.string(m[key][1], key) if key in m else None

        name, command, tool = text("name"), text("command"), text("tool")
        tool_input: dict[str, Any] | None = None
        if "input" in m:
            input_node = m["input"][1]
            if isinstance(input_node, MappingNode):
                v = self.value(input_node)
                tool_input = v if isinstance(v, dict) else None
            else:
                self.error(
                    input_node,
                    "`input` takes a mapping (the tool's input as the agent sends it, "
                    f"`{{file_path: src/app.py}}`), not {self.kind(input_node)}",
                )
        if "command" in m:
            if "input" in m:
                self.error(
                    m["input"][0],
                    "a case gives `command` or `input`, not both (`command: CMD` is short for "
                    "`tool: Bash, input: {command: CMD}`)",
                )
            if tool is not None and tool != "Bash":
                self.error(
                    m["command"][0],
                    f"`command` is for Bash: a case of tool {tool!r} gives its `input`",
                )
        elif "tool" in m:
            if "input" not in m and "input" not in hinted:
                self.error(
                    node,
                    "a `tool` case needs `input`: the tool's input as the agent sends it "
                    "(`{file_path: src/app.py}`)",
                )
        elif "input" in m:
            if "tool" not in hinted:
                self.error(node, "a case with `input` needs `tool`: the tool it is the input of")
        elif not hinted & {"command", "tool", "input"}:
            self.error(node, "a case needs `command` (a Bash command), or `tool` and `input`")
        expect = None
        if "expect" in m:
            expect = self.choice(m["expect"][1], "expect", ACTIONS)
        elif "expect" not in hinted:
            self.error(node, f"a case needs `expect`: {_listed(ACTIONS)}")
        approver = None
        if "expect_approver" in m:
            approver = self.choice(m["expect_approver"][1], "expect_approver", APPROVERS)
            if expect is not None and expect != "require_approval":
                self.error(
                    m["expect_approver"][0],
                    "`expect_approver` says who is asked, so it goes with `expect: "
                    f"require_approval` only: a call that gets {expect} asks nobody",
                )
        rule: Any = UNSET
        if "rule" in m:
            rule_node = m["rule"][1]
            v = self.value(rule_node) if isinstance(rule_node, ScalarNode) else ()
            if v is None or isinstance(v, str):
                rule = v
            elif v is not _UNREADABLE:
                self.error(
                    rule_node,
                    "`rule` takes a rule's name, or null when no rule decides (the default "
                    f"action or the sandbox), not {self.kind(rule_node)}{_quote_hint(rule_node)}",
                )
        if len(self.errors) > found or expect is None:
            return None
        if command is not None:
            tool, tool_input = "Bash", {"command": command}
        assert tool is not None and tool_input is not None
        return Case(
            index=index,
            line=node.start_mark.line + 1,
            column=node.start_mark.column + 1,
            name=name or command or tool,
            tool=tool,
            input=tool_input,
            expect=expect,
            rule=rule,
            expect_approver=approver,
        )


_UNREADABLE = object()


def _kind_of_value(v: Any) -> str:
    return "an unreadable value" if v is _UNREADABLE else value_kind(v)


def _quote_hint(node: Node) -> str:
    """YAML reads `yes`, `no`, `on`, `1.0`, `2024-01-01` as other things than text."""
    if isinstance(node, ScalarNode) and not node.style and node.value:
        return f" (quote it: '{node.value}')"
    return ""


def _takes(what: str) -> str:
    """`cwd` takes ..., an item of `approved_dirs` must be ..."""
    return f"`{what}` takes" if " " not in what else f"{what} must be"


def _listed(words: tuple[str, ...], last: str = "or") -> str:
    return ", ".join(words[:-1]) + f" {last} " + words[-1] if len(words) > 1 else words[0]


def _matches(pattern: str, text: str) -> bool:
    import re

    return re.search(pattern, text) is not None
