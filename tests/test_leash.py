"""The .leash language: parsed into the same IR as YAML, printed back, errors with their place."""

from __future__ import annotations

import textwrap

import pytest
from click.testing import CliRunner

from leashd.cli import main
from leashd.policy import Evaluator, compile_policy
from leashd.policy.convert import convert
from leashd.policy.errors import PolicyError
from leashd.policy.ir import Policy, merge, without_spans
from leashd.policy.leash_format import format_leash
from leashd.policy.leash_frontend import parse_leash
from leashd.policy.leash_printer import print_policy
from leashd.policy.loader import BUILTIN_NAMES, builtin_path, load_file, load_policies
from leashd.policy.yaml_frontend import parse_yaml

from .conftest import corpus_rows


def same_ir(a: Policy, b: Policy) -> bool:
    """Equal as policies: every rule and setting, wherever each came from."""
    dump = [without_spans(r.model_dump(mode="json")) for r in a.rules]
    return dump == [without_spans(r.model_dump(mode="json")) for r in b.rules] and (
        a.settings.model_dump(exclude_unset=True) == b.settings.model_dump(exclude_unset=True)
    )


def leash(text: str) -> Policy:
    return parse_leash(textwrap.dedent(text), "p.leash")


@pytest.mark.parametrize("name", BUILTIN_NAMES)
def test_every_built_in_prints_to_leash_and_reads_back_the_same(name):
    policy = load_policies([name])
    text = print_policy(policy)
    back = parse_leash(text, f"{name}.leash")
    assert same_ir(policy, back)
    assert print_policy(back) == text  # printing is canonical: a fixed point


def test_a_leash_policy_means_what_the_same_yaml_means():
    written = leash(
        """
        # the team's rules
        default ask
        approval-timeout 120
        let secrets = [".env", "*.pem"]

        deny credential-files paths @secrets except ".env.example" ignore-case
            reason "Credential files are never read"
            match "cat .env"
            match Read {file_path: "/home/dev/project/.env"}
        deny force-push cmd "git push ** --force" flags ["-f", "--force"]
        ask push cmd "git push" reason 'Sends commits to a remote'
        allow status cmd ["git status", "git log|diff"]
        deny drop regex '(?i)\\bdrop\\s+table' input sql ~ '(?i)drop'
        deny unset-env argv ["env", "-u", ["PATH", "HOME"]] opaque false lint-ignore conflict
        """
    )
    yaml_form = parse_yaml(
        textwrap.dedent(
            r"""
            settings: {default_action: require_approval, approval_timeout_seconds: 120}
            rules:
              - name: credential-files
                action: deny
                paths: {match: [".env", "*.pem"], except: [".env.example"], ignore_case: true}
                reason: Credential files are never read
                examples:
                  match: ["cat .env", {tool: Read, input: {file_path: /home/dev/project/.env}}]
              - {name: force-push, action: deny, commands: ["git push ** --force"],
                 flags: ["-f", "--force"]}
              - {name: push, action: require_approval, commands: ["git push"],
                 reason: Sends commits to a remote}
              - {name: status, action: allow, commands: ["git status", "git log|diff"]}
              - {name: drop, action: deny, command_patterns: ['(?i)\bdrop\s+table'],
                 input: {sql: '(?i)drop'}}
              - {name: unset-env, action: deny, argv: [env, -u, [PATH, HOME]], opaque: false,
                 lint_ignore: [conflict]}
            """
        ),
        "p.yaml",
    )
    assert same_ir(written, yaml_form)
    assert written.rules[0].span.line == 7  # spans point into the .leash text


