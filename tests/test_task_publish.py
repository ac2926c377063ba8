"""A task's pull-request step with real git: a bare repository on disk is the remote (named
as a GitHub URL that git rewrites to it with `url.<path>.insteadOf`), and a fake GitHub REST
API on 127.0.0.1 takes the pull requests. Nothing is mocked: git runs, pushes and refuses
for real; the fake checks what GitHub checks."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leashd.tasks import publish as publish_module
from leashd.tasks.publish import (
    REUSED_BRANCH,
    REUSED_PULL,
    REUSED_PUSH,
    SLUG_MAX,
    GitHubConfig,
    GitHubRepo,
    PublishResult,
    branch_name,
    parse_github_remote,
    pr_body,
    publish,
    slug,
)
from tests.fakes.github_api import FakeGitHub

GITHUB_URL = "https://github.com/acme/widgets.git"
DESCRIPTION = "Add a health check endpoint"
BRANCH = "leashd/t42-add-a-health-check-endpoint"
BODY = pr_body(task_id="t42", spec="GET /health answers 200.", plan="1. route 2. test",
               tests="12 passed", cost_usd=0.4321)  # fmt: skip


def git(cwd: Path, *args: str, check: bool = True) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                          check=check).stdout.strip()  # fmt: skip


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """No identity and no git config but what each test sets: HOME is empty, the system
    config is off, and the identity variables of the machine are gone."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for var in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME",
                "GIT_COMMITTER_EMAIL", "EMAIL", "GIT_DIR", "GIT_WORK_TREE"):  # fmt: skip
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def make_remote(root: Path, default: str = "main") -> Path:
    """A bare repository with one commit on `default`, its HEAD pointing there."""
    bare = root / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", default, str(bare)], check=True)
    seed = root / "seed"
    subprocess.run(["git", "init", "-q", "-b", default, str(seed)], check=True)
    (seed / "app.py").write_text("print('hi')\n")
    git(seed, "add", "app.py")
    git(seed, "-c", "user.name=Seed", "-c", "user.email=seed@example.com", "commit", "-qm", "first")
    git(seed, "push", "-q", str(bare), default)
    return bare


def clone(root: Path, bare: Path, url: str | None = GITHUB_URL, who: str | None = "Dev") -> Path:
    """The user's checkout. With `url`, the remote is named by that URL and git is told to
    reach it at the bare repository, so publish sees a GitHub remote and pushes to disk."""
    proj = root / "proj"
    subprocess.run(["git", "clone", "-q", str(bare), str(proj)], check=True)
    if url is not None:
        git(proj, "remote", "set-url", "origin", url)
        git(proj, "config", f"url.{bare}.insteadOf", url)
    if who is not None:
        git(proj, "config", "user.name", who)
        git(proj, "config", "user.email", f"{who.lower()}@example.com")
    return proj


def agent_works(proj: Path) -> None:
    """What the agent leaves: a changed file, a new one in a new directory, an ignored one."""
    (proj / "app.py").write_text("print('hi')\nHEALTH = 'ok'\n")
    (proj / "web").mkdir()
    (proj / "web" / "health.py").write_text("def health():\n    return 200\n")
    (proj / ".gitignore").write_text("*.log\n")
    (proj / "debug.log").write_text("noise\n")


@pytest.fixture
def github():
    with FakeGitHub() as fake:
        yield fake


def config(fake: FakeGitHub, token: str | None = "") -> GitHubConfig:
    return GitHubConfig(api_url=fake.url, token=fake.token if token == "" else token, gh=None)


def run(proj: Path, cfg: GitHubConfig, **kwargs) -> PublishResult:
    return asyncio.run(publish(proj, "t42", DESCRIPTION, BODY, github=cfg, **kwargs))


def commits(repo: Path, ref: str) -> list[str]:
    return git(repo, "log", "--format=%H", ref).splitlines()


# --- the whole step ---------------------------------------------------------------------------


