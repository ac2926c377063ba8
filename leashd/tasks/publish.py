"""A task's last step: its work on a branch, pushed, and a pull request on GitHub.

`publish` turns what the agent left in the working tree into a branch `leashd/<task>-<slug>`
with one commit on top of the current HEAD, pushes it with upstream to the remote, and opens
the pull request through GitHub's REST API. It may run again after a daemon restart, so every
step first looks for what an earlier run made and reuses it: the branch, the pushed commit,
the open pull request; a run over finished work changes nothing and says what it reused.

What can go wrong in the world (no remote, a push refused, no token, GitHub saying no) is not
an exception: the result says how far it got and, in `next_steps`, what the user can do.
History is never rewritten (no amend, no rebase, no force-push), and git never waits for a
password: a push that needs one fails and says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

DEFAULT_API_URL = "https://api.github.com"
SLUG_MAX = 40  # characters of the description kept in a branch name
TITLE_MAX = 72  # a commit subject git tools show whole; also the PR's title
BODY_MAX = 65_536  # GitHub refuses a longer pull request body (422)
GIT_TIMEOUT = 60.0  # seconds, a local git command
NETWORK_TIMEOUT = 180.0  # push and ls-remote
GH_TIMEOUT = 15.0  # `gh auth token`
HTTP_TIMEOUT = 30.0
DETAIL_MAX = 600  # characters of git's or GitHub's own words quoted to the user
IDENTITY = ("leashd", "leashd@localhost")  # only when the repository has no identity

# What a run found already made by an earlier one (PublishResult.reused).
REUSED_BRANCH = "branch"
REUSED_PUSH = "push"
REUSED_PULL = "pull request"

_TASK_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_SYMREF = re.compile(r"^ref: refs/heads/(\S+)\tHEAD$", re.M)
_OWNER = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})")
_REPO = re.compile(r"[A-Za-z0-9._-]{1,100}")
_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]+@")


# --- names ------------------------------------------------------------------------------------


def slug(description: str) -> str:
    """The description as lowercase ASCII words joined by `-`, at most SLUG_MAX characters,
    cut between words; "task" when no word survives. Only [a-z0-9-], never a leading or
    doubled `-`: nothing git refuses in a ref (no `..`, `.lock`, `@{`, control characters)."""
    folded = unicodedata.normalize("NFKD", description).encode("ascii", "ignore").decode()
    out = ""
    for word in re.findall(r"[a-z0-9]+", folded.lower()):
        longer = f"{out}-{word}" if out else word
        if len(longer) > SLUG_MAX:
            out = out or word[:SLUG_MAX]  # one long word is cut rather than lost
            break
        out = longer
    return out or "task"


def branch_name(task_id: str | int, description: str) -> str:
    """`leashd/<task_id>-<slug>`. The task id is the orchestrator's (a row id, a word): anything
    but a short word of letters, digits, `_` and `-` is a programming error."""
    if not _TASK_ID.fullmatch(str(task_id)):
        raise ValueError(f"task id {task_id!r} cannot go in a branch name")
    return f"leashd/{task_id}-{slug(description)}"


def title(task_id: str | int, description: str) -> str:
    """The commit subject and the PR title: the description's first line, bounded."""
    first = next((line for line in description.splitlines() if line.strip()), "")
    words = " ".join(first.split())
    if not words:
        return f"leashd task {task_id}"
    return words if len(words) <= TITLE_MAX else words[: TITLE_MAX - 1].rstrip() + "…"


def pr_body(
    *, task_id: str | int, spec: str, plan: str, tests: str, cost_usd: float | None,
    cost_table: str = "",
) -> str:  # fmt: skip
    """The pull request's description from the task's phases (`cost_table`: per phase)."""
    cost = "unknown" if cost_usd is None else f"${cost_usd:.2f}"
    table = f"\n\n{cost_table.strip()}" if cost_table.strip() else ""
    return (f"## Spec\n\n{spec.strip()}\n\n## Plan\n\n{plan.strip()}\n\n"
            f"## Tests\n\n{tests.strip()}\n\n## Cost\n\n{cost}{table}\n\n"
            f"---\nOpened by leashd for task {task_id}.\n")  # fmt: skip


# --- settings and result ----------------------------------------------------------------------


