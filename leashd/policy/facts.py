"""A tool call in its context -> units, the facts rules are matched against.

Paths are resolved against the session's working directory (tracking `cd` inside a command),
`~` is the session's home, and `realpath` follows symlinks where the path exists on this
machine (a symlink inside the project that points outside is outside). Where nothing
exists (simulation, `--home /home/dev` on another machine), resolution is lexical.
"""

from __future__ import annotations

import ipaddress
import os
import posixpath
import re
import socket
import tempfile
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal
from urllib.parse import urlsplit

from leashd import limits
from leashd.limits import TooLarge
from leashd.policy.resolver import Resolver
from leashd.policy.tool_inputs import input_problem
from leashd.shell import DYNAMIC, ParsedCommand, ShellUnit, parse_cached
from leashd.shell.parser import brace_expand

Where = Literal["inside", "outside", "temp", "system", "unknown"]

FILE_READ_TOOLS = {"Read": "file_path", "NotebookRead": "notebook_path", "LS": "path"}
FILE_WRITE_TOOLS = {
    "Write": "file_path",
    "Edit": "file_path",
    "MultiEdit": "file_path",
    "NotebookEdit": "notebook_path",
}
SEARCH_TOOLS = ("Glob", "Grep")
WEB_TOOLS = ("WebFetch", "WebSearch")
# What Claude Code's OS sandbox asks when a command it runs reaches a host outside the
# sandbox's allowed domains (docs/sandbox.md): a network call, decided by its host.
SANDBOX_NETWORK = "SandboxNetworkAccess"
# A host as the sandbox's proxy names it: a DNS name, an IPv4 address, or an IPv6 address
# (bracketed or not, with a zone); anything else (`a@b`, `a b`, `a;b`, a path) is malformed.
_HOST_SPELLING = re.compile(r"[A-Za-z0-9_.-]+|\[?[0-9A-Fa-f:.]+(%[A-Za-z0-9_.-]+)?\]?")
BUILTIN_TOOLS = frozenset(
    {
        "Bash",
        "BashOutput",
        "KillBash",
        "KillShell",
        "Read",
        "Write",
        "Edit",
        "MultiEdit",
        "NotebookEdit",
        "NotebookRead",
        "Glob",
        "Grep",
        "LS",
        "WebFetch",
        "WebSearch",
        SANDBOX_NETWORK,
        "Task",
        "TodoWrite",
        "TodoRead",
        "ExitPlanMode",
        "AskUserQuestion",
        "SlashCommand",
        "Skill",
        "ListMcpResourcesTool",
        "ReadMcpResourceTool",
        # Claude Code 2.1 (the CLI claude-agent-sdk bundles; tests/test_cli_tools.py checks
        # the list against the one it announces): no built-in policy allows these, so every
        # call of one is asked about (closed world), but a rule may name them
        "Agent",
        "CronCreate",
        "CronDelete",
        "CronList",
        "DesignSync",
        "EnterPlanMode",
        "EnterWorktree",
        "ExitWorktree",
        "ListAgents",
        "LSP",
        "Monitor",
        "RemoteTrigger",
        "ReportFindings",
        "ScheduleWakeup",
        "SendMessage",
        "TaskOutput",
        "TaskStop",
        "ToolSearch",
        "Workflow",
    }
)
_MCP = re.compile(r"^mcp__(.+?)__(.+)$")
# Input fields of MCP tools that name files, compared without case, `_` and `-`, at any depth
# of the input (MCP servers spell them every which way: filePath, relative_path, repo_path).
_MCP_PATH_KEYS = frozenset(
    "path file_path filepath file filename files paths source src destination dest dst "
    "directory dir dirname folder root target notebook_path relative_path relativepath "
    "repo_path repopath repository_path pathinproject project_path cwd working_directory "
    "workdir location output output_path input_path".replace("_", "").split()
)
# Fields whose text is a shell command the server runs.
_MCP_COMMAND_KEYS = frozenset(("command", "cmd", "script", "shellcommand", "commandline"))
_MCP_MEANINGFUL_KEYS = _MCP_PATH_KEYS | _MCP_COMMAND_KEYS  # inner fields that keep their own name
_MCP_WRITE_WORDS = re.compile(
    r"write|edit|create|delete|remove|move|rename|update|upload|put|set|patch|insert|mkdir"
    r"|append|replace|save|rm\b",
    re.I,
)
_URL_TOKEN = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]*)://[^\s'\"]+")
SYSTEM_DIRS = (
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/opt",
    "/etc/alternatives",
    "/usr/share",
    "/nix/store",
)


