"""leashd in interactive Claude Code (leashd/hook): the settings it edits, and the hook's
answers. The real CLI against the fake Messages API is in test_e2e_hook.py."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leashd.gate.audit import records, verify
from leashd.hook import place, protocol, run
from leashd.hook import settings as cc
from leashd.hook.cli import hook
from leashd.hook.decide import HookDecider
from tests.conftest import worlds_dir

CMD = "/opt/venv/bin/python -P -E -m leashd.hook.run || exit 2"

# --- the settings file ------------------------------------------------------------------------

SAMPLES = {
    "two spaces, other hooks": """{
  "model": "opus",
  "permissions": {
    "allow": ["Bash(npm test)"],
    "deny": []
  },
  "hooks": {
    "PreToolUse": [
      {
        "matcher": "Bash",
        "hooks": [{"type": "command", "command": "~/bin/guard.sh"}]
      }
    ],
    "PostToolUse": [
      {"matcher": "Write", "hooks": [{"type": "command", "command": "prettier --write"}]}
    ]
  },
  "env": {"FOO": "bär"}
}
""",
    "four spaces, no hooks": '{\n    "theme": "dark",\n    "cleanupPeriodDays": 30\n}\n',
    "tabs, hooks without PreToolUse": '{\n\t"hooks": {\n\t\t"Stop": []\n\t}\n}',
    "one line": '{"a":1,"b":[1,2,3],"hooks":{"PreToolUse":[]}}',
    "empty object": "{}\n",
    "empty object with space": "{ }",
    "byte order mark": '\ufeff{\n  "x": true\n}\n',
    "escapes and unicode": '{\n  "k\\"ey": "\\u00e9\\n",\n  "emoji": "🦀"\n}\n',
}


@pytest.mark.parametrize("name", SAMPLES)
def test_install_keeps_everything_else_and_uninstall_gives_back_the_same_bytes(name):
    original = SAMPLES[name]
    installed, changed = cc.install_text(original, CMD)
    assert changed
    before = json.loads(original.lstrip("\ufeff"))
    after = json.loads(installed.lstrip("\ufeff"))
    # the hook is the last PreToolUse entry, and nothing else moved
    assert after["hooks"]["PreToolUse"][-1] == cc.hook_entry(CMD)
    after["hooks"]["PreToolUse"].pop()
    if not after["hooks"]["PreToolUse"] and "PreToolUse" not in before.get("hooks", {}):
        del after["hooks"]["PreToolUse"]
    if not after["hooks"] and "hooks" not in before:
        del after["hooks"]
    assert after == before
    assert cc.installed(installed) == [CMD]
    # idempotent: a second install changes nothing
    assert cc.install_text(installed, CMD) == (installed, False)
    removed, count = cc.uninstall_text(installed)
    assert count == 1
    assert removed == ALTERED.get(name, original)


# What cannot come back byte for byte: a container the hook's removal leaves empty goes with
# it (installing into a file without hooks is the common case, and must come back exactly).
ALTERED = {"empty object with space": "{}", "one line": '{"a":1,"b":[1,2,3]}'}


def test_install_keeps_the_files_indentation():
    text, _ = cc.install_text(SAMPLES["four spaces, no hooks"], CMD)
    assert '\n    "hooks": {\n        "PreToolUse": [\n            {\n' in text
    text, _ = cc.install_text(SAMPLES["tabs, hooks without PreToolUse"], CMD)
    assert '\t"hooks": {\n\t\t"Stop": [],\n\t\t"PreToolUse": [\n\t\t\t{' in text


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=12,
)  # fmt: skip
groups = st.fixed_dictionaries(
    {"matcher": st.sampled_from(["Bash", "*", "Write|Edit"]),
     "hooks": st.lists(st.fixed_dictionaries({"type": st.just("command"),
                                              "command": st.sampled_from(["a.sh", "b --x"])}),
                       max_size=2)},
)  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(
    other=st.dictionaries(st.text(max_size=6).filter(lambda k: k != "hooks"), json_values,
                          max_size=4),
    hooks=st.none() | st.dictionaries(st.sampled_from(["PreToolUse", "Stop", "PostToolUse"]),
                                      st.lists(groups, min_size=1, max_size=3),
                                      min_size=1, max_size=3),
    indent=st.sampled_from([None, 0, 1, 2, 4, "\t"]),
)  # fmt: skip
def test_any_settings_come_back_byte_for_byte_after_install_and_uninstall(other, hooks, indent):
    data = dict(other)
    if hooks is not None:
        data["hooks"] = hooks
    original = json.dumps(data, indent=indent, ensure_ascii=False)
    installed, changed = cc.install_text(original, CMD)
    assert changed and cc.installed(installed) == [CMD]
    assert cc.install_text(installed, CMD) == (installed, False)
    assert cc.uninstall_text(installed) == (original, 1)


def test_uninstall_removes_exactly_the_leashd_entry():
    text = json.dumps(
        {
            "hooks": {
                "PreToolUse": [
                    {"matcher": "Bash", "hooks": [{"type": "command", "command": "guard.sh"},
                                                  {"type": "command", "command": CMD}]},
                    {"matcher": "*", "hooks": [{"type": "command", "command": "other"}]},
                ]
            }
        },
        indent=2,
    )  # fmt: skip
    out, count = cc.uninstall_text(text)
    assert count == 1
    assert json.loads(out)["hooks"]["PreToolUse"] == [
        {"matcher": "Bash", "hooks": [{"type": "command", "command": "guard.sh"}]},
        {"matcher": "*", "hooks": [{"type": "command", "command": "other"}]},
    ]
    assert cc.uninstall_text(out) == (out, 0)  # nothing of ours left: nothing changes


def test_install_with_another_interpreter_replaces_the_old_entry():
    text, _ = cc.install_text(SAMPLES["two spaces, other hooks"], CMD)
    other = "/elsewhere/python -P -E -m leashd.hook.run --no-server || exit 2"
    text, changed = cc.install_text(text, other)
    assert changed and cc.installed(text) == [other]
    assert json.loads(text)["hooks"]["PreToolUse"][0]["hooks"][0]["command"] == "~/bin/guard.sh"
    # a command that only mentions leashd is not ours
    assert not cc.installed(json.dumps({"hooks": {"PreToolUse": [{"hooks": [
        {"type": "command", "command": "echo leashd.hook.runner"}]}]}}))  # fmt: skip


@pytest.mark.parametrize(
    "text, said",
    [
        ('{"model": "opus",}', "not valid JSON"),
        ("// comment\n{}", "not valid JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"hooks": []}', '"hooks" is not an object'),
        ('{"hooks": {"PreToolUse": {}}}', '"hooks.PreToolUse" is not a list'),
        ('{"hooks": {"PreToolUse": [3]}}', "PreToolUse[0]"),
    ],
)
def test_a_settings_file_that_cannot_be_read_is_refused_and_left_alone(tmp_path, text, said):
    path = tmp_path / "settings.json"
    path.write_text(text)
    for command in ("install", "uninstall"):
        result = CliRunner().invoke(hook, [command, "--settings", str(path)])
        assert result.exit_code == 1, result.output
        assert said in result.output and str(path) in result.output
        assert "left as it is" in result.output
        assert path.read_text() == text


def test_cli_install_and_uninstall_user_and_project(tmp_path, monkeypatch):
    home, proj = tmp_path / "home", tmp_path / "proj"
    proj.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("CLAUDE_CONFIG_DIR", raising=False)
    monkeypatch.chdir(proj)
    user = home / ".claude" / "settings.json"
    project = proj / ".claude" / "settings.json"
    r = CliRunner().invoke(hook, ["install"])
    assert r.exit_code == 0 and f"installed the leashd hook in {user}" in r.output
    assert not project.exists()
    command = cc.installed(user.read_text())[0]
    assert command == f"{sys.executable} -P -E -m leashd.hook.run || exit 2"
    r = CliRunner().invoke(hook, ["install", "--user"])
    assert "already installed" in r.output
    project.parent.mkdir()
    project.write_text('{\n  "permissions": {"deny": ["Read(./.env)"]}\n}\n')
    r = CliRunner().invoke(hook, ["install", "--project", "--no-server"])
    assert r.exit_code == 0 and str(project) in r.output
    assert cc.installed(project.read_text())[0].endswith("leashd.hook.run --no-server || exit 2")
    r = CliRunner().invoke(hook, ["status", "--format", "json"])
    shown = json.loads(r.output)
    assert shown["settings"]["user"]["commands"] == [command]
    assert len(shown["settings"]["project"]["commands"]) == 1
    r = CliRunner().invoke(hook, ["uninstall", "--project"])
    assert r.exit_code == 0 and "removed" in r.output
    assert project.read_text() == '{\n  "permissions": {"deny": ["Read(./.env)"]}\n}\n'
    r = CliRunner().invoke(hook, ["uninstall", "--project"])
    assert "not installed" in r.output
    r = CliRunner().invoke(hook, ["uninstall"])
    assert json.loads(user.read_text()) == {}


def test_install_through_a_symlink_edits_the_file_it_points_to(tmp_path):
    real = tmp_path / "dotfiles" / "claude.json"
    real.parent.mkdir()
    real.write_text('{"a": 1}\n')
    real.chmod(0o600)
    link = tmp_path / "settings.json"
    link.symlink_to(real)
    cc.install(link, CMD)
    assert link.is_symlink() and cc.installed(real.read_text()) == [CMD]
    assert real.stat().st_mode & 0o777 == 0o600
    assert not [p for p in real.parent.iterdir() if p.name != "claude.json"]  # no temp left


# --- the hook's answers ----------------------------------------------------------------------


@contextlib.contextmanager
def hook_world() -> Iterator[tuple[Path, Path, dict[str, str]]]:
    """A home with leashd's home and a project in it, and the environment Claude Code would
    give the hook there. Yields (home, project, env)."""
    root = worlds_dir() / f"hook-{uuid.uuid4().hex[:10]}"
    home, proj = root / "home", root / "home" / "proj"
    proj.mkdir(parents=True)
    (proj / ".env").write_text("SECRET=hunter2\n")
    env = {"HOME": str(home), "LEASHD_HOME": str(home / ".leashd"), "CLAUDE_PROJECT_DIR": str(proj)}
    try:
        yield home, proj, env
    finally:
        stop_server(env)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def world():
    with hook_world() as w:
        yield w


def stop_server(env: dict[str, str]) -> None:
    """Stop a hook server started for `env` (by a test or by a hook it ran), by its pid."""
    path = place.socket_path(env)
    try:
        pid = int(Path(f"{path}.pid").read_text())
    except (OSError, ValueError):
        return
    if pid == os.getpid():  # a server this test ran in a thread: it stops with the test
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


def hook_input(proj: Path, tool: str, tool_input: object, **extra: object) -> bytes:
    data = {"session_id": "sess-1", "transcript_path": "/dev/null", "cwd": str(proj),
            "permission_mode": "default", "hook_event_name": "PreToolUse", "tool_name": tool,
            "tool_input": tool_input, "tool_use_id": "toolu_1", **extra}  # fmt: skip
    return json.dumps(data).encode()


def audit_of(home: Path) -> list[dict]:
    path = home / ".leashd" / "audit.jsonl"
    return [r for r in records(path) if r.get("kind") == "decision"] if path.exists() else []


def run_hook(env: dict[str, str], cwd: Path, stdin: bytes, *args: str) -> dict:
    """The hook as Claude Code runs it: a process, stdin in, JSON out, exit 0."""
    full = {k: v for k, v in os.environ.items() if not k.startswith(("LEASHD_", "CLAUDE"))}
    full.update(env)
    done = subprocess.run(
        [sys.executable, "-P", "-E", "-m", "leashd.hook.run", *args],
        input=stdin, cwd=cwd, env=full, capture_output=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def decision(reply: dict) -> tuple[str, str]:
    out = reply["hookSpecificOutput"]
    assert out["hookEventName"] == "PreToolUse"
    return out["permissionDecision"], out["permissionDecisionReason"]


def test_the_hook_allows_denies_and_asks_as_the_policy_says_and_records_each(world):
    home, proj, env = world
    calls = [("ls -la", "allow", "read-only-commands"),
             ("cat .env", "deny", "credential-files"),
             ("npm install left-pad", "ask", "package-installs")]  # fmt: skip
    for n, (command, want, rule) in enumerate(calls):
        stdin = hook_input(proj, "Bash", {"command": command}, tool_use_id=f"toolu_{n}")
        got, reason = decision(run_hook(env, proj, stdin, "--no-server"))
        assert got == want and f"(rule {rule})" in reason
    assert "Credential files are never read" in decision(
        run_hook(env, proj, hook_input(proj, "Read", {"file_path": str(proj / ".env")}),
                 "--no-server"))[1]  # fmt: skip
    recs = audit_of(home)
    assert [(r["decision"], r["rule"], r.get("tool_use_id")) for r in recs[:3]] == [
        ("allow", "read-only-commands", "toolu_0"),
        ("deny", "credential-files", "toolu_1"),
        ("ask", "package-installs", "toolu_2"),
    ]
    for r in recs:
        assert r["by"] == "claude-code-hook" and r["chat"] == "claude-code"
        assert r["session"] == "sess-1" and r["cwd"] == str(proj)
        assert r["session_dirs"] == [os.path.realpath(proj)]  # the project is approved
    assert recs[2]["policy_decision"] == "require_approval"
    assert verify(home / ".leashd" / "audit.jsonl").status == "intact"


@pytest.mark.parametrize(
    "stdin, said",
    [
        (b"", "not JSON"),
        (b"\xff\xfe garbage", "not UTF-8"),
        (b"[]", "JSON array, not an object"),
        (b'{"tool_name": "Bash", "tool_input": "ls", "cwd": "/"}', "not an object"),
        (b'{"tool_name": "Bash", "tool_input": {"command": "ls"}}', "no absolute cwd"),
        (b'{"hook_event_name": "PostToolUse", "tool_name": "Bash"}', "PreToolUse events"),
    ],
)
def test_garbage_in_is_a_recorded_deny_out(world, stdin, said):
    home, proj, env = world
    got, reason = decision(run_hook(env, proj, stdin, "--no-server"))
    assert got == "deny" and said in reason
    (rec,) = audit_of(home)
    assert rec["decision"] == "deny" and rec["layer"] == "input" and said in rec["reason"]


@pytest.fixture(scope="module")
def decider_world():
    with hook_world() as (home, proj, env):
        decider = HookDecider()
        yield decider, home, proj, env
        decider.close()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.binary(max_size=300))
def test_for_any_bytes_the_answer_is_json_and_never_an_allow_of_garbage(decider_world, raw):
    decider, _home, proj, env = decider_world
    reply = decider.answer(raw, env, str(proj))
    assert protocol.decision_of(json.loads(protocol.render(reply))) is not None
    try:
        protocol.parse(raw)
    except protocol.BadInput:
        assert decision(reply)[0] == "deny"


calls_json = st.fixed_dictionaries(
    {},
    optional={
        "tool_name": st.sampled_from(["Bash", "Read", "Write", "mcp__x__y", ""]) | st.integers(),
        "tool_input": json_values,
        "cwd": st.sampled_from(["/", "relative", "/nonexistent/dir"]) | st.none(),
        "session_id": st.text(max_size=4) | st.integers(),
        "permission_mode": st.sampled_from(["default", "plan", "acceptEdits", "weird"]),
        "hook_event_name": st.sampled_from(["PreToolUse", "Stop"]),
    },
)  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=calls_json)
def test_for_any_json_the_answer_is_a_decision_and_a_malformed_call_is_denied(decider_world, data):
    decider, _home, proj, env = decider_world
    raw = json.dumps(data).encode()
    reply = decider.answer(raw, env, str(proj))
    assert protocol.decision_of(reply) is not None
    try:
        protocol.parse(raw)
    except protocol.BadInput:
        assert decision(reply)[0] == "deny"


def test_modes_follow_claude_codes_permission_mode(decider_world):
    decider, _home, proj, env = decider_world

    def ask(tool: str, tool_input: dict, mode: str) -> str:
        raw = hook_input(proj, tool, tool_input, permission_mode=mode)
        return decision(decider.answer(raw, env, str(proj)))[0]

    write = {"file_path": str(proj / "a.py"), "content": "x = 1\n"}
    assert ask("Write", write, "default") == "ask"
    assert ask("Write", write, "acceptEdits") == "allow"  # leashd's auto mode
    assert ask("Write", write, "plan") == "deny"
    assert ask("Write", write, "bypassPermissions") == "ask"  # never looser than the policy
    assert ask("Bash", {"command": "rm -rf build"}, "bypassPermissions") == "deny"


def test_configured_directories_replace_the_project(world):
    _home, proj, env = world
    other = proj.parent / "other"
    other.mkdir()
    inside = {"file_path": str(proj / "a.py"), "content": "x"}
    d = HookDecider()
    try:
        assert decision(d.answer(hook_input(proj, "Write", inside), env, str(proj)))[0] == "ask"
        env = {**env, "LEASHD_APPROVED_DIRECTORIES": str(other)}
        got, reason = decision(d.answer(hook_input(proj, "Write", inside), env, str(proj)))
        assert got == "deny" and "outside the approved directories" in reason
    finally:
        d.close()


def test_policies_come_from_leashd_settings_and_a_broken_one_denies(world):
    home, proj, env = world
    mine = proj / "mine.yaml"
    mine.write_text(
        "rules:\n  - name: no-ls\n    tool: Bash\n    commands: ['ls']\n    action: deny\n"
        "    reason: not today\n"
    )
    (home / ".leashd").mkdir()
    (home / ".leashd" / "config.yaml").write_text("policy_files: [mine.yaml, default]\n")
    d = HookDecider()
    try:
        ls = hook_input(proj, "Bash", {"command": "ls"})
        # a relative policy file is found from the directory the hook runs in
        assert decision(d.answer(ls, env, str(proj))) == (
            "deny",
            "Denied by leashd: not today (rule no-ls)",
        )
        mine.write_text("rules: [\n")  # broken: every call is denied, and says why
        got, reason = decision(d.answer(ls, env, str(proj)))
        assert got == "deny" and "the policies do not load" in reason
        assert audit_of(home)[-1]["layer"] == "error"
        bad = {**env, "LEASHD_MAX_TURNS": "many"}
        got, reason = decision(d.answer(ls, bad, str(proj)))
        assert (
            got == "deny"
            and "configuration does not load" in reason
            and "LEASHD_MAX_TURNS" in reason
        )
    finally:
        d.close()


def test_an_audit_log_that_cannot_be_written_denies_everything(world):
    home, proj, env = world
    blocker = home / "not-a-dir"
    blocker.write_text("")
    env = {**env, "LEASHD_AUDIT_LOG_PATH": str(blocker / "audit.jsonl")}
    got, reason = decision(
        run_hook(env, proj, hook_input(proj, "Bash", {"command": "ls"}), "--no-server")
    )
    assert got == "deny" and "audit log" in reason


def test_a_damaged_audit_log_denies_until_it_is_repaired(world):
    home, proj, env = world
    ls = hook_input(proj, "Bash", {"command": "ls"})
    for _ in range(3):
        assert decision(run_hook(env, proj, ls, "--no-server"))[0] == "allow"
    log = home / ".leashd" / "audit.jsonl"
    lines = log.read_bytes().splitlines(keepends=True)
    log.write_bytes(b"".join(lines[:1]))  # records 2 and 3 deleted
    got, reason = decision(run_hook(env, proj, ls, "--no-server"))
    assert got == "deny" and "audit log" in reason and "cut short" in reason


def test_the_installed_command_ignores_modules_planted_in_the_project(world):
    """The hook runs in the project, which the agent writes: a `json.py` there must not run
    as part of the hook."""
    _home, proj, env = world
    (proj / "json.py").write_text(f"open({str(proj / 'pwned')!r}, 'w').write('x')\n")
    (proj / "leashd").mkdir()
    (proj / "leashd" / "__init__.py").write_text(f"open({str(proj / 'pwned')!r}, 'w')\n")
    full = {k: v for k, v in os.environ.items() if not k.startswith(("LEASHD_", "CLAUDE"))}
    full.update(env, PYTHONPATH=str(proj))
    done = subprocess.run(["sh", "-c", cc.hook_command(no_server=True)], cwd=proj, env=full,
                          input=hook_input(proj, "Bash", {"command": "cat .env"}),
                          capture_output=True, timeout=60)  # fmt: skip
    assert done.returncode == 0
    assert decision(json.loads(done.stdout))[0] == "deny"
    assert not (proj / "pwned").exists()


def test_an_interpreter_that_does_not_start_blocks_the_call(tmp_path):
    done = subprocess.run(["sh", "-c", cc.hook_command(python=str(tmp_path / "gone"))],
                          input=b"{}", capture_output=True)  # fmt: skip
    assert done.returncode == 2  # Claude Code's "block", with stderr as the reason
    assert b"gone" in done.stderr


# --- the server -----------------------------------------------------------------------------


def test_the_first_call_starts_a_server_that_answers_the_next(world):
    home, proj, env = world
    sock = Path(place.socket_path(env))
    ls = hook_input(proj, "Bash", {"command": "ls"})
    assert decision(run_hook(env, proj, ls))[0] == "allow"  # decided in its own process
    for _ in range(200):
        if sock.exists():
            break
        time.sleep(0.05)
    assert sock.exists() and sock.stat().st_mode & 0o077 == 0
    assert sock.parent.stat().st_mode & 0o777 == 0o700
    pid = int(Path(f"{sock}.pid").read_text())
    for command, want in [("cat .env", "deny"), ("npm i left-pad", "ask"), ("ls", "allow")]:
        assert (
            decision(run_hook(env, proj, hook_input(proj, "Bash", {"command": command})))[0] == want
        )
    decisions = audit_of(home)
    assert [r["decision"] for r in decisions] == ["allow", "deny", "ask", "allow"]
    assert verify(home / ".leashd" / "audit.jsonl").status == "intact"
    os.kill(pid, 0)  # still serving
    # `leashd hook stop`, with the same environment
    full = {k: v for k, v in os.environ.items() if not k.startswith(("LEASHD_", "CLAUDE"))}
    stopped = subprocess.run([sys.executable, "-m", "leashd.hook", "stop"], env={**full, **env},
                             capture_output=True, text=True, timeout=30)  # fmt: skip
    assert "stopping" in stopped.stdout
    for _ in range(100):
        if not sock.exists():
            break
        time.sleep(0.05)
    assert not sock.exists()


def _fake_server(path: str, reply: bytes | None) -> threading.Thread:
    """A socket at the server's place that answers `reply`, or never (None)."""
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)

    def serve() -> None:
        conn, _ = srv.accept()
        with conn, srv:
            if reply is None:
                time.sleep(3)
                return
            conn.recv(1 << 20)
            conn.sendall(reply)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize(
    "reply, said",
    [
        (None, "did not answer"),
        (b"not json", "answer was lost"),
        (b'{"answer": {"hookSpecificOutput": {"permissionDecision": "allow"}}}', "not an answer"),
    ],
)
def test_a_server_that_misbehaves_is_a_deny(world, monkeypatch, reply, said):
    _home, proj, env = world
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(run, "SERVER_WAIT", 0.5)
    _fake_server(place.socket_path(), reply)
    got, reason = decision(run.answer(hook_input(proj, "Bash", {"command": "ls"})))
    assert got == "deny" and said in reason


