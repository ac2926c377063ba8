"""Who may approve (issue 22, item 2): a rule that asks may name `approver: ai` (YAML) or
`approver ai` (.leash). Both languages give the same IR; the field survives printing,
formatting, converting, compiling to compiled/*.json and `policy diff`; `explain` says who
answers. The field means something on asking rules only: on an allow or a deny the policy
still loads (lint warns), and a deny never goes to any approver."""

from __future__ import annotations

import json
import textwrap

import pytest
from click.testing import CliRunner

from leashd.cli import main
from leashd.policy import Evaluator, artifact, compile_policy
from leashd.policy.decision import ai_withheld
from leashd.policy.diff import PolicyDiff, rule_changes
from leashd.policy.errors import PolicyError
from leashd.policy.facts import Context
from leashd.policy.ir import Policy
from leashd.policy.leash_format import format_leash
from leashd.policy.leash_frontend import parse_leash
from leashd.policy.leash_printer import print_policy
from leashd.policy.loader import load_file
from leashd.policy.schema import policy_schema
from leashd.policy.yaml_format import format_yaml
from leashd.policy.yaml_frontend import parse_yaml
from leashd.policy.yaml_printer import print_yaml

from .test_leash import same_ir

WORLD = ("--cwd", "/home/dev/project", "--home", "/home/dev")

TEAM_YAML = """\
rules:
  - name: feature-push
    reason: Pushes a feature branch
    commands: [git push origin HEAD:feature/*]
    action: require_approval
    approver: ai
  - name: pushes
    reason: Sends commits to a remote
    commands: [git push]
    action: require_approval
  - name: project-reads
    tools: [Read]
    action: require_approval
    approver: ai
  - name: evals
    commands: [eval]
    action: allow
    approver: ai
  - name: no-sudo
    commands: [sudo]
    action: deny
    approver: ai
"""

TEAM_LEASH = """\
ask feature-push cmd "git push origin HEAD:feature/*" approver ai reason "Pushes a feature branch"
ask pushes cmd "git push" reason "Sends commits to a remote"
ask project-reads tools Read approver ai
allow evals cmd "eval" approver ai
deny no-sudo cmd "sudo" approver ai
"""


def yaml_policy() -> Policy:
    return parse_yaml(TEAM_YAML, "team.yaml")


def evaluator(policy: Policy) -> Evaluator:
    ctx = Context.create(cwd="/home/dev/project", home="/home/dev")
    return Evaluator(compile_policy(policy, verify=False), ctx)


def approvers(policy: Policy) -> dict[str, str]:
    return {r.name: r.approver for r in policy.rules}


# --- both languages, one IR ------------------------------------------------------------------


def test_yaml_and_leash_give_the_same_ir():
    a, b = yaml_policy(), parse_leash(TEAM_LEASH, "team.leash")
    assert same_ir(a, b)
    assert approvers(a) == {
        "feature-push": "ai",
        "pushes": "human",  # left out: a human answers
        "project-reads": "ai",
        "evals": "ai",
        "no-sudo": "ai",
    }


@pytest.mark.parametrize("approver", ["human", "ai"])
def test_either_value_reads_the_same_in_both_languages(approver):
    y = parse_yaml(
        f"rules:\n  - {{name: a, commands: [x], action: require_approval, approver: {approver}}}\n"
    )
    le = parse_leash(f'ask a cmd "x" approver {approver}\n')
    assert y.rules[0].approver == le.rules[0].approver == approver
    assert same_ir(y, le)


def test_an_absent_approver_is_a_human():
    policy = parse_leash('ask a cmd "x"\n')
    assert policy.rules[0].approver == "human"
    assert "approver" not in policy.rules[0].model_fields_set


# --- printing, formatting, converting --------------------------------------------------------


def test_the_leash_printer_writes_the_clause_after_the_conditions():
    text = print_policy(yaml_policy())
    assert text.splitlines()[0] == (
        'ask feature-push cmd "git push origin HEAD:feature/*" approver ai'
        ' reason "Pushes a feature branch"'
    )
    assert 'ask pushes cmd "git push" reason' in text  # a human's: nothing written
    assert text == TEAM_LEASH


def test_yaml_to_leash_to_yaml_keeps_the_approver():
    first = yaml_policy()
    via_leash = parse_leash(print_policy(first), "b.leash")
    last = parse_yaml(print_yaml(via_leash), "c.yaml")
    assert same_ir(first, via_leash) and same_ir(first, last)
    assert approvers(last) == approvers(first)


def test_the_yaml_printer_puts_the_approver_next_to_the_action():
    printed = print_yaml(yaml_policy())
    assert "  action: require_approval\n  approver: ai\n" in printed
    assert printed.count("approver:") == 4