@dataclass(frozen=True, slots=True)
class Context:
    """Where a call runs. Directories are absolute; `approved_dirs` empty means [cwd]."""

    cwd: str
    home: str
    approved_dirs: tuple[str, ...] = ()
    mode: str = "default"
    temp_dirs: tuple[str, ...] = field(default=("/tmp", "/var/tmp"))

    @staticmethod
    def create(
        cwd: str | None = None,
        home: str | None = None,
        approved_dirs: tuple[str, ...] | list[str] = (),
        mode: str = "default",
    ) -> Context:
        home_dir = _realpath(os.path.expanduser(home or "~"))
        cwd_dir = _realpath(_expand(cwd or os.getcwd(), home_dir))
        approved = tuple(_realpath(_expand(d, home_dir)) for d in approved_dirs) or (cwd_dir,)
        temps = tuple(dict.fromkeys(("/tmp", "/var/tmp", _realpath(tempfile.gettempdir()))))
        return Context(cwd_dir, home_dir, approved, mode, temps)


UNKNOWN_PREFIX = "\x01"


@dataclass(frozen=True, slots=True)
class PathFact:
    path: str | None  # resolved; None when only known at run time
    access: Literal["read", "write"]
    where: Where
    source: str = ""
    raw: str | None = None
    tilde: str | None = None  # the same path as ~/..., when it is under the home directory
    # For a path only partly known (`"$DIR"/.env`, `~bob/.ssh/id_rsa`): its literal end, from
    # the first `/` after the unknown part. Globs that name a file or directory anywhere
    # (`.env`, `id_*`, `*.pem`) are matched against it; anchored ones (`~/.ssh`) cannot be.
    tail: str | None = None

    def shown(self) -> str:
        """The path for people: resolved, else as written with its unknown parts marked."""
        if self.path is not None:
            return self.path
        if self.raw is None:
            return "<run time>"
        return self.raw.replace(DYNAMIC, "<run time>")

    def subjects(self) -> tuple[str, ...]:
        """The spellings path globs are matched against: absolute, and ~/... under home; for
        a partly known path, its known end behind a character no anchored glob can match."""
        if self.path is None:
            return (UNKNOWN_PREFIX + self.tail,) if self.tail else ()
        return (self.path, self.tilde) if self.tilde else (self.path,)


@dataclass(frozen=True, slots=True)
class Unit:
    """What one rule sees: a simple command of a Bash call, or the whole of another call."""

    tool: str
    server: str | None = None
    program: str | None = None
    argv: tuple[str, ...] = ()
    dynamic: frozenset[int] = frozenset()
    text: str | None = None
    pipeline: str | None = None
    paths: tuple[PathFact, ...] = ()
    hosts: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    fed_by: frozenset[str] = frozenset()
    opaque: str | None = None
    wrapper: bool = False
    input: Mapping[str, Any] = field(default_factory=dict)
    shell: ShellUnit | None = None
    shadow: bool = False  # see ShellUnit.shadow: only a rule's decision counts

    def words_text(self) -> str | None:
        """The unit's words after quote removal, joined by spaces (`'DR''OP'` is `DROP`):
        deny rules' regexes are also tried on it, like on the whole pipeline."""
        if not self.argv:
            return None
        return " ".join(w.replace(DYNAMIC, "$?") for w in self.argv)

    def describe(self) -> str:
        if self.shell is not None or self.tool == "Bash":
            shown = " ".join("<dynamic>" if DYNAMIC in a else a for a in self.argv)
            return shown or (self.text or "")
        first = next((p.shown() for p in self.paths if p.raw or p.path), None)
        return f"{self.tool} {first}" if first else self.tool


