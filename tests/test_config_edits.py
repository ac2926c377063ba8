"""`init`, `add-dir` and `remove-dir` edit config.yaml as a person would: only the settings
they change, with every comment, the order of the keys and the keys they know nothing about
left as written. A file that is not YAML is refused with its line and left as it is."""

from __future__ import annotations

import os
import stat
import textwrap

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leashd.daemon import config_file, wizard
from leashd.daemon.config import ConfigError, load_config

TOKEN = "123456789:AAE" + "x" * 32


@pytest.fixture
def where(tmp_path, monkeypatch):
    """A leashd home and three project directories, a, b and c."""
    for name in list(os.environ):
        if name.startswith("LEASHD_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("LEASHD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LEASHD_SANDBOX", "off")  # init checks the OS sandbox first
    monkeypatch.chdir(tmp_path)
    (tmp_path / "home").mkdir()
    for name in "abc":
        (tmp_path / name).mkdir()
    return tmp_path


def write(where, text: str) -> str:
    text = textwrap.dedent(text).format(d=where)
    (where / "home" / "config.yaml").write_text(text)
    return text


def written(where) -> str:
    return (where / "home" / "config.yaml").read_text()


def expect(where, text: str) -> None:
    assert written(where) == textwrap.dedent(text).format(d=where)


HAND_WRITTEN = """\
    # My leashd: the work laptop.
    max_turns: 40            # long tasks
    approved_directories:    # where the agent may work
      - {d}/a       # the app
      # the docs, read by the agent too
      - {d}/b
    # leashd 0.x wrote these in a block
    telegram:
      bot_token: '{token}'   # from @BotFather
      allowed_user_ids: [42]
    mcp_servers: {{"db": {{"command": "pg-mcp"}}}}
    # the end
    """


def hand_written(where) -> str:
    return write(where, HAND_WRITTEN.replace("{token}", TOKEN))


def test_a_key_this_leashd_does_not_know_is_kept(where):
    before = write(where, "some_future_setting: true  # a newer leashd's\n")
    config_file.add_dir(str(where / "a"))
    assert written(where) == before + f"approved_directories:\n  - {where}/a\n"


# --- add-dir, remove-dir ---------------------------------------------------------------------


def test_add_dir_appends_one_line_and_keeps_the_rest_of_the_file(where):
    before = hand_written(where)
    assert config_file.add_dir(str(where / "c")) == (str(where / "c"), True)
    after = written(where)
    assert after == before.replace(f"  - {where}/b\n", f"  - {where}/b\n  - {where}/c\n")
    assert config_file.add_dir(str(where / "c")) == (str(where / "c"), False)
    assert written(where) == after  # nothing to change: not written


def test_remove_dir_takes_its_line_and_its_own_comment_only(where):
    before = hand_written(where)
    assert config_file.remove_dir(str(where / "a")) == (str(where / "a"), True)
    assert written(where) == before.replace(f"  - {where}/a       # the app\n", "")
    assert config_file.remove_dir(str(where / "a")) == (str(where / "a"), False)


def test_removing_the_last_directory_leaves_an_empty_list_and_the_comments(where):
    write(
        where,
        """\
        approved_directories:
        # the only one
        - {d}/a  # going
        # below it
        max_turns: 3
        """,
    )
    config_file.remove_dir(str(where / "a"))
    expect(
        where,
        """\
        approved_directories: []
        # the only one
        # below it
        max_turns: 3
        """,
    )
    assert config_file.read()["approved_directories"] == []


def test_an_edit_keeps_the_file_s_own_indentation_and_list_style(where):
    write(
        where,
        """\
        max_turns: 3
        approved_directories:
        - {d}/a
        policy_files: [default, dev-tools]   # both
        """,
    )
    config_file.add_dir(str(where / "b"))
    expect(
        where,
        """\
        max_turns: 3
        approved_directories:
        - {d}/a
        - {d}/b
        policy_files: [default, dev-tools]   # both
        """,
    )


def test_a_list_written_on_one_line_stays_on_one_line(where):
    write(where, "approved_directories: [{d}/a]  # flow\nsandbox: 'off'\n")
    config_file.add_dir(str(where / "c"))
    expect(where, "approved_directories: [{d}/a, {d}/c]  # flow\nsandbox: 'off'\n")


def test_a_file_of_comments_only_keeps_them_above_the_first_setting(where):
    write(where, "# nothing set yet\n# (see leashd config --keys)\n")
    config_file.add_dir(str(where / "a"))
    expect(
        where,
        """\
        # nothing set yet
        # (see leashd config --keys)
        approved_directories:
          - {d}/a
        """,
    )


def test_a_new_file_says_comments_are_kept_and_is_owner_only(where):
    config_file.add_dir(str(where / "a"))
    expect(
        where,
        """\
        # leashd's settings (`leashd config --keys` lists them all). `leashd init`, `add-dir`
        # and `remove-dir` edit this file and keep your comments.
        approved_directories:
          - {d}/a
        """,
    )
    path = where / "home" / "config.yaml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("approved_directories: [a,\nmax_turns: 3\n", 1, "flow sequence begun here"),
        ("max_turns: 3\n\tsandbox: off\n", 2, "found character '\\t'"),
        ("max_turns: 3\nmax_turns: 4\n", 2, 'duplicate key "max_turns"'),
    ],
)
def test_a_file_that_is_not_yaml_is_refused_with_its_line_and_left_as_it_is(
    where, text, line, words
):
    write(where, text)
    for edit in (
        lambda: config_file.add_dir(str(where / "a")),
        lambda: config_file.remove_dir(str(where / "a")),
        lambda: wizard.save(wizard.Answers(directories=[str(where / "a")])),
    ):
        with pytest.raises(ConfigError) as refused:
            edit()
        message = str(refused.value)
        assert f"config.yaml:{line}:" in message and words in message
        assert "left as it is" in message and "^" in message  # the line, and a caret
        assert written(where) == text


