"""Pattern languages of the policy (wildcards, path globs, argv prefixes, flags) as regexes.

Every translation produces syntax that both google-re2 and the stdlib `re` accept, so the
compiled evaluator can put them in one RE2 Set and the reference interpreter can use `re`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

from leashd.shell import DYNAMIC


def _class(pattern: str, i: int) -> tuple[str, int] | None:
    """Translate a [...] class starting at pattern[i]; None if it is not closed."""
    j = i + 1
    if j < len(pattern) and pattern[j] in "!^":
        j += 1
    if j < len(pattern) and pattern[j] == "]":
        j += 1
    while j < len(pattern) and pattern[j] != "]":
        j += 1
    if j >= len(pattern):
        return None
    body = pattern[i + 1 : j]
    negate = body[:1] in ("!", "^")
    if negate:
        body = body[1:]
    body = body.replace("\\", "\\\\").replace("[", "\\[")
    return ("[^" if negate else "[") + body + "]", j + 1


def _translate(pattern: str, star: str, one: str, globstar: bool) -> str:
    """Translate `*`, `?`, `[...]`, `{a,b}` (and `**` when `globstar`) into regex syntax."""
    out = []
    i = 0
    while i < len(pattern):
        if globstar and pattern.startswith("**/", i):
            out.append("(?:[^\n]*/)?")
            i += 3
            continue
        if globstar and pattern.startswith("/**", i) and i + 3 == len(pattern):
            out.append("(?:/[^\n]*)?")
            i += 3
            continue
        if globstar and pattern.startswith("**", i):
            out.append("[^\n]*")
            i += 2
            continue
        ch = pattern[i]
        if ch == "*":
            out.append(star)
        elif ch == "?":
            out.append(one)
        elif ch == "[" and (cls := _class(pattern, i)) is not None:
            out.append(cls[0])
            i = cls[1]
            continue
        elif ch == "{" and "}" in pattern[i:] and "," in pattern[i : pattern.index("}", i)]:
            end = pattern.index("}", i)
            alts = pattern[i + 1 : end].split(",")
            out.append("(?:" + "|".join(_translate(a, star, one, globstar) for a in alts) + ")")
            i = end + 1
            continue
        else:
            out.append(re.escape(ch))
        i += 1
    return "".join(out)


def wildcard_regex(pattern: str) -> str:
    """A shell wildcard (`*`, `?`, `[...]`, `{a,b}`) on one word, as a full-match regex."""
    return _translate(pattern, ".*", ".", globstar=False)


def glob_regex(glob: str) -> str:
    """A gitignore-style path glob as a regex over absolute (or ~/...) paths.

    `/x` and `~/x` are anchored; any other glob matches at any depth (`*.pem`, `.git/hooks`).
    `**` spans directories, `*` and `?` stay within one. A glob that names a directory
    matches everything inside it too.
    """
    body = glob.rstrip("/") or "/"
    if body == "/":
        return "^/[^\n]*$"
    prefix = "^" if glob.startswith(("/", "~")) else "^(?:[^\n]*/)?"
    return prefix + _translate(body, "[^/]*", "[^/]", globstar=True) + "(?:/[^\n]*)?$"


@lru_cache(maxsize=8192)
def compiled_wildcard(pattern: str, ignore_case: bool = False) -> re.Pattern[str]:
    return re.compile(wildcard_regex(pattern) + r"\Z", re.I | re.S if ignore_case else re.S)


@lru_cache(maxsize=8192)
def compiled_glob(glob: str, ignore_case: bool) -> re.Pattern[str]:
    return re.compile(glob_regex(glob), re.I if ignore_case else 0)


def wildcard_match(pattern: str, word: str, ignore_case: bool = False) -> bool:
    if "*" not in pattern and "?" not in pattern and "[" not in pattern and "{" not in pattern:
        return pattern == word if not ignore_case else pattern.lower() == word.lower()
    return compiled_wildcard(pattern, ignore_case).match(word) is not None


def any_wildcard(patterns: Sequence[str], word: str, ignore_case: bool = False) -> bool:
    return any(wildcard_match(p, word, ignore_case) for p in patterns)


# --- argv prefixes ----------------------------------------------------------------------------


def token_matches(alternatives: tuple[str, ...], word: str, dynamic: bool) -> bool:
    if "*" in alternatives or "**" in alternatives:
        return True
    if dynamic:
        return False  # a word only known at run time matches nothing but a wildcard
    return any_wildcard(alternatives, word)


def argv_matches(
    tokens: tuple[tuple[str, ...], ...],
    argv: Sequence[str],
    program: str,
    dynamic: frozenset[int],
) -> bool:
    """Does argv start with the pattern? Token 0 is matched against the program name."""
    words = [program, *argv[1:]] if argv else []

    def at(ti: int, wi: int) -> bool:
        if ti == len(tokens):
            return True  # a prefix: the rest of argv is free
        alts = tokens[ti]
        if alts == ("$",):
            return wi == len(words) and at(ti + 1, wi)
        if alts == ("**",):
            return any(at(ti + 1, k) for k in range(wi, len(words) + 1))
        if wi >= len(words):
            return False
        dyn = wi in dynamic or DYNAMIC in words[wi]
        return token_matches(alts, words[wi], dyn) and at(ti + 1, wi + 1)

    return at(0, 0)


# --- flags --------------------------------------------------------------------------------------

_SHORT_CLUSTER = re.compile(r"^-[A-Za-z0-9]{2,}$")


def flag_present(flag: str, argv: Sequence[str], dynamic: frozenset[int]) -> bool:
    """Is `flag` given anywhere in argv (before `--`)?

    `-f` is also found inside a cluster of short flags (`-uf`, `-rf`); `--force` also as
    `--force=...`; a flag may be a wildcard (`--force*`).
    """
    short = len(flag) == 2 and flag[0] == "-" and flag[1] != "-"
    for i, tok in enumerate(argv[1:], 1):
        if tok == "--":
            return False
        if i in dynamic or not tok.startswith("-"):
            continue
        if short:
            if tok == flag or (_SHORT_CLUSTER.match(tok) and flag[1] in tok[1:]):
                return True
            continue
        name = tok.split("=", 1)[0] if tok.startswith("--") else tok
        if wildcard_match(flag, name) or wildcard_match(flag, tok):
            return True
    return False
