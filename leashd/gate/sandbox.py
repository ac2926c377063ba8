"""The sandbox: approved directories, checked over every path of every unit.

A layer of its own under the policy: whatever the rules say, a write outside the approved
directories is denied. The call's decision is the strictest of the policy's and the sandbox's.
"""

from __future__ import annotations

from dataclasses import dataclass

from leashd.policy.decision import Decision, UnitDecision, combine
from leashd.policy.facts import PathFact, Unit
from leashd.policy.ir import STRICTNESS, Action


@dataclass(frozen=True, slots=True)
class SandboxConfig:
    write_outside: Action = "deny"
    write_temp: Action = "require_approval"
    file_tool_read_outside: Action = "deny"
    shell_read_outside: Action = "require_approval"
    shell_read_system: Action = "allow"


def _verdict(p: PathFact, shell: bool, cfg: SandboxConfig) -> tuple[Action, str] | None:
    if p.where == "inside":
        return None
    shown = p.path or f"{p.raw or 'a path'} (where it leads is only known at run time)"
    if p.access == "write":
        if p.where == "temp":
            return cfg.write_temp, f"writes to the temporary directory: {shown}"
        return cfg.write_outside, f"writes outside the approved directories: {shown}"
    if not shell:
        return cfg.file_tool_read_outside, f"reads outside the approved directories: {shown}"
    if p.where == "system":
        return cfg.shell_read_system, f"reads a system location: {shown}"
    return cfg.shell_read_outside, f"reads outside the approved directories: {shown}"


def check_unit(unit: Unit, cfg: SandboxConfig = SandboxConfig()) -> UnitDecision | None:
    """The sandbox's verdict on one unit: the strictest over its paths, or None if all inside."""
    worst: tuple[Action, str] | None = None
    shell = unit.tool == "Bash"
    for p in unit.paths:
        v = _verdict(p, shell, cfg)
        if v is not None and (worst is None or STRICTNESS[v[0]] > STRICTNESS[worst[0]]):
            worst = v
    if worst is None or worst[0] == "allow":
        return None
    return UnitDecision(unit, worst[0], None, worst[1], "sandbox")


def apply_sandbox(decision: Decision, cfg: SandboxConfig = SandboxConfig()) -> Decision:
    """Combine a policy decision with the sandbox, unit by unit, strictest wins."""
    if decision.error is not None or not decision.units:
        return decision
    merged: list[UnitDecision] = []
    for d in decision.units:
        s = check_unit(d.unit, cfg)
        merged.append(s if s is not None and STRICTNESS[s.action] > STRICTNESS[d.action] else d)
    return combine(merged, decision.notes)