@pytest.mark.parametrize(
    ("text", "line", "col", "fragment"),
    [
        ('deny x cmd "git push\n', 1, 12, "unterminated string"),
        ('deny x cmnd "git"\n', 1, 8, "unknown keyword 'cmnd' (did you mean 'cmd'?)"),
        ("deny x paths @secrets\n", 1, 14, "undefined name @secrets"),
        ('deny x cmd ["git"\n', 1, 18, "the file ends inside a list"),
        ("deny x match Read {a: 1\n", 1, 24, "the file ends inside `{ }`"),
        ("deny x reason\n", 1, 14, "the file ends too early: expected a string"),
        ("deny x regex '('\n", 1, 15, "bad regex"),  # the caret under the `(` itself
        ('deny x cmd "a"\ndeny x cmd "b"\n', 2, 1, "duplicate rule name 'x'"),
        ('deny x paths "a["\n', 1, 14, "bad glob"),
        ('deny x cmd "git $ push"\n', 1, 12, "must be the last token"),
        ("deny x risk extreme\n", 1, 13, "risk must be one of low"),
        ('deny x reason "a" reason "b"\n', 1, 19, "says `reason` twice"),
        ('deny x cmd "a" } \n', 1, 16, "unexpected '}': expected a clause"),
        ('deny x cmd "a" % \n', 1, 16, "unexpected character '%'"),
    ],
)
def test_errors_point_at_the_place_with_the_source_line(text, line, col, fragment):
    with pytest.raises(PolicyError) as info:
        parse_leash(text, "p.leash")
    err = info.value
    errors = getattr(err, "errors", [err])
    first = errors[0]
    assert (first.file, first.line, first.column) == ("p.leash", line, col), str(err)
    assert fragment in str(err)
    assert "^" in str(err)  # the caret under the column


# --- the shipped .leash built-ins, convert and fmt ---------------------------------------------


@pytest.mark.parametrize("name", BUILTIN_NAMES)
def test_the_shipped_leash_built_in_says_what_the_yaml_says(name):
    # CI's proof that both forms of every built-in compile to the same IR.
    leash_file = builtin_path(name).with_suffix(".leash")
    assert same_ir(load_file(leash_file), load_file(builtin_path(name))), (
        f"{leash_file} differs from the YAML: leashd policy convert "
        f"policies/{name}.yaml --to leash -o {leash_file}"
    )
    text = leash_file.read_text()
    assert format_leash(text, str(leash_file)) == text  # and it is formatted
    assert text.startswith("# leashd built-in policy")  # the YAML's comments came along


def test_converting_both_ways_keeps_every_decision(tmp_path, world):
    runner = CliRunner()
    src = builtin_path("permissive")
    leash_path, yaml_path = tmp_path / "p.leash", tmp_path / "p.yaml"
    assert runner.invoke(main, ["policy", "convert", str(src), "--to", "leash", "-o",
                                str(leash_path)]).exit_code == 0  # fmt: skip
    assert runner.invoke(main, ["policy", "convert", str(leash_path), "--to", "yaml", "-o",
                                str(yaml_path)]).exit_code == 0  # fmt: skip
    evaluators = [
        Evaluator(compile_policy(load_file(p)), world) for p in (src, leash_path, yaml_path)
    ]
    rows = [r for n in ("everyday", "adversarial") for r in corpus_rows(n)]
    for r in rows:
        got = {
            (d.action, d.rule_name) for d in (e.evaluate(r["tool"], r["input"]) for e in evaluators)
        }
        assert len(got) == 1, (r, got)


def test_fmt_check_and_rewrite(tmp_path):
    messy = tmp_path / "p.leash"
    messy.write_text(
        "# keep me\nlet s=[\".env\",'*.pem']\n\n\n"
        'deny   secrets   paths @s   reason "no"   # about secrets\nallow ok tools Read\n'
    )
    runner = CliRunner()
    check = runner.invoke(main, ["policy", "fmt", "--check", str(messy)])
    assert check.exit_code == 1 and "not formatted" in check.output
    assert runner.invoke(main, ["policy", "fmt", str(messy)]).exit_code == 0
    text = messy.read_text()
    assert text == (
        "# keep me\n"
        "let s = [\".env\", '*.pem']\n\n"
        "# about secrets\n"
        'deny secrets paths @s reason "no"\n'
        "allow ok tools Read\n"
    )
    assert runner.invoke(main, ["policy", "fmt", "--check", str(messy)]).exit_code == 0
    assert same_ir(
        load_file(messy),
        parse_leash(
            'deny secrets paths [".env", "*.pem"] reason "no"\nallow ok tools Read\n', "x.leash"
        ),
    )


