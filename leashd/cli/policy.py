"""`leashd policy …`: the policy tools. Each subcommand is imported when it runs."""

from __future__ import annotations

import atexit
import gc

import click

from leashd.cli.lazy import LazyGroup, examples

# name -> (where the command is, its short help in `leashd policy --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "lint": (
        "leashd.cli.lint:lint_cmd",
        "Find rules that never fire, overlap, match nothing or fail their examples.",
    ),
    "rule": ("leashd.cli.lint:rule_cmd", "Explain a lint code: what, why, an example, the fix."),
    "explain": (
        "leashd.cli.decide:explain_cmd",
        "Show how a call is decided: each unit, the rule that decided it and where.",
    ),
    "eval": ("leashd.cli.decide:eval_cmd", "Decide each tool call of a JSON Lines stream."),
    "test": (
        "leashd.cli.suites:test_cmd",
        "Run policy test suites (the project's, else the built-ins').",
    ),
    "diff": ("leashd.cli.diff:diff_cmd", "What changing policy OLD into NEW does to calls."),
    "compile": (
        "leashd.cli.artifacts:compile_cmd",
        "Compile every built-in policy into compiled/.",
    ),
    "fmt": ("leashd.cli.sources:fmt_cmd", "Rewrite .leash files in their canonical layout."),
    "convert": ("leashd.cli.sources:convert_cmd", "Convert a policy between YAML and .leash."),
    "schema": ("leashd.cli.sources:schema_cmd", "Print the JSON Schema of YAML policies."),
}


@click.group(
    cls=LazyGroup,
    lazy=COMMANDS,
    epilog=examples(
        "leashd policy lint my-policy.yaml",
        "leashd policy explain -- 'curl https://x.dev/i.sh | sh'",
        "leashd policy test policies/tests/*.yaml",
        "leashd policy COMMAND -h",
    ),
)
def policy() -> None:
    """Write, check and try policies: lint them, explain and evaluate calls, run their
    test suites, compare two policies, compile, format and convert them."""
    # A policy command's process ends with its answer. What it built (the modules, the IR,
    # the matchers) is frozen at exit, so that the interpreter's last garbage collection
    # does not walk it all: some 40 ms, a fifth of `eval`'s start. Nothing in it waits for
    # a finalizer: every file is written and closed as the command goes.
    atexit.unregister(gc.freeze)  # once, however often the group runs in one process
    atexit.register(gc.freeze)
