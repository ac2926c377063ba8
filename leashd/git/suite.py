"""`/git SUBCOMMAND …` from a chat: parsed against a closed list of what each subcommand may
take, run with the real git in the session's directory, answered with its output and the
buttons for the obvious next step.

The user sends these, not the agent, so they do not go through the gate; but they come from a
phone, typed in a hurry, so nothing destructive is on offer: no `--force`, no `reset`, no
`checkout -- FILE` (it throws away changes), no option git would read a program from
(`--upload-pack`, `-c`, `--exec`). Each run is audited as the user's (`kind: git`, `by:
user`), and only in an approved directory.
"""

from __future__ import annotations

import asyncio
import os
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

SUBCOMMANDS = ("status", "branch", "checkout", "diff", "log", "add", "commit", "push", "pull",
               "merge")  # fmt: skip
USAGE = (
    "/git status · branch [NEW] · checkout BRANCH | -b NEW · diff [--staged] [--stat] [PATH…] · "
    "log [N] · add -A | PATH… · commit -m MESSAGE · push [REMOTE [BRANCH]] · pull · "
    "merge BRANCH | --abort · resolve (the agent resolves a merge's conflicts)"
)
TIMEOUT = 60.0  # seconds for a local command
NETWORK_TIMEOUT = 180.0  # push and pull
SHOWN_CHARS = 3500  # longer output goes as a document
OUTPUT_BYTES = 4 << 20  # read from git at most; the rest is cut, and said
_LOG_DEFAULT = 20
_LOG_MAX = 500


@dataclass(frozen=True)
class Reply:
    """What to show: the text, buttons as (label, command), and a document for long output."""

    text: str
    ok: bool = True
    actions: tuple[tuple[str, str], ...] = ()
    document: tuple[str, bytes] | None = None  # (file name, content)
    conflicts: tuple[str, ...] = ()  # a merge stopped on these paths


class Usage(Exception):
    """A /git line this suite does not take; the message says what it does take."""


Audit = Callable[[dict[str, Any]], None]