@dataclass(frozen=True)
class GitHubConfig:
    """Where GitHub's REST API is and how to sign in to it. `gh` is the GitHub CLI asked for
    a token when none is given (None: never ask)."""

    api_url: str = DEFAULT_API_URL
    token: str | None = field(default=None, repr=False)  # never in a log line
    gh: str | None = "gh"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> GitHubConfig:
        """LEASHD_GITHUB_API_URL (GitHub Enterprise: https://HOST/api/v3) and
        LEASHD_GITHUB_TOKEN."""
        env = os.environ if env is None else env
        api = (env.get("LEASHD_GITHUB_API_URL") or "").strip() or DEFAULT_API_URL
        return cls(api_url=api.rstrip("/"), token=env.get("LEASHD_GITHUB_TOKEN") or None)


@dataclass(frozen=True)
class PublishResult:
    """How far the step got. `reused` names what an earlier run had already made
    (REUSED_BRANCH, REUSED_PUSH, REUSED_PULL); `next_steps` is set whenever no pull request
    could be opened, and says why and what the user can do."""

    branch: str
    pushed: bool = False
    pr_url: str | None = None
    reused: tuple[str, ...] = ()
    next_steps: str | None = None
    commit: str | None = None  # the commit this run made; None: nothing was left to commit
    base: str | None = None  # the branch the pull request targets
    # files left out of the commit because the default policy guards them as credentials
    withheld: tuple[str, ...] = ()

    def summary(self) -> str:
        """One message for the user."""
        lines = []
        if self.pr_url:
            lines.append(f"Pull request: {self.pr_url} ({self.branch} → {self.base}).")
        if self.commit:
            lines.append(f"Committed the work as {self.commit[:12]} on {self.branch}.")
        if self.withheld:
            lines.append("Left out of the commit, as credentials: " + ", ".join(self.withheld)
                         + ".")  # fmt: skip
        if self.reused:
            said = {REUSED_BRANCH: f"the branch {self.branch}",
                    REUSED_PUSH: "the commit already on the remote",
                    REUSED_PULL: "the open pull request"}  # fmt: skip
            lines.append("Reused from an earlier run: " + ", ".join(said[r] for r in self.reused)
                         + ".")  # fmt: skip
        if self.next_steps:
            lines.append(self.next_steps)
        return "\n".join(lines)


def _credentials(repo: str, names: list[str]) -> list[str]:
    """The files among `names` (relative to `repo`) the default policy denies reading as
    credentials or leashd's own files."""
    from leashd.policy.evaluator import Evaluator
    from leashd.policy.facts import Context
    from leashd.policy.loader import load_compiled

    root = os.path.realpath(repo)
    evaluator = Evaluator(
        load_compiled(["default"]), Context.create(cwd=root, approved_dirs=[root])
    )
    guarded = []
    for name in names:
        decision = evaluator.evaluate("Read", {"file_path": os.path.join(root, name)})
        if decision.action == "deny" and decision.layer == "policy":
            guarded.append(name)
    return guarded


# --- running git and gh -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Ran:
    code: int
    out: str
    err: str

    @property
    def ok(self) -> bool:
        return self.code == 0

    def why(self) -> str:
        """What the program said about its failure, on one line, short, without git's hints
        or credentials."""
        # push --porcelain reports a refused ref on stdout as "!<TAB>FROM:TO<TAB>SUMMARY"
        said = [ln.split("\t")[-1].strip() for ln in self.out.splitlines() if ln[:1] == "!"]
        said += [ln.strip() for ln in self.err.splitlines()
                 if ln.strip() and not ln.startswith("hint:")]  # fmt: skip
        text = "; ".join(said).rstrip(".") or f"exit status {self.code}"
        return _redact(text if len(text) <= DETAIL_MAX else text[: DETAIL_MAX - 1] + "…")


def _env() -> dict[str, str]:
    # Nothing may wait for a person: no terminal prompt, no askpass program (an empty
    # GIT_ASKPASS also stops git falling back to core.askPass and SSH_ASKPASS); credential
    # helpers still answer. GIT_DIR from the daemon's own environment must not redirect us.
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "", "SSH_ASKPASS": "",
           "GCM_INTERACTIVE": "never", "GH_PROMPT_DISABLED": "1", "GIT_EDITOR": "true",
           "GIT_PAGER": "cat"}  # fmt: skip
    env.pop("GIT_DIR", None)
    env.pop("GIT_WORK_TREE", None)
    return env


