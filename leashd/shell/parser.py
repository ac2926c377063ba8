"""Bash source -> units, with tree-sitter-bash.

The walker follows what bash would run: every simple command across lists, pipelines,
groups, loops, conditionals, functions and substitutions; wrappers and nested scripts
(`bash -c`, `eval`, `find -exec`, `xargs`, aliases, traps) are parsed again as commands. Literal
variable assignments and `cd` are tracked so later words and relative paths mean what they
will mean at run time. Anything whose value only exists at run time is marked dynamic, and a
command whose name is dynamic is opaque: leashd cannot know what it runs.
"""

from __future__ import annotations

import posixpath
import re
import threading
import time
from dataclasses import dataclass, field, replace

import tree_sitter
import tree_sitter_bash

from leashd import limits
from leashd.shell import commands, wrappers
from leashd.shell.model import DYNAMIC, ParsedCommand, PathRef, Redirect, ShellUnit

MAX_DEPTH = limits.NESTING  # nested scripts (bash -c 'bash -c ...'), alias and function expansion
MAX_UNITS = limits.UNITS
MAX_LOOP_VALUES = 64  # a `for` body is walked once per literal value, up to this many
MAX_STEPS = limits.STEPS
DOWNLOADERS = frozenset({"curl", "wget", "aria2c", "fetch", "http", "xh", "scp", "rsync"})
SYSTEM_BIN_DIRS = frozenset(
    {
        "/bin",
        "/usr/bin",
        "/usr/local/bin",
        "/sbin",
        "/usr/sbin",
        "/usr/local/sbin",
        "/opt/homebrew/bin",
        "/usr/libexec",
    }
)

_LANGUAGE = tree_sitter.Language(tree_sitter_bash.language())


_LOCAL = threading.local()

# tree-sitter-bash's external scanner reads out of bounds on a `{` followed later by a
# four-byte UTF-8 character (upstream tree-sitter-bash issue #337; not limited to one block of
# characters): a segfault that depends on memory layout. Such a character is only ever word
# content to Bash, so the parser is given the same bytes with each one replaced by two
# pilcrows (four bytes, also plain word content, never part of a name), and every word is
# still read from the original bytes, at the same offsets.
_ASTRAL_UTF8 = re.compile(rb"[\xf0-\xf4][\x80-\xbf]{3}")


def _for_tree_sitter(src: bytes) -> bytes:
    return src if src.isascii() else _ASTRAL_UTF8.sub(b"\xc2\xb6\xc2\xb6", src)


class _ParseTooSlow(Exception):
    """tree-sitter did not finish by the walk's deadline."""


_CHUNK = 1 << 16


def _parse_tree(src: bytes, deadline: float) -> tree_sitter.Tree:
    """Parse, giving up at `deadline` (time.monotonic). tree-sitter-bash's error recovery can
    take time that grows with the square of the input (`))a//e` 6,000 times: 1.3 s, and
    256 KB of it well over a minute), and no count of characters foretells it; its progress
    callback, called every few milliseconds while it works, is where it is stopped. That also
    lets the event loop's thread run meanwhile."""
    parser = getattr(_LOCAL, "parser", None)
    if parser is None:  # one parser per thread: a tree-sitter parser is not thread-safe
        parser = _LOCAL.parser = tree_sitter.Parser(_LANGUAGE)
    data = _for_tree_sitter(src)

    def read(offset: int, _point: object) -> bytes:
        return data[offset : offset + _CHUNK]

    def late(*_state: object) -> bool:
        return time.monotonic() > deadline

    try:
        tree = parser.parse(read, progress_callback=late)
    except ValueError:  # what tree-sitter raises when the callback stops it
        tree = None
    if tree is None:
        parser.reset()  # else the next parse would resume this one
        raise _ParseTooSlow
    return tree


_PWD_SUBSTITUTION = re.compile(r"\$\(\s*pwd(\s+-[LP])?\s*\)|`\s*pwd(\s+-[LP])?\s*`")
_ENV_WRITES = frozenset(
    {"GIT_INDEX_FILE", "GIT_WORK_TREE", "GIT_DIR", "HISTFILE", "LESSHISTFILE", "SSLKEYLOGFILE"}
)


_IN_THIS_SHELL = frozenset(("builtin", "command"))  # wrappers that run in the shell itself


def _file_key(word: str, cwd: str | None) -> str | None:
    """The file a word names, relative to the command's start: `./i.sh` and `i.sh` are one."""
    if DYNAMIC in word or cwd is None or not word or word.startswith("-"):
        return None
    return posixpath.normpath(word if word.startswith(("/", "~")) else posixpath.join(cwd, word))


def _remote_names(argv: tuple[str, ...], program: str) -> list[str]:
    """Files a downloader names after the URL: `curl -O URL`, `wget URL`."""
    urls = [a for a in argv[1:] if "://" in a]
    remote = program == "wget" and not any(
        a in ("-O", "--output-document") or a.startswith(("-O", "--output-document="))
        for a in argv[1:]
    )
    remote = remote or any(
        a in ("-O", "--remote-name", "--remote-name-all")
        or (a.startswith("-") and not a.startswith("--") and "O" in a)
        for a in argv[1:]
    )
    if not remote:
        return []
    names = []
    for url in urls:
        path = url.split("://", 1)[1].split("?", 1)[0].split("#", 1)[0]
        base = path.rstrip("/").rsplit("/", 1)[-1] if "/" in path else ""
        if base:
            names.append(base)
    return names


def program_name(word: str) -> str:
    """argv[0] -> the program a rule names: `/usr/bin/git` is git, `./git` is not."""
    if "/" not in word:
        return word
    head, _, base = word.rpartition("/")
    return base if posixpath.normpath(head or "/") in SYSTEM_BIN_DIRS else word


@dataclass
class _Scope:
    vars: dict[str, str | None] = field(default_factory=dict)
    positional: tuple[str, ...] | None = None  # None: unknown ($@ of the daemon's shell)
    cwd: str | None = ""  # relative to the session cwd; None once it is unknown
    dirstack: list[str | None] = field(default_factory=list)
    ifs_changed: bool = False
    functions: dict[str, tuple[tree_sitter.Node, bytes]] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    # Files a downloader wrote earlier in the command: running one runs the download.
    downloaded: dict[str, str] = field(default_factory=dict)
    # Variables set by an earlier statement (`export X=1;`, or `PATH=...;` of a variable that
    # may already be exported): the environment of every later command, as far as we know.
    exported: dict[str, str | None] = field(default_factory=dict)

    def copy(self) -> _Scope:
        return _Scope(
            dict(self.vars),
            self.positional,
            self.cwd,
            list(self.dirstack),
            self.ifs_changed,
            dict(self.functions),
            dict(self.aliases),
            self.downloaded,
            dict(self.exported),
        )

    def chdir(self, target: str | None, physical: bool = False) -> None:
        """Change directory. Bash's cd is logical (`l/../..` is `..` whatever `l` links to)
        unless -P: then the path is kept as written, for realpath to follow."""
        if target is None or self.cwd is None or DYNAMIC in target:
            self.cwd = None
            return
        joined = (
            target
            if target.startswith(("/", "~")) or not self.cwd
            else (posixpath.join(self.cwd, target))
        )
        self.cwd = joined if physical else posixpath.normpath(joined)


