"""End to end, the daemon's configuration at work: rotating JSON logs, MCP servers from the
configuration reaching the agent (and the gate), and `.leash` policy files named in
LEASHD_POLICY_FILES. The real Claude Code CLI against the fake Messages API, leashd as a real
process; the world, fixtures and REPL helpers are those of test_e2e_daemon.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from leashd.agent.runner import bundled_cli
from tests import test_e2e_daemon
from tests.test_e2e_daemon import LEASHD, World, start_repl

# the harness's fixtures, used here under the same names
world = test_e2e_daemon.world
term = test_e2e_daemon.term

pytestmark = pytest.mark.skipif(
    bundled_cli() is None, reason="the Claude Code CLI bundled with claude-agent-sdk is missing"
)

# --- rotating JSON logs ------------------------------------------------------------------------


def test_logs_are_json_lines_in_files_rotated_within_the_backup_count(world, term):
    logs = world.root / "logs"
    env = {
        "LEASHD_LOG_DIR": str(logs),
        "LEASHD_LOG_MAX_BYTES": "1024",  # the least allowed: a few runs fill a file
        "LEASHD_LOG_BACKUP_COUNT": "2",
        "LEASHD_LOG_LEVEL": "DEBUG",
    }
    kept = {"leashd.log", "leashd.log.1", "leashd.log.2"}
    runs = 7
    for i in range(runs):
        world.fake.say(f"Answer {i}.")
        p = world.run(f"question {i}", **env)
        assert p.returncode == 0, p.stderr
        names = {f.name for f in logs.iterdir()}
        assert names <= kept, names  # never more files than the log and its backups
    # the daemon logs into the same files; a reload is one of leashd's own events
    start_repl(world, term, **env)
    other = world.home / "other"
    other.mkdir()
    added = subprocess.run([*LEASHD, "add-dir", str(other)], env=world.env, capture_output=True,
                           text=True)  # fmt: skip
    assert added.returncode == 0, added.stderr
    term.wait_for("configuration reloaded")
    term.key("C-d")
    term.wait_dead()

    assert {f.name for f in logs.iterdir()} == kept
    lines = []
    for name in ("leashd.log.2", "leashd.log.1", "leashd.log"):  # oldest first
        path = logs / name
        assert path.stat().st_size <= 1024, name
        for line in path.read_text().splitlines():
            rec = json.loads(line)  # every line is one JSON object
            assert {"event", "level", "logger", "timestamp"} <= rec.keys(), rec
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z", rec["timestamp"])
            assert rec["level"] in ("debug", "info", "warning", "error", "critical")
            lines.append(rec)
    # the oldest runs were rotated away
    started = [r for r in lines if r["event"] == "agent_execute_started"]  # one per run
    assert 0 < len(started) < runs
    # leashd's own event, with its fields, is in the newest file
    newest = [json.loads(x) for x in (logs / "leashd.log").read_text().splitlines()]
    [reload] = [r for r in newest if r["event"] == "configuration reloaded"]
    assert (reload["level"], reload["logger"]) == ("info", "leashd.daemon.serve")
    assert reload["dirs"] == [str(world.proj), str(other)]
    assert reload["policy"].startswith("reloaded:")
    # the audit log is apart from them, and kept whole
    assert world.audit.exists() and not (logs / "audit.jsonl").exists()


# --- MCP servers from the configuration -----------------------------------------------------

# A minimal MCP server over stdio (JSON-RPC, one message a line): one tool, `note`, that
# appends its text to notes.txt in the directory it is given, and says so.
NOTES_SERVER = r"""
import json
import sys
from pathlib import Path

where = Path(sys.argv[1])


def send(msg):
    sys.stdout.write(json.dumps(msg) + "\n")
    sys.stdout.flush()


TOOL = {
    "name": "note",
    "description": "Keep a note",
    "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}},
                    "required": ["text"]},
}

