"""The line being typed in the terminal REPL, kept as the last thing on the screen: what is
printed while someone types (a task's progress, a notice, a turn's tool lines) goes above
it, and the line is drawn again under that, with the prompt, what was typed so far and the
cursor where they were, as IPython or prompt_toolkit's `patch_stdout` do. A line is never
garbled by output, nor lost: keys and output are handled on the same event loop, one after
the other.

Only on a terminal: stdin and stdout TTYs, TERM not "dumb". The terminal is put out of
canonical mode, without echo, and the keys are edited here; its signals stay on, so Ctrl-C
is still SIGINT (the REPL's "stop the turn") and Ctrl-Z still suspends (the mode is set
again on SIGCONT). Piped, the REPL reads whole lines and prints plainly, with no escape
sequences (leashd/connectors/terminal.py).

Keys: text goes in at the cursor; Enter sends the line; Backspace and Delete; ←/→ or
Ctrl-B/F; Home/End or Ctrl-A/E; Alt-B/F or Ctrl-←/→ a word; Ctrl-U and Ctrl-K delete to the
start and to the end of the line, Ctrl-W the word before the cursor; Ctrl-D deletes the
character under the cursor, and on an empty line is the end of input.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import os
import signal
import termios
import unicodedata
from collections.abc import Callable, Iterator
from typing import Any, TextIO

_LEFT = {"\x02", "\x1b[D", "\x1bOD"}
_RIGHT = {"\x06", "\x1b[C", "\x1bOC"}
_HOME = {"\x01", "\x1b[H", "\x1bOH", "\x1b[1~", "\x1b[7~"}
_END = {"\x05", "\x1b[F", "\x1bOF", "\x1b[4~", "\x1b[8~"}
_WORD_LEFT = {"\x1bb", "\x1b[1;5D", "\x1b[1;3D"}
_WORD_RIGHT = {"\x1bf", "\x1b[1;5C", "\x1b[1;3C"}
_BACKSPACE = {"\x7f", "\x08"}
_DELETE = "\x1b[3~"
_ENTER = {"\r", "\n"}
_ERASE_DOWN = "\r\x1b[J"  # to the start of the row, and everything from there on cleared


class InputLine:
    """The prompt and the text being typed after it, at the bottom of a terminal."""

    def __init__(self, fd: int, out: TextIO, on_line: Callable[[str | None], None]) -> None:
        self.fd = fd
        self.out = out
        self.on_line = on_line  # each line sent; None at the end of input
        self.prompt = ""  # shown before the text (the REPL's prompt, when it is idle)
        self.text = ""
        self.pos = 0  # the cursor, an index into text
        self._row: int | None = None  # the cursor's row in the line drawn; None: not drawn
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._pending = ""  # the start of an escape sequence whose end has not come yet
        self._saved: list[Any] | None = None  # the terminal's mode before, put back at close
        self._loop: asyncio.AbstractEventLoop | None = None
        self._redraw_at: asyncio.Handle | None = None
        self._reading = False
        self._closed = False

    @classmethod
    def on_terminal(cls, stdin: TextIO, out: TextIO,
                    on_line: Callable[[str | None], None]) -> InputLine | None:  # fmt: skip
        """One for `stdin` and `out` if both are a terminal that understands escape
        sequences, else None (then print plainly)."""
        try:
            fd = stdin.fileno()
            if not (os.isatty(fd) and out.isatty()) or os.environ.get("TERM", "") == "dumb":
                return None
            saved = termios.tcgetattr(fd)
        except (AttributeError, OSError, ValueError, termios.error):
            return None
        line = cls(fd, out, on_line)
        line._saved = saved
        return line

    # --- opening and closing --------------------------------------------------------------------

    def open(self, loop: asyncio.AbstractEventLoop) -> None:
        """Keys from now on are read here; the (empty) line is drawn."""
        self._loop = loop
        if self._saved is None:
            self._saved = termios.tcgetattr(self.fd)
        self._keys_mode()
        loop.add_reader(self.fd, self._readable)
        self._reading = True
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGCONT, self._resumed)
        self._draw_soon()

    def close(self) -> None:
        """The line stays on the screen as it is (the cursor after it), or goes if it is
        empty; the terminal's mode is put back."""
        if self._closed:
            return
        shown = self.prompt + _visible(self.text)
        with contextlib.suppress(OSError, ValueError):  # the terminal may be gone
            self._emit(self._erase() + (shown + "\r\n" if shown else ""))
        self._closed = True
        self._stop_reading()
        if self._redraw_at is not None:
            self._redraw_at.cancel()
        if self._loop is not None:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                self._loop.remove_signal_handler(signal.SIGCONT)
        if self._saved is not None:
            with contextlib.suppress(termios.error, OSError):
                termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)

    # --- what the REPL shows --------------------------------------------------------------------

    def write(self, text: str) -> None:
        """`text` above the line, which is drawn again under it at the end of this step of
        the loop: what else is written in the same step goes above it too, and the line is
        drawn once, with the prompt as it is then."""
        if not text:
            return
        if self._closed:
            self._emit(text)
            return
        self._emit(self._erase() + (text if text.endswith("\n") else text + "\n"))
        self._draw_soon()

    def set_prompt(self, prompt: str) -> None:
        if prompt != self.prompt:
            self.prompt = prompt
            self._draw_soon()

    # --- drawing --------------------------------------------------------------------------------

    def _draw_soon(self) -> None:
        if self._redraw_at is None and not self._closed and self._loop is not None:
            self._redraw_at = self._loop.call_soon(self._redraw)

    def _redraw(self) -> None:
        if self._redraw_at is not None:
            self._redraw_at.cancel()
            self._redraw_at = None
        if not self._closed:
            self._emit(self._erase() + self._draw())

    def _draw(self) -> str:
        """The prompt and the text, from the start of a row, the cursor then moved back to
        its place in the text; where that is is kept for `_erase`."""
        cols = _columns(self.out)
        shown = self.prompt + _visible(self.text)
        at = _layout(shown, cols)
        out = shown
        end_row, end_col = at[-1]
        if end_col >= cols:  # the last row is full: the terminal waits at its margin
            out += "\r\n"
            end_row, end_col = end_row + 1, 0
        row, col = at[len(self.prompt) + self.pos]
        if col >= cols:
            row, col = row + 1, 0
        if (row, col) != (end_row, end_col):
            out += f"\x1b[{end_row - row}A" if end_row > row else ""
            out += "\r" + (f"\x1b[{col}C" if col else "")
        self._row = row
        return out

    def _erase(self) -> str:
        """Back to where the line drawn starts, and everything from there on cleared."""
        if self._row is None:
            return ""
        up = f"\x1b[{self._row}A" if self._row else ""
        self._row = None
        return up + _ERASE_DOWN

    def _emit(self, s: str) -> None:
        if s:
            self.out.write(s)
            self.out.flush()

    # --- keys -----------------------------------------------------------------------------------

    def _readable(self) -> None:
        try:
            data = os.read(self.fd, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""  # the terminal went away (EIO): the same as the end of input
        if not data:
            self._end_of_input()
            return
        for key in self._split(self._decoder.decode(data)):
            if not self._key(key):
                return
        self._redraw()

    def _split(self, text: str) -> Iterator[str]:
        """Keys: a character, or an escape sequence (an arrow, Alt and a letter)."""
        s, self._pending = self._pending + text, ""
        i = 0
        while i < len(s):
            if s[i] != "\x1b":
                yield s[i]
                i += 1
                continue
            if i + 1 == len(s):
                self._pending = s[i:]  # its end comes in the next read
                return
            if s[i + 1] == "[":  # CSI: parameters, then one final byte @ to ~
                j = i + 2
                while j < len(s) and not ("@" <= s[j] <= "~") and j - i < 16:
                    j += 1
                if j == len(s):
                    self._pending = s[i:]
                    return
                end = j + 1
            elif s[i + 1] == "O":  # SS3: one more character
                if i + 2 == len(s):
                    self._pending = s[i:]
                    return
                end = i + 3
            else:
                end = i + 2  # Alt and a key
            yield s[i:end]
            i = end

    def _key(self, key: str) -> bool:
        """Act on one key; False once the input has ended."""
        text, pos = self.text, self.pos
        if key in _ENTER:
            self._send()
        elif key == "\x04":  # Ctrl-D
            if not text:
                self._end_of_input()
                return False
            self.text = text[:pos] + text[pos + 1 :]
        elif key in _BACKSPACE:
            if pos:
                self.text, self.pos = text[: pos - 1] + text[pos:], pos - 1
        elif key == _DELETE:
            self.text = text[:pos] + text[pos + 1 :]
        elif key in _LEFT:
            self.pos = max(0, pos - 1)
        elif key in _RIGHT:
            self.pos = min(len(text), pos + 1)
        elif key in _HOME:
            self.pos = 0
        elif key in _END:
            self.pos = len(text)
        elif key in _WORD_LEFT:
            self.pos = _word_start(text, pos)
        elif key in _WORD_RIGHT:
            self.pos = _word_end(text, pos)
        elif key == "\x15":  # Ctrl-U
            self.text, self.pos = text[pos:], 0
        elif key == "\x0b":  # Ctrl-K
            self.text = text[:pos]
        elif key in ("\x17", "\x1b\x7f"):  # Ctrl-W, Alt-Backspace
            start = _word_start(text, pos)
            self.text, self.pos = text[:start] + text[pos:], start
        elif key == "\x1bd":  # Alt-D
            self.text = text[:pos] + text[_word_end(text, pos) :]
        elif len(key) == 2 and key[0] == "\x1b" and key[1] not in "[O":
            return self._key(key[1])  # Alt and a key not bound here: the key
        elif len(key) == 1 and (key == "\t" or not _control(key)):
            self.text, self.pos = text[:pos] + key + text[pos:], pos + 1
        return True  # other sequences and control characters are ignored

    def _send(self) -> None:
        """The line stays on the screen as typed, the prompt with it; the next line starts
        empty and without a prompt (the REPL shows one when it is idle again)."""
        line, shown = self.text, self.prompt + _visible(self.text)
        self._emit(self._erase() + shown + "\r\n")
        self.text, self.pos, self.prompt = "", 0, ""
        self._draw_soon()
        self.on_line(line)

    def _end_of_input(self) -> None:
        self._stop_reading()
        self.on_line(None)

    def _stop_reading(self) -> None:
        if self._reading and self._loop is not None:
            self._reading = False
            with contextlib.suppress(RuntimeError, ValueError, OSError):
                self._loop.remove_reader(self.fd)

    # --- the terminal ---------------------------------------------------------------------------

    def _keys_mode(self) -> None:
        """Keys as they are typed, not echoed; Ctrl-C and Ctrl-Z still signals, which flush
        nothing (the output not yet on the screen would be lost, and with it where the
        line is drawn)."""
        mode = termios.tcgetattr(self.fd)
        mode[3] &= ~(termios.ICANON | termios.ECHO | termios.IEXTEN)
        mode[3] |= termios.NOFLSH
        mode[6][termios.VMIN] = 1
        mode[6][termios.VTIME] = 0
        termios.tcsetattr(self.fd, termios.TCSADRAIN, mode)

    def _resumed(self) -> None:
        """After Ctrl-Z and `fg`: the shell had the terminal, in its own mode, and the
        screen is not as it was left; the line is drawn afresh where the cursor is."""
        if self._closed:
            return
        with contextlib.suppress(termios.error, OSError):
            self._keys_mode()
        self._row = None
        self._redraw()


def _columns(out: TextIO) -> int:
    try:
        return max(1, os.get_terminal_size(out.fileno()).columns)
    except (AttributeError, OSError, ValueError):
        return 80


def _control(ch: str) -> bool:
    return ch < " " or "\x7f" <= ch <= "\x9f"


def _visible(text: str) -> str:
    """The text as drawn: a tab (or any control character) is one space, so that where
    each character lands is known."""
    return "".join(" " if _control(ch) else ch for ch in text)


def _width(ch: str) -> int:
    if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def _layout(shown: str, cols: int) -> list[tuple[int, int]]:
    """Where each character of `shown` starts (row, column) on a terminal `cols` wide, and
    where the text ends: a wide character that does not fit in a row goes to the next. An
    end column of `cols` is the right margin (the row is full)."""
    row = col = 0
    at = []
    for ch in shown:
        w = _width(ch)
        if col + w > cols:
            row, col = row + 1, 0
        at.append((row, col))
        col += w
    at.append((row, col))
    return at


def _word_start(text: str, pos: int) -> int:
    i = pos
    while i > 0 and text[i - 1].isspace():
        i -= 1
    while i > 0 and not text[i - 1].isspace():
        i -= 1
    return i


def _word_end(text: str, pos: int) -> int:
    i = pos
    while i < len(text) and text[i].isspace():
        i += 1
    while i < len(text) and not text[i].isspace():
        i += 1
    return i
