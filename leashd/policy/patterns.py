"""Pattern languages of the policy (wildcards, path globs, argv prefixes, flags) as regexes.

Every translation produces syntax that both google-re2 and the stdlib `re` accept, so the
compiled evaluator can put them in one RE2 Set and the reference interpreter can use `re`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

from leashd.shell import DYNAMIC


def _class(pattern: str, i: int, neg_extra: str = "") -> tuple[str, int] | None:
    """Translate a [...] class starting at pattern[i]; None if it is not closed.

    `neg_extra` is added to a negated class: characters it must never match (separators).
    """
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
    if not negate:
        return "[" + body + "]", j + 1
    # The separators go first, but after a leading `]` (`[!]x]`), which is a member there;
    # at the end they could form a range with a trailing `-`.
    lead = "]" if body.startswith("]") else ""
    return "[^" + lead + neg_extra + body[len(lead) :] + "]", j + 1


def _translate(pattern: str, star: str, one: str, globstar: bool, neg_extra: str = "") -> str:
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
        elif ch == "[" and (cls := _class(pattern, i, neg_extra)) is not None:
            out.append(cls[0])
            i = cls[1]
            continue
        elif ch == "{" and "}" in pattern[i:] and "," in pattern[i : pattern.index("}", i)]:
            end = pattern.index("}", i)
            alts = pattern[i + 1 : end].split(",")
            out.append(
                "(?:" + "|".join(_translate(a, star, one, globstar, neg_extra) for a in alts) + ")"
            )
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


def token_matches(
    alternatives: tuple[str, ...], word: str, dynamic: bool, lenient: bool = False
) -> bool:
    """Does one argv word match one pattern token? A word only known at run time matches
    nothing but a bare wildcard, so it never earns an allow. With `lenient` (rules that ask)
    its unknown parts match anything a wildcard does: `-exec="$X"` matches `-exec=*` and
    `"$PLUGIN"` matches `[!n]*`, but not a literal `--output`."""
    if "*" in alternatives or "**" in alternatives:
        return True
    if dynamic:
        return lenient and any_wildcard(alternatives, dynamic_spelling(word))
    return any_wildcard(alternatives, word)


def argv_matches(
    tokens: tuple[tuple[str, ...], ...],
    argv: Sequence[str],
    program: str,
    dynamic: frozenset[int],
    lenient: bool = False,
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
        # the first token names the program: never lenient (a computed name is opaque)
        return token_matches(alts, words[wi], dyn, lenient and ti > 0) and at(ti + 1, wi + 1)

    return at(0, 0)


# --- flags --------------------------------------------------------------------------------------

_SHORT_CLUSTER = re.compile(r"-[A-Za-z0-9]{2,}")


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
            if tok == flag or (_SHORT_CLUSTER.fullmatch(tok) and flag[1] in tok[1:]):
                return True
            continue
        name = tok.split("=", 1)[0] if tok.startswith("--") else tok
        if wildcard_match(flag, name) or wildcard_match(flag, tok):
            return True
    return False


# --- argv and flags as regexes over an encoded token string -------------------------------
#
# The compiled evaluator matches argv patterns and flags with one multi-pattern search per
# unit instead of a backtracking walk per rule. A unit's words are encoded as
# `word SEP word SEP ...`; a word only known at run time is the single character DYN, which
# only a bare `*`/`**` token accepts, exactly as `token_matches` decides. Words that contain
# SEP or DYN themselves cannot be encoded; `encode_words` returns None and the caller falls
# back to `argv_matches` / `flag_present`.

SEP = "\x00"
DYN = "\x01"
_NOT_SEP = r"[^\x00]"
_TOKEN_STAR = r"[^\x00\x01]*"
_TOKEN_ONE = r"[^\x00\x01]"
_SEPARATORS = r"\x00\x01"


def dynamic_spelling(word: str) -> str:
    """A partly known word with each unknown part as DYN (`-exec=$X` is `-exec=` DYN)."""
    return word.replace(DYNAMIC, DYN) if DYNAMIC in word else DYN


def encode_words(
    words: Sequence[str], dynamic: frozenset[int], offset: int = 0, keep_known: bool = False
) -> str | None:
    """`words` as a token string; `offset` is the argv index of words[0] (for `dynamic`).
    A dynamic word is DYN, or with `keep_known` its known parts around DYN."""
    out = []
    for k, w in enumerate(words):
        if (k + offset) in dynamic or DYNAMIC in w:
            d = dynamic_spelling(w) if keep_known else DYN
            if SEP in d:
                return None
            out.append(d)
        elif SEP in w or DYN in w:
            return None
        else:
            out.append(w)
        out.append(SEP)
    return "".join(out)


def _token_body(alternatives: tuple[str, ...], lenient: bool = False) -> str | None:
    """One token's alternatives as a regex over one encoded word; None: any word at all."""
    if "*" in alternatives or "**" in alternatives:
        return None
    # Lenient tokens let wildcards also cover DYN, the unknown parts of a dynamic word.
    star, one, neg = (
        (_NOT_SEP + "*", _NOT_SEP, r"\x00") if lenient else (_TOKEN_STAR, _TOKEN_ONE, _SEPARATORS)
    )
    return "|".join(_translate(a, star, one, globstar=False, neg_extra=neg) for a in alternatives)