async def _run(argv: list[str], cwd: str, timeout: float) -> _Ran:
    """Run a program with no stdin and, in a session of its own, no controlling terminal:
    ssh cannot ask for a passphrase either, it fails at once. On timeout or cancellation
    the program and everything it started (ssh, remote helpers) are killed."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, cwd=cwd, env=_env(), stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )  # fmt: skip
    except OSError as exc:
        return _Ran(127, "", f"{argv[0]} could not run: {exc}")
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        shown = " ".join(argv[:2])
        return _Ran(124, "", f"{shown} did not finish within {timeout:g} s and was stopped")
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # our own session: its id is proc.pid
            await proc.wait()
    return _Ran(proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace"))


def _redact(text: str) -> str:
    return _CREDENTIALS.sub("***@", text)


# --- GitHub -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class GitHubRepo:
    host: str  # the git remote's host: github.com, or a GitHub Enterprise host
    owner: str
    name: str

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"

    def compare_url(self, base: str, branch: str) -> str:
        """The page where the user opens the pull request by hand."""
        return f"https://{self.host}/{self.full_name}/compare/{base}...{branch}?expand=1"


def parse_github_remote(url: str, api_url: str = DEFAULT_API_URL) -> GitHubRepo | None:
    """owner/repo from a remote URL on github.com or on the API's own host (GitHub
    Enterprise, a fake in tests): https://HOST/o/r(.git), git@HOST:o/r.git,
    ssh://git@HOST(:port)/o/r.git. None for any other remote."""
    url = url.strip()
    if "://" in url:
        host = _host(url)
        path = urlsplit(url).path if host else ""
    elif ":" in url and not url.startswith("/"):  # scp-like [user@]host:path
        where, _, path = url.partition(":")
        host = where.rpartition("@")[2].lower()
    else:
        return None  # a path on disk
    if not host or host.lower() not in _github_hosts(api_url):
        return None
    segments = path.strip("/").removesuffix(".git").split("/")
    if len(segments) != 2:
        return None
    owner, name = segments
    if not (_OWNER.fullmatch(owner) and _REPO.fullmatch(name)) or name in (".", ".."):
        return None
    return GitHubRepo(host.lower(), owner, name)


def _host(url: str) -> str:
    """The URL's host, lowercased; "" when it has none or is no URL (user config may be
    anything: `[` alone makes urlsplit raise)."""
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def _github_hosts(api_url: str) -> set[str]:
    api_host = _host(api_url)
    hosts = {"github.com", api_host}
    if api_host.startswith("api."):  # api.github.com, api.OWNER.ghe.com
        hosts.add(api_host.removeprefix("api."))
    return hosts - {""}


class _GitHubError(Exception):
    """GitHub answered with an error, or could not be reached (status 0)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status} {message}" if status else message)
        self.status = status
        self.message = message


class _GitHubAPI:
    def __init__(self, client: httpx.AsyncClient, repo: GitHubRepo) -> None:
        self._client = client
        self._path = f"/repos/{repo.full_name}"
        self._repo = repo

    async def default_branch(self) -> str | None:
        data = await self._call("GET", self._path)
        branch = data.get("default_branch") if isinstance(data, dict) else None
        return branch if isinstance(branch, str) and branch else None

    async def open_pull(self, branch: str, base: str) -> str | None:
        """The html_url of the open pull request from `branch` into `base`, if there is one.
        `head` must carry the owner: GitHub ignores a bare branch name and lists them all."""
        params = {"head": f"{self._repo.owner}:{branch}", "base": base, "state": "open"}
        data = await self._call("GET", f"{self._path}/pulls", params=params)
        for pull in data if isinstance(data, list) else []:
            if pull.get("head", {}).get("ref") == branch and pull.get("html_url"):
                return str(pull["html_url"])
        return None

    async def create_pull(self, branch: str, base: str, title: str, body: str) -> str:
        payload = {"title": title, "head": branch, "base": base, "body": body}
        data = await self._call("POST", f"{self._path}/pulls", json=payload)
        return str(data["html_url"])

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = await self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            said = (str(exc) or type(exc).__name__).rstrip(".")  # a timeout may say nothing
            where = str(self._client.base_url).rstrip("/")
            raise _GitHubError(0, f"GitHub could not be reached at {where}: {said}") from exc
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.is_success and data is not None:
            return data
        raise _GitHubError(response.status_code, _error_message(data, response.reason_phrase))


def _error_message(data: Any, fallback: str) -> str:
    """GitHub's `message`, with the reasons it lists under `errors` (422 Validation Failed)."""
    if not isinstance(data, dict):
        return fallback
    said = [str(data.get("message") or fallback)]
    for err in data.get("errors") or []:
        if isinstance(err, dict):
            said.append(str(err.get("message") or f"{err.get('field')} {err.get('code')}"))
    text = ": ".join(said)
    return text if len(text) <= DETAIL_MAX else text[: DETAIL_MAX - 1] + "…"


