"""The OS sandbox's settings for a turn (`leashd.agent.sandbox`) and the reading of what it
refused (`leashd.agent.sandbox_report`), with real files in temporary directories and the real
built-in policies deciding what is a secret.

The scan's promise is checked against an oracle that knows nothing of the scan: every entry
under the approved directory, found by `os.walk`, that the gate keeps the Read tool from is
hidden by the sandbox (itself, or a directory it is in), and nothing the gate lets Read open
is hidden in its own name."""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leashd.agent import sandbox
from leashd.agent.sandbox import (
    CACHES,
    DOMAINS,
    GIT_NEVER_WRITTEN,
    HIDDEN_PATHS,
    HOME_SECRETS,
    Plan,
    SandboxConfig,
    SandboxUnavailable,
    agent_env,
    plan,
    scan,
    secret_globs,
)
from leashd.agent.sandbox_report import Reader
from leashd.daemon.config import ConfigError, load_config
from leashd.gate.audit import AuditLog
from leashd.gate.gate import Gate, Session
from leashd.policy.loader import DEFAULT_POLICIES, load_compiled

NOWHERE = Path("/nonexistent-leashd-test")  # no config.yaml, no .env: the environment alone


@pytest.fixture(scope="module")
def compiled():
    """The built-in policies, loaded once: a gate per example is then cheap."""
    return load_compiled(DEFAULT_POLICIES)


class World:
    """A home with a project in it, the real default policies over them, and the sandbox the
    runner would give a turn there (`ClaudeAgent._sandbox`, with the same probe)."""

    def __init__(self, root: Path, compiled, dirs: list[Path] | None = None) -> None:
        self.root = Path(os.path.realpath(root))
        self.home = self.root / "home"
        self.proj = self.home / "proj"
        self.proj.mkdir(parents=True, exist_ok=True)
        self.dirs = [str(d) for d in (dirs or [self.proj])]
        audit = AuditLog(self.root / "a.jsonl")
        self.gate = Gate(compiled, audit, approved_dirs=self.dirs, home=str(self.home),
                         specs=DEFAULT_POLICIES)  # fmt: skip
        self.session = Session("s", "c", str(self.proj), "default")
        self.globs = secret_globs(self.gate.compiled.rules)

    def read(self, path: str | Path) -> str:
        return self.gate.decide(self.session, "Read", {"file_path": str(path)}).action

    def is_secret(self, path: str) -> bool:
        return self.read(path) == "deny"

    def plan(self, config: SandboxConfig | None = None, **kw) -> Plan:
        kw.setdefault("which", lambda program: None)
        return plan(config or SandboxConfig(), self.dirs, str(self.home), self.is_secret,
                    self.globs, **kw)  # fmt: skip


def hidden_by(denied: list[str], path: str) -> bool:
    """Whether `path` is in `denied`, or inside a directory that is."""
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in denied)


