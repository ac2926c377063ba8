"""`leashd policy eval` survives any line (issue 18, item 5): every non-blank line of bytes gets
exactly one JSON answer, in order and as soon as it is read; a line that holds no call gets a
deny with its error and line number, and the lines after it are decided as usual. A call whose
input does not fit its built-in tool (a field missing or of the wrong JSON type) is malformed,
and denied."""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leashd.cli import main
from leashd.policy.tool_inputs import ITEM_FIELDS, TOOL_INPUTS, input_problem

# Anything not denied by a rule is allowed: a malformed line that got through would show.
POLICY = """\
settings: {default_action: allow}
rules:
  - name: no-env
    paths: ["**/.env"]
    action: deny
"""


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    path = tmp_path_factory.mktemp("eval") / "open.yaml"
    path.write_text(POLICY)
    return str(path)


def run(policy: str, data: bytes, *args: str) -> tuple[list[dict], str]:
    result = CliRunner().invoke(
        main, ["policy", "eval", "--policy", policy, "--cwd", "/home/dev/p", *args], input=data
    )
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert result.exit_code == 0, result.output
    return [json.loads(x) for x in result.stdout.splitlines()], result.stderr


def call(tool: str, tool_input: object) -> bytes:
    return json.dumps({"tool": tool, "input": tool_input}).encode()


LS = call("Bash", {"command": "ls"})
ENV = call("Read", {"file_path": "/home/dev/p/.env"})


# --- bad lines --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        (b'{"tool": "Bash", "input": {"command": "ls \xff\xfe"}}', "not UTF-8"),
        (b"\xc3", "not UTF-8"),
        (b'{"tool": "X", "input": ' + b"[" * 1000 + b"]" * 1000 + b"}", "nested too deeply"),
        (b"[" * 100_000, "nested too deeply"),
        (b'{"tool": "Bash", "input": {"command": "ls"}', "not JSON"),
        (b'"Bash"', "a call must be a JSON object"),
        (b"[1, 2]", "a call must be a JSON object"),
        (b"1" * 5000, "not JSON"),  # beyond Python's digits limit for int()
    ],
)
def test_a_bad_line_gets_its_own_deny_and_the_others_are_decided(policy, bad, error):
    answers, stderr = run(policy, b"\n".join([LS, bad, ENV, LS]) + b"\n")
    assert "Traceback" not in stderr
    assert [a["decision"] for a in answers] == ["allow", "deny", "deny", "allow"]
    assert error in answers[1]["error"] and answers[1]["line"] == 2
    assert answers[1]["reason"].startswith("malformed tool call: line 2: ")
    assert answers[2]["rule"] == "no-env"


def test_blank_lines_get_no_answer_but_count_as_lines(policy):
    answers, _ = run(policy, LS + b"\n\n  \r\n" + b"\xff\n" + LS)
    assert [a["decision"] for a in answers] == ["allow", "deny", "allow"]
    assert answers[1]["line"] == 4


def test_a_line_over_the_limit_is_refused_unread_and_the_next_is_decided(policy, monkeypatch):
    from leashd.policy import calls

    monkeypatch.setattr(calls, "MAX_LINE_BYTES", 64)
    long = call("Bash", {"command": "echo " + "x" * 200})
    answers, _ = run(policy, LS + b"\n" + long + b"\n" + ENV + b"\n")
    assert [a["decision"] for a in answers] == ["allow", "deny", "deny"]
    assert "longer than" in answers[1]["error"] and answers[2]["rule"] == "no-env"


_line = st.binary(max_size=60).map(lambda b: b.replace(b"\n", b""))
_good = st.sampled_from([LS, ENV, call("Glob", {"pattern": "*.py"}), call("Read", {})])


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(_line | _good, max_size=8))
def test_every_line_of_any_bytes_gets_exactly_one_answer_and_no_bad_line_is_allowed(policy, lines):
    answers, stderr = run(policy, b"\n".join(lines))
    assert "Traceback" not in stderr
    expected = [(n, raw) for n, raw in enumerate(lines, 1) if raw.strip()]
    assert len(answers) == len(expected)
    for (n, raw), answer in zip(expected, answers, strict=True):
        try:
            obj = json.loads(raw.decode("utf-8"))
        except (ValueError, RecursionError):
            obj = None
        if not isinstance(obj, dict):
            assert answer["decision"] == "deny" and answer["line"] == n and answer["error"]
        elif answer["decision"] == "allow":
            assert input_problem(obj.get("tool"), obj.get("input")) is None


