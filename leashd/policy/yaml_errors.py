"""YAML's syntax errors in leashd's words, and where each character of a scalar is written.

PyYAML names a problem as its parser meets it ("found character '\\t' that cannot start any
token", "mapping values are not allowed here"): true, and rarely what to fix. Each common
problem is named here as a policy's author would say it, at the place to fix it (the opening
quote of a string that never ends, the key that misses its `:`), and PyYAML's own words are
kept where nothing better can be said.

Lines and columns are YAML's: a line ends at `\\n`, `\\r\\n`, `\\r`, U+0085, U+2028 or U+2029,
and a byte order mark takes no column.
"""

from __future__ import annotations

import datetime
import re
from bisect import bisect_right
from typing import Any

import yaml
from yaml.nodes import ScalarNode
from yaml.reader import ReaderError
from yaml.scanner import Scanner

from leashd.policy import yaml_fast
from leashd.policy.errors import PolicyError

LINE_BREAK = re.compile(r"\r\n|[\r\n\x85\u2028\u2029]")


class SourceText:
    """A policy's text by YAML's lines: a line's text, and the line and column of an index."""

    def __init__(self, text: str):
        self.text = text
        self.starts: list[int] = []
        self.lines: list[str] = []
        pos = 0
        for m in LINE_BREAK.finditer(text):
            self.starts.append(pos)
            self.lines.append(text[pos : m.start()])
            pos = m.end()
        if pos < len(text) or not self.lines:  # a last line without its line break
            self.starts.append(pos)
            self.lines.append(text[pos:])

    def line(self, number: int) -> str | None:
        """Line `number` (1-based) as an error shows it (a byte order mark takes no column),
        or None past the end."""
        if not 1 <= number <= len(self.lines):
            return None
        return self.lines[number - 1].replace("\ufeff", "")

    def position(self, index: int) -> tuple[int, int]:
        """The line and column (1-based) of a character index."""
        n = max(0, bisect_right(self.starts, index) - 1)
        start = self.starts[n]
        return n + 1, len(self.text[start:index].replace("\ufeff", "")) + 1

    def end(self) -> tuple[int, int]:
        """Just after the last thing written (trailing blank lines are not a place to fix)."""
        return self.position(len(self.text.rstrip()))

    def error(self, message: str, file: str, line: int, column: int) -> PolicyError:
        return PolicyError(message, file, line, column, self.line(line))


def yaml_lines(text: str) -> list[str]:
    return SourceText(text).lines


# --- syntax errors -------------------------------------------------------------------------


def compose(text: str, file: str) -> yaml.Node | None:
    """The text's one YAML document as nodes, or a PolicyError in leashd's words."""
    return yaml_fast.compose(text, lambda t: _compose_python(t, file))  # libyaml: faster


def _compose_python(text: str, file: str) -> yaml.Node | None:
    try:
        loader = yaml.SafeLoader(text)  # the reader refuses control characters right away
    except yaml.YAMLError as exc:
        raise syntax_error(text, file, exc) from None
    try:
        return loader.get_single_node()
    except yaml.YAMLError as exc:
        raise syntax_error(text, file, exc, loader) from None
    finally:
        loader.dispose()


def syntax_error(
    text: str, file: str, exc: yaml.YAMLError, loader: yaml.SafeLoader | None = None
) -> PolicyError:
    """The PolicyError for YAML text that does not parse. `exc` is what a loader raised;
    without the pure-Python loader that raised it (`loader`), the text is parsed again by
    that loader, whose problems and marks are the ones translated here (libyaml's, from the
    C loader used for speed, say less)."""
    if loader is None and not isinstance(exc, ReaderError):
        again = yaml.SafeLoader(text)
        try:
            again.get_single_node()
        except yaml.YAMLError as pure:
            exc, loader = pure, again
        finally:
            again.dispose()
    src = SourceText(text)
    if isinstance(exc, ReaderError):
        return src.error(_bad_character(exc.character), file, *src.position(exc.position))
    if not isinstance(exc, yaml.MarkedYAMLError):
        return PolicyError(f"invalid YAML: {exc}", file, 1, 1, src.line(1))
    message, (line, column) = _translate(exc, src, loader)
    if src.line(line) is None:  # at the end of the stream: just after the last thing written
        line, column = src.end()
    return src.error(message, file, line, column)