def test_includes_overlay_and_share_names(tmp_path):
    (tmp_path / "base.leash").write_text('let secrets = [".env"]\ndeny creds paths @secrets\n')
    (tmp_path / "team.leash").write_text(
        'include "base.leash"\nask more paths @secrets except ".env.example"\n'
    )
    policy = load_file(tmp_path / "team.leash")
    assert [r.name for r in policy.rules] == ["creds", "more"]
    assert policy.rules[0].span.file.endswith("base.leash")
    (tmp_path / "a.leash").write_text('include "b.leash"\n')
    (tmp_path / "b.leash").write_text('include "a.leash"\n')
    with pytest.raises(PolicyError) as info:
        load_file(tmp_path / "a.leash")
    assert "include cycle: a.leash -> b.leash -> a.leash" in str(info.value)
    (tmp_path / "dup.leash").write_text('include "base.leash"\ndeny creds cmd "rm"\n')
    with pytest.raises(PolicyError) as info:
        load_file(tmp_path / "dup.leash")
    assert "duplicate rule name 'creds'" in str(info.value)
    assert info.value.line == 2


# --- round trips on generated policies ----------------------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from leashd.policy.ir import ArgvPattern, Example, PathCondition, Regex, Rule, Settings  # noqa: E402
from leashd.policy.yaml_printer import print_yaml  # noqa: E402

_words = st.sampled_from(
    ["git", "push", "*", "--force", "-f", "a b", "x|y", "é", "'q'", '"dq"', "allow", "@x", "#c"]
)
_text = st.text(alphabet=st.sampled_from("ab '\"\\#@|é\n\t-*"), min_size=1, max_size=8)
_regex = st.sampled_from(["(?i)drop", r"\bgit\s+push", "a'b", 'x"y', r"\\", "^$", "[a-z]+"])
_token = st.lists(_words, min_size=1, max_size=3, unique=True).map(tuple)


@st.composite
def _argv(draw):
    tokens = draw(st.lists(_token, min_size=1, max_size=4))
    tokens = [t for t in tokens if "$" not in t]
    if not tokens:
        tokens = [("git",)]
    if draw(st.booleans()):
        tokens.append(("$",))
    return ArgvPattern(tokens=tuple(tokens))


def _some(*values: str, unique: bool = False):
    """A non-empty tuple drawn from `values`."""
    return st.lists(st.sampled_from(values), min_size=1, max_size=3, unique=unique).map(tuple)


_regexes = st.lists(_regex.map(lambda p: Regex(pattern=p)), min_size=1, max_size=2).map(tuple)
_paths = st.builds(
    PathCondition,
    globs=st.lists(st.sampled_from(["*.pem", ".env", "~/.ssh", "a b/*"]), max_size=3).map(tuple),
    except_globs=st.lists(st.sampled_from(["x.pem", "*.pub"]), max_size=2).map(tuple),
    access=st.sampled_from(["read", "write", "any"]),
    where=st.sampled_from(["anywhere", "inside", "outside", "temp", "system"]),
    ignore_case=st.booleans(),
    via=st.sampled_from(["any", "redirect"]),
)
_json_values = st.one_of(
    _text, st.integers(), st.booleans(), st.none(), st.lists(st.integers(), max_size=2)
)
_tool_example = st.builds(
    Example,
    tool=st.sampled_from(["Read", "mcp__db__query"]),
    input=st.dictionaries(
        st.sampled_from(["file_path", "sql", "odd key"]), _json_values, max_size=2
    ),
)
_examples = st.lists(
    st.one_of(_text.map(lambda c: Example(tool="Bash", input={"command": c})), _tool_example),
    max_size=2,
).map(tuple)
_inputs = st.dictionaries(
    st.sampled_from(["sql", "url", "odd key"]), _regex.map(lambda p: Regex(pattern=p)),
    min_size=1, max_size=2,
).map(lambda d: tuple(d.items()))  # fmt: skip