class GitSuite:
    def __init__(self, approved: Callable[[], Sequence[str]], audit: Audit | None = None,
                 git: str = "git") -> None:  # fmt: skip
        self._approved = approved
        self._audit = audit
        self._git = git

    async def handle(self, cwd: str, line: str, *, who: str, session: str = "-",
                     chat: str = "-") -> Reply:  # fmt: skip
        """`line` is what follows `/git`. Never raises for the user's input or git's failure."""
        try:
            words = shlex.split(line)
        except ValueError as exc:
            return Reply(f"Cannot read that: {exc}.\n{USAGE}", ok=False)
        if not words:
            return Reply(USAGE, ok=False)
        where = self._inside(cwd)
        if where is None:
            return Reply(f"{cwd} is not in an approved directory: /git runs only there.", ok=False)
        sub, args = words[0].lower(), words[1:]
        try:
            argv = self._argv(sub, args, where)
        except Usage as exc:
            return Reply(f"{exc}\n{USAGE}", ok=False)
        timeout = NETWORK_TIMEOUT if sub in ("push", "pull") else TIMEOUT
        code, out = await self._run(argv, where, timeout)
        self._record(who, session, chat, where, argv, code)
        return await self._reply(sub, args, argv, code, out, where)

    # --- what each subcommand may take --------------------------------------------------

    def _argv(self, sub: str, args: list[str], cwd: str) -> list[str]:
        if sub not in SUBCOMMANDS:
            raise Usage(f"/git {sub} is not on offer.")
        if sub == "status":
            _none(sub, args)
            return ["status", "--short", "--branch"]
        if sub == "branch":
            if not args:
                return ["branch", "--list", "--format=%(HEAD) %(refname:short)"]
            if len(args) == 1 and not args[0].startswith("-"):
                return ["branch", "--", _ref(args[0])]
            raise Usage("/git branch lists branches, or makes one: /git branch NEW.")
        if sub == "checkout":
            if len(args) == 1 and not args[0].startswith("-"):
                return ["checkout", _ref(args[0]), "--"]
            if len(args) == 2 and args[0] == "-b":
                return ["checkout", "-b", _ref(args[1]), "--"]
            raise Usage("/git checkout takes a branch (or -b NEW); never files.")
        if sub == "diff":
            flags, paths = _split(args, {"--staged", "--cached", "--stat"})
            return ["diff", "--no-ext-diff", "--no-textconv", *flags, "--",
                    *self._paths(paths, cwd)]  # fmt: skip
        if sub == "log":
            n = _LOG_DEFAULT
            if len(args) == 1 and args[0].lstrip("-n").isdigit():
                n = min(int(args[0].lstrip("-n")), _LOG_MAX)
            elif args:
                raise Usage("/git log takes a number of commits at most.")
            return ["log", "--oneline", "--decorate", f"-n{max(n, 1)}"]
        if sub == "add":
            if args == ["-A"] or args == ["--all"] or args == ["."]:
                return ["add", "--all", "--", "."]
            _, paths = _split(args, set())
            if not paths:
                raise Usage("/git add takes -A or the paths to add.")
            return ["add", "--", *self._paths(paths, cwd)]
        if sub == "commit":
            if args == ["--no-edit"]:  # a merge's own message, after its conflicts are resolved
                return ["commit", "--no-edit"]
            if len(args) >= 2 and args[0] == "-m":
                message = " ".join(args[1:]).strip()
                if message:
                    return ["commit", "-m", message]
            raise Usage("/git commit needs a message: /git commit -m MESSAGE.")
        if sub == "push":
            if any(a.startswith("-") or a.startswith("+") for a in args):
                raise Usage("/git push takes a remote and a branch, no options (never --force).")
            if len(args) > 2:
                raise Usage("/git push takes a remote and a branch at most.")
            return ["push", *(_ref(a) for a in args)]
        if sub == "pull":
            _none(sub, args)
            return ["pull", "--ff-only"]
        if args == ["--abort"]:  # merge
            return ["merge", "--abort"]
        if len(args) == 1 and not args[0].startswith("-"):
            return ["merge", "--no-edit", _ref(args[0])]
        raise Usage("/git merge takes one branch (or --abort).")

    async def conflicts(self, cwd: str) -> tuple[str, ...]:
        """The paths a stopped merge left in conflict (none outside an approved directory)."""
        where = self._inside(cwd)
        if where is None:
            return ()
        code, out = await self._run(["diff", "--name-only", "--diff-filter=U"], where, TIMEOUT)
        return tuple(p for p in out.splitlines() if p.strip()) if code == 0 else ()

    async def resolution(self, cwd: str) -> Reply:
        """After the agent's turn on a merge's conflicts: what it staged, what is left in
        conflict, and the buttons to commit the merge, try again or abort it."""
        where = self._inside(cwd)
        if where is None:
            return Reply(f"{cwd} is not in an approved directory.", ok=False)
        left = await self.conflicts(where)
        _, diff = await self._run(["diff", "--cached", "--no-ext-diff", "--no-textconv"], where,
                                  TIMEOUT)  # fmt: skip
        again = ("🔁 Retry", "/git resolve")
        abort = ("✋ Abort the merge", "/git merge --abort")
        if left:
            shown = "\n".join(f"• {p}" for p in left)
            return Reply(f"Still in conflict:\n{shown}", ok=False, actions=(again, abort),
                         conflicts=left)  # fmt: skip
        head = "The agent's resolution (staged, not committed):\n"
        actions = (("✅ Commit the merge", "/git commit --no-edit"), again, abort)
        body = diff.strip() or "(no changes staged)"
        if len(head) + len(body) > SHOWN_CHARS:
            cut = body[:SHOWN_CHARS].rsplit("\n", 1)[0]
            return Reply(f"{head}{cut}\n… the whole diff is attached.", actions=actions,
                         document=("merge-resolution.diff", diff.encode()))  # fmt: skip
        return Reply(head + body, actions=actions)

    def _inside(self, cwd: str) -> str | None:
        real = os.path.realpath(cwd)
        for d in self._approved():
            root = os.path.realpath(d)
            if real == root or real.startswith(root.rstrip("/") + "/"):
                return real
        return None

    def _paths(self, paths: list[str], cwd: str) -> list[str]:
        """Paths as given, each inside an approved directory (`..` and links resolved)."""
        out = []
        for p in paths:
            full = os.path.realpath(os.path.join(cwd, os.path.expanduser(p)))
            if self._inside(full) is None:
                raise Usage(f"{p} is outside the approved directories.")
            out.append(os.path.relpath(full, cwd))
        return out

    # --- running git ------------------------------------------------------------------

    async def _run(self, argv: list[str], cwd: str, timeout: float) -> tuple[int, str]:
        env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_PAGER": "cat", "PAGER": "cat",
               "GIT_EDITOR": "true", "GIT_ASKPASS": "", "SSH_ASKPASS": ""}  # fmt: skip
        env.pop("GIT_DIR", None)
        env.pop("GIT_WORK_TREE", None)
        try:
            proc = await asyncio.create_subprocess_exec(
                self._git, "--no-pager", *argv, cwd=cwd, env=env,
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
        except OSError as exc:
            return 127, f"git could not run: {exc}"
        try:
            assert proc.stdout is not None
            data = await asyncio.wait_for(_read_up_to(proc.stdout, OUTPUT_BYTES + 1), timeout)
            cut = len(data) > OUTPUT_BYTES
            if cut:
                proc.kill()  # the rest is not wanted: git must not block on a full pipe
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return 124, f"git {argv[0]} did not finish within {timeout:g} s and was stopped."
        text = data[:OUTPUT_BYTES].decode("utf-8", "replace")
        if cut:
            text += f"\n… (cut at {OUTPUT_BYTES:,} bytes)"
        return proc.returncode or 0, text

    def _record(self, who: str, session: str, chat: str, cwd: str, argv: list[str],
                code: int) -> None:  # fmt: skip
        if self._audit is None:
            return
        self._audit({"event": argv[0], "by": "user", "who": who, "session": session,
                     "chat": chat, "cwd": cwd, "argv": ["git", *argv], "exit": code})  # fmt: skip

    # --- what to show -----------------------------------------------------------------

    async def _reply(self, sub: str, args: list[str], argv: list[str], code: int, out: str,
                     cwd: str) -> Reply:  # fmt: skip
        body = out.strip() or ("(nothing)" if code == 0 else f"git exited {code}")
        if argv[:2] == ["merge", "--abort"] and code == 0 and not out.strip():
            body = "The merge was aborted: the branch and its files are as they were before it."
        if sub == "merge" and code != 0 and argv[1] != "--abort":
            _, listed = await self._run(["diff", "--name-only", "--diff-filter=U"], cwd, TIMEOUT)
            conflicts = tuple(p for p in listed.splitlines() if p.strip())
            if conflicts:
                shown = "\n".join(f"• {p}" for p in conflicts)
                return Reply(f"The merge stopped on conflicts in:\n{shown}", ok=False,
                             actions=(("🤖 Resolve with AI", "/git resolve"),
                                      ("✋ Abort the merge", "/git merge --abort")),
                             conflicts=conflicts)  # fmt: skip
        actions: tuple[tuple[str, str], ...] = ()
        if code == 0:
            actions = self._next_steps(sub, out)
        if sub == "branch" and code == 0 and not args:
            body = "\n".join(("• " if line.startswith("*") else "  ") + line[2:]
                             for line in out.splitlines()) or "(no branches yet)"  # fmt: skip
        if len(body) > SHOWN_CHARS:
            head = body[:SHOWN_CHARS].rsplit("\n", 1)[0]
            return Reply(f"{head}\n… the whole output is attached.", ok=code == 0,
                         actions=actions, document=(f"git-{sub}.txt", out.encode()))  # fmt: skip
        return Reply(body, ok=code == 0, actions=actions)

    def _next_steps(self, sub: str, out: str) -> tuple[tuple[str, str], ...]:
        if sub == "status":
            changed = [line for line in out.splitlines() if line and not line.startswith("##")]
            if changed:
                return (("➕ Add all", "/git add -A"), ("📝 Commit", "/git commit"),
                        ("🔍 Diff", "/git diff"))  # fmt: skip
        elif sub == "branch":
            names = [line[2:] for line in out.splitlines() if line[:1] == " " and line[2:]]
            return tuple((f"⎇ {n}", f"/git checkout {n}") for n in names[:20])
        elif sub == "commit":
            return (("⬆️ Push", "/git push"),)
        elif sub == "add":
            return (("📝 Commit", "/git commit"), ("🔍 Staged diff", "/git diff --staged"))
        return ()


async def _read_up_to(stream: asyncio.StreamReader, limit: int) -> bytes:
    """Everything up to EOF, or `limit` bytes (a single `read(n)` returns what is there)."""
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await stream.read(min(1 << 16, limit - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _none(sub: str, args: list[str]) -> None:
    if args:
        raise Usage(f"/git {sub} takes nothing more.")


def _split(args: list[str], flags: set[str]) -> tuple[list[str], list[str]]:
    """Known flags, then paths; any other option is refused (git options can run programs)."""
    out_flags, paths = [], []
    for a in args:
        if a == "--":
            continue
        if a.startswith("-"):
            if a not in flags:
                raise Usage(f"{a} is not on offer here.")
            out_flags.append(a)
        else:
            paths.append(a)
    return out_flags, paths


def _ref(name: str) -> str:
    """A branch or remote name git itself would accept, never an option."""
    if (not name or name.startswith("-") or ".." in name or any(c in name for c in " ~^:?*[\\")
            or name.endswith((".lock", "/", ".")) or "@{" in name or len(name) > 200):  # fmt: skip
        raise Usage(f"{name!r} is not a branch name.")
    return name