def test_the_cli_edits_keep_the_comments(where):
    from leashd.cli import main

    hand = write(
        where,
        """\
        # mine
        approved_directories:
          - {d}/a   # the app
        """,
    )
    r = CliRunner().invoke(main, ["add-dir", str(where / "b")], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert written(where) == hand + f"  - {where}/b\n"
    r = CliRunner().invoke(main, ["remove-dir", str(where / "b")], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert written(where) == hand
    r = CliRunner().invoke(main, ["init", "-y", "--mode", "plan"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert written(where) == hand + "default_mode: plan\n"


# --- init -------------------------------------------------------------------------------------


def test_init_changes_only_the_settings_whose_answers_changed(where):
    hand_written(where)
    now = wizard.current()
    now.mode = "plan"
    wizard.save(now)
    # the mode is added; the 0.x block is written flat, in its place, with its comments
    expect(
        where,
        f"""\
        # My leashd: the work laptop.
        max_turns: 40            # long tasks
        approved_directories:    # where the agent may work
          - {{d}}/a       # the app
          # the docs, read by the agent too
          - {{d}}/b
        # leashd 0.x wrote these in a block
        telegram_bot_token: '{TOKEN}'   # from @BotFather
        allowed_user_ids: [42]
        mcp_servers: {{{{"db": {{{{"command": "pg-mcp"}}}}}}}}
        default_mode: plan
        # the end
        """,
    )
    assert load_config().settings.default_mode == "plan"


def test_init_again_with_the_same_answers_writes_nothing_new(where):
    before = write(
        where,
        """\
        # set up once
        approved_directories:
          - {d}/a  # app
          - b      # relative to where leashd runs: kept as written
        default_mode: auto   # trusted
        policy_files:
          - strict  # for now
        """,
    )
    wizard.save(wizard.current())
    assert written(where) == before


def test_init_edits_the_lists_in_place(where):
    write(
        where,
        """\
        approved_directories:
          - {d}/a  # app
          - {d}/b  # docs
        policy_files:
          - strict  # for now
        allowed_user_ids: [42]
        telegram_bot_token: {token}
        """.replace("{token}", TOKEN),
    )
    answers = wizard.current()
    answers.directories = [str(where / "b"), str(where / "c")]
    answers.policies = ["default", "dev-tools"]  # the built-in default: the key goes, with
    # the comment on its line
    answers.user_ids = ["42", "7"]
    wizard.save(answers)
    expect(
        where,
        """\
        approved_directories:
          - {d}/b  # docs
          - {d}/c
        allowed_user_ids: ["42", "7"]
        telegram_bot_token: {token}
        """.replace("{token}", TOKEN),
    )
    config = load_config()
    assert config.settings.allowed_user_ids == ["42", "7"]


def test_a_string_the_daemon_would_read_as_something_else_is_quoted(where):
    answers = wizard.Answers(
        directories=[str(where / "a")], token=TOKEN, user_ids=["42"], mode="plan"
    )
    wizard.save(answers)
    data = yaml.safe_load(written(where))
    assert data["allowed_user_ids"] == ["42"]  # `- "42"`, not the number 42
    assert '- "42"' in written(where)


def test_init_refuses_a_configuration_that_would_not_load_and_writes_nothing(where):
    before = write(where, "max_turns: 0  # too few\n")
    with pytest.raises(ConfigError, match="max_turns"):
        wizard.save(wizard.Answers(directories=[str(where / "a")]))
    assert written(where) == before


# --- for any file -----------------------------------------------------------------------------


@st.composite
def _config(draw):
    """A config.yaml with some approved directories (of a, b, c), other settings before or
    after them, and comments anywhere."""
    dirs = draw(st.lists(st.sampled_from("abc"), unique=True))
    listed = [f"  - {{d}}/{d}" for d in dirs]
    approved = ["approved_directories:", *listed] if dirs else ["approved_directories: []"]
    others = ["max_turns: 9", "sandbox_writable: [/tmp/x]", "log_level: INFO"]
    at = draw(st.integers(0, len(others)))
    lines = others[:at] + approved + others[at:]
    marks = []
    for n in draw(st.sets(st.integers(0, len(lines) - 1), max_size=3)):
        marks.append(f"# c{len(marks)}")
        lines[n] += "  " + marks[-1]
    for n in sorted(draw(st.lists(st.integers(0, len(lines)), max_size=4)), reverse=True):
        marks.append(f"# c{len(marks)}")
        lines.insert(n, " " * draw(st.sampled_from([0, 2])) + marks[-1])
    return "\n".join(lines) + "\n", marks


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(_config(), st.sampled_from("abc"), st.booleans())
def test_any_edit_keeps_every_comment_but_the_removed_line_s(tmp_path_factory, made, name, add):
    where = tmp_path_factory.mktemp("cfg")
    for d in "abc":
        (where / d).mkdir()
    text, marks = made
    path = where / "config.yaml"
    path.write_text(text.format(d=where))
    before = config_file.read(path)
    directory = str(where / name)
    lines = [line for line in path.read_text().splitlines() if line.strip().startswith("- ")]
    own = [line.split("# ")[-1] for line in lines if line.strip().startswith(f"- {directory}")]
    if add:
        config_file.add_dir(directory, path)
    else:
        config_file.remove_dir(directory, path)
    after = config_file.read(path)
    assert {k: v for k, v in after.items() if k != "approved_directories"} == {
        k: v for k, v in before.items() if k != "approved_directories"
    }
    dirs = [str(d) for d in after["approved_directories"]]
    assert (directory in dirs) == add
    kept = [m for m in marks if m.removeprefix("# ") not in own or add]
    assert sorted(m for m in marks if m in path.read_text()) == sorted(kept)
