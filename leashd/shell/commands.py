"""Which arguments of a program are paths, and whether it reads or writes them.

The shell parser knows the words; this table knows what the words mean to the program. A path
missed here is a path the sandbox cannot check, so unknown programs fall back to treating every
path-like word as a path.
"""

from __future__ import annotations

import functools
import posixpath
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from leashd.shell import sed
from leashd.shell.model import DYNAMIC, Access, PathRef

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_FILE_LIKE = re.compile(r"^[^=:@,\s]*\.[A-Za-z][A-Za-z0-9_-]{0,9}$")
_KEY_LIKE = re.compile(r"^(id_[a-z0-9]+|credentials|authorized_keys|known_hosts)$", re.I)


@functools.lru_cache(maxsize=8192)  # words repeat (a wrapper's argv is read at each level)
def is_pathlike(word: str) -> bool:
    """A word a program is likely to open as a file, for programs leashd has no model of."""
    if not word or word.startswith("-") or _URL.match(word):
        return False
    if word[0] in "/~." or "/" in word:
        return True
    return bool(_FILE_LIKE.match(word) or _KEY_LIKE.match(word))


@dataclass(frozen=True, slots=True)
class Spec:
    """How a program's arguments map to paths.

    operands: the access of its operands (None: operands are not paths).
    skip: leading operands that are data (a grep pattern, a sed script), unless one of
        `skip_opts` supplied that data instead.
    last: access of the last operand when it differs (cp/ln/install destinations).
    value_opts / read_opts / write_opts: options that take a value; of those, the ones
        whose value is a path read or written. Any other option given a path-like value
        in the same word (`--files0-from=F`, `--magic-file=F`, an abbreviation such as
        grep's `--exclude-f=F`) is taken as reading it, for programs whose operands are
        read: an option the table does not know may well be one that reads a file.
    pair_opts: options followed by two words, the second the value (jq's `--rawfile NAME
        FILE`); in `read_opts` too when that value is a path read.
    write_flags: flags that turn every path operand into a write (sed -i, perl -i).
    pathlike_only: only path-like operands are paths (programs whose operands are mostly
        names, packages or targets).
    """

    operands: Access | None = "read"
    skip: int = 0
    skip_opts: frozenset[str] = frozenset()
    last: Access | None = None
    value_opts: frozenset[str] = frozenset()
    read_opts: frozenset[str] = frozenset()
    write_opts: frozenset[str] = frozenset()
    write_flags: frozenset[str] = frozenset()
    pathlike_only: bool = False
    pair_opts: frozenset[str] = frozenset()


def _s(*items: str) -> frozenset[str]:
    return frozenset(items)


def _spec(names: Iterable[str], spec: Spec, table: dict[str, Spec]) -> None:
    for n in names:
        table[n] = spec


SPECS: dict[str, Spec] = {}

_spec(
    [
        "cat",
        "tac",
        "nl",
        "head",
        "tail",
        "less",
        "more",
        "wc",
        "file",
        "stat",
        "md5sum",
        "sha1sum",
        "sha256sum",
        "sha512sum",
        "shasum",
        "b2sum",
        "cksum",
        "sum",
        "xxd",
        "hexdump",
        "od",
        "strings",
        "base64",
        "base32",
        "rev",
        "fold",
        "fmt",
        "expand",
        "unexpand",
        "diff",
        "cmp",
        "comm",
        "ls",
        "tree",
        "du",
        "readlink",
        "realpath",
        "shellcheck",
        "bat",
        "dircolors",
        "look",
        "iconv",
        "column",
        "paste",
        "join",
        "tsort",
        "ldd",
        "objdump",
        "nm",
        "readelf",
        "source",
        ".",
    ],
    # No option of these is taken to consume the next word: a flag mistaken for one with a
    # value would hide the file after it (`cat -n ~/.ssh/id_rsa`). A value read as one more
    # operand (`head -n 5 f` reads "5" too) can only make a decision stricter.
    Spec(),
    SPECS,
)
_spec(["cut", "tr", "uniq", "sort", "split", "csplit"], Spec(), SPECS)
SPECS["cut"] = Spec(value_opts=_s("-d", "-f", "-c", "-b", "--delimiter", "--fields"))
SPECS["tr"] = Spec(operands=None)
SPECS["sort"] = Spec(
    value_opts=_s("-k", "-t", "-S", "--key", "--field-separator", "--buffer-size", "--parallel"),
    # -T DIR: sort writes its temporary files there
    write_opts=_s("-o", "--output", "-T", "--temporary-directory"),
)
SPECS["uniq"] = Spec(value_opts=_s("-f", "-s", "-w"))  # second operand is an output: see _uniq
# Options with a value that grep and the newer searchers share; each adds its own. A flag
# taken for one with a value would hide the next word, so each table is the program's own.
_SEARCH_VALUES = _s(
    "-e",
    "-A",
    "-B",
    "-C",
    "-m",
    "--regexp",
    "--max-count",
    "--context",
    "--after-context",
    "--before-context",
    "--include",
    "--exclude",
    "--exclude-dir",
    "--color",
    "--label",
)
_SEARCH_SKIP = _s("-e", "-f", "--regexp", "--file")
_spec(
    ["rg", "ag", "ack"],
    Spec(
        skip=1,
        skip_opts=_SEARCH_SKIP,
        value_opts=_SEARCH_VALUES
        | _s(
            "-g",
            "-t",
            "-T",
            "-d",
            "-M",
            "-j",
            "--glob",
            "--iglob",
            "--type",
            "--type-not",
            "--colors",
            "--max-columns",
            "--encoding",
            "--threads",
            "--sort",
            "--sortr",
            "--max-depth",
            "--max-filesize",
            "--context-separator",
        ),
        read_opts=_s("-f", "--file", "--ignore-file"),
    ),
    SPECS,
)
# grep: -T is a flag here (rg's --type-not), and -g, -t, -M, -j are not options at all.
SPECS["grep"] = Spec(
    skip=1,
    skip_opts=_SEARCH_SKIP,
    value_opts=_SEARCH_VALUES
    | _s(
        "-d", "-D", "--colour", "--group-separator", "--binary-files", "--devices", "--directories"
    ),
    read_opts=_s("-f", "--file", "--exclude-from"),
)
for _name in ("egrep", "fgrep", "zgrep"):
    SPECS[_name] = SPECS["grep"]
