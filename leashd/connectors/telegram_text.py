"""What leashd's Telegram messages say, in Telegram's HTML, and how long text is split.

The agent writes Markdown; Telegram takes a small HTML dialect and refuses a whole message
for one bad tag. So only what can be rendered safely is: fenced code blocks, inline code and
bold; everything else is escaped text. A chunk is closed on its own (a code block cut by a
split is closed and reopened), and the connector falls back to plain text if Telegram still
refuses one.

Telegram counts a message's length after parsing, in UTF-16 units, up to 4,096. Chunks are
measured by their escaped HTML, which is never shorter, so they always fit.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass

LIMIT = 4096
_BUDGET = 3900  # of LIMIT, for a chunk's text: room for a fence closed and reopened
_FENCE = re.compile(r"^\s*```")
_TAG = re.compile(r"<[^>]*>")
_INLINE = re.compile(r"`([^`\n]+)`|\*\*([^*\n]+)\*\*")


def escape(text: str) -> str:
    return html.escape(text, quote=False)


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _inline(line: str) -> str:
    out, last = [], 0
    for m in _INLINE.finditer(line):
        out.append(escape(line[last : m.start()]))
        code, bold = m.groups()
        out.append(f"<code>{escape(code)}</code>" if code is not None else f"<b>{escape(bold)}</b>")
        last = m.end()
    out.append(escape(line[last:]))
    return "".join(out)


def markdown_html(md: str) -> str:
    """Telegram HTML for Markdown text; an unclosed code block is closed at the end (the
    answer is often still being written)."""
    out: list[str] = []
    code: list[str] | None = None
    lang = ""
    for line in md.split("\n"):
        if _FENCE.match(line):
            if code is None:
                code, lang = [], line.strip()[3:].strip()
            else:
                out.append(_pre(code, lang))
                code = None
            continue
        if code is not None:
            code.append(line)
        else:
            out.append(_inline(line))
    if code is not None:
        out.append(_pre(code, lang))
    return "\n".join(out).strip("\n")


def _pre(lines: list[str], lang: str) -> str:
    body = escape("\n".join(lines))
    if lang and re.fullmatch(r"[\w+#.-]{1,32}", lang):
        return f'<pre><code class="language-{lang}">{body}</code></pre>'
    return f"<pre>{body}</pre>"


def split_markdown(md: str, budget: int = _BUDGET) -> list[str]:
    """Markdown cut into chunks that each render to at most `budget` characters, at line
    ends where possible; a code block open at a cut is closed there and reopened after."""
    chunks: list[str] = []
    lines: list[str] = []
    size = 0
    fence: str | None = None  # the opening line of the code block we are in

    def cut() -> None:
        nonlocal lines, size
        if fence is not None:
            lines.append("```")
        chunks.append("\n".join(lines))
        lines = [fence] if fence is not None else []
        size = len(fence) + 1 if fence is not None else 0

    for line in md.split("\n"):
        for piece in _pieces(line, budget // 2):
            cost = utf16_len(escape(piece)) + 1
            if size + cost > budget and any(x.strip() for x in lines):
                cut()
            lines.append(piece)
            size += cost
        if _FENCE.match(line):
            fence = None if fence is not None else line
    if any(x.strip() for x in lines) or not chunks:
        chunks.append("\n".join(lines))
    # a cut just before a closing fence leaves a chunk that renders to nothing: Telegram
    # refuses an empty message, so it goes
    return [c for c in chunks if _TAG.sub("", markdown_html(c)).strip()] or [""]


def split_plain(text: str, budget: int = _BUDGET) -> list[str]:
    """Plain text (leashd's own messages) in parts that fit, cut at line ends."""
    parts: list[str] = []
    lines: list[str] = []
    size = 0
    for line in text.split("\n"):
        for piece in _pieces(line, budget // 2):
            cost = utf16_len(escape(piece)) + 1
            if size + cost > budget and lines:
                parts.append("\n".join(lines))
                lines, size = [], 0
            lines.append(piece)
            size += cost
    parts.append("\n".join(lines))
    return [p for p in parts if p.strip()] or [text or "…"]


def _pieces(line: str, width: int) -> Iterator[str]:
    """A line longer than `width` escaped characters, in pieces (a minified file, a log)."""
    if utf16_len(escape(line)) <= width:
        yield line
        return
    step = max(1, width // 6)  # a character is at most 5 UTF-16 units escaped ("&amp;")
    for i in range(0, len(line), step):
        yield line[i : i + step]


# --- approvals -------------------------------------------------------------------------------

BODY_LIMIT = 2500  # more than this goes in a document: never cut silently
NOTE_SHOWN = 300  # of a rejection's reason, in the chat
HEAD_LIMIT = 300  # a path or an input shown above the body; longer goes with the body
REASON_SHOWN = 300  # a rule's reason (a policy's own words) as shown


@dataclass(frozen=True)
class ApprovalText:
    html: str
    document: tuple[str, bytes] | None = None  # (file name, content): the whole of it


def approval_text(
    tool: str, summary: str, body: str | None, rule: str | None, reason: str | None,
    similar: str | None, timeout: float, directory: str | None = None,
) -> ApprovalText:  # fmt: skip
    """The approval message: what, in full (a document when too long for a message), the
    rule that asks and why, what "approve similar" would cover, and how long it waits.

    A command is shown in <pre>, never in a collapsed quote: an approver must not approve
    line 4 without having seen it. A file's content may be collapsed (it is expandable)."""
    lines = [f"⚠️ <b>Approval needed</b> · <b>{escape(tool)}</b>"]
    document = None
    head = summary if body is not None else None  # a path, or a tool's whole input
    what = body if body is not None else summary
    if head is not None and utf16_len(escape(head)) > HEAD_LIMIT:
        what, head = f"{head}\n\n{what}", None  # all of it together, in the body
    if utf16_len(escape(what)) <= BODY_LIMIT:
        if head:
            lines.append(f"<code>{escape(head)}</code>")
        if body is not None and "\n" in what:
            lines.append(f"<blockquote expandable>{escape(what)}</blockquote>")
        else:
            lines.append(f"<pre>{escape(what)}</pre>")
    else:
        name = "command.txt" if tool == "Bash" else "content.txt"
        document = (name, what.encode("utf-8"))
        if head:
            lines.append(f"<code>{escape(head)}</code>")
        lines.append(f"<i>{len(what):,} characters: the whole of it is in the file above.</i>")
    if directory:
        lines.append(f"📁 {escape(directory)}")
    if rule or reason:
        why = " — ".join(x for x in (rule and f"<code>{escape(rule)}</code>",
                                     reason and escape(reason[:REASON_SHOWN])) if x)  # fmt: skip
        lines.append(f"Rule: {why}")
    if similar:
        lines.append(f"<i>Approve similar: later <code>{escape(similar)}</code> calls in this "
                     "session go ahead.</i>")  # fmt: skip
    lines.append(f"⏳ Denied if nobody answers within {_duration(timeout)}.")
    return ApprovalText("\n".join(lines), document)


def decided_line(how: str, who: str | None, note: str | None = None) -> str:
    """What the approval message says once it is over."""
    by = f" by {escape(who)}" if who else ""
    if note and len(note) > NOTE_SHOWN:  # the model and the audit have all of it
        note = note[:NOTE_SHOWN] + "…"
    said = f": {escape(note)}" if note else ""
    return {
        "approved": f"✅ <b>Approved</b>{by}",
        "approved-similar": f"✅ <b>Approved, and similar calls</b>{by}",
        "rejected": f"❌ <b>Rejected</b>{by}{said}",
        "expired": "⌛ <b>Expired</b>: nobody answered, so it was denied",
        "shutdown": "⛔ <b>Denied</b>: the daemon stopped",
        "cancelled": "⏹ <b>Cancelled</b>: the turn was stopped, so it was denied",
        "channel-failed": "⛔ <b>Denied</b>: it could not be shown in time",
    }.get(how, f"⛔ <b>Denied</b> ({escape(how)})")


def _duration(seconds: float) -> str:
    if seconds >= 120:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"