@dataclass(frozen=True, slots=True)
class Call:
    tool: str
    input: Mapping[str, Any]
    units: tuple[Unit, ...]
    error: str | None = None  # malformed input: the call is denied
    parsed: ParsedCommand | None = None
    too_large: bool = False  # `error` says which analysis bound the call is past


class MalformedCall(ValueError):
    pass


# --- paths ---------------------------------------------------------------------------------


# One resolver for the process: what a path resolves to is a fact of the filesystem, and its
# memo is dropped whenever a directory it looked into changes.
RESOLVER = Resolver()


def _realpath(path: str) -> str:
    if path.startswith("/proc/self/"):
        return posixpath.normpath(path)
    return RESOLVER.realpath(path)


def _expand(raw: str, home: str) -> str:
    if raw == "~" or raw.startswith("~/"):
        return home + raw[1:]
    return raw


def resolve(raw: str | None, cwd_expr: str | None, ctx: Context) -> str | None:
    """An absolute, symlink-free path for `raw` as the unit will see it, or None if unknown."""
    if raw is None or DYNAMIC in raw or "\x00" in raw:
        return None
    if len(raw) > limits.PATH_CHARS:
        # No system call takes a path this long (ENAMETOOLONG), and resolving one costs
        # time that grows with its length: refused, never guessed.
        raise TooLarge(f"a path of {len(raw):,} characters (the limit is {limits.PATH_CHARS:,})")
    if raw.startswith("~") and not (raw == "~" or raw.startswith("~/")):
        user, _, rest = raw[1:].partition("/")
        if user != posixpath.basename(ctx.home):
            return None  # ~user: another user's home, whatever it is
        raw = "~/" + rest
    raw = _expand(raw, ctx.home)
    if not raw.startswith("/"):
        if cwd_expr is None:
            return None
        base = ctx.cwd if cwd_expr == "" else resolve(cwd_expr, "", ctx)
        if base is None:
            return None
        raw = posixpath.join(base, raw)
    # /proc/self/cwd is the agent's working directory, not the evaluating process's.
    for prefix, target in (
        ("/proc/self/cwd", ctx.cwd),
        ("/proc/thread-self/cwd", ctx.cwd),
        ("/proc/self/root", "/"),
    ):
        if raw == prefix or raw.startswith(prefix + "/"):
            raw = target.rstrip("/") + raw[len(prefix) :]
            break
    return _realpath(raw)


def where(path: str | None, ctx: Context) -> Where:
    if path is None:
        return "unknown"
    for d in ctx.approved_dirs:
        if path == d or path.startswith(d.rstrip("/") + "/"):
            return "inside"
    for d in ctx.temp_dirs:
        if path == d or path.startswith(d + "/"):
            return "temp"
    for d in SYSTEM_DIRS:
        if path == d or path.startswith(d + "/"):
            return "system"
    return "outside"


def path_fact(
    raw: str | None,
    access: Literal["read", "write"],
    cwd_expr: str | None,
    ctx: Context,
    source: str = "",
) -> PathFact:
    resolved = resolve(raw, cwd_expr, ctx)
    tilde = None
    if resolved is not None and (resolved == ctx.home or resolved.startswith(ctx.home + "/")):
        tilde = "~" + resolved[len(ctx.home) :]
    tail = None
    if resolved is None and raw:
        known = raw.rsplit(DYNAMIC, 1)[-1] if DYNAMIC in raw else raw[1:] if raw[0] == "~" else ""
        if "/" in known:
            tail = known[known.index("/") :]
    return PathFact(resolved, access, where(resolved, ctx), source, raw, tilde, tail)


# --- hosts ---------------------------------------------------------------------------------


def hosts_of(url: str) -> tuple[str, ...]:
    """The host of a URL, and host:port when a port is given (rules may name either)."""
    host = host_of(url)
    if host is None:
        return ()
    try:
        port = urlsplit(url).port
    except ValueError:
        port = None
    return (host, f"{host}:{port}") if port else (host,)


