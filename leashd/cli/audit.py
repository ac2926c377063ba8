"""`leashd audit …`: read, check and repair the audit log the daemon writes."""

from __future__ import annotations

import collections
import json
import sys
from pathlib import Path
from typing import Any

import click

from leashd.cli.lazy import LazyGroup, examples
from leashd.cli.options import format_option
from leashd.gate import audit as audit_log


@click.group(
    "audit",
    cls=LazyGroup,
    epilog=examples(
        "leashd audit verify",
        "leashd audit tail -n 20 -f",
        "leashd audit search --decision deny --since 2026-11-22 --format json",
    ),
)
def audit() -> None:
    """Read, check and repair the audit log the daemon writes (its settings: LEASHD_HOME,
    audit_log_path in config.yaml, LEASHD_AUDIT_LOG_PATH; or a PATH given)."""


_log_arg = click.argument("path", required=False, type=click.Path(dir_okay=False, path_type=Path))
_key_opt = click.option(
    "--key-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The key of a keyed log (default: LEASHD_AUDIT_KEY or audit_key_file).",
)


class _When(click.ParamType):
    """A date or a date and time, for --since and --until."""

    name = "TIME"

    def __init__(self, end: bool) -> None:
        self.end = end

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return audit_log.parse_time(value, end=self.end)
        except ValueError as exc:
            self.fail(f"{value!r} is not a date or time like 2026-11-22 or 2026-11-22T10:00 "
                      f"({exc})", param, ctx)  # fmt: skip


def _settings() -> Any:
    """The daemon's own settings (imported here: `leashd audit` starts fast)."""
    from leashd.daemon.config import ConfigError, load_config

    try:
        return load_config().settings
    except ConfigError as exc:
        click.echo(f"leashd: the configuration does not load:\n{exc}", err=True)
        sys.exit(2)


def _log(path: Path | None) -> Path:
    return path or _settings().path("audit_log_path")


def _key(key_file: Path | None) -> bytes | None:
    from leashd.gate.audit_key import AuditKeyError, load_key

    try:
        if key_file is not None:
            return load_key(None, key_file)
        s = _settings()
        secret = s.audit_key.get_secret_value() if s.audit_key else None
        return load_key(secret, s.audit_key_file or None)
    except AuditKeyError as exc:
        click.echo(f"leashd: {exc}", err=True)
        sys.exit(2)


def _existing(log: Path) -> bool:
    if log.exists():
        return True
    click.echo(f"no audit log yet at {log} (the daemon writes it at its first decision)", err=True)
    return False


def _show(record: dict, fmt: str) -> None:
    shown = json.dumps(record, ensure_ascii=False) if fmt == "json" else audit_log.describe(record)
    click.echo(shown)


@audit.command(
    "verify",
    epilog=examples(
        "leashd audit verify", "leashd audit verify /var/log/leashd/audit.jsonl --key-file k"
    ),
)
@_log_arg
@_key_opt
def audit_verify(path: Path | None, key_file: Path | None) -> None:
    """Check the hash chain; name the first record that was edited, deleted or cut.

    Exit 0: the chain holds (notices tell of sealed damage and of records that did not take
    effect). 1: damage, or no log. 3: a keyed log checked without its key."""
    log = _log(path)
    v = audit_log.verify(log, _key(key_file))
    where = f"{log}:{v.line}: " if v.line else f"{log}: "
    click.echo(where + v.message)
    for notice in v.notices:
        click.echo(f"notice: {notice}")
    if v.status == "damaged":
        click.echo("`leashd audit repair` seals the damage (it stays on record) so the daemon "
                   "can go on", err=True)  # fmt: skip
    sys.exit({"intact": 0, "unchecked": 3}.get(v.status, 1))


@audit.command(
    "repair",
    short_help="Seal the damage verify finds, so the daemon can go on.",
    epilog=examples("leashd audit verify || leashd audit repair"),
)
@_log_arg
@_key_opt
def audit_repair(path: Path | None, key_file: Path | None) -> None:
    """Seal the damage verify finds, so the daemon can go on: the damaged bytes stay where
    they are, a seal record names them (offset, length, SHA-256), and verify reports them for
    good. Exit 0 when the log holds afterwards."""
    log = _log(path)
    if not _existing(log):
        sys.exit(1)
    try:
        with audit_log.AuditLog(log, key=_key(key_file)) as writer:
            seals = writer.repair()
    except audit_log.AuditError as exc:
        click.echo(f"leashd: {exc}", err=True)
        sys.exit(1)
    for seal in seals:
        click.echo(f"sealed: {seal['damage']} ({seal['length']} bytes from offset "
                   f"{seal['offset']} kept; seal record {seal['seq']})")  # fmt: skip
    if not seals:
        click.echo(f"{log}: nothing to repair")
    v = audit_log.verify(log, _key(key_file))
    click.echo(f"{log}: {v.message}")
    sys.exit(0 if v.ok else 1)