SPECS["jq"] = Spec(
    skip=1,
    skip_opts=_s("-f", "--from-file"),
    value_opts=_s("--indent", "-L"),
    read_opts=_s("-f", "--from-file", "--slurpfile", "--rawfile"),
    pair_opts=_s("--arg", "--argjson", "--slurpfile", "--rawfile"),
)
SPECS["yq"] = SPECS["jq"]
SPECS["awk"] = Spec(
    skip=1,
    skip_opts=_s("-f", "--file"),
    value_opts=_s("-F", "-v", "--assign"),
    read_opts=_s("-f", "--file"),
)
for _awk in ("gawk", "mawk", "nawk"):
    SPECS[_awk] = SPECS["awk"]
SPECS["sed"] = Spec(
    skip=1,
    skip_opts=_s("-e", "-f", "--expression", "--file"),
    value_opts=_s("-e", "--expression", "-l", "--line-length"),
    read_opts=_s("-f", "--file"),
    write_flags=_s("-i", "--in-place"),
)
SPECS["perl"] = Spec(
    operands="read",
    skip=0,
    value_opts=_s("-e", "-E", "-M", "-I", "-m", "-x", "-l", "-0"),
    write_flags=_s("-i"),
    pathlike_only=True,
)
_spec(
    [
        "rm",
        "rmdir",
        "unlink",
        "shred",
        "truncate",
        "touch",
        "mkdir",
        "chmod",
        "chown",
        "chgrp",
        "chattr",
        "setfacl",
        "mkfifo",
        "mknod",
        "wipefs",
        "mkfs",
        "mkswap",
        "fallocate",
    ],
    Spec(
        operands="write",
        value_opts=_s(
            "-m",
            "--mode",
            "-s",
            "--size",
            "-n",
            "--iterations",
            "-r",
            "--reference",
            "-d",
            "--date",
            "-t",
            "-o",
            "--offset",
            "-l",
            "--length",
            "-u",
        ),
    ),
    SPECS,
)
# chmod/chown take a mode/owner first; truncate's -s takes a value but -r is --reference.
SPECS["chmod"] = Spec(
    operands="write", skip=1, skip_opts=_s("--reference"), value_opts=_s("--reference")
)
SPECS["chown"] = Spec(
    operands="write", skip=1, skip_opts=_s("--reference"), value_opts=_s("--reference")
)
SPECS["chgrp"] = SPECS["chown"]
SPECS["rm"] = Spec(operands="write")
SPECS["shred"] = Spec(operands="write", value_opts=_s("-n", "--iterations", "-s", "--size"))
SPECS["truncate"] = Spec(
    operands="write", value_opts=_s("-s", "--size"), read_opts=_s("-r", "--reference")
)
SPECS["touch"] = Spec(
    operands="write", value_opts=_s("-d", "--date", "-t"), read_opts=_s("-r", "--reference")
)
SPECS["mkdir"] = Spec(operands="write", value_opts=_s("-m", "--mode"))
# Copy-like commands: sources are read, the last operand (or -t DIR) is written. Each has its
# own options: a flag taken for an option with a value would swallow the destination.
_COPY_TARGET = _s("-t", "--target-directory")
SPECS["cp"] = Spec(
    operands="read", last="write", value_opts=_s("-S", "--suffix"), write_opts=_COPY_TARGET
)
# ln: a link, hard or symbolic, lets whatever later writes through it change its target, so
# every target is written, as is the link itself (the last operand or -t DIR).
SPECS["ln"] = Spec(
    operands="write", last="write", value_opts=_s("-S", "--suffix"), write_opts=_COPY_TARGET
)
SPECS["install"] = Spec(
    operands="read",
    last="write",
    value_opts=_s("-m", "--mode", "-o", "--owner", "-g", "--group", "-S", "--suffix"),
    write_opts=_COPY_TARGET,
)
SPECS["rsync"] = Spec(
    operands="read",
    last="write",
    value_opts=_s(
        "-e",
        "--rsh",
        "--exclude",
        "--include",
        "-f",
        "--filter",
        "--chmod",
        "--port",
        "-B",
        "--block-size",
        "--partial-dir",
        "--backup-dir",
        "--link-dest",
        "--compare-dest",
        "--copy-dest",
        "-T",
        "--temp-dir",
        "--rsync-path",
        "--max-size",
        "--min-size",
        "--timeout",
        "--bwlimit",
        "--suffix",
        "--usermap",
        "--groupmap",
        "--chown",
    ),
    read_opts=_s("--exclude-from", "--include-from", "--files-from", "--password-file"),
    write_opts=_s("--log-file"),
)
SPECS["scp"] = Spec(
    operands="read",
    last="write",
    value_opts=_s("-P", "-o", "-l", "-c", "-J", "-S", "-X"),
    read_opts=_s("-i", "-F"),
)
SPECS["mv"] = Spec(
    operands="write", write_opts=_s("-t", "--target-directory"), value_opts=_s("-S", "--suffix")
)
SPECS["tee"] = Spec(operands="write")
SPECS["sponge"] = Spec(operands="write")
SPECS["patch"] = Spec(
    operands="write",
    read_opts=_s("-i", "--input"),
    write_opts=_s("-o", "--output"),
    value_opts=_s("-p", "-F", "--fuzz"),
)
SPECS["unzip"] = Spec(operands="read", value_opts=_s("-x", "-P"), write_opts=_s("-d"))
SPECS["zip"] = Spec(operands="read", last=None, value_opts=_s("-x", "-i", "-P"))
_spec(
    ["gzip", "gunzip", "bzip2", "bunzip2", "xz", "unxz", "zstd", "unzstd"],
    Spec(operands="write", write_opts=_s("-o", "--output")),
    SPECS,
)
_spec(["zcat", "bzcat", "xzcat", "zstdcat"], Spec(), SPECS)
SPECS["find"] = Spec(operands="read")  # roots and actions: see _find
# Entering a directory reads it: `cd ~ && ls` lists the home directory.
SPECS["cd"] = Spec(operands="read")
SPECS["xargs"] = Spec(operands=None, read_opts=_s("-a", "--arg-file"))
SPECS["time"] = Spec(operands=None, write_opts=_s("-o", "--output"))
SPECS["pushd"] = Spec(operands="read")
# Wrappers that also write files of their own: the trace, the typescript.
SPECS["strace"] = Spec(operands=None, write_opts=_s("-o", "--output"))
SPECS["ltrace"] = SPECS["strace"]
SPECS["script"] = Spec(
    operands="write",
    value_opts=_s("-c", "--command", "-E", "--echo", "-m", "--logging-format"),
    write_opts=_s(
        "-O", "--log-out", "-I", "--log-in", "-B", "--log-io", "-T", "--log-timing", "-t"
    ),
)
SPECS["xxd"] = Spec(last="write")  # xxd [-r] [in [out]]: the second operand is written
_spec(
    [
        "echo",
        "printf",
        "true",
        "false",
        "test",
        "[",
        "sleep",
        "date",
        "uname",
        "whoami",
        "id",
        "hostname",
        "pwd",
        "which",
        "type",
        "command",
        "hash",
        "seq",
        "yes",
        "expr",
        "basename",
        "dirname",
        "env",
        "printenv",
        "export",
        "set",
        "unset",
        "alias",
        "trap",
        "exit",
        "return",
        "shift",
        "wait",
        "jobs",
        "kill",
        "pkill",
        "pgrep",
        "killall",
        "ps",
        "top",
        "uptime",
        "free",
        "nproc",
        "lsof",
        "sysctl",
        "getconf",
        "locale",
        "tput",
        "stty",
        "clear",
        "history",
        "read",
        "declare",
        "local",
        "readonly",
        "shopt",
        "ulimit",
        "umask",
        "times",
        "caller",
        "let",
    ],
    Spec(operands=None),
    SPECS,
)
# date -f FILE reads a date per line and names a line it cannot read in its error: the file
# is read (and shown); -r FILE reads its time
SPECS["date"] = Spec(operands=None, read_opts=_s("-f", "--file", "-r", "--reference"))
_spec(
    [
        "curl",
        "wget",
        "http",
        "https",
        "xh",
        "httpie",
        "nc",
        "ncat",
        "netcat",
        "socat",
        "telnet",
        "ssh",
        "ping",
        "dig",
        "nslookup",
        "host",
        "traceroute",
        "ftp",
        "sftp",
    ],
    Spec(
        operands=None,
        pathlike_only=True,
        write_opts=_s(
            "-o",
            "--output",
            "-O",
            "--output-document",
            "-P",
            "--directory-prefix",
            "-c",
            "--cookie-jar",
            "-D",
            "--dump-header",
        ),
        read_opts=_s(
            "-T",
            "--upload-file",
            "-K",
            "--config",
            "-b",
            "--cookie",
            "-i",
            "-F",
            "--cacert",
            "--cert",
            "--key",
            "-E",
        ),
        value_opts=_s(
            "-H",
            "--header",
            "-X",
            "--request",
            "-d",
            "--data",
            "--data-binary",
            "--data-raw",
            "--data-urlencode",
            "-u",
            "--user",
            "-A",
            "--user-agent",
            "-e",
            "--referer",
            "-m",
            "--max-time",
            "-w",
            "--write-out",
            "-x",
            "--proxy",
            "-l",
            "-t",
        ),
    ),
    SPECS,
)
SPECS["curl"] = Spec(
    operands=None,
    write_opts=SPECS["wget"].write_opts - {"-O"},
    read_opts=SPECS["wget"].read_opts,
    value_opts=SPECS["wget"].value_opts,
)

