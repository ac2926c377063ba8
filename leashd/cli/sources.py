"""`leashd policy fmt | convert | schema`: policy sources, formatted, converted, described."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from leashd.cli.lazy import examples
from leashd.cli.options import exit_with
from leashd.plural import plural
from leashd.policy.errors import PolicyError

if TYPE_CHECKING:
    from leashd.policy.convert import Target


@click.command(
    "fmt",
    epilog=examples(
        "leashd policy fmt team.leash team.yaml",
        "leashd policy fmt --check policies/*.leash policies/*.yaml",
    ),
)
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--check", is_flag=True, help="Exit 1 when a file is not formatted; write nothing.")
def fmt_cmd(files: tuple[str, ...], check: bool) -> None:
    """Rewrite .leash and YAML policy files in their canonical layout (comments kept)."""
    unformatted = failed = 0
    for name in files:  # every file is looked at: one that fails stops none of the others
        path = Path(name)
        if path.suffix in (".yaml", ".yml"):
            from leashd.policy.yaml_format import format_file  # PyYAML only
        else:
            from leashd.policy.leash_format import format_file  # Lark: only for .leash
        try:
            text, formatted = format_file(path)
        except PolicyError as exc:
            click.echo(str(exc), err=True)
            failed += 1
            continue
        if formatted == text:
            continue
        unformatted += 1
        if check:
            click.echo(f"{path}: not formatted")
        else:
            path.write_text(formatted, encoding="utf-8")
            click.echo(f"formatted {path}")
    if failed:
        sys.exit(2)
    if check and unformatted:
        click.echo(f"{plural(unformatted, 'file')} would be reformatted (leashd policy fmt)")
        sys.exit(1)


@click.command(
    "convert",
    epilog=examples(
        "leashd policy convert team.yaml --to leash -o team.leash",
        "leashd policy convert team.leash --to yaml",
    ),
)
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--to",
    "target",
    type=click.Choice(["leash", "yaml"]),
    required=True,
    help="The language to convert to.",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write it here.")
def convert_cmd(source: Path, target: Target, output: str | None) -> None:
    """Convert a policy between YAML and .leash; every decision and rule name stays."""
    from leashd.policy.convert import convert  # Lark and the printers: only for this command

    try:
        text = convert(source, target)
    except PolicyError as exc:
        exit_with(exc)
    if output:
        Path(output).write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)


@click.command(
    "schema",
    epilog=examples(
        "leashd policy schema -o leashd-policy.schema.json",
        "leashd policy schema --suite -o leashd-suite.schema.json",
        "# in an editor: # yaml-language-server: $schema=leashd-policy.schema.json",
    ),
)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write it here.")
@click.option("--suite", is_flag=True, help="The JSON Schema of policy test suites instead.")
def schema_cmd(output: str | None, suite: bool = False) -> None:
    """Print the JSON Schema of the YAML policy format, or of test suites (for editors and CI)."""
    from leashd.policy.schema import policy_schema, schema_text, suite_schema

    text = schema_text(suite_schema() if suite else policy_schema())
    if output:
        Path(output).write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)
