"""Policy names and files -> one merged Policy."""

from __future__ import annotations

from pathlib import Path

from leashd.policy.errors import PolicyError
from leashd.policy.ir import Policy, merge
from leashd.policy.yaml_frontend import load_yaml
from leashd.resources import data_dir

BUILTIN_NAMES = ("default", "strict", "permissive", "dev-tools", "autonomous")
DEFAULT_POLICIES = ("default", "dev-tools")


def builtin_path(name: str) -> Path:
    return data_dir("policies") / f"{name}.yaml"


def resolve_policy(spec: str) -> Path:
    """A built-in name (`default`) or a path to a policy file."""
    if spec in BUILTIN_NAMES:
        return builtin_path(spec)
    path = Path(spec)
    if not path.exists():
        raise PolicyError(
            f"no such policy file, and not a built-in policy ({', '.join(BUILTIN_NAMES)})",
            spec,
            0,
            0,
        )
    return path


def load_file(path: Path) -> Policy:
    if path.suffix in (".yaml", ".yml"):
        return load_yaml(path)
    raise PolicyError(f"unknown policy format {path.suffix!r}: use .yaml or .yml", str(path), 0, 0)


def load_policies(specs: list[str] | tuple[str, ...] = ()) -> Policy:
    """Load and concatenate policies in order; none given means the built-in defaults."""
    return merge([load_file(resolve_policy(s)) for s in (specs or DEFAULT_POLICIES)])
