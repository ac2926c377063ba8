"""Driving a real terminal program through tmux: start it in a detached session of a private
tmux server, type into it, read its screen."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import time
from pathlib import Path


class Tmux:
    def __init__(self, socket: Path, width: int = 200, height: int = 50) -> None:
        if shutil.which("tmux") is None:
            raise RuntimeError("tmux is not installed (the test command installs it)")
        self.socket = str(socket)
        self.width, self.height = width, height
        self.session = "leashd"

    def _tmux(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["tmux", "-S", self.socket, *args], capture_output=True, text=True, check=check
        )

    def start(self, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        # `exec env …`: the program is the pane's process, and the pane stays to be read
        # after it exits (remain-on-exit)
        command = f"cd {shlex.quote(str(cwd))} && exec env {exports} {shlex.join(argv)}"
        self._tmux("-f", "/dev/null", "new-session", "-d", "-s", self.session,
                   "-x", str(self.width), "-y", str(self.height), "bash", "--norc", "-c",
                   command)  # fmt: skip
        self._tmux("set-option", "-t", self.session, "remain-on-exit", "on")

    def type(self, text: str) -> None:
        self._tmux("send-keys", "-t", self.session, "-l", text)
        self._tmux("send-keys", "-t", self.session, "Enter")

    def key(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", self.session, *keys)

    def screen(self) -> str:
        out = self._tmux("capture-pane", "-p", "-J", "-S", "-2000", "-t", self.session,
                         check=False)  # fmt: skip
        return out.stdout

    def pid(self) -> int:
        out = self._tmux("display-message", "-p", "-t", self.session, "#{pane_pid}")
        return int(out.stdout.strip())

    def dead(self) -> bool:
        out = self._tmux("display-message", "-p", "-t", self.session, "#{pane_dead}",
                         check=False)  # fmt: skip
        return out.stdout.strip() == "1"

    def wait_for(self, text: str, timeout: float = 60.0, count: int = 1) -> str:
        """Until `text` is on the screen (`count` times); returns the screen."""
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if screen.count(text) >= count:
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} did not appear within {timeout} s:\n{screen}")
            time.sleep(0.1)

    def wait_dead(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.dead():
            if time.monotonic() > deadline:
                raise AssertionError(f"the program did not exit:\n{self.screen()}")
            time.sleep(0.1)

    def close(self) -> None:
        self._tmux("kill-server", check=False)
