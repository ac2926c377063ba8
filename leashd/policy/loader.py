"""Policy names and files -> one merged Policy."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from leashd.policy import artifact
from leashd.policy.compiler import CompiledPolicy, compile_policy
from leashd.policy.errors import PolicyError
from leashd.policy.ir import Policy, merge
from leashd.policy.plan import Plan, build_plan, concat
from leashd.policy.yaml_frontend import load_yaml
from leashd.resources import data_dir

BUILTIN_NAMES = ("default", "strict", "permissive", "dev-tools", "autonomous")
DEFAULT_POLICIES = ("default", "dev-tools")


def builtin_path(name: str) -> Path:
    return data_dir("policies") / f"{name}.yaml"


# How leashd 0.x, run from its checkout, named its built-in policies (its README's
# `LEASHD_POLICY_FILES=policies/strict.yaml`); the policies now ship inside the package.
_CHECKOUT_PATH = re.compile(
    r"(?:\./)?(?:leashd/)?policies/(?P<name>"
    + "|".join(re.escape(n) for n in BUILTIN_NAMES)
    + r")\.(?:yaml|yml|leash)"
)
_log = logging.getLogger("leashd.policy")  # stderr when nothing configured logging


def builtin_name(spec: str) -> str | None:
    """The built-in policy `spec` stands for: a built-in name, or a path into leashd 0.x's
    checkout (`policies/strict.yaml`) when no file is there, which is said as a warning.
    None: `spec` is a file of the user's (a path that exists is always the file)."""
    if spec in BUILTIN_NAMES:
        return spec
    found = _CHECKOUT_PATH.fullmatch(spec)
    if found is None or Path(spec).exists():
        return None
    name = found["name"]
    _log.warning(
        "%s: no such file; using the built-in policy %r, as leashd 0.x did from its "
        "checkout (name it %r to say so)", spec, name, name,
    )  # fmt: skip
    return name


def resolve_policy(spec: str) -> Path:
    """A built-in name (`default`), a 0.x checkout path to a built-in (`builtin_name`), or
    a path to a policy file."""
    name = builtin_name(spec)
    if name is not None:
        return builtin_path(name)
    path = Path(spec)
    if not path.exists():
        raise PolicyError(
            f"no such policy file, and not a built-in policy ({', '.join(BUILTIN_NAMES)})",
            spec,
            0,
            0,
        )
    return path


def load_file(path: str | Path) -> Policy:
    """A policy file, by its extension: .yaml/.yml or .leash."""
    path = Path(path)
    if path.suffix in (".yaml", ".yml"):
        return load_yaml(path)
    if path.suffix == ".leash":
        from leashd.policy.leash_frontend import load_leash  # Lark: only when needed

        return load_leash(path)
    raise PolicyError(
        f"unknown policy format {path.suffix!r}: use .yaml, .yml or .leash", str(path), 0, 0
    )


def load_policies(specs: list[str] | tuple[str, ...] = ()) -> Policy:
    """Load and concatenate policies in order; none given means the built-in defaults."""
    return merge([load_file(resolve_policy(s)) for s in (specs or DEFAULT_POLICIES)])


def load_compiled(specs: list[str] | tuple[str, ...] = (), use_re2: bool = True) -> CompiledPolicy:
    """Load and compile policies in order, as `compile_policy(load_policies(specs))` would.

    A built-in policy whose `compiled/` file is current comes from that file (no YAML to
    parse, examples already verified); anything else is compiled from its source.
    """
    policies: list[Policy] = []
    plans: list[Plan] = []
    verified: set[int] = set()
    offset = 0
    for spec in specs or DEFAULT_POLICIES:
        name = builtin_name(spec)
        path = builtin_path(name) if name is not None else resolve_policy(spec)
        ready = artifact.load_current(name, path) if name is not None else None
        if ready is not None:
            policy, plan = ready.policy, ready.plan
            verified.update(range(offset, offset + plan.size))
        else:
            policy = load_file(path)
            plan = build_plan(policy)
        policies.append(policy)
        plans.append(plan)
        offset += plan.size
    return compile_policy(
        merge(policies), use_re2, plan=concat(plans), verified=frozenset(verified)
    )


def compiled_files() -> dict[str, str]:
    """The compiled file of every built-in policy (file name -> canonical text).

    Each policy is compiled with its examples verified first: a policy that fails them
    raises and gets no file.
    """
    out: dict[str, str] = {}
    for name in BUILTIN_NAMES:
        path = builtin_path(name)
        policy = load_file(path)
        compiled = compile_policy(policy)
        out[f"{name}.json"] = artifact.render(name, path, policy, compiled.plan)
    return out