def host_of(url: str) -> str | None:
    """The host a URL reaches, canonical: numeric IPv4 spellings (0x7f000001, 2130706433)
    and IPv6 literals (an IPv4-mapped `::ffff:a9fe:a9fe` is the IPv4 address it maps)."""
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return None
    if not host:
        return None
    # URL parsers (WHATWG, IDNA) fold fullwidth and circled characters and ideographic full
    # stops: `１６９。２５４。１６９。２５４` reaches 169.254.169.254.
    if not host.isascii():
        host = unicodedata.normalize("NFKC", host).replace("\u3002", ".")
    host = host.rstrip(".").lower()
    if ":" in host:
        try:
            ip = ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            return host
        mapped = ip.ipv4_mapped or ip.sixtofour
        return str(mapped) if mapped is not None else str(ip)
    if re.fullmatch(r"[0-9a-fx.]+", host) and any(ch.isdigit() for ch in host):
        try:
            return socket.inet_ntoa(socket.inet_aton(host))
        except OSError:
            return host
    return host


# --- tool calls -> units ---------------------------------------------------------------------


def extract(tool: str, tool_input: Any, ctx: Context) -> Call:
    """Turn a tool call into units. Malformed input gives a Call with an error (denied)."""
    if not isinstance(tool, str) or not tool:
        return Call(str(tool), {}, (), error="the tool name is missing or not a string")
    if not isinstance(tool_input, Mapping):
        return Call(tool, {}, (), error=f"the input of {tool} is not an object")
    problem = input_problem(tool, tool_input)
    if problem is not None:
        return Call(tool, tool_input, (), error=problem)
    try:
        if tool == "Bash":
            return _bash(tool_input, ctx)
        unit = _other(tool, tool_input, ctx)
        if unit.server is not None:
            return Call(tool, tool_input, (unit, *mcp_shell_units(tool, tool_input, ctx)))
        return Call(tool, tool_input, (unit,))
    except MalformedCall as exc:
        return Call(tool, tool_input, (), error=str(exc))
    except TooLarge as exc:
        return Call(tool, tool_input, (), error=exc.reason, too_large=True)


def _bounded(value: str, what: str) -> str:
    if len(value) > limits.FIELD_CHARS:
        raise TooLarge(f"{what} of {len(value):,} characters (the limit is {limits.FIELD_CHARS:,})")
    return value


def _need_str(tool_input: Mapping[str, Any], key: str, tool: str) -> str:
    value = tool_input.get(key)
    if not isinstance(value, str):
        raise MalformedCall(f"{tool} needs a string {key!r}")
    return value


def _opt_str(tool_input: Mapping[str, Any], key: str, tool: str) -> str | None:
    value = tool_input.get(key)
    if value is not None and not isinstance(value, str):
        raise MalformedCall(f"{tool}: {key!r} must be a string")
    return value


def _bash(tool_input: Mapping[str, Any], ctx: Context) -> Call:
    command = _need_str(tool_input, "command", "Bash")
    if len(command) > limits.COMMAND_CHARS:  # refused before any work that grows with it
        raise TooLarge(
            f"a command of {len(command):,} characters (the limit is {limits.COMMAND_CHARS:,})"
        )
    parsed = parse_cached(command)
    if parsed.too_large is not None:
        raise TooLarge(parsed.too_large)
    read = sum(len(u.text) + len(u.pipeline) for u in parsed.units)
    if read > limits.UNIT_TEXT:  # each unit's text is read whole: nesting repeats it
        raise TooLarge(
            f"commands whose texts add up to {read:,} characters (the limit is "
            f"{limits.UNIT_TEXT:,}; a command substitution's text is also in every command "
            "around it)"
        )
    named = sum(len(u.paths) for u in parsed.units)
    if named > limits.PATHS:  # each is resolved on the filesystem: the costliest fact
        raise TooLarge(f"a command naming {named:,} paths (the limit is {limits.PATHS:,})")
    units = [shell_unit(u, ctx, tool_input) for u in parsed.units]
    if len(units) > 1:
        units = _through_made(units, ctx)
    if parsed.error:
        units.append(
            Unit(
                tool="Bash",
                program="",
                text=command,
                pipeline=command,
                opaque=f"the command does not parse ({parsed.error})",
                input=tool_input,
            )
        )
    if not units:
        units.append(
            Unit(tool="Bash", program="", text=command, pipeline=command, input=tool_input)
        )
    return Call("Bash", tool_input, tuple(units), parsed=parsed)


