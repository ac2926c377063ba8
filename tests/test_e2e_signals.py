"""The daemon's life at its edges: a SIGHUP (`leashd add-dir`) the moment it holds its
lock, before its handlers are in place; its terminal going away; its bot token revoked
while it polls. None may leave it dead by accident or running on uselessly."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time

from leashd.daemon import process
from tests.test_e2e_daemon import LEASHD, world  # noqa: F401
from tests.test_e2e_telegram import bot  # noqa: F401
from tests.tmux import until


def test_a_sighup_as_soon_as_the_daemon_holds_its_lock_does_not_kill_it(world, bot):
    log = open(bot.world.root / "daemon.out", "a")  # noqa: SIM115
    proc = subprocess.Popen(
        [*LEASHD, "start", "-f"],
        env=bot.env,
        cwd=world.proj,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        home = world.leashd_home
        deadline = time.monotonic() + 60
        while not process.status(home).running:  # what `leashd add-dir` checks
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.005)
        polls = len(bot.tg.calls("getUpdates"))
        os.kill(proc.pid, signal.SIGHUP)  # `leashd add-dir DIR` just then
        # Alive and at work: a poll of Telegram after the signal comes after every step of
        # starting, so a signal that was going to kill it has done so by then.
        until(lambda: proc.poll() is not None or len(bot.tg.calls("getUpdates")) > polls, 60,
              "a poll after the signal")  # fmt: skip
        code = proc.poll()
        assert code is None, f"the daemon died of the SIGHUP (exit {code})"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)


def test_a_token_revoked_while_polling_stops_the_daemon_and_says_why(world, bot):
    """InvalidToken ends python-telegram-bot's polling without calling anyone back; the
    daemon notices and exits 2 instead of running on, deaf, holding its lock."""
    tg = bot.tg
    bot.start()
    tg.token = tg.token.split(":")[0] + ":revoked"  # BotFather /revoke
    tg.down()  # ends the waiting long poll, so the next one sees the new token
    tg.wait_for(lambda: any(r.status == 502 for r in tg.calls("getUpdates")), 30, "poll ended")
    tg.up()
    assert bot.proc is not None
    assert bot.proc.wait(30) == 2
    assert "rejected the bot token" in bot.output()
    status = subprocess.run([*LEASHD, "status"], env=bot.env, capture_output=True, text=True)
    assert status.returncode == 3


def test_a_terminal_daemon_whose_terminal_goes_away_stops(world):
    """`leashd start -f` in a terminal that closes: the daemon gets SIGHUP (a reload, for a
    daemon) and its stdin fails with EIO. The REPL takes the failed read as the end of input
    and the daemon stops; it used to run on for ever, holding the one-daemon lock (found
    as 142 orphaned test daemons on a development machine)."""
    import pty

    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [*LEASHD, "start", "-f"],
        env=world.env,
        cwd=world.proj,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
    )
    os.close(slave)
    try:
        # the REPL is up and reading its terminal: its prompt is on the screen
        shown = b""
        while "›".encode() not in shown:
            assert proc.poll() is None, shown.decode(errors="replace")
            ready, _, _ = select.select([master], [], [], 60)
            assert ready, f"no prompt within 60 s: {shown.decode(errors='replace')}"
            shown += os.read(master, 4096)
        os.close(master)  # the terminal window is closed ...
        os.kill(proc.pid, signal.SIGHUP)  # ... and its hang-up signal sent
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            raise AssertionError("the daemon outlived its terminal") from None
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
