"""The OS sandbox under every Bash call: Claude Code's own (bubblewrap and a network proxy on
Linux, Seatbelt on macOS), configured by leashd for each turn.

The policy decides what is asked; the kernel keeps the promises where the analysis cannot see
(code the agent wrote and runs through `pytest`, a path built at run time). For each turn:

- writable: the approved directories, the system temp directory and the caches a build needs
  (`CACHES`, plus `LEASHD_SANDBOX_WRITABLE`); nothing else of the home directory;
- never writable, even inside an approved directory: leashd's own files and a repository's
  `.git/hooks` and `.git/config` (either would run code outside the sandbox at the next
  `git commit` the user makes);
- unreadable: leashd's own files, the credential stores of the home directory
  (`HOME_SECRETS`), and every file in the approved directories that the active policies
  refuse to let the Read tool open, found by a walk when the turn starts (`scan`);
- network: only `DOMAINS` (plus `LEASHD_SANDBOX_ALLOWED_DOMAINS`); any other host the CLI
  asks about, through `can_use_tool("SandboxNetworkAccess")`, and the gate decides it.

The agent may not leave it: no unsandboxed retry, no excluded command the user did not list,
and `autoAllowBashIfSandboxed` off so that the policy still decides every call.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

# what the CLI gets on top of leashd's environment: in `leashd.claude`, which the approvers'
# model call uses too; still importable from here
from leashd.claude import agent_env as agent_env
from leashd.claude import rundir

Mode = Literal["enforce", "off"]
MODES: tuple[str, ...] = ("enforce", "off")

# Caches a build writes to, under the home directory, with the programs that use each: a
# cache is made writable when it exists, and made (empty) first when one of its programs is
# installed, since the sandbox can only open a directory that is there when the turn starts.
# Only caches of downloads: whatever is written here can be used later outside the sandbox, so
# stores of what runs (pre-commit's hook repositories, Poetry's virtualenvs, Gradle's wrapper
# distributions, Playwright's browsers) are left out, and so is pnpm's store, which is
# hard-linked into projects elsewhere. uv's cache is hard-linked into virtualenvs too: it is
# writable (a build needs it), and the agent's uv is told to copy (UV_LINK_MODE, `agent_env`),
# but links your own uv made before stay linked (docs/sandbox.md).
CACHES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (".cache/pip", ("pip", "pip3")),
    (".cache/uv", ("uv",)),
    (".npm", ("npm", "npx")),
    (".cache/yarn", ("yarn",)),
    (".cargo/registry", ("cargo",)),
    (".cargo/git", ("cargo",)),
    ("go/pkg/mod", ("go",)),
    (".cache/go-build", ("go",)),
    (".m2/repository", ("mvn",)),
    (".gradle/caches", ("gradle",)),
)

# Hosts a build reaches: package registries and git hosts. Any other host is asked about.
DOMAINS: tuple[str, ...] = (
    "pypi.org",
    "files.pythonhosted.org",
    "registry.npmjs.org",
    "registry.yarnpkg.com",
    "repo.yarnpkg.com",
    "crates.io",
    "index.crates.io",
    "static.crates.io",
    "proxy.golang.org",
    "sum.golang.org",
    "repo.maven.apache.org",
    "repo1.maven.org",
    "plugins.gradle.org",
    "services.gradle.org",
    "rubygems.org",
    "index.rubygems.org",
    "github.com",
    "codeload.github.com",
    "objects.githubusercontent.com",
    "gitlab.com",
    "bitbucket.org",
)

# Credential stores of the home directory, unreadable whatever the policies say.
HOME_SECRETS: tuple[str, ...] = (
    ".ssh",
    ".aws",
    ".azure",
    ".gnupg",
    ".kube",
    ".config/gcloud",
    ".config/gh",
    ".config/hub",
    ".config/glab-cli",
    ".config/op",
    ".config/doctl",
    ".config/rclone",
    ".config/containers/auth.json",
    ".docker/config.json",
    ".netrc",
    ".git-credentials",
    ".pypirc",
    ".npmrc",
    ".yarnrc.yml",
    ".pgpass",
    ".my.cnf",
    ".mylogin.cnf",
    ".s3cfg",
    ".boto",
    ".vault-token",
    ".terraform.d/credentials.tfrc.json",
    ".terraformrc",
    ".cargo/credentials",
    ".cargo/credentials.toml",
    ".gem/credentials",
    ".m2/settings.xml",
    ".gradle/gradle.properties",
    ".password-store",
    ".local/share/keyrings",
    ".oci",
    ".fly",
    ".claude/.credentials.json",
    ".claude/projects",  # the transcripts of every earlier session (what was read in them)
    ".codex/auth.json",
    ".cache/huggingface/token",
    ".huggingface/token",
    ".bash_history",
    ".zsh_history",
    ".python_history",
    ".psql_history",
    ".mysql_history",
    ".node_repl_history",
)

# Inside an approved directory that is a repository: what would run code outside the sandbox
# (a hook at the user's next commit, `core.hooksPath` or an alias in the config).
GIT_NEVER_WRITTEN = (".git/hooks", ".git/config")

# When an approved directory holds the home directory: the files that run code at the next
# login or shell start, or in every later git command, stay unwritable all the same.
HOME_NEVER_WRITTEN: tuple[str, ...] = (
    ".bashrc", ".bash_profile", ".bash_login", ".bash_logout", ".profile", ".zshrc",
    ".zshenv", ".zprofile", ".zlogin", ".zlogout", ".config/fish", ".gitconfig", ".config/git",
    ".ssh", ".config/systemd", ".config/autostart", ".config/environment.d",
    ".pam_environment", ".xprofile", ".xsessionrc", ".claude", ".claude.json", ".local/bin",
    "bin", ".cargo/bin", ".local/lib", ".vimrc", ".config/nvim", ".tmux.conf", ".ipython",
    ".config/Code", ".npmrc", ".pypirc", ".netrc",
)  # fmt: skip

# Paths hidden inside the approved directories, at most, each its own mount at every Bash
# call (bubblewrap's mounts cost time that grows with their square: 100 add 60 to 80 ms to a
# call, 200 about 110 ms, 1,000 about 1.8 s, and past about 3,000 bubblewrap refuses). Past
# it, the directories holding the most of them are hidden whole (`_collapse`).
HIDDEN_PATHS = 100

# Entries the scan of the approved directories looks at, at most, per turn (and a twentieth of
# that in names it asks the policy about). Past it the turn does not start: the agent can make
# files, and a bound it could reach must not leave what lies past it unhidden.
SCAN_ENTRIES = 1_000_000
_SKIP_DIRS = frozenset({".git/objects"})  # content-addressed: no credential by name there
# What package managers install: third-party files, whose test keys and CA bundles
# (certifi's `cacert.pem`, which pip and requests read) are no credentials of the user's (the
# policy still refuses to read them by name). Not walked: they hold most of a project's files,
# and hiding them would break every HTTPS request of a virtualenv.
DEPENDENCY_DIRS = frozenset({"node_modules", "site-packages", "dist-packages", ".tox", ".nox",
                             "bower_components", ".pnpm-store", ".yarn"})  # fmt: skip

INSTALL = (
    ("Debian/Ubuntu", "sudo apt-get install bubblewrap socat"),
    ("Fedora", "sudo dnf install bubblewrap socat"),
    ("Arch", "sudo pacman -S bubblewrap socat"),
)


class SandboxUnavailable(Exception):
    """The OS sandbox cannot run here; the message says what to install and how to opt out."""


@dataclass(frozen=True)
class SandboxConfig:
    """What the user configured (LEASHD_SANDBOX*), and leashd's own files to hide."""

    mode: Mode = "enforce"
    writable: tuple[str, ...] = ()  # added to CACHES
    allowed_domains: tuple[str, ...] = ()  # added to DOMAINS
    excluded_commands: tuple[str, ...] = ()  # run outside the sandbox: only what the user lists
    private: tuple[str, ...] = ()  # leashd's home, database, audit log, logs, key file
    protected: tuple[str, ...] = ()  # readable, never written: the policy files

    @property
    def enforced(self) -> bool:
        return self.mode == "enforce"


