"""The YAML policy format as models: the JSON Schema editors validate policies with.

The YAML surface is not the IR: a rule says `commands: ["git push|fetch"]` where the IR holds
argv token tuples, `tool` and `tools` both become `tools`, `examples` splits into two lists.
So the surface has its own models here, built from the IR's vocabularies (actions,
approvers, risk levels, access, where) with a description per key. The YAML front-end takes
its key lists from these models, so the schema cannot accept a key the loader rejects or miss
one it accepts. `leashd policy schema` prints `policy_schema()`.

Test suites (`policies/tests/*.yaml`, docs/testing.md) are modelled the same way, and
`leashd policy schema --suite` prints `suite_schema()`; the suite reader (suite_file.py) takes
its key lists from these models too.

The front-end still checks what a schema cannot say (regexes that compile, globs, lint codes,
duplicate names) and reports it with the line and column.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from leashd.policy.ir import Access, Action, Approver, RiskLevel, Where

Mode = Literal["default", "plan", "auto"]
Strings = str | list[str]


def _strings(what: str) -> Any:
    return Field(None, description=f"{what} One string or a list (any one matches).")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class YamlSettings(_Strict):
    default_action: Action | None = Field(
        None, description="The decision when no rule matches a call (default: require_approval)."
    )
    approval_timeout_seconds: int | None = Field(
        None, gt=0, description="How long an approval may wait before it is denied."
    )


class YamlPaths(_Strict):
    match: Strings | None = _strings(
        "Path globs: `*` within a name, `**` across directories, `~` the home directory;"
        " a glob without `/` matches that name anywhere."
    )
    except_: Strings | None = Field(
        None, alias="except", description="Globs of paths the rule does not hold for."
    )
    access: Access | None = Field(None, description="Only reads, only writes, or any access.")
    where: Where | None = Field(
        None,
        description="Only paths inside the approved directories, outside them, in temp"
        " directories, in system directories, or anywhere.",
    )
    ignore_case: bool | None = Field(None, description="Match the globs ignoring case.")
    via: Literal["any", "redirect"] | None = Field(
        None, description="`redirect`: only paths a shell redirection opens."
    )


class YamlExample(_Strict):
    tool: str = Field(description="The Claude Code tool (Bash, Read, Write, ...).")
    input: dict[str, Any] = Field(description="The tool's input, as the agent sends it.")


Example = str | YamlExample


class YamlExamples(_Strict):
    match: list[Example] | None = Field(
        None, description="Calls the rule must match (a string is a Bash command)."
    )
    not_match: list[Example] | None = Field(
        None, description="Calls the rule must not match (a string is a Bash command)."
    )


class YamlRule(_Strict):
    name: str = Field(description="Unique in the policy; decisions and the audit log name it.")
    action: Action = Field(description="What a matching call gets.")
    approver: Approver | None = Field(
        None,
        description="Who answers when the rule asks (require_approval): `human` (the default)"
        " or `ai`, the AI approver when it is enabled. Ignored on allow and deny rules.",
    )
    reason: str | None = Field(None, description="Shown to the user and the agent.")
    description: str | None = Field(None, description="What the rule is for.")
    risk_level: RiskLevel | None = None
    tool: Strings | None = _strings("Tool name wildcards (`Bash`, `mcp__*`).")
    tools: Strings | None = _strings("Tool name wildcards (`Bash`, `mcp__*`).")
    command_patterns: Strings | None = _strings(
        "Regexes searched in the command text (leashd 0.x; prefer `commands`)."
    )
    path_patterns: Strings | None = _strings("Regexes searched in each path (leashd 0.x).")
    argv: Strings | list[Strings] | None = Field(
        None,
        description="One argv prefix: a string of tokens, or a list of tokens, each a string"
        " or a list of alternatives.",
    )
    commands: Strings | list[Strings | list[Strings]] | None = Field(
        None,
        description="Argv prefixes, each a string like `git push|fetch ** --force $`: a word"
        " per token, `|` between alternatives, `*` any one word, `**` any words, `$` the end.",
    )
    flags: Strings | None = _strings("Option wildcards present anywhere (`--force`, `-*f*`).")
    paths: Strings | YamlPaths | None = Field(
        None, description="Path globs, or a mapping with match/except/access/where."
    )
    hosts: Strings | None = _strings("Host wildcards a command or tool connects to.")
    mcp_servers: Strings | None = _strings("MCP server name wildcards.")
    modes: Mode | list[Mode] | None = Field(None, description="Session modes the rule holds in.")
    env: Strings | None = _strings("Environment variable name wildcards set for the command.")
    fed_by: Strings | None = _strings("Programs whose output is piped into the command.")
    opaque: bool | None = Field(None, description="The command's effect cannot be known.")
    wrapper: bool | None = Field(None, description="The command runs another (env, sudo, ...).")
    input: dict[str, str | Annotated[list[str], Field(min_length=1, max_length=1)]] | None = Field(
        None, description="A regex searched in each named field of the tool input."
    )
    examples: YamlExamples | None = Field(
        None, description="Calls checked when the policy compiles: it never contradicts them."
    )
    lint_ignore: Strings | None = _strings(
        "Lint codes or names not reported for this rule (an overlap that is meant)."
    )


class YamlPolicy(_Strict):
    # A policy with no rules and no settings is refused by the loader (an emptied file is no
    # policy): the schema says so too, so an editor marks it.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": [
                {"required": ["rules"], "properties": {"rules": {"minItems": 1}}},
                {"required": ["settings"], "properties": {"settings": {"minProperties": 1}}},
            ]
        },
    )

    version: Literal[1, "1", "1.0"] | None = Field(
        None, description='The policy format\'s version: 1 (leave it out, or write "1").'
    )
    name: str | None = None
    description: str | None = None
    settings: YamlSettings | None = None
    rules: list[YamlRule] | None = Field(None, description="In order: the first match decides.")


def keys(model: type[BaseModel]) -> tuple[str, ...]:
    """The YAML keys a model accepts (aliases where a key is a Python keyword)."""
    return tuple(f.alias or name for name, f in model.model_fields.items())


def policy_schema() -> dict[str, Any]:
    schema = YamlPolicy.model_json_schema(by_alias=True)
    schema.update(title="leashd policy", description="A leashd YAML policy file.")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


# --- test suites ------------------------------------------------------------------------------

# A directory of the simulated world: absolute, or under its home (`~/project`). A relative
# one would be resolved against wherever `leashd policy test` happens to run.
SUITE_DIR_PATTERN = r"^(/|~$|~/)"
HOME_PATTERN = r"^/"
SuiteDir = Annotated[str, Field(pattern=SUITE_DIR_PATTERN)]
SUITE_DEFAULT_CWD = "/home/dev/project"
SUITE_DEFAULT_HOME = "/home/dev"


class YamlSuiteContext(_Strict):
    cwd: SuiteDir | SkipJsonSchema[None] = Field(
        None,
        description=f"The session's working directory: absolute or under `~` (default"
        f" {SUITE_DEFAULT_CWD}). Relative paths in calls are resolved against it.",
    )
    home: Annotated[str, Field(pattern=HOME_PATTERN)] | SkipJsonSchema[None] = Field(
        None,
        description=f"The home directory `~` stands for: absolute (default {SUITE_DEFAULT_HOME}).",
    )
    approved_dirs: (
        SuiteDir | Annotated[list[SuiteDir], Field(min_length=1)] | SkipJsonSchema[None]
    ) = Field(
        None,
        description="The directories the agent may work in (the sandbox's boundary): absolute"
        " or under `~` (default: the working directory).",
    )
    mode: Mode | SkipJsonSchema[None] = Field(
        None, description="The session mode rules with `modes` hold in (default: default)."
    )


class YamlSuiteCase(_Strict):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": [
                {
                    "required": ["command"],
                    "not": {"required": ["input"]},
                    "properties": {"tool": {"const": "Bash"}},
                },
                {"required": ["tool", "input"], "not": {"required": ["command"]}},
            ],
            # Only a question has someone to answer it.
            "dependentSchemas": {
                "expect_approver": {"properties": {"expect": {"const": "require_approval"}}}
            },
        },
    )

    name: str | SkipJsonSchema[None] = Field(
        None, description="What the case checks (default: the command)."
    )
    command: str | SkipJsonSchema[None] = Field(
        None, description="A Bash command: short for `tool: Bash, input: {command: ...}`."
    )
    tool: str | SkipJsonSchema[None] = Field(
        None,
        description="The Claude Code tool called (Read, Write, WebFetch, mcp__server__tool, ...);"
        " with `input`.",
    )
    input: dict[str, Any] | SkipJsonSchema[None] = Field(
        None, description="The tool's input, as the agent sends it (`{file_path: .env}`)."
    )
    expect: Action = Field(description="The decision the call must get.")
    expect_approver: Approver | SkipJsonSchema[None] = Field(
        None,
        description="Who must be asked, with `expect: require_approval` only: `human`, or `ai`"
        " (the AI approver, when it is enabled), as the gate routes the call. Left out: not"
        " checked.",
    )
    rule: str | None = Field(
        None,
        description="The rule that must decide it; null: no rule (the policy's default action"
        " or the sandbox decides). Left out: only the decision is checked.",
    )


class YamlSuite(_Strict):
    policies: str | Annotated[list[str], Field(min_length=1)] | SkipJsonSchema[None] = Field(
        None,
        description="The policies under test, in order: built-in names (`default`) or files"
        " (`team.yaml`, `team.leash`) relative to the suite's directory. Default: default and"
        " dev-tools.",
    )
    context: YamlSuiteContext | SkipJsonSchema[None] = Field(
        None, description="The world every call runs in: directories and session mode."
    )
    sandbox: bool | SkipJsonSchema[None] = Field(
        None,
        description="Decide with the sandbox as the gate does (default: true): writes outside"
        " the approved directories are denied, reads outside them asked or denied.",
    )
    cases: list[YamlSuiteCase] = Field(description="Calls and the decisions they must get.")


def suite_schema() -> dict[str, Any]:
    # Keys left out are not null: `rule: null` says something else than no `rule`.
    schema = _without_null_defaults(YamlSuite.model_json_schema(by_alias=True))
    schema.update(
        title="leashd policy test suite",
        description="A leashd policy test suite: calls and the decisions and rules they must get.",
    )
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def schema_text(schema: dict[str, Any]) -> str:
    """A schema as `leashd policy schema` prints it and docs/*.schema.json hold it."""
    return json.dumps(schema, indent=2) + "\n"


def suite_schema_text() -> str:
    return schema_text(suite_schema())


def _without_null_defaults(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            k: _without_null_defaults(v)
            for k, v in node.items()
            if not (k == "default" and v is None)
        }
    if isinstance(node, list):
        return [_without_null_defaults(v) for v in node]
    return node
