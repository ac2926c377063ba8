"""The daemon's configuration: `~/.leashd/config.yaml` < the project's `.env` < `LEASHD_*`
environment variables, each value remembered with the layer it came from.

Each layer is read on its own (pydantic-settings' dotenv and environment sources; the YAML
file by key, with its line numbers), merged in order, then validated once. An invalid value
is reported with its layer and key (`LEASHD_MAX_TURNS (environment): …`); an unknown key in
the YAML file is an error, not a silent no-op.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pydantic_settings.sources import DotEnvSettingsSource, EnvSettingsSource

PREFIX = "LEASHD_"
StrList = Annotated[list[str], NoDecode]


def leashd_home() -> Path:
    """~/.leashd, or LEASHD_HOME (tests, several installs side by side)."""
    return Path(os.environ.get("LEASHD_HOME") or Path.home() / ".leashd").expanduser()


class Settings(BaseModel):
    """Every setting, by its name without the LEASHD_ prefix, lowercased. A plain model:
    validating it reads nothing but what it is given (the layers are read below)."""

    model_config = ConfigDict(extra="forbid", validate_default=True)

    approved_directories: StrList = Field(default_factory=list)
    telegram_bot_token: SecretStr | None = None
    telegram_base_url: str | None = None
    allowed_user_ids: StrList = Field(default_factory=list)
    # Anyone who finds the bot may use it (and approve in their own chat): only on purpose.
    telegram_open_bot: bool = False
    max_turns: int = Field(150, ge=1)
    system_prompt: str | None = None
    policy_files: StrList = Field(default_factory=list)
    approval_timeout_seconds: float = Field(300.0, gt=0)
    rate_limit_rpm: int = Field(0, ge=0)
    rate_limit_burst: int = Field(5, ge=1)
    storage_backend: Literal["sqlite", "memory"] = "sqlite"
    storage_path: str = ""  # default: <leashd home>/messages.db
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_dir: str = ""  # default: <leashd home>/logs
    log_max_bytes: int = Field(10_000_000, ge=1024)
    log_backup_count: int = Field(5, ge=0)
    audit_log_path: str = ""  # default: <leashd home>/audit.jsonl
    audit_fsync: Literal["always", "interval", "never"] = "interval"
    # The audit chain as an HMAC under this key (docs/audit.md); a key file is kept out of
    # the agent's reach by the sandbox, the variable only once the daemon has read it.
    audit_key: SecretStr | None = None
    audit_key_file: str = ""
    allowed_tools: StrList = Field(default_factory=list)
    disallowed_tools: StrList = Field(default_factory=list)
    streaming_enabled: bool = True
    streaming_throttle_seconds: float = Field(1.5, ge=0)
    agent_timeout_seconds: float = Field(3600.0, gt=0)
    # Tries of a model request again after a transient API failure (overloaded, 5xx, a lost
    # connection), with exponential backoff. The bundled CLI retries (at most 15); not set:
    # its own CLAUDE_CODE_MAX_RETRIES, else its default of 10.
    agent_retries: int | None = Field(None, ge=0, le=15)
    default_mode: Literal["default", "plan", "auto"] = "default"
    mcp_servers: Annotated[dict[str, dict[str, Any]], NoDecode] = Field(default_factory=dict)
    # The OS sandbox under every Bash call (docs/sandbox.md): off only on purpose.
    sandbox: Literal["enforce", "off"] = "enforce"
    sandbox_writable: StrList = Field(default_factory=list)  # added to the build caches
    sandbox_allowed_domains: StrList = Field(default_factory=list)  # added to the registries
    sandbox_excluded_commands: StrList = Field(default_factory=list)  # run unsandboxed
    # Unattended work (docs/tasks.md). The AI approver answers the calls a rule routes to it
    # (`approver: ai`); its breaker hands a task back to a human past these limits.
    auto_approver: bool = False
    auto_approver_model: str | None = None
    auto_approver_max_calls: int = Field(50, ge=1)  # AI approvals within the window
    auto_approver_window_seconds: float = Field(3600.0, gt=0)
    auto_approver_max_denials: int = Field(3, ge=1)  # AI denials in a row
    auto_approver_timeout_seconds: float = Field(60.0, gt=0)
    # The AI plan reviewer: approves a task's plan, or sends it back (at most so many rounds)
    auto_plan_reviewer: bool = False
    auto_plan_model: str | None = None
    auto_plan_max_rounds: int = Field(3, ge=1)
    # /task: spec -> explore -> validate -> plan -> implement -> test -> PR, unattended
    task_orchestrator: bool = False
    task_policy: str = "autonomous"  # the policy implement and test run under
    task_max_retries: int = Field(3, ge=0)  # test failures sent back to implement
    task_phase_timeout_seconds: float = Field(1800.0, gt=0)
    task_retry_backoff_seconds: float = Field(5.0, ge=0)  # doubles with each retry
    # The autonomous loop after an /edit turn: test, fix, retry, maybe a pull request
    autonomous_loop: bool = False
    autonomous_max_retries: int = Field(3, ge=0)
    autonomous_pr: bool = False
    # Where a task's pull request is opened (GitHub Enterprise: https://HOST/api/v3)
    github_token: SecretStr | None = None
    github_api_url: str = "https://api.github.com"

    @field_validator(
        "approved_directories", "allowed_user_ids", "policy_files", "allowed_tools",
        "disallowed_tools", "sandbox_writable", "sandbox_allowed_domains",
        "sandbox_excluded_commands", mode="before",
    )  # fmt: skip
    @classmethod
    def _list(cls, value: Any) -> Any:
        """Comma-separated text, a JSON list (what leashd 0.x wrote), or a YAML list."""
        if isinstance(value, int):
            return [str(value)]
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                value = json.loads(text)
            else:
                return [part.strip() for part in text.split(",") if part.strip()]
        if isinstance(value, list):
            return [str(v) if isinstance(v, int | float) else v for v in value]
        return value

    @field_validator("mcp_servers", mode="before")
    @classmethod
    def _json_dict(cls, value: Any) -> Any:
        if isinstance(value, str):
            return json.loads(value) if value.strip() else {}
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("sandbox", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("sandbox_writable")
    @classmethod
    def _absolute(cls, value: list[str]) -> list[str]:
        for v in value:
            if not (v.startswith("/") or v == "~" or v.startswith("~/")):
                raise ValueError(f"{v!r} is not an absolute path (/... or ~/...)")
        return value

    @field_validator("approved_directories")
    @classmethod
    def _dirs_exist(cls, value: list[str]) -> list[str]:
        out = []
        for d in value:
            p = Path(d).expanduser()
            if not p.is_dir():
                raise ValueError(f"{d} is not a directory")
            out.append(os.path.realpath(p))
        return list(dict.fromkeys(out))

    @field_validator("allowed_user_ids")
    @classmethod
    def _ids(cls, value: list[str]) -> list[str]:
        for v in value:
            if not v.lstrip("-").isdigit():
                raise ValueError(f"{v!r} is not a Telegram user id (a number)")
        return value

    # --- paths with defaults under the leashd home -----------------------------------------

    def path(self, key: Literal["storage_path", "log_dir", "audit_log_path"]) -> Path:
        value = getattr(self, key)
        if value:
            return Path(value).expanduser()
        return leashd_home() / _DEFAULT_FILES[key]


_DEFAULT_FILES = {"storage_path": "messages.db", "log_dir": "logs", "audit_log_path": "audit.jsonl"}


class _Layer(BaseSettings, Settings):
    """The same fields, as pydantic-settings' sources need them to read a layer."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="ignore")


