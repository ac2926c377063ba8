"""End to end through Telegram: `leashd start -f` as a real process with python-telegram-bot
talking to a fake Telegram Bot API on 127.0.0.1, and the real Claude Code CLI talking to the
fake Messages API. The owner's chat and a stranger's are driven from the fake's user side;
what happens is checked on disk, in the audit log and in the chat as Telegram would hold it.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest

from leashd.agent.runner import bundled_cli
from tests.fakes.anthropic_api import text
from tests.fakes.telegram_api import FakeTelegram
from tests.test_e2e_daemon import LEASHD, World, world  # noqa: F401
from tests.tmux import until

pytestmark = pytest.mark.skipif(
    bundled_cli() is None, reason="the Claude Code CLI bundled with claude-agent-sdk is missing"
)

TOKEN = "7000001:AAE-leashd-test-token-0123456789abcdef"
OWNER, STRANGER = 4242, 6666


class Bot:
    """The daemon with its bot, and the fake Telegram it talks to."""

    def __init__(self, world: World, tg: FakeTelegram) -> None:
        self.world, self.tg = world, tg
        self.proc: subprocess.Popen[str] | None = None
        self.env = {
            **world.env,
            "LEASHD_TELEGRAM_BOT_TOKEN": TOKEN,
            "LEASHD_TELEGRAM_BASE_URL": tg.base_url,
            "LEASHD_ALLOWED_USER_IDS": str(OWNER),
            "LEASHD_STREAMING_THROTTLE_SECONDS": "0.2",
        }

    def start(self, **env: str) -> None:
        log = open(self.world.root / "daemon.out", "a")  # noqa: SIM115 - the process keeps it
        self.proc = subprocess.Popen(
            [*LEASHD, "start", "-f"], env={**self.env, **env}, cwd=self.world.proj,
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        self.tg.wait_calls("getUpdates", timeout=60)  # polling: ready for messages

    def output(self) -> str:
        path = self.world.root / "daemon.out"
        return path.read_text() if path.exists() else ""

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError("the daemon did not stop within 60 s:\n" + self.output()) from None

    def says(self, text: str, user: int = OWNER, reply_to: int | None = None) -> int:
        return self.tg.user_says(user, user, text, reply_to=reply_to)

    def button(self, message: dict, label: str) -> str:
        for row in message["reply_markup"] or []:
            for b in row:
                if b["text"].startswith(label):
                    return b["callback_data"]
        raise AssertionError(f"no {label!r} button on {message['text']!r}")


@pytest.fixture
def bot(world):
    with FakeTelegram(TOKEN) as tg:
        b = Bot(world, tg)
        yield b
        if b.proc is not None and b.proc.poll() is None:
            b.stop()
        assert not tg.unknown_methods, tg.unknown_methods


def last_message(body: dict) -> str:
    """The conversation's last message, past the note on the sandbox the CLI appends."""
    said = [m for m in body["messages"] if m.get("role") != "system"]
    return json.dumps(said[-1])


def approvals(world: World) -> list[tuple[str, str | None]]:
    return [(r["event"], r.get("who")) for r in world.records() if r.get("kind") == "approval"]


# --- the story ------------------------------------------------------------------------------


