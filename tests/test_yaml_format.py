"""`leashd policy fmt` on YAML policies: one layout, every comment kept, the same meaning."""

from __future__ import annotations

import re
import shutil
import textwrap

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from leashd.policy.errors import PolicyError
from leashd.policy.loader import BUILTIN_NAMES, builtin_path
from leashd.policy.yaml_format import check_formatted, format_file, format_yaml, iter_comments
from leashd.policy.yaml_frontend import parse_yaml
from leashd.policy.yaml_printer import print_yaml

from .test_leash import _policy, same_ir


def fmt(text: str) -> str:
    return format_yaml(textwrap.dedent(text), "p.yaml")


def ruamel_comments(text: str) -> list[str]:
    """Every comment line, as ruamel.yaml's round-trip loader finds them: a second opinion
    on what the formatter's own scanner finds."""
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedBase
    from ruamel.yaml.tokens import CommentToken

    out: list[str] = []
    seen: set[int] = set()

    def tokens(x: object) -> None:
        if isinstance(x, CommentToken):
            if id(x) not in seen:
                seen.add(id(x))
                out.extend(s.strip() for s in x.value.split("\n") if s.strip().startswith("#"))
        elif isinstance(x, list | tuple):
            for y in x:
                tokens(y)
        elif isinstance(x, dict):
            for y in x.values():
                tokens(y)

    def walk(node: object) -> None:
        if isinstance(node, CommentedBase):
            tokens(node.ca.comment)
            tokens(node.ca.items)
            tokens(node.ca.end)
            for v in node.values() if isinstance(node, dict) else node:  # type: ignore[attr-defined]
                walk(v)

    walk(YAML().load(text))
    return sorted(out)


# --- the layout ------------------------------------------------------------------------------


def test_keys_go_in_the_order_of_the_format_and_comments_go_with_them():
    before = """\
        # team policy
        rules:
          - action: deny   # refused
            # what it stops
            commands: ["git push --force", 'git push -f']
            name: force-push
            examples:
              not_match: ["git push"]
              match: ["git push --force origin main"]
            reason: "Rewrites shared history"
        name: team
        version: "1"
        settings: {approval_timeout_seconds: 60, default_action: require_approval}
        """
    assert fmt(before) == textwrap.dedent("""\
        # team policy
        version: "1"
        name: team
        settings:
          default_action: require_approval
          approval_timeout_seconds: 60

        rules:
          - name: force-push
            reason: Rewrites shared history
            # what it stops
            commands: [git push --force, git push -f]
            action: deny  # refused
            examples:
              match: [git push --force origin main]
              not_match: [git push]
        """)


def test_a_list_goes_on_one_line_when_it_fits_and_holds_no_comment():
    long = [f"command-number-{i}" for i in range(8)]
    text = fmt(f"""\
        rules:
          - name: a
            commands:
              - ls
              - pwd
            tools: {long}
            flags: [--force,  # the long one
                    -f]
            action: allow
        """)
    assert text == textwrap.dedent("""\
        rules:
          - name: a
            tools:
              - command-number-0
              - command-number-1
              - command-number-2
              - command-number-3
              - command-number-4
              - command-number-5
              - command-number-6
              - command-number-7
            commands: [ls, pwd]
            flags:
              - --force  # the long one
              - -f
            action: allow
        """)
    assert max(len(line) for line in text.splitlines()) <= 100


def test_strings_are_quoted_only_where_they_need_to_be():
    text = fmt(r"""
        version: '1'
        rules:
          - name: "plain words"
            description: 'it''s fine'
            commands: ["*.pem", "a: b", 'x #y', "yes", "", "tab\there", "git push"]
            command_patterns: ["\\bgit\\s+push", 'say "hi"']
            action: "deny"
        """)
    assert text == textwrap.dedent(r"""
        version: "1"

        rules:
          - name: plain words
            description: it's fine
            command_patterns: [\bgit\s+push, say "hi"]
            commands: ["*.pem", "a: b", "x #y", "yes", "", "tab\there", git push]
            action: deny
        """).lstrip("\n")


def test_what_is_not_a_string_keeps_its_text():
    text = fmt("""\
        settings: {approval_timeout_seconds: 0x1F4}
        rules:
          - {name: a, opaque: yes, wrapper: False, action: deny, description: ~}
        """)
    assert "approval_timeout_seconds: 0x1F4" in text
    assert "opaque: yes" in text and "wrapper: False" in text and "description: ~" in text


def test_a_block_string_stays_a_block_and_other_multi_line_strings_one_line():
    text = fmt("""\
        rules:
          - name: a
            description: |
              first line
              # not a comment: part of the text
            reason: "two\\nlines"
            action: deny
        """)
    assert text == textwrap.dedent("""\
        rules:
          - name: a
            description: |
              first line
              # not a comment: part of the text
            reason: "two\\nlines"
            action: deny
        """)


def test_blank_lines_between_rules_and_around_comments_only():
    text = fmt("""\
        version: "1"


        rules:
          - name: a

            action: allow
          # --- section ---

          - name: b
            action: deny
        # the end
        """)
    assert text == textwrap.dedent("""\
        version: "1"

        rules:
          - name: a
            action: allow

          # --- section ---

          - name: b
            action: deny
        # the end
        """)


