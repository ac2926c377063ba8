"""Fetch the policies every published leashd 0.x release shipped, for the compatibility tests.

Run by the README's test command before pytest, because the tests themselves never leave
loopback. The policies are read from the real wheels on the package index (pip verifies the
index's hashes) rather than copied into this repository: they belong to those releases.

    python tests/fetch_published.py [--dest DIR]

Writes DIR/<version>/<name>.yaml and DIR/manifest.json (version -> {name: sha256}). A complete
manifest is left as it is, so a second run costs nothing. Any version that cannot be fetched is
an error: the tests must not silently check fewer releases than were published.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

# Every leashd 0.x release on PyPI. Releases are immutable, so this list only grows if a 0.x
# release is ever published again (the project is at 2.x).
VERSIONS = (
    "0.5.0", "0.6.0", "0.6.1", "0.7.0", "0.7.1", "0.7.2", "0.7.3", "0.8.0", "0.9.0", "0.10.0",
    "0.11.0", "0.11.1", "0.12.0", "0.12.1", "0.13.0", "0.13.1", "0.13.2", "0.14.0", "0.15.0",
    "0.15.1", "0.15.2", "0.15.3", "0.15.4", "0.15.5", "0.16.0", "0.16.1", "0.16.2", "0.17.0",
    "0.17.1", "0.18.0", "0.18.1",
)  # fmt: skip
DEFAULT_DEST = Path(__file__).parent / ".published" / "leashd-0.x"
MANIFEST = "manifest.json"


def read_manifest(dest: Path) -> dict[str, dict[str, str]] | None:
    """The manifest if it covers every version and every file it names is intact."""
    try:
        manifest = json.loads((dest / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if sorted(manifest) != sorted(VERSIONS):
        return None
    for version, files in manifest.items():
        for name, digest in files.items():
            path = dest / version / name
            if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != digest:
                return None
    return manifest


def _policies_of(wheel: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(wheel) as zf:
        return {
            Path(n).name: zf.read(n)
            for n in zf.namelist()
            if n.startswith("leashd/policies/") and n.endswith((".yaml", ".yml"))
        }


def fetch(dest: Path) -> dict[str, dict[str, str]]:
    manifest: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for version in VERSIONS:
            cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                   "--only-binary=:all:", "-d", tmp, f"leashd=={version}"]  # fmt: skip
            done = subprocess.run(cmd, capture_output=True, text=True)
            wheels = list(Path(tmp).glob(f"leashd-{version}-*.whl"))
            if done.returncode or len(wheels) != 1:
                raise SystemExit(f"cannot fetch leashd=={version}:\n{done.stderr.strip()}")
            policies = _policies_of(wheels[0])
            if not policies:
                raise SystemExit(f"leashd=={version} ships no policies: the list above is wrong")
            (dest / version).mkdir(parents=True, exist_ok=True)
            for name, data in policies.items():
                (dest / version / name).write_bytes(data)
            manifest[version] = {n: hashlib.sha256(d).hexdigest() for n, d in policies.items()}
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST)
    dest = parser.parse_args().dest
    manifest = read_manifest(dest) or fetch(dest)
    distinct = {d for files in manifest.values() for d in files.values()}
    files = sum(len(f) for f in manifest.values())
    print(f"leashd 0.x policies: {len(manifest)} releases, {files} files, {len(distinct)} distinct")


if __name__ == "__main__":
    main()