def test_publish_commits_pushes_and_opens_one_pull_request(home, github):
    bare = make_remote(home)
    github.add_repo("acme/widgets", git_dir=bare)
    proj = clone(home, bare)
    before = git(proj, "rev-parse", "HEAD")
    agent_works(proj)

    result = run(proj, config(github))

    assert result.next_steps is None, result.next_steps
    assert result.pushed and result.branch == BRANCH and result.base == "main"
    assert result.pr_url == "https://github.com/acme/widgets/pull/1"
    assert result.reused == ()
    # one new commit on top of the agent's starting point, nothing rewritten
    assert commits(bare, BRANCH) == [result.commit, before]
    assert git(bare, "log", "-1", "--format=%an|%s%n%b", BRANCH) == (
        f"Dev|{DESCRIPTION}\nLeashd-Task: t42"
    )
    files = git(bare, "ls-tree", "-r", "--name-only", BRANCH).splitlines()
    assert sorted(files) == [".gitignore", "app.py", "web/health.py"]  # the ignored log stays out
    assert git(proj, "status", "--porcelain") == "" and (proj / "debug.log").exists()
    assert git(proj, "rev-parse", "--abbrev-ref", f"{BRANCH}@{{upstream}}") == f"origin/{BRANCH}"
    assert git(bare, "rev-parse", "main") == before  # the base branch is untouched
    # GitHub got one pull request, with the task's body, from the branch into main
    (post,) = github.posts()
    assert post.headers["authorization"] == f"Bearer {github.token}"
    assert post.body == {"title": DESCRIPTION, "head": BRANCH, "base": "main", "body": BODY}
    (pull,) = github.pulls
    assert pull.body == BODY and "## Cost\n\n$0.43" in pull.body and "12 passed" in pull.body
    assert "Pull request: https://github.com/acme/widgets/pull/1" in result.summary()


def test_running_it_again_reuses_the_branch_the_push_and_the_pull_request(home, github):
    bare = make_remote(home)
    github.add_repo("acme/widgets", git_dir=bare)
    proj = clone(home, bare)
    agent_works(proj)
    first = run(proj, config(github))

    again = run(proj, config(github))

    assert again.next_steps is None, again.next_steps
    assert again.reused == (REUSED_BRANCH, REUSED_PUSH, REUSED_PULL)
    assert again.pr_url == first.pr_url and again.commit is None and again.pushed
    assert commits(bare, BRANCH) == commits(proj, "HEAD") and len(commits(bare, BRANCH)) == 2
    assert len(github.posts()) == 1 and len(github.pulls) == 1
    assert (
        f"Reused from an earlier run: the branch {BRANCH}, the commit already on the remote, "
        "the open pull request."
    ) in again.summary()


def test_a_crash_before_the_pull_request_is_finished_by_the_next_run(home, github):
    """The daemon died after the push (here: GitHub failed); the rerun opens the PR once."""
    bare = make_remote(home)
    github.add_repo("acme/widgets", git_dir=bare)
    proj = clone(home, bare)
    agent_works(proj)
    github.fail_next(502, "Server Error")  # the look-up of open pull requests fails
    broken = run(proj, config(github))
    assert broken.pushed and broken.pr_url is None
    assert "502 Server Error" in broken.next_steps
    assert "https://github.com/acme/widgets/compare/main...leashd/t42-" in broken.next_steps

    (proj / "web" / "health.py").write_text("def health():\n    return 204\n")  # more work
    resumed = run(proj, config(github))

    assert resumed.next_steps is None and resumed.pr_url == "https://github.com/acme/widgets/pull/1"
    assert resumed.reused == (REUSED_BRANCH,)  # the new commit had to be pushed
    assert len(commits(bare, BRANCH)) == 3 and len(github.pulls) == 1


def test_a_pull_request_opened_by_hand_is_reused(home, github):
    bare = make_remote(home)
    github.add_repo("acme/widgets", git_dir=bare)
    proj = clone(home, bare)
    git(proj, "switch", "-qc", BRANCH)
    agent_works(proj)
    git(proj, "add", "--all")
    git(proj, "commit", "-qm", "the agent committed it itself")
    git(proj, "push", "-q", "origin", BRANCH)
    github.open_pull("acme/widgets", BRANCH, "main")
    git(proj, "switch", "-q", "main")  # and the user went back to main meanwhile

    result = run(proj, config(github))

    assert result.reused == (REUSED_BRANCH, REUSED_PUSH, REUSED_PULL)
    assert result.commit is None and result.pr_url.endswith("/pull/1")
    assert git(proj, "branch", "--show-current") == BRANCH
    assert github.posts() == []
    (listing,) = [r for r in github.requests if r.path.endswith("/pulls")]
    assert listing.query["head"] == [f"acme:{BRANCH}"]  # owner-qualified, or GitHub ignores it


