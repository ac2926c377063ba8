"""Session modes over the real evaluator: `auto` lets edits inside the project go ahead and
loosens nothing else; `plan` changes nothing and asks for nothing but the plan; an unknown
mode denies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leashd.gate.audit import AuditLog
from leashd.gate.gate import Gate, Session
from leashd.gate.modes import EDIT_TOOLS, PLAN_TOOL, apply_mode
from leashd.policy.decision import Decision
from leashd.policy.ir import STRICTNESS

CORPUS_DIR = Path("/work/shared/corpus")
CORPUS_HOME = "/home/dev"  # the corpus' world: HOME, with the project at /home/dev/project


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A gate on the built-in policies, a home and a project inside it (both under tmp)."""
    root = tmp_path_factory.mktemp("modes")
    home = root / "home"
    proj = home / "project"
    (proj / "src").mkdir(parents=True)
    (proj / "src" / "app.py").write_text("print(1)\n")
    audit = AuditLog(root / "a.jsonl", fsync="never")
    gate = Gate.from_specs([], audit, approved_dirs=[str(proj)], home=str(home), temp_dirs=())
    yield gate, proj, home, root
    audit.close()


def decide(world, mode, tool, tool_input) -> Decision:
    gate, proj, _, _ = world
    return gate.decide(Session("s", "c", str(proj), mode), tool, tool_input)


def actions(world, tool, tool_input) -> dict[str, str]:
    return {m: decide(world, m, tool, tool_input).action for m in ("default", "plan", "auto")}


def write(path, content="x = 1\n"):
    return "Write", {"file_path": str(path), "content": content}


def edit(path):
    return "Edit", {"file_path": str(path), "old_string": "1", "new_string": "2"}


def bash(command):
    return "Bash", {"command": command, "description": "run it"}


# --- auto ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda proj: write(proj / "src" / "new.py"),
        lambda proj: write("src/relative.py"),
        lambda proj: edit(proj / "src" / "app.py"),
        lambda proj: (
            "MultiEdit",
            {
                "file_path": str(proj / "src" / "app.py"),
                "edits": [{"old_string": "1", "new_string": "2"}],
            },
        ),
    ],
    ids=["write", "write-relative", "edit", "multiedit"],
)
def test_auto_lets_an_edit_inside_the_project_go_ahead(world, call):
    _, proj, _, _ = world
    tool, tool_input = call(proj)
    assert decide(world, "default", tool, tool_input).action == "require_approval"
    auto = decide(world, "auto", tool, tool_input)
    assert auto.action == "allow"
    assert auto.layer == "mode"
    assert "auto mode" in auto.reason


@pytest.mark.parametrize(
    "call",
    [
        lambda proj, root: write(proj / ".env", "TOKEN=x\n"),
        lambda proj, root: write(root / "outside.py"),
        lambda proj, root: edit(root / "outside.py"),
        lambda proj, root: write("../../escape.py"),
        lambda proj, root: bash("rm -rf ~"),
    ],
    ids=["write-dotenv", "write-outside", "edit-outside", "write-traversal", "rm-home"],
)
def test_auto_never_loosens_a_deny(world, call):
    _, proj, _, root = world
    tool, tool_input = call(proj, root)
    assert actions(world, tool, tool_input) == {"default": "deny", "plan": "deny", "auto": "deny"}


@pytest.mark.parametrize("command", ["npm install left-pad", "echo x > notes.txt", "mkdir build"])
def test_auto_does_not_allow_shell_commands_that_need_approval(world, command):
    tool, tool_input = bash(command)
    assert decide(world, "default", tool, tool_input).action == "require_approval"
    assert decide(world, "auto", tool, tool_input).action == "require_approval"


def test_auto_does_not_allow_an_unknown_tool_that_needs_approval(world):
    assert actions(world, "mcp__unknown__do_things", {}) == {
        "default": "require_approval",
        "plan": "deny",
        "auto": "require_approval",
    }


# --- plan ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda proj: write(proj / "src" / "new.py"),
        lambda proj: edit(proj / "src" / "app.py"),
        lambda proj: bash("echo x > f"),
        lambda proj: bash("sed -i s/1/2/ src/app.py"),
    ],
    ids=["write", "edit", "redirect", "sed-i"],
)
def test_plan_changes_nothing(world, call):
    _, proj, _, _ = world
    tool, tool_input = call(proj)
    plan = decide(world, "plan", tool, tool_input)
    assert plan.action == "deny"
    assert "plan mode" in plan.reason


