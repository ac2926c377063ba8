"""Workspaces: the file (leashd 0.x's shape, in leashd's home), `leashd ws`, and what the
agent is told of one, with real directories and a real git repository."""

from __future__ import annotations

import subprocess
import sys

import pytest

from leashd.workspaces import (
    Workspace,
    WorkspaceError,
    add,
    context,
    default_path,
    load,
    remove,
    usable,
)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("LEASHD_HOME", str(tmp_path / "lh"))
    for d in ("api", "web", "worker"):
        (tmp_path / d).mkdir()
    subprocess.run(["git", "init", "-q", "-b", "trunk", str(tmp_path / "api")], check=True)
    return tmp_path


def ws(home, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "leashd.cli", "ws", *args],
                          capture_output=True, text=True, cwd=home)  # fmt: skip


def test_add_list_show_remove_through_the_cli(home):
    r = ws(home, "add", "my-saas", str(home / "api"), str(home / "web"), "-d", "the product")
    assert r.returncode == 0, r.stderr
    assert ws(home, "add", "my-saas", str(home / "worker")).returncode == 0
    assert default_path() == home / "lh" / "workspaces.yaml"
    assert load()["my-saas"] == Workspace(
        "my-saas", (str(home / "api"), str(home / "web"), str(home / "worker")), "the product"
    )
    assert "my-saas: 3 directories — the product" in ws(home, "list").stdout
    shown = ws(home, "show", "my-saas").stdout
    assert f"{home / 'api'} (git repository, on branch trunk)" in shown
    assert f"{home / 'web'} (directory)" in shown
    assert ws(home, "remove", "my-saas", str(home / "worker")).returncode == 0
    assert load()["my-saas"].directories == (str(home / "api"), str(home / "web"))
    assert ws(home, "remove", "my-saas").returncode == 0
    assert load() == {}


def test_leashd_0x_files_are_read_as_they_are(home):
    path = home / "lh" / "workspaces.yaml"
    path.parent.mkdir()
    path.write_text(f"workspaces:\n  old:\n    directories:\n    - {home / 'api'}\n"
                    "    description: ''\n")  # fmt: skip
    assert load()["old"].directories == (str(home / "api"),)


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("workspaces:\n  a:\n    dirs: [/x]\n", 2, "takes `directories`"),
        ("workspaces:\n  'bad name':\n    directories: []\n", 2, "not a workspace name"),
        ("workspaces:\n  a:\n    directories: /x\n", 2, "list of paths"),
        ("other: 1\n", 1, "one key"),
        ("workspaces: [a]\n", 1, "mapping"),
    ],
)
def test_a_file_that_does_not_fit_is_an_error_with_its_line(home, text, line, words):
    path = home / "lh" / "workspaces.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    with pytest.raises(WorkspaceError, match=words) as info:
        load()
    assert f"{path}:{line}:" in str(info.value)
    r = ws(home, "list")
    assert r.returncode == 2 and f"{path}:{line}:" in r.stderr


def test_bad_changes_are_refused_and_change_nothing(home):
    add("a", [str(home / "api")])
    before = (home / "lh" / "workspaces.yaml").read_text()
    for bad in (lambda: add("a", [str(home / "nope")]), lambda: add("a b", [str(home / "api")]),
                lambda: add("b", []), lambda: remove("zzz"),
                lambda: remove("a", [str(home / "web")])):  # fmt: skip
        with pytest.raises(WorkspaceError):
            bad()
    assert (home / "lh" / "workspaces.yaml").read_text() == before
    r = ws(home, "add", "c", str(home / "nope"))
    assert r.returncode == 2 and "not a directory" in r.stderr


def test_the_agents_context_names_every_directory(home):
    w = add("s", [str(home / "api"), str(home / "web")], "two apps")
    text = context(w)
    assert "workspace 's' (two apps)" in text and "on branch trunk" in text
    assert text.count("\n- ") == 2


def test_the_cli_never_takes_the_root_the_home_or_a_word_of_ws(home, monkeypatch):
    monkeypatch.setenv("HOME", str(home / "api"))  # a home of its own: `ws` sees it too
    for args, words in ((["x", "/"], "is the root directory"),
                        (["x", str(home / "api")], "is your home directory"),
                        (["x", str(home)], "above your home directory"),
                        (["leave", str(home / "web")], "a word of /ws itself")):  # fmt: skip
        r = ws(home, "add", *args)
        assert r.returncode == 2 and words in r.stderr, (args, r.stderr)
    assert load() == {}


def test_usable_resolves_and_checks_each_directory_again(home):
    link = home / "link-to-web"
    link.symlink_to(home / "web")
    ok = usable(Workspace("s", (str(home / "api"), str(link)), "d"))
    assert ok == Workspace("s", (str(home / "api"), str(home / "web")), "d")
    for dirs, words in (((str(home / "gone"),), "is not a directory any more"),
                        (("api",), "is not an absolute path"),
                        (("/",), "is the root directory"),
                        ((), "has no directories")):  # fmt: skip
        with pytest.raises(WorkspaceError, match=words):
            usable(Workspace("s", dirs))