def test_a_pull_request_that_appears_between_look_up_and_create_is_reused(home, github):
    """GitHub's 422 "already exists" is answered by looking again, not by failing."""
    bare = make_remote(home)
    github.add_repo("acme/widgets", git_dir=bare)
    proj = clone(home, bare)
    agent_works(proj)
    # the user opens one right after publish looked and found none
    github.after_list = lambda: github.open_pull("acme/widgets", BRANCH, "main",
                                                 title="the user was faster")  # fmt: skip
    result = run(proj, config(github))

    assert result.pr_url.endswith("/pull/1") and REUSED_PULL in result.reused
    assert len(github.posts()) == 1  # refused with 422, then found by looking again
    assert [r.method for r in github.requests] == ["GET", "POST", "GET"]
    assert len(github.pulls) == 1 and github.pulls[0].title == "the user was faster"


def test_the_base_is_the_remotes_default_branch(home, github):
    bare = make_remote(home, default="trunk")
    github.add_repo("acme/widgets", default_branch="trunk", git_dir=bare)
    proj = clone(home, bare)
    agent_works(proj)
    result = run(proj, config(github))
    assert result.base == "trunk" and github.pulls[0].base == "trunk"


def test_an_explicit_base_wins(home, github):
    bare = make_remote(home)
    proj = clone(home, bare)
    git(proj, "push", "-q", "origin", "main:release")
    github.add_repo("acme/widgets", git_dir=bare)
    agent_works(proj)
    result = run(proj, config(github), base="release")
    assert result.next_steps is None and github.pulls[0].base == "release"


def test_a_github_enterprise_style_remote_on_the_api_host(home, github):
    """Any remote on the API's own host is GitHub (Enterprise; here the fake)."""
    bare = make_remote(home)
    github.add_repo("team/svc", git_dir=bare)
    host = github.url.removeprefix("http://")
    proj = clone(home, bare, url=f"http://{host}/team/svc.git")
    agent_works(proj)
    result = run(proj, config(github))
    assert result.next_steps is None and result.pr_url.endswith("team/svc/pull/1")


# --- what the user is told when no pull request can be opened -----------------------------


def test_no_remote_leaves_the_branch_ready_and_says_how(home, github):
    proj = home / "proj"
    subprocess.run(["git", "init", "-q", "-b", "main", str(proj)], check=True)
    git(proj, "config", "user.name", "Dev")
    git(proj, "config", "user.email", "dev@example.com")
    (proj / "README.md").write_text("# x\n")
    git(proj, "add", ".")
    git(proj, "commit", "-qm", "start")
    agent_works(proj)

    result = run(proj, config(github))

    assert not result.pushed and result.pr_url is None and result.commit
    assert git(proj, "rev-parse", BRANCH) == result.commit
    assert "no remote named origin" in result.next_steps
    assert f"git push -u origin {BRANCH}" in result.next_steps
    assert github.requests == []


def test_a_wrong_token_is_named_as_a_401(home, github):
    bare = make_remote(home)
    github.add_repo("acme/widgets", git_dir=bare)
    proj = clone(home, bare)
    agent_works(proj)
    result = run(proj, config(github, token="ghp_wrong"))
    assert result.pushed and result.pr_url is None
    assert "401 Bad credentials" in result.next_steps
    assert "LEASHD_GITHUB_TOKEN" in result.next_steps
    assert "ghp_wrong" not in result.next_steps
    assert github.pulls == []


def test_no_token_pushes_and_points_at_the_compare_page(home, github):
    bare = make_remote(home)
    github.add_repo("acme/widgets", git_dir=bare)
    proj = clone(home, bare)
    agent_works(proj)
    result = run(proj, config(github, token=None))
    assert result.pushed and result.pr_url is None
    assert git(bare, "rev-parse", BRANCH) == git(proj, "rev-parse", "HEAD")
    assert "no GitHub token" in result.next_steps and "LEASHD_GITHUB_TOKEN" in result.next_steps
    assert f"https://github.com/acme/widgets/compare/main...{BRANCH}?expand=1" in (
        result.next_steps
    )
    assert github.requests == []


def test_the_token_comes_from_gh_when_none_is_set(home, github):
    """`gh auth token` is asked (here a stand-in gh: a script answering like the real one)."""
    bare = make_remote(home)
    github.add_repo("acme/widgets", git_dir=bare)
    proj = clone(home, bare)
    agent_works(proj)
    gh = home / "bin" / "gh"
    gh.parent.mkdir()
    gh.write_text(f'#!/bin/sh\necho "$@" >> {home}/gh-args\necho {github.token}\n')
    gh.chmod(gh.stat().st_mode | stat.S_IXUSR)
    cfg = GitHubConfig(api_url=github.url, token=None, gh=str(gh))
    result = run(proj, cfg)
    assert result.next_steps is None and result.pr_url
    assert (home / "gh-args").read_text() == "auth token --hostname github.com\n"