# Developer tools: their operands are mostly names, targets and packages; every path-like
# word or option value may be written (builds, formatters, coverage files, --target-dir).
DEV_TOOLS = [
    "go",
    "cargo",
    "rustc",
    "rustup",
    "npm",
    "npx",
    "pnpm",
    "yarn",
    "bun",
    "bunx",
    "deno",
    "node",
    "tsc",
    "tsx",
    "vite",
    "vitest",
    "jest",
    "eslint",
    "prettier",
    "biome",
    "black",
    "ruff",
    "isort",
    "flake8",
    "pylint",
    "mypy",
    "pyright",
    "pytest",
    "tox",
    "nox",
    "uv",
    "uvx",
    "pip",
    "pip3",
    "pipx",
    "poetry",
    "pdm",
    "hatch",
    "python",
    "python3",
    "ruby",
    "gem",
    "bundle",
    "rake",
    "rails",
    "php",
    "composer",
    "java",
    "javac",
    "mvn",
    "gradle",
    "dotnet",
    "make",
    "cmake",
    "ninja",
    "gofmt",
    "goimports",
    "golangci-lint",
    "staticcheck",
    "docker",
    "podman",
    "kubectl",
    "helm",
    "terraform",
    "alembic",
    "django-admin",
    "flask",
    "uvicorn",
    "gunicorn",
    "swift",
    "clang",
    "gcc",
    "g++",
    "cc",
    "ld",
    "protoc",
    "buf",
    "sqlc",
    "git-lfs",
    "pre-commit",
    # Formatters and fixers that rewrite the files they are given, and builders whose
    # output options name directories they fill (or wipe).
    "shfmt",
    "rustfmt",
    "clang-format",
    "autopep8",
    "yapf",
    "rubocop",
    "stylelint",
    "markdownlint",
    "markdownlint-cli2",
    "taplo",
    "sqlfluff",
    "ktlint",
    "gofumpt",
    "dprint",
    "php-cs-fixer",
    "codespell",
    "typos",
    "sd",
    "dos2unix",
    "unix2dos",
    "webpack",
    "rollup",
    "esbuild",
    "coverage",
    "sphinx-build",
    "mkdocs",
    "hugo",
    "docusaurus",
    "astro",
    "playwright",
    "babel",
    "swc",
    "terser",
    "parcel",
    "next",
    "zig",
    "mix",
    # Editors: whatever they are given, they may write (`vim -es -c ... -c wq FILE`).
    "ed",
    "ex",
    "vi",
    "vim",
    "nvim",
    "nano",
    "emacs",
    "sqlite3",
    "duckdb",
]
_spec(
    DEV_TOOLS,
    Spec(
        operands="write",
        pathlike_only=True,
        value_opts=_s(
            "-p",
            "--package",
            "-k",
            "-m",
            "-n",
            "-j",
            "--jobs",
            "-run",
            "--run",
            "-c",
            "--config-settings",
            "-e",
            "--filter",
            "-F",
            "--name",
            "-t",
            "--tag",
            "--features",
            "--bin",
            "--example",
            "--test",
            "--bench",
            "--max-warnings",
            "--ext",
            "--format",
        ),
    ),
    SPECS,
)