@dataclass(slots=True)
class _Feed:
    programs: frozenset[str]
    words: tuple[str, ...]


def _pathlike_words(units: list[ShellUnit]) -> list[str]:
    return [
        a
        for u in units
        for j, a in enumerate(u.argv[1:], 1)
        if j not in u.dynamic and commands.is_pathlike(a)
    ]


@dataclass
class _Ctx:
    """What surrounds a command: the pipeline it sits in and what feeds its input."""

    pipeline: str = ""
    upstream: frozenset[str] = frozenset()
    upstream_words: tuple[str, ...] = ()  # path-like words of upstream units (for xargs)
    redirects: tuple[Redirect, ...] = ()
    redirect_paths: tuple[PathRef, ...] = ()
    stdin: str | None = None
    stdin_dynamic: bool = False
    wrapped_by: tuple[str, ...] = ()
    depth: int = 0
    shadow: bool = False
    external: bool = False  # run by a wrapper program, so it cannot change the shell's state


class _Walker:
    def __init__(self) -> None:
        self.units: list[ShellUnit] = []
        self.notes: list[str] = []
        self.overflow: str | None = None  # why the walk stopped short
        self.steps = 0
        self.deadline = time.monotonic() + limits.PARSE_SECONDS  # for tree-sitter's parses
        self.nodes = 0  # syntax nodes of every script parsed
        # Commands written after `<<EOF` on its line: (operator before, node, body, dynamic).
        self.after_heredoc: list[tuple[str | None, tree_sitter.Node, str, bool]] = []

    # --- entry points --------------------------------------------------------------------

    def script(self, text: str, scope: _Scope, ctx: _Ctx) -> str | None:
        """Parse and walk a script; returns a parse error message, if any."""
        src = text.encode("utf-8", "surrogatepass")
        tree = _parse_tree(src, self.deadline)
        root = tree.root_node
        self.nodes += root.descendant_count  # counted by tree-sitter: free
        if self.nodes > limits.NODES:
            self.overflow = self.overflow or f"more than {limits.NODES:,} syntax nodes"
            return None
        error = _first_error(root, src) if root.has_error else None
        self.statements(root, src, scope, ctx)
        return error

    def emit(self, unit: ShellUnit) -> None:
        if len(self.units) >= MAX_UNITS:
            self.overflow = self.overflow or f"more than {MAX_UNITS} commands"
            return
        self.units.append(unit)

    # --- statements ----------------------------------------------------------------------

    def statements(self, node: tree_sitter.Node, src: bytes, scope: _Scope, ctx: _Ctx) -> None:
        for child in node.named_children:
            self.statement(child, src, scope, ctx)

    def statement(self, node: tree_sitter.Node, src: bytes, scope: _Scope, ctx: _Ctx) -> None:
        if self.overflow:
            return  # the call is already too large to analyse: walking on changes nothing
        self.steps += 1
        if self.steps > MAX_STEPS:
            self.overflow = f"more than {MAX_STEPS} statements to walk (loops inside loops)"
            return
        t = node.type
        if t == "command":
            self.command(node, src, scope, ctx)
        elif t in (
            "list",
            "program",
            "compound_statement",
            "do_group",
            "else_clause",
            "elif_clause",
            "ERROR",
        ):
            for child in node.named_children:
                self.statement(child, src, scope, ctx)
        elif t == "pipeline":
            self.pipeline(node, src, scope, ctx)
        elif t == "redirected_statement":
            self.redirected(node, src, scope, ctx)
        elif t == "subshell":
            self.statements(node, src, scope.copy(), ctx)
        elif t == "negated_command":
            self.statements(node, src, scope, ctx)
        elif t == "variable_assignment":
            self.assignment_statement([node], src, scope, ctx, node)
        elif t == "variable_assignments":
            self.assignment_statement(node.named_children, src, scope, ctx, node)
        elif t == "declaration_command":
            self.declaration(node, src, scope, ctx)
        elif t == "unset_command":
            for child in node.named_children:
                scope.vars[_text(child, src)] = None
            self.emit(self._unit(("unset",), (), node, src, scope, ctx))
        elif t == "function_definition":
            name = node.child_by_field_name("name")
            body = node.child_by_field_name("body")
            if name is not None and body is not None:
                scope.functions[_text(name, src)] = (body, src)
        elif t == "for_statement":
            self.for_loop(node, src, scope, ctx)
        elif t in (
            "if_statement",
            "while_statement",
            "until_statement",
            "c_style_for_statement",
            "case_statement",
            "case_item",
        ):
            for child in node.named_children:
                if child.type in (
                    "word",
                    "string",
                    "raw_string",
                    "concatenation",
                    "simple_expansion",
                    "expansion",
                ):
                    self.word(child, src, scope, ctx)  # for substitutions in `case $(x) in`
                else:
                    self.statement(child, src, scope, ctx)
        elif t in (
            "test_command",
            "arithmetic_expansion",
            "binary_expression",
            "unary_expression",
            "parenthesized_expression",
            "ternary_expression",
            "postfix_expression",
            "command_substitution",
            "process_substitution",
            "string",
            "concatenation",
            "expansion",
            "simple_expansion",
        ):
            self.substitutions(node, src, scope, ctx)
        elif t in (
            "comment",
            "heredoc_body",
            "heredoc_start",
            "heredoc_end",
            "word",
            "file_redirect",
            "heredoc_redirect",
            "herestring_redirect",
        ):
            if t in ("file_redirect", "heredoc_redirect", "herestring_redirect"):
                self.substitutions(node, src, scope, ctx)
        else:
            self.substitutions(node, src, scope, ctx)

    def pipeline(self, node: tree_sitter.Node, src: bytes, scope: _Scope, ctx: _Ctx) -> None:
        text = _text(node, src)
        upstream = set(ctx.upstream)
        words: list[str] = list(ctx.upstream_words)
        for i, child in enumerate(node.named_children):
            start = len(self.units)
            stage_ctx = replace(
                ctx,
                pipeline=text,
                upstream=frozenset(upstream),
                upstream_words=tuple(words),
                stdin=ctx.stdin if i == 0 else None,
                stdin_dynamic=ctx.stdin_dynamic if i == 0 else bool(upstream) or i > 0,
            )
            self.statement(child, src, scope.copy(), stage_ctx)
            upstream.update(u.program for u in self.units[start:] if u.program)
            words.extend(_pathlike_words(self.units[start:]))

    def redirected(self, node: tree_sitter.Node, src: bytes, scope: _Scope, ctx: _Ctx) -> None:
        body = node.child_by_field_name("body")
        target = body
        if body is not None and body.type == "list" and body.named_children:
            # `a && b > f`: the redirection is b's, opened after a ran (`cd .. && echo > f`).
            *first, target = body.named_children
            for child in first:
                self.statement(child, src, scope, ctx)
        redirects = [c for c in node.named_children if c is not body]
        pending_from = len(self.after_heredoc)
        reds, paths, stdin, stdin_dynamic, feeders = self.redirections(redirects, src, scope, ctx)
        inner = replace(
            ctx,
            pipeline=ctx.pipeline or _text(node if target is body else target, src),
            redirects=ctx.redirects + tuple(reds),
            redirect_paths=ctx.redirect_paths + tuple(paths),
            upstream=ctx.upstream | feeders.programs,
            upstream_words=ctx.upstream_words + feeders.words,
            stdin=stdin if stdin is not None else ctx.stdin,
            stdin_dynamic=stdin_dynamic or ctx.stdin_dynamic,
        )
        if target is None:
            # Only redirections (`> file`, `: > file` parses with a body): still a write.
            self.emit(self._unit((), (), node, src, scope, inner))
        else:
            self.statement(target, src, scope, inner)
        self.continue_after_heredoc(pending_from, src, scope, ctx, node)

    def for_loop(self, node: tree_sitter.Node, src: bytes, scope: _Scope, ctx: _Ctx) -> None:
        var_node = node.child_by_field_name("variable")
        body = node.child_by_field_name("body")
        values: list[str] = []
        dynamic = False
        for child in node.children_by_field_name("value"):
            for w in self.word(child, src, scope, ctx):
                if DYNAMIC in w:
                    dynamic = True
                values.append(w)
        if not node.children_by_field_name("value"):
            if scope.positional is None:
                dynamic = True
            else:
                values = list(scope.positional)
        name = _text(var_node, src) if var_node is not None else ""
        if body is None:
            return
        if dynamic or not values or len(values) > MAX_LOOP_VALUES:
            # One pass with the variable unknown, plus one per literal glob-like value so
            # a loop over `~/.ssh/*` still shows the paths it reaches.
            scope.vars[name] = None
            self.statement(body, src, scope, ctx)
            for v in values[:MAX_LOOP_VALUES]:
                if DYNAMIC not in v:
                    scope.vars[name] = v
                    self.statement(body, src, scope, ctx)
            scope.vars[name] = None
            return
        for v in values:
            scope.vars[name] = v
            self.statement(body, src, scope, ctx)

    def assignment_statement(
        self,
        nodes: list[tree_sitter.Node],
        src: bytes,
        scope: _Scope,
        ctx: _Ctx,
        whole: tree_sitter.Node,
    ) -> None:
        env = []
        for a in nodes:
            if a.type != "variable_assignment":
                continue
            name, value = self.assignment(a, src, scope, ctx)
            scope.vars[name] = value
            if name == "IFS":
                scope.ifs_changed = True
            env.append((name, value))
        self.emit(self._unit((), tuple(env), whole, src, scope, ctx))
        scope.exported.update(env)

    def declaration(self, node: tree_sitter.Node, src: bytes, scope: _Scope, ctx: _Ctx) -> None:
        keyword = node.children[0].type if node.children else "declare"
        argv: list[str] = [keyword]
        env = []
        for child in node.named_children:
            if child.type == "variable_assignment":
                name, value = self.assignment(child, src, scope, ctx)
                scope.vars[name] = value
                if name == "IFS":
                    scope.ifs_changed = True
                env.append((name, value))
                scope.exported[name] = value
                argv.append(f"{name}={value if value is not None else DYNAMIC}")
            elif child.type == "variable_name":
                argv.append(_text(child, src))
            else:
                argv.extend(self.word(child, src, scope, ctx))
        self.emit(self._unit(tuple(argv), tuple(env), node, src, scope, ctx))

    def assignment(
        self, node: tree_sitter.Node, src: bytes, scope: _Scope, ctx: _Ctx
    ) -> tuple[str, str | None]:
        name_node = node.child_by_field_name("name")
        value_node = node.child_by_field_name("value")
        name = _text(name_node, src) if name_node is not None else ""
        if name_node is not None and name_node.type == "subscript":
            self.substitutions(name_node, src, scope, ctx)  # `a[$(cmd)]=1` runs cmd
        if value_node is None:
            return name, ""
        if "+=" in _text(node, src)[: len(name) + 2]:
            self.word(value_node, src, scope, ctx)
            return name, None
        words = self.word(value_node, src, scope, ctx, split=False)
        value = words[0] if len(words) == 1 else None
        if value is not None and DYNAMIC in value:
            value = None
        if value is not None and len(value) > limits.COMMAND_CHARS:
            # `a=$a$a` doubles at each step: tracked literally, 30 of them hold 2 GB
            self.overflow = self.overflow or self._grown(f"variable {name}")
            value = None
        return name, value

    @staticmethod
    def _grown(what: str) -> str:
        return f"the value of {what} grows past {limits.COMMAND_CHARS:,} characters"

    # --- commands -------------------------------------------------------------------------

    def command(self, node: tree_sitter.Node, src: bytes, scope: _Scope, ctx: _Ctx) -> None:
        env: list[tuple[str, str | None]] = []
        argv: list[str] = []
        redirect_nodes = []
        first_inner = len(self.units)
        for child in node.named_children:
            t = child.type
            if t == "variable_assignment":
                name, value = self.assignment(child, src, scope.copy(), ctx)
                env.append((name, value))
            elif t == "command_name":
                argv.extend(
                    self.word(child.named_children[0], src, scope, ctx)
                    if child.named_children
                    else [_text(child, src)]
                )
            elif t in ("file_redirect", "heredoc_redirect", "herestring_redirect"):
                redirect_nodes.append(child)
            else:
                argv.extend(self.word(child, src, scope, ctx))
        # Commands substituted into the words feed this one: `source <(curl ...)`.
        inner_units = self.units[first_inner:]
        if inner_units:
            ctx = replace(
                ctx,
                upstream=ctx.upstream | {u.program for u in inner_units if u.program},
                upstream_words=ctx.upstream_words + tuple(_pathlike_words(inner_units)),
            )
        local_ctx = ctx
        pending_from = len(self.after_heredoc)
        if redirect_nodes:
            reds, paths, stdin, stdin_dyn, feeders = self.redirections(
                redirect_nodes, src, scope, ctx
            )
            local_ctx = replace(
                ctx,
                redirects=ctx.redirects + tuple(reds),
                redirect_paths=ctx.redirect_paths + tuple(paths),
                upstream=ctx.upstream | feeders.programs,
                upstream_words=ctx.upstream_words + feeders.words,
                stdin=stdin if stdin is not None else ctx.stdin,
                stdin_dynamic=stdin_dyn or ctx.stdin_dynamic,
            )
        self.run(tuple(argv), tuple(env), node, src, scope, local_ctx)
        self.continue_after_heredoc(pending_from, src, scope, ctx, node)

    def continue_after_heredoc(
        self, start: int, src: bytes, scope: _Scope, ctx: _Ctx, node: tree_sitter.Node
    ) -> None:
        """Walk what followed `<<EOF` on its line, after the command it belongs to: a pipe
        feeds those commands the command's output (for `cat`, the heredoc body), `&&`, `||`
        and `;` run them next."""
        items = self.after_heredoc[start:]
        del self.after_heredoc[start:]
        first = self.units[-1].program if self.units else ""
        for op, cont, body, dynamic in items:
            if op in (None, "|", "|&") and cont.type in ("pipeline", "command"):
                fed = replace(
                    ctx,
                    pipeline=ctx.pipeline or _text(node, src),
                    upstream=ctx.upstream | ({first} if first else frozenset()),
                    # what `xargs` downstream would take as items
                    upstream_words=ctx.upstream_words
                    + tuple(w for w in body.split() if commands.is_pathlike(w)),
                    stdin=body,
                    stdin_dynamic=dynamic,
                )
                for stage in [cont] if cont.type == "command" else cont.named_children:
                    self.statement(stage, src, scope, fed)
            else:
                self.statement(cont, src, scope, ctx)

    def run(
        self,
        argv: tuple[str, ...],
        env: tuple[tuple[str, str | None], ...],
        node: tree_sitter.Node,
        src: bytes,
        scope: _Scope,
        ctx: _Ctx,
        text: str | None = None,
    ) -> None:
        """Emit the unit for argv and everything it runs in turn."""
        if not argv:
            self.emit(self._unit((), env, node, src, scope, ctx, text=text))
            return
        head = argv[0]
        if DYNAMIC in head:
            self.emit(
                self._unit(
                    argv,
                    env,
                    node,
                    src,
                    scope,
                    ctx,
                    text=text,
                    opaque="the command name is computed at run time",
                )
            )
            return
        if ctx.depth >= MAX_DEPTH:
            self.emit(
                self._unit(
                    argv,
                    env,
                    node,
                    src,
                    scope,
                    ctx,
                    text=text,
                    opaque="nested too deeply to analyse",
                )
            )
            return
        if head in scope.aliases:
            expansion = scope.aliases[head]
            rest = " ".join(_quote(a) for a in argv[1:])
            self.notes.append(f"alias {head} expanded")
            self.nested_script(f"{expansion} {rest}".strip(), scope, ctx, via=head)
            return
        if head in scope.functions:
            body, body_src = scope.functions[head]
            # A function runs in the calling shell: a `cd` or an assignment in its body stays
            # after it returns. Only its arguments are its own.
            saved, before = scope.positional, dict(scope.vars)
            scope.positional = argv[1:]
            self.notes.append(f"function {head} expanded")
            try:
                self.statement(body, body_src, scope, replace(ctx, depth=ctx.depth + 1))
            finally:
                scope.positional = saved
                # a variable the body set may have been `local` (gone, the old value back)
                # or global (kept): after the call its value is not known
                for name, value in list(scope.vars.items()):
                    if name not in before or before[name] != value:
                        scope.vars[name] = None
            return
        program = program_name(head)
        unit = self._unit(argv, env, node, src, scope, ctx, text=text)
        if scope.downloaded:
            fetched = {
                scope.downloaded[k]
                for a in argv
                if (k := _file_key(a, scope.cwd)) is not None and k in scope.downloaded
            }
            if fetched:
                unit = replace(unit, upstream=unit.upstream | fetched)
        # Files written with what a downloader fetched: running one later runs the download.
        feeder = (
            program
            if program in DOWNLOADERS
            else next((p for p in sorted(ctx.upstream) if p in DOWNLOADERS), None)
        )
        if feeder is not None:
            for p in unit.paths:
                if p.access == "write" and p.raw and (k := _file_key(p.raw, p.cwd)) is not None:
                    scope.downloaded[k] = feeder
            if program in DOWNLOADERS:
                for name in _remote_names(argv, program):
                    if (k := _file_key(name, scope.cwd)) is not None:
                        scope.downloaded[k] = program
        self._builtin_effects(argv, program, scope, ctx, env)
        inners = wrappers.unwrap(argv, program)
        if program == "git":
            inners = wrappers.git_commands(argv)
            unit = self._git_dash_c(unit, scope)
        if program in ("source", ".") and len(argv) > 1:
            target = argv[1]
            if target in ("/dev/stdin", "-", "/proc/self/fd/0") or target.startswith("/dev/fd/"):
                inners = [wrappers.Inner(stdin_script=True)]
        if program == "trap":
            rest = argv[2:] if argv[1:2] == ("--",) else argv[1:]
            if len(rest) > 1 and rest[0] not in ("-", "-p", "-l"):
                inners = [wrappers.Inner(script=rest[0], dynamic_script=DYNAMIC in rest[0])]
        if program == "eval" and len(argv) > 1:
            script = " ".join(argv[1:])
            inners = [wrappers.Inner(script=script, dynamic_script=DYNAMIC in script)]
        if inners and program != "git":
            # The wrapper's own words are the inner command's: its paths are the inner
            # unit's business (find keeps its roots and actions). git is no wrapper: what it
            # runs (`rebase -x`) comes on top of what it does itself.
            kept = unit.paths if commands.has_spec(program) else tuple(ctx.redirect_paths)
            unit = replace(unit, wrapper=True, paths=kept)
        self.emit(unit)
        for inner in inners:
            self.inner(inner, unit, program, node, src, scope, ctx)
        base = head.rsplit("/", 1)[-1]
        if program == head and "/" in head and base and not ctx.shadow:
            # `.venv/bin/python -c ...` is python to every rule written for python.
            self.run((base, *argv[1:]), env, node, src, scope, replace(ctx, shadow=True), text)

    def inner(
        self,
        inner: wrappers.Inner,
        outer: ShellUnit,
        program: str,
        node: tree_sitter.Node,
        src: bytes,
        scope: _Scope,
        ctx: _Ctx,
    ) -> None:
        sub_ctx = replace(ctx, wrapped_by=(*ctx.wrapped_by, program), depth=ctx.depth + 1)
        sub_scope = scope.copy() if inner.cwd or inner.positional is not None else scope
        if inner.cwd:
            sub_scope.chdir(inner.cwd)
        if inner.stdin_script:
            if ctx.stdin is not None and not ctx.stdin_dynamic:
                self.nested_script(ctx.stdin, sub_scope, sub_ctx, via=program)
            else:
                self.emit(
                    replace(
                        outer,
                        wrapper=False,
                        opaque=f"{program} runs code that arrives on its input at run time",
                    )
                )
            return
        if inner.script is not None:
            if inner.dynamic_script:
                self.emit(
                    replace(
                        outer,
                        wrapper=False,
                        opaque=f"{program} runs a script computed at run time",
                    )
                )
                return
            if inner.positional is not None:
                sub_scope.positional = inner.positional[1:]
                sub_scope.vars["0"] = inner.positional[0]
            self.nested_script(inner.script, sub_scope, sub_ctx, via=program)
            return
        argv = inner.argv
        if wrappers.ITEM in "".join(argv):
            items = inner.items if inner.items is not None else ctx.upstream_words
            argv = tuple(a.replace(wrappers.ITEM, DYNAMIC) for a in argv)
            self.run(
                argv,
                (),
                node,
                src,
                sub_scope,
                replace(sub_ctx, redirects=(), redirect_paths=()),
                text=" ".join(_quote(a) for a in inner.argv).replace(wrappers.ITEM, "{}"),
            )
            # Items read from a file (`xargs cat < list`, `xargs -a list cat`) are unknown
            # here: the operands stay unknown rather than guessed.
            from_file = program == "xargs" and (
                any(r.op == "<" for r in ctx.redirects)
                or any(a in ("-a", "--arg-file") or a.startswith("--arg-file=") for a in outer.argv)
            )
            if not from_file:
                self._fill_items(items or (".",), sub_scope)
            return
        # Variables set on the wrapper reach what it runs: `X=1 timeout 60 pytest`. What a
        # program runs is a process of its own; `builtin` and `command` run a builtin in this
        # very shell (`builtin cd /x` moves the shell).
        self.run(
            argv,
            (*inner.env, *outer.env),
            node,
            src,
            sub_scope,
            replace(
                sub_ctx,
                redirects=(),
                redirect_paths=(),
                external=program not in _IN_THIS_SHELL,
            ),
            text=" ".join(_quote(a) for a in argv),
        )

    def _fill_items(self, items: tuple[str, ...], scope: _Scope) -> None:
        """Give the last emitted units' unknown operands the values a wrapper feeds in."""
        if not self.units:
            return
        unit = self.units[-1]
        extra = []
        for p in unit.paths:
            if p.raw is None and p.source == "operand":
                extra.extend(
                    PathRef(item, p.access, scope.cwd, "fed by wrapper")
                    for item in items
                    if DYNAMIC not in item
                )
        if extra:
            kept = tuple(p for p in unit.paths if not (p.raw is None and p.source == "operand"))
            self.units[-1] = replace(unit, paths=kept + tuple(extra))

    def nested_script(self, text: str, scope: _Scope, ctx: _Ctx, via: str) -> None:
        if ctx.depth >= MAX_DEPTH:
            self.emit(
                ShellUnit(
                    argv=(via,),
                    program=via,
                    text=text,
                    pipeline=text,
                    opaque="nested too deeply to analyse",
                )
            )
            return
        error = self.script(
            text,
            scope,
            replace(ctx, pipeline="", depth=ctx.depth + 1, stdin=None, stdin_dynamic=False),
        )
        if error:
            self.emit(
                ShellUnit(
                    argv=(via,),
                    program=via,
                    text=text,
                    pipeline=text,
                    wrapped_by=ctx.wrapped_by,
                    opaque=f"the script given to {via} does not parse: {error}",
                )
            )

    def _builtin_effects(
        self,
        argv: tuple[str, ...],
        program: str,
        scope: _Scope,
        ctx: _Ctx,
        env: tuple[tuple[str, str | None], ...] = (),
    ) -> None:
        """Track what later commands depend on: the directory, variables, aliases."""
        if ctx.external or ctx.shadow:
            # run by env, timeout, nice...: a program of its own, not the shell; and a shadow
            # (`./tools/cd` seen as `cd` by the rules) is a program run by path, which never
            # changes the shell's directory or variables either
            return
        if program in ("cd", "pushd", "popd"):
            # cd [-L|-P|-e|-@] [--] [dir]; no dir is HOME. pushd/popd: -n only edits the
            # stack; +N/-N rotate it (where to, we do not track).
            words = list(argv[1:])
            opts: list[str] = []
            while (
                words
                and words[0].startswith("-")
                and words[0] != "-"
                and not words[0][1:].isdigit()
            ):
                opt = words.pop(0)
                if opt == "--":
                    break
                opts.append(opt)
            physical = any("P" in o for o in opts)
            if any(w[:1] in "+-" and w[1:].isdigit() for w in words):
                scope.cwd = None
            elif program == "popd":
                if "-n" not in opts:
                    scope.cwd = scope.dirstack.pop() if scope.dirstack else None
            elif program == "pushd":
                if "-n" in opts:
                    scope.dirstack.append(None)
                else:
                    scope.dirstack.append(scope.cwd)
                    scope.chdir(words[0] if words else None, physical)
            elif len(words) > 1:
                pass  # bash: too many arguments; the directory stays
            elif "CDPATH" in scope.vars or any(name == "CDPATH" for name, _ in env):
                scope.chdir(None)  # CDPATH may send a relative cd anywhere
            else:
                target = words[0] if words else "~"
                scope.chdir(None if target == "-" else target, physical)
        elif program == "hash" and len(argv) > 3 and argv[1] == "-p":
            # `hash -p /bin/bash ls`: later `ls` runs /bin/bash
            scope.aliases[argv[3]] = argv[2]
        elif program == "alias":
            for a in argv[1:]:
                name, eq, value = a.partition("=")
                if eq and DYNAMIC not in a:
                    scope.aliases[name] = value
        elif program == "set" and "--" in argv:
            rest = argv[argv.index("--") + 1 :]
            scope.positional = None if any(DYNAMIC in a for a in rest) else rest
        elif program in ("read", "mapfile", "readarray", "getopts", "printf"):
            skip_next = False
            for a in argv[1:]:
                if skip_next:
                    skip_next = False
                    if program == "printf":
                        scope.vars[a] = None
                    continue
                if a in ("-v", "-a", "-d", "-n", "-N", "-p", "-t", "-u", "-C", "-c"):
                    skip_next = True
                elif not a.startswith("-") and program != "printf":
                    scope.vars[a] = None

    def _git_dash_c(self, unit: ShellUnit, scope: _Scope) -> ShellUnit:
        """`git -C dir sub ...` runs `git sub ...` in dir: drop -C, move the unit."""
        argv = list(unit.argv)
        cwd = unit.cwd
        changed = False
        i = 1
        while i < len(argv) - 1:
            if argv[i] == "-C":
                target = argv[i + 1]
                tmp = _Scope(cwd=cwd)
                tmp.chdir(target)
                cwd = tmp.cwd
                del argv[i : i + 2]
                changed = True
                continue
            if not argv[i].startswith("-"):
                break
            i += 2 if argv[i] in ("-c", "--git-dir", "--work-tree", "--namespace") else 1
        if not changed:
            return unit
        new_argv = tuple(argv)
        dynamic = frozenset(k for k, a in enumerate(new_argv) if DYNAMIC in a)
        paths = tuple(commands.paths_for(new_argv, "git", cwd))
        # -C itself is where git reads and writes: the sandbox must see it.
        paths += (PathRef(cwd if cwd is not None else None, "read", "", "git -C"),)
        return replace(
            unit,
            argv=new_argv,
            dynamic=dynamic,
            cwd=cwd,
            paths=paths + tuple(p for p in unit.paths if p.source == "redirect"),
        )

    def _unit(
        self,
        argv: tuple[str, ...],
        env: tuple[tuple[str, str | None], ...],
        node: tree_sitter.Node,
        src: bytes,
        scope: _Scope,
        ctx: _Ctx,
        text: str | None = None,
        opaque: str | None = None,
    ) -> ShellUnit:
        program = program_name(argv[0]) if argv and DYNAMIC not in argv[0] else ""
        dynamic = frozenset(i for i, a in enumerate(argv) if DYNAMIC in a)
        if scope.exported:
            own = {name for name, _ in env}
            env = (*((k, v) for k, v in scope.exported.items() if k not in own), *env)
        paths: list[PathRef] = []
        if argv and not opaque:
            paths = commands.paths_for(argv, program, scope.cwd)
            if program.startswith(("/", "./", "../", "~")) or "/" in program:
                paths.append(PathRef(argv[0], "read", scope.cwd, "program"))
        paths.extend(ctx.redirect_paths)
        # Variables whose value is a file the command writes (or a tree it works in).
        for name, value in env:
            if value and (name in _ENV_WRITES or name.startswith("GIT_TRACE")):
                paths.append(PathRef(value, "write", scope.cwd, f"${name}"))
        unit_text = text if text is not None else _command_text(node, src)
        return ShellUnit(
            argv=argv,
            program=program,
            text=unit_text,
            pipeline=ctx.pipeline or unit_text,
            dynamic=dynamic,
            env=env,
            redirects=ctx.redirects,
            paths=tuple(paths),
            stdin=ctx.stdin if not ctx.stdin_dynamic else None,
            upstream=ctx.upstream,
            wrapped_by=ctx.wrapped_by,
            opaque=opaque,
            cwd=scope.cwd,
            shadow=ctx.shadow,
        )

    # --- redirections ----------------------------------------------------------------------

    def redirections(
        self, nodes: list[tree_sitter.Node], src: bytes, scope: _Scope, ctx: _Ctx
    ) -> tuple[list[Redirect], list[PathRef], str | None, bool, _Feed]:
        """Redirections of a command, and what the commands inside them feed it."""
        reds: list[Redirect] = []
        paths: list[PathRef] = []
        stdin: str | None = None
        stdin_dynamic = False
        feeders: set[str] = set()
        words: list[str] = []
        for r in nodes:
            start = len(self.units)
            if r.type == "file_redirect":
                reds_paths = self.file_redirect(r, src, scope, ctx)
                if reds_paths is not None:
                    reds.append(reds_paths[0])
                    paths.extend(reds_paths[1])
            elif r.type == "heredoc_redirect":
                body, dynamic = self.heredoc(r, src, scope, ctx)
                stdin, stdin_dynamic = body, dynamic
                reds.append(Redirect("<<", 0, None, None))
                # tree-sitter nests the rest of the line after `<<EOF` inside it: more
                # redirections of this command, and the commands chained or piped after it.
                op = None
                for nested in r.children:
                    if not nested.is_named:
                        if nested.type in ("|", "|&", "&&", "||", ";", "&"):
                            op = nested.type
                    elif nested.type == "file_redirect":
                        result = self.file_redirect(nested, src, scope, ctx)
                        if result is not None:
                            reds.append(result[0])
                            paths.extend(result[1])
                    elif nested.type not in ("heredoc_start", "heredoc_body", "heredoc_end"):
                        self.after_heredoc.append((op, nested, body, dynamic))
            elif r.type == "herestring_redirect":
                words = []
                for child in r.named_children:
                    words.extend(self.word(child, src, scope, ctx, split=False))
                value = " ".join(words)
                stdin, stdin_dynamic = value, DYNAMIC in value
                reds.append(Redirect("<<<", 0, None, None))
            feeders.update(u.program for u in self.units[start:] if u.program)
            words.extend(_pathlike_words(self.units[start:]))
        return reds, paths, stdin, stdin_dynamic, _Feed(frozenset(feeders), tuple(words))

    def file_redirect(
        self, node: tree_sitter.Node, src: bytes, scope: _Scope, ctx: _Ctx
    ) -> tuple[Redirect, list[PathRef]] | None:
        op = ""
        fd: int | None = None
        target_words: list[str] = []
        for child in node.children:
            if not child.is_named:
                op += _text(child, src)
            elif child.type == "file_descriptor":
                fd = int(_text(child, src)) if _text(child, src).isdigit() else None
            else:
                target_words.extend(self.word(child, src, scope, ctx, split=False))
        target = target_words[0] if len(target_words) == 1 else DYNAMIC
        if op in (">&", "<&", ">&-", "<&-") and (target.isdigit() or target == "-"):
            return Redirect(op, fd, None, None), []
        access = "read" if op in ("<", "<&") else "write"
        if op == "<>":
            access = "write"
        if DYNAMIC in target:
            return Redirect(op, fd, None, access), [PathRef(None, access, scope.cwd, "redirect")]
        if commands.is_sink(target):
            return Redirect(op, fd, target, None), []
        return Redirect(op, fd, target, access), [PathRef(target, access, scope.cwd, "redirect")]

    def heredoc(
        self, node: tree_sitter.Node, src: bytes, scope: _Scope, ctx: _Ctx
    ) -> tuple[str, bool]:
        quoted = False
        body_node = None
        for child in node.named_children:
            if child.type == "heredoc_start":
                quoted = any(q in _text(child, src) for q in ("'", '"', "\\"))
            elif child.type == "heredoc_body":
                body_node = child
        if body_node is None:
            return "", False
        text = _text(body_node, src)
        if quoted:
            return text, False
        dynamic = False
        for child in body_node.named_children:
            if child.type != "heredoc_content":
                dynamic = True
                self.substitutions(child, src, scope, ctx)
        return text, dynamic

    # --- words -----------------------------------------------------------------------------

    def substitutions(self, node: tree_sitter.Node, src: bytes, scope: _Scope, ctx: _Ctx) -> None:
        """Walk the commands hidden inside a node (substitutions in words, tests, ...)."""
        if node.type in ("command_substitution", "process_substitution"):
            self.substitution(node, src, scope, ctx)
            return
        for child in node.named_children:
            if child.type in ("command", "pipeline", "list", "redirected_statement"):
                self.statement(child, src, scope, ctx)
            else:
                self.substitutions(child, src, scope, ctx)

    def substitution(self, node: tree_sitter.Node, src: bytes, scope: _Scope, ctx: _Ctx) -> None:
        inner_ctx = replace(
            ctx, pipeline="", redirects=(), redirect_paths=(), stdin=None, stdin_dynamic=False
        )
        children = node.named_children
        if (
            node.type == "command_substitution"
            and len(children) == 1
            and children[0].type == "file_redirect"
        ):
            # `$(< file)` is bash's cat.
            result = self.file_redirect(children[0], src, scope, ctx)
            if result is not None:
                _, paths = result
                unit = ShellUnit(
                    argv=("cat", *(p.raw or DYNAMIC for p in paths)),
                    program="cat",
                    text=_text(node, src),
                    pipeline=_text(node, src),
                    paths=tuple(replace(p, access="read") for p in paths),
                    cwd=scope.cwd,
                    wrapped_by=ctx.wrapped_by,
                )
                self.emit(unit)
            return
        for child in children:
            self.statement(child, src, scope.copy(), inner_ctx)

    def word(
        self, node: tree_sitter.Node, src: bytes, scope: _Scope, ctx: _Ctx, split: bool = True
    ) -> list[str]:
        """The words a node expands to; DYNAMIC marks what is unknown before run time."""
        t = node.type
        if t == "word":
            return brace_expand(_unescape_word(_text(node, src)))
        if t == "number":
            return [_text(node, src)]
        if t == "raw_string":
            return [_literal_tilde(_text(node, src)[1:-1])]
        if t == "ansi_c_string":
            return [_literal_tilde(_ansi_c(_text(node, src)[2:-1]))]
        if t in ("string", "translated_string"):
            inner = _text(node, src)[1:-1]
            if inner in ("$@", "${@}") and scope.positional is not None and split:
                return list(scope.positional)  # "$@" keeps each argument a word
            return [self._string(node, src, scope, ctx)]
        if t == "concatenation":
            parts = [self.word(c, src, scope, ctx, split=False) for c in node.named_children]
            text = _text(node, src)
            # Unquoted glob/brace characters between parts (`"${HOME}/"*`) are in the text
            # but not in the children.
            out = ""
            pos = node.start_byte
            for c, p in zip(node.named_children, parts, strict=True):
                gap = src[pos : c.start_byte].decode("utf-8", "replace")
                out += gap + ("".join(p) if len(p) == 1 else DYNAMIC)
                pos = c.end_byte
                if len(out) > limits.COMMAND_CHARS:  # `$a$a$a…` of a long `a`
                    self.overflow = self.overflow or self._grown("a word")
                    return [DYNAMIC]
            out += src[pos : node.end_byte].decode("utf-8", "replace")
            return brace_expand(out) if "{" in text and "," in text else [out]
        if t in ("simple_expansion", "expansion"):
            value = self._expansion(node, src, scope, ctx)
            if value is None:
                return [DYNAMIC]
            if split and not scope.ifs_changed and (" " in value or "\t" in value):
                return value.split()
            if split and scope.ifs_changed:
                return [DYNAMIC]
            return [value]
        if t in ("command_substitution", "process_substitution"):
            self.substitution(node, src, scope, ctx)
            if t == "process_substitution":
                return ["/dev/fd/63"]
            if _PWD_SUBSTITUTION.fullmatch(_text(node, src)) and scope.cwd is not None:
                return ["."]  # `$(pwd)` is where the command runs, as `$PWD` is
            return [DYNAMIC]
        if t == "arithmetic_expansion":
            self.substitutions(node, src, scope, ctx)
            return [DYNAMIC]
        self.substitutions(node, src, scope, ctx)
        return [DYNAMIC]

    def _string(self, node: tree_sitter.Node, src: bytes, scope: _Scope, ctx: _Ctx) -> str:
        out: list[str] = []
        size = 0  # of what is in `out`: joined once, at the end (a join per piece is quadratic)
        pos = node.start_byte + (2 if node.type == "translated_string" else 1)
        end = node.end_byte - 1
        for c in node.named_children:
            chunk = _unescape_dq(src[pos : c.start_byte].decode("utf-8", "replace"))
            out.append(_literal_tilde(chunk) if not out else chunk)
            size += len(out[-1])
            if c.type == "string_content":
                chunk = _unescape_dq(_text(c, src))
                out.append(_literal_tilde(chunk) if not size else chunk)
            elif c.type in ("simple_expansion", "expansion"):
                value = self._expansion(c, src, scope, ctx)
                out.append(DYNAMIC if value is None else value)
            else:
                out.append("".join(self.word(c, src, scope, ctx, split=False)))
            size += len(out[-1])
            if size > limits.COMMAND_CHARS:  # `"$a$a$a…"` of a long `a`
                self.overflow = self.overflow or self._grown("a string")
                return DYNAMIC
            pos = c.end_byte
        out.append(_unescape_dq(src[pos:end].decode("utf-8", "replace")))
        return "".join(out)

    def _expansion(
        self, node: tree_sitter.Node, src: bytes, scope: _Scope, ctx: _Ctx
    ) -> str | None:
        text = _text(node, src)
        if node.type == "simple_expansion":
            return self._lookup(text[1:], scope)
        # ${...}: the common forms; anything else is unknown.
        inner = text[2:-1]
        m = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*|[0-9@*#?$!-])(?:(:?[-=?+])(.*))?", inner, re.S)
        if not m:
            self.substitutions(node, src, scope, ctx)
            # tree-sitter keeps the pattern of `${x#...}`, `${x/a/b}`, `${x^^...}` as text; a
            # substitution in it still runs.
            for child in node.named_children:
                if child.type in ("regex", "word") and (
                    "$(" in _text(child, src) or "`" in _text(child, src)
                ):
                    self.nested_script(_text(child, src), scope, ctx, via="expansion")
            return None
        name, op, arg = m.group(1), m.group(2), m.group(3)
        value = self._lookup(name, scope)
        if op is None:
            return value
        # Substitutions inside the default word run too.
        for child in node.named_children:
            if child.type not in ("variable_name", "special_variable_name"):
                self.substitutions(child, src, scope, ctx)
        if op in (":?", "?"):
            return value
        if op in (":-", "-", ":=", "="):
            if value is not None and (value or op in ("-", "=")):
                return value
            default_nodes = [
                c
                for c in node.named_children
                if c.type not in ("variable_name", "special_variable_name")
            ]
            if value is None:
                return None  # unknown: could be the variable or the default
            words = [self.word(c, src, scope, ctx, split=False) for c in default_nodes]
            return "".join("".join(w) for w in words) if words else arg
        return None

    @staticmethod
    def _lookup(name: str, scope: _Scope) -> str | None:
        if name in scope.vars:
            return scope.vars[name]
        if name == "HOME":
            return "~"
        if name == "PWD":
            return "." if scope.cwd is not None else None
        if name.isdigit():
            if name == "0":
                return scope.vars.get("0")
            k = int(name)
            if scope.positional is not None:
                return scope.positional[k - 1] if k <= len(scope.positional) else ""
            return None
        if name in ("@", "*") and scope.positional is not None:
            return " ".join(scope.positional)
        return None


# --- helpers ---------------------------------------------------------------------------------


def _text(node: tree_sitter.Node | None, src: bytes) -> str:
    if node is None:
        return ""
    return src[node.start_byte : node.end_byte].decode("utf-8", "replace")


def _command_text(node: tree_sitter.Node, src: bytes) -> str:
    """The command's own text, without heredoc bodies (those are data, not the command)."""
    text = _text(node, src)
    if node.type == "redirected_statement":
        for child in node.named_children:
            if child.type == "heredoc_redirect":
                for c in child.named_children:
                    if c.type == "heredoc_body":
                        body = _text(c, src)
                        text = text.replace(body, "", 1)
    return text


def _first_error(root: tree_sitter.Node, src: bytes) -> str:
    stack = [root]
    while stack:
        n = stack.pop()
        if n.type == "ERROR" or n.is_missing:
            line, col = n.start_point
            near = _text(n, src)[:20]
            what = f"missing {n.type}" if n.is_missing else f"unexpected {near!r}"
            return f"syntax error at {line + 1}:{col + 1}: {what}"
        stack.extend(reversed(n.children))
    return "syntax error"


def _literal_tilde(text: str) -> str:
    """A quoted `~` is a directory named ~, not $HOME; values use a bare ~ for $HOME."""
    return "./" + text if text.startswith("~") else text


def _unescape_word(text: str) -> str:
    if "\\" not in text:
        return text
    return re.sub(r"\\\n|\\(.)", lambda m: m.group(1) or "", text, flags=re.S)


def _unescape_dq(text: str) -> str:
    if "\\" not in text:
        return text
    return re.sub(r'\\\n|\\([$`"\\])', lambda m: m.group(1) or "", text)


_ANSI = {
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "a": "\a",
    "b": "\b",
    "e": "\x1b",
    "E": "\x1b",
    "f": "\f",
    "v": "\v",
    "\\": "\\",
    "'": "'",
    '"': '"',
    "?": "?",
}


def _ansi_c(body: str) -> str:
    def sub(m: re.Match[str]) -> str:
        s = m.group(1)
        if s[0] in _ANSI:
            return _ANSI[s[0]]
        try:
            if s[0] in "xuU":
                return chr(int(s[1:], 16))
            if s[0] in "01234567":
                return chr(int(s, 8))
        except (ValueError, OverflowError):
            return DYNAMIC
        if s[0] == "c":
            return chr(ord(s[1]) & 0x1F) if len(s) > 1 else ""
        return "\\" + s

    return re.sub(
        r"\\(x[0-9A-Fa-f]{1,2}|u[0-9A-Fa-f]{1,4}|U[0-9A-Fa-f]{1,8}|[0-7]{1,3}|c.|.)",
        sub,
        body,
        flags=re.S,
    )


_BRACE = re.compile(r"\{([^{}\s]*,[^{}\s]*)\}")


def brace_expand(word: str, limit: int = 32) -> list[str]:
    m = _BRACE.search(word)
    if not m or "\x00" in word[: m.start()]:
        return [word]
    out: list[str] = []
    for alt in m.group(1).split(","):
        for rest in brace_expand(word[: m.start()] + alt + word[m.end() :], limit):
            out.append(rest)
            if len(out) >= limit:
                return out
    return out


_SAFE_WORD = re.compile(r"[A-Za-z0-9_@%+=:,./~-]+")


def _quote(word: str) -> str:
    if word and _SAFE_WORD.fullmatch(word):
        return word
    return "'" + word.replace("'", "'\"'\"'") + "'"


# A plain simple command: words of characters that mean nothing to Bash but themselves,
# separated by blanks. Such a line needs no grammar: its words are its argv. Anything else
# (quotes, `$`, globs, braces, operators, comments, newlines, an assignment or a reserved
# word up front) goes to tree-sitter. tests/test_shell.py checks that both give the same.
_PLAIN = re.compile(r"[ \t]*[A-Za-z0-9_./:@%+,~-]+(?:[ \t]+[A-Za-z0-9_./:@%+,=~-]+)*[ \t]*")
_NOT_PLAIN_FIRST = frozenset(
    "if then else elif fi case esac for select while until do done function time coproc in"
    " declare typeset local export readonly unset".split()
)


def _plain_words(command: str) -> tuple[str, ...] | None:
    if _PLAIN.fullmatch(command) is None:
        return None
    words = tuple(command.split())
    if words[0] in _NOT_PLAIN_FIRST or words[0].startswith("~"):
        return None
    return words


def _too_much_for_tree_sitter(command: str) -> str | None:
    """Shapes whose parse time grows with the square of their size in tree-sitter-bash,
    counted before parsing (`leashd.limits`): `|` (error recovery on a long pipeline) and `$`
    on one line (a heredoc line's expansions)."""
    pipes = command.count("|") - 2 * command.count("||")
    if pipes > limits.PIPES:
        return f"a command with {pipes:,} '|' (the limit is {limits.PIPES:,})"
    if command.count("$") > limits.LINE_EXPANSIONS:
        dollars = max(line.count("$") for line in command.split("\n"))
        if dollars > limits.LINE_EXPANSIONS:
            return f"a line with {dollars:,} '$' (the limit is {limits.LINE_EXPANSIONS:,})"
    return None


def parse(command: str, fast: bool = True) -> ParsedCommand:
    """Parse a Bash command into units. Never raises: failures make the result opaque.

    `fast=False` always uses tree-sitter (the differential tests compare both ways)."""
    why = _too_much_for_tree_sitter(command)
    if why is not None:
        return ParsedCommand(command, (), error=why, too_large=why)
    walker = _Walker()
    try:
        words = _plain_words(command) if fast else None
        if words is not None and len(words) > limits.NODES:  # a word is a node to tree-sitter
            why = f"more than {limits.NODES:,} syntax nodes"
            return ParsedCommand(command, (), error=why, too_large=why)
        if words is not None:
            walker.run(words, (), None, b"", _Scope(), _Ctx(), text=command.strip(" \t"))
            error = None
        else:
            error = walker.script(command, _Scope(), _Ctx())
            if "\\\n" in command:
                # Bash removes a backslash-newline even inside a word (`r\<newline>m`), where
                # tree-sitter splits the word; the joined line is walked too (stricter of both).
                walker.script(command.replace("\\\n", ""), _Scope(), _Ctx())
    except RecursionError:
        why = "the command nests too deeply to analyse"
        return ParsedCommand(command, (), error=why, too_large=why)
    except _ParseTooSlow:
        why = f"the command could not be parsed within {limits.PARSE_SECONDS:g} s"
        return ParsedCommand(command, (), error=why, too_large=why)
    except Exception as exc:
        return ParsedCommand(
            command,
            tuple(walker.units),
            error=f"internal parser failure: {type(exc).__name__}: {exc}",
        )
    if walker.overflow:
        error = error or walker.overflow
    return ParsedCommand(
        command, tuple(walker.units), error, tuple(walker.notes), too_large=walker.overflow
    )
