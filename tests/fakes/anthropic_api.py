"""A fake Anthropic Messages API on 127.0.0.1, for the real Claude Code CLI.

Each test queues the assistant's replies (text, tool calls, a reply that hangs, an error);
every request the CLI makes is kept, so a test can check what reached the model (a denied
read's secret must never). Replies are streamed as the real API does (SSE: message_start,
content_block_start/delta/stop, message_delta, message_stop).

The CLI is pointed at it with the environment of `FakeAnthropic.env(home)`.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """One assistant message: its blocks, or a way to misbehave."""

    blocks: list[dict[str, Any]] = field(default_factory=list)
    hang: bool = False  # start streaming, then wait until released (or the server stops)
    status: int = 200  # an HTTP error instead of a message
    when: Callable[[dict[str, Any]], bool] | None = None  # only for requests this accepts


def text(s: str) -> dict[str, Any]:
    return {"type": "text", "text": s}


_ids = itertools.count(1)


def tool(name: str, tool_input: dict[str, Any], tool_id: str | None = None) -> dict[str, Any]:
    return {
        "type": "tool_use",
        "id": tool_id or f"toolu_{next(_ids):04d}",
        "name": name,
        "input": tool_input,
    }


class FakeAnthropic:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.unexpected = 0  # requests that found no scripted reply
        self._script: list[Reply] = []
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- scripting --------------------------------------------------------------------------

    def reply(self, *blocks: dict[str, Any], when: Callable[[dict], bool] | None = None) -> None:
        self._script.append(Reply(list(blocks), when=when))

    def say(self, s: str) -> None:
        self.reply(text(s))

    def call(self, name: str, tool_input: dict[str, Any], note: str = "") -> str:
        """Queue a reply that calls one tool; returns the tool_use id."""
        block = tool(name, tool_input)
        self.reply(*([text(note)] if note else []), block)
        return block["id"]

    def hang(self, when: Callable[[dict], bool] | None = None) -> None:
        self._script.append(Reply([text("thinking it over")], hang=True, when=when))

    def fail(self, status: int = 500) -> None:
        self._script.append(Reply(status=status))

    def release(self) -> None:
        self._release.set()

    # --- what the model saw -----------------------------------------------------------------

    def tool_results(self) -> dict[str, str]:
        """The result the CLI sent back for each tool_use id, as text."""
        out: dict[str, str] = {}
        for body in self.requests:
            for msg in body.get("messages", []):
                content = msg.get("content")
                if not isinstance(content, list):
                    continue
                for block in content:
                    if isinstance(block, dict) and block.get("type") == "tool_result":
                        out[block["tool_use_id"]] = _as_text(block.get("content"))
        return out

    def seen(self) -> str:
        """Every request body, as one text: to check something never reached the model."""
        return "\n".join(json.dumps(b) for b in self.requests)

    def user_texts(self) -> list[str]:
        """The user's prompts in the last request (the conversation as the model has it)."""
        if not self.requests:
            return []
        texts = []
        for msg in self.requests[-1].get("messages", []):
            if msg.get("role") != "user":
                continue
            content = msg.get("content")
            if isinstance(content, str):
                texts.append(content)
                continue
            for block in content or []:
                if block.get("type") == "text" and "<system-reminder>" not in block["text"]:
                    texts.append(block["text"])
        return texts

    # --- serving ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def env(self, home: str) -> dict[str, str]:
        """The environment the CLI needs to talk to this fake and nothing else."""
        return {
            "ANTHROPIC_BASE_URL": self.url,
            "ANTHROPIC_API_KEY": "dummy",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "CLAUDE_CODE_MAX_RETRIES": "0",
            "HOME": home,
        }

    def __enter__(self) -> FakeAnthropic:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._release.set()
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    def _next(self, body: dict[str, Any]) -> Reply | None:
        with self._lock:
            self.requests.append(body)
            for i, r in enumerate(self._script):
                if r.when is None or r.when(body):
                    return self._script.pop(i)
            self.unexpected += 1
            return None


def _as_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(b.get("text", "") for b in content if isinstance(b, dict))
    return ""


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def _events(reply: Reply, model: str, n: int) -> Iterator[bytes]:
    usage = {"input_tokens": 120, "output_tokens": 1}
    yield _sse(
        "message_start",
        {
            "type": "message_start",
            "message": {"id": f"msg_fake_{n}", "type": "message", "role": "assistant",
                        "model": model, "content": [], "stop_reason": None,
                        "stop_sequence": None, "usage": usage},
        },
    )  # fmt: skip
    for i, b in enumerate(reply.blocks):
        if b["type"] == "text":
            start = {"type": "text", "text": ""}
            # split so a connector sees the answer grow
            half = len(b["text"]) // 2
            parts = (b["text"][:half], b["text"][half:])
            deltas = [{"type": "text_delta", "text": t} for t in parts]
        else:
            start = {"type": "tool_use", "id": b["id"], "name": b["name"], "input": {}}
            deltas = [{"type": "input_json_delta", "partial_json": json.dumps(b["input"])}]
        yield _sse("content_block_start",
                   {"type": "content_block_start", "index": i, "content_block": start})  # fmt: skip
        for d in deltas:
            yield _sse("content_block_delta",
                       {"type": "content_block_delta", "index": i, "delta": d})  # fmt: skip
        if reply.hang:
            return
        yield _sse("content_block_stop", {"type": "content_block_stop", "index": i})
    stop = "tool_use" if any(b["type"] == "tool_use" for b in reply.blocks) else "end_turn"
    yield _sse(
        "message_delta",
        {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
         "usage": {"output_tokens": 42}},
    )  # fmt: skip
    yield _sse("message_stop", {"type": "message_stop"})


def _handler(fake: FakeAnthropic) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _json(self, status: int, data: dict[str, Any]) -> None:
            raw = json.dumps(data).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_GET(self) -> None:
            self._json(404, {"type": "error", "error": {"type": "not_found_error"}})

        def do_POST(self) -> None:
            size = int(self.headers.get("content-length") or 0)
            try:
                body = json.loads(self.rfile.read(size) or b"{}")
            except ValueError:
                self._json(400, {"type": "error", "error": {"type": "invalid_request_error"}})
                return
            if "count_tokens" in self.path:
                self._json(200, {"input_tokens": 100})
                return
            reply = fake._next(body)
            if reply is None:
                reply = Reply([text("(the fake API has no scripted reply left)")])
            if reply.status != 200:
                error = {"type": "api_error", "message": "scripted failure"}
                self._json(reply.status, {"type": "error", "error": error})
                return
            model = body.get("model", "claude-fake")
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("cache-control", "no-cache")
            self.send_header("connection", "close")
            self.end_headers()
            try:
                for chunk in _events(reply, model, len(fake.requests)):
                    self.wfile.write(chunk)
                    self.wfile.flush()
                if reply.hang:
                    fake._release.wait()
            except OSError:
                pass  # the CLI went away (interrupted): nothing more to send
            self.close_connection = True

    return Handler