_DEVNULL = frozenset({"/dev/null", "/dev/stdout", "/dev/stderr", "/dev/tty", "/dev/zero"})


def _split_option(tok: str) -> tuple[str, str | None]:
    if tok.startswith("--") and "=" in tok:
        name, _, value = tok.partition("=")
        return name, value
    return tok, None


def _walk_options(
    argv: tuple[str, ...], spec: Spec
) -> tuple[list[int], list[tuple[str, str | None]]]:
    """Split argv[1:] into operand indices and (option, value) pairs (value None: a flag)."""
    takes_value = spec.value_opts | spec.read_opts | spec.write_opts
    operands: list[int] = []
    options: list[tuple[str, str | None]] = []
    i, n, opts_done = 1, len(argv), False
    while i < n:
        tok = argv[i]
        if opts_done or tok == "-" or not tok.startswith("-") or tok == DYNAMIC:
            operands.append(i)
        elif tok == "--":
            opts_done = True
        elif tok in spec.pair_opts and i + 2 < n:
            options.append((tok, argv[i + 2]))  # `--rawfile NAME FILE`: the FILE
            i += 2
        elif tok.startswith("--"):
            name, value = _split_option(tok)
            if value is None and name in takes_value and i + 1 < n:
                value = argv[i + 1]
                i += 1
            options.append((name, value))
        elif tok in takes_value and i + 1 < n:
            options.append((tok, argv[i + 1]))
            i += 1
        elif "=" in tok and len(tok.partition("=")[0]) > 2:
            # Go-style single-dash long options: -coverprofile=out, -o=bin.
            name, _, value = tok.partition("=")
            options.append((name, value))
        elif len(tok) > 2 and tok[2] in "=/~" and (tok[:2] in takes_value or "/" in tok):
            # One short option with its value attached: `-o=/x`, `-o/usr/bin/x`, `-I~/inc`
            # (a cluster of flags never holds `/`, `=` or `~`).
            options.append((tok[:2], tok[3:] if tok[2] == "=" else tok[2:]))
        else:
            # A cluster of short flags (-rf), maybe ending in one with a value (-ofile).
            for j, ch in enumerate(tok[1:], start=2):
                flag = "-" + ch
                if flag not in takes_value:
                    options.append((flag, None))
                    continue
                if j < len(tok):
                    options.append((flag, tok[j:]))
                elif i + 1 < n:
                    options.append((flag, argv[i + 1]))
                    i += 1
                break
        i += 1
    return operands, options


def _ref(raw: str, access: Access, cwd: str | None, source: str) -> PathRef:
    # A partly dynamic word keeps its text: its literal end still names a file (`$D/.env`).
    return PathRef(None if raw == DYNAMIC else raw, access, cwd, source)


def generic_paths(argv: tuple[str, ...], cwd: str | None, access: Access) -> list[PathRef]:
    """Path-like words of a program leashd has no model of."""
    out: list[PathRef] = []
    for tok in argv[1:]:
        if tok.startswith("--") and "=" in tok:
            tok = tok.partition("=")[2]
        elif tok.startswith("-") and len(tok) > 2 and not tok.startswith("--"):
            tok = tok[2:] if tok[2] in "/~." else tok
        if is_pathlike(tok):
            out.append(PathRef(tok, access, cwd, "operand"))
    return out


def paths_for(argv: tuple[str, ...], program: str, cwd: str | None) -> list[PathRef]:
    """Every path `argv` touches according to the program's spec (or the generic fallback)."""
    special = _SPECIAL.get(program)
    if special is not None:
        found = special(argv, cwd)
    elif program in SPECS:
        found = _by_spec(argv, SPECS[program], cwd)
    else:
        found = generic_paths(argv, cwd, "read")
    return [p for p in found if p.raw is None or not is_sink(p.raw)]


# `TYPE:PATH` values of dev tools (`--cov-report=html:/srv/www`, `-o xml:/tmp/r.xml`): the
# path is what gets written. Only taken when what follows the colon is plainly a path.
_TYPED_PATH = re.compile(r"[A-Za-z][A-Za-z0-9_+-]*:([/~.][^\n]*)")


