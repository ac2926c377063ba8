"""The /git suite with real git: repositories in a temporary directory, a bare one as the
remote, and the audit records of the user's own actions."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest

from leashd.git.suite import SHOWN_CHARS, GitSuite, Reply


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                          check=True).stdout  # fmt: skip


@pytest.fixture
def world(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Dev")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "dev@example.com")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "Dev")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "dev@example.com")
    monkeypatch.setenv("HOME", str(tmp_path))  # no global config of the machine's
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], check=True)
    repo = tmp_path / "proj"
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    (repo / "app.py").write_text("print('hi')\n")
    git(repo, "add", "app.py")
    git(repo, "commit", "-qm", "first")
    git(repo, "remote", "add", "origin", str(remote))
    git(repo, "push", "-q", "-u", "origin", "main")
    records: list[dict] = []
    suite = GitSuite(lambda: (str(repo),), records.append)
    return suite, repo, records, tmp_path


def run(suite: GitSuite, cwd: Path, line: str) -> Reply:
    return asyncio.run(suite.handle(str(cwd), line, who="42", session="7", chat="c"))


def test_status_add_commit_push_with_the_next_step_offered(world):
    suite, repo, records, tmp = world
    (repo / "new.py").write_text("x = 1\n")
    r = run(suite, repo, "status")
    assert r.ok and "new.py" in r.text
    assert ("➕ Add all", "/git add -A") in r.actions
    r = run(suite, repo, "add -A")
    assert r.ok and ("📝 Commit", "/git commit") in r.actions
    r = run(suite, repo, "commit -m add the new module")
    assert r.ok and ("⬆️ Push", "/git push") in r.actions
    assert git(repo, "log", "-1", "--format=%s").strip() == "add the new module"
    r = run(suite, repo, "push")
    assert r.ok, r.text
    assert git(tmp / "remote.git", "log", "-1", "--format=%s", "main").strip() == (
        "add the new module"
    )
    # each run is the user's own action in the audit
    assert [rec["event"] for rec in records] == ["status", "add", "commit", "push"]
    assert all(rec["by"] == "user" and rec["who"] == "42" for rec in records)
    assert records[2]["argv"] == ["git", "commit", "-m", "add the new module"]


def test_branches_are_buttons_to_check_out(world):
    suite, repo, _, _ = world
    assert run(suite, repo, "branch feature/x").ok
    r = run(suite, repo, "branch")
    assert "• main" in r.text and "feature/x" in r.text
    assert r.actions == (("⎇ feature/x", "/git checkout feature/x"),)
    assert run(suite, repo, "checkout feature/x").ok
    assert git(repo, "branch", "--show-current").strip() == "feature/x"
    assert run(suite, repo, "checkout -b hotfix").ok
    assert git(repo, "branch", "--show-current").strip() == "hotfix"


def test_a_merge_that_stops_offers_ai_resolution_or_abort(world):
    suite, repo, _, _ = world
    git(repo, "checkout", "-qb", "other")
    (repo / "app.py").write_text("print('other')\n")
    git(repo, "commit", "-qam", "other")
    git(repo, "checkout", "-q", "main")
    (repo / "app.py").write_text("print('main')\n")
    git(repo, "commit", "-qam", "main")
    r = run(suite, repo, "merge other")
    assert not r.ok and r.conflicts == ("app.py",)
    assert ("🤖 Resolve with AI", "/git resolve") in r.actions
    assert run(suite, repo, "merge --abort").ok
    assert git(repo, "status", "--porcelain") == ""


@pytest.mark.parametrize(
    "line",
    [
        "push --force", "push origin +main", "push -f", "checkout -- app.py", "checkout app.py x",
        "reset --hard", "diff --ext-diff", "diff --output=/tmp/x", "log -p", "status --porcelain",
        "branch -D main", "add ../outside.txt", "add /etc/passwd", "merge --no-ff -X theirs x",
        "push --upload-pack=touch /tmp/x", "-c core.pager=sh status", "commit", "commit -m",
        "checkout ..", "checkout -b -x",
    ],
)  # fmt: skip
def test_nothing_destructive_or_program_running_is_on_offer(world, line):
    suite, repo, records, _ = world
    before = git(repo, "rev-parse", "HEAD"), git(repo, "status", "--porcelain")
    r = run(suite, repo, line)
    assert not r.ok and "/git status" in r.text  # refused, with what is on offer
    assert records == []  # git never ran
    assert (git(repo, "rev-parse", "HEAD"), git(repo, "status", "--porcelain")) == before


def test_only_in_an_approved_directory(world):
    suite, _, records, tmp = world
    other = tmp / "elsewhere"
    other.mkdir()
    r = run(suite, other, "status")
    assert not r.ok and "not in an approved directory" in r.text and records == []
    # a link into it does not make it approved
    (tmp / "proj" / "link").symlink_to(other)
    r = run(suite, tmp / "proj" / "link", "status")
    assert not r.ok and records == []


def test_long_output_goes_as_a_document(world):
    suite, repo, _, _ = world
    (repo / "big.txt").write_text("".join(f"line {i}\n" for i in range(20000)))
    git(repo, "add", "big.txt")
    r = run(suite, repo, "diff --staged")
    assert r.ok and r.document is not None
    name, content = r.document
    assert name == "git-diff.txt" and b"+line 19999\n" in content  # all of it, past one read
    assert len(r.text) <= SHOWN_CHARS + 60 and "attached" in r.text


def test_git_that_would_ask_for_a_password_fails_instead_of_hanging(world, monkeypatch):
    suite, repo, _, _ = world
    git(repo, "remote", "set-url", "origin", "https://127.0.0.1:9/nothing.git")
    monkeypatch.setattr("leashd.git.suite.NETWORK_TIMEOUT", 20.0)
    r = run(suite, repo, "pull")
    assert not r.ok and r.text


def test_what_cannot_be_read_is_said(world):
    suite, repo, _, _ = world
    r = run(suite, repo, 'commit -m "unclosed')
    assert not r.ok and "Cannot read" in r.text
    assert not run(suite, repo, "").ok
    assert "rebase" in run(suite, repo, "rebase main").text  # named in the refusal
    assert os.path.isdir(repo)


def test_the_audit_log_keeps_the_users_git_and_says_whose_it_was(world):
    from leashd.gate.audit import AuditLog, describe, records

    suite, repo, _, tmp = world
    log = AuditLog(tmp / "audit.jsonl")
    suite = GitSuite(lambda: (str(repo),), lambda fields: log.append("git", fields))
    run(suite, repo, "log 3")
    log.close()
    (rec,) = [r for r in records(tmp / "audit.jsonl") if r.get("kind") == "git"]
    assert rec["by"] == "user" and rec["argv"][:2] == ["git", "log"]
    assert "git by user 42" in describe(rec) and "(exit 0)" in describe(rec)


def test_output_past_the_bound_is_cut_and_says_so(world, monkeypatch):
    suite, repo, _, _ = world
    monkeypatch.setattr("leashd.git.suite.OUTPUT_BYTES", 5000)
    (repo / "big.txt").write_text("".join(f"line {i}\n" for i in range(20000)))
    git(repo, "add", "big.txt")
    r = run(suite, repo, "diff --staged")
    assert r.document is not None
    assert len(r.document[1]) < 6000 and r.document[1].endswith(b"(cut at 5,000 bytes)")