@audit.command(
    "keygen",
    epilog=examples(
        "leashd audit keygen ~/.leashd/audit.key",
        "# then in ~/.leashd/config.yaml: audit_key_file: ~/.leashd/audit.key",
    ),
)
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def audit_keygen(file: Path) -> None:
    """Write a new random key to FILE (owner-only) for a keyed chain; point audit_key_file at
    it. Keep FILE out of the agent's reach (leashd's home is)."""
    from leashd.gate.audit_key import write_key_file

    try:
        written = write_key_file(file)
    except FileExistsError:
        click.echo(f"leashd: {file} exists; a new key would orphan the log it signs", err=True)
        sys.exit(1)
    except OSError as exc:
        click.echo(f"leashd: cannot write {file}: {exc.strerror}", err=True)
        sys.exit(1)
    click.echo(f"wrote a new audit key to {written}; set audit_key_file: {written}")


@audit.command(
    "tail",
    epilog=examples("leashd audit tail", "leashd audit tail -n 100 --format json | jq .decision"),
)
@_log_arg
@click.option("-n", "count", type=click.IntRange(min=0), default=10, help="How many records.")
@click.option("-f", "--follow", is_flag=True, help="Then print records as they are written.")
@format_option("text", "json", json_alias=True)
def audit_tail(path: Path | None, count: int, follow: bool, fmt: str) -> None:
    """The last records of the log (--format json: JSON Lines, as written)."""
    log = _log(path)
    if not _existing(log):
        return
    for record in collections.deque(audit_log.records(log), maxlen=count):
        _show(record, fmt)
    if follow:
        for record in audit_log.follow(log):
            _show(record, fmt)


@audit.command(
    "search",
    epilog=examples(
        "leashd audit search --decision deny --since 2026-11-22",
        "leashd audit search --kind sandbox --event blocked",
        "leashd audit search --rule credential-files --format json",
        "leashd audit search --approver ai",
    ),
)
@_log_arg
@click.option("--tool", help="A tool name: Bash, Read, mcp__server__tool, …")
@click.option(
    "--decision",
    type=click.Choice(["allow", "deny", "require_approval", "ask"]),
    # `ask` as the .leash language and Claude Code say it; records hold require_approval
    callback=lambda _ctx, _param, v: "require_approval" if v == "ask" else v,
    help="The decision a record holds (ask: require_approval).",
)
@click.option("--rule", help="The name of the rule that decided.")
@click.option(
    "--approver",
    type=click.Choice(["ai", "human"]),
    help="Decisions answered by the AI approver, or by a person.",
)
@click.option("--session", help="A session id.")
@click.option("--event", help="An approval event: requested, approved, rejected, expired, ...")
@click.option("--kind", help="decision, approval, sandbox, policy, void, seal")
@click.option("--since", type=_When(end=False), help="From: 2026-11-22 or 2026-11-22T10:00 (UTC)")
@click.option("--until", type=_When(end=True), help="Up to: a date is its whole day (UTC)")
@format_option("text", "json", json_alias=True)
def audit_search(path: Path | None, fmt: str, **want: Any) -> None:
    """Records with every field given (tool, decision, rule, session, event, kind, time
    range). `--kind sandbox --event blocked` lists what the OS sandbox blocked."""
    log = _log(path)
    if not _existing(log):
        return
    approver = want.pop("approver", None)
    for record in audit_log.records(log):
        if audit_log.matches(record, **want) and _answered_by(record, approver):
            _show(record, fmt)


def _answered_by(record: dict[str, Any], approver: str | None) -> bool:
    if approver is None:
        return True
    by_ai = record.get("approved_by") == "ai"
    if approver == "ai":
        return by_ai
    return not by_ai and record.get("approval") is not None