def _typed(value: str) -> str:
    m = _TYPED_PATH.fullmatch(value)
    return m.group(1) if m and not m.group(1).startswith("//") else value


def _by_spec(argv: tuple[str, ...], spec: Spec, cwd: str | None) -> list[PathRef]:
    operands, options = _walk_options(argv, spec)
    out: list[PathRef] = []
    flags = {name for name, _ in options}
    writing = bool(spec.write_flags & flags)
    skip = 0 if spec.skip_opts & flags else spec.skip
    for name, value in options:
        if value is None:
            continue
        if name in spec.write_opts:
            out.append(_ref(value, "write", cwd, "option " + name))
        elif name in spec.read_opts:
            out.append(_ref(value, "read", cwd, "option " + name))
        elif spec.pathlike_only and is_pathlike(value):
            out.append(_ref(_typed(value), spec.operands or "read", cwd, "option " + name))
        elif spec.operands == "read" and name not in spec.value_opts and is_pathlike(value):
            out.append(_ref(value, "read", cwd, "option " + name))  # an option not in the table
    if spec.operands is None and not spec.pathlike_only:
        return out
    paths = operands[skip:]
    for k, i in enumerate(paths):
        tok = argv[i]
        if spec.pathlike_only and tok.startswith("-") and "=" in tok:
            tok = tok.partition("=")[2]  # `npm test -- --outputFile=/x`: passed on, still a path
        if spec.pathlike_only and not (tok == DYNAMIC or is_pathlike(tok)):
            continue
        access: Access = spec.operands or "read"
        if writing:
            access = "write"
        elif spec.last and k == len(paths) - 1 and len(paths) > 1:
            access = spec.last
        out.append(_ref(_typed(tok) if spec.pathlike_only else tok, access, cwd, "operand"))
    return out


# --- programs whose arguments need more than a table --------------------------------------


def _dd(argv: tuple[str, ...], cwd: str | None) -> list[PathRef]:
    out = []
    for tok in argv[1:]:
        key, _, value = tok.partition("=")
        if key == "if":
            out.append(_ref(value, "read", cwd, "if="))
        elif key == "of":
            out.append(_ref(value, "write", cwd, "of="))
    return out


def _uniq(argv: tuple[str, ...], cwd: str | None) -> list[PathRef]:
    operands, _ = _walk_options(argv, SPECS["uniq"])
    out = []
    for k, i in enumerate(operands[:2]):
        out.append(_ref(argv[i], "write" if k == 1 else "read", cwd, "operand"))
    return out


def _sed(argv: tuple[str, ...], cwd: str | None) -> list[PathRef]:
    out = _by_spec(argv, SPECS["sed"], cwd)
    # The script's `r`/`w FILE` commands and `s///w FILE` flag read and write files; the
    # name runs to the end of the line (GNU), and up to a `;` is recorded too. Matching more
    # than sed would only adds paths: stricter.
    for script in sed.scripts(argv):
        found = [(m.group(1), m.group(2)) for m in sed.FILE_COMMAND.finditer(script)]
        written = sed.written_files(script)
        if written is None:  # too odd to read: it may write anywhere
            out.append(PathRef(None, "write", cwd, "sed w"))
            written = []
        found += [("w", name) for name in written]
        for command, name in found:
            access: Access = "read" if command in "rR" else "write"
            whole = name.strip()
            for target in dict.fromkeys((whole, whole.split(";", 1)[0].strip())):
                if target and target not in _DEVNULL and DYNAMIC not in target:
                    out.append(_ref(target, access, cwd, f"sed {command}"))
    return out


def _tar(argv: tuple[str, ...], cwd: str | None) -> list[PathRef]:
    spec = Spec(
        operands="read",
        value_opts=_s(
            "-C",
            "--directory",
            "-f",
            "--file",
            "-T",
            "--files-from",
            "-X",
            "--exclude-from",
            "--exclude",
            "-b",
            "--checkpoint-action",
            "-I",
            "--use-compress-program",
            "--transform",
            "--strip-components",
        ),
    )
    args = list(argv)
    # Old-style bundled first argument without a dash: `tar czf out.tgz dir`.
    if len(args) > 1 and not args[1].startswith("-") and re.fullmatch(r"[A-Za-z]+", args[1]):
        args[1] = "-" + args[1]
    tup = tuple(args)
    operands, options = _walk_options(tup, spec)
    flags = {name for name, _ in options}
    extracting = bool(flags & {"-x", "--extract", "--get"})
    creating = bool(flags & {"-c", "--create", "-r", "--append", "-u", "--update"})
    out: list[PathRef] = []
    directory = None
    for name, value in options:
        if value is None:
            continue
        if name in ("-f", "--file"):
            if value != "-":
                out.append(_ref(value, "write" if creating else "read", cwd, "archive"))
        elif name in ("-C", "--directory"):
            directory = value
        elif name in ("-T", "--files-from", "-X", "--exclude-from"):
            out.append(_ref(value, "read", cwd, "option " + name))
    if extracting:
        out.append(_ref(directory or ".", "write", cwd, "extract into"))
        if "-P" in flags or "--absolute-names" in flags:
            out.append(PathRef(None, "write", cwd, "absolute members"))
    for i in operands:
        base = directory if directory and not extracting else None
        raw = tup[i]
        if base and raw != DYNAMIC and not raw.startswith(("/", "~")):
            raw = base.rstrip("/") + "/" + raw
        out.append(_ref(raw, "read", cwd, "operand"))
    return out