# --- can it run here ------------------------------------------------------------------------


def problems(platform: str | None = None, which: Callable[[str], str | None] = shutil.which
             ) -> list[str]:  # fmt: skip
    """What keeps the OS sandbox from running on this machine; empty when it can run."""
    platform = platform or sys.platform
    if platform == "darwin":
        return [] if which("sandbox-exec") else ["sandbox-exec (Seatbelt) is missing"]
    if not platform.startswith("linux"):
        return [f"the OS sandbox runs on Linux and macOS, not on {platform}"]
    out = [f"{tool} is not installed" for tool in ("bwrap", "socat") if which(tool) is None]
    if out:
        return out
    failed = _bwrap_fails(which("bwrap") or "bwrap")
    return [failed] if failed else []


def _bwrap_fails(bwrap: str) -> str | None:
    """bubblewrap can be installed and still refused user namespaces (a kernel setting, an
    AppArmor profile, a container without them): try it once."""
    try:
        done = subprocess.run(
            [bwrap, "--ro-bind", "/", "/", "--unshare-net", "--dev", "/dev",
             shutil.which("true") or "/bin/true"],
            capture_output=True, text=True, timeout=10,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap does not run: {exc}"
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines()
        return "bwrap cannot make a sandbox here: " + (
            said[-1] if said else f"exit {done.returncode}"
        )
    return None


def unavailable_text(found: list[str]) -> str:
    lines = ["the OS sandbox cannot run: " + "; ".join(found) + "."]
    if any("not installed" in f for f in found):
        lines.append("Install bubblewrap and socat:")
        lines += [f"  {distro}: {command}" for distro, command in INSTALL]
    elif any("user namespace" in f or "uid map" in f or "Operation not permitted" in f
             for f in found):  # fmt: skip
        lines.append(
            "bubblewrap needs unprivileged user namespaces: on Ubuntu 24.04 and later, "
            "`sudo sysctl kernel.apparmor_restrict_unprivileged_userns=0` (or an AppArmor "
            "profile for bwrap); in a container, run it with user namespaces allowed."
        )
    lines.append(
        "Or run without it, knowing that only the policy then guards what Bash runs: "
        "LEASHD_SANDBOX=off."
    )
    return "\n".join(lines)


def require(config: SandboxConfig) -> None:
    """Raise SandboxUnavailable when the sandbox is wanted and cannot run."""
    if not config.enforced:
        return
    found = problems()
    if found:
        raise SandboxUnavailable(unavailable_text(found))


# --- the settings of a turn -----------------------------------------------------------------


@dataclass
class Plan:
    """The CLI's `sandbox` settings for one turn, and what the scan found."""

    settings: dict[str, Any]
    secrets: tuple[str, ...] = ()  # files and directories inside approved ones, hidden
    scanned: int = 0
    complete: bool = True
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def plan(
    config: SandboxConfig,
    approved_dirs: Iterable[str],
    home: str,
    is_secret: Callable[[str], bool],
    secret_globs: Iterable[tuple[str, bool]],
    *,
    which: Callable[[str], str | None] = shutil.which,
    limit: int = SCAN_ENTRIES,
) -> Plan:
    """The sandbox for a turn. `is_secret(path)`: whether the policies refuse to let the
    Read tool open `path`; `secret_globs`: (glob, ignore_case) of the rules that can say so,
    a filter that keeps the walk from asking about every file."""
    dirs = [os.path.realpath(d) for d in approved_dirs]
    temp = os.path.realpath(tempfile.gettempdir())
    writable = [*dirs, temp, *_caches(home, which), *_expand(config.writable, home)]
    never_written = [*config.private]
    for d in dirs:
        never_written += [os.path.join(d, g) for g in GIT_NEVER_WRITTEN
                          if os.path.lexists(os.path.join(d, ".git"))]  # fmt: skip
    if any(_within(home, w) for w in writable):
        never_written += [os.path.join(home, rel) for rel in HOME_NEVER_WRITTEN]
    never_written += [*config.protected]
    globs = list(secret_globs)
    started = time.perf_counter()
    found = scan(dirs, home, is_secret, globs, limit)
    if not found.complete:
        # the agent can make files: a limit it could reach must not unhide what lies past it
        raise SandboxUnavailable(
            f"the approved directories hold more than {limit:,} entries (what package "
            "managers install not counted): too many for the sandbox to look through for "
            "credentials at each turn. Remove what is not needed (or approve a smaller "
            "directory), or run with LEASHD_SANDBOX=off, knowing that only the policy then "
            "guards them"
        )
    secrets, whole = _collapse(found.paths, dirs, HIDDEN_PATHS)
    hidden = [*config.private, *_home_secrets(home), *_named(globs, home), *secrets]
    settings: dict[str, Any] = {
        "enabled": True,
        # the CLI itself refuses to run a command unsandboxed (bwrap gone mid-run)
        "failIfUnavailable": True,
        "autoAllowBashIfSandboxed": False,
        "allowUnsandboxedCommands": False,
        "excludedCommands": list(config.excluded_commands),
        "filesystem": {
            "allowWrite": _unique(writable),
            "denyWrite": _unique(never_written),
            "denyRead": _unique(hidden),
        },
        "network": {"allowedDomains": _unique([*DOMAINS, *config.allowed_domains])},
    }
    out = Plan(settings, tuple(secrets), found.entries, found.complete,
               time.perf_counter() - started)  # fmt: skip
    if whole:
        shown = ", ".join(whole[:5]) + (f" and {len(whole) - 5} more" if len(whole) > 5 else "")
        out.notes.append(
            f"The approved directories hold {len(found.paths):,} credential files, too many to "
            f"hide one by one: the sandbox hides these directories whole this turn: {shown}."
        )
    return out


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _collapse(found: Iterable[str], roots: list[str], cap: int) -> tuple[list[str], list[str]]:
    """At most `cap` paths that hide everything in `found`. Within the cap, `found` itself;
    past it, first a directory all of whose entries are hidden stands for them (the same
    for reads, but nothing can be added to it), then, while there are still too many, the
    directory holding the most hidden paths is hidden whole (the deepest first among equals).
    An approved directory itself is never hidden: past that, SandboxUnavailable. Returns the
    paths, and the directories hidden whole that held more than secrets."""
    found = sorted(set(found))
    if len(found) <= cap:
        return found, []
    hidden = set(found)
    whole: list[str] = []
    changed = True
    while changed:  # exact: a directory of nothing but hidden entries
        changed = False
        by_parent: dict[str, int] = {}
        for p in hidden:
            by_parent[os.path.dirname(p)] = by_parent.get(os.path.dirname(p), 0) + 1
        for parent, n in by_parent.items():
            if parent in roots or not any(_within(parent, r) for r in roots):
                continue
            try:
                total = len(os.listdir(parent))
            except OSError:
                continue
            if total == n:
                hidden = {p for p in hidden if os.path.dirname(p) != parent} | {parent}
                changed = True
    level = 1  # merge by parent first; when no parent holds two, by grandparent, and so on
    while len(hidden) > cap:
        groups: dict[str, list[str]] = {}
        for p in hidden:
            up = _ancestor(p, level, roots)
            if up is not None:
                groups.setdefault(up, []).append(p)
        merges = sorted((kv for kv in groups.items() if len(kv[1]) >= 2),
                        key=lambda kv: (-len(kv[1]), -kv[0].count("/")))  # fmt: skip
        if not merges:
            if level >= _DEEPEST:
                raise SandboxUnavailable(
                    f"the approved directories hold {len(found):,} credential files in too "
                    f"many places for the sandbox to hide (at most {cap} paths, and never an "
                    "approved directory whole): move them out of the project, or run with "
                    "LEASHD_SANDBOX=off, knowing that only the policy then guards them"
                )
            level += 1
            continue
        for up, inside in merges:
            if len(hidden) <= cap:
                break
            hidden = (hidden - set(inside)) | {up}
            whole.append(up)
        level = 1
    # a path inside a directory hidden whole needs no mount of its own
    hidden = {p for p in hidden if not any(_within(p, d) and p != d for d in whole)}
    whole = [w for w in whole if w in hidden]
    return sorted(hidden), sorted(whole)


_DEEPEST = 64


def _ancestor(path: str, level: int, roots: list[str]) -> str | None:
    """The directory `level` steps up from `path`, if it lies strictly inside an approved
    directory (an approved directory is never hidden whole)."""
    up = path
    for _ in range(level):
        up = os.path.dirname(up)
    if up in roots or not any(_within(up, r) for r in roots):
        return None
    return up


def _caches(home: str, which: Callable[[str], str | None]) -> list[str]:
    out = []
    for rel, programs in CACHES:
        path = os.path.join(home, rel)
        if not os.path.isdir(path) and any(which(p) for p in programs):
            try:
                os.makedirs(path, mode=0o700, exist_ok=True)
            except OSError:
                continue
        if os.path.isdir(path):
            out.append(os.path.realpath(path))
    return out


def _home_secrets(home: str) -> list[str]:
    return [os.path.join(home, rel) for rel in HOME_SECRETS]


_NAMED_MATCHES = 256  # paths one wildcard glob of the policy's may expand to, at most


def _named(globs: Iterable[tuple[str, bool]], home: str) -> list[str]:
    """The places the policies name outright (`~/.config/stripe`, `/run/secrets`,
    `~/.mozilla/firefox/*/logins.json`) that exist: hidden wherever they are, inside the
    approved directories or not. Relative names (`.env`, `*.pem`) are the scan's."""
    import glob as globbing

    out: list[str] = []
    for pattern, _ignore_case in globs:
        if pattern.startswith("~/"):
            path = os.path.join(home, pattern[2:])
        elif pattern.startswith("/"):
            path = pattern
        else:
            continue
        path = path.rstrip("/")
        if "**" in path:
            continue  # a whole tree's worth: the policy guards it by name
        if any(c in path for c in "*?["):
            out += sorted(globbing.glob(path, include_hidden=True))[:_NAMED_MATCHES]
        elif os.path.lexists(path):
            out.append(path)
    return out


def _expand(paths: Iterable[str], home: str) -> list[str]:
    out = []
    for p in paths:
        p = p.strip()
        if p:
            p = home + p[1:] if p == "~" or p.startswith("~/") else p
            out.append(os.path.realpath(p))
    return out


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


# --- credentials inside the approved directories ------------------------------------------


@dataclass(frozen=True)
class Scan:
    paths: tuple[str, ...]
    entries: int
    complete: bool


def scan(
    roots: Iterable[str],
    home: str,
    is_secret: Callable[[str], bool],
    secret_globs: Iterable[tuple[str, bool]],
    limit: int = SCAN_ENTRIES,
) -> Scan:
    """Every file or directory under `roots` the policies keep the Read tool from, without
    following symbolic links out (a link is judged by its own name, and hidden as such). A
    directory found is hidden whole and not walked into. At most `limit` entries, and as many
    names the filter lets through to the policy; past either, `complete` is False."""
    from leashd.policy.matchers import MultiPattern
    from leashd.policy.patterns import glob_regex

    globs = list(dict.fromkeys(secret_globs))
    if not globs:
        return Scan((), 0, True)
    matcher = MultiPattern(((glob_regex(g), ic) for g, ic in globs), portable=True)
    home_prefix = home.rstrip("/") + "/"

    def candidate(path: str) -> bool:
        if matcher.hits(path):
            return True
        return path.startswith(home_prefix) and bool(matcher.hits("~/" + path[len(home_prefix) :]))

    found: list[str] = []
    entries = asked = 0
    stack = [os.path.realpath(r) for r in roots]
    seen_roots = set()
    while stack:
        top = stack.pop()
        if top in seen_roots:
            continue
        seen_roots.add(top)
        try:
            it = os.scandir(top)
        except OSError:
            continue  # what leashd cannot list, the agent (same user) cannot either
        with it:
            for entry in it:
                entries += 1
                if entries > limit:
                    return Scan(tuple(found), entries - 1, False)
                path = entry.path
                if candidate(path):
                    asked += 1
                    if asked > limit // 20:  # each costs a policy decision (tens of µs)
                        return Scan(tuple(found), entries, False)
                    if is_secret(path):
                        found.append(path)
                        continue
                try:
                    is_dir = entry.is_dir(follow_symlinks=False)
                except OSError:
                    continue
                if is_dir and not _skipped(path):
                    stack.append(path)
    return Scan(tuple(found), entries, True)


def _skipped(path: str) -> bool:
    """By name only, never by a marker file: the agent could put a `pyvenv.cfg` beside a
    secret to have it skipped at the next turn. A hidden file cannot be moved into a skipped
    directory (its mount makes the rename fail), nor read to be copied there."""
    if os.path.basename(path) in DEPENDENCY_DIRS:
        return True
    return any(path.endswith("/" + s) for s in _SKIP_DIRS)


def secret_globs(rules: Iterable[Any]) -> list[tuple[str, bool]]:
    """(glob, ignore_case) of every deny rule that refuses a path by its name alone (no
    command, program or tool condition beyond the file tools): the candidates for hiding.
    Whether a candidate is hidden is the whole policy's answer (its exceptions included)."""
    out: list[tuple[str, bool]] = []
    for r in rules:
        paths = getattr(r, "paths", None)
        if r.action != "deny" or paths is None or not paths.globs:
            continue
        if paths.access == "write" or paths.where not in ("anywhere", "inside"):
            continue
        narrowing = (r.command_patterns, r.argv, r.flags, r.hosts, r.mcp_servers, r.input,
                     r.modes, r.env, r.fed_by, r.opaque, r.wrapper)  # fmt: skip
        if any(c is not None for c in narrowing):
            continue
        if r.tools is not None and "Read" not in r.tools:
            continue
        out += [(g, paths.ignore_case) for g in paths.globs]
    return out


# --- the files of a turn --------------------------------------------------------------------

# What the CLI mounts over in the working directory when they do not exist, so that no command
# makes them (shell startup files, an editor's, git's or an MCP config, Claude Code's own
# `.claude/` settings, agents, hooks and skills: each runs code later). Inside the sandbox
# they show as character devices, and `git add -A` refuses them ("can only add regular
# files"): the turn's git ignores them, as untracked files only (what is tracked stays
# tracked). The list is Claude Code's and may grow with it: tests/test_e2e_sandbox.py finds
# out (a fresh repository must show nothing untracked to `git status` inside the sandbox).
CLI_MOUNT_POINTS: tuple[str, ...] = (
    ".bash_profile", ".bash_login", ".bashrc", ".profile", ".zprofile", ".zshrc", ".zshenv",
    ".zlogin", ".gitconfig", ".gitmodules", ".ripgreprc", ".mcp.json", ".idea", ".vscode",
    ".claude/",
)  # fmt: skip
_EXCLUDES_READ = 1 << 20  # bytes of the user's own global gitignore carried over, at most


class TurnFiles:
    """A turn's files: the settings the CLI reads when it starts, and the git excludes of the
    turn (the user's global ones plus `CLI_MOUNT_POINTS` and the hidden files), given to git
    through `env`. Every turn's files live under one directory of this user's (`_base`),
    which every sandbox keeps commands from writing, and whose settings part every sandbox
    keeps them from reading: no command, of this turn or of another running beside it, can
    read or change what a CLI reads. Removed when the turn ends."""

    def __init__(self, plan: Plan, cwd: str, environ: Mapping[str, str]) -> None:
        base = _base()
        _remove_stale(base)
        name = f"{os.getpid()}-{secrets.token_hex(8)}"
        self.settings_path = os.path.join(base, "settings", f"{name}.json")
        self.excludes_path = os.path.join(base, "git", name)
        try:
            fs = plan.settings["filesystem"]
            fs["denyRead"] = [*fs["denyRead"], os.path.join(base, "settings")]
            fs["denyWrite"] = [*fs["denyWrite"], base]
            _write(self.settings_path, json.dumps({"sandbox": plan.settings}))
            _write(self.excludes_path, _git_excludes(cwd, environ, plan.secrets))
            self.env = _git_config_env(environ, "core.excludesFile", self.excludes_path)
        except BaseException:
            self.remove()
            raise

    def remove(self) -> None:
        for path in (self.settings_path, self.excludes_path):
            with contextlib.suppress(OSError):
                os.unlink(path)


def _base() -> str:
    """This user's directory of turn files in the system temp directory (made 0700, and
    refused when it is anyone else's or a link: another user could have made it first)."""
    try:
        for part in ("settings", "git"):
            rundir.private_dir(part)
    except OSError as exc:
        raise SandboxUnavailable(
            f"{exc}: leashd keeps the sandbox settings of its turns there; remove it and try again"
        ) from None
    return rundir.private_dir()


def _remove_stale(base: str) -> None:
    """The files of turns whose process is gone (a daemon killed mid-turn)."""
    for part in ("settings", "git"):
        rundir.remove_stale(os.path.join(base, part))


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


def _git_excludes(cwd: str, environ: Mapping[str, str], hidden: Iterable[str] = ()) -> str:
    """The user's global gitignore, then the CLI's mount points, anchored where they appear
    (the working directory, relative to its repository's top), then the files the sandbox
    hides in that repository (mounted over the same way: and a `git add -A` must not take
    an untracked `.env` in any case)."""
    own = ""
    path = _global_excludes(environ)
    if path:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                own = f.read(_EXCLUDES_READ)
        except OSError:
            own = ""
    top = cwd
    while top != "/" and not os.path.lexists(os.path.join(top, ".git")):
        top = os.path.dirname(top)
    prefix = "" if top == "/" else os.path.relpath(cwd, top)
    prefix = "" if prefix == "." else prefix + "/"
    ours = [f"/{prefix}{name}" for name in CLI_MOUNT_POINTS]
    if top != "/":
        ours += [f"/{_glob_escape(os.path.relpath(p, top))}" for p in hidden if _within(p, top)]
    ours_text = "\n".join(ours)
    sep = "" if not own or own.endswith("\n") else "\n"
    return f"{own}{sep}# leashd: the OS sandbox's mount points\n{ours_text}\n"


def _glob_escape(path: str) -> str:
    """A path as a gitignore pattern that matches it alone."""
    out = "".join("\\" + c if c in "*?[]!#\\ " else c for c in path)
    return out


def _global_excludes(environ: Mapping[str, str]) -> str | None:
    """Where git reads the user's global excludes: core.excludesFile, else XDG's default."""
    try:
        done = subprocess.run(["git", "config", "--global", "--get", "core.excludesFile"],
                              capture_output=True, text=True, timeout=5)  # fmt: skip
        if done.returncode == 0 and done.stdout.strip():
            return os.path.expanduser(done.stdout.strip())
    except (OSError, subprocess.TimeoutExpired):
        pass
    xdg = environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(xdg, "git", "ignore")


def _git_config_env(environ: Mapping[str, str], key: str, value: str) -> dict[str, str]:
    """One more git setting through the environment (GIT_CONFIG_COUNT, git 2.31), after any
    the environment already gives that way."""
    try:
        n = int(environ.get("GIT_CONFIG_COUNT", "0") or "0")
    except ValueError:
        n = 0
    return {"GIT_CONFIG_COUNT": str(n + 1), f"GIT_CONFIG_KEY_{n}": key,
            f"GIT_CONFIG_VALUE_{n}": value}  # fmt: skip