def test_a_gh_that_hangs_is_stopped_and_counts_as_no_token(home, github, monkeypatch):
    """Every subprocess has a timeout; the one that ran out is killed, not left behind."""
    bare = make_remote(home)
    github.add_repo("acme/widgets", git_dir=bare)
    proj = clone(home, bare)
    agent_works(proj)
    gh = home / "gh"
    gh.write_text(f"#!/bin/sh\necho $$ > {home}/gh-pid\nexec sleep 60\n")
    gh.chmod(gh.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(publish_module, "GH_TIMEOUT", 0.5)
    started = time.monotonic()
    result = run(proj, GitHubConfig(api_url=github.url, token=None, gh=str(gh)))
    assert time.monotonic() - started < 20
    assert "no GitHub token" in result.next_steps
    pid = int((home / "gh-pid").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # killed and reaped


def test_a_remote_that_is_not_github_gets_the_branch_pushed(home, github):
    bare = make_remote(home)
    proj = clone(home, bare, url=None)  # origin is the path on disk
    agent_works(proj)
    result = run(proj, config(github))
    assert result.pushed and result.pr_url is None
    assert git(bare, "rev-parse", BRANCH) == git(proj, "rev-parse", "HEAD")
    assert "not a GitHub repository" in result.next_steps and str(bare) in result.next_steps
    assert github.requests == []


def test_a_failed_push_is_reported_with_gits_words(home, github):
    bare = make_remote(home)
    proj = clone(home, bare, url=None)
    git(proj, "remote", "set-url", "origin", str(home / "gone.git"))
    agent_works(proj)
    result = run(proj, config(github))
    assert not result.pushed and result.commit
    assert "the push to origin failed" in result.next_steps
    assert "gone.git" in result.next_steps  # git's own message, from its stderr
    assert f"git push -u origin {BRANCH}" in result.next_steps


class _AsksForPassword(BaseHTTPRequestHandler):
    """A git host over HTTP that wants a password for everything."""

    def do_GET(self) -> None:
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="git"')
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_a_push_that_would_need_a_password_fails_at_once(home, github):
    """GIT_TERMINAL_PROMPT=0 and no askpass program: git asks nobody, it fails and says so."""
    bare = make_remote(home)
    proj = clone(home, bare, url=None)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _AsksForPassword)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        git(proj, "remote", "set-url", "origin", f"http://127.0.0.1:{port}/acme/private.git")
        agent_works(proj)
        result = run(proj, config(github, token=None))
    finally:
        server.shutdown()
        server.server_close()
    assert not result.pushed
    assert "terminal prompts disabled" in result.next_steps


def test_a_branch_that_moved_on_the_remote_is_never_forced(home, github):
    bare = make_remote(home)
    github.add_repo("acme/widgets", git_dir=bare)
    proj = clone(home, bare)
    agent_works(proj)
    assert run(proj, config(github)).pushed
    other = home / "other"
    subprocess.run(["git", "clone", "-q", "-b", BRANCH, str(bare), str(other)], check=True)
    git(other, "-c", "user.name=O", "-c", "user.email=o@example.com", "commit", "-q",
        "--allow-empty", "-m", "someone else's")  # fmt: skip
    git(other, "push", "-q")
    theirs = git(bare, "rev-parse", BRANCH)
    (proj / "app.py").write_text("changed again\n")

    result = run(proj, config(github))

    assert not result.pushed and "rejected" in result.next_steps
    assert git(bare, "rev-parse", BRANCH) == theirs  # their commit is still there


def test_the_repositorys_commit_hooks_run(home, github):
    bare = make_remote(home)
    proj = clone(home, bare, url=None)
    hook = proj / ".git" / "hooks" / "pre-commit"
    hook.write_text(f"#!/bin/sh\ntouch {home}/hook-ran\n")
    hook.chmod(hook.stat().st_mode | stat.S_IXUSR)
    agent_works(proj)
    assert run(proj, config(github)).commit and (home / "hook-ran").exists()


def test_no_identity_in_the_repository_commits_as_leashd(home, github):
    bare = make_remote(home)
    proj = clone(home, bare, url=None, who=None)
    agent_works(proj)
    result = run(proj, config(github))
    assert result.commit
    assert git(proj, "log", "-1", "--format=%an <%ae>|%cn <%ce>") == (
        "leashd <leashd@localhost>|leashd <leashd@localhost>"
    )
    assert git(proj, "config", "user.name", check=False) == ""  # nothing written to config


def test_only_the_missing_half_of_an_identity_is_filled_in(home, github, monkeypatch):
    bare = make_remote(home)
    proj = clone(home, bare, url=None, who=None)
    git(proj, "config", "user.name", "Dev")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "ci@example.com")
    agent_works(proj)
    run(proj, config(github))
    assert git(proj, "log", "-1", "--format=%an <%ae>|%cn <%ce>") == (
        "Dev <leashd@localhost>|Dev <ci@example.com>"
    )