_FIND_WRITE_ACTIONS = {"-fprint", "-fprint0", "-fprintf", "-fls"}
_FIND_VALUE = {
    "-name",
    "-iname",
    "-path",
    "-ipath",
    "-regex",
    "-iregex",
    "-type",
    "-xtype",
    "-maxdepth",
    "-mindepth",
    "-newer",
    "-mtime",
    "-mmin",
    "-atime",
    "-amin",
    "-ctime",
    "-cmin",
    "-size",
    "-perm",
    "-user",
    "-group",
    "-uid",
    "-gid",
    "-printf",
    "-wholename",
    "-iwholename",
    "-samefile",
    "-links",
    "-inum",
    "-lname",
    "-ilname",
    "-used",
    "-context",
    "-fstype",
    "-regextype",
    "-files0-from",
    "-anewer",
    "-cnewer",
}


def find_roots(argv: tuple[str, ...]) -> list[str]:
    roots = []
    for tok in argv[1:]:
        if tok.startswith("-") or tok in ("(", ")", "!", ","):
            break
        roots.append(tok)
    return roots or ["."]


def _find(argv: tuple[str, ...], cwd: str | None) -> list[PathRef]:
    roots = find_roots(argv)
    deleting = "-delete" in argv
    out = [_ref(r, "write" if deleting else "read", cwd, "find root") for r in roots]
    for i, tok in enumerate(argv[:-1]):
        if tok in _FIND_WRITE_ACTIONS:
            out.append(_ref(argv[i + 1], "write", cwd, tok))
        elif tok in ("-newer", "-anewer", "-cnewer", "-samefile", "-files0-from"):
            out.append(_ref(argv[i + 1], "read", cwd, tok))
    return out


def _docker(argv: tuple[str, ...], cwd: str | None) -> list[PathRef]:
    out = []
    for i, tok in enumerate(argv):
        value = None
        if tok in ("-v", "--volume", "--mount") and i + 1 < len(argv):
            value = argv[i + 1]
        elif tok.startswith(("--volume=", "--mount=")):
            value = tok.partition("=")[2]
        elif tok.startswith("-v") and len(tok) > 2:
            value = tok[2:]
        if value is None:
            continue
        if value.startswith(("type=", "source=", "src=")) or ",src" in value:
            fields = dict(f.partition("=")[::2] for f in value.split(","))
            host = fields.get("source") or fields.get("src")
        else:
            host = value.split(":", 1)[0] if value != DYNAMIC else DYNAMIC
        if host and (host == DYNAMIC or DYNAMIC in host or host[0] in "/~."):
            out.append(_ref(host, "write", cwd, "bind mount"))
    # Files handed to the container: env files, build secrets, `docker cp` sources and targets.
    for i, tok in enumerate(argv):
        name, _, value = tok.partition("=")
        if name in ("--env-file", "--secret", "--ssh") and not value and i + 1 < len(argv):
            value = argv[i + 1]
        if name == "--env-file" and value:
            out.append(_ref(value, "read", cwd, name))
        elif name in ("--secret", "--ssh") and value:
            for field in value.split(","):
                key, eq, src = field.partition("=")
                if eq and key in ("src", "source", "env") and src and src[0] in "/~.":
                    out.append(_ref(src, "read", cwd, name))
                elif not eq and "=" not in field and field[:1] in "/~.":
                    out.append(_ref(field, "read", cwd, name))
    if "cp" in argv[1:3]:
        ends = [t for t in argv[argv.index("cp") + 1 :] if not t.startswith("-")]
        for k, t in enumerate(ends[-2:]):
            if ":" not in t.split("/", 1)[0]:  # `container:/path` is inside the container
                out.append(_ref(t, "write" if k == 1 else "read", cwd, "docker cp"))
    return out


def _awk(argv: tuple[str, ...], cwd: str | None) -> list[PathRef]:
    """awk: its files, and paths given as variables (`-v f=~/.bashrc '{print > f}'`), which
    a program may write."""
    out = _by_spec(argv, SPECS["awk"], cwd)
    for i, tok in enumerate(argv[1:-1], 1):
        if tok in ("-v", "--assign"):
            value = argv[i + 1].partition("=")[2]
            if value[:1] in ("/", "~") or value.startswith(("./", "../")):
                out.append(_ref(value, "write", cwd, "awk variable"))
    return out


def _socat(argv: tuple[str, ...], cwd: str | None) -> list[PathRef]:
    """socat addresses that are files: FILE:, OPEN:, GOPEN:, CREATE: (written), EXEC runs."""
    out = []
    for tok in argv[1:]:
        kind, colon, rest = tok.partition(":")
        if colon and kind.upper() in ("FILE", "OPEN", "GOPEN", "CREATE", "CREAT", "PIPE"):
            target = rest.split(",", 1)[0]
            access: Access = "write" if kind.upper() in ("CREATE", "CREAT") else "read"
            if target:
                out.append(_ref(target, access, cwd, f"socat {kind}"))
    return out


_GIT_WORKTREE_WRITERS = frozenset(
    {
        "clean",
        "reset",
        "checkout",
        "restore",
        "switch",
        "merge",
        "rebase",
        "pull",
        "apply",
        "am",
        "cherry-pick",
        "revert",
        "stash",
        "mv",
        "rm",
        "init",
        "submodule",
        "worktree",
        "sparse-checkout",
    }
)


_GIT_CLONE_VALUES = _s(
    "-b",
    "--branch",
    "-o",
    "--origin",
    "-c",
    "--config",
    "--depth",
    "--reference",
    "--reference-if-able",
    "--template",
    "--separate-git-dir",
    "--filter",
    "-u",
    "--upload-pack",
    "-j",
    "--jobs",
    "--shallow-since",
    "--shallow-exclude",
    "--bundle-uri",
    "--server-option",
    "--ref-format",
)
_GIT_INIT_VALUES = _s(
    "-b", "--initial-branch", "--template", "--separate-git-dir", "--object-format", "--shared"
)


def _git_operands(words: list[str] | tuple[str, ...], with_value: frozenset[str]) -> list[str]:
    """The operands of a git subcommand, skipping options and the values they take."""
    out, skip = [], False
    for tok in words:
        if skip:
            skip = False
        elif tok.startswith("-"):
            skip = tok in with_value
        elif tok != DYNAMIC:
            out.append(tok)
    return out