def _bad_character(code: int | str) -> str:
    c = code if isinstance(code, int) else ord(code)
    kind = "control character" if c < 0x20 or 0x7F <= c < 0xA0 else "character"
    if 0xD800 <= c <= 0xDFFF:
        kind = "lone surrogate"
    return f"the {kind} U+{c:04X}, which YAML does not allow, is here: remove it"


_FOUND = re.compile(r"but (?:found|got) (.+)$")
_TOKENS = {
    "'<scalar>'": "a value",
    "'<block mapping start>'": "a key",
    "'<block sequence start>'": "a list item",
    "'<stream end>'": "the end of the file",
    "'<alias>'": "an alias",
    "'<anchor>'": "an anchor",
    "'<tag>'": "a tag",
    "'<document start>'": "`---`",
    "'<document end>'": "`...`",
}


def _found(problem: str) -> str:
    m = _FOUND.search(problem)
    return m.group(1) if m else ""


def _said(token: str) -> str:
    return _TOKENS.get(token) or f"`{token.strip(chr(39))}`"


def _at(mark: yaml.Mark) -> tuple[int, int]:
    return mark.line + 1, mark.column + 1


def _translate(
    exc: yaml.MarkedYAMLError, src: SourceText, loader: yaml.SafeLoader | None
) -> tuple[str, tuple[int, int]]:
    problem, context = exc.problem or "", exc.context or ""
    pm, cm = exc.problem_mark, exc.context_mark
    text = src.text
    if pm is None:
        pm = cm
    if pm is None:
        return f"invalid YAML: {problem or context}", (1, 1)
    here = _at(pm)
    ch = text[pm.index] if pm.index < len(text) else ""

    if "that cannot start any token" in problem:
        if ch == "\t":
            before = (src.line(pm.line + 1) or "")[: pm.column]
            if not before.strip():
                return "YAML does not allow tabs for indentation: indent with spaces", here
            return "YAML does not allow a tab here: use spaces (a tab is fine inside quotes)", here
        if ch in "@`%|>":  # reserved by YAML, or a block scalar's sign inside `[ ]`
            return f"an unquoted value cannot start with `{ch}`: quote the value", here
        return f"unexpected character {ch!r}: quote the value if it is text", here

    if context == "while scanning a quoted scalar" and cm is not None:
        quote = text[cm.index] if cm.index < len(text) else '"'
        message = f"this string is never closed: add the closing {quote}"
        if "document separator" in problem:
            message += f" (the `---` of line {pm.line + 1} ends the document first)"
        return message, _at(cm)

    if context == "while scanning a double-quoted scalar":
        slash = text.rfind("\\", max(0, pm.index - 10), pm.index + 1)
        if problem.startswith("found unknown escape character") and slash >= 0:
            e = text[slash + 1 : slash + 2]
            return (
                f"unknown escape `\\{e}` in a double-quoted string: write `\\\\{e}` (a "
                f"regex's `\\{e}`), or use single quotes, where `\\` is plain text",
                src.position(slash),
            )
        if problem.startswith("expected escape sequence of") and slash >= 0:
            e = text[slash + 1 : slash + 2]
            digits = {"x": 2, "u": 4, "U": 8}.get(e, 2)
            return (
                f"the escape `\\{e}` takes {digits} hexadecimal digits in a double-quoted "
                "string: write `\\\\` for a backslash, or use single quotes",
                src.position(slash),
            )

    if context == "while scanning a simple key" and cm is not None:
        return "missing `:` after the key (a mapping entry is `key: value`)", _at(cm)

    if problem.startswith(("mapping values are not allowed", "expected")):
        runaway = _runaway_string(src, pm)
        if runaway is not None:
            return runaway

    if problem.startswith("mapping values are not allowed"):
        return _misplaced_colon(src, pm)

    if problem.startswith("expected <block end>, but found"):
        found = _found(problem)
        line = src.line(pm.line + 1) or ""
        first = len(line) - len(line.lstrip(" "))
        if pm.column > first:
            what = "text" if found == "'<scalar>'" else _said(found)
            return (
                f"unexpected {what} after the value: quote the whole value, or start the "
                "next entry on its own line",
                here,
            )
        if (
            found in ("'-'", "'<block sequence start>'")
            and context == "while parsing a block mapping"
            and cm is not None
            and cm.column == pm.column
        ):
            return (
                "a list item (`-`) where a key was expected: a mapping and a list cannot "
                "share one level",
                here,
            )
        return _bad_indentation(src, pm), here

    opener = {"while parsing a flow sequence": "[", "while parsing a flow mapping": "{"}
    if context in opener and cm is not None and problem.startswith("expected ','"):
        open_, close = opener[context], "]" if opener[context] == "[" else "}"
        found = _found(problem)
        if found == "'<stream end>'":
            return _ends_inside(src, cm), src.end()
        opened_in = len(src.line(cm.line + 1) or "") - len((src.line(cm.line + 1) or "").lstrip())
        if pm.line > cm.line and (found == "':'" or pm.column <= opened_in):
            return (
                f"this `{open_}` is never closed: expected `,` or `{close}` before line "
                f"{pm.line + 1}",
                _at(cm),
            )
        hint = " (a missing comma?)" if found in ("':'", "'<scalar>'", "'['", "'{'") else ""
        return f"expected `,` or `{close}` here, found {_said(found)}{hint}", here

    if problem.startswith("expected the node content, but found"):
        found = _found(problem)
        if found == "'<stream end>'":
            flow = _open_flow(text, loader)
            if flow is not None:
                return _ends_inside(src, flow), src.end()
            return "the file ends too early: expected a value", src.end()
        if found in ("']'", "'}'"):
            close = found.strip("'")
            return f"unexpected `{close}`: no `{'[' if close == ']' else '{'}` is open here", here
        if found == "'-'":
            return (
                "a list item (`-`) cannot go inside `[ ]` or `{ }`: separate the items with `,`",
                here,
            )
        if found in ("','", "':'"):
            return f"an unquoted value cannot start with {_said(found)}: quote the value", here

    if problem.startswith("expected '<document start>'"):
        return _after_the_document(src, pm)

    if (
        context == "while scanning a block scalar"
        and cm is not None
        and (problem.startswith(("expected chomping", "expected a comment or a line break")))
    ):
        sign = text[cm.index]
        return (
            f"`{sign}` starts a block of text on the lines below and takes nothing after it "
            f"on its line: quote a value that starts with `{sign}`",
            _at(cm),
        )

    if context in ("while scanning a tag", "while parsing a tag") and cm is not None:
        return "`!` starts a YAML tag: quote a value that starts with `!`", _at(cm)

    if context == "while scanning a directive" and cm is not None:
        return (
            "`%` at the start of a line starts a YAML directive: quote a value that starts "
            "with `%`",
            _at(cm),
        )

    if problem == "sequence entries are not allowed here":
        return (
            "a list item (`-`) cannot follow a key on its line: start the list on the next "
            "line, indented, or write it as `[a, b]`",
            here,
        )

    m = re.fullmatch(r"found undefined alias '(.*)'", problem)
    if m:
        name = m.group(1)
        return f"undefined alias `*{name}`: define it first with `&{name}`", here

    m = re.fullmatch(r"found duplicate anchor '(.*)'; first occurrence", context)
    if m and cm is not None:
        return (
            f"the anchor `&{m.group(1)}` is already defined at line {cm.line + 1}: give "
            "this one another name",
            here,
        )

    if context == "expected a single document in the stream":
        what = "this `---` starts a second" if text.startswith("---", pm.index) else (
            "a second one starts here"
        )  # fmt: skip
        return f"a policy file holds one YAML document: {what}", here

    if context in ("while scanning an anchor", "while scanning an alias") and cm is not None:
        sign = "&" if "anchor" in context else "*"
        kind = "an anchor" if sign == "&" else "an alias"
        if pm.index == cm.index + 1:
            return f"{kind} (`{sign}`) needs a name: `{sign}name`", _at(cm)
        return f"the name of {kind} holds letters, digits, `-` and `_` only", here

    if "end of stream" in problem:
        return f"the file ends too early ({context.removeprefix('while ')})", src.end()

    where = f" ({context}, line {cm.line + 1} column {cm.column + 1})" if context and cm else ""
    if context and cm is None:
        where = f" ({context})"
    return f"invalid YAML: {problem}{where}", here


