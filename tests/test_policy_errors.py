"""YAML policy errors as ruff shows them: FILE:LINE:COL, the source line, a caret under the
column, leashd's words for PyYAML's problems, and every error of a file at once."""

import json
import re
import subprocess
import sys

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from leashd.policy import PolicyError, parse_yaml
from leashd.policy.loader import load_file, load_policies
from leashd.policy.yaml_errors import scalar_offsets, syntax_error, yaml_lines


def errors_of(tmp_path, text: str, name: str = "p.yaml") -> list[PolicyError]:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PolicyError) as info:
        load_file(path)
    errors = getattr(info.value, "errors", [info.value])
    assert all(e.file == str(path) for e in errors)
    return errors


def shown(err: PolicyError) -> tuple[str, str, int]:
    """The rendered error: its headline, the source line shown, and the caret's column."""
    head, src, caret = str(err).split("\n")
    assert caret.strip() == "^", str(err)
    assert head.startswith(f"{err.file}:{err.line}:{err.column}: "), str(err)
    return head, src[4:], len(caret) - 4


def only(tmp_path, text: str) -> PolicyError:
    errors = errors_of(tmp_path, text)
    assert len(errors) == 1, "\n".join(map(str, errors))
    return errors[0]


def at(err: PolicyError) -> tuple[int, int]:
    column = shown(err)[2]
    assert column == err.column
    return err.line, err.column


# --- YAML syntax in leashd's words ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "column", "words"),
    [
        pytest.param(
            "rules:\n  - name: a\n\taction: deny\n",
            3, 1, "YAML does not allow tabs for indentation",
            id="tab-indent",
        ),
        pytest.param(
            "rules:\n\t- name: a\n",
            2, 1, "YAML does not allow tabs for indentation",
            id="tab-indent-list",
        ),
        pytest.param(
            "rules:\n  - name: a\n    action:\tdeny\n",
            3, 12, "YAML does not allow a tab here",
            id="tab-after-key",
        ),
        pytest.param(
            'rules:\n  - name: "a\n    action: deny\n',
            2, 11, 'this string is never closed: add the closing "',
            id="unclosed-double-quote",
        ),
        pytest.param(
            "rules:\n  - name: 'a\n    action: deny\n",
            2, 11, "this string is never closed: add the closing '",
            id="unclosed-single-quote",
        ),
        pytest.param(
            'rules:\n  - name: "status\n    commands: ["git status"]\n',
            2, 11, 'this string runs on to line 3, where the next " closes it: is its closing " '
            "missing?",
            id="string-runs-on",
        ),
        pytest.param(
            "rules:\n  - name: a\n   action: deny\n",
            3, 4, "bad indentation: this line starts in column 4, the line above in column 5",
            id="indent-shallower",
        ),
        pytest.param(
            "rules:\n  - name: a\n    tools:\n      - Read\n     - Write\n",
            5, 6, "bad indentation: this line starts in column 6, the line above in column 7",
            id="indent-list-item",
        ),
        pytest.param(
            "rules:\n  - name: a\n      action: deny\n",
            3, 7, "bad indentation: this key is indented deeper than the one above it",
            id="indent-deeper",
        ),
        pytest.param(
            "rules:\n  - name: a\n    action deny\n    tools: [Read]\n",
            3, 5, "missing `:` after the key",
            id="missing-colon",
        ),
        pytest.param(
            "settings\n  default_action: deny\n",
            1, 1, "missing `:` after the key",
            id="missing-colon-above",
        ),
        pytest.param(
            "rules:\n  - name: a\n    reason: see: here\n",
            3, 16, "a plain value holding `: ` must be quoted",
            id="colon-in-value",
        ),
        pytest.param(
            'rules:\n  - name: a\n    command_patterns: ["\\.env$"]\n',
            3, 25, "unknown escape `\\.` in a double-quoted string",
            id="unknown-escape",
        ),
        pytest.param(
            "rules:\n  - name: a\n    tools: - Read\n",
            3, 12, "a list item (`-`) cannot follow a key on its line",
            id="dash-after-key",
        ),
        pytest.param(
            "rules:\n  - name: a\n    tools: [Read, Write\n    action: deny\n",
            3, 12, "this `[` is never closed: expected `,` or `]` before line 4",
            id="unclosed-list",
        ),
        pytest.param(
            "rules: [\n",
            1, 9, "the file ends inside a list (its `[` is at line 1, column 8): "
            "expected `,` or `]` to close it",
            id="file-ends-in-list",
        ),
        pytest.param(
            "settings: {default_action: deny approval_timeout_seconds: 5}\n",
            1, 57, "expected `,` or `}` here, found `:` (a missing comma?)",
            id="missing-comma",
        ),
        pytest.param(
            "rules:\n  - name: a\n    tools: *nope\n",
            3, 12, "undefined alias `*nope`: define it first with `&nope`",
            id="undefined-alias",
        ),
        pytest.param(
            "rules: []\n---\nrules: []\n",
            2, 1, "a policy file holds one YAML document: this `---` starts a second",
            id="two-documents",
        ),
        pytest.param(
            "rules:\n  - name: a\u0007b\n",
            2, 12, "the control character U+0007, which YAML does not allow",
            id="control-character",
        ),
        pytest.param(
            "rules:\n  - name: @a\n",
            2, 11, "an unquoted value cannot start with `@`: quote the value",
            id="reserved-character",
        ),
        pytest.param(
            "a: &x 1\nb: &x 2\n",
            2, 4, "the anchor `&x` is already defined at line 1",
            id="duplicate-anchor",
        ),
    ],
)  # fmt: skip
def test_yaml_syntax_errors_speak_leashds_words_with_a_caret(tmp_path, text, line, column, words):
    err = only(tmp_path, text)
    assert at(err) == (line, column), str(err)
    assert words in err.message
    _, src, _ = shown(err)
    assert src == yaml_lines(text)[line - 1].replace("\t", " ")
    assert "invalid YAML" not in err.message  # translated, not PyYAML's words