@pytest.mark.parametrize("command", ["npm install left-pad", "curl https://example.com"])
def test_plan_denies_what_would_need_approval(world, command):
    tool, tool_input = bash(command)
    assert decide(world, "default", tool, tool_input).action == "require_approval"
    plan = decide(world, "plan", tool, tool_input)
    assert plan.action == "deny"
    assert "approve the plan first" in plan.reason


@pytest.mark.parametrize(
    "call",
    [
        lambda proj: ("Read", {"file_path": str(proj / "src" / "app.py")}),
        lambda proj: bash("ls"),
        lambda proj: bash("grep -rn print src"),
        lambda proj: ("Grep", {"pattern": "print", "path": str(proj)}),
    ],
    ids=["read", "ls", "grep", "grep-tool"],
)
def test_plan_still_allows_reads(world, call):
    _, proj, _, _ = world
    tool, tool_input = call(proj)
    assert actions(world, tool, tool_input) == {
        "default": "allow",
        "plan": "allow",
        "auto": "allow",
    }


def test_the_plan_goes_to_a_human_in_plan_mode_only(world):
    tool_input = {"plan": "1. add a test\n2. fix the bug"}
    plan = decide(world, "plan", PLAN_TOOL, tool_input)
    assert plan.action == "require_approval"
    assert plan.layer == "mode"
    assert decide(world, "default", PLAN_TOOL, tool_input).action == "allow"
    assert decide(world, "auto", PLAN_TOOL, tool_input).action == "allow"


def test_an_mcp_tool_named_like_the_plan_tool_is_not_the_plan(world):
    plan = decide(world, "plan", "mcp__ci__ExitPlanMode", {"plan": "ship it"})
    assert plan.action == "deny"


# --- unknown modes, and decisions the mode must not touch -------------------------------------


@pytest.mark.parametrize("mode", ["yolo", "", "Auto", "PLAN"])
def test_an_unknown_mode_denies(world, mode):
    _, proj, _, _ = world
    for tool, tool_input in [
        ("Read", {"file_path": str(proj / "src" / "app.py")}),
        bash("ls"),
        write(proj / "src" / "new.py"),
    ]:
        d = decide(world, mode, tool, tool_input)
        assert d.action == "deny"
        assert repr(mode) in d.reason


def test_a_decision_with_an_error_is_left_as_it_is():
    broken = Decision("deny", None, "evaluator failed", "error", error="boom")
    for mode in ("default", "plan", "auto", "nonsense"):
        assert apply_mode(broken, mode, "Write") is broken


# --- properties over the corpus ------------------------------------------------------------


def _corpus_calls() -> list[tuple[str, str, str]]:
    """(tool, input as JSON, id) of every corpus row, in the corpus' world."""
    calls = []
    for path in sorted(CORPUS_DIR.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                calls.append((row["tool"], json.dumps(row["input"]), row["id"]))
    return calls


CALLS = _corpus_calls()
TOOLS = sorted({tool for tool, _, _ in CALLS})


def in_world(world, input_json: str):
    """The corpus input with its home (and so its project) moved to this test's home."""
    _, _, home, _ = world
    return json.loads(input_json.replace(CORPUS_HOME, str(home)))


def check_modes(world, tool, tool_input):
    default = decide(world, "default", tool, tool_input)
    plan = decide(world, "plan", tool, tool_input)
    auto = decide(world, "auto", tool, tool_input)
    assert STRICTNESS[plan.action] >= STRICTNESS[default.action], (default, plan)
    if plan.action == "require_approval":
        assert tool == PLAN_TOOL
    if auto.action != default.action:
        assert tool in EDIT_TOOLS
        assert (default.action, auto.action) == ("require_approval", "allow")


def test_the_corpus_is_there():
    assert len(CALLS) > 500
    assert {"Bash", "Write", "Edit", "Read", PLAN_TOOL} <= set(TOOLS)


@settings(max_examples=300, deadline=None)
@given(call=st.sampled_from(CALLS) if CALLS else st.nothing())
def test_modes_over_corpus_calls(world, call):
    """For every corpus call: plan is never looser than default and asks only about the
    plan; auto differs from default only by letting an edit tool's approval go ahead."""
    tool, input_json, _ = call
    check_modes(world, tool, in_world(world, input_json))


@settings(max_examples=300, deadline=None)
@given(
    tool=st.sampled_from([*TOOLS, PLAN_TOOL, "NotebookEdit"]),
    call=st.sampled_from(CALLS) if CALLS else st.nothing(),
)
def test_modes_over_mixed_up_calls(world, tool, call):
    """The same, for any tool given any corpus input: inputs of the wrong shape included."""
    _, input_json, _ = call
    check_modes(world, tool, in_world(world, input_json))