def test_fmt_keeps_the_clause_where_it_was_written_and_is_idempotent():
    text = 'ask  a  reason "r"\n    approver ai cmd "x"\nask b cmd "y" approver human\n'
    once = format_leash(text, "p.leash")
    assert once == 'ask a reason "r" approver ai cmd "x"\nask b cmd "y" approver human\n'
    assert format_leash(once, "p.leash") == once
    assert same_ir(parse_leash(once, "p.leash"), parse_leash(text, "p.leash"))


def test_yaml_fmt_orders_approver_after_action():
    text = textwrap.dedent("""\
        rules:
          - approver: ai  # the AI may answer
            action: require_approval
            commands: [git push]
            name: push
        """)
    formatted = format_yaml(text, "p.yaml")
    assert formatted == textwrap.dedent("""\
        rules:
          - name: push
            commands: [git push]
            action: require_approval
            approver: ai  # the AI may answer
        """)
    assert format_yaml(formatted, "p.yaml") == formatted
    assert parse_yaml(formatted).rules[0].approver == "ai"


def test_convert_both_ways_on_the_command_line(tmp_path):
    (tmp_path / "team.yaml").write_text(TEAM_YAML)
    runner = CliRunner()
    to_leash = runner.invoke(
        main, ["policy", "convert", str(tmp_path / "team.yaml"), "--to", "leash"]
    )
    assert to_leash.exit_code == 0, to_leash.output
    assert to_leash.output == TEAM_LEASH
    (tmp_path / "team.leash").write_text(to_leash.output)
    to_yaml = runner.invoke(
        main, ["policy", "convert", str(tmp_path / "team.leash"), "--to", "yaml"]
    )
    assert to_yaml.exit_code == 0, to_yaml.output
    assert same_ir(parse_yaml(to_yaml.output, "back.yaml"), yaml_policy())


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "column", "message"),
    [
        ("AI", 15, "bad approver 'AI' in rule 'a': use one of human, ai (did you mean 'ai'?)"),
        ("humna", 15, "bad approver 'humna' in rule 'a': use one of human, ai (did you mean"),
        ("robot", 15, "bad approver 'robot' in rule 'a': use one of human, ai"),
        ("[ai]", 15, "`approver` takes human or ai, not a list"),
        ("true", 15, "`approver` takes human or ai, not true/false"),
        ("", 14, "`approver` takes human or ai, not an empty value"),
    ],
)
def test_a_bad_value_in_yaml_is_an_error_at_its_place(value, column, message):
    text = f"rules:\n  - name: a\n    action: require_approval\n    approver: {value}\n"
    with pytest.raises(PolicyError) as info:
        parse_yaml(text, "p.yaml")
    err = info.value
    assert (err.line, err.column) == (4, column)
    assert message in str(err)
    assert str(err).startswith(f"p.yaml:4:{column}: ")
    assert "^" in str(err)  # the line, and a caret under the value


def test_robot_gets_no_guess():
    with pytest.raises(PolicyError) as info:
        parse_yaml("rules:\n  - {name: a, action: require_approval, approver: robot}\n")
    assert "did you mean" not in str(info.value)


def test_a_misspelt_key_is_told_the_right_one():
    with pytest.raises(PolicyError) as info:
        parse_yaml("rules:\n  - name: a\n    action: require_approval\n    aprover: ai\n", "p.yaml")
    assert "p.yaml:4:5: unknown key 'aprover' in rule 'a' (did you mean 'approver'?)" in str(
        info.value
    )


def test_a_misspelt_action_is_told_the_right_one_too():
    with pytest.raises(PolicyError) as info:
        parse_yaml("rules:\n  - {name: a, action: alow}\n", "p.yaml")
    assert "bad action 'alow' in rule 'a'" in str(info.value)
    assert "(did you mean 'allow'?)" in str(info.value)


@pytest.mark.parametrize(
    ("text", "line", "column", "message"),
    [
        ('ask a cmd "x" approver AI\n', 1, 24, "bad approver 'AI' in rule 'a': use one of"),
        ('ask a cmd "x" approver AI\n', 1, 24, "(did you mean 'ai'?)"),
        ('ask a cmd "x"\n    approver robot\n', 2, 14, "bad approver 'robot'"),
        ('ask a cmd "x" aprover ai\n', 1, 15, "unknown keyword 'aprover' (did you mean"),
        ('ask a cmd "x" approver ai approver human\n', 1, 27, "says `approver` twice"),
        ('ask a cmd "x" approver\n', 1, 23, "the file ends too early: expected a word"),
    ],
)
def test_a_bad_clause_in_leash_is_an_error_at_its_place(text, line, column, message):
    with pytest.raises(PolicyError) as info:
        parse_leash(text, "p.leash")
    err = info.value
    assert (err.line, err.column) == (line, column), str(err)
    assert message in str(err)
    assert "^" in str(err)