def test_a_comment_indented_into_a_block_stays_at_its_end():
    text = fmt("""\
        rules:
          - name: a
            action: deny
            # lint_ignore: [L101]
          - name: b
            paths:
              match: [.env]
              # except: [.env.example]
            action: deny
        """)
    assert text == textwrap.dedent("""\
        rules:
          - name: a
            action: deny
            # lint_ignore: [L101]

          - name: b
            paths:
              match: [.env]
              # except: [.env.example]
            action: deny
        """)


def test_anchors_and_aliases_stay_and_keys_keep_their_order_when_an_alias_needs_it():
    text = fmt("""\
        rules:
          - name: a
            commands: &tests [pytest, npm test]
            action: allow
          - action: deny
            tools: [Bash]
            name: b
            commands: *tests
          - examples: {match: &m [make test]}
            commands: *m
            name: c
            action: allow
        """)
    assert text == textwrap.dedent("""\
        rules:
          - name: a
            commands: &tests [pytest, npm test]
            action: allow

          - name: b
            tools: [Bash]
            commands: *tests
            action: deny

          - examples:
              match: &m [make test]
            commands: *m
            name: c
            action: allow
        """)


def test_formatting_is_a_fixed_point_on_odd_but_valid_yaml():
    odd = """\
        %YAML 1.1
        ---
        # head
        rules: [
          {name: a,   # first
           action: allow},
          # between
          {name: b, action: deny, tools: [Read,
            Write]}   # after b
        ]
        ...
        """
    once = fmt(odd)
    assert format_yaml(once, "p.yaml") == once
    assert sorted(iter_comments(once)) == sorted(iter_comments(textwrap.dedent(odd)))
    assert same_ir(parse_yaml(textwrap.dedent(odd), "p.yaml"), parse_yaml(once, "p.yaml"))


def test_what_cannot_be_laid_out_is_refused_with_its_place():
    with pytest.raises(PolicyError) as bad:
        fmt("rules:\n  - name: a\n   action: deny\n")
    assert bad.value.line == 3
    with pytest.raises(PolicyError, match="one YAML document"):
        fmt("name: a\n---\nname: b\n")
    with pytest.raises(PolicyError, match="keys that are strings"):
        fmt("? [a, b]\n: c\n")


def test_crlf_and_a_byte_order_mark_are_not_the_canonical_form():
    text = "\ufeffname: a\r\nrules: []\r\n"
    assert format_yaml(text, "p.yaml") == "name: a\n\nrules: []\n"
    assert not check_formatted(text, "p.yaml")
    assert check_formatted("name: a\n\nrules: []\n", "p.yaml")


def test_format_file_reads_yaml_files_only(tmp_path):
    policy = tmp_path / "team.yml"
    policy.write_text("rules:\n- {action: deny, name: a}\n")
    assert format_file(policy) == (
        "rules:\n- {action: deny, name: a}\n",
        "rules:\n  - name: a\n    action: deny\n",
    )
    with pytest.raises(PolicyError, match="not a YAML file"):
        format_file(tmp_path / "team.leash")
    with pytest.raises(PolicyError, match="cannot read"):
        format_file(tmp_path / "missing.yaml")


def test_a_file_that_is_not_a_policy_keeps_its_key_order():
    text = fmt("""\
        cases:
          - expect: deny
            call: {tool: Bash, input: {command: ls}}
        policies: [default]
        """)
    assert text == textwrap.dedent("""\
        cases:
          - expect: deny
            call:
              tool: Bash
              input:
                command: ls
        policies: [default]
        """)


# --- the built-in policies -------------------------------------------------------------------


@pytest.mark.parametrize("name", BUILTIN_NAMES)
def test_a_built_in_policy_formats_to_the_same_policy_with_every_comment(name, tmp_path):
    copy = tmp_path / f"{name}.yaml"
    shutil.copyfile(builtin_path(name), copy)
    text, formatted = format_file(copy)
    assert same_ir(parse_yaml(text, copy.name), parse_yaml(formatted, copy.name))
    assert yaml.safe_load(formatted) == yaml.safe_load(text)
    comments = ruamel_comments(text)
    assert comments and ruamel_comments(formatted) == comments
    assert sorted(iter_comments(formatted)) == comments
    assert format_yaml(formatted, copy.name) == formatted
    flow = re.compile(r"\s*(- )?([\w-]+: )?[\[{]")  # a line holding a list or a mapping
    assert all(len(line) <= 100 or not flow.match(line) for line in formatted.splitlines())


# --- any policy ------------------------------------------------------------------------------

_MARK = re.compile(r"# c\d+\b")


