"""SIGHUP: the configuration read again, and its approved directories and policies put in force.

What fails to reload leaves what is in force as it was, and is told to the user and audited,
whatever failed: config.yaml (not YAML, an unknown key, a directory that is not there) or a
policy (the gate audits that one itself, `policy` records; a config.yaml failure is a `config`
record). A reload the user is not told about would let them believe a change took effect.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from leashd.daemon.config import ConfigError, load_config
from leashd.gate.gate import Gate
from leashd.policy.loader import DEFAULT_POLICIES

log = structlog.get_logger("leashd.daemon.serve")  # the logger a reload always used


@dataclass(frozen=True)
class Reloaded:
    ok: bool
    message: str  # for the user, in parentheses as the connector shows daemon notices


def reload_configuration(gate: Gate) -> Reloaded:
    """Read the configuration as it is now and apply it to `gate`. Never raises."""
    try:
        settings = load_config().settings
    except Exception as exc:  # ConfigError, or whatever else: what is in force stays
        error = str(exc) if isinstance(exc, ConfigError) else f"{type(exc).__name__}: {exc}"
        return Reloaded(
            False,
            "(the configuration was not reloaded; what was in force stays:\n"
            f"{error}){_record_failure(gate, error)}",
        )
    problems = []
    want = settings.approved_directories
    for d in [d for d in want if d not in gate.approved_dirs]:
        try:
            gate.add_dir(d)
        except ValueError as exc:  # gone between reading the file and now
            problems.append(str(exc))
    for d in [d for d in gate.approved_dirs if d not in want]:
        gate.remove_dir(d)
    result = gate.reload(settings.policy_files or DEFAULT_POLICIES)
    log.info("configuration reloaded", dirs=list(gate.approved_dirs), policy=result.message)
    message = (
        f"(configuration reloaded: {len(gate.approved_dirs)} approved directories; "
        f"{result.message})"
    )
    if problems:
        error = "; ".join(problems)
        unaudited = _record_failure(gate, error)
        return Reloaded(False, f"(not approved: {error}){unaudited}\n{message}")
    return Reloaded(result.ok, message)


def _record_failure(gate: Gate, error: str) -> str:
    """Log and audit a failed reload; what to add to the message when it went unaudited."""
    log.error("reload refused: invalid configuration", error=error)
    try:
        gate.audit.append("config", {"event": "reload_failed", "error": error[:4000]})
    except Exception as exc:  # the failure is still told; that it went unrecorded too
        log.error("the failed reload could not be audited", error=repr(exc))
        return f"\n(and it could not be recorded in the audit log: {exc})"
    return ""
