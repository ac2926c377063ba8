"""Programs that run another command: where that command starts, or the script they run.

`unwrap` answers for one argv; the parser calls it again on what it returns, so wrappers
nest (`nice ionice shred`, `env bash -c '...'`). The wrapper's own unit is kept too, so a
policy can match `sudo` itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from leashd.shell import sed
from leashd.shell.model import DYNAMIC

# Replaced, after path extraction, by what a wrapper feeds in at run time: find's roots for
# `{}`, or the upstream's words for xargs.
ITEM = "\x00item\x00"


@dataclass(slots=True)
class Inner:
    """A command a wrapper runs: an argv, or a script to parse (bash -c, eval, ...)."""

    argv: tuple[str, ...] = ()
    script: str | None = None
    dynamic_script: bool = False  # the script text is computed at run time
    positional: tuple[str, ...] | None = None  # $0, $1... for `sh -c SCRIPT name args`
    cwd: str | None = None  # a directory the wrapper changes into (env -C, git -C)
    items: tuple[str, ...] | None = None  # what ITEM stands for (find roots)
    stdin_script: bool = False  # the script is whatever reaches stdin
    env: tuple[tuple[str, str | None], ...] = ()  # variables the wrapper sets for it


def _skip_options(
    argv: tuple[str, ...], start: int, with_value: frozenset[str], stop_at_plain: bool = True
) -> int:
    """Index of the first word after the options of a wrapper."""
    i = start
    while i < len(argv):
        tok = argv[i]
        if tok == "--":
            return i + 1
        if not tok.startswith("-") or tok == "-" or tok == DYNAMIC:
            return i
        name = tok.split("=", 1)[0]
        if name in with_value and "=" not in tok:
            i += 2
            continue
        # Short option with a value glued on (-n10, -oL) or a plain flag.
        i += 1
    return i


def _fs(*items: str) -> frozenset[str]:
    return frozenset(items)


# program -> options that take a separate value
_SIMPLE: dict[str, frozenset[str]] = {
    "nohup": _fs(),
    "nice": _fs("-n", "--adjustment"),
    "ionice": _fs("-c", "-n", "--class", "--classdata"),
    "stdbuf": _fs("-i", "-o", "-e", "--input", "--output", "--error"),
    "time": _fs("-f", "-o", "--format", "--output"),
    "builtin": _fs(),
    "exec": _fs("-a"),
    "setsid": _fs(),
    "unbuffer": _fs(),
    "caffeinate": _fs("-t", "-w"),
    "sudo": _fs(
        "-u",
        "-g",
        "-h",
        "-p",
        "-U",
        "-C",
        "-D",
        "-r",
        "-t",
        "-T",
        "--user",
        "--group",
        "--host",
        "--prompt",
        "--chdir",
        "--role",
        "--type",
        "--close-from",
        "--other-user",
    ),
    "doas": _fs("-u", "-C"),
    "pkexec": _fs("--user"),
    "run0": _fs(
        "-u",
        "--user",
        "-g",
        "--group",
        "--unit",
        "--property",
        "-D",
        "--chdir",
        "--setenv",
        "--nice",
        "--slice",
        "--description",
        "--machine",
    ),
    "systemd-run": _fs(
        "-u",
        "--unit",
        "-p",
        "--property",
        "--description",
        "--slice",
        "-E",
        "--setenv",
        "--uid",
        "--gid",
        "--nice",
        "-D",
        "--working-directory",
        "-M",
        "--machine",
        "--on-calendar",
        "--on-active",
        "--on-boot",
    ),
    "nsenter": _fs(
        "-t", "--target", "-S", "--setuid", "-G", "--setgid", "-w", "--wd", "-r", "--root"
    ),
    "unshare": _fs(
        "--map-user", "--map-group", "--setuid", "--setgid", "-R", "--root", "-w", "--wd"
    ),
    "strace": _fs("-o", "-e", "-p", "-s", "-u", "-E"),
    "ltrace": _fs("-o", "-e", "-p", "-s", "-u"),
    "valgrind": _fs(),
    "firejail": _fs(),
    "fakeroot": _fs(),
    "torsocks": _fs(),
    "proxychains": _fs("-f"),
    "proxychains4": _fs("-f"),
    "dbus-run-session": _fs(),
    "chronic": _fs(),
    "command": _fs(),
    "catchsegv": _fs(),
}
SHELLS = frozenset({"bash", "sh", "zsh", "dash", "ksh", "ash", "mksh", "fish", "busybox sh"})


def _shell(argv: tuple[str, ...]) -> Inner | None:
    i = 1
    script_next = False
    while i < len(argv):
        tok = argv[i]
        if tok == "--":
            i += 1
            break
        if tok in ("-o", "+o", "-O", "+O", "--rcfile", "--init-file"):
            i += 2
            continue
        if tok[:1] in "-+" and len(tok) > 1 and not tok.startswith("--"):
            letters = tok[1:]
            if tok[0] == "-" and "c" in letters:
                script_next = True
            if tok[0] == "-" and "s" in letters and not script_next:
                return Inner(stdin_script=True)
            # each o/O in a cluster takes the next word (`-euo pipefail`)
            i += 1 + sum(1 for ch in letters if ch in "oO")
            continue
        if tok.startswith("--"):
            i += 1
            continue
        break
    if script_next:
        if i >= len(argv):
            return None
        script = argv[i]
        rest = argv[i + 1 :]
        return Inner(
            script=script,
            dynamic_script=DYNAMIC in script,
            positional=rest if rest else None,
        )
    if i >= len(argv) or argv[i] in ("-", "/dev/stdin", "/proc/self/fd/0", "/dev/fd/0"):
        return Inner(stdin_script=True)
    return None  # `bash script.sh`: runs a file; the file is a path of the unit


def _env(argv: tuple[str, ...]) -> Inner | None:
    i, cwd = 1, None
    assigned: list[tuple[str, str | None]] = []
    while i < len(argv):
        tok = argv[i]
        if tok in ("-S", "--split-string") and i + 1 < len(argv):
            rest = " ".join(argv[i + 1 :])
            return Inner(script=rest, dynamic_script=DYNAMIC in rest, cwd=cwd)
        if tok.startswith("--split-string="):
            rest = " ".join((tok.partition("=")[2], *argv[i + 1 :]))
            return Inner(script=rest, dynamic_script=DYNAMIC in rest, cwd=cwd)
        if tok.startswith("-S") and len(tok) > 2:
            rest = " ".join((tok[2:], *argv[i + 1 :]))
            return Inner(script=rest, dynamic_script=DYNAMIC in rest, cwd=cwd)
        if tok in ("-u", "--unset") and i + 1 < len(argv):
            i += 2
            continue
        if tok in ("-C", "--chdir") and i + 1 < len(argv):
            cwd = argv[i + 1]
            i += 2
            continue
        if tok.startswith("-"):
            i += 1
            continue
        if "=" in tok and not tok.startswith("="):
            name, _, value = tok.partition("=")
            assigned.append((name, None if DYNAMIC in value else value))
            i += 1
            continue
        return Inner(argv=argv[i:], cwd=cwd, env=tuple(assigned))
    return None


def _timeout(argv: tuple[str, ...]) -> Inner | None:
    i = _skip_options(argv, 1, _fs("-s", "-k", "--signal", "--kill-after"))
    return Inner(argv=argv[i + 1 :]) if i + 1 < len(argv) else None


def _xargs(argv: tuple[str, ...]) -> Inner | None:
    # -e, -i and -l take a value only when attached (-l5); alone they are flags.
    with_value = _fs(
        "-d",
        "-E",
        "-I",
        "-L",
        "-n",
        "-P",
        "-s",
        "-a",
        "--delimiter",
        "--eof",
        "--replace",
        "--max-lines",
        "--max-args",
        "--max-procs",
        "--max-chars",
        "--arg-file",
        "--process-slot-var",
    )
    replace = None
    i = 1
    while i < len(argv):
        tok = argv[i]
        if tok == "--":
            i += 1
            break
        if not tok.startswith("-"):
            break
        if tok == "-I" and i + 1 < len(argv):
            replace = argv[i + 1]
        elif tok.startswith("-I") and len(tok) > 2:
            replace = tok[2:]
            i += 1
            continue
        elif tok in ("-i", "--replace") or tok.startswith("--replace="):
            replace = tok.partition("=")[2] or "{}"
        elif tok.startswith("-i") and len(tok) > 2:
            replace = tok[2:]
        if tok in with_value and "=" not in tok:
            i += 2
        else:
            i += 1
    inner = argv[i:] or ("echo",)
    if replace:
        return Inner(argv=tuple(t.replace(replace, ITEM) for t in inner))
    return Inner(argv=(*inner, ITEM))


def _find(argv: tuple[str, ...]) -> list[Inner]:
    from leashd.shell.commands import find_roots

    roots = tuple(find_roots(argv))
    out = []
    i = 0
    while i < len(argv):
        if argv[i] in ("-exec", "-execdir", "-ok", "-okdir"):
            j = i + 1
            while j < len(argv) and argv[j] not in (";", "+", "\\;"):
                j += 1
            cmd = tuple(t.replace("{}", ITEM) for t in argv[i + 1 : j])
            if cmd:
                out.append(Inner(argv=cmd, items=roots))
            i = j
        i += 1
    return out


def _su(argv: tuple[str, ...]) -> Inner | None:
    for i, tok in enumerate(argv[:-1]):
        if tok in ("-c", "--command", "--session-command"):
            return Inner(script=argv[i + 1], dynamic_script=DYNAMIC in argv[i + 1])
    return None


def _watch(argv: tuple[str, ...]) -> Inner | None:
    with_value = _fs("-n", "--interval", "-d", "--differences", "-q", "--equexit")
    i = _skip_options(argv, 1, with_value)
    rest = argv[i:]
    if not rest:
        return None
    if "-x" in argv[1:i] or "--exec" in argv[1:i]:
        return Inner(argv=rest)
    text = " ".join(rest)
    return Inner(script=text, dynamic_script=DYNAMIC in text)


def _script(argv: tuple[str, ...]) -> Inner | None:
    for i, tok in enumerate(argv[:-1]):
        if tok in ("-c", "--command") or (
            tok.startswith("-") and not tok.startswith("--") and tok.endswith("c")
        ):
            return Inner(script=argv[i + 1], dynamic_script=DYNAMIC in argv[i + 1])
    return None


def _parallel(argv: tuple[str, ...]) -> Inner | None:
    i = _skip_options(argv, 1, _fs("-j", "--jobs", "-S", "--sshlogin", "--delay", "-N"))
    rest = argv[i:]
    if ":::" in rest:
        k = rest.index(":::")
        cmd, items = rest[:k], tuple(t for t in rest[k + 1 :] if t not in (":::", "::::"))
        return Inner(argv=(*cmd, *items)) if cmd else None
    return Inner(argv=(*rest, ITEM)) if rest else None


def _sg(argv: tuple[str, ...]) -> Inner | None:
    if "-c" in argv:
        k = argv.index("-c")
        if k + 1 < len(argv):
            return Inner(script=argv[k + 1], dynamic_script=DYNAMIC in argv[k + 1])
    if len(argv) > 2:
        return Inner(script=" ".join(argv[2:]), dynamic_script=DYNAMIC in " ".join(argv[2:]))
    return None


def _flock(argv: tuple[str, ...]) -> Inner | None:
    i = _skip_options(argv, 1, _fs("-w", "--timeout", "-E", "--conflict-exit-code"))
    rest = argv[i + 1 :]
    if rest[:1] in (("-c",), ("--command",)) and len(rest) > 1:
        return Inner(script=rest[1], dynamic_script=DYNAMIC in rest[1])
    return Inner(argv=rest) if rest else None


def _chroot(argv: tuple[str, ...]) -> Inner | None:
    i = _skip_options(argv, 1, _fs("--userspec", "--groups"))
    return Inner(argv=argv[i + 1 :]) if i + 1 < len(argv) else None


def _runner(argv: tuple[str, ...]) -> Inner | None:
    """`uv run`, `poetry run`, `bundle exec`...: the dev-tool wrapper around a command."""
    if len(argv) < 3 or argv[1] not in ("run", "exec"):
        return None
    with_value = _fs(
        "--with",
        "--python",
        "-p",
        "--project",
        "--directory",
        "--group",
        "--extra",
        "--env-file",
        "--index",
        "--index-url",
        "--from",
        "-w",
        "--with-requirements",
        "--package",
    )
    i = _skip_options(argv, 2, with_value)
    return Inner(argv=argv[i:]) if i < len(argv) else None


def unwrap(argv: tuple[str, ...], program: str) -> list[Inner]:
    """The commands `argv` runs on behalf of its program; empty when it runs none."""
    if program in _SIMPLE:
        if program == "command" and any(t in ("-v", "-V") for t in argv[1:3]):
            return []
        if program == "sudo" and ("-e" in argv[1:] or "--edit" in argv[1:]):
            return []
        i = _skip_options(argv, 1, _SIMPLE[program])
        return [Inner(argv=argv[i:])] if i < len(argv) else []
    handler = _HANDLERS.get(program)
    if handler is None:
        return []
    result = handler(argv)
    if result is None:
        return []
    return result if isinstance(result, list) else [result]


def _sed(argv: tuple[str, ...]) -> list[Inner]:
    """GNU sed's `e COMMAND` runs COMMAND; the `e` flag of `s` runs the pattern space, a
    command made at run time."""
    out = []
    for script in sed.scripts(argv):
        for m in sed.EXEC_COMMAND.finditer(script):
            cmd = m.group(1).strip()
            out.append(Inner(script=cmd, dynamic_script=DYNAMIC in cmd))
        if sed.runs_commands(script):
            out.append(Inner(script="", dynamic_script=True))
    return out


_HANDLERS = {
    "sed": _sed,
    "gsed": _sed,
    "env": _env,
    "timeout": _timeout,
    "gtimeout": _timeout,
    "xargs": _xargs,
    "find": _find,
    "su": _su,
    "watch": _watch,
    "script": _script,
    "parallel": _parallel,
    "sg": _sg,
    "flock": _flock,
    "chroot": _chroot,
    "uv": _runner,
    "poetry": _runner,
    "pdm": _runner,
    "pipenv": _runner,
    "hatch": _runner,
    "bundle": _runner,
    "rye": _runner,
    "busybox": lambda argv: Inner(argv=argv[1:]) if len(argv) > 1 else None,
    "taskset": lambda argv: _chroot(argv),
    "chrt": lambda argv: _chroot(argv),
    **{sh: _shell for sh in SHELLS},
}


_RUNNERS = frozenset(p for p, h in _HANDLERS.items() if h is _runner)


def wrapper_argv() -> tuple[tuple[tuple[str, ...], ...], ...]:
    """Argv prefixes (policy syntax) that every wrapper unit matches: a unit that runs
    others is one of these programs (see parser.py), a runner only with `run`/`exec`.
    A superset, so an argv condition that meets none of them never holds for a wrapper."""
    anywhere = sorted({*_SIMPLE, *(set(_HANDLERS) - _RUNNERS), "source", ".", "trap", "eval"})
    return ((tuple(anywhere),), (tuple(sorted(_RUNNERS)), ("run", "exec")))


def git_commands(argv: tuple[str, ...]) -> list[Inner]:
    """Commands git itself runs: `rebase -x CMD`, `submodule foreach CMD`, `bisect run CMD`,
    `difftool|mergetool -x CMD` (each a shell script run for every commit, module, step)."""
    words = list(argv[1:])
    # Global options before the subcommand (-C dir, -c k=v, --git-dir=...).
    i = 0
    while i < len(words) and words[i].startswith("-"):
        i += 2 if words[i] in ("-C", "-c", "--git-dir", "--work-tree", "--namespace") else 1
    if i >= len(words):
        return []
    sub, rest = words[i], words[i + 1 :]
    out: list[Inner] = []

    def script(text: str) -> None:
        out.append(Inner(script=text, dynamic_script=DYNAMIC in text))

    if sub in ("rebase", "difftool", "mergetool"):
        flags = ("-x", "--exec") if sub == "rebase" else ("-x", "--extcmd")
        for k, tok in enumerate(rest):
            name, eq, value = tok.partition("=")
            if eq and name in flags[1:]:
                script(value)
            elif tok in flags and k + 1 < len(rest):
                script(rest[k + 1])
    elif sub == "submodule" and rest[:1] == ["foreach"]:
        cmd = [t for t in rest[1:] if t not in ("--recursive", "-q", "--quiet")]
        if cmd:
            script(" ".join(cmd))
    elif sub == "bisect" and rest[:1] == ["run"] and len(rest) > 1:
        out.append(Inner(argv=tuple(rest[1:])))
    return out