SECRETS = frozenset({"telegram_bot_token", "audit_key"})


@dataclass
class Source:
    layer: str  # "default", "config.yaml", ".env", "environment", or a flag
    where: str  # the file (with line) or the variable's name


@dataclass
class Config:
    settings: Settings
    sources: dict[str, Source] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def source(self, key: str) -> Source:
        return self.sources.get(key, Source("default", "built in"))


class ConfigError(Exception):
    """Invalid configuration; the message names each bad key and where it came from."""


# Keys of leashd 0.x's config.yaml that this version reads under another name.
NESTED_KEYS = {("telegram", "bot_token"): "telegram_bot_token",
           ("telegram", "allowed_user_ids"): "allowed_user_ids",
           ("telegram", "base_url"): "telegram_base_url"}  # fmt: skip


def load_config(
    *,
    yaml_path: Path | None = None,
    env_file: Path | None = None,
    environ: dict[str, str] | None = None,
    overrides: dict[str, Any] | None = None,
) -> Config:
    """Read the three layers (and flags on top), validate, and say where each value came
    from. Raises ConfigError with every problem found."""
    yaml_path = yaml_path if yaml_path is not None else leashd_home() / "config.yaml"
    env_file = env_file if env_file is not None else Path.cwd() / ".env"
    environ = dict(os.environ if environ is None else environ)
    merged: dict[str, Any] = {}
    sources: dict[str, Source] = {}
    problems: list[str] = []
    warnings: list[str] = []

    for key, (value, line) in _read_yaml(yaml_path, problems).items():
        merged[key] = value
        sources[key] = Source("config.yaml", f"{yaml_path}:{line}")
    if env_file.is_file():
        dotenv = DotEnvSettingsSource(_Layer, env_file=env_file, env_prefix=PREFIX)
        for key, value in dotenv().items():
            if key in Settings.model_fields:
                merged[key] = value
                sources[key] = Source(".env", f"{env_file} ({PREFIX}{key.upper()})")
    env_source = EnvSettingsSource(_Layer, env_prefix=PREFIX)
    env_source.env_vars = {k.lower(): v for k, v in environ.items()}  # read this mapping
    for key, value in env_source().items():
        if key in Settings.model_fields:
            merged[key] = value
            sources[key] = Source("environment", f"{PREFIX}{key.upper()}")
    known = {f"{PREFIX}{k.upper()}" for k in Settings.model_fields} | {"LEASHD_HOME"}
    known.add("LEASHD_CACHE_DIR")
    for name in environ:
        if name.startswith(PREFIX) and name not in known:
            warnings.append(f"{name} (environment) is not a leashd setting; ignored")
    for key, value in (overrides or {}).items():
        merged[key] = value
        sources[key] = Source("flag", f"--{key.replace('_', '-')}")

    if problems:
        raise ConfigError("\n".join(problems))
    try:
        settings = Settings.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(explain(exc, sources)) from None
    return Config(settings, sources, warnings)