@st.composite
def _rule(draw, n: int):
    def opt(strategy):
        return draw(st.one_of(st.none(), strategy))

    return Rule(
        name=draw(st.sampled_from(["r", "deny", "a b", "x-y", "é"])) + str(n),
        action=draw(st.sampled_from(["allow", "deny", "require_approval"])),
        reason=opt(_text),
        description=opt(_text),
        risk_level=draw(st.sampled_from(["low", "medium", "high", "critical"])),
        approver=draw(st.sampled_from(["human", "ai"])),
        tools=opt(_some("Bash", "Read", "mcp__x__*", "odd tool")),
        mcp_servers=opt(_some("github", "db*")),
        command_patterns=opt(_regexes),
        path_patterns=opt(_regexes),
        argv=opt(st.lists(_argv(), min_size=1, max_size=3).map(tuple)),
        flags=opt(_some("--force", "-f", "--x=*")),
        paths=opt(_paths),
        hosts=opt(_some("*.example.com", "localhost")),
        modes=opt(_some("default", "plan", "auto", unique=True)),
        env=opt(_some("LD_*", "PATH")),
        fed_by=opt(_some("curl", "wget")),
        opaque=opt(st.booleans()),
        wrapper=opt(st.booleans()),
        input=opt(_inputs),
        examples_match=draw(_examples),
        examples_not_match=draw(_examples),
        lint_ignore=draw(
            st.lists(st.sampled_from(["L101", "L103", "L401"]), max_size=2, unique=True).map(tuple)
        ),
    )


@st.composite
def _policy(draw):
    n = draw(st.integers(1, 4))
    rules = tuple(draw(_rule(i)) for i in range(n))
    fields = draw(st.fixed_dictionaries({}, optional={
        "default_action": st.sampled_from(["allow", "deny", "require_approval"]),
        "approval_timeout_seconds": st.integers(1, 10_000)}))  # fmt: skip
    return Policy(rules=rules, settings=Settings(**fields))


@settings(max_examples=150, deadline=None)
@given(_policy(), st.booleans())
def test_any_policy_prints_to_leash_and_reads_back_the_same(policy, share):
    text = print_policy(policy, share=share)
    back = parse_leash(text, "gen.leash")
    assert same_ir(policy, back), text
    assert format_leash(text, "gen.leash") == text


def test_convert_names_the_lists_several_rules_write_out():
    # the same globs in two rules, as YAML makes one write them: named once in .leash
    globs = '[".env", "*.pem", "~/.ssh"]'
    policy = parse_yaml(
        f"rules:\n"
        f"  - {{name: secret-reads, tools: [Read], paths: {globs}, action: deny}}\n"
        f"  - {{name: secret-writes, tools: [Write, Edit], paths: {globs}, action: deny}}\n"
        f"  - {{name: secret-greps, tools: [Grep], paths: {globs}, action: require_approval}}\n"
        f"  - {{name: env-only, tools: [Read], paths: ['.env'], action: require_approval}}\n",
        "p.yaml",
    )
    text = print_policy(policy, share=True)
    assert text == (
        'let secret-paths = [".env", "*.pem", "~/.ssh"]\n\n'
        "deny secret-reads tools Read paths @secret-paths\n"
        "deny secret-writes tools [Write, Edit] paths @secret-paths\n"
        "ask secret-greps tools Grep paths @secret-paths\n"
        'ask env-only tools Read paths ".env"\n'
    )
    assert same_ir(parse_leash(text, "p.leash"), policy)


@settings(max_examples=100, deadline=None)
@given(_policy())
def test_any_policy_prints_to_yaml_and_reads_back_the_same(policy):
    back = parse_yaml(print_yaml(policy), "gen.yaml")
    assert same_ir(policy, back)