@st.composite
def _written(draw):
    """A generated policy written as YAML in one of many layouts (key orders, flow or block,
    indentation, quoting), with comments on lines of their own and after values."""
    policy = draw(_policy())
    doc = yaml.safe_load(print_yaml(policy))
    for rule in doc["rules"]:
        keys = draw(st.permutations(list(rule)))
        rule_items = [(k, rule[k]) for k in keys]
        rule.clear()
        rule.update(rule_items)
    text = yaml.safe_dump(
        doc,
        sort_keys=False,
        allow_unicode=draw(st.booleans()),
        default_flow_style=draw(st.sampled_from([False, None])),
        indent=draw(st.sampled_from([2, 4])),
        width=10**6,
        default_style=draw(st.sampled_from([None, None, '"'])),
    )
    lines = text.rstrip("\n").split("\n")
    marks = []
    for n in draw(st.sets(st.integers(0, len(lines) - 1), max_size=4)):  # after a value
        marks.append(f"# c{len(marks)}")
        lines[n] += " " * draw(st.integers(1, 3)) + marks[-1]
    for n in sorted(draw(st.lists(st.integers(0, len(lines)), max_size=6)), reverse=True):
        marks.append(f"# c{len(marks)}")  # on a line of its own, maybe after a blank line
        blank = [""] if draw(st.booleans()) else []
        lines[n:n] = [*blank, " " * draw(st.integers(0, 10)) + marks[-1]]
    commented = "\n".join(lines) + "\n"
    try:
        same = yaml.safe_load(commented) == doc
    except yaml.YAMLError:
        same = False
    assume(same)  # every comment landed where YAML reads it as one
    return policy, commented, sorted(marks)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_written())
def test_any_policy_in_any_layout_formats_to_the_same_policy_keeping_every_comment(written):
    policy, text, marks = written
    formatted = format_yaml(text, "gen.yaml")
    assert format_yaml(formatted, "gen.yaml") == formatted  # formatted text stays as it is
    assert sorted(_MARK.findall(formatted)) == marks  # each comment once...
    assert sorted(c for c in iter_comments(formatted) if _MARK.fullmatch(c)) == marks  # as one
    assert yaml.safe_load(formatted) == yaml.safe_load(text)
    assert same_ir(parse_yaml(formatted, "gen.yaml"), policy)
    assert check_formatted(formatted, "gen.yaml")


_tricky = st.text(alphabet=st.sampled_from("ab :#-[]{},'\"\\\n\té!&*|>%@`?~"), max_size=8)
_scalars = st.one_of(
    _tricky,
    st.sampled_from(["yes", "on", "null", "~", "1", "1.5", "0x1F", "1:30", "2001-12-14", "<<"]),
    st.integers(-5, 5),
    st.booleans(),
    st.none(),
)
_data = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(alphabet="abkey _-:#é", min_size=1, max_size=5), inner, max_size=4),
    ),
    max_leaves=20,
)


@st.composite
def _any_yaml(draw):
    """Any YAML data in any of PyYAML's layouts and quoting styles, with comments."""
    data = draw(st.dictionaries(st.sampled_from(["x", "y", "z", "rules z"]), _data, min_size=1))
    if "x" in data and draw(st.booleans()):
        data["shared"] = data["x"]  # written once with an anchor, then as an alias
    text = yaml.safe_dump(
        data,
        sort_keys=False,
        allow_unicode=draw(st.booleans()),
        default_flow_style=draw(st.sampled_from([False, None, True])),
        width=draw(st.sampled_from([20, 10**6])),
        default_style=draw(st.sampled_from([None, '"', "'", "|"])),
    )
    lines = text.rstrip("\n").split("\n")
    marks = []
    for n in draw(st.sets(st.integers(0, len(lines) - 1), max_size=3)):
        marks.append(f"# c{len(marks)}")
        lines[n] += " " * draw(st.integers(1, 3)) + marks[-1]
    for n in sorted(draw(st.lists(st.integers(0, len(lines)), max_size=4)), reverse=True):
        marks.append(f"# c{len(marks)}")
        lines[n:n] = [" " * draw(st.integers(0, 6)) + marks[-1]]
    commented = "\n".join(lines) + "\n"
    try:  # every comment landed where YAML reads it as one (`!!null |-` ignores its text)
        same = _tree(yaml.compose(commented, Loader=yaml.SafeLoader)) == _tree(
            yaml.compose(text, Loader=yaml.SafeLoader)
        )
    except yaml.YAMLError:
        same = False
    assume(same)
    return data, commented, sorted(marks)


def _tree(node: yaml.Node | None) -> object:
    if isinstance(node, yaml.ScalarNode):
        return (node.tag, node.value)
    if isinstance(node, yaml.SequenceNode):
        return (node.tag, [_tree(n) for n in node.value])
    if isinstance(node, yaml.MappingNode):
        return (node.tag, [(_tree(k), _tree(v)) for k, v in node.value])
    return None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_any_yaml())
def test_any_yaml_formats_to_the_same_data_keeping_every_comment(written):
    data, text, marks = written
    formatted = format_yaml(text, "any.yaml")
    assert yaml.safe_load(formatted) == data
    assert format_yaml(formatted, "any.yaml") == formatted
    assert sorted(c for c in iter_comments(formatted) if _MARK.fullmatch(c)) == marks
    assert sorted(_MARK.findall(formatted)) == marks
