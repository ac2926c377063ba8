"""Where the data that ships with leashd lives: built-in policies, the grammar, compiled/.

In a wheel they are package data under `leashd/_data`; in a source checkout (editable
install, tests) they are the top-level directories of the repository.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from importlib import metadata, resources
from pathlib import Path


def data_dir(name: str) -> Path:
    packaged = resources.files("leashd") / "_data" / name
    if packaged.is_dir():
        return Path(str(packaged))
    checkout = Path(__file__).resolve().parent.parent / name
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(f"leashd data directory {name!r} is missing from this install")


# What a policy's compiled form and its lint results are derived from: the compiler, its
# analyses and the shell stage (and the bounds they keep). The daemon, the gate, the CLI and
# the hook only use those results, so a change there leaves compiled/ current.
COMPILER_SOURCES = ("policy", "shell", "limits.py", "resources.py")


@lru_cache(maxsize=1)
def source_fingerprint() -> str:
    """A hash of the source of leashd's compiler (COMPILER_SOURCES): what is derived from a
    policy and stored (compiled/, the lint cache) is only reused by the same code. Raises
    OSError when the source cannot be read."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    paths: list[Path] = []
    for part in COMPILER_SOURCES:
        p = root / part
        paths.extend(p.rglob("*.py") if p.is_dir() else [p])
    for path in sorted(paths):
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def library_versions() -> str:
    """The versions of the libraries that read a policy (PyYAML) and validate its IR."""
    out = []
    for lib in ("pyyaml", "pydantic"):
        try:
            out.append(f"{lib} {metadata.version(lib)}")
        except metadata.PackageNotFoundError:
            out.append(f"{lib} ?")
    return ", ".join(out)