def _after_the_document(src: SourceText, pm: yaml.Mark) -> tuple[str, tuple[int, int]]:
    """Text where a new document must start: after a `%` directive line, or after `...`."""
    for n in range(pm.line, 0, -1):
        line = src.line(n) or ""
        if line.startswith("%"):
            return (
                "a line starting with `%` is a YAML directive, and the document must then "
                "start with `---`: quote a value that starts with `%`",
                (n, 1),
            )
        if line.rstrip() == "...":
            return (
                f"text after the end of the document (the `...` of line {n}): a policy file "
                "holds one YAML document",
                _at(pm),
            )
    return "expected `---` (the start of a document) here", _at(pm)


def _runaway_string(src: SourceText, pm: yaml.Mark) -> tuple[str, tuple[int, int]] | None:
    """A quoted string that ran on from an earlier line to close just before the problem:
    its own closing quote is most likely what is missing (`name: "a` and, a line below,
    `cmd: ["git"]`, whose first `"` closes it)."""
    last = None
    try:
        for token in yaml.scan(src.text, Loader=yaml.SafeLoader):
            if token.start_mark.index >= pm.index:
                break
            if isinstance(token, yaml.ScalarToken):
                last = token
    except yaml.YAMLError:
        pass
    if (
        last is None
        or last.style not in ("'", '"')
        or last.start_mark.line == last.end_mark.line
        or last.end_mark.line != pm.line
    ):
        return None
    q = last.style
    return (
        f"this string runs on to line {last.end_mark.line + 1}, where the next {q} closes "
        f"it: is its closing {q} missing?",
        _at(last.start_mark),
    )