def _token_alternatives(alternatives: tuple[str, ...], lenient: bool = False) -> str:
    body = _token_body(alternatives, lenient)
    if body is None:
        return _NOT_SEP + r"*\x00"
    return "(?:" + body + r")\x00"


def token_word_regex(alternatives: tuple[str, ...], lenient: bool = False) -> str:
    """One argv token as a full-match regex over one encoded word (see `encode_words`)."""
    body = _token_body(alternatives, lenient)
    return "^" + (_NOT_SEP + "*" if body is None else "(?:" + body + ")") + r"\Z"


def is_literal(pattern: str) -> bool:
    """Does the wildcard match exactly itself (no `*`, `?`, `[...]`, `{a,b}`)?"""
    return not any(c in pattern for c in "*?[{")


def argv_regex(tokens: tuple[tuple[str, ...], ...], lenient: bool = False) -> str:
    """An argv prefix pattern as a regex over `encode_words([program, *argv[1:]])`."""
    out = ["^"]
    for ti, alts in enumerate(tokens):
        if alts == ("$",):
            out.append("$")
        elif alts == ("**",):
            out.append(r"(?:[^\x00]*\x00)*")
        else:
            out.append(_token_alternatives(alts, lenient and ti > 0))
    return "".join(out)


def flag_regex(flag: str) -> str | None:
    """A flag as a regex over `SEP + encode_words(argv[1:] before --)`, or None when the
    flag's wildcards could also match the name part of a `--name=value` token in ways a
    regex over whole tokens cannot say (then `flag_present` decides)."""
    if len(flag) == 2 and flag[0] == "-" and flag[1] != "-":
        lit = re.escape(flag[1])
        if flag[1].isascii() and flag[1].isalnum():
            return r"\x00(?:-" + lit + "|-[A-Za-z0-9]*" + lit + r"[A-Za-z0-9]*)\x00"
        return r"\x00-" + lit + r"\x00"
    body = _translate(flag, _NOT_SEP + "*", _NOT_SEP, globstar=False, neg_extra=_SEPARATORS)
    if flag.startswith("--"):
        # `--name=value` matches as a whole, or by its name: the part before the first `=`.
        if "=" in flag:
            return r"\x00" + body + r"\x00"
        name = _translate(flag, r"[^\x00=]*", r"[^\x00=]", globstar=False, neg_extra=r"\x00=")
        return r"\x00(?:" + body + "|" + name + r"=[^\x00]*)\x00"
    if len(flag) >= 2 and flag[0] == "-" and flag[1] not in "-*?[{":
        return r"\x00" + body + r"\x00"  # can never match a `--` token, whole or by name
    return None


def value_regex(pattern: str) -> str:
    """A wildcard over a whole value, as a regex over `value + SEP` (the value holds no SEP)."""
    body = _translate(pattern, _NOT_SEP + "*", _NOT_SEP, globstar=False, neg_extra=r"\x00")
    return "^(?:" + body + r")\x00"