def test_owner_approves_a_write_a_stranger_cannot_and_the_answer_arrives(world, bot):
    f, tg = world.fake, bot.tg
    f.call("Write", {"file_path": str(world.proj / "a.txt"), "content": "hello\n"})
    f.say("I wrote **a.txt** for you.")
    bot.start()

    bot.says("please write a.txt")
    ask = tg.wait_message(OWNER, "Approval needed", buttons=True)
    assert str(world.proj / "a.txt") in ask["text"] and "hello" in ask["text"]
    assert "file-writes" in ask["text"]  # the deciding rule
    approve = bot.button(ask, "✅ Approve")

    # a stranger's press is refused, audited, and changes nothing
    q = tg.press(OWNER, STRANGER, ask["message_id"], approve)
    assert "only the configured approvers" in tg.wait_answer(q)["text"]
    assert not (world.proj / "a.txt").exists()
    # the owner's is applied
    q = tg.press(OWNER, OWNER, ask["message_id"], approve)
    tg.wait_answer(q)
    done = tg.wait_message(OWNER, "I wrote a.txt for you.")
    assert (world.proj / "a.txt").read_text() == "hello\n"
    assert "<b>a.txt</b>" in done["raw"]  # Markdown rendered
    decided = tg.message(OWNER, ask["message_id"])
    assert "Approved by" in decided["text"] and not decided["reply_markup"]
    tg.wait_message(OWNER, "🧰 Write")
    assert approvals(world) == [("requested", None), ("refused", str(STRANGER)),
                                ("approved", str(OWNER))]  # fmt: skip
    # a replayed press does nothing
    q = tg.press(OWNER, OWNER, ask["message_id"], approve, force=True)
    assert "no longer waiting" in tg.wait_answer(q)["text"]
    assert approvals(world)[-1] == ("approved", str(OWNER))
    # the stranger cannot talk to the agent at all
    bot.says("hello?", user=STRANGER)
    bot.says("/status")
    tg.wait_message(OWNER, "Mode: default")
    assert not tg.bot_messages(STRANGER)
    assert len(f.user_texts()) == 1
    (world.root.parent / "last-telegram-transcript.txt").write_text(tg.transcript(OWNER))


def test_a_denied_rm_rf_is_never_asked_and_the_model_is_told(world, bot):
    f, tg = world.fake, bot.tg
    rm = f.call("Bash", {"command": "rm -rf ~", "description": "tidy up"})
    f.say("I was not allowed to.")
    bot.start()

    bot.says("clean my home")
    tg.wait_message(OWNER, "I was not allowed to.")
    assert world.home.is_dir() and (world.proj / "README.md").exists()
    assert not [m for m in tg.bot_messages(OWNER) if "Approval needed" in m["text"]]
    denied = tg.wait_message(OWNER, "⛔ Denied")
    assert "rm -rf ~" in denied["text"]
    assert "Denied by leashd" in f.tool_results()[rm]
    assert [r["decision"] for r in world.decisions()] == ["deny"]


def test_a_reply_to_an_approval_rejects_it_with_that_reason(world, bot):
    f, tg = world.fake, bot.tg
    call = f.call("Bash", {"command": "git push origin main", "description": "push"})
    f.say("Understood, not pushing.")
    bot.start()

    bot.says("ship it")
    ask = tg.wait_message(OWNER, "Approval needed", buttons=True)
    assert "git push origin main" in ask["text"]
    bot.says("not before the review", reply_to=ask["message_id"])
    tg.wait_message(OWNER, "Understood, not pushing.")
    assert "not before the review" in f.tool_results()[call]
    rejected = tg.message(OWNER, ask["message_id"])
    assert "Rejected by" in rejected["text"] and "not before the review" in rejected["text"]
    assert approvals(world)[-1] == ("rejected", str(OWNER))


def test_an_unanswered_approval_expires_and_says_so(world, bot):
    f, tg = world.fake, bot.tg
    f.call("Write", {"file_path": str(world.proj / "late.txt"), "content": "x"})
    f.say("Nobody answered.")
    bot.start(LEASHD_APPROVAL_TIMEOUT_SECONDS="2")

    bot.says("write late.txt")
    ask = tg.wait_message(OWNER, "Approval needed", buttons=True)
    tg.wait_message(OWNER, "Nobody answered.")
    expired = tg.wait_for(
        lambda: "Expired" in (m := tg.message(OWNER, ask["message_id"]))["text"] and m
    )
    assert not expired["reply_markup"]
    assert not (world.proj / "late.txt").exists()
    assert ("expired", None) in approvals(world)
    q = tg.press(OWNER, OWNER, ask["message_id"], bot.button(ask, "✅ Approve"), force=True)
    assert "no longer waiting" in tg.wait_answer(q)["text"]
    assert not (world.proj / "late.txt").exists()


