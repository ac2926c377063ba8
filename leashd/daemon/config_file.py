"""Changing `~/.leashd/config.yaml` from the command line (`add-dir`, `remove-dir`, `init`).

Written atomically (a temporary file renamed over the old one). PyYAML does not keep
comments, so a hand-written file loses them on the first change; the keys and values stay.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from leashd.daemon.config import ConfigError, leashd_home


def config_path() -> Path:
    return leashd_home() / "config.yaml"


def read(path: Path | None = None) -> dict[str, Any]:
    path = path or config_path()
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: the config file must be a mapping of settings")
    return data


def write(data: dict[str, Any], path: Path | None = None) -> Path:
    path = path or config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    # Owner-only from the first byte: the file may hold a bot token, which is a password.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, 0o600)  # O_CREAT's mode does not apply to a leftover tmp file
    tmp.replace(path)
    return path


def add_dir(directory: str, path: Path | None = None) -> tuple[str, bool]:
    """Approve a directory; returns it resolved, and whether it was new."""
    real = os.path.realpath(os.path.expanduser(directory))
    if not os.path.isdir(real):
        raise ConfigError(f"{directory} is not a directory")
    data = read(path)
    dirs = [os.path.realpath(os.path.expanduser(str(d))) for d in _dirs(data)]
    if real in dirs:
        return real, False
    data["approved_directories"] = [*dirs, real]
    write(data, path)
    return real, True


def remove_dir(directory: str, path: Path | None = None) -> tuple[str, bool]:
    real = os.path.realpath(os.path.expanduser(directory))
    data = read(path)
    dirs = [os.path.realpath(os.path.expanduser(str(d))) for d in _dirs(data)]
    if real not in dirs:
        return real, False
    data["approved_directories"] = [d for d in dirs if d != real]
    write(data, path)
    return real, True


def _dirs(data: dict[str, Any]) -> list[Any]:
    value = data.get("approved_directories") or []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list):
        raise ConfigError("approved_directories in the config file is not a list")
    return value