def test_pyyamls_detail_is_kept_where_leashd_has_no_better_words(tmp_path):
    err = only(tmp_path, "a: |0\n x\n")
    assert at(err) == (1, 5)
    assert err.message.startswith("invalid YAML: expected indentation indicator in the range 1-9")


def test_libyamls_errors_are_reparsed_for_pyyamls_marks():
    # the C loader (used for speed) says less and its marks differ: the error path re-parses
    text = "rules:\n  - name: a\n\taction: deny\n"
    fast = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with pytest.raises(yaml.YAMLError) as info:
        yaml.compose(text, Loader=fast)
    err = syntax_error(text, "p.yaml", info.value)
    assert (err.line, err.column) == (3, 1)
    assert "YAML does not allow tabs for indentation" in str(err)


# --- duplicate keys --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "column", "words"),
    [
        (
            "rules:\n  - name: a\n    action: deny\n    tools: [Read]\n    action: allow\n",
            5, 5, "duplicate key 'action' (first at line 3)",
        ),
        ("settings: {default_action: deny, default_action: allow}\n", 1, 34,
         "duplicate key 'default_action' (first at line 1)"),
        (
            "rules:\n  - name: a\n    action: deny\n    commands: [ls]\n"
            "    examples:\n      match:\n        - tool: Bash\n          input:\n"
            "            command: ls\n            command: rm -rf /\n",
            10, 13, "duplicate key 'command' (first at line 9)",
        ),
        ("name: a\nrules: []\nname: b\n", 3, 1, "duplicate key 'name' (first at line 1)"),
    ],
)  # fmt: skip
def test_a_duplicate_key_is_an_error_naming_both_lines(tmp_path, text, line, column, words):
    errors = errors_of(tmp_path, text)
    dup = [e for e in errors if "duplicate key" in e.message]
    assert len(dup) == 1, "\n".join(map(str, errors))
    assert at(dup[0]) == (line, column)
    assert words in dup[0].message