def test_telegram_down_for_a_while_then_back(world, bot):
    """The daemon keeps running while Telegram is unreachable; an approval still times out to
    a deny, and what was said meanwhile arrives once Telegram is back."""
    f, tg = world.fake, bot.tg
    f.call("Write", {"file_path": str(world.proj / "down.txt"), "content": "x"})
    f.say("Gave up waiting.")
    bot.start(LEASHD_APPROVAL_TIMEOUT_SECONDS="3")

    bot.says("write down.txt")
    ask = tg.wait_message(OWNER, "Approval needed", buttons=True)
    tg.down()
    # the approval times out while Telegram is down
    until(lambda: ("expired", None) in approvals(world), 60, "the approval expired")
    assert bot.proc is not None and bot.proc.poll() is None, bot.output()
    tg.up()
    tg.wait_message(OWNER, "Gave up waiting.", timeout=60)
    tg.wait_for(lambda: "Expired" in tg.message(OWNER, ask["message_id"])["text"], timeout=60)
    assert not (world.proj / "down.txt").exists()
    # and it listens again
    f.say("Back.")
    bot.says("are you there?")
    tg.wait_message(OWNER, "Back.", timeout=60)


def test_telegram_429_is_waited_out(world, bot):
    f, tg = world.fake, bot.tg
    f.say("Slowly but surely.")
    bot.start()
    tg.rate_limit("sendMessage", retry_after=2)
    sent = time.monotonic()
    bot.says("hi")
    tg.wait_message(OWNER, "Slowly but surely.")
    limited = [r for r in tg.calls("sendMessage") if r.status == 429]
    assert len(limited) == 1
    assert time.monotonic() - sent >= 2


def test_sigterm_stops_cleanly_and_the_pending_approval_is_denied(world, bot):
    f, tg = world.fake, bot.tg
    f.call("Write", {"file_path": str(world.proj / "never.txt"), "content": "x"})
    f.say("unreachable")
    bot.start()

    bot.says("write never.txt")
    ask = tg.wait_message(OWNER, "Approval needed", buttons=True)
    assert bot.stop() == 0, bot.output()
    assert not (world.proj / "never.txt").exists()
    assert ("shutdown", None) in approvals(world)
    stopped = tg.message(OWNER, ask["message_id"])
    assert "daemon stopped" in stopped["text"] and not stopped["reply_markup"]
    status = subprocess.run([*LEASHD, "status"], env=bot.env, capture_output=True, text=True)
    assert status.returncode == 3  # not running, no stale PID file left


def test_a_message_during_a_turn_offers_interrupt_or_queue(world, bot):
    f, tg = world.fake, bot.tg
    f.call("Bash", {"command": "sleep 20", "description": "wait long"})
    # only a first turn let run on would see the sleep's result
    f.reply(text("First done."), when=lambda body: "tool_result" in last_message(body))
    f.reply(text("Second answer."), when=lambda body: "second" in last_message(body))
    bot.start()

    bot.says("first, slowly")
    tg.wait_message(OWNER, "🔧 Bash: sleep 20")
    started = time.monotonic()
    bot.says("second")
    offer = tg.wait_message(OWNER, "A turn is running", buttons=True)
    q = tg.press(OWNER, OWNER, offer["message_id"], bot.button(offer, "⏹ Interrupt"))
    assert tg.wait_answer(q)["text"] == "Interrupting…"
    tg.wait_message(OWNER, "⏹ Interrupted.")
    tg.wait_message(OWNER, "Second answer.", timeout=60)
    assert time.monotonic() - started < 15  # the sleep did not hold it
    assert f.user_texts()[-1] == "second"
    assert not [m for m in tg.bot_messages(OWNER) if "First done." in m["text"]]
    chosen = tg.message(OWNER, offer["message_id"])
    assert "→ interrupting" in chosen["text"] and not chosen["reply_markup"]


