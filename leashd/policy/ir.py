"""The policy IR: what every front-end (YAML, .leash) produces and every later stage consumes.

Frozen pydantic models; every rule and condition carries the span it came from, so lint,
explain and error messages can point at the source.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

Action = Literal["allow", "deny", "require_approval"]
ACTIONS: tuple[Action, ...] = ("allow", "deny", "require_approval")
# deny > require_approval > allow: a call is as strict as its strictest part.
STRICTNESS: dict[str, int] = {"allow": 0, "require_approval": 1, "deny": 2}
RiskLevel = Literal["low", "medium", "high", "critical"]
# Who answers a rule's require_approval: a human (through a connector), or the AI approver.
Approver = Literal["human", "ai"]
APPROVERS: tuple[Approver, ...] = ("human", "ai")
Access = Literal["read", "write", "any"]
Where = Literal["anywhere", "inside", "outside", "temp", "system"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Span(_Frozen):
    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


UNKNOWN_SPAN = Span(file="<unknown>", line=0, column=0)


class Regex(_Frozen):
    """A regular expression, searched (not anchored) in its subject."""

    pattern: str
    ignore_case: bool = False
    span: Span = UNKNOWN_SPAN


class ArgvPattern(_Frozen):
    """An argv prefix: each token is a set of alternatives, each a glob on one word.

    `*` matches any one word (a dynamic one too); `**` matches any run of words; `$` matches
    the end of argv. The first token is matched against the program name. Words after the
    prefix are allowed. A word only known at run time matches no other token, except in a
    rule that asks (require_approval): there it matches any token, since it may be that one.
    """

    tokens: tuple[tuple[str, ...], ...]
    span: Span = UNKNOWN_SPAN


class PathCondition(_Frozen):
    """Holds when any path of a unit matches a glob, no `except_globs`, the access and where."""

    globs: tuple[str, ...] = ()  # empty: any path
    except_globs: tuple[str, ...] = ()
    access: Access = "any"
    where: Where = "anywhere"
    ignore_case: bool = False
    via: Literal["any", "redirect"] = "any"  # redirect: only paths a shell redirection opens
    span: Span = UNKNOWN_SPAN


class Example(_Frozen):
    """A tool call a rule must (or must not) match, checked when the policy compiles."""

    tool: str
    input: dict[str, Any]
    span: Span = UNKNOWN_SPAN

    def __hash__(self) -> int:  # dict fields are not hashable; the span identifies it
        return hash((self.tool, self.span))

    @property
    def bash_command(self) -> str | None:
        """The command, when this is a Bash call with nothing but a command (both policy
        languages write those as a plain string)."""
        command = self.input.get("command")
        if self.tool == "Bash" and set(self.input) == {"command"} and isinstance(command, str):
            return command
        return None


class Rule(_Frozen):
    name: str
    action: Action
    span: Span = UNKNOWN_SPAN
    reason: str | None = None
    description: str | None = None
    risk_level: RiskLevel = "medium"
    # Who answers when this rule asks. Only a require_approval rule's counts: the gate
    # ignores it on allow and deny rules (a deny is never overridable), and lint warns.
    approver: Approver = "human"
    # Conditions: None means "not constrained". Each holds if any of its alternatives does.
    tools: tuple[str, ...] | None = None
    mcp_servers: tuple[str, ...] | None = None
    command_patterns: tuple[Regex, ...] | None = None
    path_patterns: tuple[Regex, ...] | None = None
    argv: tuple[ArgvPattern, ...] | None = None
    flags: tuple[str, ...] | None = None
    paths: PathCondition | None = None
    hosts: tuple[str, ...] | None = None
    modes: tuple[str, ...] | None = None
    env: tuple[str, ...] | None = None
    fed_by: tuple[str, ...] | None = None
    opaque: bool | None = None
    wrapper: bool | None = None
    input: tuple[tuple[str, Regex], ...] | None = None
    examples_match: tuple[Example, ...] = ()
    examples_not_match: tuple[Example, ...] = ()
    # Lint codes not reported for this rule (an overlap that is meant, said where it is).
    lint_ignore: tuple[str, ...] = ()

    def explain_reason(self) -> str:
        return self.reason or self.description or self.name


class Settings(_Frozen):
    default_action: Action = "require_approval"
    approval_timeout_seconds: int = 300


class Policy(_Frozen):
    """Rules in order (several files concatenated), with settings merged key by key."""

    rules: tuple[Rule, ...]
    settings: Settings = Settings()
    sources: tuple[str, ...] = ()
    # what the file says of itself (`name`, `description`; .leash: `policy "…" description
    # "…"`): one file's, kept for printing it again (convert, fmt); a stack of several has none
    name: str | None = None
    description: str | None = None

    def rule(self, name: str) -> Rule | None:
        return next((r for r in self.rules if r.name == name), None)


def without_spans(value: Any) -> Any:
    """A model dump (`model_dump(mode="json")`) with every `span` left out: what a rule or a
    policy says, wherever it is written (rule keys of the lint's cache, `policy diff`)."""
    if isinstance(value, dict):
        return {k: without_spans(v) for k, v in value.items() if k != "span"}
    if isinstance(value, list):
        return [without_spans(v) for v in value]
    return value


def merge(policies: list[Policy]) -> Policy:
    """Concatenate policies in order: later files add rules; settings merge key by key."""
    rules: list[Rule] = []
    settings: dict[str, Any] = {}
    sources: list[str] = []
    for p in policies:
        rules.extend(p.rules)
        settings.update(p.settings.model_dump(exclude_unset=True))
        sources.extend(p.sources)
    about: dict[str, Any] = {}
    if len(policies) == 1:
        about = {"name": policies[0].name, "description": policies[0].description}
    return Policy(
        rules=tuple(rules), settings=Settings(**settings), sources=tuple(sources), **about
    )