def test_work_already_committed_on_the_branch_is_pushed_without_a_new_commit(home, github):
    bare = make_remote(home)
    github.add_repo("acme/widgets", git_dir=bare)
    proj = clone(home, bare)
    git(proj, "switch", "-qc", BRANCH)
    agent_works(proj)
    git(proj, "add", "--all")
    git(proj, "commit", "-qm", "by the agent")
    result = run(proj, config(github))
    assert result.commit is None and result.reused == (REUSED_BRANCH,)
    assert git(bare, "log", "-1", "--format=%s", BRANCH) == "by the agent"
    assert result.pr_url


def test_work_that_cannot_be_carried_to_an_existing_branch_is_left_alone(home, github):
    bare = make_remote(home)
    proj = clone(home, bare, url=None)
    git(proj, "switch", "-qc", BRANCH)
    (proj / "app.py").write_text("on the branch\n")
    git(proj, "commit", "-qam", "branch version")
    git(proj, "switch", "-q", "main")
    (proj / "app.py").write_text("uncommitted on main\n")
    result = run(proj, config(github))
    assert not result.pushed and "Could not switch" in result.next_steps
    assert (proj / "app.py").read_text() == "uncommitted on main\n"
    assert git(proj, "branch", "--show-current") == "main"


def test_not_a_repository_and_nothing_to_commit_are_told_not_raised(home, github):
    plain = home / "plain"
    plain.mkdir()
    assert "not a git repository" in run(plain, config(github)).next_steps
    empty = home / "empty"
    subprocess.run(["git", "init", "-q", str(empty)], check=True)
    assert "no commit and there is no work" in run(empty, config(github)).next_steps


def test_programming_errors_raise():
    with pytest.raises(ValueError):
        branch_name("../x", "y")
    with pytest.raises(ValueError):
        asyncio.run(publish(".", "t1", "d", "b", remote="--upload-pack=evil"))


# --- pieces -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/acme/widgets.git",
        "https://github.com/acme/widgets",
        "https://github.com/acme/widgets/",
        "https://user:secret@github.com/acme/widgets.git",
        "git@github.com:acme/widgets.git",
        "git@github.com:acme/widgets",
        "ssh://git@github.com/acme/widgets.git",
        "ssh://git@github.com:22/acme/widgets.git",
        "HTTPS://GitHub.com/acme/widgets.git",
    ],
)
def test_github_remotes_are_recognised(url):
    assert parse_github_remote(url) == GitHubRepo("github.com", "acme", "widgets")


@pytest.mark.parametrize(
    "url",
    [
        "/srv/git/widgets.git",
        "../widgets.git",
        "file:///srv/git/widgets.git",
        "https://gitlab.com/acme/widgets.git",
        "git@gitlab.com:acme/widgets.git",
        "https://github.com/acme/widgets/tree/main",
        "https://github.com/acme",
        "https://github.com.evil.example/acme/widgets.git",
        "https://[github.com/acme/widgets.git",
    ],
)
def test_other_remotes_are_not_github(url):
    assert parse_github_remote(url) is None


def test_an_enterprise_host_is_github_when_the_api_is_there():
    api = "https://ghe.example.com/api/v3"
    expected = GitHubRepo("ghe.example.com", "team", "svc")
    assert parse_github_remote("git@ghe.example.com:team/svc.git", api) == expected
    assert parse_github_remote("https://ghe.example.com/team/svc", api) == expected
    assert parse_github_remote("git@ghe.example.com:team/svc.git") is None
    cloud = parse_github_remote("https://acme.ghe.com/team/svc.git", "https://api.acme.ghe.com")
    assert cloud == GitHubRepo("acme.ghe.com", "team", "svc")


