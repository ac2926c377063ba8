"""What the pre-commit hooks install: pre-commit's virtualenv for the hooks served with
leashd-policy (packaging/pre-commit/make_repo.py), against the same hooks served from leashd's
own repository (the whole product: pre-commit runs `pip install .` there). Both are installed
by the real pre-commit (`install-hooks`) into a fresh PRE_COMMIT_HOME, in the same run.

    python benchmarks/bench_install.py [--skip-full]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import machine

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "packaging" / "pre-commit"))
from make_repo import make_repo  # noqa: E402


def _size(path: Path) -> int:
    return sum(f.lstat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=b", "-c", "user.email=b@b.invalid", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


def hooks_env(repo: Path, rev: str, base: Path, find_links: Path | None) -> tuple[float, float]:
    """(MiB of the hooks' virtualenv, seconds to install it) for the hooks repository."""
    project = base / "project"
    project.mkdir()
    (project / ".pre-commit-config.yaml").write_text(
        f"repos:\n  - repo: {repo}\n    rev: {rev}\n    hooks:\n      - id: leashd-policy-lint\n",
        encoding="utf-8",
    )
    _git(project, "init", "-q")
    env = {**os.environ, "PRE_COMMIT_HOME": str(base / "home")}
    if find_links is not None:
        env["PIP_FIND_LINKS"] = str(find_links)
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "pre_commit", "install-hooks"],
        cwd=project,
        env=env,
        check=True,
        capture_output=True,
    )
    seconds = time.perf_counter() - t0
    (venv,) = (base / "home").glob("repo*/py_env-*")
    return _size(venv) / 2**20, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-full", action="store_true", help="Only the lean hooks.")
    args = parser.parse_args()
    print(machine())
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        wheels = base / "wheels"
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels),
             str(ROOT / "packaging" / "leashd-policy")],
            check=True,
            capture_output=True,
        )  # fmt: skip
        tag = make_repo(base / "leashd-pre-commit")
        (base / "lean").mkdir()
        mib, s = hooks_env(base / "leashd-pre-commit", tag, base / "lean", wheels)
        print(f"hooks with leashd-policy:      {mib:6.1f} MiB  (installed in {s:.0f} s)")
        if not args.skip_full:
            # leashd's own repository as the hooks repository: a clone of this checkout's HEAD
            full_repo = base / "leashd"
            subprocess.run(["git", "clone", "-q", str(ROOT), str(full_repo)], check=True)
            head = subprocess.run(
                ["git", "rev-parse", "HEAD"], cwd=full_repo, capture_output=True, text=True
            ).stdout.strip()
            (base / "full").mkdir()
            mib_full, s_full = hooks_env(full_repo, head, base / "full", None)
            print(
                f"hooks with leashd (the whole): {mib_full:6.1f} MiB  (installed in {s_full:.0f} s)"
            )
            print(f"ratio: {mib_full / mib:.1f}x")


if __name__ == "__main__":
    main()