# --- values YAML can write and a policy cannot hold ------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "column", "words"),
    [
        ("rules:\n  - name: !foo a\n    action: deny\n", 2, 11, "unknown tag '!foo'"),
        ("rules:\n  - name: !!int abc\n    action: deny\n", 2, 11, "cannot be read as !!int"),
        ("rules:\n  - name: a\n    action: !!bool maybe\n", 3, 13, "cannot be read as !!bool"),
        ("version: !!python/object:os.system x\n", 1, 10, "unknown tag"),
        (
            "base: &b {action: deny}\nrules:\n  - name: a\n    <<: *b\n",
            4, 5, "merge keys (`<<`) are not supported",
        ),
        (
            "rules:\n  - name: a\n    action: deny\n    commands: [ls]\n"
            "    examples: {match: [{tool: Bash, input: {? [a]: 1}}]}\n",
            5, 47, "a key must be a string, a number or true/false, not a list",
        ),
    ],
)  # fmt: skip
def test_values_a_policy_cannot_hold_are_policy_errors(tmp_path, text, line, column, words):
    errors = errors_of(tmp_path, text)
    found = [e for e in errors if words in e.message]
    assert found, "\n".join(map(str, errors))
    assert at(found[0]) == (line, column)


# --- regexes: the caret at the offending character -------------------------------------------


def _rule(clause: str) -> str:
    return f"rules:\n  - name: a\n    action: deny\n{clause}"


@pytest.mark.parametrize(
    ("clause", "line", "column", "words"),
    [
        pytest.param(
            "    command_patterns: [ab(c]\n",
            4, 26, "bad regex in command_patterns: missing ), unterminated subpattern",
            id="plain",
        ),
        pytest.param(
            "    command_patterns: ['it''s(x']\n",
            4, 30, "missing ), unterminated subpattern", id="single-quoted-escape",
        ),
        pytest.param(
            '    command_patterns: ["\\\\d+(x"]\n',
            4, 29, "missing ), unterminated subpattern", id="double-quoted-escape",
        ),
        pytest.param(
            '    command_patterns: ["\\x28"]\n',
            4, 25, "missing ), unterminated subpattern", id="hex-escape-itself",
        ),
        pytest.param(
            "    path_patterns:\n      - 'ok'\n      - 'x[a-'\n",
            6, 11, "bad regex in path_patterns: unterminated character set", id="path",
        ),
        pytest.param(
            "    input: {file_path: 'ab)'}\n",
            4, 27, "bad regex in input.file_path: unbalanced parenthesis", id="input",
        ),
        pytest.param(
            "    command_patterns:\n      - abc\n        d(ef\n",
            6, 10, "missing ), unterminated subpattern", id="folded-plain",
        ),
        pytest.param(
            "    command_patterns:\n      - |\n        cat\n        ab(c\n",
            7, 11, "missing ), unterminated subpattern", id="literal-block",
        ),
        pytest.param(
            "    command_patterns: ['(?']\n",
            4, 27, "unexpected end of pattern", id="at-the-end",
        ),
    ],
)  # fmt: skip
def test_a_bad_regex_has_its_caret_at_the_offending_character(
    tmp_path, clause, line, column, words
):
    err = only(tmp_path, _rule(clause))
    assert at(err) == (line, column), str(err)
    assert words in err.message


def test_a_regex_the_caret_cannot_reach_exactly_points_at_the_string_and_says_so(tmp_path):
    err = only(tmp_path, _rule("    command_patterns:\n      - >-\n        ab(c\n"))
    assert at(err) == (5, 9)  # the `>`: a folded block's lines are not the pattern's
    assert "at position 2 of the pattern 'ab(c'" in err.message
    assert "the caret marks where the string starts" in err.message


# Characters a .leash string may hold around the broken group, written raw or escaped.
_LEASH_CHARS = st.sampled_from(["a", "é", "'", '"', "\\", "\t", "😀", " ", "."])


def _leash_string(text: str, quote: str) -> str:
    if quote == "'":
        return "'" + text.replace("'", "''") + "'"
    return json.dumps(text)  # JSON escapes: \", \\, \t, \u00e9 and surrogate pairs