def _content_start(line: str) -> int:
    """The column (0-based) where a line's entry starts: after its indentation and any `- `."""
    m = re.match(r"(?:[ ]*-(?=[ ]|$))*[ ]*", line)
    return m.end() if m else 0


def _line_above(src: SourceText, number: int) -> tuple[int, str] | None:
    """The nearest line above `number` holding something other than a comment."""
    for n in range(number - 1, 0, -1):
        text = src.line(n) or ""
        if text.strip() and not text.lstrip().startswith("#"):
            return n, text
    return None


def _misplaced_colon(src: SourceText, pm: yaml.Mark) -> tuple[str, tuple[int, int]]:
    line = src.line(pm.line + 1) or ""
    start = _content_start(line)
    before = line[start : pm.column]
    first = re.search(r":(?=[ \t]|$)", before)
    if first:  # `reason: see: here`: the value holds `: `
        key, value = before[: first.start()], line[start + first.end() :].strip()
        example = f' (`{key}: "{value}"`)' if value and '"' not in value else ""
        return f"a plain value holding `: ` must be quoted{example}", _at(pm)
    above = _line_above(src, pm.line + 1)
    if above is not None:
        n, text = above
        entry = text[_content_start(text) :]
        if not re.search(r":(?=[ \t]|$)", entry) and not entry.startswith(("'", '"', "[", "{")):
            return "missing `:` after the key (a mapping entry is `key: value`)", (
                n,
                _content_start(text) + 1,
            )
    return (
        "bad indentation: this key is indented deeper than the one above it (the keys of one "
        "mapping start in one column; if this line continues the value above, quote that "
        "value)",
        (pm.line + 1, start + 1),
    )


