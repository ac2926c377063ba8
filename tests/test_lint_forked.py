"""The lint's example searches shared among forked processes (forked.py): the same findings
as in one process, whatever the split, and nothing lost when a child fails."""

from __future__ import annotations

import os
import signal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leashd.policy import load_policies
from leashd.policy.analysis import forked
from leashd.policy.analysis.lint import lint
from leashd.policy.analysis.pair_cache import Stats
from leashd.policy.yaml_frontend import parse_yaml

PARENT = os.getpid()


def _square(x: int) -> int:
    return x * x


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(-1000, 1000), max_size=300), st.integers(1, 5))
def test_the_results_are_those_of_one_process_in_order(items, jobs):
    assert forked.map_shared(_square, items, jobs) == [x * x for x in items]


def _forks(monkeypatch) -> list[int]:
    """The pids of the children forked from here on."""
    pids: list[int] = []
    real = os.fork

    def fork() -> int:
        pid = real()
        if pid:
            pids.append(pid)
        return pid

    monkeypatch.setattr(os, "fork", fork)
    return pids


def test_work_is_shared_only_when_it_is_worth_a_fork(monkeypatch):
    pids = _forks(monkeypatch)
    forked.map_shared(_square, list(range(forked.MIN_ITEMS - 1)), 4)
    assert pids == []
    assert forked.map_shared(_square, list(range(200)), 3) == [x * x for x in range(200)]
    assert len(pids) == 2


def _dies_in_a_child(x: int) -> int:
    if os.getpid() != PARENT:
        os.kill(os.getpid(), signal.SIGKILL)
    return x + 1


def _raises_in_a_child(x: int) -> int:
    if os.getpid() != PARENT and x % 7 == 3:
        raise RuntimeError("a child's error")
    return x + 1


@pytest.mark.parametrize("fn", [_dies_in_a_child, _raises_in_a_child])
def test_a_child_that_fails_has_its_share_done_here(monkeypatch, fn):
    pids = _forks(monkeypatch)
    items = list(range(150))
    assert forked.map_shared(fn, items, 3) == [x + 1 for x in items]
    assert len(pids) == 2
    for pid in pids:  # reaped: none is left a zombie
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


def test_leashd_lint_jobs_1_forks_nothing(monkeypatch):
    monkeypatch.setenv("LEASHD_LINT_JOBS", "1")
    pids = _forks(monkeypatch)
    assert forked.map_shared(_square, list(range(200))) == [x * x for x in range(200)]
    assert pids == []
    monkeypatch.setenv("LEASHD_LINT_JOBS", "two")
    assert forked.workers() == 1  # not a number: no forks, never more


@pytest.mark.parametrize("specs", [["autonomous"], ["default", "dev-tools"]])
def test_a_lint_shared_among_processes_finds_what_one_process_finds(monkeypatch, specs):
    policy = load_policies(specs)
    monkeypatch.setenv("LEASHD_LINT_JOBS", "1")
    alone = lint(policy)
    pids = _forks(monkeypatch)
    for jobs in ("2", "3"):
        monkeypatch.setenv("LEASHD_LINT_JOBS", jobs)
        stats = Stats()
        assert lint(policy, stats=stats) == alone
        assert stats.searches >= forked.MIN_ITEMS
    assert len(pids) == 1 + 2


def _wide(n: int, edited: int | None = None) -> str:
    """n rules about one program, in every action: many pairs to search."""
    actions = ("allow", "deny", "require_approval")
    lines = ["rules:"]
    for k in range(n):
        word = f"e{k}" if k == edited else f"w{k % 7}"
        lines.append(
            f"  - {{name: r{k}, commands: ['git {word} *'], action: {actions[k % 3]}}}"
            if k % 2
            else f"  - {{name: r{k}, command_patterns: ['^git\\s+.*--{word}'], "
            f"action: {actions[k % 3]}}}"
        )
    return "\n".join(lines) + "\n"


def test_a_re_lint_shared_among_processes_keeps_the_cache_right(monkeypatch, tmp_path):
    monkeypatch.setenv("LEASHD_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("LEASHD_LINT_JOBS", "2")
    before = parse_yaml(_wide(60), "wide.yaml")
    first = Stats()
    lint(before, use_cache=True, stats=first)
    assert first.searches >= forked.MIN_ITEMS
    after = parse_yaml(_wide(60, edited=31), "wide.yaml")
    stats = Stats()
    again = lint(after, use_cache=True, stats=stats)
    assert stats.searches_reused > 0
    monkeypatch.setenv("LEASHD_LINT_JOBS", "1")
    assert again == lint(after)
    # and the file it wrote serves the next lint: every rule a line down, nothing searched
    moved = parse_yaml("# a line on top\n" + _wide(60, edited=31), "wide.yaml")
    monkeypatch.setenv("LEASHD_LINT_JOBS", "2")
    same = Stats()
    from_file = lint(moved, use_cache=True, stats=same)
    assert same.searches == 0 and same.searches_reused == stats.searches + stats.searches_reused
    assert from_file == lint(moved)


def test_work_beside_is_done_once_by_a_child_or_here_when_the_child_fails(tmp_path, monkeypatch):
    monkeypatch.setenv("LEASHD_LINT_JOBS", "2")
    pids = _forks(monkeypatch)
    marks = tmp_path / "marks"

    def mark() -> None:
        with marks.open("a") as f:
            f.write("here\n" if os.getpid() == PARENT else "child\n")

    forked.Beside(mark).wait()
    assert marks.read_text() == "child\n" and len(pids) == 1
    marks.unlink()

    def fails_in_the_child() -> None:
        if os.getpid() != PARENT:
            raise OSError("the disk is full")
        mark()

    forked.Beside(fails_in_the_child).wait()
    assert marks.read_text() == "here\n"
    marks.unlink()
    monkeypatch.setenv("LEASHD_LINT_JOBS", "1")
    forked.Beside(mark).wait()
    assert marks.read_text() == "here\n" and len(pids) == 2  # no fork with one job