@contextlib.contextmanager
def server_in_thread(env: dict[str, str], monkeypatch, idle: float = 30.0):
    """A hook server in this process, at the place the client looks for it."""
    from leashd.hook.server import HookServer

    for k, v in env.items():
        monkeypatch.setenv(k, v)
    server = HookServer(Path(place.socket_path()), idle=idle)
    assert server.bind()
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    try:
        yield server, thread
    finally:
        server._leave()
        thread.join(10)
        server.decider.close()


def test_a_server_leaves_when_leashd_changes_under_it_and_the_call_is_decided_anyway(
    world, monkeypatch
):
    _home, proj, env = world
    with server_in_thread(env, monkeypatch) as (server, thread):
        ls = hook_input(proj, "Bash", {"command": "ls"})
        assert decision(run._ask_server(ls, place.passed_env(), str(proj)))[0] == "allow"
        server._source = ()  # as if a module changed
        server._source_checked = 0.0
        assert run._ask_server(ls, place.passed_env(), str(proj)) is None  # decide yourself
        thread.join(5)
        assert not thread.is_alive() and not Path(place.socket_path()).exists()


def test_a_server_exits_when_idle_and_answers_only_its_user(world, monkeypatch):
    _home, proj, env = world
    with server_in_thread(env, monkeypatch, idle=0.5) as (_server, thread):
        import leashd.hook.server as server_module

        monkeypatch.setattr(server_module.os, "getuid", lambda: 12345)  # someone else's socket
        got, reason = decision(run.answer(hook_input(proj, "Bash", {"command": "ls"})))
        assert got == "deny" and "answer was lost" in reason
        monkeypatch.undo()
        thread.join(5)
        assert not thread.is_alive()