def _bad_indentation(src: SourceText, pm: yaml.Mark) -> str:
    message = f"bad indentation: this line starts in column {pm.column + 1}"
    above = _line_above(src, pm.line + 1)
    if above is not None:
        _, text = above
        here = src.line(pm.line + 1) or ""
        if here[pm.column :].startswith("-"):  # an item lines up with the items above
            column = len(text) - len(text.lstrip(" "))
        else:  # a key with the key above, after its `- `
            column = _content_start(text)
        message += f", the line above in column {column + 1}"
    return message + " (the entries of one mapping or list start in one column)"


def _open_flow(text: str, loader: yaml.SafeLoader | None) -> yaml.Mark | None:
    """The innermost `[` or `{` still open where the parser stopped."""
    for mark in reversed(getattr(loader, "marks", None) or []):
        if mark.index < len(text) and text[mark.index] in "[{":
            return mark
    return None


def _ends_inside(src: SourceText, opener: yaml.Mark) -> str:
    open_ = src.text[opener.index] if opener.index < len(src.text) else "["
    kind, close = ("list", "]") if open_ == "[" else ("mapping", "}")
    return (
        f"the file ends inside a {kind} (its `{open_}` is at line {opener.line + 1}, column "
        f"{opener.column + 1}): expected `,` or `{close}` to close it"
    )


# --- where a scalar's characters are written -----------------------------------------------

_PROPERTIES = re.compile(r"(?:[!&][^ \t\r\n\x85\u2028\u2029]*[ \t\r\n\x85\u2028\u2029]+)*")
_BREAKS = {"\r\n": "\n", "\r": "\n", "\n": "\n", "\x85": "\n"}  # U+2028/9 stay as they are


def scalar_offsets(text: str, node: ScalarNode) -> list[int] | None:
    """For each character of a scalar's value, the index in `text` where it is written (an
    escape's backslash, a folded line break's break), then the index just after the last one.
    Plain, quoted and literal (`|`) scalars; None when that cannot be told exactly (a folded
    `>` block, a value the reading does not reproduce): a caret never guesses a column."""
    style = node.style or None  # the C loader says '' for plain
    if style not in (None, "'", '"', "|"):
        return None
    start, end = node.start_mark.index, node.end_mark.index
    if not 0 <= start <= end <= len(text):
        return None
    i = _PROPERTIES.match(text, start, end).end()  # type: ignore[union-attr]  # a tag, an anchor
    if style == "|":
        return _literal_offsets(text, i, end, node.value)
    close = end
    if style is not None:
        if text[i : i + 1] != style or end - 1 <= i or text[end - 1] != style:
            return None
        i, close = i + 1, end - 1
    space = " " if style is None else " \t"
    chars: list[str] = []
    offsets: list[int] = []
    while i < close:
        ch = text[i]
        if style == "'" and ch == "'":
            if text[i + 1 : i + 2] != "'":
                return None
            chars.append("'")
            offsets.append(i)
            i += 2
            continue
        if style == '"' and ch == "\\":
            i = _escape(text, i, chars, offsets)
            if i < 0:
                return None
            continue
        if ch in space:
            j = i
            while j < close and text[j] in space:
                j += 1
            if not (j < close and LINE_BREAK.match(text, j)):
                chars.extend(text[i:j])
                offsets.extend(range(i, j))
                i = j
                continue
            i = j  # spaces before a line break are no part of the value
        brk = LINE_BREAK.match(text, i)
        if brk:  # a line fold: one space, or the blank lines' breaks
            first = _BREAKS.get(brk.group(), brk.group())
            i, more = _breaks(text, brk.end(), space)
            if first != "\n":
                chars.append(first)
                offsets.append(brk.start())
            elif not more:
                chars.append(" ")
                offsets.append(brk.start())
            for off, c in more:
                chars.append(c)
                offsets.append(off)
            continue
        chars.append(ch)
        offsets.append(i)
        i += 1
    offsets.append(close)
    return offsets if "".join(chars) == node.value else None


