"""A fake Telegram Bot API on 127.0.0.1, for the daemon's python-telegram-bot client.

The daemon is pointed at `FakeTelegram.base_url` (`ApplicationBuilder().base_url(...)`); the
test plays the user (`user_says`, `press`) and reads what the bot did (`messages`, `requests`,
`transcript`). Everything the bot sends is checked the way the real Bot API checks it where
the daemon could notice: HTML parse mode is parsed like Telegram does (tags, entities, the
4096 limit counted in UTF-16 code units of the visible text), edits that change nothing are
refused, buttons carry at most 64 bytes of data, callback queries are answered once.
Failures can be scripted: the API going down (502 from the proxy in front of it) and flood
control (429 with retry_after).

Not modelled, on purpose (see `FakeTelegram` for the list): MarkdownV2 and Markdown parse
modes (refused with 400 so a test notices), webhooks, media other than documents, groups
beyond their chat type, automatic entity detection in bot messages (urls, mentions).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import json
import re
import socket
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

BOT_USERNAME = "leashd_test_bot"
MAX_TEXT = 4096  # UTF-16 code units of the visible text, after entity parsing
MAX_CAPTION = 1024
MAX_CALLBACK_DATA = 64  # bytes
MAX_ANSWER_TEXT = 200
MAX_UPLOAD = 50 * 1024 * 1024

# descriptions after "Bad Request: "
NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly the "
    "same as a current content and reply markup of the message"
)
QUERY_INVALID = "query is too old and response timeout expired or query ID is invalid"
CONFLICT = (
    "Conflict: terminated by other getUpdates request; make sure that only one bot instance "
    "is running"
)

# The update types Telegram sends when a bot never chose (or reset with []).
_DEFAULT_ALLOWED = frozenset(
    {
        "message", "edited_message", "channel_post", "edited_channel_post", "inline_query",
        "chosen_inline_result", "callback_query", "shipping_query", "pre_checkout_query",
        "poll", "poll_answer", "my_chat_member", "chat_join_request", "business_connection",
        "business_message", "edited_business_message", "deleted_business_messages",
        "message_reaction_count", "purchased_paid_media", "removed_chat_boost", "chat_boost",
    }
)  # fmt: skip
_CHAT_ACTIONS = frozenset(
    {
        "typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice",
        "upload_document", "choose_sticker", "find_location", "record_video_note",
        "upload_video_note",
    }
)  # fmt: skip
_BUTTON_ACTIONS = (
    "callback_data", "url", "web_app", "login_url", "switch_inline_query",
    "switch_inline_query_current_chat", "switch_inline_query_chosen_chat", "copy_text",
    "callback_game", "pay",
)  # fmt: skip

# Form and multipart bodies carry every value as a string: PTB JSON-encodes objects, lists,
# numbers and booleans. These are decoded so the recorded params read like the call.
_JSON_FIELDS = frozenset(
    {
        "reply_markup", "allowed_updates", "commands", "reply_parameters",
        "link_preview_options", "entities", "caption_entities", "scope",
    }
)  # fmt: skip
_INT_FIELDS = frozenset(
    {"chat_id", "message_id", "offset", "limit", "reply_to_message_id", "user_id", "cache_time"}
)
_FLOAT_FIELDS = frozenset({"timeout"})
_BOOL_FIELDS = frozenset(
    {
        "disable_notification", "show_alert", "drop_pending_updates", "protect_content",
        "disable_web_page_preview", "allow_sending_without_reply",
        "disable_content_type_detection",
    }
)  # fmt: skip


# --- HTML parse mode ------------------------------------------------------------------------


class HtmlError(ValueError):
    """Markup Telegram would refuse; the message is the part after "can't parse entities: "."""


# tag -> entity type; span is a spoiler only with class="tg-spoiler" (checked below)
_TAGS = {
    "b": "bold", "strong": "bold", "i": "italic", "em": "italic", "u": "underline",
    "ins": "underline", "s": "strikethrough", "strike": "strikethrough", "del": "strikethrough",
    "span": "spoiler", "tg-spoiler": "spoiler", "a": "text_link", "code": "code", "pre": "pre",
    "blockquote": "blockquote", "tg-emoji": "custom_emoji",
}  # fmt: skip
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_REF = re.compile(r"&(?:#[xX]([0-9a-fA-F]{1,8})|#([0-9]{1,9})|([A-Za-z]+))(;?)")
_SURROGATES = (
    "Text contains invalid Unicode characters after decoding HTML entities, check for "
    "unmatched surrogate code units"
)


def utf16_len(s: str) -> int:
    """Length as Telegram counts it: UTF-16 code units (an emoji outside the BMP counts 2)."""
    return len(s.encode("utf-16-le", "surrogatepass")) // 2


def _byte_offset(src: str, i: int) -> int:
    return len(src[:i].encode("utf-8", "surrogatepass"))


def _reference(src: str, i: int, strict: bool) -> tuple[str | None, int]:
    """The character an `&...` at src[i] stands for and the index after it, or None when it is
    not a reference (Telegram then keeps the '&' as text; in strict mode it is an error)."""
    m = _REF.match(src, i)
    ch: str | None = None
    if m:
        hexa, dec, name, semi = m.groups()
        if name is not None:
            ch = _NAMED.get(name)
        else:
            code = int(hexa, 16) if hexa is not None else int(dec)
            if 0xD800 <= code <= 0xDFFF:
                raise HtmlError(_SURROGATES)
            ch = chr(code) if 0 < code < 0x10FFFF else None
        if strict and not semi:
            ch = None  # the documentation asks for complete references
    if ch is None:
        if strict:
            raise HtmlError(
                f'Character "&" at byte offset {_byte_offset(src, i)} does not start an HTML '
                "entity; escape it as &amp; (the fake is strict here, see strict_html)"
            )
        return None, i + 1
    assert m is not None
    return ch, m.end()


@dataclass
class _Open:
    tag: str
    begin: int  # index in the source, for error messages
    start16: int  # UTF-16 offset in the visible text where the entity starts
    entity: dict[str, Any]


def parse_html(src: str, strict: bool = True) -> tuple[str, list[dict[str, Any]]]:
    """The visible text and the entities of an HTML-formatted text, as Telegram parses it.

    Follows Telegram's parser: supported tags only, properly nested (`</>` closes the current
    one), attributes quoted or bare, unknown attributes ignored; the error messages are
    Telegram's. `strict` (the default) also refuses a bare '&' and references Telegram would
    leave as text (`&nbsp;`, `&lt` without ';'), as the Bot API documentation requires;
    strict=False keeps them as text like Telegram does. A bare '<' is always an error.
    """
    out: list[str] = []
    pos16 = 0
    stack: list[_Open] = []
    entities: list[dict[str, Any]] = []
    n = len(src)
    i = 0
    while i < n:
        c = src[i]
        if c == "&":
            ch, i = _reference(src, i, strict)
            ch = "&" if ch is None else ch
            out.append(ch)
            pos16 += utf16_len(ch)
            continue
        if c != "<":
            out.append(c)
            pos16 += utf16_len(c)
            i += 1
            continue
        begin = i
        if src.startswith("</", i):
            if not stack:
                raise HtmlError(f"Unexpected end tag at byte offset {_byte_offset(src, begin)}")
            j = i + 2
            while j < n and not src[j].isspace() and src[j] != ">":
                j += 1
            name = src[i + 2 : j].lower()
            while j < n and src[j].isspace():
                j += 1
            if j >= n or src[j] != ">":
                raise HtmlError(f"Unclosed end tag at byte offset {_byte_offset(src, begin)}")
            top = stack[-1]
            if name and name != top.tag:
                raise HtmlError(
                    f"Unmatched end tag at byte offset {_byte_offset(src, begin)}, "
                    f'expected "</{top.tag}>", found "</{name}>"'
                )
            stack.pop()
            i = j + 1
            length = pos16 - top.start16
            language = top.entity.pop("language", None) if top.tag == "code" else None
            if language is not None and stack and stack[-1].tag == "pre":
                # <pre><code class="language-x"> is one pre entity with a language
                stack[-1].entity["language"] = language
                continue
            if length > 0:
                entities.append({**top.entity, "offset": top.start16, "length": length})
            continue
        # a start tag: its name runs to a space or '>'
        j = i + 1
        while j < n and not src[j].isspace() and src[j] != ">":
            j += 1
        if j >= n:
            raise HtmlError(f"Unclosed start tag at byte offset {_byte_offset(src, begin)}")
        tag = src[i + 1 : j].lower()
        if tag not in _TAGS:
            raise HtmlError(
                f'Unsupported start tag "{tag}" at byte offset {_byte_offset(src, begin)}'
            )
        attrs, i = _attributes(src, j, tag, begin, strict)
        entity: dict[str, Any] = {"type": _TAGS[tag]}
        if tag == "span" and attrs.get("class") != "tg-spoiler":
            raise HtmlError(
                f'Tag "span" must have class "tg-spoiler" at byte offset {_byte_offset(src, begin)}'
            )
        if tag == "a":
            entity["url"] = attrs.get("href", "")
        elif tag == "code" and attrs.get("class", "").startswith("language-"):
            entity["language"] = attrs["class"].removeprefix("language-")
        elif tag == "blockquote" and "expandable" in attrs:
            entity["type"] = "expandable_blockquote"
        elif tag == "tg-emoji":
            emoji_id = attrs.get("emoji-id", "")
            if not emoji_id.isdigit():
                raise HtmlError("Invalid custom emoji identifier specified")
            entity["custom_emoji_id"] = emoji_id
        stack.append(_Open(tag, begin, pos16, entity))
    if stack:
        raise HtmlError(f'Can\'t find end tag corresponding to start tag "{stack[-1].tag}"')
    for e in entities:
        if e["type"] == "text_link" and not e["url"]:
            e["url"] = "".join(out)  # <a>https://x</a> links to its own text
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


def _attributes(src: str, j: int, tag: str, begin: int, strict: bool) -> tuple[dict[str, str], int]:
    """The attributes of a start tag whose name ends at src[j]; returns them and the index
    after its '>'."""
    n = len(src)
    attrs: dict[str, str] = {}
    unclosed = f'Unclosed start tag "{tag}" at byte offset {_byte_offset(src, begin)}'
    while True:
        while j < n and src[j].isspace():
            j += 1
        if j >= n:
            raise HtmlError(unclosed)
        if src[j] == ">":
            return attrs, j + 1
        k = j
        while k < n and not src[k].isspace() and src[k] not in "=>":
            k += 1
        name = src[j:k].lower()
        if not name:
            raise HtmlError(
                f'Empty attribute name in the tag "{tag}" at byte offset {_byte_offset(src, begin)}'
            )
        j = k
        while j < n and src[j].isspace():
            j += 1
        if j >= n:
            raise HtmlError(unclosed)
        if src[j] != "=":
            attrs.setdefault(name, "")  # a boolean attribute, such as `expandable`
            continue
        j += 1
        while j < n and src[j].isspace():
            j += 1
        if j >= n:
            raise HtmlError(unclosed)
        if src[j] in "\"'":
            quote = src[j]
            j += 1
            value: list[str] = []
            while j < n and src[j] != quote:
                if src[j] == "&":
                    ch, j = _reference(src, j, strict)
                    value.append("&" if ch is None else ch)
                else:
                    value.append(src[j])
                    j += 1
            j += 1
            if j >= n:  # no closing quote, or nothing after it
                raise HtmlError(f"Unclosed start tag at byte offset {_byte_offset(src, begin)}")
            attrs.setdefault(name, "".join(value))
        else:
            k = j
            while k < n and src[k].isascii() and (src[k].isalnum() or src[k] in ".-"):
                k += 1
            if k >= n or (not src[k].isspace() and src[k] != ">"):
                raise HtmlError(
                    f"Unexpected end of name token at byte offset {_byte_offset(src, j)}"
                )
            attrs.setdefault(name, src[j:k].lower())
            j = k


def _trim(text: str, entities: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """Telegram strips leading and trailing white space from a message; entities follow."""
    stripped = text.strip()
    if stripped == text:
        return text, entities
    lead16 = utf16_len(text[: len(text) - len(text.lstrip())])
    end16 = utf16_len(stripped)
    kept = []
    for e in entities:
        start = max(e["offset"] - lead16, 0)
        end = min(e["offset"] + e["length"] - lead16, end16)
        if end > start:
            kept.append({**e, "offset": start, "length": end - start})
    return stripped, kept


_COMMAND = re.compile(r"(?<![\w/<>])/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?(?![\w/<>])")


def _detect_commands(text: str) -> list[dict[str, Any]]:
    """bot_command entities Telegram adds to a user's message (PTB's CommandHandler needs
    one at offset 0)."""
    return [
        {"type": "bot_command", "offset": utf16_len(text[: m.start()]), "length": utf16_len(m[0])}
        for m in _COMMAND.finditer(text)
    ]


# --- requests -------------------------------------------------------------------------------


@dataclass
class Request:
    """One HTTP request to the fake, as the daemon made it. Unpacks as
    (method, params, at, status); status is None while it is being answered (a long poll)."""

    method: str
    params: dict[str, Any]
    at: float  # time.monotonic() when it arrived
    status: int | None = None
    description: str | None = None  # the error description when it failed

    def __iter__(self) -> Iterator[Any]:
        return iter((self.method, self.params, self.at, self.status))


class _ApiError(Exception):
    def __init__(self, code: int, description: str, parameters: dict | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters


class _Down(Exception):
    pass


def _bad(description: str) -> _ApiError:
    return _ApiError(400, f"Bad Request: {description}")


def _decode_value(name: str, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        if name in _JSON_FIELDS:
            return json.loads(value)
        if name in _INT_FIELDS:
            return int(value)
        if name in _FLOAT_FIELDS:
            return float(value)
    except ValueError:
        return value  # left as sent: the method refuses it the way Telegram would
    if name in _BOOL_FIELDS:
        return value.strip().lower() in ("true", "1")
    return value


def _multipart(ctype: str, body: bytes) -> dict[str, Any]:
    m = re.search(r'boundary="?([^";]+)"?', ctype)
    if not m:
        raise _bad("can't parse multipart/form-data body")
    delimiter = b"--" + m.group(1).encode()
    params: dict[str, Any] = {}
    for part in body.split(delimiter)[1:]:
        if part.startswith(b"--"):
            break
        head, _, data = part.lstrip(b"\r\n").partition(b"\r\n\r\n")
        data = data.removesuffix(b"\r\n")
        headers = head.decode("utf-8", "replace")
        disposition = next(
            (h for h in headers.split("\r\n") if h.lower().startswith("content-disposition")), ""
        )
        name_m = re.search(r'\bname="((?:[^"\\]|\\.)*)"', disposition)
        if not name_m:
            continue
        name = name_m.group(1)
        file_m = re.search(r'\bfilename="((?:[^"\\]|\\.)*)"', disposition)
        if file_m:
            # httpx escapes a quote in a file name as %22 (the HTML5 form encoding)
            filename = file_m.group(1).replace("%22", '"').replace('\\"', '"')
            type_m = re.search(r"content-type:\s*([^\r\n]+)", headers, re.IGNORECASE)
            params[name] = {
                "filename": filename,
                "data": data,
                "mime_type": type_m.group(1).strip() if type_m else "application/octet-stream",
            }
        else:
            params[name] = _decode_value(name, data.decode("utf-8", "replace"))
    return params


def _parse_params(query: str, ctype: str, body: bytes) -> dict[str, Any]:
    """Parameters from the query string and the body, in any encoding the Bot API accepts."""
    params: dict[str, Any] = {k: _decode_value(k, v) for k, v in parse_qsl(query, True)}
    kind = ctype.split(";")[0].strip().lower()
    if not body:
        return params
    if kind == "application/json":
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise _bad("can't parse JSON object") from exc
        params.update({k: _decode_value(k, v) for k, v in data.items() if v is not None})
    elif kind == "multipart/form-data":
        params.update(_multipart(ctype, body))
    else:
        pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
        params.update({k: _decode_value(k, v) for k, v in pairs})
    return params


# --- chat state -----------------------------------------------------------------------------


@dataclass
class _Msg:
    chat_id: int
    message_id: int
    sender: str  # "bot" | "user"
    user: dict[str, Any]
    date: int
    text: str  # visible text (or a document's caption)
    raw: str
    parse_mode: str | None
    entities: list[dict[str, Any]]
    markup: list[list[dict[str, Any]]] | None  # the inline keyboard
    keyboard: dict[str, Any] | None = None  # a reply keyboard / force_reply / remove
    reply_to: int | None = None
    document: dict[str, Any] | None = None
    options: dict[str, Any] = field(default_factory=dict)
    edits: list[dict[str, Any]] = field(default_factory=list)
    original: dict[str, Any] = field(default_factory=dict)  # as first sent, before edits
    deleted: bool = False
    edit_date: int | None = None


@dataclass
class _Query:
    id: str
    chat_id: int
    user_id: int
    message_id: int
    data: str
    label: str | None
    answer: dict[str, Any] | None = None


class FakeTelegram:
    """A Telegram Bot API for one bot, on 127.0.0.1; `with FakeTelegram(token) as tg:`.

    Chats the bot may write to are those a user wrote in (`user_says`), those passed as
    `chats`, or added with `add_chat`: like Telegram, sending to any other chat is refused
    with "chat not found" (a user must have started the bot first).

    Not modelled: MarkdownV2/Markdown parse modes (400, use HTML), explicit `entities` are
    stored but not checked, webhooks (setWebhook is an unknown method), media other than
    documents (and documents sent by file_id or URL), editMessageCaption/Media, inline
    messages (inline_message_id), message threads, groups' permissions, automatic url/mention
    detection in bot messages, callback queries expiring with time, and per-chat flood limits
    unless scripted with `rate_limit`.
    """

    def __init__(self, token: str, chats: Iterable[int] = (), strict_html: bool = True) -> None:
        number, sep, secret = token.partition(":")
        if not (number.isdigit() and sep and secret):
            raise ValueError("a bot token looks like '123456:secret'")
        self.token = token
        self.strict_html = strict_html
        self.bot_user: dict[str, Any] = {
            "id": int(number),
            "is_bot": True,
            "first_name": "leashd test",
            "username": BOT_USERNAME,
        }
        self.requests: list[Request] = []
        self.unknown_methods: list[str] = []  # methods the daemon called that this fake lacks
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._chats: dict[int, dict[str, Any]] = {}
        self._msgs: dict[int, dict[int, _Msg]] = defaultdict(dict)
        self._next_msg: dict[int, int] = defaultdict(lambda: 1)
        self._log: dict[int, list[tuple[float, str]]] = defaultdict(list)
        self._queries: dict[str, _Query] = {}
        self._query_ids = itertools.count(4_000_000_000_000_000_001)
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(800_000_001)
        self._allowed: frozenset[str] = _DEFAULT_ALLOWED
        self._commands: dict[tuple[str, str], list[dict[str, str]]] = {}
        self._limits: dict[str, deque[int]] = defaultdict(deque)
        self._poll_generation = 0
        self._down = False
        self._closed = False
        self._started = time.monotonic()
        self._conns: set[socket.socket] = set()
        self._server: ThreadingHTTPServer | None = None
        for chat_id in chats:
            self.add_chat(chat_id)
        self._methods: dict[str, Callable[[dict[str, Any]], Any]] = {
            "getMe": self._get_me,
            "getUpdates": self._get_updates,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "setMyCommands": self._set_my_commands,
            "getMyCommands": self._get_my_commands,
            "deleteMyCommands": self._delete_my_commands,
            "sendMessage": self._send_message,
            "editMessageText": self._edit_message_text,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "answerCallbackQuery": self._answer_callback_query,
            "deleteMessage": self._delete_message,
            "sendDocument": self._send_document,
            "sendChatAction": self._send_chat_action,
        }
        # Telegram matches method names without regard to case
        self._by_lower = {name.lower(): name for name in self._methods}

    # --- serving ----------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """What PTB takes as base_url: it appends the token and then /method."""
        assert self._server is not None, "use FakeTelegram as a context manager"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/bot"

    def __enter__(self) -> FakeTelegram:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        # a short poll interval: shutdown() waits for it, once per test
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            conns = list(self._conns)
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()
        # keep-alive connections would otherwise go on being served by their threads
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    # --- scripted failures ------------------------------------------------------------------

    def down(self) -> None:
        """Every request gets 502 Bad Gateway until `up()`; waiting long polls end with it."""
        with self._cond:
            self._down = True
            self._note_everywhere("📵 Telegram is down (every request gets 502 Bad Gateway)")

    def up(self) -> None:
        with self._cond:
            self._down = False
            self._note_everywhere("📶 Telegram is up again")

    def rate_limit(self, method: str, retry_after: int, times: int = 1) -> None:
        """The next `times` calls of `method` get 429 Too Many Requests with retry_after."""
        with self._cond:
            name = self._by_lower.get(method.lower(), method)
            self._limits[name].extend([retry_after] * times)

    # --- the user's side --------------------------------------------------------------------

    def add_chat(self, chat_id: int, first_name: str = "Tester") -> None:
        """A chat the bot may write to (for a private chat: a user who started the bot)."""
        with self._cond:
            self._chat(chat_id, first_name)

    def user_says(
        self,
        chat_id: int,
        user_id: int,
        text: str,
        reply_to: int | None = None,
        first_name: str = "Tester",
    ) -> int:
        """Queue a message update from the user; returns its message_id."""
        with self._cond:
            chat = self._chat(chat_id, first_name)
            user = _user(user_id, first_name)
            if reply_to is not None and reply_to not in self._msgs[chat_id]:
                raise ValueError(f"no message {reply_to} in chat {chat_id} to reply to")
            msg = _Msg(
                chat_id=chat_id,
                message_id=self._new_message_id(chat_id),
                sender="user",
                user=user,
                date=int(time.time()),
                text=text,
                raw=text,
                parse_mode=None,
                entities=_detect_commands(text),
                markup=None,
                reply_to=reply_to,
            )
            self._msgs[chat_id][msg.message_id] = msg
            reply = f" (↩ msg {reply_to})" if reply_to is not None else ""
            self._note(chat_id, f"👤 {user_id} [msg {msg.message_id}]{reply}: {_indent(text)}")
            self._enqueue("message", self._api_message(msg, chat))
            return msg.message_id

    def press(
        self,
        chat_id: int,
        user_id: int,
        message_id: int,
        data: str,
        force: bool = False,
        first_name: str = "Tester",
    ) -> str:
        """Queue a callback_query update: the user pressed the button with this callback_data
        on a bot message; returns the callback_query_id. The button must be on the message
        now, unless `force` (a stale or replayed button, or one that never existed)."""
        with self._cond:
            msg = self._msgs.get(chat_id, {}).get(message_id)
            if msg is None or msg.sender != "bot":
                raise ValueError(f"no bot message {message_id} in chat {chat_id}")
            current = [] if msg.deleted else [b for row in msg.markup or [] for b in row]
            label = next((b["text"] for b in current if b.get("callback_data") == data), None)
            if label is None and not force:
                have = [b.get("callback_data") for b in current]
                state = "deleted" if msg.deleted else f"has buttons {have}"
                raise ValueError(f"msg {message_id} {state}, not {data!r}: pass force=True")
            if label is None:  # a button the message had before an edit or deletion, if any
                older = [msg.original.get("reply_markup"), msg.markup]
                older += [e.get("reply_markup") for e in msg.edits]
                for markup in older:
                    for b in (b for row in markup or [] for b in row):
                        if b.get("callback_data") == data:
                            label = b["text"]
            qid = str(next(self._query_ids))
            self._queries[qid] = _Query(qid, chat_id, user_id, message_id, data, label)
            chat = self._chat(chat_id, first_name)
            if msg.deleted:  # Telegram sends an InaccessibleMessage (date 0)
                api_msg: dict[str, Any] = {"chat": chat, "message_id": message_id, "date": 0}
            else:
                api_msg = self._api_message(msg, chat)
            stale = "" if any(b.get("callback_data") == data for b in current) else " (stale)"
            shown = f'"{label}"' if label is not None else f"a button with data {data!r}"
            self._note(chat_id, f"👆 {user_id} pressed {shown} on msg {message_id}{stale}")
            query = {
                "id": qid,
                "from": _user(user_id, first_name),
                "message": api_msg,
                "chat_instance": str(abs(hash((chat_id, self.bot_user["id"])))),
                "data": data,
            }
            self._enqueue("callback_query", query)
            return qid

    def answer_for(self, callback_query_id: str) -> dict[str, Any] | None:
        """The answerCallbackQuery params once the bot answered this query, else None."""
        with self._cond:
            q = self._queries.get(callback_query_id)
            return dict(q.answer) if q and q.answer is not None else None

    # --- what the bot did -------------------------------------------------------------------

    def messages(self, chat_id: int) -> list[dict[str, Any]]:
        """Every message in the chat, in order, as plain dicts (a snapshot): message_id,
        from ("bot"/"user"), user_id, date, text (visible; a document's caption), raw,
        parse_mode, entities, reply_markup (rows of button dicts, or None), keyboard (a
        non-inline reply markup), reply_to, document ({filename, data, mime_type, caption}),
        options (disable_notification, link_preview_options, ...), original (text, raw,
        parse_mode, reply_markup as first sent), edits (the same after each edit, with the
        method), deleted. The top-level text/raw/parse_mode/reply_markup are the current ones."""
        with self._cond:
            return [_public(m) for m in self._msgs.get(chat_id, {}).values()]

    def bot_messages(self, chat_id: int) -> list[dict[str, Any]]:
        return [m for m in self.messages(chat_id) if m["from"] == "bot"]

    def message(self, chat_id: int, message_id: int) -> dict[str, Any]:
        with self._cond:
            return _public(self._msgs[chat_id][message_id])

    def calls(self, method: str) -> list[Request]:
        with self._cond:
            name = self._by_lower.get(method.lower(), method)
            return [r for r in self.requests if r.method == name]

    @property
    def commands(self) -> list[dict[str, str]]:
        """The commands set for the default scope and no language."""
        with self._cond:
            return copy.deepcopy(self._commands.get(("default", ""), []))

    def pending_updates(self) -> list[dict[str, Any]]:
        """Updates not confirmed yet by a getUpdates offset."""
        with self._cond:
            return copy.deepcopy(self._updates)

    def transcript(self, chat_id: int, times: bool = False) -> str:
        """The chat as a reader would follow it: the user's messages, the bot's messages
        with their buttons, edits, deletions, presses, answers and failed requests."""
        with self._cond:
            lines = self._log.get(chat_id, [])
            if not lines:
                return f"(chat {chat_id}: nothing happened)"
            if not times:
                return "\n".join(line for _, line in lines)
            # continuation lines move right with their first line
            pad = "\n" + " " * len(f"{0:7.2f}s  ")
            return "\n".join(f"{t:7.2f}s  {line.replace(chr(10), pad)}" for t, line in lines)

    # --- waiting ----------------------------------------------------------------------------

    def wait_for(
        self,
        predicate: Callable[[], Any],
        timeout: float = 30.0,
        what: str | None = None,
        chat_id: int | None = None,
    ) -> Any:
        """Block until predicate() is truthy (it is re-checked after every request and every
        change); returns its value. Raises AssertionError with the transcript on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = predicate()
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(self._timeout_report(what, predicate, timeout, chat_id))
                self._cond.wait(left)

    async def wait_for_async(
        self,
        predicate: Callable[[], Any],
        timeout: float = 30.0,
        what: str | None = None,
        chat_id: int | None = None,
    ) -> Any:
        """`wait_for` for a test running the bot in its own event loop (which the blocking
        version would stall)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._cond:
                value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise AssertionError(self._timeout_report(what, predicate, timeout, chat_id))
            await asyncio.sleep(0.005)

    def wait_message(
        self,
        chat_id: int,
        contains: str,
        buttons: bool | None = None,
        timeout: float = 30.0,
        after: int = 0,
    ) -> dict[str, Any]:
        """A bot message (not deleted, id > `after`) whose current visible text contains
        `contains`; with buttons=True it must have inline buttons, False none."""
        pred, what = self._message_matcher(chat_id, contains, buttons, after)
        return self.wait_for(pred, timeout, what, chat_id)

    async def wait_message_async(
        self,
        chat_id: int,
        contains: str,
        buttons: bool | None = None,
        timeout: float = 30.0,
        after: int = 0,
    ) -> dict[str, Any]:
        pred, what = self._message_matcher(chat_id, contains, buttons, after)
        return await self.wait_for_async(pred, timeout, what, chat_id)

    def wait_answer(self, callback_query_id: str, timeout: float = 30.0) -> dict[str, Any]:
        """The answerCallbackQuery params for this query, once the bot answered it."""
        return self.wait_for(
            lambda: self.answer_for(callback_query_id),
            timeout,
            f"an answer to callback query {callback_query_id}",
            self._query_chat(callback_query_id),
        )

    async def wait_answer_async(
        self, callback_query_id: str, timeout: float = 30.0
    ) -> dict[str, Any]:
        return await self.wait_for_async(
            lambda: self.answer_for(callback_query_id),
            timeout,
            f"an answer to callback query {callback_query_id}",
            self._query_chat(callback_query_id),
        )

    def wait_calls(self, method: str, count: int = 1, timeout: float = 30.0) -> list[Request]:
        """Block until `method` was called at least `count` times (answered or not)."""
        return self.wait_for(
            lambda: (calls := self.calls(method)) and len(calls) >= count and calls,
            timeout,
            f"{count} call(s) of {method}",
        )

    def _message_matcher(
        self, chat_id: int, contains: str, buttons: bool | None, after: int
    ) -> tuple[Callable[[], dict[str, Any] | None], str]:
        def match() -> dict[str, Any] | None:
            for m in self._msgs.get(chat_id, {}).values():
                if m.sender != "bot" or m.deleted or m.message_id <= after:
                    continue
                if contains in m.text and (buttons is None or bool(m.markup) == buttons):
                    return _public(m)
            return None

        extra = {None: "", True: " with buttons", False: " without buttons"}[buttons]
        return match, f"a bot message in chat {chat_id} containing {contains!r}{extra}"

    def _query_chat(self, callback_query_id: str) -> int | None:
        with self._cond:
            q = self._queries.get(callback_query_id)
            return q.chat_id if q else None

    def _timeout_report(
        self, what: str | None, predicate: Callable, timeout: float, chat_id: int | None
    ) -> str:
        name = what or getattr(predicate, "__qualname__", repr(predicate))
        with self._cond:
            chats = [chat_id] if chat_id is not None else sorted(self._log)
            parts = [f"timed out after {timeout:g}s waiting for {name}"]
            if self._down:
                parts.append("(the fake Telegram is down)")
            for c in chats:
                parts.append(f"--- transcript of chat {c} ---\n{self.transcript(c, times=True)}")
            recent = [
                f"{r.method} -> {r.status}" + (f" ({r.description})" if r.description else "")
                for r in self.requests[-8:]
            ]
            parts.append("last requests: " + ", ".join(recent))
            return "\n".join(parts)

    # --- dispatch ---------------------------------------------------------------------------

    def _dispatch(self, path: str, ctype: str, body: bytes) -> tuple[int, str, bytes]:
        at = time.monotonic()
        url = urlsplit(path)
        m = re.fullmatch(r"/bot([^/]*)/([^/]+)", url.path)
        raw_method = m.group(2) if m else url.path
        method = self._by_lower.get(raw_method.lower(), raw_method)
        try:
            params = _parse_params(url.query, ctype, body)
            parse_error = None
        except _ApiError as exc:
            params, parse_error = {}, exc
        with self._cond:
            req = Request(method, params, at)
            self.requests.append(req)
            self._cond.notify_all()
            try:
                if self._down or self._closed:
                    raise _Down
                if m is None:
                    raise _ApiError(404, "Not Found")
                if m.group(1) != self.token:
                    raise _ApiError(401, "Unauthorized")
                handler = self._methods.get(method)
                if handler is None:
                    self.unknown_methods.append(raw_method)
                    raise _ApiError(404, "Not Found: method not found")
                if self._limits[method]:
                    wait = self._limits[method].popleft()
                    raise _ApiError(
                        429, f"Too Many Requests: retry after {wait}", {"retry_after": wait}
                    )
                if parse_error:
                    raise parse_error
                result = handler(params)
                status, ctype_out = 200, "application/json"
                payload = json.dumps({"ok": True, "result": result}).encode()
            except _Down:
                status, ctype_out, payload = 502, "text/html", b"Bad Gateway"
                req.description = "Bad Gateway"
                self._note_failure(method, params, "502 Bad Gateway (Telegram is down)")
            except _ApiError as exc:
                status, ctype_out = exc.code, "application/json"
                error: dict[str, Any] = {
                    "ok": False,
                    "error_code": exc.code,
                    "description": exc.description,
                }
                if exc.parameters:
                    error["parameters"] = exc.parameters
                payload = json.dumps(error).encode()
                req.description = exc.description
                self._note_failure(method, params, f"{exc.code} {exc.description}")
            except Exception as exc:  # a bug in the fake: say so rather than drop the connection
                status, ctype_out = 500, "application/json"
                req.description = f"Internal Server Error: the fake failed: {exc!r}"
                payload = json.dumps(
                    {"ok": False, "error_code": 500, "description": req.description}
                ).encode()
                self._note_failure(method, params, f"500 {req.description}")
            req.status = status
            self._cond.notify_all()
            return status, ctype_out, payload

    # --- methods ----------------------------------------------------------------------------

    def _get_me(self, p: dict[str, Any]) -> dict[str, Any]:
        return {
            **self.bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def _delete_webhook(self, p: dict[str, Any]) -> bool:
        if p.get("drop_pending_updates"):
            self._updates.clear()
        return True

    def _get_webhook_info(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"url": "", "has_custom_certificate": False, "pending_update_count": 0}

    def _get_updates(self, p: dict[str, Any]) -> list[dict[str, Any]]:
        offset = _as_int(p.get("offset", 0), "offset")
        limit = min(max(_as_int(p.get("limit", 100), "limit"), 1), 100)
        timeout = p.get("timeout", 0)
        timeout = float(timeout) if isinstance(timeout, int | float) else 0.0
        allowed = p.get("allowed_updates")
        if isinstance(allowed, list):
            # kept for later updates, as Telegram does; [] means the default set
            self._allowed = frozenset(allowed) if allowed else _DEFAULT_ALLOWED
        if offset > 0:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        elif offset < 0:
            self._updates = self._updates[offset:]
        # only one getUpdates at a time: a new one ends the one waiting with 409
        self._poll_generation += 1
        generation = self._poll_generation
        self._cond.notify_all()
        deadline = time.monotonic() + timeout
        while True:
            if generation != self._poll_generation:
                raise _ApiError(409, CONFLICT)
            if self._down or self._closed:
                raise _Down
            if self._updates:
                return copy.deepcopy(self._updates[:limit])
            left = deadline - time.monotonic()
            if left <= 0:
                return []
            self._cond.wait(left)

    def _scope_key(self, p: dict[str, Any]) -> tuple[str, str]:
        scope = p.get("scope") or {"type": "default"}
        if not isinstance(scope, dict) or "type" not in scope:
            raise _bad("can't parse BotCommandScope JSON object")
        key = scope["type"] if len(scope) == 1 else json.dumps(scope, sort_keys=True)
        return key, str(p.get("language_code") or "")

    def _set_my_commands(self, p: dict[str, Any]) -> bool:
        commands = p.get("commands")
        if not isinstance(commands, list):
            raise _bad("can't parse commands JSON object")
        clean = []
        for c in commands:
            if not isinstance(c, dict):
                raise _bad("can't parse BotCommand JSON object")
            name, desc = str(c.get("command", "")), str(c.get("description", ""))
            if not re.fullmatch(r"[a-z0-9_]{1,32}", name):
                raise _bad("BOT_COMMAND_INVALID")
            if not 1 <= len(desc) <= 256:
                raise _bad("command description must be non-empty")
            clean.append({"command": name, "description": desc})
        self._commands[self._scope_key(p)] = clean
        return True

    def _get_my_commands(self, p: dict[str, Any]) -> list[dict[str, str]]:
        return copy.deepcopy(self._commands.get(self._scope_key(p), []))

    def _delete_my_commands(self, p: dict[str, Any]) -> bool:
        self._commands.pop(self._scope_key(p), None)
        return True

    def _send_message(self, p: dict[str, Any]) -> dict[str, Any]:
        chat_id = self._known_chat(p)
        raw = p.get("text")
        raw = raw if isinstance(raw, str) else ""
        text, entities = self._format(raw, p.get("parse_mode"), p.get("entities"))
        if not text:
            raise _bad("message text is empty")
        if utf16_len(text) > MAX_TEXT:
            raise _bad("message is too long")
        return self._store_bot_message(self._bot_msg(chat_id, p, text, raw, entities))

    def _bot_msg(
        self, chat_id: int, p: dict[str, Any], text: str, raw: str, entities: Any, **more: Any
    ) -> _Msg:
        """A message from the bot, as sendMessage and sendDocument both make one."""
        markup, keyboard = _markup(p.get("reply_markup"))
        return _Msg(
            chat_id=chat_id,
            message_id=0,
            sender="bot",
            user=self.bot_user,
            date=int(time.time()),
            text=text,
            raw=raw,
            parse_mode=p.get("parse_mode"),
            entities=entities,
            markup=markup,
            keyboard=keyboard,
            reply_to=self._reply_target(chat_id, p),
            options=_options(p),
            **more,
        )

    def _send_document(self, p: dict[str, Any]) -> dict[str, Any]:
        chat_id = self._known_chat(p)
        doc = p.get("document")
        if doc is None:
            raise _bad("there is no document in the request")
        if not isinstance(doc, dict) or not isinstance(doc.get("data"), bytes):
            # a file_id or URL: the fake keeps no files to point at
            raise _bad("wrong file identifier/HTTP URL specified")
        if not doc["data"]:
            raise _bad("file must be non-empty")
        if len(doc["data"]) > MAX_UPLOAD:
            raise _ApiError(413, "Request Entity Too Large")
        raw = p.get("caption")
        raw = raw if isinstance(raw, str) else ""
        caption, entities = self._format(raw, p.get("parse_mode"), p.get("caption_entities"))
        if utf16_len(caption) > MAX_CAPTION:
            raise _bad("message caption is too long")
        document = {
            "filename": doc["filename"],
            "data": doc["data"],
            "mime_type": doc["mime_type"],
            "caption": caption,
        }
        msg = self._bot_msg(chat_id, p, caption, raw, entities, document=document)
        return self._store_bot_message(msg)

    def _edit_message_text(self, p: dict[str, Any]) -> dict[str, Any]:
        msg = self._editable(p, "edit")
        if msg.document is not None:
            raise _bad("there is no text in the message to edit")
        raw = p.get("text")
        raw = raw if isinstance(raw, str) else ""
        text, entities = self._format(raw, p.get("parse_mode"), p.get("entities"))
        if not text:
            raise _bad("message text is empty")
        if utf16_len(text) > MAX_TEXT:
            raise _bad("MESSAGE_TOO_LONG")
        # no reply_markup in an edit means no keyboard: the old one goes
        markup, _ = _markup(p.get("reply_markup"))
        if (text, entities, markup) == (msg.text, msg.entities, msg.markup):
            raise _bad(NOT_MODIFIED)
        msg.text, msg.raw, msg.entities, msg.markup = text, raw, entities, markup
        msg.parse_mode = p.get("parse_mode")
        return self._record_edit(msg, "editMessageText")

    def _edit_message_reply_markup(self, p: dict[str, Any]) -> dict[str, Any]:
        msg = self._editable(p, "edit")
        markup, _ = _markup(p.get("reply_markup"))
        if markup == msg.markup:
            raise _bad(NOT_MODIFIED)
        msg.markup = markup
        return self._record_edit(msg, "editMessageReplyMarkup")

    def _delete_message(self, p: dict[str, Any]) -> bool:
        msg = self._editable(p, "delete", bot_only=False)
        msg.deleted = True
        self._note(msg.chat_id, f"🗑 [msg {msg.message_id}] deleted")
        return True

    def _answer_callback_query(self, p: dict[str, Any]) -> bool:
        q = self._queries.get(str(p.get("callback_query_id", "")))
        if q is None or q.answer is not None:
            raise _bad(QUERY_INVALID)
        text = p.get("text")
        if isinstance(text, str) and len(text) > MAX_ANSWER_TEXT:
            raise _bad("MESSAGE_TOO_LONG")
        q.answer = {k: v for k, v in p.items() if k != "callback_query_id"}
        kind = "alert" if p.get("show_alert") else "answer"
        self._note(q.chat_id, f"   ({kind}: {text})" if text else f"   ({kind}, no text)")
        return True

    def _send_chat_action(self, p: dict[str, Any]) -> bool:
        self._known_chat(p)
        if p.get("action") not in _CHAT_ACTIONS:
            raise _bad("wrong parameter action in request")
        return True

    # --- helpers (called with the lock held) ------------------------------------------------

    def _chat(self, chat_id: int, first_name: str = "Tester") -> dict[str, Any]:
        if chat_id not in self._chats:
            if chat_id > 0:
                chat = {"id": chat_id, "type": "private", "first_name": first_name}
            else:
                kind = "supergroup" if str(chat_id).startswith("-100") else "group"
                chat = {"id": chat_id, "type": kind, "title": f"Test {kind} {chat_id}"}
            self._chats[chat_id] = chat
        return self._chats[chat_id]

    def _known_chat(self, p: dict[str, Any]) -> int:
        chat_id = p.get("chat_id")
        if chat_id is None or chat_id == "":
            raise _bad("chat_id is empty")
        if not isinstance(chat_id, int) or chat_id not in self._chats:
            raise _bad("chat not found")
        return chat_id

    def _editable(self, p: dict[str, Any], verb: str, bot_only: bool = True) -> _Msg:
        if p.get("inline_message_id"):
            raise _bad("the fake Telegram API does not model inline messages")
        chat_id = self._known_chat(p)
        message_id = p.get("message_id")
        if message_id is None:
            raise _bad("message identifier is not specified")
        msg = self._msgs[chat_id].get(message_id) if isinstance(message_id, int) else None
        if msg is None or msg.deleted:
            raise _bad(f"message to {verb} not found")
        if bot_only and msg.sender != "bot":
            raise _bad("message can't be edited")
        return msg

    def _format(self, raw: str, parse_mode: Any, entities: Any) -> tuple[str, list[dict[str, Any]]]:
        mode = str(parse_mode or "").lower()
        if mode == "html":
            try:
                text, found = parse_html(raw, self.strict_html)
            except HtmlError as exc:
                raise _bad(f"can't parse entities: {exc}") from exc
        elif mode in ("markdownv2", "markdown"):
            raise _bad(
                f"can't parse entities: the fake Telegram API does not implement {parse_mode} "
                "parse mode; use HTML"
            )
        elif mode:
            raise _bad("unsupported parse_mode")
        else:
            text, found = raw, list(entities) if isinstance(entities, list) else []
        return _trim(text, found)

    def _reply_target(self, chat_id: int, p: dict[str, Any]) -> int | None:
        rp = p.get("reply_parameters")
        if isinstance(rp, dict):
            target, allow = rp.get("message_id"), bool(rp.get("allow_sending_without_reply"))
        elif p.get("reply_to_message_id") is not None:
            target = p.get("reply_to_message_id")
            allow = bool(p.get("allow_sending_without_reply"))
        else:
            return None
        msg = self._msgs[chat_id].get(target) if isinstance(target, int) else None
        if msg is None or msg.deleted:
            if allow:
                return None
            raise _bad("message to be replied not found")
        return msg.message_id

    def _new_message_id(self, chat_id: int) -> int:
        n = self._next_msg[chat_id]
        self._next_msg[chat_id] = n + 1
        return n

    def _store_bot_message(self, msg: _Msg) -> dict[str, Any]:
        msg.message_id = self._new_message_id(msg.chat_id)
        msg.original = _version(msg)
        self._msgs[msg.chat_id][msg.message_id] = msg
        reply = f" (↩ msg {msg.reply_to})" if msg.reply_to is not None else ""
        head = f"🤖 [msg {msg.message_id}]{reply} "
        if msg.document is not None:
            doc = msg.document
            body = f"📎 {doc['filename']} ({len(doc['data'])} bytes)"
            body += f" — {msg.text}" if msg.text else ""
        else:
            body = msg.text
        self._note(msg.chat_id, head + _with_buttons(body, msg.markup))
        return self._api_message(msg, self._chats[msg.chat_id])

    def _record_edit(self, msg: _Msg, method: str) -> dict[str, Any]:
        msg.edit_date = int(time.time())
        msg.edits.append({"method": method, **_version(msg)})
        head = f"✏️ [msg {msg.message_id}] "
        if method == "editMessageText":
            line = head + "→ " + _with_buttons(msg.text, msg.markup)
        elif msg.markup:
            line = head + "buttons → " + _buttons(msg.markup)
        else:
            line = head + "buttons removed"
        self._note(msg.chat_id, line)
        return self._api_message(msg, self._chats[msg.chat_id])

    def _api_message(self, msg: _Msg, chat: dict[str, Any], nested: bool = False) -> dict:
        """The Message object as the Bot API returns it."""
        out: dict[str, Any] = {
            "message_id": msg.message_id,
            "from": msg.user,
            "chat": chat,
            "date": msg.date,
        }
        if msg.edit_date is not None:
            out["edit_date"] = msg.edit_date
        if msg.document is not None:
            doc = msg.document
            key = f"{msg.chat_id}_{msg.message_id}"
            out["document"] = {
                "file_id": f"fake-doc-{key}",
                "file_unique_id": f"fdu{key}",
                "file_name": doc["filename"],
                "mime_type": doc["mime_type"],
                "file_size": len(doc["data"]),
            }
            if msg.text:
                out["caption"] = msg.text
                if msg.entities:
                    out["caption_entities"] = msg.entities
        else:
            out["text"] = msg.text
            if msg.entities:
                out["entities"] = msg.entities
        if msg.markup:
            out["reply_markup"] = {"inline_keyboard": msg.markup}
        if msg.reply_to is not None and not nested:
            target = self._msgs[msg.chat_id][msg.reply_to]
            out["reply_to_message"] = self._api_message(target, chat, nested=True)
        return copy.deepcopy(out)

    def _enqueue(self, kind: str, payload: dict[str, Any]) -> None:
        # Telegram does not even store updates of types the bot did not ask for
        if kind in self._allowed:
            self._updates.append({"update_id": next(self._update_ids), kind: payload})
        self._cond.notify_all()

    def _note(self, chat_id: int, line: str) -> None:
        self._log[chat_id].append((time.monotonic() - self._started, line))
        self._cond.notify_all()

    def _note_everywhere(self, line: str) -> None:
        """A line in every chat's transcript, so a gap in one reads with its cause."""
        for chat_id in self._chats.keys() | self._log.keys():
            self._note(chat_id, line)
        self._cond.notify_all()

    def _note_failure(self, method: str, params: dict[str, Any], what: str) -> None:
        chat_id = params.get("chat_id")
        if not isinstance(chat_id, int):
            q = self._queries.get(str(params.get("callback_query_id", "")))
            chat_id = q.chat_id if q else None
        if chat_id is not None:
            target = f" msg {params['message_id']}" if "message_id" in params else ""
            self._note(chat_id, f"⚠️ {method}{target} failed: {what}")


def _as_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(f"wrong parameter {name} in request")
    return value


def _user(user_id: int, first_name: str) -> dict[str, Any]:
    return {"id": user_id, "is_bot": False, "first_name": first_name, "language_code": "en"}


def _options(p: dict[str, Any]) -> dict[str, Any]:
    keep = (
        "disable_notification", "protect_content", "link_preview_options",
        "disable_web_page_preview", "message_effect_id",
    )  # fmt: skip
    return {k: p[k] for k in keep if k in p}


def _markup(value: Any) -> tuple[list[list[dict[str, Any]]] | None, dict[str, Any] | None]:
    """(inline keyboard rows or None, another kind of reply markup or None), checked like
    Telegram checks an inline keyboard."""
    if value is None:
        return None, None
    if not isinstance(value, dict):
        raise _bad("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" not in value:
        if any(k in value for k in ("keyboard", "remove_keyboard", "force_reply")):
            return None, value
        raise _bad("can't parse reply keyboard markup JSON object")
    rows = value["inline_keyboard"]
    if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
        raise _bad("can't parse inline keyboard JSON object")
    clean: list[list[dict[str, Any]]] = []
    for row in rows:
        out_row = []
        for b in row:
            if not isinstance(b, dict) or not isinstance(b.get("text"), str):
                raise _bad(
                    'can\'t parse inline keyboard button: Field "text" must be of type String'
                )
            if not any(k in b for k in _BUTTON_ACTIONS):
                raise _bad(
                    "can't parse inline keyboard button: Text buttons are unallowed in the "
                    "inline keyboard"
                )
            if "callback_data" in b:
                data = b["callback_data"]
                if not isinstance(data, str) or not 1 <= len(data.encode()) <= MAX_CALLBACK_DATA:
                    raise _bad("BUTTON_DATA_INVALID")
            out_row.append({k: v for k, v in b.items() if v is not None})
        if out_row:
            clean.append(out_row)
    return (clean or None), None


def _version(m: _Msg) -> dict[str, Any]:
    return copy.deepcopy(
        {"text": m.text, "raw": m.raw, "parse_mode": m.parse_mode, "reply_markup": m.markup}
    )


def _public(m: _Msg) -> dict[str, Any]:
    return copy.deepcopy(
        {
            "message_id": m.message_id,
            "chat_id": m.chat_id,
            "from": m.sender,
            "user_id": m.user["id"],
            "date": m.date,
            "text": m.text,
            "raw": m.raw,
            "parse_mode": m.parse_mode,
            "entities": m.entities,
            "reply_markup": m.markup,
            "keyboard": m.keyboard,
            "reply_to": m.reply_to,
            "document": m.document,
            "options": m.options,
            "original": m.original or _version(m),
            "edits": m.edits,
            "deleted": m.deleted,
        }
    )


def _buttons(markup: list[list[dict[str, Any]]] | None) -> str:
    return " / ".join(" ".join(f"[{b['text']}]" for b in row) for row in markup or [])


# Continuation lines of a message are indented by a fixed width: aligning them under the
# text would depend on how wide a terminal draws the emoji in front.
_INDENT = "\n" + " " * 5


def _indent(text: str) -> str:
    return text.replace("\n", _INDENT)


def _with_buttons(text: str, markup: list[list[dict[str, Any]]] | None) -> str:
    """The text, then the buttons: on its line if it has one line, else under it."""
    shown = _indent(text)
    if not markup:
        return shown
    return shown + (_INDENT if "\n" in text else "  ") + _buttons(markup)


def _handler(fake: FakeTelegram) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def setup(self) -> None:
            super().setup()
            # headers and body go out in two writes: without this, Nagle's algorithm and the
            # client's delayed ACK add 40 ms to every request
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with fake._cond:
                fake._conns.add(self.connection)

        def finish(self) -> None:
            with fake._cond:
                fake._conns.discard(self.connection)
            with contextlib.suppress(OSError):
                super().finish()

        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def _serve(self) -> None:
            size = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(size) if size else b""
            status, ctype, payload = fake._dispatch(
                self.path, self.headers.get("content-type", ""), body
            )
            try:
                self.send_response(status)
                self.send_header("content-type", ctype)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except OSError:
                self.close_connection = True  # the client gave up (a cancelled long poll)

    return Handler