def test_commands_menu_dir_buttons_and_a_long_answer(world, bot):
    f, tg = world.fake, bot.tg
    other = world.home / "other-proj"
    other.mkdir()
    long_answer = "\n".join(f"{i:04d} " + "lorem ipsum & <dolor> " * 8 for i in range(300))
    f.say(long_answer)
    bot.start(LEASHD_APPROVED_DIRECTORIES=f"{world.proj},{other}")
    tg.wait_for(lambda: tg.commands, what="setMyCommands")
    assert {c["command"] for c in tg.commands} >= {"start", "plan", "dir", "status", "cancel"}

    bot.says("/dir")
    listing = tg.wait_message(OWNER, "Approved directories", buttons=True)
    q = tg.press(OWNER, OWNER, listing["message_id"], bot.button(listing, "other-proj"))
    tg.wait_answer(q)
    tg.wait_message(OWNER, f"Working in {other}")
    # a newer listing makes the older one's buttons do nothing
    bot.says("/dir")
    tg.wait_message(OWNER, "Approved directories", buttons=True, after=listing["message_id"])
    old = bot.button(listing, "other-proj")
    q = tg.press(OWNER, OWNER, listing["message_id"], old)
    assert tg.wait_answer(q)["text"] == "This button no longer does anything."

    bot.says("tell me a lot")
    tg.wait_message(OWNER, "0299 lorem", timeout=60)
    pieces = [m for m in tg.bot_messages(OWNER) if "lorem ipsum" in m["text"]]
    assert len(pieces) >= 4 and all(len(m["text"]) <= 4096 for m in pieces)
    shown = "\n".join(m["text"] for m in pieces)
    assert all(f"{i:04d} lorem" in shown for i in range(300))  # nothing lost


# --- starting ---------------------------------------------------------------------------------


