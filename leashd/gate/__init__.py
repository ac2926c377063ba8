"""The runtime gate: sandbox -> policy -> approval -> audit, failing closed (docs/gate.md).

Names are imported on first use: `leashd policy …` imports the sandbox alone and should not
pay for asyncio and the rest of the gate.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "ApprovalCoordinator": "approvals",
    "ApprovalRequest": "approvals",
    "Resolution": "approvals",
    "Scope": "approvals",
    "AuditError": "audit",
    "AuditLog": "audit",
    "Event": "events",
    "EventBus": "events",
    "Gate": "gate",
    "Reload": "gate",
    "Session": "gate",
    "Verdict": "gate",
    "SandboxConfig": "sandbox",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'leashd.gate' has no attribute {name!r}")
    return getattr(importlib.import_module(f"leashd.gate.{_WHERE[name]}"), name)
