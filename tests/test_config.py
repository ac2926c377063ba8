"""The daemon's configuration: config.yaml < .env < environment < flags, where each value came
from, the forms a list may take, and errors that name the key and its layer.

Every test passes yaml_path, env_file and environ, so none reads the real ~/.leashd, the
current directory's .env or the real environment."""

from __future__ import annotations

import json
import os
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leashd.daemon.config import ConfigError, Source, describe, load_config


@pytest.fixture(autouse=True)
def _no_leashd_variables(monkeypatch):
    """Keep whatever LEASHD_* variables the test runner has out of these tests, so that a
    test that reads the real environment would notice one of its own."""
    for name in list(os.environ):
        if name.startswith("LEASHD_"):
            monkeypatch.delenv(name)


@pytest.fixture
def files(tmp_path):
    """Paths for a config.yaml and a .env, neither written yet."""
    return tmp_path / "config.yaml", tmp_path / ".env"


def load(files, yaml_text=None, env_text=None, environ=None, overrides=None):
    yaml_path, env_file = files
    if yaml_text is not None:
        yaml_path.write_text(yaml_text)
    if env_text is not None:
        env_file.write_text(env_text)
    return load_config(
        yaml_path=yaml_path, env_file=env_file, environ=environ or {}, overrides=overrides
    )


def config_error(files, **kw) -> str:
    with pytest.raises(ConfigError) as err:
        load(files, **kw)
    return str(err.value)


# --- layers --------------------------------------------------------------------------------


def test_nothing_configured_gives_the_defaults(files):
    config = load(files)
    s = config.settings
    assert s.max_turns == 150
    assert s.storage_backend == "sqlite"
    assert s.approved_directories == [] and s.allowed_user_ids == []
    assert s.telegram_bot_token is None
    assert config.source("max_turns") == Source("default", "built in")
    assert config.warnings == []


def test_the_real_environment_is_not_read_when_a_mapping_is_given(files, monkeypatch):
    monkeypatch.setenv("LEASHD_MAX_TURNS", "7")
    config = load(files, environ={})
    assert config.settings.max_turns == 150


def test_each_layer_overrides_the_one_below(files):
    yaml_text = "max_turns: 10\nrate_limit_rpm: 1\nrate_limit_burst: 2\nlog_level: debug\n"
    env_text = "LEASHD_RATE_LIMIT_RPM=20\nLEASHD_RATE_LIMIT_BURST=3\nLEASHD_LOG_LEVEL=warning\n"
    environ = {"LEASHD_RATE_LIMIT_BURST": "30", "LEASHD_LOG_LEVEL": "error"}
    config = load(files, yaml_text, env_text, environ=environ, overrides={"log_level": "INFO"})
    s = config.settings
    assert (s.max_turns, s.rate_limit_rpm, s.rate_limit_burst, s.log_level) == (
        10,
        20,
        30,
        "INFO",
    )
    yaml_path, env_file = files
    assert config.source("max_turns") == Source("config.yaml", f"{yaml_path}:1")
    assert config.source("rate_limit_rpm") == Source(".env", f"{env_file} (LEASHD_RATE_LIMIT_RPM)")
    assert config.source("rate_limit_burst") == Source("environment", "LEASHD_RATE_LIMIT_BURST")
    assert config.source("log_level") == Source("flag", "--log-level")


def test_yaml_sources_carry_the_line_of_their_key(files):
    yaml_text = (
        "# leashd settings\n\nmax_turns: 10\nsystem_prompt: |\n  be brief\n\ndefault_mode: plan\n"
    )
    config = load(files, yaml_text)
    yaml_path, _ = files
    assert config.settings.default_mode == "plan"
    assert config.settings.system_prompt == "be brief\n"
    assert config.source("max_turns").where == f"{yaml_path}:3"
    assert config.source("default_mode").where == f"{yaml_path}:7"


def test_an_empty_yaml_file_is_no_settings(files):
    assert load(files, "").settings.max_turns == 150
    assert load(files, "# nothing yet\n").settings.max_turns == 150


def test_missing_files_are_not_an_error(tmp_path):
    config = load_config(
        yaml_path=tmp_path / "nope.yaml", env_file=tmp_path / "nope.env", environ={}
    )
    assert config.sources == {}


# --- lists ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["Read,Grep", " Read , Grep ,", '["Read", "Grep"]', ' ["Read","Grep"] '],
)
def test_a_list_in_the_environment_is_comma_separated_or_json(files, text):
    config = load(files, environ={"LEASHD_ALLOWED_TOOLS": text})
    assert config.settings.allowed_tools == ["Read", "Grep"]


def test_a_list_in_yaml_is_a_yaml_list_or_text(files):
    yaml_text = "allowed_tools: [Read, Grep]\ndisallowed_tools: Bash, WebFetch\n"
    s = load(files, yaml_text).settings
    assert s.allowed_tools == ["Read", "Grep"]
    assert s.disallowed_tools == ["Bash", "WebFetch"]