def shell_unit(u: ShellUnit, ctx: Context, tool_input: Mapping[str, Any]) -> Unit:
    paths = tuple(path_fact(p.raw, p.access, p.cwd, ctx, p.source) for p in u.paths)
    hosts = tuple(
        h
        for a in u.argv
        if "://" in a
        for m in _URL_TOKEN.finditer(a)
        for h in hosts_of(m.group(0))
    )
    file_urls = tuple(
        path_fact(a[len("file://") :], "read", u.cwd, ctx, "file:// URL")
        for a in u.argv
        if a.startswith("file://")
    )
    return Unit(
        tool="Bash",
        program=u.program,
        argv=u.argv,
        dynamic=u.dynamic,
        text=u.text,
        pipeline=u.pipeline,
        paths=paths + file_urls,
        hosts=hosts,
        env=tuple(name for name, _ in u.env),
        fed_by=u.upstream,
        opaque=u.opaque,
        wrapper=u.wrapper,
        input=tool_input,
        shell=u,
        shadow=u.shadow,
    )


# Programs whose writes leave regular files or plain directories, never a symlink: what they
# make can be walked through by later commands as the path says.
_MAKES_NO_LINKS = frozenset(
    ("mkdir", "touch", "rm", "rmdir", "chmod", "chown", "chgrp", "truncate", "shred", "sed",
     "tee", "echo", "printf", "cat")
)  # fmt: skip
_LINK_SOURCES = frozenset(("link", "option -t", "option --target-directory"))


def _through_made(units: list[Unit], ctx: Context) -> list[Unit]:
    """A path that leads through something another part of the same command makes, and that
    is not there yet (a clone, an extracted archive, a link made with `ln -s`, a recursive
    copy), cannot be resolved before the command runs: a symlink may appear on the way. Such a
    path is marked unknown, and the sandbox treats it as outside (`ln -s .. up && echo x >
    up/outside/f` writes outside the project). What exists now is resolved as it is: `git
    reset --hard && cat README` reads the project's README."""
    made: set[str] = set()
    own: set[tuple[int, int]] = set()  # the paths that are the making itself
    for i, u in enumerate(units):
        if u.program in _MAKES_NO_LINKS or (u.program == "cp" and not _cp_keeps_links(u.argv)):
            continue
        for k, p in enumerate(u.paths):
            if p.access != "write" or p.path is None or p.source == "redirect":
                continue
            if u.program == "ln" and p.source not in _LINK_SOURCES:
                continue  # ln writes its targets' contents, but makes only the link
            made.add(p.path)
            own.add((i, k))
    if not made or not os.path.isdir(ctx.cwd):
        # Where the session's directory is not on this machine (a simulated world: policy
        # tests, `--cwd /home/dev/project`), what exists cannot be told: paths stay lexical.
        return units
    out = []
    for i, u in enumerate(units):
        refs = u.shell.paths if u.shell is not None else ()
        facts = list(u.paths)
        changed = False
        for k, ref in enumerate(refs):
            fact = facts[k]
            if fact.where == "unknown" or (i, k) in own:
                continue
            if _through_new(ref.raw, ref.cwd, made, ctx):
                facts[k] = PathFact(None, fact.access, "unknown", fact.source,
                                    fact.raw, None, fact.tail or fact.path)  # fmt: skip
                changed = True
        out.append(replace(u, paths=tuple(facts)) if changed else u)
    return out