def test_config_from_the_environment():
    assert GitHubConfig.from_env({}) == GitHubConfig()
    env = {
        "LEASHD_GITHUB_TOKEN": "ghp_x",
        "LEASHD_GITHUB_API_URL": "https://ghe.example.com/api/v3/",
    }
    cfg = GitHubConfig.from_env(env)
    assert cfg.token == "ghp_x" and cfg.api_url == "https://ghe.example.com/api/v3"
    assert "ghp_x" not in repr(cfg)


@pytest.mark.parametrize("api", ["http://[::1", "ftp://api.github.com", "api.github.com"])
def test_an_api_url_that_cannot_work_is_told_not_raised(home, api):
    bare = make_remote(home)
    proj = clone(home, bare)
    agent_works(proj)
    result = run(proj, GitHubConfig(api_url=api, token="t", gh=None))
    assert result.pushed and result.pr_url is None and "Open it yourself" in result.next_steps


def test_the_slug_of_ordinary_descriptions():
    assert slug("Add a health check endpoint") == "add-a-health-check-endpoint"
    assert slug("Café: crème brûlée — v2!") == "cafe-creme-brulee-v2"
    assert slug("修正する") == "task"
    assert slug("Refactor the whole authentication layer to use OAuth2 everywhere") == (
        "refactor-the-whole-authentication-layer"
    )
    assert branch_name("t42", DESCRIPTION) == BRANCH
    assert branch_name(7, "Fix it") == "leashd/7-fix-it"  # the store's ids are row numbers


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=300))
def test_a_slug_is_always_a_bounded_valid_branch_name(description):
    s = slug(description)
    assert s and len(s) <= SLUG_MAX and s == slug(description)
    assert set(s) <= set("abcdefghijklmnopqrstuvwxyz0123456789-")
    name = branch_name("t1", description)
    ran = subprocess.run(["git", "check-ref-format", "--branch", name], capture_output=True,
                         text=True, cwd="/")  # fmt: skip
    assert ran.returncode == 0 and ran.stdout.strip() == name, ran.stderr


# --- the fake itself, where publish does not reach ------------------------------------------


def test_the_fake_refuses_what_github_refuses(home, github):
    bare = make_remote(home)
    github.add_repo("acme/widgets", git_dir=bare)
    auth = {"Authorization": f"token {github.token}"}
    with httpx.Client(base_url=github.url) as c:
        new = {"title": "t", "head": "nope", "base": "main"}
        r = c.post("/repos/acme/widgets/pulls", json=new, headers=auth)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "head"
        assert c.post("/repos/acme/widgets/pulls", json=new).status_code == 401
        wrong = {"Authorization": "Bearer x"}
        assert c.get("/repos/acme/widgets", headers=wrong).status_code == 401
        assert c.get("/repos/acme/other").status_code == 404
        r = c.post("/repos/acme/widgets/pulls", json={"head": "main"}, headers=auth)
        assert r.status_code == 422
        assert {e["field"] for e in r.json()["errors"]} == {"title", "base"}
        github.open_pull("acme/widgets", "feature")
        # a bare branch name is no filter at all on GitHub
        assert len(c.get("/repos/acme/widgets/pulls", params={"head": "other"}).json()) == 1
        assert c.get("/repos/acme/widgets/pulls", params={"head": "acme:other"}).json() == []
        assert c.get("/repos/acme/widgets").json()["default_branch"] == "main"
    assert len(github.requests) == 8


def test_a_credential_file_in_the_work_tree_is_never_pushed(tmp_path, home, github):
    """The agent's work goes to a remote: a `.env` or a key lying untracked in the checkout is
    left out of the commit (and said), whatever else is committed."""
    bare = make_remote(tmp_path)
    github.add_repo("acme/widgets", git_dir=bare)
    proj = clone(tmp_path, bare)
    agent_works(proj)
    (proj / ".env").write_text("API_KEY=sk-live-do-not-push\n")
    (proj / "deploy_key.pem").write_text("-----BEGIN PRIVATE KEY-----\n")
    result = run(proj, config(github))
    assert result.pr_url is not None
    assert set(result.withheld) == {".env", "deploy_key.pem"}
    pushed = git(bare, "ls-tree", "-r", "--name-only", BRANCH)
    assert ".env" not in pushed.split() and "deploy_key.pem" not in pushed.split()
    assert "web/health.py" in pushed.split()
    assert "Left out of the commit, as credentials: " in result.summary()
    assert (proj / ".env").exists()  # left where it was, untracked
