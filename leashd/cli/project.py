"""A repository's policy project: its stacks and suites, from `.leashd.toml` or the
`[tool.leashd]` table of `pyproject.toml`.

    [tool.leashd]
    suites = ["policies/tests/*.yaml"]          # the default
    [tool.leashd.stacks]
    team = ["default", "policies/team.yaml"]    # as the daemon loads them, in order

A stack is a list of policies as `--policy` takes them: built-in names or files, relative to
the file that names them. `lint --affected` and `test --affected` (what the pre-commit hooks
run) use it to turn the files that changed into the stacks and the suites to check, so the
result depends on the repository and never on which files happen to be staged.
"""

from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from leashd.policy.errors import PolicyError
from leashd.policy.loader import BUILTIN_NAMES

CONFIG_FILE = ".leashd.toml"
DEFAULT_SUITES = ("policies/tests/*.yaml", "policies/tests/*.yml")
_KEYS = ("stacks", "suites")


@dataclass(frozen=True)
class Project:
    """Where the configuration was found (None: there is none) and what it says."""

    root: Path
    source: Path | None = None
    stacks: dict[str, tuple[str, ...]] = field(default_factory=dict)
    suites: tuple[str, ...] = DEFAULT_SUITES

    def suite_files(self) -> list[Path]:
        found: set[Path] = set()
        for pattern in self.suites:
            found.update(p for p in self.root.glob(pattern) if p.is_file())
        return sorted(found)

    def is_suite(self, path: Path) -> bool:
        return _real(path) in {_real(p) for p in self.suite_files()}

    def stacks_using(self, path: Path) -> list[str]:
        """The names of the stacks a policy file is part of."""
        target = _real(path)
        return [
            name
            for name, specs in self.stacks.items()
            if any(_spec_path(s) == target for s in specs)
        ]


def _real(path: Path) -> Path:
    return path.resolve(strict=False)


def _spec_path(spec: str) -> Path | None:
    return None if spec in BUILTIN_NAMES else _real(Path(spec))


def find_project(start: Path | None = None) -> Project:
    """The configuration governing `start` (the current directory): the nearest `.leashd.toml`,
    or `pyproject.toml` with a `[tool.leashd]` table, looking upward no further than the
    repository's root. No configuration: a project rooted at `start` with the defaults."""
    here = _real(start or Path.cwd())
    for directory in (here, *here.parents):
        dotfile = directory / CONFIG_FILE
        if dotfile.is_file():
            return _read(dotfile, _toml(dotfile))
        pyproject = directory / "pyproject.toml"
        if pyproject.is_file():
            table = _toml(pyproject).get("tool", {}).get("leashd")
            if table is not None:
                return _read(pyproject, table, "[tool.leashd]")
        if (directory / ".git").exists():
            break
    return Project(root=here)


def _toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"not valid TOML: {exc}", str(path)) from None
    except OSError as exc:
        raise PolicyError(f"cannot read: {exc.strerror or exc}", str(path)) from None


def _read(path: Path, table: Any, where: str = "") -> Project:
    file = str(path)
    prefix = f"{where}: " if where else ""
    if not isinstance(table, dict):
        raise PolicyError(f"{prefix}takes a table of `stacks` and `suites`", file)
    for key in table:
        if key not in _KEYS:
            close = difflib.get_close_matches(key, _KEYS, n=1)
            hint = f"; did you mean `{close[0]}`?" if close else f" (known: {', '.join(_KEYS)})"
            raise PolicyError(f"{prefix}unknown key `{key}`{hint}", file)
    base = path.parent
    stacks: dict[str, tuple[str, ...]] = {}
    raw_stacks = table.get("stacks", {})
    if not isinstance(raw_stacks, dict):
        raise PolicyError(f"{prefix}`stacks` takes a table: name = [policies…]", file)
    for name, specs in raw_stacks.items():
        if not isinstance(specs, list) or not specs or not all(isinstance(s, str) for s in specs):
            raise PolicyError(
                f"{prefix}stack `{name}` takes a non-empty list of policies "
                '(built-in names or files), e.g. ["default", "policies/team.yaml"]',
                file,
            )
        stacks[name] = tuple(_anchored(s, base, f"{prefix}stack `{name}`", file) for s in specs)
    suites = table.get("suites", list(DEFAULT_SUITES))
    if not isinstance(suites, list) or not all(isinstance(s, str) for s in suites):
        raise PolicyError(f'{prefix}`suites` takes a list of globs, e.g. ["tests/*.yaml"]', file)
    return Project(root=base, source=path, stacks=stacks, suites=tuple(suites))


def _anchored(spec: str, base: Path, what: str, file: str) -> str:
    """A stack's entry as the loader takes it: a built-in name, or the file's path (relative
    to the current directory when under it, so reports read as the user's own paths)."""
    if spec in BUILTIN_NAMES and not (base / spec).exists():
        return spec
    path = base / spec
    if not path.is_file():
        close = difflib.get_close_matches(spec, BUILTIN_NAMES, n=1)
        hint = f"; did you mean the built-in `{close[0]}`?" if close else ""
        raise PolicyError(f"{what}: {spec!r} is neither a built-in policy nor a file{hint}", file)
    try:
        return str(_real(path).relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def affected_stacks(project: Project, files: list[str]) -> list[tuple[str, tuple[str, ...]]]:
    """What to lint when `files` changed: each configured stack that uses one of them (whole,
    in its order), and each file in no stack alone. Named for the report: the stack's name,
    or the file."""
    chosen: dict[str, tuple[str, ...]] = {}
    for f in files:
        names = project.stacks_using(Path(f))
        if not names:
            chosen.setdefault(f, (f,))
        for name in names:
            chosen.setdefault(name, project.stacks[name])
    return list(chosen.items())


def affected_suites(project: Project, files: list[str]) -> list[Path]:
    """What to run when `files` changed: the suites among them, and every suite of the project
    that tests a changed policy (its `policies` name the file)."""
    from leashd.policy.suite_file import read_suite

    changed = {_real(Path(f)) for f in files}
    suites = project.suite_files()
    chosen = [s for s in suites if _real(s) in changed]
    policies_changed = changed - {_real(s) for s in suites}
    for suite_path in suites:
        if suite_path in chosen:
            continue
        suite = read_suite(suite_path)
        if any(_spec_path(s) in policies_changed for s in suite.policies):
            chosen.append(suite_path)
    # a changed file that is a suite outside the configured globs still runs
    for f in files:
        p = Path(f)
        if _real(p) not in {_real(s) for s in chosen} and _looks_like_suite(p):
            chosen.append(p)
    return sorted(chosen)


def _looks_like_suite(path: Path) -> bool:
    """A file whose top level has `cases` (and so is no policy, which has `rules`)."""
    import yaml

    from leashd.policy import yaml_fast

    if path.suffix not in (".yaml", ".yml"):
        return False
    try:
        doc = yaml_fast.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError):
        return False  # not for us to judge here: lint reports a broken file
    return isinstance(doc, dict) and "cases" in doc