def _git(argv: tuple[str, ...], cwd: str | None) -> list[PathRef]:
    """git: paths after `--`, `REV:path` objects, and options that point at other trees."""
    out: list[PathRef] = []
    sub_index = next((i for i, t in enumerate(argv[1:], 1) if not t.startswith("-")), None)
    sub = argv[sub_index] if sub_index is not None else ""
    for i, tok in enumerate(argv[1:], 1):
        name, value = _split_option(tok)
        if name in ("--work-tree", "--git-dir") and value is not None:
            out.append(_ref(value, "write", cwd, name))
        elif tok in ("--work-tree", "--git-dir") and i + 1 < len(argv):
            out.append(_ref(argv[i + 1], "write", cwd, tok))
        elif (name == "--contents" and sub == "blame") or (
            name == "--output" or (name == "-o" and sub in ("blame", "format-patch", "archive"))
        ):
            target = value if value is not None else (argv[i + 1] if i + 1 < len(argv) else "")
            access: Access = "read" if name == "--contents" else "write"
            out.append(_ref(target, access, cwd, name))
        elif ":" in tok and not tok.startswith("-") and i != sub_index and "://" not in tok:
            obj_path = tok.split(":", 1)[1]
            if obj_path and not obj_path.startswith(("refs/", "/")):
                out.append(_ref(obj_path, "read", cwd, "git object"))
    rest = argv[sub_index + 1 :] if sub_index is not None else ()
    if sub in _GIT_WORKTREE_WRITERS:
        out.append(PathRef(".", "write", cwd, f"git {sub} changes the work tree"))
    if sub == "worktree" and len(rest) >= 2 and rest[0] in ("add", "move", "remove"):
        # `worktree add [-b NEW] PATH`, `move WT PATH`, `remove [--force] WT`: all write there
        for target in _git_operands(rest[1:], _s("-b", "-B", "--reason")):
            out.append(_ref(target, "write", cwd, "worktree"))
    if sub == "init":
        out.extend(_ref(t, "write", cwd, "init") for t in _git_operands(rest, _GIT_INIT_VALUES))
    if sub == "bundle" and tuple(rest[:1]) == ("create",) and len(rest) > 1:
        out.append(_ref(rest[1], "write", cwd, "bundle"))
    for tok in rest:
        name, value = _split_option(tok)
        if value is not None and name in ("--output-directory", "--prefix", "--template"):
            out.append(_ref(value, "write", cwd, name))
    for k, tok in enumerate(rest[:-1]):
        if tok in ("--output-directory", "-o") and sub == "format-patch":
            out.append(_ref(rest[k + 1], "write", cwd, tok))
    if sub in ("apply", "am"):
        # The patch files: read, wherever they are (a patch from outside the project).
        out.extend(
            _ref(t, "read", cwd, "patch")
            for t in rest
            if not t.startswith("-") and t != DYNAMIC and is_pathlike(t)
        )
    if sub in ("clone",):
        targets = _git_operands(rest, _GIT_CLONE_VALUES)
        if len(targets) >= 2:
            out.append(_ref(targets[1], "write", cwd, "clone target"))
    if sub == "diff" and "--no-index" in rest:
        out.extend(_ref(t, "read", cwd, "no-index") for t in rest if not t.startswith("-"))
    access = (
        "write"
        if sub in ("add", "rm", "mv", "checkout", "restore", "apply", "am", "stash", "reset")
        else "read"
    )
    if "--" in rest:
        for tok in rest[rest.index("--") + 1 :]:
            out.append(_ref(tok, access, cwd, "pathspec"))
    elif sub in ("add", "rm", "mv", "restore", "blame", "ls-files", "log", "show", "diff"):
        for tok in rest:
            if tok != DYNAMIC and is_pathlike(tok) and not tok.startswith("-") and ":" not in tok:
                if ".." in tok and "/" not in tok:
                    continue  # a revision range like main..HEAD
                out.append(_ref(tok, "write" if access == "write" else "read", cwd, "pathspec"))
    return out


def _curl(argv: tuple[str, ...], cwd: str | None) -> list[PathRef]:
    out = [
        p
        for p in _by_spec(
            argv,
            SPECS[program_base(argv[0])] if program_base(argv[0]) in SPECS else SPECS["curl"],
            cwd,
        )
        if not (p.raw == "-" and p.access == "write")
    ]
    for tok in argv[1:]:
        if tok.startswith("-"):
            continue
        # -d @file, --data-binary @file, --data-urlencode name@file, --url-query name@file,
        # --variable name@file, -F name=@file and -F name=<file upload a file's contents.
        for mark in ("@", "<"):
            at = tok.find(mark)
            if at == 0 or (at > 0 and (mark == "@" or tok[at - 1] == "=")):
                target = tok[at + 1 :].split(";", 1)[0]
                if target and target != "-" and DYNAMIC not in target:
                    out.append(_ref(target, "read", cwd, "upload"))
                break
    return out


_CODE_FLAGS = frozenset({"-c", "-e", "-E", "-r", "--eval", "-p", "--print", "eval"})
# Quoted paths in inline code: absolute, home, relative with a directory, or a dotfile.
_CODE_PATH = re.compile(
    r"""(?<![\w])['"]((?:/|~/|\.\.?/|\.[A-Za-z][\w.-]*/?|[\w.-]+/)[^'"\s]*)['"]"""
)


def _interpreter(argv: tuple[str, ...], cwd: str | None) -> list[PathRef]:
    """Inline code (-c, -e, eval): quoted absolute paths in it may be written or deleted."""
    out = _by_spec(argv, SPECS.get(program_base(argv[0]), SPECS["python"]), cwd)
    for i, tok in enumerate(argv[1:-1], 1):
        flag = tok if tok.startswith("-") else ("eval" if tok == "eval" and i == 1 else "")
        if flag in _CODE_FLAGS or (
            flag.startswith("-") and not flag.startswith("--") and flag[-1] in "ce" and flag != "-"
        ):
            for m in _CODE_PATH.finditer(argv[i + 1]):
                out.append(_ref(m.group(1), "write", cwd, "inline code"))
    return out