def test_a_built_in_is_included_by_its_name(tmp_path):
    team = tmp_path / "team.leash"
    team.write_text('include "default"\ninclude "dev-tools"\nask team-rule cmd "terraform apply"\n')
    policy = load_file(team)
    assert same_ir(Policy(rules=policy.rules[:-1], settings=policy.settings), load_policies([]))
    assert policy.rules[-1].name == "team-rule"


def test_the_editor_grammar_knows_every_keyword_of_the_language():
    import json
    import re

    from leashd.policy.leash_frontend import KEYWORDS
    from leashd.resources import data_dir

    root = data_dir("grammar").parent
    grammar = json.loads((root / "docs" / "editors" / "leash.tmLanguage.json").read_text())
    repo = grammar["repository"]
    patterns = [repo["rule-head"]["match"], repo["statement"]["match"], repo["clause"]["match"]]
    for word in KEYWORDS:
        assert any(re.search(p, f" {word} name") for p in patterns), word
    # and every keyword the Lark grammar has is one the front-end knows
    lark = re.sub(r"//[^\n]*", "", (root / "grammar" / "leash.lark").read_text())
    lark_words = set(re.findall(r'"([a-z][a-z-]*)"', lark))
    assert lark_words - {"true", "false", "null"} <= set(KEYWORDS)