def _cp_keeps_links(argv: tuple[str, ...]) -> bool:
    """Whether this cp may copy a symlink as a symlink (-r, -a, -d, -P, -s, …); without those
    it copies what links point to, as regular files."""
    for a in argv[1:]:
        if a == "--":
            break
        if a.startswith("--"):
            if (
                a.split("=", 1)[0]
                in ("--recursive", "--archive", "--no-dereference", "--symbolic-link", "--preserve")
                or "links" in a
            ):
                return True
        elif a.startswith("-") and any(ch in a[1:] for ch in "rRadPs"):
            return True
    return False


def _under(path: str, made: set[str]) -> bool:
    return any(path == m or path.startswith(m.rstrip("/") + "/") for m in made)


def _through_new(raw: str | None, cwd_expr: str | None, made: set[str], ctx: Context) -> bool:
    """Whether resolving `raw`, step by step as the kernel walks it, reaches a place at or
    under a path in `made` that does not exist yet."""
    if raw is None or DYNAMIC in raw:
        return False
    raw = _expand(raw, ctx.home)
    if raw.startswith("/"):
        cur = "/"
    else:
        if cwd_expr is None:
            return False
        base = ctx.cwd if cwd_expr == "" else resolve(cwd_expr, "", ctx)
        if base is None:
            return False
        cur = base
    steps = [cur]
    for part in raw.split("/"):
        if part in ("", "."):
            continue
        cur = posixpath.dirname(cur) if part == ".." else posixpath.join(cur, part)
        steps.append(cur)
    return any(_under(step, made) and not _exists(step) for step in steps)


def _exists(path: str) -> bool:
    # resolved first so that the decision depends on the directories looked into: a memoised
    # decision is dropped when the entry appears or goes
    _realpath(path)
    return os.path.lexists(path)


def _glob_bases(pattern: str) -> list[str | None]:
    """The directories a Glob pattern searches from: the part before its first wildcard.
    A `..` after a wildcard (`*/../../x`) climbs from places only known when it runs: None."""
    bases: list[str | None] = []
    for alt in brace_expand(pattern):
        parts = alt.split("/")
        keep = []
        for k, part in enumerate(parts):
            if any(ch in part for ch in "*?[{"):
                if ".." in parts[k + 1 :]:
                    keep = None
                break
            keep.append(part)
        if keep is None:
            bases.append(None)
            continue
        base = "/".join(keep)
        if alt.startswith("/") and not base:
            base = "/"
        bases.append(base if keep else "")
    return bases