def test_approver_is_a_keyword_so_it_is_quoted_as_a_value():
    policy = parse_yaml("rules:\n  - {name: approver, tools: [approver], action: allow}\n")
    text = print_policy(policy)
    assert text == 'allow "approver" tools "approver"\n'
    assert same_ir(parse_leash(text), policy)


# --- allow and deny: loaded, never routed ----------------------------------------------------


def test_approver_on_an_allow_or_a_deny_loads():
    policy = parse_leash(TEAM_LEASH, "team.leash")
    assert policy.rule("no-sudo").action == "deny"
    assert policy.rule("no-sudo").approver == "ai"
    assert policy.rule("evals").approver == "ai"


def test_a_deny_never_reaches_an_approver_even_when_its_rule_names_one():
    d = evaluator(yaml_policy()).evaluate("Bash", {"command": "sudo ls"})
    assert (d.action, d.rule_name) == ("deny", "no-sudo")
    assert d.rule.approver == "ai"  # what the policy says (lint warns about it) ...
    assert d.approver is None  # ... and what it means: nobody is asked
    assert d.units[0].approver is None


def test_the_deciding_rule_carries_the_approver():
    d = evaluator(yaml_policy()).evaluate("Bash", {"command": "git push origin HEAD:feature/x"})
    assert (d.action, d.rule_name) == ("require_approval", "feature-push")
    assert d.rule.approver == "ai"
    assert d.approver == "ai"


@pytest.mark.parametrize(
    ("tool", "tool_input", "approver"),
    [
        ("Bash", {"command": "git push origin HEAD:feature/x"}, "ai"),
        ("Bash", {"command": "git push origin main"}, "human"),  # rule `pushes`: no approver
        # two units ask: the AI only if both are its
        ("Bash", {"command": "git push origin HEAD:feature/x && git push origin main"}, "human"),
        ("Read", {"file_path": "/home/dev/project/src/app.py"}, "ai"),
        # outside the approved directories: a human's, whatever the rule says
        ("Read", {"file_path": "/etc/hosts"}, "human"),
        # an allow turned into a question (opaque): a human's
        ("Bash", {"command": 'eval "$x"'}, "human"),
        ("Bash", {"command": "ls"}, "human"),  # no rule: the default action asks a human
    ],
)
def test_who_answers_a_call(tool, tool_input, approver):
    d = evaluator(yaml_policy()).evaluate(tool, tool_input)
    assert d.action == "require_approval"
    assert d.approver == approver


def test_the_os_sandbox_asking_about_a_host_is_a_humans_question():
    policy = parse_leash("ask hosts tools SandboxNetworkAccess approver ai\n", "p.leash")
    d = evaluator(policy).evaluate("SandboxNetworkAccess", {"host": "example.com", "port": 443})
    assert (d.action, d.rule_name) == ("require_approval", "hosts")
    assert d.approver == "human"
    assert "only a human answers" in (ai_withheld(d.units[0]) or "")


# --- compiled files --------------------------------------------------------------------------


def test_a_compiled_file_carries_the_approver(tmp_path):
    source = tmp_path / "team.yaml"
    source.write_text(TEAM_YAML)
    policy = load_file(source)
    out = tmp_path / "compiled"
    out.mkdir()
    text = artifact.render("team", source, policy)
    (out / "team.json").write_text(text)
    doc = json.loads(text)
    assert doc["format"] == artifact.FORMAT == 2
    by_name = {r["name"]: r for r in doc["ir"]["rules"]}
    assert by_name["feature-push"]["approver"] == "ai"
    assert "approver" not in by_name["pushes"]  # left out, as the source left it out
    ready = artifact.load_current("team", source, out)
    assert ready is not None
    assert ready.policy == policy
    assert approvers(ready.policy) == approvers(policy)


def test_a_compiled_file_of_the_format_before_approvers_is_not_trusted(tmp_path):
    source = tmp_path / "team.yaml"
    source.write_text(TEAM_YAML)
    out = tmp_path / "compiled"
    out.mkdir()
    doc = json.loads(artifact.render("team", source, load_file(source)))
    doc["format"] = 1  # written before rules had approvers: it would read as all human
    (out / "team.json").write_text(json.dumps(doc))
    assert artifact.load_current("team", source, out) is None


