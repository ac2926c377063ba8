"""Claude Code's hook calls, decided by leashd's gate and recorded in the daemon's audit log.

- Configuration: the daemon's (`load_config`: `config.yaml` < the project's `.env` <
  `LEASHD_*`), read with the hook's environment, from the directory the hook runs in (the
  session's, where Claude Code starts it): relative paths in it are relative to that directory.
- Policies: `policy_files`, else the built-in defaults, loaded through the compiled artifacts
  (`load_compiled`). A policy that does not load denies every call until it loads.
- Approved directories: `approved_directories` when configured; else the project Claude Code
  names (`CLAUDE_PROJECT_DIR`, the directory `claude` was started in), else the call's `cwd`.
- Modes: Claude Code's `plan` is leashd's `plan`, `acceptEdits` is `auto`, any other mode is
  `default` (the policy decides as written).
- Answers: allow -> "allow", deny -> "deny" with the reason, require_approval -> "ask"
  (Claude Code's own prompt; leashd does not see the person's answer).
- Records: one `decision` record per call, built as the gate builds its own
  (`decision_record`), with `by: "claude-code-hook"`, `chat: "claude-code"`, the Claude Code
  session id, `tool_use_id` and `permission_mode`; an ask is recorded as `decision: "ask"`
  with `policy_decision: "require_approval"`. A record that cannot be written turns the
  answer into a deny.

Whatever goes wrong (input, configuration, policy, audit, an exception) answers deny.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from leashd.daemon.config import ConfigError, Settings, load_config
from leashd.gate.audit import AuditError, AuditLog, capped_input
from leashd.gate.audit_key import AuditKeyError, load_key
from leashd.gate.gate import Gate, Session, decision_record
from leashd.hook.place import leashd_home
from leashd.hook.protocol import BadInput, HookCall, answer, deny, parse
from leashd.policy.decision import Decision
from leashd.policy.loader import DEFAULT_POLICIES, builtin_name, builtin_path

BY = "claude-code-hook"
CHAT = "claude-code"
# A decision that takes longer than this is denied: the client waits a little longer for the
# answer (leashd/hook/run.py), so an allow is never recorded for a call the client denied.
LATE_AFTER = 20.0
_CACHED = 64  # configurations and gates kept, at most

StatSig = tuple[int, int, int] | None


class _Refused(Exception):
    """The call cannot be decided (configuration, audit log): the message says why."""


class HookDecider:
    """Decides hook calls. Keeps configurations, policies and audit logs between calls (the
    server's use); safe to share between threads."""

    def __init__(self, *, check_log: bool = False) -> None:
        self.check_log = check_log  # check the audit log's chain when first opened (server)
        self._lock = threading.Lock()
        self._configs: dict[tuple[Any, ...], Settings] = {}
        self._audits: dict[tuple[Any, ...], AuditLog] = {}
        self._gates: dict[tuple[Any, ...], tuple[tuple[StatSig, ...], Gate | Exception]] = {}

    def close(self) -> None:
        with self._lock:
            for audit in self._audits.values():
                audit.close()
            self._audits.clear()

    def answer(
        self, stdin: bytes, env: Mapping[str, str], cwd: str, started: float | None = None
    ) -> dict[str, Any]:
        """Claude Code's answer to one hook input. Never raises."""
        started = time.monotonic() if started is None else started
        try:
            return self._answer(stdin, env, cwd, started)
        except Exception as exc:
            return deny(f"internal error in the hook: {type(exc).__name__}: {exc}")

    # --- one call ---------------------------------------------------------------------------

    def _answer(
        self, stdin: bytes, env: Mapping[str, str], cwd: str, started: float
    ) -> dict[str, Any]:
        try:
            call: HookCall | None = parse(stdin)
            bad = None
        except BadInput as exc:
            call, bad = None, str(exc)
        try:
            with self._lock:
                settings, audit, gate = self._setup(env, cwd)
        except _Refused as exc:
            return deny(str(exc))
        if call is None:
            session_id, tool = _salvage(stdin)
            session = Session(session_id, CHAT, cwd)
            kept = {"input_excerpt": stdin[:500].decode("utf-8", "replace")}
            rec = decision_record(session, tool, "deny", str(bad), "input", kept)
            rec["by"] = BY
            return self._recorded(audit, rec, deny(str(bad)))
        dirs = () if settings.approved_directories else (_project(env, call),)
        session = Session(call.session, CHAT, call.cwd, call.mode, dirs=dirs)
        kept = capped_input(call.tool_input)
        decision: Decision | None = None
        if isinstance(gate, Exception):
            action, reason, layer = "deny", f"the policies do not load: {gate}", "error"
        elif "input_error" in kept:
            action, reason, layer = "deny", f"malformed tool call: {kept['input_error']}", "input"
        else:
            decision = gate.decide(session, call.tool, call.tool_input)
            action = {"allow": "allow", "require_approval": "ask"}.get(decision.action, "deny")
            reason, layer = decision.reason, decision.layer
        took = time.monotonic() - started
        if took > LATE_AFTER and action != "deny":
            action, layer = "deny", "hook"
            reason = f"decided after {took:.0f} s, too late for the hook to answer"
        rec = decision_record(session, call.tool, action, reason, layer, kept, decision)
        rec["by"] = BY
        rec["permission_mode"] = call.permission_mode
        if call.tool_use_id is not None:
            rec["tool_use_id"] = call.tool_use_id
        return self._recorded(audit, rec, _answer_for(action, reason, layer, decision))

    def _recorded(
        self, audit: AuditLog, rec: dict[str, Any], reply: dict[str, Any]
    ) -> dict[str, Any]:
        """`reply`, once `rec` is in the audit log; a deny when it could not be written."""
        try:
            audit.append("decision", rec)
        except Exception as exc:
            why = f"the audit log cannot be written, so nothing runs: {exc}"
            written = getattr(exc, "written", None)
            if isinstance(written, dict) and rec.get("decision") != "deny":
                # the record reached the file unconfirmed and may say allow: say at once
                # that it did not take effect (as the gate does)
                with contextlib.suppress(Exception):
                    denied = {**rec, "decision": "deny", "reason": why, "layer": "audit"}
                    audit.append("decision", {**denied, "voids": written["seq"]})
            return deny(why)
        return reply

    # --- what a call is decided with --------------------------------------------------------

    def _setup(
        self, env: Mapping[str, str], cwd: str
    ) -> tuple[Settings, AuditLog, Gate | Exception]:
        with _working_dir(cwd):
            settings = self._settings(env, cwd)
            audit = self._audit(settings, env)
            specs = _specs(settings)
            home = env.get("HOME") or os.path.expanduser("~")
            key = (specs, tuple(settings.approved_directories), str(audit.path), home)
            signature = tuple(_stat(_source(s)) for s in specs)
            cached = self._gates.get(key)
            if cached is not None and cached[0] == signature:
                return settings, audit, cached[1]
            gate: Gate | Exception
            try:
                gate = Gate.from_specs(
                    specs, audit, approved_dirs=settings.approved_directories, home=home
                )
            except Exception as exc:  # PolicyError, an unreadable file, ...
                gate = exc
            _bounded(self._gates)[key] = (signature, gate)
            return settings, audit, gate

    def _settings(self, env: Mapping[str, str], cwd: str) -> Settings:
        yaml_path = Path(leashd_home(env)) / "config.yaml"
        env_file = Path(cwd) / ".env"
        key = (tuple(sorted(env.items())), _stat(env_file), _stat(yaml_path), str(env_file))
        settings = self._configs.get(key)
        if settings is None:
            try:
                config = load_config(yaml_path=yaml_path, env_file=env_file, environ=dict(env))
            except ConfigError as exc:
                raise _Refused(f"leashd's configuration does not load: {exc}") from None
            settings = _bounded(self._configs)[key] = config.settings
        return settings

    def _audit(self, settings: Settings, env: Mapping[str, str]) -> AuditLog:
        path = Path(settings.audit_log_path or Path(leashd_home(env)) / "audit.jsonl")
        path = Path(os.path.abspath(path.expanduser()))
        secret = settings.audit_key.get_secret_value() if settings.audit_key else None
        try:
            key = load_key(secret, settings.audit_key_file or None)
        except AuditKeyError as exc:
            raise _Refused(f"the audit key: {exc}") from None
        ident = (str(path), key, settings.audit_fsync)
        audit = self._audits.get(ident)
        if audit is None:
            try:
                audit = AuditLog(path, fsync=settings.audit_fsync, key=key)
                if self.check_log:
                    try:
                        audit.check()
                    except BaseException:
                        audit.close()
                        raise
            except AuditError as exc:
                raise _Refused(f"the audit log cannot be used, so nothing runs: {exc}") from None
            self._audits[ident] = audit
        return audit


def _answer_for(action: str, reason: str, layer: str, decision: Decision | None) -> dict[str, Any]:
    rule = decision.rule_name if decision is not None else None
    by = f" (rule {rule})" if rule else f" ({layer})" if layer not in ("policy", "default") else ""
    if action == "allow":
        return answer("allow", f"leashd: {reason}{by}")
    if action == "ask":
        return answer("ask", f"leashd asks: {reason}{by}")
    return answer("deny", f"Denied by leashd: {reason}{by}")


def _project(env: Mapping[str, str], call: HookCall) -> str:
    project = env.get("CLAUDE_PROJECT_DIR", "")
    return project if project.startswith("/") and os.path.isdir(project) else call.cwd


def _specs(settings: Settings) -> tuple[str, ...]:
    """The policies, in order, with files named by absolute paths (resolved in the working
    directory the configuration was read in)."""
    specs = settings.policy_files or list(DEFAULT_POLICIES)
    return tuple(s if builtin_name(s) is not None else os.path.abspath(s) for s in specs)


def _source(spec: str) -> Path:
    name = builtin_name(spec)
    return builtin_path(name) if name is not None else Path(spec)


def _stat(path: Path) -> StatSig:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _salvage(stdin: bytes) -> tuple[str, str]:
    """The session and tool of an input that cannot be decided, where they can be read."""
    try:
        data = json.loads(stdin)
    except Exception:
        return "-", "?"
    if not isinstance(data, dict):
        return "-", "?"
    session, tool = data.get("session_id"), data.get("tool_name")
    return (
        session[:200] if isinstance(session, str) and session else "-",
        tool[:200] if isinstance(tool, str) and tool else "?",
    )


_chdir_lock = threading.Lock()


@contextlib.contextmanager
def _working_dir(cwd: str) -> Iterator[None]:
    """Run in `cwd`, where the configuration's relative paths point (the server runs in /
    and serves hooks from many directories). Callers hold the decider's lock."""
    with _chdir_lock:
        try:
            before = os.getcwd()
        except OSError:
            before = "/"
        moved = False
        if before != cwd:
            with contextlib.suppress(OSError):
                os.chdir(cwd)
                moved = True
        try:
            yield
        finally:
            if moved:
                with contextlib.suppress(OSError):
                    os.chdir(before)


def _bounded(cache: dict[Any, Any]) -> dict[Any, Any]:
    if len(cache) >= _CACHED:
        cache.clear()
    return cache