async def _token(github: GitHubConfig, host: str, cwd: str) -> str | None:
    """LEASHD_GITHUB_TOKEN, else the token `gh` is signed in with for this host."""
    if github.token:
        return github.token
    exe = shutil.which(github.gh) if github.gh else None
    if exe is None:
        return None
    ran = await _run([exe, "auth", "token", "--hostname", host], cwd, GH_TIMEOUT)
    token = ran.out.strip()
    return token if ran.ok and token and not any(c.isspace() for c in token) else None


# --- the step ---------------------------------------------------------------------------------


async def publish(
    repo_dir: str | os.PathLike[str], task_id: str | int, description: str, body: str, *,
    base: str | None = None, remote: str = "origin", github: GitHubConfig | None = None,
) -> PublishResult:  # fmt: skip
    """Commit the agent's work on the task's branch, push it, open the pull request.

    Safe to run again: an existing branch is switched to, work already committed is not
    committed twice, a pushed branch is not pushed again, an open pull request for the branch
    is returned instead of a second one. `base` defaults to the remote's default branch.
    Raises only on a programming error (a task id or remote name that is not a name)."""
    if not remote or remote.startswith("-") or any(c.isspace() for c in remote):
        raise ValueError(f"remote {remote!r} is not a remote name")
    branch = branch_name(task_id, description)
    step = _Publish(os.fspath(repo_dir), str(task_id), description, branch, remote,
                    github or GitHubConfig.from_env())  # fmt: skip
    next_steps = await step.run(body, base)
    return PublishResult(branch=branch, pushed=step.pushed, pr_url=step.pr_url,
                         reused=tuple(step.reused), next_steps=next_steps,
                         commit=step.commit, base=step.base,
                         withheld=tuple(step.withheld))  # fmt: skip


