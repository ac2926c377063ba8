"""Everything the test suite needs that pip does not install, run by the README's test command
before pytest (the tests themselves never leave loopback):

- the policies of the published leashd 0.x releases (`fetch_published.py`);
- tmux, which drives the terminal REPL in the end-to-end tests: from the system's package
  manager (apt-get, as root or through sudo) when it is not there yet.

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


def ensure_tmux() -> None:
    if shutil.which("tmux"):
        return
    if shutil.which("apt-get") is None:
        sys.exit("tests/prepare.py: tmux is missing and there is no apt-get; install tmux")
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for step in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "tmux"]):
        if subprocess.run([*sudo, *step], env=env).returncode != 0:
            sys.exit(f"tests/prepare.py: `{' '.join(step)}` failed; install tmux")
    if shutil.which("tmux") is None:
        sys.exit("tests/prepare.py: tmux is still missing after apt-get")


def main() -> None:
    ensure_tmux()
    sys.argv = [sys.argv[0]]
    fetch_published.main()


if __name__ == "__main__":
    main()
