"""`leashd init`: the first configuration, asked for or given as flags, written to
`~/.leashd/config.yaml`.

The checks live here so the prompts and the flags refuse the same things with the same
words; the command only asks and prints. Running `init` again edits the file: what is not
asked about is kept, and each question offers the current value.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from leashd.daemon import config_file
from leashd.daemon.config import NESTED_KEYS, ConfigError, Settings, Source, explain
from leashd.policy.loader import BUILTIN_NAMES, DEFAULT_POLICIES

MODES = ("default", "plan", "auto")
# BotFather's tokens: the bot's numeric id, a colon, then 35 URL-safe characters. Checked
# loosely on length so a future longer secret still passes; a pasted chat id or URL does not.
_TOKEN = re.compile(r"^\d{3,}:[A-Za-z0-9_-]{30,}$")


@dataclass
class Answers:
    directories: list[str] = field(default_factory=list)
    token: str | None = None
    user_ids: list[str] = field(default_factory=list)
    mode: str = "default"
    policies: list[str] = field(default_factory=lambda: list(DEFAULT_POLICIES))


def _items(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def check_directories(text: str, *, allow_broad: bool = False) -> list[str]:
    """Existing directories, real paths; `/`, the home directory and those above it only
    with `allow_broad` (`init --allow-broad-dir`)."""
    dirs = []
    for item in _items(text):
        real = os.path.realpath(os.path.expanduser(item))
        if not os.path.isdir(real):
            raise ConfigError(f"{item} is not a directory")
        broad = None if allow_broad else too_broad(real)
        if broad is not None:
            raise ConfigError(
                f"{item} is {broad}: the agent could reach every project and private file "
                "under it. Name a project directory, or pass --allow-broad-dir to approve "
                "it anyway"
            )
        dirs.append(real)
    if not dirs:
        raise ConfigError("name at least one directory the agent may work in")
    return list(dict.fromkeys(dirs))


def too_broad(directory: str) -> str | None:
    """What makes a directory too broad to approve without asking twice, or None: the root,
    the home directory itself, or a directory that holds the home directory."""
    real = os.path.realpath(directory)
    home = os.path.realpath(os.path.expanduser("~"))
    if real == os.path.dirname(real):
        return "the root directory"
    if real == home:
        return "your home directory"
    if home.startswith(real.rstrip(os.sep) + os.sep):
        return f"above your home directory ({home})"
    return None


def check_token(text: str) -> str:
    token = text.strip()
    if not _TOKEN.match(token):
        raise ConfigError(
            "that is not a bot token: @BotFather gives one like 123456789:AAE…, "
            "a number, a colon, then about 35 letters, digits, '-' and '_'"
        )
    return token


def check_user_ids(text: str) -> list[str]:
    ids = _items(text)
    for v in ids:
        if not v.isdigit():
            raise ConfigError(
                f"{v!r} is not a Telegram user id: it is a number; message @userinfobot "
                "in Telegram and it replies with yours"
            )
    return list(dict.fromkeys(ids))


def check_mode(text: str) -> str:
    mode = text.strip().lower()
    if mode not in MODES:
        raise ConfigError(f"{text!r} is not a mode: choose one of {', '.join(MODES)}")
    return mode


def check_policies(text: str) -> list[str]:
    """Built-in names or policy files, loaded now so a typo is found here, not at start."""
    from leashd.policy import PolicyError, load_policies

    specs = _items(text)
    if not specs:
        raise ConfigError(f"name at least one policy (built in: {', '.join(BUILTIN_NAMES)})")
    from leashd.policy.loader import builtin_name

    # a 0.x checkout path to a built-in (`policies/strict.yaml`, no such file) is stored as the
    # built-in's name; a file of the user's as its real path
    specs = [builtin_name(s) or os.path.realpath(os.path.expanduser(s)) for s in specs]
    try:
        load_policies(specs)
    except PolicyError as exc:
        raise ConfigError(str(exc)) from None
    return specs


def current(data: dict[str, Any] | None = None) -> Answers:
    """The answers the config file already holds (the defaults of a new one otherwise)."""
    data = _flatten(config_file.read() if data is None else data)
    token = data.get("telegram_bot_token")
    return Answers(
        directories=[str(d) for d in _list(data.get("approved_directories"))],
        token=str(token) if token else None,
        user_ids=[str(i) for i in _list(data.get("allowed_user_ids"))],
        mode=str(data.get("default_mode") or "default"),
        policies=[str(p) for p in _list(data.get("policy_files"))] or list(DEFAULT_POLICIES),
    )


def save(answers: Answers, path: Path | None = None) -> Path:
    """Write the answers into the config file, changing only the settings they change: its
    comments and every other key stay as written (leashd 0.x's `telegram:` block is written
    flat). Nothing is written unless the whole file is a valid configuration."""
    if answers.token and not answers.user_ids:
        raise ConfigError(
            "a bot token needs the Telegram user ids allowed to use it, or anyone who finds "
            "the bot could drive the agent: message @userinfobot in Telegram for yours"
        )
    where = path or config_file.config_path()

    def change(doc: config_file.Document) -> None:
        doc.flatten("telegram")
        doc.set("approved_directories", list(answers.directories), config_file.same_directory)
        for name, value in (("telegram_bot_token", answers.token),
                            ("allowed_user_ids", answers.user_ids)):  # fmt: skip
            if value:
                doc.set(name, value)
            else:
                doc.delete(name)
        if doc.new or doc.get("default_mode") is not None or answers.mode != "default":
            doc.set("default_mode", answers.mode)
        if list(answers.policies) == list(DEFAULT_POLICIES):
            doc.delete("policy_files")  # follow the built-in default as it evolves
        else:
            doc.set("policy_files", list(answers.policies), _same_policy)

    def check(data: dict[str, Any]) -> None:
        flat = _flatten(data)
        try:
            Settings.model_validate(flat)
        except ValidationError as exc:
            raise ConfigError(
                explain(exc, {k: Source("config.yaml", str(where)) for k in flat})
            ) from None

    return config_file.edit(change, where, check)


def _same_policy(written: Any, wanted: Any) -> bool:
    from leashd.policy.loader import builtin_name

    text = str(written)
    return (builtin_name(text) or os.path.realpath(os.path.expanduser(text))) == wanted


def _flatten(data: dict[str, Any]) -> dict[str, Any]:
    """leashd 0.x kept Telegram's settings in a `telegram:` block; rewrite them flat."""
    data = dict(data)
    block = data.pop("telegram", None)
    if isinstance(block, dict):
        for sub, value in block.items():
            name = NESTED_KEYS.get(("telegram", sub))
            if name is None:
                raise ConfigError(f"unknown key telegram.{sub} in the config file")
            data.setdefault(name, value)
    return data


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str):
        return _items(value)
    if isinstance(value, list):
        return value
    return [value]
