"""Compiled policies (`compiled/`): current, equal to compiling from source, never trusted stale."""

from __future__ import annotations

import itertools
import json
import shutil

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from leashd.cli import main
from leashd.policy import Evaluator, artifact, compile_policy, load_policies, loader
from leashd.policy.ir import Policy, merge
from leashd.policy.loader import BUILTIN_NAMES, builtin_path, load_compiled, load_file
from leashd.policy.plan import Plan, build_plan, concat

from .conftest import corpus_rows


def test_the_compiled_directory_is_current():
    # What CI checks with `leashd policy compile --check`: a change to a built-in policy or
    # to the compiler without `leashd policy compile` fails here first.
    result = CliRunner().invoke(main, ["policy", "compile", "--check"])
    assert result.exit_code == 0, result.output
    assert "5 compiled policies, all current" in result.output


@pytest.mark.parametrize("name", BUILTIN_NAMES)
def test_a_compiled_policy_is_the_source_compiled(name):
    path = builtin_path(name)
    ready = artifact.load_current(name, path)
    assert ready is not None
    source = load_file(path)
    assert ready.policy == source  # spans point at the real file again
    assert ready.plan == build_plan(source)


def test_the_runtime_loads_built_ins_without_reading_their_yaml(monkeypatch):
    def refuse(path):
        raise AssertionError(f"parsed {path} although its compiled file is current")

    expected = load_policies([])
    monkeypatch.setattr(loader, "load_file", refuse)
    compiled = load_compiled(["default", "dev-tools"])
    assert compiled.policy == expected


def test_compiled_and_source_decide_every_corpus_call_alike(world):
    from_source = Evaluator(compile_policy(load_policies([])), world)
    from_compiled = Evaluator(load_compiled([]), world)
    rows = [r for n in ("everyday", "adversarial") for r in corpus_rows(n)]
    assert len(rows) > 500
    for r in rows:
        a = from_source.evaluate(r["tool"], r["input"])
        b = from_compiled.evaluate(r["tool"], r["input"])
        assert (a.action, a.rule_name) == (b.action, b.rule_name), r


def _copy_builtin(tmp_path, name="default"):
    source = tmp_path / f"{name}.yaml"
    shutil.copy(builtin_path(name), source)
    out = tmp_path / "compiled"
    out.mkdir()
    (out / f"{name}.json").write_text(artifact.render(name, source, load_file(source)))
    return source, out


def test_an_edited_source_makes_its_compiled_file_stale(tmp_path):
    source, out = _copy_builtin(tmp_path)
    assert artifact.load_current("default", source, out) is not None
    source.write_text(source.read_text() + "\n# edited\n")
    assert artifact.load_current("default", source, out) is None


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d.update(compiler="sha256:" + "0" * 64),  # another leashd compiled it
        lambda d: d.update(format=d["format"] + 1),
        lambda d: d.update(policy="strict"),
        lambda d: d["plan"].pop("by_tool"),
        lambda d: d["ir"]["rules"][0].update(action="allow-ish"),
        lambda d: d["plan"].update(size=d["plan"]["size"] + 1),
    ],
)
def test_a_compiled_file_that_does_not_fit_is_not_used(tmp_path, damage):
    source, out = _copy_builtin(tmp_path)
    doc = json.loads((out / "default.json").read_text())
    damage(doc)
    (out / "default.json").write_text(json.dumps(doc))
    assert artifact.load_current("default", source, out) is None


def test_a_truncated_compiled_file_is_not_used(tmp_path):
    source, out = _copy_builtin(tmp_path)
    text = (out / "default.json").read_text()
    (out / "default.json").write_text(text[: len(text) // 2])
    assert artifact.load_current("default", source, out) is None


def test_without_a_current_file_the_runtime_compiles_from_source(tmp_path, monkeypatch):
    monkeypatch.setattr(artifact, "compiled_dir", lambda: tmp_path)  # empty: nothing current
    parsed = []
    real = loader.load_file
    monkeypatch.setattr(loader, "load_file", lambda p: parsed.append(p.name) or real(p))
    compiled = load_compiled(["strict"])
    assert parsed == ["strict.yaml"]
    assert compiled.policy == load_policies(["strict"])


def test_compile_check_names_stale_missing_and_extra_files(tmp_path):
    runner = CliRunner()
    written = runner.invoke(main, ["policy", "compile", "--out", str(tmp_path)])
    assert written.exit_code == 0, written.output
    assert sorted(p.name for p in tmp_path.glob("*.json")) == sorted(
        f"{n}.json" for n in BUILTIN_NAMES
    )
    again = runner.invoke(main, ["policy", "compile", "--out", str(tmp_path)])
    assert "0 changed" in again.output  # canonical: the same sources give the same bytes
    (tmp_path / "strict.json").write_text("{}\n")
    (tmp_path / "permissive.json").unlink()
    # a compiled file of a policy that is no longer built in
    (tmp_path / "old.json").write_text(
        json.dumps({"format": 1, "policy": "old", "source": {}, "compiler": "sha256:0"})
    )
    check = runner.invoke(main, ["policy", "compile", "--check", "--out", str(tmp_path)])
    assert check.exit_code == 1
    assert "strict.json: out of date" in check.output
    assert "permissive.json: missing" in check.output
    assert "old.json: not the compiled form" in check.output
    fixed = runner.invoke(main, ["policy", "compile", "--out", str(tmp_path)])
    assert "removed" in fixed.output and not (tmp_path / "old.json").exists()
    final = runner.invoke(main, ["policy", "compile", "--check", "--out", str(tmp_path)])
    assert final.exit_code == 0


def test_a_policy_whose_examples_fail_gets_no_compiled_file(tmp_path, monkeypatch):
    bad = tmp_path / "default.yaml"
    text = builtin_path("default").read_text()
    first_example = '        - "cat .env"\n'
    bad.write_text(text.replace(first_example, first_example + '        - "true"\n', 1))
    monkeypatch.setattr(loader, "builtin_path", lambda name: bad)
    result = CliRunner().invoke(main, ["policy", "compile", "--out", str(tmp_path / "c")])
    assert result.exit_code == 2
    assert "should match but does not" in result.output
    assert not (tmp_path / "c").exists()


def test_plan_json_round_trip():
    plan = build_plan(load_policies(["autonomous"]))
    assert Plan.from_json(json.loads(json.dumps(plan.to_json()))) == plan


_RULES = load_policies(["default", "dev-tools", "strict"]).rules


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.sampled_from(range(len(_RULES))), min_size=0, max_size=60, unique=True),
    st.lists(st.integers(0, 60), max_size=4),
)
def test_the_plan_of_merged_policies_is_the_concatenation_of_their_plans(picked, cuts):
    rules = [_RULES[i] for i in picked]
    bounds = sorted({0, len(rules), *(min(c, len(rules)) for c in cuts)})
    parts = [Policy(rules=tuple(rules[a:b])) for a, b in itertools.pairwise(bounds)]
    assert concat([build_plan(p) for p in parts]) == build_plan(merge(parts))


