"""`leashd policy schema`: the JSON Schema of the YAML format accepts every policy the loader
accepts and rejects the structural mistakes the loader rejects; `--suite`: the same for test
suites."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import yaml
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from leashd.cli import main
from leashd.policy.errors import PolicyError
from leashd.policy.loader import BUILTIN_NAMES, builtin_path
from leashd.policy.schema import policy_schema, suite_schema, suite_schema_text
from leashd.policy.suite_file import parse_suite
from leashd.policy.testsuite import builtin_suites, read_suite
from leashd.policy.yaml_frontend import RULE_KEYS, parse_yaml

ROOT = Path(__file__).resolve().parent.parent
VALIDATOR = jsonschema.Draft202012Validator(policy_schema())


def schema_ok(doc) -> bool:
    return VALIDATOR.is_valid(doc)


def loader_ok(doc) -> bool:
    try:
        parse_yaml(yaml.safe_dump(doc), "p.yaml")
    except PolicyError:
        return False
    return True


def test_the_schema_is_valid_json_schema_and_docs_hold_it():
    jsonschema.Draft202012Validator.check_schema(policy_schema())
    result = CliRunner().invoke(main, ["policy", "schema"])
    assert result.exit_code == 0
    shipped = (ROOT / "docs" / "policy.schema.json").read_text()
    assert result.output == shipped, "docs/policy.schema.json is stale: leashd policy schema -o"


@pytest.mark.parametrize("name", BUILTIN_NAMES)
def test_every_built_in_policy_validates(name):
    doc = yaml.safe_load(builtin_path(name).read_text())
    errors = [e.message for e in VALIDATOR.iter_errors(doc)]
    assert errors == []


@pytest.mark.parametrize(
    "rule",
    [
        {"name": "x", "action": "allow", "comands": ["ls"]},  # a typo of a key
        {"name": "x", "action": "permit"},
        {"action": "deny", "commands": ["rm"]},  # no name
        {"name": "x", "action": "allow", "paths": {"match": "*.py", "access": "execute"}},
        {"name": "x", "action": "allow", "modes": ["yolo"]},
        {"name": "x", "action": "allow", "opaque": "yes"},
        {"name": "x", "action": "allow", "examples": {"matches": ["ls"]}},
        {"name": "x", "action": "allow", "examples": {"match": [{"tool": "Read"}]}},
    ],
)
def test_structural_mistakes_fail_both_schema_and_loader(rule):
    doc = {"rules": [rule]}
    assert not schema_ok(doc)
    assert not loader_ok(doc)


@pytest.mark.parametrize(
    "doc", [{}, {"rules": []}, {"settings": {}}, {"name": "team", "version": "1"}]
)
def test_an_empty_policy_fails_both_schema_and_loader(doc):
    assert not schema_ok(doc)
    assert not loader_ok(doc)


def test_settings_are_checked_too():
    assert not schema_ok({"settings": {"approval_timeout_seconds": 0}})
    assert not schema_ok({"settings": {"default_action": "maybe"}})
    assert schema_ok({"settings": {"default_action": "deny", "approval_timeout_seconds": 60}})


_words = st.sampled_from(["git", "push", "*", "**", "$", "a|b", "--force", "*.py", "Bash"])
_values = st.one_of(
    _words,
    st.lists(_words, min_size=1, max_size=3),
    st.booleans(),
    st.sampled_from(
        ["allow", "deny", "require_approval", "read", "inside", "plan", "high", "ai", "human"]
    ),
    st.fixed_dictionaries({}, optional={"match": _words, "access": st.sampled_from(["read", "x"])}),
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from([*RULE_KEYS, "tool_name", "paths_match"]), _values, max_size=5
    ).map(lambda d: {"name": "r", "action": "allow", **d})
)
def test_the_schema_never_rejects_a_rule_the_loader_accepts(rule):
    doc = {"rules": [rule]}
    if loader_ok(doc):
        assert schema_ok(doc), rule


@pytest.mark.parametrize(
    ("top", "ok"),
    [
        ({"version": 1}, True),
        ({"version": "1"}, True),
        ({"version": "1.0"}, True),
        ({"version": 1.5}, False),  # the format's version: only 1 is read
        ({"version": "2"}, False),
        ({"version": 99}, False),
        ({"name": "team"}, True),
        ({"name": 5}, False),
        ({"description": ["a"]}, False),
        ({"version": True}, False),
    ],
)
def test_top_level_keys_mean_the_same_to_schema_and_loader(top, ok):
    doc = {**top, "settings": {"default_action": "deny"}}
    assert loader_ok(doc) == ok
    assert schema_ok(doc) == ok


# --- test suites --------------------------------------------------------------------------------

SUITE_VALIDATOR = jsonschema.Draft202012Validator(suite_schema())


def suite_loader_ok(tmp_path: Path, doc) -> bool:
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    try:
        read_suite(path)
    except PolicyError:
        return False
    return True


def test_the_suite_schema_is_valid_json_schema_and_docs_hold_it():
    jsonschema.Draft202012Validator.check_schema(suite_schema())
    shipped = (ROOT / "docs" / "suite.schema.json").read_text()
    assert suite_schema_text() == shipped, (
        "docs/suite.schema.json is stale: leashd policy schema --suite -o docs/suite.schema.json"
    )


@pytest.mark.parametrize("path", builtin_suites(), ids=lambda p: p.stem)
def test_every_built_in_suite_validates(path):
    doc = yaml.safe_load(path.read_text())
    assert [e.message for e in SUITE_VALIDATOR.iter_errors(doc)] == []


_CASE = {"command": "ls", "expect": "allow"}


@pytest.mark.parametrize(
    "doc",
    [
        {"cases": [{"command": "ls", "exepct": "allow"}]},  # a typo of a key
        {"cases": [{"command": "ls", "expect": "ask"}]},
        {"cases": [{"command": "ls"}]},  # no expect
        {"cases": [{"tool": "Read", "expect": "deny"}]},  # a tool case without its input
        {"cases": [{"expect": "deny"}]},  # neither a command nor a tool
        {"cases": [{"command": "ls", "input": {"command": "ls"}, "expect": "deny"}]},
        {"cases": [{"command": "ls", "tool": "Read", "expect": "deny"}]},
        {"cases": [{"tool": "Read", "input": "a.py", "expect": "deny"}]},
        {"cases": [{"command": "ls", "expect": "deny", "rule": ["a"]}]},
        {"cases": ["ls"]},
        {"cases": {"a": _CASE}},
        {"policies": ["default"]},  # no cases
        {"policies": [], "cases": []},
        {"policies": [3], "cases": []},
        {"sandbox": "yes", "cases": []},
        {"context": {"cwd": "project"}, "cases": []},  # relative: depends on where it runs
        {"context": {"home": "~/me"}, "cases": []},
        {"context": {"approved_dir": ["/x"]}, "cases": []},
        {"context": {"approved_dirs": [5]}, "cases": []},
        {"context": {"mode": "yolo"}, "cases": []},
        {"context": ["/x"], "cases": []},
        {"casez": [], "cases": []},
        {"cases": [{**_CASE, "expect_approver": "ai"}]},  # an allow asks nobody
        {"cases": [{"command": "ls", "expect": "deny", "expect_approver": "human"}]},
        {"cases": [{"command": "ls", "expect": "require_approval", "expect_approver": "AI"}]},
        {"cases": [{"command": "ls", "expect": "require_approval", "expect_approver": None}]},
        {"cases": [{"command": "ls", "expect_approver": "ai"}]},  # no expect
    ],
)
def test_suite_mistakes_fail_both_schema_and_loader(tmp_path, doc):
    assert not SUITE_VALIDATOR.is_valid(doc)
    assert not suite_loader_ok(tmp_path, doc)


@pytest.mark.parametrize(
    "doc",
    [
        {"cases": []},
        {"cases": [_CASE]},
        {"policies": "strict", "cases": [_CASE]},
        {"policies": ["default", "dev-tools"], "sandbox": False, "cases": [_CASE]},
        {"cases": [{**_CASE, "tool": "Bash", "name": "a listing", "rule": None}]},
        {"cases": [{"tool": "Read", "input": {"file_path": "a"}, "expect": "deny", "rule": "x"}]},
        {"cases": [{"tool": "mcp__fs__read", "input": {}, "expect": "require_approval"}]},
        {
            "context": {
                "cwd": "~/project",
                "home": "/home/me",
                "approved_dirs": ["~/project", "/srv/data"],
                "mode": "plan",
            },
            "cases": [_CASE],
        },
        {"context": {"approved_dirs": "/srv"}, "cases": [_CASE]},
        {"context": {}, "cases": [_CASE]},
        {"cases": [{"command": "ls", "expect": "require_approval", "expect_approver": "ai"}]},
        {
            "cases": [
                {
                    "tool": "Read",
                    "input": {"file_path": "a"},
                    "expect": "require_approval",
                    "expect_approver": "human",
                    "rule": None,
                }
            ]
        },
    ],
)
def test_suites_both_accept(tmp_path, doc):
    assert SUITE_VALIDATOR.is_valid(doc), list(SUITE_VALIDATOR.iter_errors(doc))
    assert suite_loader_ok(tmp_path, doc)


_case_values = st.one_of(
    st.sampled_from(
        ["ls", "Bash", "Read", "allow", "deny", "ask", "require_approval", "", "human", "ai"]
    ),
    st.none(),
    st.booleans(),
    st.integers(0, 3),
    st.lists(st.sampled_from(["a", "b"]), max_size=2),
    st.fixed_dictionaries({}, optional={"file_path": st.just("a.py"), "command": st.just("ls")}),
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            ["command", "tool", "input", "expect", "rule", "name", "exepct", "expect_approver"]
        ),
        _case_values,
        max_size=6,
    )
)
def test_schema_and_reader_agree_on_every_case(case):
    doc = {"cases": [case]}
    try:
        parse_suite(yaml.safe_dump(doc), Path("suite.yaml"))
        read_ok = True
    except PolicyError:
        read_ok = False
    assert SUITE_VALIDATOR.is_valid(doc) == read_ok, case
