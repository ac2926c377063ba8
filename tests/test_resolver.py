"""The memoising resolver: the same answers as os.path.realpath, and never a stale one."""

from __future__ import annotations

import os
import shutil
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leashd.policy.resolver import Resolver

NAMES = ["a", "b", "c", "link", "loop"]
SEGMENTS = [*NAMES, "..", ".", ""]


@st.composite
def trees(draw):
    """A small tree: (relative path, kind, symlink target) entries."""
    entries = []
    for parent in ("", "a", "a/b", "c"):
        for name in draw(st.lists(st.sampled_from(NAMES), max_size=3, unique=True)):
            kind = draw(st.sampled_from(["dir", "file", "link"]))
            target = None
            if kind == "link":
                parts = draw(st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=4))
                target = "/".join(parts) or "."
                if draw(st.booleans()):
                    target = "ROOT/" + target  # absolute, inside the tree
            entries.append((f"{parent}/{name}".lstrip("/"), kind, target))
    return entries


def build(root: str, entries) -> None:
    for rel, kind, target in entries:
        path = os.path.join(root, rel)
        if not os.path.isdir(os.path.dirname(path)) or os.path.lexists(path):
            continue
        if kind == "dir":
            os.mkdir(path)
        elif kind == "file":
            open(path, "w").close()
        else:
            os.symlink(target.replace("ROOT", root), path)


queries = st.lists(st.sampled_from(SEGMENTS), min_size=0, max_size=6).map("/".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trees(), st.lists(queries, min_size=1, max_size=6))
def test_same_answers_as_os_realpath(entries, qs):
    root = os.path.realpath(tempfile.mkdtemp())
    try:
        build(root, entries)
        resolver = Resolver()
        for q in qs:
            path = root + "/" + q
            want = os.path.realpath(path)
            assert resolver.realpath(path) == want, (q, entries)
            assert resolver.realpath(path) == want  # memoised: still the same
    finally:
        shutil.rmtree(root)


def test_a_symlink_made_after_a_resolution_changes_the_next_one(tmp_path):
    root = os.path.realpath(tmp_path)
    os.mkdir(f"{root}/project")
    os.mkdir(f"{root}/secret")
    resolver = Resolver()
    first = resolver.realpath(f"{root}/project/notes/key")
    assert first == f"{root}/project/notes/key"
    os.symlink(f"{root}/secret", f"{root}/project/notes")
    assert resolver.realpath(f"{root}/project/notes/key") == f"{root}/secret/key"


def test_a_directory_replaced_by_a_symlink_is_seen(tmp_path):
    root = os.path.realpath(tmp_path)
    os.makedirs(f"{root}/project/src")
    os.mkdir(f"{root}/elsewhere")
    resolver = Resolver()
    assert resolver.realpath(f"{root}/project/src/a.py") == f"{root}/project/src/a.py"
    os.rmdir(f"{root}/project/src")
    os.symlink(f"{root}/elsewhere", f"{root}/project/src")
    assert resolver.realpath(f"{root}/project/src/a.py") == f"{root}/elsewhere/a.py"
    # and again, after the directory the symlink replaced is made anew somewhere deeper
    os.unlink(f"{root}/project/src")
    os.mkdir(f"{root}/project/src")
    assert resolver.realpath(f"{root}/project/src/a.py") == f"{root}/project/src/a.py"
    os.mkdir(f"{root}/project/src/a.py")
    os.symlink(f"{root}/elsewhere", f"{root}/project/src/a.py/x")
    assert resolver.realpath(f"{root}/project/src/a.py/x") == f"{root}/elsewhere"


def test_a_memoised_decision_follows_a_new_symlink(tmp_path):
    """The evaluator's decision cache is dropped when a directory it depended on changes."""
    from leashd.policy import Evaluator, compile_policy, load_policies
    from leashd.policy.facts import Context

    root = os.path.realpath(tmp_path)
    os.makedirs(f"{root}/home/project/docs")
    os.makedirs(f"{root}/home/.ssh")
    os.mkdir(f"{root}/unrelated")
    ctx = Context.create(cwd=f"{root}/home/project", home=f"{root}/home")
    ev = Evaluator(compile_policy(load_policies([])), ctx)
    call = {"file_path": f"{root}/home/project/notes/config"}
    assert ev.evaluate("Read", call).action == "allow"
    assert ev.evaluate("Read", call).action == "allow"  # from the cache
    os.symlink(f"{root}/home/.ssh", f"{root}/home/project/notes")
    after = ev.evaluate("Read", call)
    assert after.action == "deny" and after.rule_name == "credential-files"
    # a change in an unrelated directory keeps other memoised decisions
    other = {"file_path": f"{root}/home/project/docs/a.md"}
    assert ev.evaluate("Read", other).action == "allow"
    os.mkdir(f"{root}/unrelated/x")
    ev._watch.check()
    assert ev._key("Read", other) in ev._cache._items


def test_a_directory_moved_away_and_made_again_is_watched_afresh(tmp_path):
    from leashd.policy import Evaluator, compile_policy, load_policies
    from leashd.policy.facts import Context

    root = os.path.realpath(tmp_path)
    os.makedirs(f"{root}/home/project/a/b")
    os.makedirs(f"{root}/home/.ssh")
    ctx = Context.create(cwd=f"{root}/home/project", home=f"{root}/home")
    ev = Evaluator(compile_policy(load_policies([])), ctx)
    call = {"file_path": f"{root}/home/project/a/b/c/id"}
    assert ev.evaluate("Read", call).action == "allow"
    os.rename(f"{root}/home/project/a", f"{root}/home/project/a_old")
    os.makedirs(f"{root}/home/project/a/b")
    assert ev.evaluate("Read", call).action == "allow"  # resolved again, on the new inode
    os.symlink(f"{root}/home/.ssh", f"{root}/home/project/a/b/c")
    assert ev.evaluate("Read", call).action == "deny"


def test_the_cache_key_tells_absent_from_null_and_holds_every_field_facts_read():
    from leashd.policy import Evaluator, compile_policy, load_policies
    from leashd.policy.facts import Context

    ev = Evaluator(compile_policy(load_policies([])), Context.create(cwd="/home/dev/project"))
    assert ev._key("Grep", {"pattern": "x"}) != ev._key("Grep", {"pattern": "x", "glob": ".env"})
    assert ev._key("Glob", {"pattern": "x"}) != ev._key("Glob", {"pattern": "x", "path": None})
    assert ev.evaluate("Grep", {"pattern": "KEY", "path": "/home/dev/project"}).action == "allow"
    grep_env = {"pattern": "KEY", "path": "/home/dev/project", "glob": ".env"}
    assert ev.evaluate("Grep", grep_env).action == "deny"


def test_without_inotify_nothing_is_memoised_and_nothing_fails(monkeypatch):
    from leashd.policy import fswatch

    def broken(*args, **kwargs):
        raise OSError(24, "too many inotify instances")

    monkeypatch.setattr(fswatch, "INotify", broken)
    watch = fswatch.FsWatch()
    watch.check()  # no error
    assert not watch.available and not watch.watch("/tmp")
    resolver = Resolver(watch)
    assert resolver.realpath("/tmp") == os.path.realpath("/tmp")