@settings(max_examples=60, deadline=None)
@given(
    before=st.lists(_LEASH_CHARS, max_size=6).map("".join),
    quote=st.sampled_from(["'", '"']),
)
def test_a_leash_regex_has_its_caret_at_the_offending_character(tmp_path_factory, before, quote):
    """An unclosed group after any mix of escapes: the caret is under its `(` in the source."""
    pattern = re.escape(before) + "(x"
    line = f"deny r tools Bash regex {_leash_string(pattern, quote)}\n"
    path = tmp_path_factory.mktemp("leash") / "p.leash"
    path.write_text(line, encoding="utf-8")
    with pytest.raises(PolicyError) as info:
        load_file(path)
    err = info.value
    assert "missing ), unterminated subpattern" in err.message
    assert (err.line, line[err.column - 1]) == (1, "("), str(err)


# --- wrong types name the accepted types -----------------------------------------------------


@pytest.mark.parametrize(
    ("clause", "words"),
    [
        ("    paths: 5\n", "`paths` takes a string, a list or a mapping, not a number"),
        ("    tools: {a: 1}\n", "`tools` takes a string or a list of strings, not a mapping"),
        ("    tools: [Read, [Write]]\n", "an item of `tools` must be a string, not a list"),
        ("    reason: [a]\n", "`reason` takes a string, not a list"),
        ("    opaque: 'yes'\n", "`opaque` takes true or false, not a string"),
        ("    argv: 3\n", "`argv` takes a string or a list of tokens, not a number"),
        ("    input: [a]\n", "`input` takes a mapping (field: regex), not a list"),
        ("    examples: [ls]\n", "`examples` takes a mapping (match, not_match), not a list"),
        ("    command_patterns:\n", "`command_patterns` takes a string or a list of strings, "
         "not an empty value"),
    ],
)  # fmt: skip
def test_a_wrong_type_names_the_accepted_types(tmp_path, clause, words):
    err = only(tmp_path, _rule(clause))
    assert words in err.message, str(err)
    shown(err)


def test_top_level_wrong_types(tmp_path):
    errors = errors_of(tmp_path, "settings: [a]\nrules: {a: 1}\nname: 3\n")
    assert [e.message for e in errors] == [
        "`settings` takes a mapping, not a list",
        "`rules` takes a list of rules, not a mapping",
        "`name` takes a string, not a number",
    ]


# --- files that are not there ----------------------------------------------------------------


def test_a_missing_file_or_a_directory_never_says_0_0(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "adir").mkdir()
    (tmp_path / "dir.yaml").mkdir()
    for spec, words in [
        ("nosuch.yaml", "nosuch.yaml: no such policy file"),
        ("defualt", "defualt: no such policy file, and not a built-in policy (did you mean "
         "'default'?)"),
        ("adir", "adir: a directory, not a policy file"),
        ("dir.yaml", "dir.yaml: a directory, not a policy file"),
    ]:  # fmt: skip
        with pytest.raises(PolicyError) as info:
            load_policies([spec])
        assert str(info.value).startswith(words), str(info.value)
        assert ":0" not in str(info.value)
    (tmp_path / "p.txt").write_text("rules: []\n")
    with pytest.raises(PolicyError) as info:
        load_file("p.txt")
    assert str(info.value).startswith("p.txt: unknown policy format '.txt'")


def test_a_file_level_error_has_no_position():
    assert str(PolicyError("no such policy file", "x.yaml")) == "x.yaml: no such policy file"
    assert str(PolicyError("m", "x.yaml", 3)) == "x.yaml:3: m"
    assert str(PolicyError("m", "x.yaml", 3, 4)) == "x.yaml:3:4: m"


# --- every error at once ---------------------------------------------------------------------

MANY = """\
rules:
  - name: a
    action: deny
    tools: 3
    command_patterns: ["ab(c"]
  - name: b
    action: maybe
    paths: 5
  - name: c
    action: deny
    action: allow
"""


def test_every_error_of_a_file_is_reported_at_once_in_source_order(tmp_path):
    errors = errors_of(tmp_path, MANY)
    assert [(e.line, e.column) for e in errors] == [(4, 12), (5, 27), (7, 13), (8, 12), (11, 5)]
    for e in errors:
        shown(e)


