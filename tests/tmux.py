"""Driving a real terminal program through tmux: start it in a detached session of a private
tmux server, type into it, read its screen.

Wait for states, never for time: `wait_idle` for the REPL's prompt (shown only when no turn
runs and nothing is asked), `wait_for` for a question on screen, `until` for anything else
(a record in the audit log, a request the fake API got)."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

PROMPT = "›"  # the REPL's prompt (leashd/connectors/terminal.py), shown only when it is idle


class Tmux:
    def __init__(self, socket: Path, width: int = 200, height: int = 50) -> None:
        if shutil.which("tmux") is None:
            raise RuntimeError("tmux is not installed (the test command installs it)")
        self.socket = str(socket)
        self.width, self.height = width, height
        self.session = "leashd"
        self._prompts = 0  # prompts on the screen when a key was last sent

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

    def type(self, text: str, enter: bool = True) -> None:
        """`text` typed, then Enter (without `enter`: a line left half-typed)."""
        self._prompts = _prompts(self.screen())
        self._tmux("send-keys", "-t", self.session, "-l", text)
        if enter:
            self._tmux("send-keys", "-t", self.session, "Enter")

    def key(self, *keys: str) -> None:
        self._prompts = _prompts(self.screen())
        self._tmux("send-keys", "-t", self.session, *keys)

    def screen(self) -> str:
        out = self._tmux("capture-pane", "-p", "-J", "-S", "-2000", "-t", self.session,
                         check=False)  # fmt: skip
        return out.stdout

    def rows(self) -> list[str]:
        """The rows of the window as they are now, top to bottom, wrapped lines not joined:
        `rows()[y]` is the row the cursor is on (`cursor()`)."""
        out = self._tmux("capture-pane", "-p", "-t", self.session, check=False)
        return out.stdout.split("\n")[: self.height]

    def cursor(self) -> tuple[int, int]:
        """Where the cursor is: (column, row) in the window, from 0."""
        out = self._tmux("display-message", "-p", "-t", self.session,
                         "#{cursor_x} #{cursor_y}")  # fmt: skip
        x, y = out.stdout.split()
        return int(x), int(y)

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

    def wait_idle(self, timeout: float = 60.0) -> str:
        """Until the REPL is idle again after what was last typed: a prompt newer than the
        last key sent, with nothing after it. Returns the screen.

        Type only when the REPL is idle or shows a question: then the next prompt can only
        come once that line has been acted on."""
        lines: list[str] = []

        def idle() -> bool:
            nonlocal lines
            lines = [line.rstrip() for line in self.screen().splitlines() if line.strip()]
            return bool(lines) and lines[-1] == PROMPT and _prompts(lines) > self._prompts

        try:
            until(idle, timeout)
        except AssertionError:
            shown = "\n".join(lines)
            raise AssertionError(f"no new prompt within {timeout} s:\n{shown}") from None
        return "\n".join(lines)

    def wait_dead(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.dead():
            if time.monotonic() > deadline:
                raise AssertionError(f"the program did not exit:\n{self.screen()}")
            time.sleep(0.1)

    def close(self) -> None:
        self._tmux("kill-server", check=False)


def until(check: Callable[[], object], timeout: float = 60.0, what: str = "") -> None:
    """Until `check()` is true: a state reached, polled."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout} s: {what or check}")
        time.sleep(0.05)


def _prompts(screen: str | list[str]) -> int:
    lines = screen.splitlines() if isinstance(screen, str) else screen
    return sum(1 for line in lines if line.startswith(PROMPT))