def touch(path: Path, text: str = "x\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# --- what may be written ------------------------------------------------------------------


def test_writable_is_the_approved_dirs_the_temp_dir_the_caches_and_the_configured(
    tmp_path, compiled
):
    w = World(tmp_path, compiled)
    (w.home / ".cache" / "pip").mkdir(parents=True)
    (w.home / ".cargo" / "registry").mkdir(parents=True)
    (w.home / "go" / "pkg").mkdir(parents=True)  # not the cache itself (go/pkg/mod)
    extra = w.root / "elsewhere"
    extra.mkdir()
    config = SandboxConfig(writable=("~/.cache/bazel", str(extra), " ", "~"))
    written = w.plan(config).settings["filesystem"]["allowWrite"]
    assert written == [
        str(w.proj),
        os.path.realpath(tempfile.gettempdir()),
        str(w.home / ".cache" / "pip"),  # in the order of CACHES
        str(w.home / ".cargo" / "registry"),
        str(w.home / ".cache" / "bazel"),  # `~` is the home leashd runs with, not $HOME
        str(extra),
        str(w.home),  # only because the user listed it
    ]
    # without that, nothing of the home is writable but the project and the caches
    written = w.plan().settings["filesystem"]["allowWrite"]
    assert str(w.home) not in written
    inside_home = [p for p in written if hidden_by([str(w.home)], p)]
    assert inside_home == [str(w.proj), str(w.home / ".cache/pip"), str(w.home / ".cargo/registry")]


def test_a_cache_is_made_only_when_a_program_of_it_is_installed(tmp_path, compiled):
    w = World(tmp_path, compiled)
    asked: list[str] = []

    def nothing(program: str) -> str | None:
        asked.append(program)
        return None

    w.plan(which=nothing)
    assert sorted(os.listdir(w.home)) == ["proj"]  # nothing made
    assert set(asked) == {p for _, programs in CACHES for p in programs}

    installed = {"uv": "/usr/bin/uv", "cargo": "/usr/bin/cargo"}
    written = w.plan(which=installed.get).settings["filesystem"]["allowWrite"]
    made = [str(w.home / rel) for rel in (".cache/uv", ".cargo/registry", ".cargo/git")]
    assert written[2:] == made
    for path in made:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o700
    assert not (w.home / ".npm").exists() and not (w.home / "go").exists()


def test_a_cache_that_cannot_be_made_is_left_out(tmp_path, compiled):
    w = World(tmp_path, compiled)
    (w.home / ".cache").write_text("a file where a directory would go")
    written = w.plan(which=lambda p: "/usr/bin/" + p).settings["filesystem"]["allowWrite"]
    assert not any(p.startswith(str(w.home / ".cache")) for p in written)
    assert str(w.home / ".npm") in written  # the others are made all the same


def test_never_written_git_hooks_and_config_of_repositories_and_leashd_files(tmp_path, compiled):
    root = Path(os.path.realpath(tmp_path))
    repo, plain = root / "repo", root / "plain"
    (repo / ".git" / "hooks").mkdir(parents=True)
    (plain / "sub").mkdir(parents=True)
    private = (str(root / "leashd"), str(root / "leashd" / "messages.db"))
    w = World(tmp_path, compiled, dirs=[repo, plain])
    fs = w.plan(SandboxConfig(private=private)).settings["filesystem"]
    # (the home of this world is under the system temp directory, which is writable: its
    # startup files come after, see the next test)
    expected = [*private, *(str(repo / g) for g in GIT_NEVER_WRITTEN)]
    assert fs["denyWrite"][: len(expected)] == expected
    assert GIT_NEVER_WRITTEN == (".git/hooks", ".git/config")
    # a worktree's or a submodule's `.git` is a file: the paths are listed all the same (they
    # cannot be made while the turn runs: `.git` is not a directory)
    (plain / ".git").write_text("gitdir: /elsewhere/.git/worktrees/plain\n")
    fs = w.plan().settings["filesystem"]
    assert str(plain / ".git" / "hooks") in fs["denyWrite"]


def test_unreadable_are_leashd_files_the_home_credentials_and_the_secrets_found(tmp_path, compiled):
    w = World(tmp_path, compiled)
    secret = touch(w.proj / "config" / ".env")
    touch(w.proj / "README.md")
    private = (str(w.root / "leashd"),)
    p = w.plan(SandboxConfig(private=private))
    home_secrets = [str(w.home / rel) for rel in HOME_SECRETS]
    # and the places outside the home the default policy names, where they exist here
    named = [n for n in ("/var/run/secrets", "/run/secrets", "/etc/kubernetes/admin.conf",
                         "/etc/wireguard", "/etc/shadow", "/etc/gshadow", "/etc/sudoers")
             if os.path.lexists(n)]  # fmt: skip
    deny = p.settings["filesystem"]["denyRead"]
    assert deny[: len(private) + len(home_secrets)] == [*private, *home_secrets]
    assert sorted(deny[len(private) + len(home_secrets) :]) == sorted([*named, str(secret)])
    assert p.secrets == (str(secret),)
    assert p.complete and p.notes == [] and p.scanned == 3  # config, config/.env, README.md
    for must in (
        ".ssh",
        ".aws",
        ".gnupg",
        ".netrc",
        ".git-credentials",
        ".claude/.credentials.json",
    ):
        assert str(w.home / must) in home_secrets


def test_network_and_the_ways_out_of_the_sandbox(tmp_path, compiled):
    w = World(tmp_path, compiled)
    s = w.plan().settings
    assert s["network"]["allowedDomains"] == list(DOMAINS)
    assert s["enabled"] is True and s["failIfUnavailable"] is True
    assert s["allowUnsandboxedCommands"] is False
    assert s["autoAllowBashIfSandboxed"] is False  # the policy still decides every call
    assert s["excludedCommands"] == []

    config = SandboxConfig(allowed_domains=("internal.example", "pypi.org"),
                           excluded_commands=("docker",))  # fmt: skip
    s = w.plan(config).settings
    assert s["network"]["allowedDomains"] == [*DOMAINS, "internal.example"]
    assert s["excludedCommands"] == ["docker"]


# --- the scan -----------------------------------------------------------------------------

NAMES = (".env", ".env.local", ".ENV", "id_rsa", "id_rsa.pub", "server.pem", "credentials.json",
         "credentials", ".env.example", "notes.txt", "src", "key.pub", "secrets.yaml", ".npmrc",
         ".kube", "config", "private.key", "token.json", "README.md", ".ssh", ".config", "gh",
         "hosts.yml", ".docker", "config.json", "kubeconfig", "wg0.conf", ".git")  # fmt: skip

trees = st.recursive(
    st.none(),  # a file
    lambda children: st.dictionaries(st.sampled_from(NAMES), children, max_size=4),
    max_leaves=14,
)


def build(base: Path, tree: dict) -> None:
    for name, sub in tree.items():
        if sub is None:
            touch(base / name, f"{name}\n")
        else:
            (base / name).mkdir()
            build(base / name, sub)


def entries(top: Path) -> list[str]:
    """Every file, directory and link under `top`, links not followed: the oracle's walk."""
    out = []
    for d, dirs, files in os.walk(top, followlinks=False):
        out += [os.path.join(d, n) for n in dirs + files]
    return out


@settings(max_examples=40, deadline=None)
@given(tree=st.dictionaries(st.sampled_from(NAMES), trees, min_size=1, max_size=5), data=st.data())
def test_every_entry_the_policy_keeps_from_read_is_hidden_and_nothing_else(tree, data, compiled):
    with tempfile.TemporaryDirectory(prefix="leashd-scan-") as tmp:
        w = World(Path(tmp), compiled)
        if data.draw(st.booleans(), label="the home approved"):  # `~/` globs apply too
            w = World(Path(tmp), compiled, dirs=[w.home])
            w.proj.rmdir()
            w.proj = w.home
        outside = Path(tmp) / "outside"
        touch(outside / ".env")
        touch(outside / "notes.txt")
        build(w.proj, tree)
        # a link or two, to what is in the tree or outside it, under a name of the pool
        outside_targets = [str(outside), str(outside / ".env"), str(outside / "notes.txt")]
        targets = [*sorted(entries(w.proj)), *outside_targets]
        places = [str(w.proj)] + [p for p in entries(w.proj) if os.path.isdir(p)]
        for _ in range(data.draw(st.integers(0, 2), label="links")):
            link = Path(data.draw(st.sampled_from(places))) / data.draw(st.sampled_from(NAMES))
            if not os.path.lexists(link):
                link.symlink_to(data.draw(st.sampled_from(targets)))

        p = w.plan()
        denied = p.settings["filesystem"]["denyRead"]
        assert p.complete
        proj = str(w.proj)
        for path in entries(w.proj):
            action = w.read(path)
            real = os.path.realpath(path)
            if action == "deny" and hidden_by([proj], real):
                # the kernel sees through links: hiding the target hides the link's content
                assert hidden_by(denied, path) or hidden_by(denied, real), (path, action)
            if action != "deny":  # the home's credential stores are hidden whatever it says
                assert path not in p.secrets, (path, action)
        for found in p.secrets:  # never walked into a link
            parent = os.path.dirname(found)
            assert os.path.realpath(parent) == parent and hidden_by([proj], found)


def test_a_symlink_is_not_followed_out_of_the_approved_directory(tmp_path, compiled):
    w = World(tmp_path, compiled)
    outside = w.root / "outside"
    for i in range(20):
        touch(outside / f"d{i}" / ".env")
    (w.proj / "out").symlink_to(outside)
    (w.proj / "loop").symlink_to(w.proj)  # a cycle: not walked either
    touch(w.proj / "notes.txt")
    found = scan([str(w.proj)], str(w.home), w.is_secret, w.globs)
    assert found.complete and found.paths == ()
    assert found.entries == 3  # out, loop, notes.txt: nothing behind the links
    # what is behind the link is left to the policy, which refuses it
    assert w.read(w.proj / "out" / "d1" / ".env") == "deny"


def test_the_limit_stops_the_scan_and_the_turn(tmp_path, compiled):
    w = World(tmp_path, compiled)
    for i in range(30):
        touch(w.proj / f"f{i:02}.txt")
    touch(w.proj / "zz" / ".env")
    found = scan([str(w.proj)], str(w.home), w.is_secret, w.globs, limit=10)
    assert not found.complete and found.entries == 10
    # the agent can make files: past the limit the turn is refused, never left to the policy
    with pytest.raises(SandboxUnavailable, match="LEASHD_SANDBOX=off"):
        w.plan(limit=10)
    p = w.plan(limit=32)
    assert p.complete and p.notes == [] and p.scanned == 32
    assert p.secrets == (str(w.proj / "zz" / ".env"),)


def test_git_objects_are_not_walked(tmp_path, compiled):
    w = World(tmp_path, compiled)
    touch(w.proj / ".git" / "objects" / "pack" / "server.pem")
    touch(w.proj / ".git" / "info" / "server.pem")
    touch(w.proj / "vendor" / "lib" / ".git" / "objects" / "ab" / "id_rsa")
    touch(w.proj / "vendor" / "lib" / ".git" / "id_rsa")
    found = scan([str(w.proj)], str(w.home), w.is_secret, w.globs)
    assert sorted(found.paths) == [str(w.proj / ".git" / "info" / "server.pem"),
                                   str(w.proj / "vendor" / "lib" / ".git" / "id_rsa")]  # fmt: skip
    assert w.read(w.proj / ".git" / "objects" / "pack" / "server.pem") == "deny"  # not hidden


def test_a_directory_found_is_hidden_whole_and_not_walked(tmp_path, compiled):
    w = World(tmp_path, compiled)
    for i in range(5):
        touch(w.proj / "credentials" / f"k{i}.pem")
    touch(w.proj / "credentials" / "README.md")
    found = scan([str(w.proj)], str(w.home), w.is_secret, w.globs)
    assert found.paths == (str(w.proj / "credentials"),) and found.entries == 1
    assert w.read(w.proj / "credentials" / "README.md") == "deny"


def test_approved_directories_inside_each_other_are_walked_once(tmp_path, compiled):
    w = World(tmp_path, compiled)
    touch(w.proj / "sub" / ".env")
    w = World(tmp_path, compiled, dirs=[w.proj, w.proj / "sub"])
    found = scan(w.dirs, str(w.home), w.is_secret, w.globs)
    assert found.paths == (str(w.proj / "sub" / ".env"),) and found.entries == 2


def test_without_candidate_globs_nothing_is_walked(tmp_path):
    touch(tmp_path / ".env")
    found = scan([str(tmp_path)], str(tmp_path), lambda p: True, [])
    assert (found.paths, found.entries, found.complete) == ((), 0, True)


def test_the_candidates_are_the_read_deny_rules_by_name(compiled):
    globs = secret_globs(compiled.rules)
    names = {g for g, _ in globs}
    assert {".env", "*.pem", "id_rsa*", "credentials.json", "~/.ssh"} <= names
    assert all(ignore_case for g, ignore_case in globs if g in (".env", "*.pem"))
    # write-only rules (hooks, the gate's own files) are no reason to hide a file
    assert not names & {"**/.git/hooks", "**/.git/config", "~/.leashd"}


# --- what the sandbox refused, read from a Bash result ------------------------------------


@pytest.fixture
def reader_world(tmp_path, compiled):
    """A project with secrets next to look-alikes the policy lets Read open, as the scan
    found them, and a reader for a turn run in the project."""
    w = World(tmp_path, compiled)
    for name in (".env", ".env.example", "id_rsa", "id_rsa.pub", "notes.txt",
                 "credentials/a.txt", "src/app.py"):  # fmt: skip
        touch(w.proj / name)
    p = w.plan()
    hidden = p.settings["filesystem"]["denyRead"]
    assert {str(w.proj / n) for n in (".env", "id_rsa", "credentials")} <= set(hidden)
    for look_alike in (".env.example", "id_rsa.pub", "notes.txt"):
        assert w.read(w.proj / look_alike) == "allow"
    return w, Reader(hidden, str(w.proj), str(w.home))


def lines(found) -> list[tuple[str, str]]:
    return [(b.kind, b.line) for b in found]


def test_a_refused_write_is_reported_whatever_the_path(reader_world):
    w, r = reader_world
    out = (f"bash: line 1: {w.home}/.bashrc: Read-only file system\n"
           "touch: cannot touch '/usr/local/x': Read-only file system\n"
           "ok\n")  # fmt: skip
    assert lines(r.blocked(out)) == [
        ("write", f"bash: line 1: {w.home}/.bashrc: Read-only file system"),
        ("write", "touch: cannot touch '/usr/local/x': Read-only file system"),
    ]


@pytest.mark.parametrize(
    "said",
    [
        "cat: .env: Permission denied",  # relative to the turn's directory
        "cat: ./.env: Permission denied",
        "cat: {proj}/.env: Permission denied",
        "cat: ~/proj/.env: Permission denied",
        "PermissionError: [Errno 13] Permission denied: '.env'",
        "PermissionError: [Errno 13] Permission denied: '{proj}/id_rsa'",
        "cat: credentials/a.txt: No such file or directory",  # inside a hidden directory
        "FileNotFoundError: [Errno 2] No such file or directory: 'credentials/a.txt'",
        "ls: cannot open directory 'credentials': Permission denied",
        "cat: {home}/.ssh/id_ed25519: No such file or directory",
        "wget: Cannot read {home}/.netrc (Permission denied).",
        "cp: cannot open ‘id_rsa’ for reading: Permission denied",
    ],
)
def test_a_refused_read_of_a_hidden_path_is_reported(reader_world, said):
    w, r = reader_world
    line = said.format(proj=w.proj, home=w.home)
    assert lines(r.blocked(f"before\n{line}\nafter\n")) == [("read", line)]


@pytest.mark.parametrize(
    "said",
    [
        "cat: notes.txt: Permission denied",  # a real EACCES, on a file not hidden
        "cat: {proj}/src/app.py: Permission denied",
        "cat: .env.example: Permission denied",  # `.env` is hidden, `.env.example` not
        "cat: id_rsa.pub: No such file or directory",  # nor is `id_rsa.pub`
        "cat: {proj}/.env.example: No such file or directory",
        "cat: my.env.d/x: No such file or directory",  # `.env` inside a longer name
        "python: can't open file '{proj}/missing.py': [Errno 2] No such file or directory",
        "cat: .env is fine",  # names it, but no refusal
    ],
)
def test_an_error_that_names_no_hidden_path_is_not_the_sandbox(reader_world, said):
    w, r = reader_world
    assert r.blocked(said.format(proj=w.proj, home=w.home)) == []


def test_a_refused_connection_is_reported(reader_world):
    _, r = reader_world
    out = (
        "curl: (56) CONNECT tunnel failed, response 403\n"
        "curl: (56) Received HTTP code 403 from proxy after CONNECT\n"
        "urllib.error.URLError: <urlopen error Tunnel connection failed: 403 user denied>\n"
        "fetch failed: Connection blocked by network allowlist\n"
        "curl: (7) Failed to connect to example.com port 443\n"  # not the proxy's refusal
    )
    assert [b.kind for b in r.blocked(out)] == ["network"] * 4


def test_the_cli_s_violation_blocks_are_reported_and_not_read_twice(reader_world):
    _, r = reader_world
    out = (
        "curl: (56) CONNECT tunnel failed, response 403\n"
        "<sandbox_violations>\n"
        "deny network-outbound example.com:443 (user denied)\n"
        "deny file-write-create /etc/x Read-only file system\n"
        "deny file-read-data /home/u/.ssh/id_rsa\n"
        "</sandbox_violations>"
    )
    assert lines(r.blocked(out)) == [
        ("network", "deny network-outbound example.com:443 (user denied)"),
        ("write", "deny file-write-create /etc/x Read-only file system"),
        ("read", "deny file-read-data /home/u/.ssh/id_rsa"),
        ("network", "curl: (56) CONNECT tunnel failed, response 403"),
    ]
    # a block left open is text like any other
    assert lines(r.blocked("<sandbox_violations>\ncat: .env: Permission denied")) == [
        ("read", "cat: .env: Permission denied")
    ]


@pytest.mark.parametrize(
    "output",
    [
        "x" * 5_000_000,
        "cat: notes.txt: Permission denied\n" * 150_000,
        "<sandbox_violations>\n" * 250_000,  # openings without an end: was quadratic
        "<sandbox_violations>" * 250_000,
        "Permission denied " + ".env" * 1_250_000,  # one line, the name over and over
        "cat: .env: Permission denied\n" * 180_000,
        "<sandbox_violations>\nx\n</sandbox_violations>" * 120_000,
    ],
    ids=["plain", "denied", "open-lines", "open-run", "one-line", "hidden", "blocks"],
)
def test_five_megabytes_of_output_are_read_at_once_and_reported_in_20_lines(reader_world, output):
    """A bound, not a benchmark: the report runs on the event loop, and the quadratic reading
    of unclosed violation blocks took about a minute for 400 KB (now milliseconds)."""
    _, r = reader_world
    output = output.ljust(5_000_000, "\n")
    t0 = time.perf_counter()
    found = r.blocked(output)
    assert time.perf_counter() - t0 < 2.0
    assert len(found) <= 20
    assert all(len(b.line) <= 300 for b in found)


def test_thousands_of_hidden_paths_and_names_nested_past_what_re_parses(tmp_path):
    home = str(tmp_path)
    many = [f"{home}/p/d{i % 97}/s{i}.pem" for i in range(3000)]
    r = Reader(many, f"{home}/p", home)
    out = "cat: d5/s5.pem: Permission denied\ncat: d5/s6.pem: Permission denied"
    assert lines(r.blocked(out)) == [("read", "cat: d5/s5.pem: Permission denied")]
    # each name a prefix of the next: a prefix tree as deep as they are long, past the
    # nesting `re` can parse (about 500): the plain alternation instead
    nested = [f"{home}/p/" + "a" * k for k in range(1, 600)]
    r = Reader(nested, f"{home}/p", home)
    assert lines(r.blocked(f"cat: {'a' * 300}: Permission denied"))[0][0] == "read"
    assert r.blocked(f"cat: {'a' * 300}b: Permission denied") == []
    assert r.blocked(f"cat: {'a' * 600}: Permission denied") == []


def test_a_reader_with_nothing_hidden_reports_no_read(tmp_path):
    r = Reader([], str(tmp_path), str(tmp_path))
    out = "cat: .env: Permission denied\nx: Read-only file system"
    assert lines(r.blocked(out)) == [("write", "x: Read-only file system")]


def test_a_writable_home_keeps_its_startup_files_and_an_unwritable_one_lists_none(tmp_path):
    from tests.conftest import worlds_dir

    compiled = load_compiled(DEFAULT_POLICIES)
    w = World(tmp_path, compiled, dirs=[tmp_path / "home"])  # the home itself approved
    fs = w.plan().settings["filesystem"]
    for rel in (".bashrc", ".profile", ".zshrc", ".gitconfig", ".ssh", ".config/systemd"):
        assert str(w.home / rel) in fs["denyWrite"], rel
    outside_temp = worlds_dir() / f"sandbox-settings-{os.getpid()}"
    try:
        w = World(outside_temp, compiled)  # a home outside every writable root
        fs = w.plan().settings["filesystem"]
        assert not [p for p in fs["denyWrite"] if p.startswith(str(w.home) + "/.bash")]
        assert not any(p == str(w.home) or (p.startswith(str(w.home) + "/") and "proj" not in p)
                       for p in fs["allowWrite"])  # fmt: skip
    finally:
        shutil.rmtree(outside_temp, ignore_errors=True)


# --- the agent's environment --------------------------------------------------------------


def test_every_leashd_variable_is_emptied_and_uv_copies():
    environ = {"LEASHD_TELEGRAM_BOT_TOKEN": "123:abc", "LEASHD_AUDIT_KEY": "k",
               "leashd_lower": "x", "PATH": "/usr/bin", "ANTHROPIC_API_KEY": "sk",
               "NOT_LEASHD_X": "y"}  # fmt: skip
    # no CLAUDE_CODE_SUBPROCESS_ENV_SCRUB: it leaves empty package.json, .env, .bashrc on disk;
    # uv copies from its (writable) cache rather than linking it into virtualenvs
    assert agent_env(environ) == {
        "LEASHD_TELEGRAM_BOT_TOKEN": "", "LEASHD_AUDIT_KEY": "", "leashd_lower": "",
        "UV_LINK_MODE": "copy",
    }  # fmt: skip


# --- configuration ------------------------------------------------------------------------


def settings_from(environ: dict[str, str]):
    return load_config(yaml_path=NOWHERE / "config.yaml", env_file=NOWHERE / ".env",
                       environ=environ).settings  # fmt: skip


@pytest.mark.parametrize(
    ("value", "mode"), [("OFF", "off"), ("off", "off"), (" Enforce ", "enforce"), (None, "enforce")]
)
def test_leashd_sandbox_is_on_unless_turned_off(value, mode):
    s = settings_from({} if value is None else {"LEASHD_SANDBOX": value})
    assert s.sandbox == mode
    assert SandboxConfig(mode=s.sandbox).enforced is (mode == "enforce")


@pytest.mark.parametrize("value", ["no", "false", "0", "permissive", ""])
def test_another_value_of_leashd_sandbox_is_an_error_that_names_it(value):
    with pytest.raises(ConfigError, match=r"LEASHD_SANDBOX \(environment"):
        settings_from({"LEASHD_SANDBOX": value})


@pytest.mark.parametrize("value", ["build/cache", "~cache", "./x", "/ok,rel"])
def test_a_writable_path_must_be_absolute(value):
    with pytest.raises(ConfigError, match=r"LEASHD_SANDBOX_WRITABLE \(environment.*absolute"):
        settings_from({"LEASHD_SANDBOX_WRITABLE": value})


def test_writable_paths_lists_and_their_home(tmp_path, compiled):
    s = settings_from({"LEASHD_SANDBOX_WRITABLE": "~/.cache/bazel, /opt/cache",
                       "LEASHD_SANDBOX_ALLOWED_DOMAINS": "internal.example",
                       "LEASHD_SANDBOX_EXCLUDED_COMMANDS": '["docker", "podman"]'})  # fmt: skip
    config = SandboxConfig(writable=tuple(s.sandbox_writable),
                           allowed_domains=tuple(s.sandbox_allowed_domains),
                           excluded_commands=tuple(s.sandbox_excluded_commands))  # fmt: skip
    w = World(tmp_path, compiled)
    settings_ = w.plan(config).settings
    assert settings_["filesystem"]["allowWrite"][-2:] == [
        str(w.home / ".cache" / "bazel"),
        "/opt/cache",
    ]
    assert settings_["network"]["allowedDomains"][-1] == "internal.example"
    assert settings_["excludedCommands"] == ["docker", "podman"]


def test_the_module_lists_are_what_the_docs_promise():
    assert not any(rel.startswith("/") or rel.startswith("~") for rel in HOME_SECRETS)
    assert len(set(HOME_SECRETS)) == len(HOME_SECRETS) and len(set(DOMAINS)) == len(DOMAINS)
    assert sandbox.MODES == ("enforce", "off")


# --- many secrets: each is a mount at every call -------------------------------------------


def test_past_the_cap_the_directories_with_most_secrets_are_hidden_whole(tmp_path):
    w = World(tmp_path, load_compiled(DEFAULT_POLICIES))
    certs = w.proj / "tests" / "fixtures" / "certs"
    certs.mkdir(parents=True)
    for i in range(300):
        (certs / f"c{i}.pem").write_text("x")
    (certs / "README.md").write_text("test certificates")
    only = w.proj / "keys"
    only.mkdir()
    for i in range(5):
        (only / f"k{i}.key").write_text("x")
    (w.proj / ".env").write_text("S=1")
    p = w.plan()
    deny = p.settings["filesystem"]["denyRead"]
    # the directory of nothing but keys stands for them; the certificates' directory is
    # hidden whole (its README with it), and said; the project itself never is
    assert str(certs) in deny and str(only) in deny and str(w.proj / ".env") in deny
    assert not [d for d in deny if d.startswith(str(certs) + "/")]
    assert str(w.proj) not in deny
    assert len(p.secrets) <= HIDDEN_PATHS
    assert any(str(certs) in n and "whole" in n for n in p.notes), p.notes
    assert not any(str(only) in n for n in p.notes)  # hiding it hid nothing more


def test_within_the_cap_each_secret_is_hidden_on_its_own(tmp_path):
    w = World(tmp_path, load_compiled(DEFAULT_POLICIES))
    keys = w.proj / "keys"
    keys.mkdir()
    for i in range(5):
        (keys / f"k{i}.key").write_text("x")
    p = w.plan()
    assert sorted(p.secrets) == sorted(str(keys / f"k{i}.key") for i in range(5))
    assert p.notes == []


def test_secrets_spread_too_thin_to_hide_refuse_the_turn(tmp_path):
    w = World(tmp_path, load_compiled(DEFAULT_POLICIES))
    for i in range(HIDDEN_PATHS + 5):  # one per directory, next to ordinary files
        d = w.proj / f"pkg{i}"
        d.mkdir()
        (d / "server.pem").write_text("x")
        (d / "main.py").write_text("")
    # one directory over them all would be the project itself: never hidden whole
    with pytest.raises(SandboxUnavailable, match="too many"):
        w.plan()


def test_secrets_one_to_a_directory_are_hidden_by_a_common_ancestor(tmp_path):
    w = World(tmp_path, load_compiled(DEFAULT_POLICIES))
    fixtures = w.proj / "tests" / "fixtures"
    for i in range(HIDDEN_PATHS + 20):
        d = fixtures / f"case{i}"
        d.mkdir(parents=True)
        (d / "server.pem").write_text("x")
        (d / "input.json").write_text("{}")
    (w.proj / "src").mkdir()
    (w.proj / "src" / "main.py").write_text("")
    p = w.plan()
    deny = p.settings["filesystem"]["denyRead"]
    assert str(fixtures) in deny and str(w.proj / "src") not in deny and str(w.proj) not in deny
    assert len(p.secrets) <= HIDDEN_PATHS
    assert any(str(fixtures) in n for n in p.notes)


def test_what_package_managers_installed_is_not_walked(tmp_path):
    w = World(tmp_path, load_compiled(DEFAULT_POLICIES))
    fixture = w.proj / "node_modules" / "tls-lib" / "test" / "server.pem"
    fixture.parent.mkdir(parents=True)
    fixture.write_text("x")
    venv = w.proj / ".venv"
    certifi = venv / "lib" / "python3.11" / "site-packages" / "certifi" / "cacert.pem"
    certifi.parent.mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    certifi.write_text("x")  # hidden, every HTTPS request of the virtualenv would fail
    (w.proj / "deploy.pem").write_text("x")
    p = w.plan()
    assert p.secrets == (str(w.proj / "deploy.pem"),)
    # the policy still refuses to read them by name
    assert w.read(fixture) == "deny" and w.read(certifi) == "deny"


# --- the files of a turn ---------------------------------------------------------------------


def test_the_turns_files_and_the_git_they_give(tmp_path, monkeypatch):
    import subprocess

    from leashd.agent.sandbox import TurnFiles

    w = World(tmp_path, load_compiled(DEFAULT_POLICIES))
    monkeypatch.setenv("HOME", str(w.home))
    (w.home / ".config" / "git").mkdir(parents=True)
    (w.home / ".config" / "git" / "ignore").write_text("*.swp")  # the user's own, no newline
    sub = w.proj / "web"
    sub.mkdir()
    subprocess.run(["git", "init", "-q", str(w.proj)], check=True)
    (sub / ".env").write_text("S=1")
    (sub / "odd [1].pem").write_text("x")
    p = w.plan()
    files = TurnFiles(p, str(sub), {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "a.b",
                                    "GIT_CONFIG_VALUE_0": "c"})  # fmt: skip
    try:
        base = os.path.dirname(os.path.dirname(files.settings_path))
        assert os.stat(base).st_mode & 0o777 == 0o700
        settings = json.loads(Path(files.settings_path).read_text())["sandbox"]
        # every turn's settings unreadable, every turn's files unwritable: a command of one
        # turn cannot change what the CLI of another turn beside it reads
        assert os.path.dirname(files.settings_path) in settings["filesystem"]["denyRead"]
        assert base in settings["filesystem"]["denyWrite"]
        assert not _within_any(files.excludes_path, settings["filesystem"]["denyRead"])
        # the environment's own git setting stays first; the excludes come after it
        assert files.env["GIT_CONFIG_COUNT"] == "2"
        assert files.env["GIT_CONFIG_KEY_1"] == "core.excludesFile"
        excludes = files.env["GIT_CONFIG_VALUE_1"]
        text = Path(excludes).read_text()
        assert text.startswith("*.swp\n")
        assert "/web/.bashrc" in text.splitlines() and "/web/.claude/" in text.splitlines()
        # git itself agrees: the hidden files and the mount points are ignored, and only them
        for name in (".env", "odd [1].pem", ".bashrc", ".claude/agents"):
            target = sub / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.touch()
        (sub / "app.py").write_text("")
        env = {**os.environ, "GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "core.excludesFile",
               "GIT_CONFIG_VALUE_0": excludes}  # fmt: skip
        shown = subprocess.run(["git", "status", "--porcelain", "-uall"], cwd=sub, env=env,
                               capture_output=True, text=True, check=True).stdout  # fmt: skip
        assert shown.split() == ["??", "web/app.py"], shown
    finally:
        files.remove()
    assert not os.path.exists(files.settings_path) and not os.path.exists(files.excludes_path)


def _within_any(path: str, roots: list[str]) -> bool:
    return any(path == r or path.startswith(r + "/") for r in roots)


def test_a_dead_processs_turn_files_are_removed_and_a_live_ones_kept(tmp_path, monkeypatch):
    import subprocess

    from leashd.agent.sandbox import TurnFiles

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    gone = subprocess.Popen(["true"])
    gone.wait()
    base = tmp_path / f"leashd-{os.getuid()}"
    for part in ("settings", "git"):
        (base / part).mkdir(parents=True, mode=0o700)
    base.chmod(0o700)
    stale = base / "settings" / f"{gone.pid}-abc.json"
    stale.write_text("{}")
    live = base / "settings" / f"{os.getppid()}-def.json"
    live.write_text("{}")
    w = World(tmp_path / "w", load_compiled(DEFAULT_POLICIES))
    files = TurnFiles(w.plan(), str(w.proj), {})
    try:
        assert not stale.exists() and live.exists()
        assert os.path.basename(files.settings_path).startswith(f"{os.getpid()}-")
    finally:
        files.remove()


def test_turn_files_refuse_a_directory_someone_else_prepared(tmp_path, monkeypatch):
    from leashd.agent.sandbox import TurnFiles

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    (tmp_path / f"leashd-{os.getuid()}").mkdir(mode=0o777)
    (tmp_path / f"leashd-{os.getuid()}").chmod(0o777)  # open to anyone: not ours alone
    w = World(tmp_path / "w", load_compiled(DEFAULT_POLICIES))
    with pytest.raises(SandboxUnavailable, match="0700"):
        TurnFiles(w.plan(), str(w.proj), {})


# --- what the review found ---------------------------------------------------------------------


def test_a_marker_file_does_not_make_the_scan_skip_a_secret(tmp_path):
    # the agent cannot have `sub/.env` unhidden at the next turn by putting a pyvenv.cfg beside it
    w = World(tmp_path, load_compiled(DEFAULT_POLICIES))
    sub = w.proj / "sub"
    sub.mkdir()
    (sub / ".env").write_text("S=1")
    (sub / "pyvenv.cfg").write_text("home = /usr/bin\n")
    assert str(sub / ".env") in w.plan().secrets


def test_the_places_the_policy_names_in_the_home_are_hidden(tmp_path):
    w = World(tmp_path, load_compiled(DEFAULT_POLICIES))
    for rel in (".config/stripe/config.toml", ".wrangler/config/default.toml",
                ".mozilla/firefox/abc.default/logins.json", ".histfile"):  # fmt: skip
        (w.home / rel).parent.mkdir(parents=True, exist_ok=True)
        (w.home / rel).write_text("secret")
    deny = w.plan().settings["filesystem"]["denyRead"]
    for rel in (".config/stripe", ".wrangler", ".mozilla/firefox/abc.default/logins.json",
                ".histfile"):  # fmt: skip
        assert str(w.home / rel) in deny, rel
    assert str(w.home / ".config") not in deny  # only what is named


def test_past_the_scan_limit_the_turn_is_refused_not_left_to_the_policy(tmp_path):
    w = World(tmp_path, load_compiled(DEFAULT_POLICIES))
    for i in range(30):
        (w.proj / f"f{i}.txt").write_text("")
    (w.proj / ".env").write_text("S=1")
    with pytest.raises(SandboxUnavailable, match="more than 10 entries"):
        w.plan(limit=10)


def test_policy_files_and_the_files_beside_leashds_own_are_kept(tmp_path, monkeypatch):
    from leashd.daemon.app import sandbox_config
    from leashd.daemon.config import Settings

    monkeypatch.setenv("LEASHD_HOME", str(tmp_path / "lh"))
    policy = tmp_path / "proj" / "team.yaml"
    policy.parent.mkdir()
    policy.write_text("rules: []\n")
    store = tmp_path / "elsewhere" / "db.sqlite"
    cfg = sandbox_config(Settings(storage_path=str(store), policy_files=[str(policy), "strict"]))
    assert cfg.protected == (str(policy),)  # a file: readable, never written
    for suffix in ("", "-wal", "-shm", "-journal"):
        assert f"{store}{suffix}" in cfg.private
    w = World(tmp_path / "w", load_compiled(DEFAULT_POLICIES))
    fs = w.plan(cfg).settings["filesystem"]
    assert str(policy) in fs["denyWrite"] and str(policy) not in fs["denyRead"]


@pytest.mark.parametrize(
    "host", ["", "evil.com@github.com", "a b", "github.com;evil.com", "github.com/x", "a\nb"]
)
def test_a_host_the_proxy_would_not_spell_is_malformed_and_refused(tmp_path, host):
    w = World(tmp_path, load_compiled(DEFAULT_POLICIES))
    d = w.gate.decide(w.session, "SandboxNetworkAccess", {"host": host})
    assert d.action == "deny" and "malformed" in d.reason, d


@pytest.mark.parametrize(
    ("host", "rule"),
    [("example.com", "sandbox-network"), ("EXAMPLE.com.", "sandbox-network"),
     ("localhost", "sandbox-network-local"), ("127.0.0.1", "sandbox-network-local"),
     ("::1", "sandbox-network-local"), ("[::1]", "sandbox-network-local"),
     ("192.168.1.10", "sandbox-network-local"),
     ("169.254.169.254", "metadata-and-admin-endpoints")],
)  # fmt: skip
def test_hosts_the_sandbox_asks_about_under_the_default_policy(tmp_path, host, rule):
    w = World(tmp_path, load_compiled(DEFAULT_POLICIES))
    d = w.gate.decide(w.session, "SandboxNetworkAccess", {"host": host})
    assert d.rule_name == rule, d
    assert d.action == ("require_approval" if rule == "sandbox-network" else "deny")