def test_the_cli_prints_every_error_with_its_caret_and_exits_2(tmp_path):
    (tmp_path / "many.yaml").write_text(MANY, encoding="utf-8")
    (tmp_path / "tab.yaml").write_text("rules:\n  - name: a\n\taction: deny\n", encoding="utf-8")
    run = subprocess.run(
        [sys.executable, "-m", "leashd", "policy", "lint", "many.yaml"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 2, run.stderr
    heads = [ln for ln in run.stderr.splitlines() if ln.startswith("many.yaml:")]
    assert len(heads) == 5, run.stderr
    assert run.stderr.count("^") == 5
    run = subprocess.run(
        [sys.executable, "-m", "leashd", "policy", "lint", "nosuch.yaml", "tab.yaml"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 2
    assert run.stderr.startswith("nosuch.yaml: no such policy file"), run.stderr
    assert "tab.yaml:3:1: YAML does not allow tabs for indentation" in run.stderr
    assert "\n     action: deny\n    ^\n" in run.stderr


# --- for all inputs --------------------------------------------------------------------------

VALID = """\
version: "1"
settings: {default_action: require_approval}
rules:
  - name: secrets
    tools: [Read, Write]
    path_patterns: ['\\.env$', "\\\\.ssh/"]
    action: deny
  - name: git
    commands: ["git status", [git, [log, diff]]]
    action: allow
    examples: {match: ["git status"], not_match: ["git push"]}
"""

_ALPHABET = st.sampled_from(list(" \t\n\r-:#[]{},'\"\\&*!|>?%@`~.()$^x0a\u0007\u00e9\ufeff"))


@st.composite
def yaml_texts(draw) -> str:
    if draw(st.booleans()):
        return draw(st.text(_ALPHABET, max_size=60))
    text = VALID
    for _ in range(draw(st.integers(1, 4))):  # a few edits of a valid policy
        i = draw(st.integers(0, len(text)))
        j = draw(st.integers(i, min(len(text), i + 3)))
        text = text[:i] + draw(st.text(_ALPHABET, max_size=3)) + text[j:]
    return text


@settings(max_examples=400, deadline=None)
@given(yaml_texts())
def test_any_text_loads_or_fails_with_a_place_inside_the_file(text):
    try:
        parse_yaml(text, "p.yaml")
    except PolicyError as exc:
        lines = yaml_lines(text)
        for e in getattr(exc, "errors", [exc]):
            assert 1 <= e.line <= max(1, len(lines)), (text, str(e))
            assert e.column >= 1, (text, str(e))
            if e.source is not None:  # the caret stands on the line it names
                assert e.column <= len(e.source) + 1, (text, str(e))
                assert e.source == lines[e.line - 1].replace("\ufeff", ""), (text, str(e))


_STYLES = [None, "'", '"', "|"]
_CHARS = st.text(
    st.sampled_from(list("ab (\\'\"\t\n:#-[]\u00e9\u2028\x85")), min_size=1, max_size=20
)


@settings(max_examples=300, deadline=None)
@given(_CHARS, st.sampled_from(_STYLES), st.integers(5, 40))
def test_a_scalars_offsets_are_exact_or_unknown(value, style, width):
    text = yaml.dump({"k": value}, default_style=style, width=width, allow_unicode=True)
    node = yaml.compose(text, Loader=yaml.SafeLoader).value[0][1]
    value = node.value  # PyYAML reads a lone U+0085 it wrote back as a space
    offsets = scalar_offsets(text, node)
    if offsets is None:
        return
    assert len(offsets) == len(value) + 1
    assert offsets == sorted(offsets)
    for ch, i in zip(value, offsets, strict=False):
        written = text[i]
        # a character is written as itself, or as the start of an escape or a line fold
        assert written == ch or written in "\\'\n\r\x85\u2028 " or (ch in " \n"), (
            value,
            style,
            text,
            offsets,
        )


def test_scalar_offsets_of_plain_and_quoted_scalars():
    text = "a: x'y\nb: 'it''s'\nc: \"\\t\\x41z\"\n"
    nodes = [v for _, v in yaml.compose(text, Loader=yaml.SafeLoader).value]
    assert [scalar_offsets(text, n) for n in nodes] == [
        [3, 4, 5, 6],
        [11, 12, 13, 15, 16],
        [22, 24, 28, 29],
    ]
