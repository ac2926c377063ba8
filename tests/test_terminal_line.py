"""The line being typed in the terminal REPL (leashd/connectors/terminal_line.py): output that
arrives meanwhile goes above it, and it is drawn again under that with what was typed and
the cursor where they were; piped, the REPL prints plain text.

On a real terminal: the REPL with a stand-in engine (tests/fakes/repl_engine.py) in tmux,
each notice sent by SIGUSR1 while the test types, the screen and the cursor read back from
tmux. Then the editing itself, in this process: keys, escape sequences split across reads,
where characters land on a terminal of a given width."""

from __future__ import annotations

import io
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from leashd.connectors.terminal import PROMPT
from leashd.connectors.terminal_line import InputLine, _layout
from tests.conftest import ROOT
from tests.tmux import Tmux, until

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

STAND_IN = [sys.executable, "-m", "tests.fakes.repl_engine"]
IDLE = PROMPT.rstrip()  # the prompt with nothing typed, as a line of the screen


class Repl:
    def __init__(self, term: Tmux, sent: Path) -> None:
        self.term = term
        self.sent = sent  # the lines the REPL sent to the engine
        self.notices = 0

    def notice(self) -> None:
        """A notice arrives (a task's progress, a reload): `notice N`, and it is on screen."""
        self.notices += 1
        os.kill(self.term.pid(), signal.SIGUSR1)
        self.term.wait_for(f"notice {self.notices}", timeout=30)

    def lines(self) -> list[str]:
        return [line.rstrip() for line in self.term.screen().splitlines() if line.strip()]

    def shows(self, last: str) -> list[str]:
        """Until the last line on screen (wrapped rows joined) is `last`; the lines."""
        until(lambda: self.lines()[-1] == last, 30, f"the last line {last!r}")
        return self.lines()

    def typed_lines(self) -> list[str]:
        return self.sent.read_text().splitlines() if self.sent.exists() else []