def test_answers_stream_one_line_at_a_time(policy):
    """The answer to a line comes before the next line is written (nothing waits for the
    whole batch)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "leashd.cli", "policy", "eval", "--policy", policy],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    try:
        for raw, decision in ((b"\xff", "deny"), (LS, "allow"), (ENV, "deny")):
            proc.stdin.write(raw + b"\n")
            proc.stdin.flush()
            assert sel.select(timeout=120), "no answer to a line while the stream stays open"
            assert json.loads(proc.stdout.readline())["decision"] == decision
        proc.stdin.close()
        assert proc.wait(timeout=120) == 0
    finally:
        sel.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()  # type: ignore[union-attr]


def test_stats_still_count_the_calls_decided(policy):
    data = b"\n".join([LS, b"\xff", ENV]) + b"\n"
    answers, stderr = run(policy, data, "--stats", "--repeat", "2")
    assert len(answers) == 3
    figures = json.loads(stderr.strip().splitlines()[-1])
    assert figures["calls"] == 2 and figures["warm_median_us"] is not None


# --- inputs of the wrong type ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("tool", "tool_input", "error"),
    [
        ("WebFetch", {"url": "https://example.com"}, "WebFetch needs a string 'prompt'"),
        ("WebFetch", {"url": "https://example.com", "prompt": 5}, "'prompt' must be a string"),
        ("Read", {"file_path": "/home/dev/p/a.py", "limit": "10"}, "'limit' must be a number"),
        ("Read", {"file_path": "/home/dev/p/a.py", "offset": True}, "'offset' must be a number"),
        ("Bash", {"command": ["ls"]}, "'command' must be a string, not a list"),
        ("Bash", {"command": "ls", "timeout": "soon"}, "'timeout' must be a number"),
        ("Bash", {"command": "ls", "run_in_background": "yes"}, "must be true or false"),
        ("Edit", {"file_path": "/home/dev/p/a.py", "new_string": "x"}, "needs a string 'old_"),
        ("Write", {"file_path": "/home/dev/p/a.py"}, "Write needs a string 'content'"),
        ("MultiEdit", {"file_path": "/home/dev/p/a.py", "edits": "x"}, "a list of objects"),
        (
            "MultiEdit",
            {"file_path": "/home/dev/p/a.py", "edits": [{"old_string": 1, "new_string": "y"}]},
            "MultiEdit: edits[0]: 'old_string' must be a string",
        ),
        ("Grep", {"pattern": "x", "-n": "true"}, "'-n' must be true or false"),
        ("LS", {"path": "/home/dev/p", "ignore": [1]}, "'ignore' must be a list of strings"),
        ("WebSearch", {"query": None}, "WebSearch needs a string 'query'"),
        ("NotebookEdit", {"notebook_path": "/home/dev/p/n.ipynb"}, "'new_source'"),
    ],
)
def test_an_input_field_of_the_wrong_type_is_a_malformed_call(policy, tool, tool_input, error):
    [answer], _ = run(policy, call(tool, tool_input) + b"\n")
    assert answer["decision"] == "deny", answer
    assert answer["reason"].startswith("malformed tool call: ") and error in answer["error"]


@pytest.mark.parametrize(
    ("tool", "tool_input"),
    [
        # fields a newer Claude Code may add are not refused
        ("Read", {"file_path": "/home/dev/p/a.py", "new_in_v3": {"x": [1]}}),
        ("Bash", {"command": "ls", "description": "List", "sandbox_profile": "strict"}),
        # null in an optional field is the field left out
        ("Grep", {"pattern": "x", "path": None, "-i": None}),
        ("Read", {"file_path": "/home/dev/p/a.py", "offset": 0, "limit": 20.0}),
        ("WebFetch", {"url": "https://example.com", "prompt": "summarise"}),
        # tools the table does not know: facts alone decides what they need
        ("mcp__db__query", {"sql": 5}),
        ("SomeFutureTool", {"anything": [1, 2]}),
    ],
)
def test_extra_fields_and_unknown_tools_are_decided_by_the_policy(policy, tool, tool_input):
    [answer], _ = run(policy, call(tool, tool_input) + b"\n")
    assert answer["decision"] == "allow", answer


# --- the table itself -------------------------------------------------------------------------

_VALUES = {
    "string": st.text(max_size=5),
    "number": st.integers() | st.floats(allow_nan=False, allow_infinity=False),
    "boolean": st.booleans(),
    "string[]": st.lists(st.text(max_size=3), max_size=3),
    "object[]": st.lists(st.just({}), max_size=2),
}
_WRONG = {
    "string": st.integers() | st.booleans() | st.lists(st.text(), max_size=1) | st.just({}),
    "number": st.text() | st.booleans() | st.sampled_from([float("nan"), float("inf")]),
    "boolean": st.text() | st.integers() | st.just([]),
    "string[]": st.text() | st.lists(st.integers(), min_size=1, max_size=2),
    "object[]": st.text() | st.lists(st.integers(), min_size=1, max_size=2),
}


@st.composite
def _fitting(draw, tool: str) -> dict:
    out = {}
    for name, spec in TOOL_INPUTS[tool].items():
        kind = spec.rstrip("?")
        if spec.endswith("?") and draw(st.booleans()):
            continue
        if (tool, name) in ITEM_FIELDS:
            item = {k: draw(_VALUES[v.rstrip("?")]) for k, v in ITEM_FIELDS[(tool, name)].items()}
            out[name] = [item]
        else:
            out[name] = draw(_VALUES[kind])
    return out


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_an_input_fits_exactly_when_every_listed_field_has_its_type(data):
    tool = data.draw(st.sampled_from(sorted(TOOL_INPUTS)))
    tool_input = data.draw(_fitting(tool))
    assert input_problem(tool, tool_input) is None
    extra = data.draw(st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))
    assert input_problem(tool, {**extra, **tool_input}) is None  # extra fields: fine
    name = data.draw(st.sampled_from(sorted(TOOL_INPUTS[tool])))
    kind = TOOL_INPUTS[tool][name].rstrip("?")
    wrong = data.draw(_WRONG[kind])
    problem = input_problem(tool, {**tool_input, name: wrong})
    assert problem is not None and repr(name) in problem


def test_the_built_in_suites_and_corpora_inputs_all_fit():
    """Every call the built-in policies are tested on is well formed: the table asks nothing
    of a real Claude Code call that Claude Code does not."""
    from leashd.policy.calls import builtin_calls

    bad = [(c.origin, input_problem(c.tool, c.input)) for c in builtin_calls()]
    assert [b for b in bad if b[1] is not None] == []


def test_eval_of_a_file_given_with_calls(policy, tmp_path):
    path = tmp_path / "calls.jsonl"
    path.write_bytes(LS + b"\n\xff\n")
    answers, _ = run(policy, b"", "--calls", os.fspath(path))
    assert [a["decision"] for a in answers] == ["allow", "deny"]
