"""Policy names and files -> one merged Policy.

A built-in policy comes from its compiled file (`compiled/`, artifact.py) while that is
current, so `leashd policy eval | explain | lint` of the built-ins parse no YAML: a file of
the user's that holds a built-in's exact bytes under its name (a copy of `default.yaml`)
too. Anything else is read by its front-end, imported when first needed.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from leashd.policy import artifact
from leashd.policy.compiler import CompiledPolicy, compile_policy
from leashd.policy.errors import PolicyError, PolicyErrors
from leashd.policy.ir import Policy, merge
from leashd.policy.plan import Plan, build_plan, concat
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
T = TypeVar("T")


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
    path = Path(spec).expanduser()  # `~/team.yaml` in LEASHD_POLICY_FILES: no shell expands it
    if not path.exists() or path.is_dir():
        raise _not_a_policy_file(spec, path)
    return path


def _not_a_policy_file(spec: str, path: Path) -> PolicyError:
    """The error of a policy named by a path that is no file: said of the whole file (no
    line, no column), and for a bare word, which built-in it may have meant."""
    if path.is_dir():
        return PolicyError("a directory, not a policy file", spec)
    if path.suffix or "/" in spec:
        return PolicyError("no such policy file", spec)
    import difflib

    hint = difflib.get_close_matches(spec, BUILTIN_NAMES, n=1)
    names = f"did you mean {hint[0]!r}?" if hint else ", ".join(BUILTIN_NAMES)
    return PolicyError(f"no such policy file, and not a built-in policy ({names})", spec)


def load_file(path: str | Path) -> Policy:
    """A policy file, by its extension: .yaml/.yml or .leash."""
    path = Path(path)
    if path.suffix in (".yaml", ".yml"):
        from leashd.policy.yaml_frontend import load_yaml  # PyYAML: only when needed

        return load_yaml(path)
    if path.suffix == ".leash":
        from leashd.policy.leash_frontend import load_leash  # Lark: only when needed

        return load_leash(path)
    raise PolicyError(
        f"unknown policy format {path.suffix!r}: use .yaml, .yml or .leash", str(path)
    )


@dataclass(frozen=True)
class _Loaded:
    policy: Policy
    plan: Plan | None  # known when it came from a compiled file (its examples verified)


def _load(spec: str) -> _Loaded:
    """One policy: from its compiled file when that is current for it, else its source."""
    name = builtin_name(spec)
    path = builtin_path(name) if name is not None else resolve_policy(spec)
    if name is None and path.suffix == ".yaml" and path.stem in BUILTIN_NAMES and _small(path):
        name = path.stem  # used only when the bytes are the built-in's (load_current checks)
    ready = artifact.load_current(name, path) if name is not None else None
    if ready is not None:
        return _Loaded(ready.policy, ready.plan)
    return _Loaded(load_file(path), None)


def _small(path: Path) -> bool:
    """A regular file no larger than a policy may be (load_current reads it whole)."""
    from leashd.policy.limits import MAX_FILE_BYTES

    try:
        return path.is_file() and path.stat().st_size <= MAX_FILE_BYTES
    except OSError:
        return False


def load_policies(specs: list[str] | tuple[str, ...] = ()) -> Policy:
    """Load and concatenate policies in order; none given means the built-in defaults."""
    return merge([x.policy for x in _each(specs or DEFAULT_POLICIES, _load)])


def _each(specs: list[str] | tuple[str, ...], load: Callable[[str], T]) -> list[T]:
    """`load` of every spec; when any fails, one error with the errors of every file (a file
    that fails hides none of the next files' errors)."""
    out: list[T] = []
    errors: list[PolicyError] = []
    failed: list[PolicyError] = []
    for spec in specs:
        try:
            out.append(load(spec))
        except PolicyError as exc:
            failed.append(exc)
            errors.extend(exc.errors if isinstance(exc, PolicyErrors) else [exc])
    if len(failed) == 1:
        raise failed[0]
    if failed:
        raise PolicyErrors(errors)
    return out


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
        loaded = _load(spec)
        plan = loaded.plan
        if plan is not None:
            verified.update(range(offset, offset + plan.size))
        else:
            plan = build_plan(loaded.policy)
        policies.append(loaded.policy)
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