def _read_yaml(path: Path, problems: list[str]) -> dict[str, tuple[Any, int]]:
    """The file's settings by key, each with the line it is on."""
    if not path.is_file():
        return {}
    try:
        text = path.read_text(encoding="utf-8")
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        problems.append(f"{path}: cannot read the config file: {exc}")
        return {}
    if data is None:
        return {}
    if not isinstance(data, dict) or not isinstance(node, yaml.MappingNode):
        problems.append(f"{path}:1: the config file must be a mapping of settings")
        return {}
    lines = {k.value: k.start_mark.line + 1 for k, _ in node.value if hasattr(k, "value")}
    out: dict[str, tuple[Any, int]] = {}
    for key, value in data.items():
        line = lines.get(key, 1)
        if key == "telegram" and isinstance(value, dict):
            for sub, v in value.items():
                name = NESTED_KEYS.get(("telegram", sub))
                if name is None:
                    problems.append(f"{path}:{line}: unknown key telegram.{sub}")
                else:
                    out[name] = (v, line)
            continue
        name = str(key).lower()
        if name not in Settings.model_fields:
            problems.append(f"{path}:{line}: unknown key {key!r} (see `leashd config --keys`)")
            continue
        out[name] = (value, line)
    return out


def explain(exc: ValidationError, sources: dict[str, Source]) -> str:
    out = []
    for err in exc.errors():
        key = str(err["loc"][0]) if err["loc"] else "?"
        src = sources.get(key, Source("default", "built in"))
        what = f"{PREFIX}{key.upper()}" if src.layer == "environment" else key
        msg = err["msg"].removeprefix("Value error, ")
        value = err.get("input")
        shown = "" if key in SECRETS or isinstance(value, dict | list) else f" (got {value!r})"
        out.append(f"{what} ({src.layer}: {src.where}): {msg}{shown}")
    return "\n".join(out)


def describe(config: Config) -> list[tuple[str, str, str]]:
    """(variable, value, where it came from) for every setting; secrets redacted."""
    rows = []
    s = config.settings
    for key in Settings.model_fields:
        value = getattr(s, key)
        if key in SECRETS:
            shown = _redact(value.get_secret_value() if value is not None else None)
        elif key in ("storage_path", "log_dir", "audit_log_path"):
            shown = str(s.path(key))  # type: ignore[arg-type]
        elif isinstance(value, list):
            shown = ",".join(value) if value else "(none)"
        elif isinstance(value, dict):
            shown = json.dumps(value) if value else "{}"
        else:
            shown = "(none)" if value is None else str(value)
        src = config.source(key)
        rows.append((f"{PREFIX}{key.upper()}", shown, f"{src.layer}: {src.where}"))
    return rows


def _redact(secret: str | None) -> str:
    if not secret:
        return "(none)"
    return f"****{secret[-4:]}" if len(secret) > 12 else "****"