def test_user_ids_written_as_numbers_in_yaml_are_read_as_text(files):
    s = load(files, "allowed_user_ids: [12345, 67890]\n").settings
    assert s.allowed_user_ids == ["12345", "67890"]
    assert load(files, "allowed_user_ids: 12345\n").settings.allowed_user_ids == ["12345"]


def test_user_ids_as_comma_separated_text(files):
    config = load(files, env_text="LEASHD_ALLOWED_USER_IDS=12345, 67890\n")
    assert config.settings.allowed_user_ids == ["12345", "67890"]


def test_user_ids_as_a_json_list_of_numbers(files):
    config = load(files, environ={"LEASHD_ALLOWED_USER_IDS": "[12345, 67890]"})
    assert config.settings.allowed_user_ids == ["12345", "67890"]


def test_approved_directories_are_resolved_and_deduplicated(files, tmp_path):
    proj = tmp_path / "proj"
    proj.mkdir()
    (tmp_path / "link").symlink_to(proj)
    text = f"{proj},{tmp_path / 'link'},{proj}/"
    config = load(files, environ={"LEASHD_APPROVED_DIRECTORIES": text})
    assert config.settings.approved_directories == [str(proj.resolve())]


def test_mcp_servers_as_json(files):
    servers = {"fs": {"command": "mcp-fs", "args": ["--root", "."]}}
    config = load(files, environ={"LEASHD_MCP_SERVERS": json.dumps(servers)})
    assert config.settings.mcp_servers == servers


# --- the 0.x telegram block ----------------------------------------------------------------


def test_the_nested_telegram_block_of_leashd_0x(files):
    yaml_text = (
        "max_turns: 20\n"
        "telegram:\n"
        "  bot_token: '123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw'\n"
        "  allowed_user_ids: [111, 222]\n"
        "  base_url: https://tg.example.org\n"
    )
    config = load(files, yaml_text)
    s = config.settings
    assert s.telegram_bot_token.get_secret_value() == "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
    assert s.allowed_user_ids == ["111", "222"]
    assert s.telegram_base_url == "https://tg.example.org"
    yaml_path, _ = files
    assert config.source("telegram_bot_token").layer == "config.yaml"
    assert config.source("allowed_user_ids").where.startswith(f"{yaml_path}:")


def test_the_environment_overrides_the_nested_telegram_block(files):
    yaml_text = "telegram:\n  allowed_user_ids: [111]\n"
    config = load(files, yaml_text, environ={"LEASHD_ALLOWED_USER_IDS": "333"})
    assert config.settings.allowed_user_ids == ["333"]
    assert config.source("allowed_user_ids").layer == "environment"


def test_an_unknown_key_in_the_telegram_block_is_an_error(files):
    message = config_error(files, yaml_text="telegram:\n  chat_id: 5\n")
    assert "telegram.chat_id" in message
    assert f"{files[0]}:1" in message


# --- errors --------------------------------------------------------------------------------


def test_an_unknown_yaml_key_is_an_error_naming_file_and_line(files):
    message = config_error(files, yaml_text="max_turns: 10\n\nmax_turn: 11\n")
    assert f"{files[0]}:3" in message
    assert "max_turn" in message


def test_a_yaml_file_that_is_not_a_mapping_is_an_error(files):
    message = config_error(files, yaml_text="- max_turns\n- 10\n")
    assert str(files[0]) in message


def test_a_yaml_file_that_does_not_parse_is_an_error(files):
    message = config_error(files, yaml_text="max_turns: [10\n")
    assert str(files[0]) in message


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        ("LEASHD_MAX_TURNS", "lots", ["integer", "'lots'"]),
        ("LEASHD_MAX_TURNS", "0", ["greater than or equal to 1"]),
        ("LEASHD_APPROVED_DIRECTORIES", "{tmp}/missing", ["missing is not a directory"]),
        ("LEASHD_MCP_SERVERS", "{not json", []),
        ("LEASHD_ALLOWED_USER_IDS", "123,alice", ["'alice' is not a Telegram user id"]),
        ("LEASHD_STORAGE_BACKEND", "postgres", ["'sqlite' or 'memory'", "'postgres'"]),
        ("LEASHD_RATE_LIMIT_RPM", "-1", ["greater than or equal to 0"]),
        ("LEASHD_ALLOWED_TOOLS", "[Read", []),
    ],
)
def test_an_invalid_environment_value_names_the_variable_and_its_layer(
    files, tmp_path, variable, value, words
):
    message = config_error(files, environ={variable: value.replace("{tmp}", str(tmp_path))})
    assert f"{variable} (environment: {variable})" in message
    for word in words:
        assert word in message