def _other(tool: str, tool_input: Mapping[str, Any], ctx: Context) -> Unit:
    paths: list[PathFact] = []
    hosts: list[str] = []
    server = None
    if tool in FILE_READ_TOOLS:
        key = FILE_READ_TOOLS[tool]
        paths.append(path_fact(_need_str(tool_input, key, tool), "read", "", ctx, key))
    elif tool in FILE_WRITE_TOOLS:
        key = FILE_WRITE_TOOLS[tool]
        paths.append(path_fact(_need_str(tool_input, key, tool), "write", "", ctx, key))
    elif tool in SEARCH_TOOLS:
        base = _opt_str(tool_input, "path", tool)
        paths.append(path_fact(base or ".", "read", "", ctx, "path"))
        if tool == "Glob":
            pattern = _bounded(_need_str(tool_input, "pattern", tool), "a Glob pattern")
            for b in _glob_bases(pattern):
                if b is None:  # climbs out from an unknown place: where it reads is unknown
                    paths.append(PathFact(None, "read", "unknown", "pattern base", pattern))
                elif b:
                    paths.append(path_fact(b, "read", base or "", ctx, "pattern base"))
        else:
            _need_str(tool_input, "pattern", tool)
            # Grep's `glob` picks the files whose content is printed (`.env*`, `**/*.pem`):
            # checked as the literal path it spells, like a shell word with wildcards.
            glob = _opt_str(tool_input, "glob", tool)
            if glob:
                _bounded(glob, "a Grep glob")
                paths.append(path_fact(glob, "read", base or "", ctx, "glob"))
    elif tool == "WebFetch":
        url = _need_str(tool_input, "url", tool)
        _url_facts(url, ctx, paths, hosts)
    elif tool == SANDBOX_NETWORK:
        host = _bounded(_need_str(tool_input, "host", tool), "a host")
        if not _HOST_SPELLING.fullmatch(host):
            raise MalformedCall(f"{tool}: {host!r} is not a host name or an address")
        port = tool_input.get("port")
        where = f"{host}:{port}" if isinstance(port, int) and not isinstance(port, bool) else host
        if ":" in host and not host.startswith("["):
            where = f"[{host}]" + where[len(host) :]  # an IPv6 address, as a URL spells it
        found = hosts_of(f"http://{where}/")
        if not found:
            raise MalformedCall(f"{tool}: {host!r} is not a host name or an address")
        hosts.extend(found)
    else:
        m = _MCP.match(tool)
        if m:
            server = m.group(1)
            access: Literal["read", "write"] = (
                "write" if _MCP_WRITE_WORDS.search(m.group(2)) else "read"
            )
            for key, value in _mcp_fields(tool_input):
                norm = _norm(key)
                if norm in ("url", "uri", "href") or value.lower().startswith("file:"):
                    _url_facts(value, ctx, paths, hosts)
                elif norm in _MCP_PATH_KEYS:
                    paths.append(path_fact(value, access, "", ctx, key))
                if len(paths) > limits.PATHS:
                    raise TooLarge(f"an MCP input naming more than {limits.PATHS:,} paths")
    return Unit(tool=tool, server=server, paths=tuple(paths), hosts=tuple(hosts), input=tool_input)


_MAX_DEPTH = 16  # deeper than any real tool input; beyond it the call is refused


def _fields(value: Any, key: str = "", depth: int = 0) -> Iterator[tuple[str, str]]:
    """(field name, text) for every non-empty string of an input, nested ones included; a
    string inside a structure keeps the name of the field that holds it (`{"path": {"value":
    "/x"}}` is a path)."""
    if depth > _MAX_DEPTH:
        # A field nested deeper than this could hold a path or a command nobody looked
        # at: the call is refused as malformed rather than judged without it.
        raise MalformedCall(f"the input nests deeper than {_MAX_DEPTH} levels")
    if isinstance(value, str):
        if value:
            yield key, value
    elif isinstance(value, Mapping):
        for k, v in value.items():
            name = str(k)
            if depth and _norm(name) not in _MCP_MEANINGFUL_KEYS:
                name = key  # an inner field takes the outer field's meaning
            yield from _fields(v, name, depth + 1)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _fields(v, key, depth + 1)


def _mcp_fields(tool_input: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """`_fields`, within the bounds of one command: an MCP input can hold many strings, each
    within its own bound, and together as much as any other call."""
    total = 0
    for key, value in _fields(tool_input):
        total += len(value)
        if total > limits.COMMAND_CHARS:
            raise TooLarge(f"an MCP input of more than {limits.COMMAND_CHARS:,} characters of text")
        yield key, value


def _norm(key: str) -> str:
    return key.lower().replace("_", "").replace("-", "")


def mcp_shell_units(tool: str, tool_input: Mapping[str, Any], ctx: Context) -> list[Unit]:
    """An MCP tool that runs a shell command (`{"command": "rm -rf ~"}`) is judged as Bash."""
    out: list[Unit] = []
    for key, value in _mcp_fields(tool_input):
        if _norm(key) in _MCP_COMMAND_KEYS:
            out.extend(_bash({"command": value}, ctx).units)
            if len(out) > limits.UNITS:
                raise TooLarge(f"an MCP input of more than {limits.UNITS:,} commands")
    return out


def _url_facts(url: str, ctx: Context, paths: list[PathFact], hosts: list[str]) -> None:
    _bounded(url, "a URL")
    if url.lower().startswith("file:"):
        raw = urlsplit(url).path or url[5:]
        paths.append(path_fact(raw, "read", "", ctx, "file:// URL"))
        return
    hosts.extend(hosts_of(url))