def test_a_compiled_overlay_keeps_the_settings_of_policies_before_it(tmp_path):
    # dev-tools sets no settings: loaded from compiled/, it must not reset those of an
    # earlier file (found in review: every field of the dumped settings counted as set).
    first = tmp_path / "team.yaml"
    first.write_text("settings: {default_action: deny, approval_timeout_seconds: 30}\nrules: []\n")
    specs = [str(first), "dev-tools"]
    assert load_compiled(specs).policy.settings == load_policies(specs).settings
    assert load_compiled(specs).policy.settings.default_action == "deny"


def test_compile_out_never_removes_files_it_did_not_write(tmp_path):
    (tmp_path / "package.json").write_text('{"name": "app"}\n')
    result = CliRunner().invoke(main, ["policy", "compile", "--out", str(tmp_path)])
    assert result.exit_code == 0
    assert (tmp_path / "package.json").read_text() == '{"name": "app"}\n'
    check = CliRunner().invoke(main, ["policy", "compile", "--check", "--out", str(tmp_path)])
    assert check.exit_code == 0, check.output


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: p["by_tool"].pop("Read"),  # written by a leashd that knew other tools
        lambda p: p["by_tool"].update(Teleport=[0]),
        lambda p: p["deny"].append(p["size"] + 3),  # a rule the policy does not have
        lambda p: p["argv_wild"].append(["^x", False, p["size"]]),
        lambda p: p["glob_want"].pop(),
    ],
)
def test_a_plan_that_does_not_fit_this_leashd_is_refused(tmp_path, damage):
    source, out = _copy_builtin(tmp_path)
    doc = json.loads((out / "default.json").read_text())
    damage(doc["plan"])
    (out / "default.json").write_text(json.dumps(doc))
    assert artifact.load_current("default", source, out) is None


def test_a_glob_named_like_the_source_file_is_not_relocated(tmp_path):
    # Only spans and `sources` name the file; a glob that happens to equal it stays.
    source = tmp_path / "team.yaml"
    source.write_text("rules:\n  - {name: r, paths: [team.yaml], action: deny}\n")
    out = tmp_path / "c"
    out.mkdir()
    (out / "team.json").write_text(artifact.render("team", source, load_file(source)))
    ready = artifact.load_current("team", source, out)
    assert ready is not None
    assert ready.policy.rules[0].paths.globs == ("team.yaml",)
    assert ready.policy.rules[0].span.file == str(source)
    assert ready.policy == load_file(source)


def test_only_the_compilers_source_makes_compiled_files_stale(tmp_path):
    # compiled/ and the lint cache are derived from the compiler and the shell stage; a change
    # to the daemon, the CLI or the hook must leave them current, one to the compiler must not
    import importlib.util
    from pathlib import Path

    import leashd

    root = tmp_path / "leashd"
    shutil.copytree(
        Path(leashd.__file__).parent, root, ignore=shutil.ignore_patterns("__pycache__")
    )

    def fingerprint() -> str:
        spec = importlib.util.spec_from_file_location("copied_resources", root / "resources.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.source_fingerprint()

    before = fingerprint()
    for outside in ("daemon/engine.py", "cli/__init__.py", "gate/gate.py", "hook/run.py"):
        (root / outside).write_text((root / outside).read_text() + "\n# edited\n")
    assert fingerprint() == before
    (root / "shell" / "parser.py").write_text((root / "shell/parser.py").read_text() + "\n#\n")
    assert fingerprint() != before