def test_an_invalid_value_in_dotenv_names_the_variable_and_the_file(files):
    message = config_error(files, env_text="LEASHD_MAX_TURNS=many\n")
    assert "max_turns (.env:" in message
    assert f"{files[1]} (LEASHD_MAX_TURNS)" in message


def test_an_invalid_value_in_yaml_names_the_key_file_and_line(files):
    message = config_error(files, yaml_text="log_level: INFO\nstorage_backend: mongo\n")
    assert f"storage_backend (config.yaml: {files[0]}:2)" in message


def test_an_invalid_flag_names_the_flag(files):
    message = config_error(files, overrides={"rate_limit_burst": 0})
    assert "rate_limit_burst (flag: --rate-limit-burst)" in message


def test_a_valid_higher_layer_hides_an_invalid_lower_one(files):
    config = load(files, "max_turns: nope\n", environ={"LEASHD_MAX_TURNS": "9"})
    assert config.settings.max_turns == 9


def test_every_problem_is_reported_at_once(files):
    message = config_error(files, environ={"LEASHD_MAX_TURNS": "x", "LEASHD_RATE_LIMIT_RPM": "-5"})
    assert "LEASHD_MAX_TURNS" in message and "LEASHD_RATE_LIMIT_RPM" in message


def test_an_invalid_bot_token_is_not_shown_in_the_error(files):
    message = config_error(files, yaml_text="telegram:\n  bot_token: [sekr3t-token-value]\n")
    assert "telegram_bot_token" in message
    assert "sekr3t-token-value" not in message


# --- warnings ------------------------------------------------------------------------------


def test_an_unknown_leashd_variable_is_a_warning_not_an_error(files):
    environ = {"LEASHD_MAX_TURN": "5", "LEASHD_HOME": "/x", "LEASHD_CACHE_DIR": "/y", "PATH": "/b"}
    config = load(files, environ=environ)
    assert config.settings.max_turns == 150
    assert len(config.warnings) == 1
    assert "LEASHD_MAX_TURN (environment)" in config.warnings[0]


# --- describe and secrets ------------------------------------------------------------------


def rows_by_variable(config):
    return {var: (value, where) for var, value, where in describe(config)}


def test_describe_lists_every_setting_with_its_value_and_origin(files):
    config = load(files, "max_turns: 12\n", environ={"LEASHD_ALLOWED_TOOLS": "Read,Grep"})
    rows = rows_by_variable(config)
    assert rows["LEASHD_MAX_TURNS"] == ("12", f"config.yaml: {files[0]}:1")
    assert rows["LEASHD_ALLOWED_TOOLS"] == ("Read,Grep", "environment: LEASHD_ALLOWED_TOOLS")
    assert rows["LEASHD_DISALLOWED_TOOLS"] == ("(none)", "default: built in")
    assert rows["LEASHD_TELEGRAM_BOT_TOKEN"][0] == "(none)"


TOKENS = st.builds(
    lambda digits, rest: f"{digits}:{rest}",
    st.text(string.digits, min_size=8, max_size=10),
    st.text(string.ascii_letters + string.digits + "_-", min_size=30, max_size=40),
)


@settings(max_examples=50, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(token=TOKENS)
def test_describe_never_shows_the_bot_token(files, token):
    config = load(files, environ={"LEASHD_TELEGRAM_BOT_TOKEN": token})
    assert config.settings.telegram_bot_token.get_secret_value() == token
    rows = describe(config)
    assert all(token not in cell for row in rows for cell in row)
    shown = rows_by_variable(config)["LEASHD_TELEGRAM_BOT_TOKEN"][0]
    assert shown == f"****{token[-4:]}"


@pytest.mark.parametrize("token", ["short", "exactly12chr"])
def test_a_short_bot_token_is_hidden_entirely(files, token):
    config = load(files, yaml_text=f"telegram_bot_token: {token}\n")
    assert rows_by_variable(config)["LEASHD_TELEGRAM_BOT_TOKEN"][0] == "****"


# --- default paths -------------------------------------------------------------------------


def test_default_paths_are_under_leashd_home(files, tmp_path, monkeypatch):
    home = tmp_path / "leashd-home"
    monkeypatch.setenv("LEASHD_HOME", str(home))
    config = load(files)
    s = config.settings
    assert s.path("storage_path") == home / "messages.db"
    assert s.path("log_dir") == home / "logs"
    assert s.path("audit_log_path") == home / "audit.jsonl"
    rows = rows_by_variable(config)
    assert rows["LEASHD_STORAGE_PATH"][0] == str(home / "messages.db")


def test_a_configured_path_wins_over_the_default(files, tmp_path, monkeypatch):
    monkeypatch.setenv("LEASHD_HOME", str(tmp_path / "leashd-home"))
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    config = load(files, environ={"LEASHD_STORAGE_PATH": "~/data/m.db"})
    assert config.settings.path("storage_path") == tmp_path / "user" / "data" / "m.db"
