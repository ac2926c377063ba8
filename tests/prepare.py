"""Everything the test suite needs that pip does not install, run by the README's test command
before pytest (the tests themselves never leave loopback):

- the policies of the published leashd 0.x releases (`fetch_published.py`);
- tmux, which drives the terminal REPL in the end-to-end tests, and bubblewrap and socat, the
  OS sandbox under every Bash call (the sandbox tests assert its effects): from the system's
  package manager (apt-get, as root or through sudo) when they are not there yet.

Anything it cannot provide is an error: a test must fail, never be skipped, for want of it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fetch_published

# program -> the Debian package that has it
PACKAGES = {"tmux": "tmux", "bwrap": "bubblewrap", "socat": "socat"}


def ensure_packages() -> None:
    missing = [pkg for prog, pkg in PACKAGES.items() if shutil.which(prog) is None]
    if not missing:
        return
    names = " ".join(missing)
    if shutil.which("apt-get") is None:
        sys.exit(f"tests/prepare.py: {names} missing and there is no apt-get; install them")
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for step in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *missing]):
        if subprocess.run([*sudo, *step], env=env).returncode != 0:
            sys.exit(f"tests/prepare.py: `{' '.join(step)}` failed; install {names}")
    still = [prog for prog in PACKAGES if shutil.which(prog) is None]
    if still:
        sys.exit(f"tests/prepare.py: {' '.join(still)} still missing after apt-get")


def main() -> None:
    ensure_packages()
    sys.argv = [sys.argv[0]]
    fetch_published.main()


if __name__ == "__main__":
    main()