def test_a_socket_path_too_long_for_a_socket_moves_to_the_temporary_directory():
    env = {"HOME": "/h", "LEASHD_HOME": "/very/" + "long/" * 30}
    path = place.socket_path(env)
    assert path.startswith(tempfile_dir()) and f"leashd-hook-{os.getuid()}" in path
    assert place.socket_path({"HOME": "/h"}).startswith("/h/.leashd/hook/")


def tempfile_dir() -> str:
    import tempfile

    return tempfile.gettempdir()


def test_a_decision_past_its_time_is_a_recorded_deny(world, monkeypatch):
    import leashd.hook.decide as decide

    home, proj, env = world
    monkeypatch.setattr(decide, "LATE_AFTER", -1.0)
    d = HookDecider()
    try:
        got, reason = decision(
            d.answer(hook_input(proj, "Bash", {"command": "ls"}), env, str(proj))
        )
    finally:
        d.close()
    assert got == "deny" and "too late" in reason
    assert audit_of(home)[-1]["decision"] == "deny"


def test_an_exception_while_deciding_is_a_deny(world, monkeypatch):
    _home, proj, env = world

    def broken(*args: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(HookDecider, "_setup", broken)
    got, reason = decision(
        HookDecider().answer(hook_input(proj, "Bash", {"command": "ls"}), env, str(proj))
    )
    assert got == "deny" and "RuntimeError: boom" in reason


def test_the_hook_denies_by_itself_when_the_decision_does_not_come(tmp_path):
    slow = (
        "import time, leashd.hook.run as r\n"
        "r.DEADLINE = 0.5\n"
        "r.answer = lambda *a, **k: time.sleep(30)\n"
        "r.entry()\n"
    )
    t0 = time.monotonic()
    done = subprocess.run([sys.executable, "-c", slow], input=b"{}", capture_output=True,
                          timeout=20, cwd=tmp_path)  # fmt: skip
    assert time.monotonic() - t0 < 10
    assert done.returncode == 0
    got, reason = decision(json.loads(done.stdout))
    assert got == "deny" and "did not decide within 0.5 s" in reason


def test_an_answer_that_cannot_be_written_is_exit_status_2(world):
    _home, proj, env = world
    full = {k: v for k, v in os.environ.items() if not k.startswith(("LEASHD_", "CLAUDE"))}
    full.update(env)
    cmd = f"{sys.executable} -P -E -m leashd.hook.run --no-server >&-"
    done = subprocess.run(["sh", "-c", cmd], input=hook_input(proj, "Bash", {"command": "ls"}),
                          env=full, cwd=proj, capture_output=True, timeout=60)  # fmt: skip
    assert done.returncode == 2 and b"blocked" in done.stderr


def test_the_user_settings_follow_claude_config_dir(monkeypatch):
    assert cc.user_settings({"CLAUDE_CONFIG_DIR": "/cfg"}) == Path("/cfg/settings.json")
    monkeypatch.setenv("HOME", "/h")
    assert cc.user_settings({}) == Path("/h/.claude/settings.json")


def test_an_input_past_the_size_limit_is_refused(monkeypatch):
    monkeypatch.setattr(protocol, "MAX_INPUT", 100)
    with pytest.raises(protocol.BadInput, match="larger than"):
        protocol.parse(b" " * 101)