_HEADER = re.compile(r"\|([+-]?)[ \t]*(?:#[^\r\n\x85\u2028\u2029]*)?")


def _literal_offsets(text: str, i: int, end: int, value: str) -> list[int] | None:
    """A literal block (`|`, `|-`, `|+`; an explicit indentation is not told here): each
    line as written after the block's indentation, each line break where it is."""
    header = _HEADER.match(text, i, end)
    brk = LINE_BREAK.search(text, i, end) if header else None
    if header is None or brk is None or brk.start() != header.end():
        return None
    lines = []  # (index of the line's start, its text, index of its break or None)
    pos = brk.end()
    while pos < end:
        b = LINE_BREAK.search(text, pos, end)
        stop = b.start() if b else end
        lines.append((pos, text[pos:stop], b.start() if b else None))
        pos = b.end() if b else end
    filled = [t for _, t, _ in lines if t.strip(" ")]
    if not filled:
        return None
    indent = len(filled[0]) - len(filled[0].lstrip(" "))
    chars: list[str] = []
    offsets: list[int] = []
    for start, line, brk_at in lines:
        if line.strip(" "):
            if len(line) - len(line.lstrip(" ")) < indent:
                return None
            chars.extend(line[indent:])
            offsets.extend(range(start + indent, start + len(line)))
        elif len(line) > indent:  # spaces beyond the indentation are text
            return None
        if brk_at is not None:
            chars.append(_BREAKS.get(text[brk_at], text[brk_at]))
            offsets.append(brk_at)
    body = "".join(chars)
    chomp = header.group(1)
    kept = body.rstrip("\n")
    n = len(kept) if chomp == "-" else len(body) if chomp == "+" else min(len(body), len(kept) + 1)
    if body[:n] != value:
        return None
    return [*offsets[:n], offsets[n] if n < len(offsets) else end]


def _breaks(text: str, i: int, space: str) -> tuple[int, list[tuple[int, str]]]:
    """The blank lines after a line break: their breaks, and where the next text starts."""
    out = []
    while True:
        while i < len(text) and text[i] in space:
            i += 1
        brk = LINE_BREAK.match(text, i)
        if not brk:
            return i, out
        out.append((i, _BREAKS.get(brk.group(), brk.group())))
        i = brk.end()


def _escape(text: str, i: int, chars: list[str], offsets: list[int]) -> int:
    """An escape in a double-quoted scalar at `i` (its backslash): the index after it, or -1."""
    e = text[i + 1 : i + 2]
    if e in Scanner.ESCAPE_REPLACEMENTS:
        chars.append(Scanner.ESCAPE_REPLACEMENTS[e])
        offsets.append(i)
        return i + 2
    if e in Scanner.ESCAPE_CODES:
        n = Scanner.ESCAPE_CODES[e]
        digits = text[i + 2 : i + 2 + n]
        if len(digits) != n or not all(c in "0123456789abcdefABCDEF" for c in digits):
            return -1
        code = int(digits, 16)
        if code > 0x10FFFF:
            return -1
        chars.append(chr(code))
        offsets.append(i)
        return i + 2 + n
    brk = LINE_BREAK.match(text, i + 1)
    if brk:  # an escaped line break joins the lines; blank lines below still count
        j, more = _breaks(text, brk.end(), " \t")
        for off, c in more:
            chars.append(c)
            offsets.append(off)
        return j
    return -1


def value_kind(value: Any) -> str:
    """How an error names the type of a value read from YAML: "a number", "true/false", …"""
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, datetime.date):
        return "a date"
    if isinstance(value, bytes):
        return "binary data"
    return f"a {type(value).__name__}"
