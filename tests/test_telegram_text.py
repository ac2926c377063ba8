"""Telegram's side of the text: Markdown rendered to the HTML Telegram accepts, split so each
message fits, and approval messages that show the whole of what is asked."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from hypothesis import given, settings
from hypothesis import strategies as st

from leashd.connectors.telegram_text import (
    BODY_LIMIT,
    LIMIT,
    approval_text,
    markdown_html,
    split_markdown,
    utf16_len,
)

ALLOWED = {"b", "code", "pre", "blockquote", "i"}


class _Check(HTMLParser):
    """Telegram's rules, as far as leashd uses them: known tags, properly nested."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        assert tag in ALLOWED, tag
        self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, (self.stack, tag)
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def visible(html: str) -> str:
    assert not re.search(r"&(?!(lt|gt|amp|quot);)", html), "a bare & Telegram would refuse"
    p = _Check()
    p.feed(html)
    p.close()
    assert not p.stack, f"unclosed {p.stack}"
    return "".join(p.text)


def test_markdown_code_and_bold_become_tags_and_the_rest_is_escaped():
    html = markdown_html("Run `a < b` then **stop** & see:\n```python\nif x<1: y = '&'\n```")
    assert "<code>a &lt; b</code>" in html and "<b>stop</b>" in html and "&amp; see" in html
    assert "<pre><code class=\"language-python\">if x&lt;1: y = '&amp;'</code></pre>" in html
    assert visible(html) == "Run a < b then stop & see:\nif x<1: y = '&'"


def test_an_unclosed_code_block_is_closed_while_the_answer_is_still_being_written():
    html = markdown_html("Here:\n```\nline one\nline <two>")
    assert html.endswith("<pre>line one\nline &lt;two&gt;</pre>")
    visible(html)


def test_a_long_answer_is_split_into_messages_that_each_fit():
    md = "\n".join(f"line {i}: " + "x & y < z " * 12 for i in range(400))
    chunks = split_markdown(md)
    assert len(chunks) > 1
    for c in chunks:
        html = markdown_html(c)
        assert len(html) <= LIMIT and utf16_len(visible(html)) <= LIMIT
    assert "\n".join(chunks) == md  # cut at line ends, nothing lost or added


def test_a_code_block_cut_by_a_split_is_closed_and_reopened():
    md = "Intro\n```bash\n" + "\n".join(f"echo {i} {'&' * 40}" for i in range(300)) + "\n```\nEnd"
    chunks = split_markdown(md)
    assert len(chunks) > 2
    for c in chunks:
        assert c.count("```") % 2 == 0, "every chunk closes the code block it opens"
        html = markdown_html(c)
        assert len(html) <= LIMIT
        visible(html)
    assert chunks[1].startswith("```bash")  # the language comes back after the cut


lines = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r"), max_size=300
)
documents = st.lists(
    st.one_of(lines, st.sampled_from(["```", "```python", "**b**", "`c`", "& < >", "😀" * 50])),
    max_size=120,
).map("\n".join)


@settings(max_examples=300, deadline=None)
@given(documents)
def test_split_chunks_always_fit_and_are_well_formed(md):
    for c in split_markdown(md, budget=1000):
        html = markdown_html(c)
        assert len(html) <= LIMIT
        assert utf16_len(visible(html)) <= LIMIT


@settings(max_examples=200, deadline=None)
@given(st.lists(lines, max_size=60).map("\n".join))
def test_splitting_loses_no_text(md):
    """Without fences, the chunks' visible text is the whole's, whatever the cuts."""
    md = md.replace("`", "'").replace("*", "+")
    whole = re.sub(r"\s", "", visible(markdown_html(md)))
    parts = "".join(visible(markdown_html(c)) for c in split_markdown(md, budget=500))
    assert re.sub(r"\s", "", parts) == whole


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=6000))
def test_a_very_long_line_is_cut_not_lost(line):
    line = line.replace("\n", " ").replace("`", "'").replace("*", "+")
    chunks = split_markdown(line, budget=800)
    for c in chunks:
        assert len(markdown_html(c)) <= 800
    assert (
        "".join(c.replace("\n", "") for c in chunks) == line.replace("\n", "") or not line.strip()
    )


# --- approvals -----------------------------------------------------------------------------


def test_an_approval_shows_the_whole_command_rule_and_similar_scope():
    cmd = "npm test -- --grep '<auth & session>'"
    text = approval_text("Bash", cmd, None, "npm-scripts", "Runs project scripts", "npm test", 300)
    assert text.document is None
    shown = visible(text.html)
    assert cmd in shown
    assert "npm-scripts" in shown and "Runs project scripts" in shown
    assert "npm test" in shown and "5 min" in shown


def test_a_command_too_long_for_a_message_goes_whole_in_a_document():
    cmd = "python - <<'EOF'\n" + "print('x')\n" * 600 + "EOF"
    assert len(cmd) > BODY_LIMIT
    text = approval_text("Bash", cmd, None, "interpreters", "Runs code", None, 60)
    assert text.document is not None
    name, data = text.document
    assert name == "command.txt" and data.decode() == cmd  # never cut
    assert "in the file" in visible(text.html) and len(text.html) <= LIMIT


def test_a_write_shows_its_path_and_content():
    text = approval_text("Write", "/p/a.txt", "hello <world>\nline 2", "file-writes", "x", None, 60)
    shown = visible(text.html)
    assert "/p/a.txt" in shown and "hello <world>\nline 2" in shown
    assert "<blockquote expandable>" in text.html