for line in sys.stdin:
    if not line.strip():
        continue
    req = json.loads(line)
    rid, method, params = req.get("id"), req.get("method"), req.get("params") or {}
    if rid is None:  # a notification
        continue
    if method == "initialize":
        result = {"protocolVersion": params.get("protocolVersion", "2024-11-05"),
                  "capabilities": {"tools": {}},
                  "serverInfo": {"name": "notes", "version": "1.0"}}
    elif method == "tools/list":
        result = {"tools": [TOOL]}
    elif method == "tools/call" and params.get("name") == "note":
        text = str(params.get("arguments", {}).get("text"))
        with open(where / "notes.txt", "a") as f:
            f.write(text + "\n")
        result = {"content": [{"type": "text", "text": "noted #" + text.upper()}],
                  "isError": False}
    elif method == "ping":
        result = {}
    else:
        send({"jsonrpc": "2.0", "id": rid,
              "error": {"code": -32601, "message": "no method " + str(method)}})
        continue
    send({"jsonrpc": "2.0", "id": rid, "result": result})
"""


def notes_server(world: World) -> dict[str, str]:
    """LEASHD_MCP_SERVERS naming the notes server, which writes into the project."""
    script = world.home / "notes_server.py"
    script.write_text(NOTES_SERVER)
    servers = {"notes": {"command": sys.executable, "args": [str(script), str(world.proj)]}}
    return {"LEASHD_MCP_SERVERS": json.dumps(servers)}


def team_policy(world: World, rules: str) -> dict[str, str]:
    """A `.leash` file of `rules` before the built-in default and dev-tools policies."""
    path = world.home / "team.leash"
    path.write_text(f'{rules}\ninclude "default"\ninclude "dev-tools"\n')
    return {"LEASHD_POLICY_FILES": str(path)}


def test_an_mcp_tool_needs_approval_by_default_so_a_headless_run_denies_it(world):
    """The default policy has no rule for an unknown MCP server's tools: `default ask`. With
    nobody to ask, the call is denied and the server never runs it."""
    f = world.fake
    note = f.call("mcp__notes__note", {"text": "buy milk"})
    f.say("Could not take the note.")

    p = world.run("note it", **notes_server(world))

    assert p.returncode == 0, p.stderr
    assert not (world.proj / "notes.txt").exists()
    assert "Denied by leashd (approval)" in f.tool_results()[note]
    assert "nobody can be asked here" in p.stderr
    [d] = world.decisions()
    assert (d["tool"], d["decision"], d["layer"]) == ("mcp__notes__note", "deny", "approval")
    assert d["policy_decision"] == "require_approval" and d["rule"] is None
    assert d["policy_reason"] == "no rule matched"


def test_an_mcp_tool_approved_in_the_repl_runs_and_its_result_reaches_the_model(world, term):
    f = world.fake
    note = f.call("mcp__notes__note", {"text": "buy milk"})
    f.say("Noted, as you approved.")
    start_repl(world, term, **notes_server(world))

    term.type("take a note")
    screen = term.wait_for("[y]es / [n]o")
    assert '⚠ Approval needed — mcp__notes__note {"text": "buy milk"}' in screen
    term.type("y")
    term.wait_for("Noted, as you approved.")

    assert (world.proj / "notes.txt").read_text() == "buy milk\n"
    assert f.tool_results()[note] == "noted #BUY MILK"
    [d] = world.decisions()
    assert (d["tool"], d["decision"], d["layer"]) == ("mcp__notes__note", "allow", "approval")
    assert d["who"] == "terminal" and d["input"] == {"text": "buy milk"}


def test_an_mcp_tool_allowed_by_a_leash_policy_runs_headless(world):
    f = world.fake
    note = f.call("mcp__notes__note", {"text": "ship it"})
    # the policy allows the tool, but the sandbox still keeps it inside the approved
    # directories
    outside = f.call("mcp__notes__note", {"text": "x", "path": str(world.outside / "n.txt")})
    f.say("Noted.")
    env = {
        **notes_server(world),
        **team_policy(world, 'allow notes-server tools mcp__notes__note reason "Our notes"'),
    }

    p = world.run("note it", **env)

    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "Noted."
    assert (world.proj / "notes.txt").read_text() == "ship it\n"  # once: the second was denied
    results = f.tool_results()
    assert results[note] == "noted #SHIP IT"
    sandbox = "Denied by leashd (sandbox): reads outside the approved directories"
    assert sandbox in results[outside]
    allowed, denied = world.decisions()
    assert (allowed["decision"], allowed["rule"], allowed["reason"]) == (
        "allow", "notes-server", "Our notes",
    )  # fmt: skip
    assert allowed["at"].endswith("team.leash:1:1")
    assert (denied["decision"], denied["layer"]) == ("deny", "sandbox")


# --- .leash policy files in LEASHD_POLICY_FILES ---------------------------------------------


def test_a_leash_policy_file_denies_what_the_default_allows(world):
    (world.proj / "notes").mkdir()
    (world.proj / "notes" / "plan.md").write_text("the secret plan\n")
    f = world.fake
    blocked = f.call("Read", {"file_path": str(world.proj / "notes" / "plan.md")})
    readme = f.call("Read", {"file_path": str(world.proj / "README.md")})
    f.say("I may not read the notes.")
    rule = (
        "# the team's rule, before the built-ins: design notes are for people\n"
        'deny design-notes tools Read paths "notes/**" reason "Design notes stay with people"'
    )

    p = world.run("read the plan", **team_policy(world, rule))

    assert p.returncode == 0, p.stderr
    results = f.tool_results()
    assert "Denied by leashd (policy): Design notes stay with people" in results[blocked]
    assert "the secret plan" not in f.seen()
    assert "# demo" in results[readme]  # the built-ins still apply after it
    denied, allowed = world.decisions()
    assert (denied["decision"], denied["rule"]) == ("deny", "design-notes")
    assert denied["at"].endswith("team.leash:2:1")
    assert (allowed["decision"], allowed["rule"]) == ("allow", "read-only-file-tools")
    assert "Design notes stay with people" in p.stderr
    # without the file, the default policy lets the same read through
    f.call("Read", {"file_path": str(world.proj / "notes" / "plan.md")})
    f.say("Read it.")
    assert world.run("read the plan").returncode == 0
    assert world.decisions()[-1]["decision"] == "allow"
    assert "the secret plan" in f.seen()


BAD_POLICY = '# our rules\n\ndeny no-pushes cmnd "git push" reason "no"\n'


def test_a_malformed_leash_file_stops_leashd_run_with_its_place(world):
    env = team_policy(world, "")
    bad = world.home / "bad.leash"
    bad.write_text(BAD_POLICY)
    env["LEASHD_POLICY_FILES"] = f"{env['LEASHD_POLICY_FILES']},{bad}"
    world.fake.call("Write", {"file_path": str(world.proj / "x.txt"), "content": "x"})

    p = world.run("anything", **env)

    assert p.returncode == 2, p.stderr
    assert f"{bad}:3:" in p.stderr and "unknown keyword 'cmnd'" in p.stderr
    assert "Traceback" not in p.stderr
    assert world.fake.requests == []  # the agent never started
    assert world.decisions() == []
    assert not (world.proj / "x.txt").exists()


def test_a_malformed_leash_file_stops_the_daemon_from_starting(world):
    bad = world.home / "bad.leash"
    bad.write_text(BAD_POLICY)
    p = subprocess.run(
        [*LEASHD, "start", "-f"], env={**world.env, "LEASHD_POLICY_FILES": str(bad)},
        cwd=world.proj, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert p.returncode == 2, p.stderr
    assert f"{bad}:3:" in p.stderr and "Traceback" not in p.stderr
    # and it left no daemon behind it: the next command finds none running
    status = subprocess.run([*LEASHD, "status"], env=world.env, capture_output=True, text=True)
    assert status.returncode == 3 and "stale" not in status.stdout
