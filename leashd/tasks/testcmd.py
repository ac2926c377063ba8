"""The command a task's test phase runs: the project's own word for it when it gives one
(`.leashd/test.yaml`), else detected from the files that name a test runner — and why.

    # .leashd/test.yaml
    command: pytest -q tests/

Detection looks, in order, for: a `test` script in package.json (npm test), pytest's
configuration or a tests directory beside Python sources (python -m pytest), go.mod (go test
./...), Cargo.toml (cargo test), a Makefile with a `test:` target (make test). Nothing found:
the task says so and escalates rather than guessing.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

CONFIG = Path(".leashd") / "test.yaml"


@dataclass(frozen=True)
class TestCommand:
    command: str
    why: str  # "from .leashd/test.yaml", "package.json has a test script", …


class TestConfigError(ValueError):
    pass


def test_command(project: Path) -> TestCommand | None:
    """The project's test command, or None when none is configured and none detected.
    Raises TestConfigError for a .leashd/test.yaml that cannot be used (with its place)."""
    configured = _configured(project)
    if configured is not None:
        return configured
    return _detected(project)


def _configured(project: Path) -> TestCommand | None:
    path = project / CONFIG
    if not path.is_file():
        return None
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise TestConfigError(f"{path}: cannot read: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        raise TestConfigError(f"{path}{where}: not valid YAML: {exc}") from None
    if not isinstance(doc, dict) or "command" not in doc:
        raise TestConfigError(f"{path}: needs `command: <the test command>`")
    command = doc["command"]
    if not isinstance(command, str) or not command.strip() or "\n" in command.strip():
        raise TestConfigError(f"{path}: `command` takes one line of shell, e.g. `pytest -q`")
    return TestCommand(command.strip(), f"from {CONFIG}")


def _detected(project: Path) -> TestCommand | None:
    package = project / "package.json"
    if package.is_file():
        try:
            scripts = json.loads(package.read_text(encoding="utf-8")).get("scripts") or {}
        except (OSError, ValueError, AttributeError):
            scripts = {}
        if isinstance(scripts, dict) and isinstance(scripts.get("test"), str):
            return TestCommand("npm test", "package.json has a test script")
    if _pytest_configured(project):
        return TestCommand("python -m pytest -q", "the project configures pytest")
    if (project / "go.mod").is_file():
        return TestCommand("go test ./...", "go.mod: a Go module")
    if (project / "Cargo.toml").is_file():
        return TestCommand("cargo test", "Cargo.toml: a Rust crate")
    makefile = project / "Makefile"
    if makefile.is_file() and re.search(
        r"^test\s*:", makefile.read_text(encoding="utf-8", errors="replace"), re.M
    ):
        return TestCommand("make test", "the Makefile has a test target")
    return None


def _pytest_configured(project: Path) -> bool:
    if (project / "pytest.ini").is_file() or (project / "conftest.py").is_file():
        return True
    for name, marker in (("pyproject.toml", "[tool.pytest"), ("setup.cfg", "[tool:pytest]"),
                         ("tox.ini", "[pytest]")):  # fmt: skip
        path = project / name
        if path.is_file() and marker in path.read_text(encoding="utf-8", errors="replace"):
            return True
    tests = project / "tests"
    return tests.is_dir() and any(tests.glob("test_*.py"))