_calls = st.lists(
    st.one_of(
        st.lists(_words, min_size=1, max_size=4).map(lambda w: ("Bash", {"command": " ".join(w)})),
        st.sampled_from(["/home/dev/project/.env", "/home/dev/.ssh/id_rsa", "/etc/x.pem"]).map(
            lambda p: ("Read", {"file_path": p})
        ),
        _text.map(lambda q: ("mcp__db__query", {"sql": q})),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=60, deadline=None)
@given(_policy(), _calls)
def test_yaml_to_leash_to_yaml_keeps_every_decision_on_generated_calls(policy, calls):
    from leashd.policy.facts import Context

    first = parse_yaml(print_yaml(policy), "a.yaml")
    via_leash = parse_leash(print_policy(first), "b.leash")
    last = parse_yaml(print_yaml(via_leash), "c.yaml")
    ctx = Context.create(cwd="/home/dev/project", home="/home/dev")
    a = Evaluator(compile_policy(first, verify=False), ctx)
    b = Evaluator(compile_policy(last, verify=False), ctx)
    for tool, tool_input in calls:
        da, db = a.evaluate(tool, tool_input), b.evaluate(tool, tool_input)
        assert (da.action, da.rule_name) == (db.action, db.rule_name), (tool, tool_input)


def test_settings_after_the_last_include_are_kept(tmp_path):
    # `default deny` written after an include, with no rule after it, is the file's last
    # word on settings; dropping it would leave the included, looser default in force.
    team = tmp_path / "team.leash"
    team.write_text('include "dev-tools"\ndefault deny\napproval-timeout 60\n')
    settings = load_file(team).settings
    assert (settings.default_action, settings.approval_timeout_seconds) == ("deny", 60)


def test_fmt_keeps_comments_where_they_were_written():
    rule = textwrap.dedent("""\
        deny creds
            # the globs
            paths [
                ".env", "*.pem",
                # keys
                "id_rsa*", "*.key",
                # nothing after this
            ]
            # why it is denied
            reason "no secrets"

        """)
    # the rule is formatted already: it stays as it is, every comment in its place
    text = rule + 'let hosts = [\n  "a.example", # the first\n  "b.example",\n]\n'
    got = format_leash(text, "p.leash")
    assert got == rule + 'let hosts = [\n    # the first\n    "a.example", "b.example",\n]\n'
    assert format_leash(got, "p.leash") == got


def test_convert_puts_yaml_comments_in_their_places(tmp_path):
    src = tmp_path / "p.yaml"
    src.write_text(
        textwrap.dedent("""\
        # the header
        settings: {default_action: deny}
        rules:
          # above the rule
          - name: creds
            # above the paths
            paths:
              match:
                - ".env"
                # key files
                - "*.pem"
              except:
                # templates are fine
                - ".env.example"
            # above the action, which has no clause of its own
            action: deny
            reason: |
              # not a comment: text of the reason
            examples:
              match:
                - "cat .env"
                # the second example
                - "cat x.pem"
        # the end
        """)
    )
    text = convert(src, "leash")
    assert text == textwrap.dedent("""\
        # the header

        default deny

        # above the rule
        # above the action, which has no clause of its own
        deny creds
            # above the paths
            paths [
                ".env",
                # key files
                "*.pem",
            ]
            # templates are fine
            except ".env.example"
            reason "# not a comment: text of the reason\\n"
            match "cat .env"
            # the second example
            match "cat x.pem"

        # the end
        """)
    assert same_ir(parse_leash(text, "p.leash"), load_file(src))
    assert format_leash(text, "p.leash") == text


_comment = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")), max_size=12)


@settings(max_examples=60, deadline=None)
@given(_policy(), st.data())
def test_fmt_never_loses_or_reorders_a_comment(policy, data):
    lines = print_policy(policy).splitlines()
    written = []
    for i in range(len(lines)):
        if data.draw(st.integers(0, 4)) == 0:  # a comment on a line of its own
            note = "# " + data.draw(_comment).strip()
            lines[i] = note + "\n" + lines[i]
            written.append(note.rstrip())
        if data.draw(st.integers(0, 4)) == 0:  # at the end of a line
            note = "# " + data.draw(_comment).strip()
            lines[i] += "  " + note
            written.append(note.rstrip())
    text = "\n".join(lines) + "\n"
    got = format_leash(text, "p.leash")
    kept = [ln.strip() for ln in got.splitlines() if ln.strip().startswith("#")]
    assert kept == written
    assert same_ir(parse_leash(got, "p.leash"), policy)
    assert format_leash(got, "p.leash") == got


def test_fmt_moves_a_comment_above_only_where_it_has_no_place_inside():
    text = (
        'deny\n# c1\nx\nlet a # c2\n= "s"\nlet b =\n# c3\n[\n"q"]\n'
        'allow y cmd "ls" # c4\n  reason "r"\n'
    )
    assert format_leash(text, "p.leash") == (
        '# c1\ndeny x\n\n# c2\nlet a = "s"\n\nlet b = [\n    # c3\n    "q",\n]\n\n'
        '# c4\nallow y cmd "ls" reason "r"\n'
    )


def test_every_command_that_takes_a_policy_takes_a_leash_file(tmp_path):
    import json

    (tmp_path / "team.leash").write_text(
        'include "default"\n'
        'deny no-push cmd "git push" reason "Pushes go through review"\n'
        'allow status cmd "git status"\n'
        'deny no-frobnicate cmd frobnicate reason "Never"\n'
    )
    policy = str(tmp_path / "team.leash")
    runner = CliRunner()

    full = ["--explain", "full"]  # every rule tried, with what did not hold
    explain = runner.invoke(
        main, ["policy", "explain", *full, "--policy", policy, "--", "frobnicate"]
    )
    assert explain.exit_code == 0 and "team.leash:4:1" in explain.output, explain.output
    # conditions are named in the words the rule was written in
    assert "cmd does not hold" in explain.output and "argv does not" not in explain.output
    calls = json.dumps({"tool": "Bash", "input": {"command": "git push origin main"}})
    ev = runner.invoke(main, ["policy", "eval", "--policy", policy], input=calls + "\n")
    # the default's own push rule comes first (an include is read in place)
    assert ev.exit_code == 0 and json.loads(ev.output)["decision"] == "require_approval"

    lint = runner.invoke(main, ["policy", "lint", policy, "--format", "json"])
    assert lint.exit_code in (0, 1) and "no-push" in lint.output  # shadowed by the default's

    (tmp_path / "suite.yaml").write_text(
        "policies: [team.leash]\n"
        "cases:\n"
        "  - {command: 'git status', expect: allow, rule: read-only-git}\n"
        "  - {command: 'cat .env', expect: deny, rule: credential-files}\n"
    )
    test = runner.invoke(main, ["policy", "test", str(tmp_path / "suite.yaml")])
    assert test.exit_code == 0 and "2 passed" in test.output, test.output

    diff = runner.invoke(main, ["policy", "diff", "default", policy])
    assert diff.exit_code == 0 and "3 added" in diff.output, diff.output


def test_convert_keeps_yaml_anchors_as_names(tmp_path):
    src = tmp_path / "p.yaml"
    src.write_text(
        textwrap.dedent("""\
        rules:
          - name: make-targets
            commands:
              - [make, &targets [test, lint, "build-*"], "$"]
              - [make, *targets, *targets, "$"]
            action: allow
          - name: fetchers
            fed_by: &downloaders [curl, wget]
            tools: [Bash]
            action: deny
          - name: more-fetchers
            fed_by: *downloaders
            commands: ["sh"]
            action: deny
        """)
    )
    text = convert(src, "leash")
    assert text == textwrap.dedent("""\
        let targets = ["test", "lint", "build-*"]
        let downloaders = [curl, wget]

        allow make-targets argv ["make", @targets, "$"] argv ["make", @targets, @targets, "$"]
        deny fetchers tools Bash fed-by @downloaders
        deny more-fetchers cmd "sh" fed-by @downloaders
        """)
    assert same_ir(parse_leash(text, "p.leash"), load_file(src))


# --- what a review found: bad input is an error with its place, never a crash ----------------

_DEEP = "[" * 3000 + "]" * 3000


@pytest.mark.parametrize(
    ("text", "line", "col", "fragment"),
    [
        ('deny a cmd "x" reason "bad \\q"\n', 1, 23, "bad string: invalid \\escape"),
        ('deny a reason "a\tb"\n', 1, 15, "bad string: invalid control character"),
        ('deny a reason "\\ud800"\n', 1, 15, "lone surrogate"),
        (f"deny a tools X match Read {{a: {_DEEP}}}\n", 1, 1, "nested too deeply"),
        ('deny a tools X input f ~ ["a", "b"]\n', 1, 26, "takes one regex"),
    ],
)
def test_bad_strings_and_values_are_errors_in_parse_and_fmt(text, line, col, fragment):
    # fmt lays text out; what it means (one regex per input field) is checked when it loads
    runs = (parse_leash,) if "takes one regex" in fragment else (parse_leash, format_leash)
    for run in runs:
        with pytest.raises(PolicyError) as info:
            run(text, "p.leash")
        err = getattr(info.value, "errors", [info.value])[0]
        assert (err.line, err.column) == (line, col) and fragment in str(info.value)


def test_an_empty_or_comment_only_leash_file_is_refused_but_formats():
    # no policy is no policy, never an empty one (issue 18): tests/test_policy_limits.py
    for text in ("", "# nothing yet\n", "\ufeff# a byte order mark first\n"):
        with pytest.raises(PolicyError, match=r"e\.leash:1:1: the policy is empty"):
            parse_leash(text, "e.leash")
        assert format_leash(text, "e.leash") == text.removeprefix("\ufeff")
    # what convert writes for a YAML policy with settings only reads back
    yaml_text = "# c\nsettings: {default_action: deny}\nrules: []\n"
    back = parse_leash(print_policy(parse_yaml(yaml_text, "e.yaml")), "e.leash")
    assert back.rules == () and back.settings.default_action == "deny"


@pytest.mark.parametrize(
    ("value", "fragment"),
    [(".nan", "nan is no JSON number"), ("2020-01-01", "(date) is no JSON value"),
     ("{1: x}", "key 1 is not a string"), ('"\\ud800"', "lone surrogate")],
)  # fmt: skip
def test_an_example_input_must_be_json(value, fragment):
    text = (
        "rules:\n  - name: a\n    tools: [X]\n    action: deny\n"
        f"    examples: {{not_match: [{{tool: Read, input: {{v: {value}}}}}]}}\n"
    )
    with pytest.raises(PolicyError, match="example input must be JSON") as info:
        parse_yaml(text, "p.yaml")
    assert fragment in str(info.value)


def test_examples_with_any_tool_name_and_any_number_convert_and_read_back(tmp_path):
    src = tmp_path / "p.yaml"
    src.write_text(
        "rules:\n  - name: a\n    tools: [X]\n    action: deny\n    examples:\n"
        "      not_match: [{tool: 'my tool', input: {v: 1.0e+20, w: -2.5e-3}}]\n"
    )
    text = convert(src, "leash")
    assert 'no-match "my tool" {v: 1e+20, w: -0.0025}' in text
    assert same_ir(parse_leash(text, "p.leash"), load_file(src))
    assert format_leash(text, "p.leash") == text


def test_a_comment_above_an_alias_stays_with_its_rule(tmp_path):
    src = tmp_path / "p.yaml"
    src.write_text(
        textwrap.dedent("""\
        rules:
          - name: a
            action: deny
            tools: &t [A, B]
          - name: b
            action: deny
            # about b's tools
            tools: *t
          - name: c
            action: allow
            commands:
              - [make, &mk [x, y], "$"]
              # two targets
              - [make, *mk, *mk, "$"]
          - name: d
            tools: [Read]
            action: allow
        """)
    )
    text = convert(src, "leash")
    assert "deny b\n    # about b's tools\n    tools @t\n" in text
    assert '    # two targets\n    argv ["make", @mk, @mk, "$"]\n' in text
    assert same_ir(parse_leash(text, "p.leash"), load_file(src))


def test_fmt_reports_every_bad_file_and_formats_the_rest(tmp_path):
    good, bad, latin = tmp_path / "good.leash", tmp_path / "bad.leash", tmp_path / "l.leash"
    good.write_text("allow   ok tools Read\n")
    bad.write_text('deny x cmd "a\n')
    latin.write_bytes(b'deny x reason "caf\xe9"\n')
    result = CliRunner().invoke(main, ["policy", "fmt", str(bad), str(latin), str(good)])
    assert result.exit_code == 2
    assert "bad.leash:1:12: unterminated string" in result.output
    assert "l.leash:1:1: not UTF-8" in result.output
    assert good.read_text() == "allow ok tools Read\n"  # formatted all the same


def test_deeply_nested_yaml_is_an_error_not_a_crash():
    text = (
        "rules:\n  - name: a\n    tools: [X]\n    action: deny\n"
        f"    examples: {{match: [{{tool: Read, input: {{a: {_DEEP}}}}}]}}\n"
    )
    with pytest.raises(PolicyError, match="nested too deeply"):
        parse_yaml(text, "p.yaml")


def test_what_a_policy_says_of_itself_survives_conversion_both_ways(tmp_path):
    yaml_text = (
        'name: team\ndescription: "The team\'s rules"\n'
        'rules:\n  - {name: x, commands: ["git push"], action: deny}\n'
    )
    policy = parse_yaml(yaml_text, "team.yaml")
    assert (policy.name, policy.description) == ("team", "The team's rules")
    leash = print_policy(policy)
    assert leash.startswith('policy "team" description "The team\'s rules"\n')
    back = parse_leash(leash, "team.leash")
    assert (back.name, back.description) == ("team", "The team's rules")
    (tmp_path / "team.leash").write_text(leash)
    assert "name: team\ndescription: The team's rules\n" in convert(tmp_path / "team.leash", "yaml")
    # a stack of several files has no one name
    other = parse_yaml(
        "name: other\nrules:\n  - {name: y, commands: [ls], action: allow}\n", "o.yaml"
    )
    assert merge([policy, other]).name is None and merge([policy]).name == "team"
