"""A fake GitHub REST API (repositories and pull requests) on 127.0.0.1, for a task's PR step.

A test registers the repositories it serves (`add_repo`), optionally with the bare git
repository that stands for it on disk, so a pull request is only accepted for branches that
were really pushed; then points the code at `FakeGitHub.url` (LEASHD_GITHUB_API_URL) with
`FakeGitHub.token`. Every request is kept (`requests`, `posts()`), and the pull requests it
holds are in `pulls`.

Checked the way GitHub checks them, where the client could notice: the token (`Authorization:
Bearer X` or `token X`; a wrong one is 401 "Bad credentials" on every endpoint, none is 401
"Requires authentication" on a write), a User-Agent header (403 without one), the JSON body
of a new pull request (title, head, base; 422 "Validation Failed" for a missing field, a head
or base branch the repository does not have, or a second open pull request for the same head
and base: "A pull request already exists for OWNER:BRANCH."), and the `head` filter of the
list, which GitHub ignores unless it is `OWNER:BRANCH`. Failures can be scripted (`fail_next`).

Not modelled: forks (a head from another owner is refused), pagination, drafts, reviews,
merging, rate limits, GraphQL.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

TOKEN = "ghp_fake0123456789"
DOCS = "https://docs.github.com/rest"


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # names lowercased
    body: Any  # the JSON body, None when there was none


@dataclass
class Pull:
    number: int
    owner: str
    repo: str
    head: str  # a branch of the repository itself
    base: str
    title: str
    body: str | None
    state: str = "open"

    def json(self) -> dict[str, Any]:
        full = f"{self.owner}/{self.repo}"
        return {
            "number": self.number,
            "state": self.state,
            "title": self.title,
            "body": self.body,
            "html_url": f"https://github.com/{full}/pull/{self.number}",
            "url": f"https://api.github.com/repos/{full}/pulls/{self.number}",
            "head": {"ref": self.head, "label": f"{self.owner}:{self.head}"},
            "base": {"ref": self.base, "label": f"{self.owner}:{self.base}"},
        }


@dataclass
class _Repo:
    owner: str
    name: str
    default_branch: str
    git_dir: Path | None  # the bare repository the branches are looked up in

    def has_branch(self, branch: str) -> bool:
        if self.git_dir is None:
            return True
        ran = subprocess.run(["git", "--git-dir", str(self.git_dir), "rev-parse", "--verify",
                              "--quiet", f"refs/heads/{branch}"],
                             capture_output=True, check=False)  # fmt: skip
        return ran.returncode == 0


@dataclass
class _Answer:
    status: int
    data: Any = field(default=None)


class FakeGitHub:
    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.requests: list[Request] = []
        self.pulls: list[Pull] = []
        self._repos: dict[tuple[str, str], _Repo] = {}
        self._failures: deque[tuple[int, str]] = deque()
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        # called once after the next list of pull requests is answered: a race to script
        self.after_list: Callable[[], object] | None = None

    # --- the world --------------------------------------------------------------------------

    def add_repo(self, full_name: str, *, default_branch: str = "main",
                 git_dir: str | Path | None = None) -> None:  # fmt: skip
        owner, name = full_name.split("/")
        self._repos[(owner.lower(), name.lower())] = _Repo(
            owner, name, default_branch, Path(git_dir) if git_dir else None
        )

    def open_pull(self, full_name: str, head: str, base: str = "main", title: str = "by hand",
                  body: str = "") -> Pull:  # fmt: skip
        """A pull request someone opened on the site."""
        owner, name = full_name.split("/")
        pull = Pull(next(self._numbers), owner, name, head, base, title, body)
        self.pulls.append(pull)
        return pull

    def fail_next(self, status: int, message: str = "Server Error") -> None:
        """The next request is answered with this error instead."""
        self._failures.append((status, message))

    def posts(self) -> list[Request]:
        return [r for r in self.requests if r.method == "POST"]

    # --- serving ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeGitHub:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        # a short poll interval: shutdown() at the end of each test returns at once
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()  # fmt: skip
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    # --- the API ----------------------------------------------------------------------------

    def answer(self, req: Request) -> _Answer:
        with self._lock:
            self.requests.append(req)
            if self._failures:
                status, message = self._failures.popleft()
                return _error(status, message)
            denied = self._auth(req)
            if denied is not None:
                return denied
            parts = req.path.strip("/").split("/")
            if len(parts) < 3 or parts[0] != "repos":
                return _error(404, "Not Found")
            repo = self._repos.get((parts[1].lower(), parts[2].lower()))
            if repo is None:
                return _error(404, "Not Found")
            rest = parts[3:]
            if req.method == "GET" and not rest:
                return _Answer(200, _repo_json(repo))
            if rest == ["pulls"] and req.method == "GET":
                listed = self._list(repo, req.query)
                hook, self.after_list = self.after_list, None
                if hook is not None:
                    hook()
                return _Answer(200, listed)
            if rest == ["pulls"] and req.method == "POST":
                return self._create(repo, req)
            return _error(404, "Not Found")

    def _auth(self, req: Request) -> _Answer | None:
        if not req.headers.get("user-agent"):
            return _error(403, "Request forbidden by administrative rules. Please make sure "
                               "your request has a User-Agent header")  # fmt: skip
        scheme, _, token = req.headers.get("authorization", "").partition(" ")
        if not token:
            return _error(401, "Requires authentication") if req.method != "GET" else None
        if scheme.lower() not in ("bearer", "token") or token.strip() != self.token:
            return _error(401, "Bad credentials")
        return None

    def _list(self, repo: _Repo, query: dict[str, list[str]]) -> list[dict[str, Any]]:
        state = query.get("state", ["open"])[0]
        head = query.get("head", [""])[0]
        base = query.get("base", [""])[0]
        out = []
        for p in self._pulls_of(repo):
            if state != "all" and p.state != state:
                continue
            # GitHub filters on head only in the OWNER:BRANCH form; otherwise it ignores it
            owner, colon, branch = head.partition(":")
            if colon and (owner.lower() != p.owner.lower() or branch != p.head):
                continue
            if base and p.base != base:
                continue
            out.append(p.json())
        return out

    def _create(self, repo: _Repo, req: Request) -> _Answer:
        body = req.body
        if not isinstance(body, dict):
            return _error(400, "Problems parsing JSON")
        missing = [f for f in ("title", "head", "base") if not isinstance(body.get(f), str)
                   or not body[f]]  # fmt: skip
        if missing:
            return _invalid([{"resource": "PullRequest", "field": f, "code": "missing_field"}
                             for f in missing])  # fmt: skip
        owner, colon, head = body["head"].rpartition(":")
        if colon and owner.lower() != repo.owner.lower():
            return _invalid([{"resource": "PullRequest", "field": "head", "code": "invalid"}])
        base = body["base"]
        for name, branch in (("head", head), ("base", base)):
            if not repo.has_branch(branch):
                return _invalid([{"resource": "PullRequest", "field": name, "code": "invalid"}])
        if head == base:
            return _invalid([{"resource": "PullRequest", "code": "custom",
                              "message": f"No commits between {base} and {head}"}])  # fmt: skip
        for p in self._pulls_of(repo):
            if p.state == "open" and p.head == head and p.base == base:
                message = f"A pull request already exists for {repo.owner}:{head}."
                return _invalid([{"resource": "PullRequest", "code": "custom",
                                  "message": message}])  # fmt: skip
        pull = Pull(next(self._numbers), repo.owner, repo.name, head, base, body["title"],
                    body.get("body"))  # fmt: skip
        self.pulls.append(pull)
        return _Answer(201, pull.json())

    def _pulls_of(self, repo: _Repo) -> list[Pull]:
        key = (repo.owner.lower(), repo.name.lower())
        return [p for p in self.pulls if (p.owner.lower(), p.repo.lower()) == key]


def _repo_json(repo: _Repo) -> dict[str, Any]:
    full = f"{repo.owner}/{repo.name}"
    return {"name": repo.name, "full_name": full, "owner": {"login": repo.owner},
            "default_branch": repo.default_branch, "private": False,
            "html_url": f"https://github.com/{full}"}  # fmt: skip


def _error(status: int, message: str) -> _Answer:
    return _Answer(status, {"message": message, "documentation_url": DOCS, "status": str(status)})


def _invalid(errors: list[dict[str, str]]) -> _Answer:
    return _Answer(422, {"message": "Validation Failed", "errors": errors,
                         "documentation_url": DOCS, "status": "422"})  # fmt: skip


def _handler(fake: FakeGitHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _serve(self) -> None:
            size = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(size) if size else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode(errors="replace")  # kept as text: POST answers 400
            parts = urlsplit(self.path)
            req = Request(self.command, parts.path, parse_qs(parts.query),
                          {k.lower(): v for k, v in self.headers.items()}, body)  # fmt: skip
            answer = fake.answer(req)
            data = json.dumps(answer.data).encode()
            self.send_response(answer.status)
            self.send_header("content-type", "application/json; charset=utf-8")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_DELETE = _serve

    return Handler