# --- diff ------------------------------------------------------------------------------------


def test_diff_names_a_changed_approver():
    old = parse_leash('ask push cmd "git push"\nask pull cmd "git pull" approver ai\n', "a.leash")
    new = parse_leash('ask push cmd "git push" approver ai\nask pull cmd "git pull"\n', "b.leash")
    out = PolicyDiff()
    rule_changes(old, new, out)
    assert [(c.name, c.fields) for c in out.changed] == [
        ("push", ("approver",)),
        ("pull", ("approver",)),
    ]


def test_diff_on_the_command_line_names_a_changed_approver(tmp_path):
    (tmp_path / "old.leash").write_text('ask push cmd "git push"\n')
    (tmp_path / "new.leash").write_text('ask push cmd "git push" approver ai\n')
    (tmp_path / "calls.jsonl").write_text(
        json.dumps({"tool": "Bash", "input": {"command": "git push origin x"}}) + "\n"
    )
    args = [str(tmp_path / "old.leash"), str(tmp_path / "new.leash")]
    args += ["--calls", str(tmp_path / "calls.jsonl")]
    r = CliRunner().invoke(main, ["policy", "diff", *args])
    assert r.exit_code == 0, r.output
    assert "~ push (require_approval)" in r.output and ": approver" in r.output
    j = CliRunner().invoke(main, ["policy", "diff", *args, "--format", "json"])
    changed = json.loads(j.output)["rules"]["changed"]
    assert [(c["rule"], c["fields"]) for c in changed] == [("push", ["approver"])]


# --- explain ---------------------------------------------------------------------------------


def explain(policy: str, *args: str) -> str:
    r = CliRunner().invoke(main, ["policy", "explain", "--policy", policy, *WORLD, *args])
    assert r.exit_code == 0, r.output
    return r.output


@pytest.fixture
def team(tmp_path) -> str:
    path = tmp_path / "team.leash"
    path.write_text(TEAM_LEASH)
    return str(path)


def test_explain_says_the_ai_answers(team):
    out = explain(team, "--", "git push origin HEAD:feature/login")
    assert out.splitlines() == [
        "unit 1: git push origin HEAD:feature/login",
        f"  require_approval (ai)  feature-push  {team}:1:1",
        "                         Pushes a feature branch",
        "",
        "decision: require_approval (ai) by feature-push",
    ]


def test_explain_says_a_human_answers_when_another_unit_asks_one(team):
    out = explain(team, "--", "git push origin HEAD:feature/x && git push origin main")
    assert "  require_approval (ai)  feature-push" in out
    assert "  require_approval       pushes" in out
    assert out.splitlines()[-1] == "decision: require_approval (human) by feature-push (unit 1)"


def test_explain_says_why_a_human_answers_an_ai_rule(team):
    out = explain(team, "--tool", "Read", "--input", '{"file_path": "/etc/hosts"}')
    assert "require_approval (human)  project-reads" in out
    assert "a human answers: /etc/hosts is not inside the approved directories" in out


def test_explain_is_unchanged_where_no_rule_names_the_ai(team):
    out = explain(team, "--", "git push origin main")
    assert "(ai)" not in out and "(human)" not in out
    assert out.splitlines()[-1] == "decision: require_approval by pushes"


def test_explain_json_carries_the_approver(team):
    out = json.loads(explain(team, "--format", "json", "--", "git push origin HEAD:feature/x"))
    assert out["approver"] == "ai"
    assert [u["approver"] for u in out["units"]] == ["ai"]
    mixed = json.loads(
        explain(team, "--format", "json", "--", "git push origin HEAD:feature/x && sudo ls")
    )
    assert mixed["decision"] == "deny" and mixed["approver"] is None
    # the push (the AI's), sudo (denied: nobody's), ls under sudo (no rule: a human's)
    assert [u["approver"] for u in mixed["units"]] == ["ai", None, "human"]
    outside = json.loads(
        explain(team, "--format", "json", "--tool", "Read", "--input", '{"file_path": "/etc/x"}')
    )
    assert outside["approver"] == "human"
    assert "not inside the approved directories" in outside["units"][0]["approver_withheld"]


# --- schema ----------------------------------------------------------------------------------


def test_the_schema_knows_the_approver():
    import jsonschema

    validator = jsonschema.Draft202012Validator(policy_schema())
    rule = {"name": "a", "commands": ["x"], "action": "require_approval"}
    assert validator.is_valid({"rules": [{**rule, "approver": "ai"}]})
    assert validator.is_valid({"rules": [{**rule, "approver": "human"}]})
    assert not validator.is_valid({"rules": [{**rule, "approver": "robot"}]})