def program_base(word: str) -> str:
    return word.rsplit("/", 1)[-1]


def _npm(argv: tuple[str, ...], cwd: str | None) -> list[PathRef]:
    out = _by_spec(argv, SPECS["npm"], cwd)
    for i, tok in enumerate(argv[:-1]):
        if tok in ("--prefix", "-C", "--dir", "--cwd"):
            out.append(_ref(argv[i + 1], "write", cwd, tok))
    return out


# Readers with an output option of their own; yq edits in place with -i.
SPECS["tree"] = Spec(write_opts=_s("-o"))
SPECS["iconv"] = Spec(
    value_opts=_s("-f", "-t", "--from-code", "--to-code"), write_opts=_s("-o", "--output")
)
SPECS["less"] = Spec(write_opts=_s("-o", "-O", "--log-file", "--LOG-FILE"))
SPECS["info"] = Spec(write_opts=_s("-o", "--output"))
SPECS["yq"] = Spec(
    skip=1,
    skip_opts=_s("--from-file"),
    value_opts=_s("--arg", "--indent", "-I", "-o", "--output-format", "-p", "--input-format"),
    read_opts=_s("--from-file"),
    write_flags=_s("-i", "--inplace"),
)
SPECS["openssl"] = Spec(
    operands=None,
    write_opts=_s("-out"),
    read_opts=_s("-in", "-inkey", "-key", "-signkey", "-passin", "-kfile"),
)
SPECS["gpg"] = Spec(operands="read", write_opts=_s("-o", "--output"))
# Extractors: where they unpack is written (cpio without -D unpacks here, absolute member
# names anywhere: the directory is the least of it).
SPECS["unrar"] = Spec(operands="read", last="write")
SPECS["cabextract"] = Spec(operands="read", write_opts=_s("-d", "--directory"))
SPECS["cpio"] = Spec(operands=None, write_opts=_s("-D", "--directory", "-O", "-F", "--file"))
SPECS["dpkg-deb"] = Spec(operands="read", last="write", value_opts=_s("-x", "-X"))
# history -w/-a FILE writes the history list into FILE (a way into a startup file).
SPECS["history"] = Spec(operands=None, write_opts=_s("-w", "-a"), read_opts=_s("-r", "-n"))


def _ln(argv: tuple[str, ...], cwd: str | None) -> list[PathRef]:
    """ln's operands, and for `ln -s` each relative target also as the kernel will read it:
    from the directory the link is made in, not from where ln runs (`ln -s .. sub/up` points
    at the directory that holds `sub`)."""
    spec = SPECS["ln"]
    found = _by_spec(argv, spec, cwd)
    operands, options = _walk_options(argv, spec)
    words = [argv[i] for i in operands]
    # the link itself, as "link": what later commands may pass through
    if len(words) > 1 and found and found[-1].raw == words[-1]:
        found[-1] = PathRef(found[-1].raw, "write", cwd, "link")
    elif len(words) == 1 and DYNAMIC not in words[0]:
        found.append(_ref(posixpath.basename(words[0].rstrip("/")) or ".", "write", cwd, "link"))
    flags = {name for name, _ in options}
    if not flags & {"-s", "--symbolic"} or flags & {"-r", "--relative"}:
        return found
    target_dir = next((v for n, v in options if n in _COPY_TARGET and v is not None), None)
    if target_dir is not None:
        homes, targets = [target_dir], words
    elif len(words) > 1:
        # LINK may be a new name (the link sits in its directory) or a directory (in it)
        homes, targets = [posixpath.dirname(words[-1]) or ".", words[-1]], words[:-1]
    else:
        return found  # made here, named after its target: read from here
    relative = {t for t in targets if not t.startswith(("/", "~")) and t != DYNAMIC}
    # A relative target read from where ln runs is not where the link points; but `./x` is
    # also how "$PWD/x" reaches here, so that one is kept both ways.
    found = [
        p
        for p in found
        if not (p.source == "operand" and p.raw in relative and not p.raw.startswith("./"))
    ]
    for target in targets:
        if target not in relative:
            continue
        for home in homes:
            joined = target if DYNAMIC in home else posixpath.join(home, target)
            found.append(_ref(joined, "write", cwd, "symlink target"))
    return found


_SPECIAL: dict[str, Callable[[tuple[str, ...], str | None], list[PathRef]]] = {
    "dd": _dd,
    "ln": _ln,
    **{
        p: _interpreter
        for p in (
            "python",
            "python2",
            "python3",
            "node",
            "nodejs",
            "deno",
            "bun",
            "perl",
            "ruby",
            "php",
            "lua",
        )
    },
    "curl": _curl,
    "wget": _curl,
    "http": _curl,
    "https": _curl,
    "xh": _curl,
    "uniq": _uniq,
    "sed": _sed,
    "tar": _tar,
    "awk": _awk,
    "gawk": _awk,
    "mawk": _awk,
    "nawk": _awk,
    "socat": _socat,
    "gtar": _tar,
    "bsdtar": _tar,
    "find": _find,
    "docker": _docker,
    "podman": _docker,
    "docker-compose": _docker,
    "nerdctl": _docker,
    "git": _git,
    "npm": _npm,
    "pnpm": _npm,
    "yarn": _npm,
}


def has_spec(program: str) -> bool:
    return program in SPECS or program in _SPECIAL


def is_sink(target: str) -> bool:
    """Redirect targets that are not files anyone cares about."""
    return target in _DEVNULL or target.startswith("/dev/fd/")