@pytest.fixture
def tmp() -> Iterator[Path]:
    # short: a tmux socket's path is limited to about 100 bytes
    path = Path(tempfile.mkdtemp(prefix="leashd-line-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def start(tmp: Path, width: int = 100, height: int = 30) -> Repl:
    term = Tmux(tmp / "tmux", width=width, height=height)
    sent = tmp / "sent.txt"
    term.start([*STAND_IN, str(sent)], {}, ROOT)
    term.wait_idle(30)
    return Repl(term, sent)


@pytest.fixture
def repl(tmp: Path) -> Iterator[Repl]:
    r = start(tmp)
    yield r
    r.term.close()


def test_notices_while_idle_are_printed_above_the_one_prompt(repl):
    for _ in range(5):
        repl.notice()
    lines = repl.shows(IDLE)

    assert lines[0].startswith("leashd — type a message")
    # each notice once, in order, then the prompt: no empty prompt left above any of them
    assert lines[1:] == ["notice 1", "notice 2", "notice 3", "notice 4", "notice 5", IDLE]
    # the cursor is after the prompt
    x, y = repl.term.cursor()
    assert (x, repl.term.rows()[y].rstrip()) == (2, IDLE)


def test_a_half_typed_line_stays_under_notices_with_its_cursor(repl):
    term = repl.term
    term.type("hello world", enter=False)
    repl.shows("› hello world")
    term.key(*["Left"] * 5)  # the cursor before "world"
    until(lambda: term.cursor()[0] == 8, 30, "the cursor moved")
    for _ in range(3):
        repl.notice()
    lines = repl.shows("› hello world")

    assert lines[-4:] == ["notice 1", "notice 2", "notice 3", "› hello world"]
    assert sum(line.startswith(PROMPT) for line in lines) == 1  # only the line being typed
    x, y = term.cursor()
    assert (x, term.rows()[y].rstrip()) == (8, "› hello world")  # where it was
    # typing goes on where the cursor is; Enter sends the whole line
    term.type("big ")
    until(lambda: repl.typed_lines() == ["hello big world"], 30, "the line sent")
    lines = repl.shows(IDLE)
    assert lines[-3:] == ["› hello big world", "said: hello big world", IDLE]


def test_notices_while_keys_are_typed_garble_nothing(repl):
    """Keys and notices interleaved as fast as they come: the line is whole at the end."""
    term = repl.term
    words = ["alpha", "beta", "gamma", "delta", "epsilon"]
    for n, word in enumerate(words, 1):
        os.kill(term.pid(), signal.SIGUSR1)  # not waited for: it lands among the keys
        term.type(word + " ", enter=False)
        term.wait_for(f"notice {n}", timeout=30)  # before the next (signals coalesce)
    line = "› " + " ".join(words)
    lines = repl.shows(line)
    assert sorted(lines[1:-1]) == [f"notice {n}" for n in range(1, 6)]
    term.key("Enter")
    until(lambda: repl.typed_lines() == [" ".join(words) + " "], 30, "the line sent")


@pytest.mark.parametrize("length", [100, 78, 77])  # wraps; fills two rows exactly; one less
def test_a_line_longer_than_the_window_is_drawn_again_whole(tmp, length):
    """The window is 40 columns: the line being typed wraps, and is still cleared and
    drawn again whole, the cursor on the right row and column, also when the line fills
    its last row exactly (the terminal then waits at the margin)."""
    repl = start(tmp, width=40)
    try:
        term = repl.term
        text = ("0123456789" * 10)[:length]
        term.type(text, enter=False)
        repl.shows("› " + text)
        start_row = next(y for y, row in enumerate(term.rows()) if row.startswith("› 0123"))
        # at the end of the text; after a full last row, at the start of the next
        end = ((2 + length) % 40, start_row + (2 + length) // 40)
        assert term.cursor() == end

        repl.notice()
        lines = repl.shows("› " + text)
        assert lines[-2:] == ["notice 1", "› " + text]
        assert term.cursor() == (end[0], end[1] + 1)  # the same place, a row lower

        term.key("Home")  # the cursor back at the start: typing goes in there
        term.type("X", enter=False)
        until(lambda: term.cursor() == (3, start_row + 1), 30, "after X")
        repl.notice()
        repl.shows("› X" + text)
        assert term.cursor() == (3, start_row + 2)
        term.key("Enter")
        until(lambda: repl.typed_lines() == ["X" + text], 30, "the line sent")
    finally:
        repl.term.close()


def test_wide_characters_wrap_as_the_terminal_wraps_them(tmp):
    """Each of these characters takes two columns. In a window 41 wide, after "› " and 19 of
    them one column is left, too narrow: the 20th starts the next row."""
    repl = start(tmp, width=41)
    try:
        term = repl.term
        text = "漢字" * 12 + "です"  # 26 characters, 52 columns
        term.type(text, enter=False)
        repl.shows("› " + text)
        x, y = term.cursor()
        assert x == (26 - 19) * 2
        assert term.rows()[y - 1].startswith("› 漢字")
        term.key(*["Left"] * 8)  # among the first row's characters
        until(lambda: term.cursor() == (2 + 18 * 2, y - 1), 30, "the cursor moved")

        repl.notice()
        repl.shows("› " + text)
        assert term.cursor() == (2 + 18 * 2, y)  # the same place, a row lower
        term.type("!")
        until(lambda: repl.typed_lines() == [text[:18] + "!" + text[18:]], 30, "the line sent")
    finally:
        repl.term.close()


def test_editing_keys(repl):
    term = repl.term
    term.type("one two three", enter=False)
    term.key("C-w")  # the word before the cursor
    term.key("C-a")
    term.type("zero ", enter=False)
    term.key("End", "BSpace")
    term.key("M-b", "M-b", "C-k")  # back two words, then the rest of the line
    repl.shows("› zero")
    term.key("C-u")
    term.type("again", enter=False)
    term.key("Home", "Right", "DC", "C-d")  # Delete and Ctrl-D, each a character
    term.key("Enter")
    until(lambda: repl.typed_lines() == ["ain"], 30, "the line sent")


def test_ctrl_d_on_an_empty_line_leaves_and_the_terminal_mode_is_put_back(tmp):
    term = Tmux(tmp / "tmux")
    sent = tmp / "sent.txt"
    try:
        # after the REPL, the terminal's settings as the shell then finds them
        term.start(["bash", "-c", '"$@"; stty -a', "-", *STAND_IN, str(sent)], {}, ROOT)
        term.wait_idle(30)
        term.type("not empty", enter=False)
        term.key("C-d")  # not the end: it deletes (nothing, at the end of the line)
        until(lambda: term.screen().rstrip().endswith("› not empty"), 30, "the line")
        term.key("C-u", "C-d")
        term.wait_dead()
        lines = [line.rstrip() for line in term.screen().splitlines() if line.strip()]
    finally:
        term.close()
    bye = lines.index("bye")
    assert lines[bye - 1] == IDLE  # the prompt stays, the cursor went to the next line
    settings = " ".join(lines[bye + 1 :]).split()
    assert "icanon" in settings and "echo" in settings, settings
    assert not sent.exists()


def test_piped_output_is_plain_text(tmp):
    """stdout to a file, stdin the terminal: no escape sequences in what is written, and a
    notice at the prompt is printed under it, the prompt again after it."""
    out = tmp / "out.txt"
    sent = tmp / "sent.txt"
    term = Tmux(tmp / "tmux")
    try:
        term.start(["bash", "-c", f'exec "$@" > {out}', "-", *STAND_IN, str(sent)], {}, ROOT)
        until(lambda: out.exists() and out.read_text().endswith(PROMPT), 30, "the prompt")
        term.type("hi")
        until(lambda: sent.exists() and sent.read_text() == "hi\n", 30, "the line sent")
        os.kill(term.pid(), signal.SIGUSR1)
        until(lambda: "notice 1" in out.read_text(), 30, "the notice")
        until(lambda: out.read_text().endswith(PROMPT), 30, "the prompt again")
        term.key("C-d")
        term.wait_dead()
        written = out.read_text()
    finally:
        term.close()
    assert "\x1b" not in written
    assert written.endswith(f"said: hi\n{PROMPT}\nnotice 1\n{PROMPT}bye\n")


# --- in this process --------------------------------------------------------------------------


def editor(text: str = "", pos: int | None = None) -> tuple[InputLine, list[str | None]]:
    sent: list[str | None] = []
    line = InputLine(-1, io.StringIO(), sent.append)
    line.text, line.pos = text, len(text) if pos is None else pos
    return line, sent


def press(line: InputLine, *chunks: str) -> None:
    """Keys as reads deliver them: escape sequences may be split between two reads."""
    for chunk in chunks:
        for key in line._split(chunk):
            line._key(key)


def test_keys_edit_the_line_at_the_cursor():
    line, sent = editor("hello world")
    press(line, "\x1b[D" * 5, "big ")
    assert (line.text, line.pos) == ("hello big world", 10)
    press(line, "\x01", "\x1b[3~", "H")  # Home, Delete, H
    assert line.text == "Hello big world"
    press(line, "\x1bf", "\x1bf", "\x17")  # Alt-F twice, Ctrl-W
    assert (line.text, line.pos) == ("Hello  world", 6)
    press(line, "\x0b")  # Ctrl-K
    assert line.text == "Hello "
    press(line, "\x7f", "!\r")
    assert sent == ["Hello!"] and (line.text, line.pos) == ("", 0)
    press(line, "\x04")  # Ctrl-D on an empty line
    assert sent == ["Hello!", None]


def test_an_escape_sequence_split_between_reads_is_one_key():
    line, _ = editor("abc")
    press(line, "\x1b", "[", "D", "x\x1b[1;5", "D")  # ←, x, Ctrl-←
    assert (line.text, line.pos) == ("abxc", 0)
    press(line, "\x1bq")  # Alt and a key not bound: the key
    assert line.text == "qabxc"
    press(line, "\x1b[15~\x1b[5~\x1bOP")  # F5, Page Up, F1: ignored
    assert (line.text, line.pos) == ("qabxc", 1)


def test_text_not_utf8_whole_in_one_read_is_decoded_whole():
    line, _ = editor()
    data = "é漢".encode()
    for i in range(len(data)):
        press(line, line._decoder.decode(data[i : i + 1]))
    assert line.text == "é漢"


def test_control_characters_are_not_inserted_but_a_tab_is():
    line, _ = editor()
    press(line, "a\x07\x0eb\tc")
    assert line.text == "ab\tc"


def test_layout_of_wide_characters_and_full_rows():
    assert _layout("ab", 2) == [(0, 0), (0, 1), (0, 2)]  # the end at the margin
    assert _layout("abc", 2)[-1] == (1, 1)
    assert _layout("a漢", 2) == [(0, 0), (1, 0), (1, 2)]  # too wide for what is left
    assert _layout("e\u0301x", 3) == [(0, 0), (0, 1), (0, 1), (0, 2)]  # a combining accent


def test_not_on_a_terminal_there_is_no_line():
    assert InputLine.on_terminal(io.StringIO(), io.StringIO(), print) is None
