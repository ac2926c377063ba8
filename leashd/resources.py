"""Where the data that ships with leashd lives: built-in policies, the grammar, compiled/.

In a wheel they are package data under `leashd/_data`; in a source checkout (editable
install, tests) they are the top-level directories of the repository.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def data_dir(name: str) -> Path:
    packaged = resources.files("leashd") / "_data" / name
    if packaged.is_dir():
        return Path(str(packaged))
    checkout = Path(__file__).resolve().parent.parent / name
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(f"leashd data directory {name!r} is missing from this install")