class _Publish:
    """One run of the step; each stage returns None to go on, or the user's next steps."""

    def __init__(self, cwd: str, task_id: str, description: str, branch: str, remote: str,
                 github: GitHubConfig) -> None:  # fmt: skip
        self.cwd = cwd
        self.task_id = task_id
        self.description = description
        self.branch = branch
        self.remote = remote
        self.github = github
        self.url = ""  # the remote's, as configured (before any insteadOf rewriting)
        self.pushed = False
        self.pr_url: str | None = None
        self.commit: str | None = None
        self.base: str | None = None
        self.reused: list[str] = []
        self.withheld: list[str] = []

    async def git(self, *args: str, timeout: float = GIT_TIMEOUT) -> _Ran:
        return await _run(["git", *args], self.cwd, timeout)

    async def run(self, body: str, base: str | None) -> str | None:
        if not Path(self.cwd).is_dir():
            return f"{self.cwd} is not a directory: there is no work to publish."
        top = await self.git("rev-parse", "--show-toplevel")
        if not top.ok:
            return f"{self.cwd} is not a git repository ({top.why()}): nothing was published."
        for stage in (self.switch, self.commit_work, self.push):
            stopped = await stage()
            if stopped:
                return stopped
        return await self.pull_request(body, base)

    async def switch(self) -> str | None:
        """Onto the task's branch, the working tree's changes carried along."""
        current = await self.git("symbolic-ref", "--quiet", "--short", "HEAD")
        if current.ok and current.out.strip() == self.branch:
            self.reused.append(REUSED_BRANCH)
            return None
        known = await self.git("rev-parse", "--verify", "--quiet", f"refs/heads/{self.branch}")
        # `git switch` carries uncommitted changes over, and refuses rather than overwrite one.
        ran = await self.git("switch", self.branch) if known.ok else (
            await self.git("switch", "-c", self.branch))  # fmt: skip
        if not ran.ok:
            return (f"Could not switch to the branch {self.branch}: {ran.why()}. Nothing was "
                    "committed or pushed; the work is still in the working tree.")  # fmt: skip
        if known.ok:
            self.reused.append(REUSED_BRANCH)
        return None

    async def commit_work(self) -> str | None:
        """Everything the agent left (ignored files stay out) as one new commit on top."""
        added = await self.git("add", "--all")
        if not added.ok:
            return f"git add failed on {self.branch}: {added.why()}. Nothing was committed."
        problem = await self._withhold_credentials()
        if problem is not None:
            return problem
        staged = await self.git("diff", "--cached", "--quiet")
        if staged.code == 1:
            identity = await self._identity()
            made = await self.git(*identity, "commit", "--quiet",
                                  "-m", title(self.task_id, self.description),
                                  "-m", f"Leashd-Task: {self.task_id}")  # fmt: skip
            if not made.ok:
                return (f"The commit on {self.branch} failed: {made.why()}. The work is "
                        "staged there; commit and push it by hand, or fix that and run the "
                        "step again.")  # fmt: skip
        elif not staged.ok:
            return f"git diff failed on {self.branch}: {staged.why()}."
        head = await self.git("rev-parse", "--verify", "--quiet", "HEAD")
        if not head.ok:
            return f"The branch {self.branch} has no commit and there is no work to commit."
        if staged.code == 1:
            self.commit = head.out.strip()
        return None

    async def _withhold_credentials(self) -> str | None:
        """Unstage what the built-in default policy guards as a credential (`.env`, keys,
        tokens): the agent's work is pushed to a remote, a secret lying in the work tree must
        not go with it. Checked as a read of each staged file would be."""
        listed = await self.git("diff", "--cached", "--name-only", "-z", "--diff-filter=ACMR")
        if not listed.ok:
            return f"git diff failed on {self.branch}: {listed.why()}. Nothing was committed."
        names = [n for n in listed.out.split("\0") if n]
        guarded = await asyncio.to_thread(_credentials, self.cwd, names)
        if guarded:
            unstaged = await self.git("reset", "--quiet", "--", *guarded)
            if not unstaged.ok:
                return (f"Could not leave the credential files {', '.join(guarded)} out of "
                        f"the commit: {unstaged.why()}. Nothing was committed.")  # fmt: skip
            self.withheld = guarded
        return None

    async def _identity(self) -> list[str]:
        """`-c` options naming leashd for what the repository's config leaves unset.
        GIT_AUTHOR_*/GIT_COMMITTER_* from the environment still win over these."""
        options: list[str] = []
        name = await self.git("config", "user.name")
        if not name.out.strip():
            options += ["-c", f"user.name={IDENTITY[0]}"]
        email = await self.git("config", "user.email")
        if not email.out.strip() and not os.environ.get("EMAIL"):
            options += ["-c", f"user.email={IDENTITY[1]}"]
        return options

    async def push(self) -> str | None:
        self.url = (await self.git("config", "--get", f"remote.{self.remote}.url")).out.strip()
        if not self.url:
            return (f"The branch {self.branch} is ready here with the work committed, but "
                    f"the repository has no remote named {self.remote}, so nothing was "
                    f"pushed. To open the pull request: `git remote add {self.remote} URL`, "
                    f"`git push -u {self.remote} {self.branch}`, then open a pull request "
                    f"from {self.branch} on the remote's site.")  # fmt: skip
        ref = f"refs/heads/{self.branch}"
        ran = await self.git("push", "--porcelain", "--set-upstream", self.remote,
                             f"{ref}:{ref}", timeout=NETWORK_TIMEOUT)  # fmt: skip
        if not ran.ok:
            return (f"The branch {self.branch} is ready here with the work committed, but "
                    f"the push to {self.remote} failed: {ran.why()}. Once that is fixed, "
                    f"`git push -u {self.remote} {self.branch}` and open the pull request, or "
                    "run the step again.")  # fmt: skip
        self.pushed = True
        # --porcelain marks a ref the remote already had at this commit with "="
        if any(ln.startswith("=\t") for ln in ran.out.splitlines()):
            self.reused.append(REUSED_PUSH)
        return None

    async def pull_request(self, body: str, base: str | None) -> str | None:
        # The REST API is the one way a PR is opened, even where `gh` is installed (gh only
        # lends its token): it is the path the tests run against a fake GitHub, it answers
        # with a status and a message the user can act on, the look-up of an open PR for
        # the branch goes through the same API, and it behaves the same on every machine,
        # where `gh pr create` may prompt, offer to fork or push, and varies by version.
        repo = parse_github_remote(self.url, self.github.api_url)
        if repo is None:
            self.base = base or await self._remote_head() or "main"
            return (f"{self.branch} is pushed to {self.remote} ({_redact(self.url)}), which is not "
                    "a GitHub repository, so no pull request was opened: open one (or a "
                    f"merge request) from {self.branch} into {self.base} there.")  # fmt: skip
        token = await _token(self.github, repo.host, self.cwd)
        self.base = base or await self._remote_head()
        if token is None:
            self.base = self.base or "main"
            return (f"{self.branch} is pushed to {repo.full_name}, but there is no GitHub "
                    "token, so no pull request was opened: set LEASHD_GITHUB_TOKEN (or sign "
                    "in with `gh auth login`) and run the step again, or open it yourself: "
                    f"{repo.compare_url(self.base, self.branch)}")  # fmt: skip
        try:
            await self._open(repo, token, body)
        except httpx.InvalidURL as exc:
            return (f"{self.branch} is pushed to {repo.full_name}, but LEASHD_GITHUB_API_URL "
                    f"({self.github.api_url}) is not a URL ({exc}), so no pull request was "
                    f"opened. Open it yourself: "
                    f"{repo.compare_url(self.base or 'main', self.branch)}")  # fmt: skip
        except _GitHubError as exc:
            return (f"{self.branch} is pushed to {repo.full_name}, but GitHub did not open "
                    f"the pull request: {exc}{_hint(exc.status)}. Open it yourself: "
                    f"{repo.compare_url(self.base or 'main', self.branch)}")  # fmt: skip
        return None

    async def _remote_head(self) -> str | None:
        ran = await self.git("ls-remote", "--symref", self.remote, "HEAD",
                             timeout=NETWORK_TIMEOUT)  # fmt: skip
        found = _SYMREF.search(ran.out) if ran.ok else None
        return found.group(1) if found else None

    async def _open(self, repo: GitHubRepo, token: str, body: str) -> None:
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json",
                   "X-GitHub-Api-Version": "2022-11-28", "User-Agent": "leashd"}  # fmt: skip
        async with httpx.AsyncClient(base_url=self.github.api_url, headers=headers,
                                     timeout=HTTP_TIMEOUT) as client:  # fmt: skip
            api = _GitHubAPI(client, repo)
            self.base = self.base or await api.default_branch() or "main"
            found = await api.open_pull(self.branch, self.base)
            if found is not None:
                self.reused.append(REUSED_PULL)
                self.pr_url = found
                return
            text = title(self.task_id, self.description)
            try:
                self.pr_url = await api.create_pull(self.branch, self.base, text, _bounded(body))
            except _GitHubError as exc:
                # 422 is also GitHub's "a pull request already exists": one opened since the
                # look-up (by a run racing this one, or by the user) is the one to reuse
                found = await api.open_pull(self.branch, self.base) if exc.status == 422 else None
                if found is None:
                    raise
                self.reused.append(REUSED_PULL)
                self.pr_url = found


def _bounded(body: str) -> str:
    if len(body) <= BODY_MAX:
        return body
    note = "\n\n… (cut: GitHub takes at most 65,536 characters)"
    return body[: BODY_MAX - len(note)] + note


def _hint(status: int) -> str:
    if status == 401:
        return " (the token is wrong or expired: check LEASHD_GITHUB_TOKEN or `gh auth status`)"
    if status in (403, 404):
        return " (the token may lack access to the repository, or the right to open pull requests)"
    return ""