def test_no_allowed_users_refuses_to_start_and_says_how_to_find_your_id(world, bot):
    p = subprocess.run(
        [*LEASHD, "start", "-f"], env={**bot.env, "LEASHD_ALLOWED_USER_IDS": ""},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert p.returncode == 2
    assert "@userinfobot" in p.stderr and "LEASHD_TELEGRAM_OPEN_BOT" in p.stderr
    assert not bot.tg.requests  # Telegram was never contacted


def test_a_rejected_token_is_reported(world, bot):
    p = subprocess.run(
        [*LEASHD, "start", "-f"], env={**bot.env, "LEASHD_TELEGRAM_BOT_TOKEN": "7000001:wrong"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert p.returncode == 2
    assert "rejected the bot token" in p.stderr


def test_background_start_status_restart_and_stop(world, bot):
    env = bot.env
    run = lambda *a: subprocess.run([*LEASHD, *a], env=env, capture_output=True, text=True,  # noqa: E731
                                    timeout=120)  # fmt: skip
    started = run("start")
    assert started.returncode == 0, started.stderr
    assert "leashd started (pid" in started.stdout
    status = run("status")
    assert status.returncode == 0 and "telegram" in status.stdout
    pid = status.stdout.split("pid ")[1].split(",")[0]
    assert run("start").returncode == 1  # one at a time
    restarted = run("restart")
    assert restarted.returncode == 0, restarted.stderr
    new_pid = run("status").stdout.split("pid ")[1].split(",")[0]
    assert new_pid != pid
    world.fake.say("Still here.")
    bot.says("ping")
    bot.tg.wait_message(OWNER, "Still here.")
    assert run("stop").returncode == 0
    assert run("status").returncode == 3


def test_a_policy_that_does_not_load_stops_the_bot_from_starting(world, bot):
    bad = world.home / "bad.leash"
    bad.write_text("allow Bash where command ~= \n")
    p = subprocess.run(
        [*LEASHD, "start", "-f"], env={**bot.env, "LEASHD_POLICY_FILES": str(bad)},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert p.returncode == 2, p.stderr
    assert "bad.leash:1" in p.stderr and "Traceback" not in p.stderr
    assert not bot.tg.requests


def test_a_long_command_is_sent_whole_as_a_document(world, bot):
    f, tg = world.fake, bot.tg
    message = " ".join(f"word{i}" for i in range(700))  # ~5,600 characters
    command = f"git commit --allow-empty -m '{message}'"
    call = f.call("Bash", {"command": command, "description": "commit"})
    f.say("Not committed.")
    bot.start()

    bot.says("commit")
    ask = tg.wait_message(OWNER, "Approval needed", buttons=True)
    assert "characters: the whole of it is in the file above" in ask["text"]
    [doc] = [m for m in tg.bot_messages(OWNER) if m["document"]]
    assert doc["document"]["data"].decode() == command  # never cut
    assert ask["reply_to"] == doc["message_id"]
    q = tg.press(OWNER, OWNER, ask["message_id"], bot.button(ask, "❌ Reject"))
    tg.wait_answer(q)
    tg.wait_message(OWNER, "Not committed.")
    assert "rejected by" in f.tool_results()[call]


def test_an_open_bot_lets_anyone_use_it_and_approve_in_their_own_chat(world, bot):
    f, tg = world.fake, bot.tg
    f.call("Write", {"file_path": str(world.proj / "open.txt"), "content": "x"})
    f.say("Done.")
    bot.start(LEASHD_ALLOWED_USER_IDS="", LEASHD_TELEGRAM_OPEN_BOT="true")

    anyone = 777
    bot.says("write open.txt", user=anyone)
    ask = tg.wait_message(anyone, "Approval needed", buttons=True)
    q = tg.press(anyone, anyone, ask["message_id"], bot.button(ask, "✅ Approve"))
    tg.wait_answer(q)
    tg.wait_message(anyone, "Done.")
    assert (world.proj / "open.txt").read_text() == "x"
    assert approvals(world)[-1] == ("approved", str(anyone))


def test_git_from_the_phone_with_buttons_a_document_and_the_users_records(world, bot):
    """`/git` through the fake Bot API against a real repository: status with its buttons, a
    button press that stages, a commit, long output as a document, each run audited as the
    owner's own."""
    tg, proj = bot.tg, world.proj
    ident = {"GIT_AUTHOR_NAME": "Dev", "GIT_AUTHOR_EMAIL": "dev@example.com",
             "GIT_COMMITTER_NAME": "Dev", "GIT_COMMITTER_EMAIL": "dev@example.com"}  # fmt: skip
    subprocess.run(["git", "init", "-q", "-b", "main", str(proj)], check=True)
    (proj / ".gitignore").write_text(".env\n")
    (proj / "big.txt").write_text("".join(f"row {i}\n" for i in range(3000)))
    bot.start(**ident)

    bot.says("/git status")
    status = tg.wait_message(OWNER, "README.md", buttons=True)
    q = tg.press(OWNER, OWNER, status["message_id"], bot.button(status, "➕ Add all"))
    tg.wait_answer(q)
    staged = tg.wait_message(OWNER, "", buttons=True, after=status["message_id"])
    assert bot.button(staged, "📝 Commit")
    bot.says("/git diff --staged")
    tg.wait_for(lambda: any(m.get("document") for m in tg.bot_messages(OWNER)), 30, "a document")
    (doc,) = [m["document"] for m in tg.bot_messages(OWNER) if m.get("document")]
    assert doc["filename"] == "git-diff.txt" and b"+row 2999" in doc["data"]
    bot.says("/git commit -m from the phone")
    tg.wait_message(OWNER, "from the phone", buttons=True)
    log = subprocess.run(["git", "-C", str(proj), "log", "--format=%s"], capture_output=True,
                         text=True, check=True).stdout  # fmt: skip
    assert log.strip() == "from the phone"
    tracked = subprocess.run(["git", "-C", str(proj), "ls-files"], capture_output=True,
                             text=True, check=True).stdout.split()  # fmt: skip
    assert "README.md" in tracked and ".env" not in tracked
    git_records = [r for r in world.records() if r.get("kind") == "git"]
    assert [r["event"] for r in git_records] == ["status", "add", "diff", "commit"]
    assert {(r["by"], r["who"]) for r in git_records} == {("user", str(OWNER))}
    assert world.fake.requests == []  # none of it went to the model
