"""`leashd` starts fast: a command imports what it uses and nothing else (the daemon, Telegram
and the agent SDK never for `leashd policy …`), built-in policies come from `compiled/`, and
YAML goes through libyaml with the Python loader's verdicts. Times are measured by
benchmarks/bench_cli.py, never asserted here."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from yaml.nodes import Node, ScalarNode, SequenceNode

from leashd.policy import artifact, loader, yaml_fast
from leashd.policy.loader import BUILTIN_NAMES, builtin_path, load_file, load_policies

ROOT = Path(__file__).resolve().parent.parent

# What a `leashd policy …` command must never import.
DAEMON = ("telegram", "claude_agent_sdk", "aiosqlite", "leashd.daemon", "leashd.agent",
          "leashd.connectors", "pydantic_settings")  # fmt: skip

_PROBE = """
import json, sys
from pathlib import Path
compiled = sys.argv[2]
if compiled:
    from leashd.policy import artifact
    artifact.compiled_dir = lambda: Path(compiled)
from leashd.cli import main
try:
    main(args=sys.argv[3:], prog_name="leashd")
except SystemExit:
    pass
Path(sys.argv[1]).write_text(json.dumps(sorted(sys.modules)))
"""


def imported_by(
    args: list[str], tmp_path: Path, compiled: Path | None = None, stdin: str = ""
) -> set[str]:
    """The modules loaded once `leashd ARGS` has run, in a fresh interpreter."""
    out = tmp_path / "modules.json"
    probe = [sys.executable, "-c", _PROBE, str(out), str(compiled or ""), *args]
    env = {**os.environ, "LEASHD_CACHE_DIR": str(tmp_path / "lint-cache")}
    done = subprocess.run(
        probe, cwd=tmp_path, env=env, input=stdin, capture_output=True, text=True, timeout=300
    )
    assert out.exists(), done.stderr
    return set(json.loads(out.read_text()))


def under(modules: set[str], prefixes: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in prefixes or m.startswith(prefixes))


@pytest.fixture(scope="module")
def current_compiled(tmp_path_factory) -> Path:
    """A compiled/ directory current for this source tree (the checkout's may be stale
    while leashd is being edited)."""
    from leashd.resources import source_fingerprint

    source_fingerprint.cache_clear()  # the source as it is now, as a new process reads it
    directory = tmp_path_factory.mktemp("compiled")
    artifact.write(directory, loader.compiled_files())
    return directory


@pytest.fixture
def small_policy(tmp_path) -> Path:
    (tmp_path / "team.yaml").write_text(
        "rules:\n  - {name: status, commands: ['git status'], action: allow}\n"
    )
    (tmp_path / "suite.yaml").write_text(
        "policies: [team.yaml]\ncases:\n  - {command: git status, expect: allow, rule: status}\n"
    )
    return tmp_path / "team.yaml"


CALL = '{"tool": "Bash", "input": {"command": "ls"}}\n'


def test_help_imports_no_command(tmp_path):
    modules = imported_by(["--help"], tmp_path)
    assert under(modules, ("leashd.policy", "leashd.gate", "leashd.shell", *DAEMON)) == []
    assert [m for m in modules if m.startswith("leashd.cli.")] == ["leashd.cli.lazy"]
    for heavy in ("pydantic", "yaml", "tree_sitter", "re2", "lark", "asyncio"):
        assert heavy not in modules


def test_policy_help_imports_no_policy_command(tmp_path):
    modules = imported_by(["policy", "--help"], tmp_path)
    assert sorted(m for m in modules if m.startswith("leashd.")) == [
        "leashd.cli",
        "leashd.cli.lazy",
        "leashd.cli.policy",
    ]


@pytest.mark.parametrize(
    "args",
    [
        ["policy", "eval"],
        ["policy", "explain", "--", "git push --force"],
        ["policy", "lint", "team.yaml", "--no-cache"],
        ["policy", "test", "suite.yaml"],
        ["policy", "diff", "team.yaml", "default", "--calls", "suite.yaml"],
        ["policy", "explain", "-h"],
        ["demo"],
    ],
    ids=lambda a: " ".join(a[:2]),
)
def test_policy_commands_never_import_the_daemon(args, tmp_path, small_policy):
    modules = imported_by(args, tmp_path, stdin=CALL)
    assert under(modules, DAEMON) == []
    assert "asyncio" not in modules


@pytest.mark.parametrize(
    "args", [["policy", "eval"], ["policy", "explain", "--", "ls"], ["policy", "lint"]]
)
def test_built_in_policies_load_without_yaml(args, tmp_path, current_compiled):
    # eval and explain of the built-ins read compiled/: no PyYAML, no Lark, no analysis
    modules = imported_by(args, tmp_path, current_compiled, stdin=CALL)
    assert under(modules, ("yaml", "lark", "leashd.policy.yaml_frontend")) == []
    if args[1] != "lint":
        assert under(modules, ("leashd.policy.analysis.lint", "leashd.policy.testsuite")) == []


def test_every_lazy_command_is_where_the_map_says():
    from leashd import cli
    from leashd.cli import policy

    for group in (cli.COMMANDS, policy.COMMANDS):
        for name, (where, short_help) in group.items():
            module, _, attribute = where.partition(":")
            command = getattr(__import__(module, fromlist=[attribute]), attribute)
            assert command.name == name, where
            assert short_help and not short_help.endswith("..."), name


def test_every_daemon_command_is_on_the_map():
    import click

    from leashd import cli
    from leashd.daemon import commands, workspace_commands

    mapped = {where for where, _ in cli.COMMANDS.values()}
    for module in (commands, workspace_commands):
        for attribute, value in vars(module).items():
            if isinstance(value, click.Command) and not _in_a_group(value, module):
                assert f"{module.__name__}:{attribute}" in mapped, attribute


def _in_a_group(command, module) -> bool:
    import click

    return any(
        isinstance(g, click.Group) and command in g.commands.values() for g in vars(module).values()
    )


# --- compiled/ on the load path ------------------------------------------------------------


def test_a_copy_of_a_built_in_loads_from_compiled(tmp_path, monkeypatch, current_compiled):
    copy = tmp_path / "default.yaml"
    shutil.copy(builtin_path("default"), copy)
    from_source = load_file(copy)
    monkeypatch.setattr(artifact, "compiled_dir", lambda: current_compiled)

    def refuse(path):
        raise AssertionError(f"parsed {path} although it is a built-in's exact copy")

    monkeypatch.setattr(loader, "load_file", refuse)
    loaded = load_policies([str(copy)])
    assert loaded == from_source  # every span names the copy
    assert loaded.rules[0].span.file == str(copy)


def test_an_edited_copy_of_a_built_in_is_parsed(tmp_path, monkeypatch, current_compiled):
    copy = tmp_path / "default.yaml"
    copy.write_text(builtin_path("default").read_text() + "\n# edited\n")
    monkeypatch.setattr(artifact, "compiled_dir", lambda: current_compiled)
    parsed = []
    real = loader.load_file
    monkeypatch.setattr(loader, "load_file", lambda p: parsed.append(p) or real(p))
    load_policies([str(copy)])
    assert parsed == [copy]


def test_lint_of_the_built_ins_reads_compiled(monkeypatch, current_compiled):
    monkeypatch.setattr(artifact, "compiled_dir", lambda: current_compiled)
    expected = {n: load_file(builtin_path(n)) for n in BUILTIN_NAMES}

    def refuse(path):
        raise AssertionError(f"parsed {path} although its compiled file is current")

    monkeypatch.setattr(loader, "load_file", refuse)
    for name in BUILTIN_NAMES:
        assert load_policies([name]).rules == expected[name].rules


# --- libyaml, with the Python loader's verdicts ----------------------------------------------


def _shape(node: Node | None, seen: set[int] | None = None) -> list[tuple]:
    """What leashd reads of composed nodes: kind, tag, value, where each starts, and for a
    scalar where it ends (its offsets place carets)."""
    seen = set() if seen is None else seen
    if node is None or id(node) in seen:
        return []
    seen.add(id(node))
    start = (node.start_mark.line, node.start_mark.column, node.start_mark.index)
    if isinstance(node, ScalarNode):
        end = (node.end_mark.line, node.end_mark.column, node.end_mark.index)
        return [("scalar", node.tag, node.value, node.style or None, start, end)]
    out: list[tuple] = [(type(node).__name__, node.tag, start)]
    items = node.value if isinstance(node, SequenceNode) else [x for kv in node.value for x in kv]
    for child in items:
        out.extend(_shape(child, seen))
    return out


def _shipped_yaml() -> list[Path]:
    found = [*ROOT.glob("policies/*.yaml"), *ROOT.glob("policies/tests/*.yaml")]
    found += [*ROOT.glob("docs/**/*.yaml"), *ROOT.glob("tests/**/*.yaml")]
    return sorted(found)


@pytest.mark.parametrize("path", _shipped_yaml(), ids=lambda p: str(p.relative_to(ROOT)))
def test_libyaml_composes_what_leashd_ships_as_the_python_loader_does(path):
    text = path.read_text(encoding="utf-8")
    try:
        python = _shape(yaml.compose(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError:
        pytest.skip("not YAML the Python loader reads (a broken example)")
    assert _shape(yaml_fast.compose(text)) == python
    assert yaml_fast.safe_load(text) == yaml.safe_load(text)


def _python_error(text: str) -> tuple:
    try:
        yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        return (type(exc), exc.problem, exc.context, mark.line, mark.column, str(exc))
    except yaml.YAMLError as exc:
        return (type(exc), str(exc))
    return ()


def _fast_error(text: str) -> tuple:
    try:
        yaml_fast.compose(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        return (type(exc), exc.problem, exc.context, mark.line, mark.column, str(exc))
    except yaml.YAMLError as exc:
        return (type(exc), str(exc))
    return ()


@pytest.mark.parametrize(
    "text",
    [
        "rules:\n  - name: a\n    action:\tdeny\n",  # libyaml takes this tab; Python refuses
        "rules:\n  - name: a\n\taction: deny\n",
        "rules:\n  - name: a: b\n",
        "rules: [a, b\n",
        'rules:\n  - name: "a\n',
        "a: |#\n  x\n",  # a block header's comment without a space: libyaml alone reads it
        "\ufeffrules:\n\ufeff- a\n",
        "a: \x07\n",
    ],
)
def test_errors_are_the_python_loaders(text):
    expected = _python_error(text)
    assert expected, "the case must be one the Python loader refuses"
    assert _fast_error(text) == expected


_ALPHABET = st.sampled_from(
    ["a", "b", ":", " ", "  ", "\n", "- ", "'", '"', "[", "]", "{", "}", ", ", "#", "&x ",
     "*x", "|", ">", "é", "😀", "---", "...", "\\", "1", "~", "\r\n", "\r", "\u2028", "\x85",
     "key: ", "\n  ", "\n    - ", "%", "@", "`", "\t", "\ufeff", "|-", ">+2"]
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.lists(_ALPHABET, min_size=1, max_size=16).map("".join))
def test_libyaml_or_not_the_same_nodes_and_errors(text):
    # Where libyaml's reading is used it gives the Python loader's nodes; where it is not,
    # the Python loader's own error. (Not in the alphabet, left different on purpose: a bare
    # `!` tag, `?` keys, which no policy writes; an empty value at the very end of the text
    # is placed on the next line by libyaml.)
    expected_error = _python_error(text)
    if expected_error:
        assert _fast_error(text) == expected_error
        return
    fast = [s for s in _shape(yaml_fast.compose(text)) if not _empty_at_end(s, text)]
    python = _shape(yaml.compose(text, Loader=yaml.SafeLoader))
    assert fast == [s for s in python if not _empty_at_end(s, text)]


def _empty_at_end(shape: tuple, text: str) -> bool:
    return shape[0] == "scalar" and shape[2] == "" and shape[4][2] == len(text)
