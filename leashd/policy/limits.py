"""What a policy may not be: larger than a limit, holding a string longer than a limit, empty,
or written for a format version this leashd does not read.

The limits are far above any real policy (the largest built-in is 140 KB, its longest string
under 2,000 characters) and far below what makes loading slow: a policy file is read at most
`MAX_FILE_BYTES + 1` bytes, so a huge file (or a device that never ends) is refused before
anything parses it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from leashd.policy.errors import PolicyError
from leashd.policy.ir import Policy

MAX_FILE_BYTES = 1 << 20  # 1 MiB per policy file
MAX_STRING_CHARS = 1 << 16  # 65,536 characters per string (a pattern, a reason, a name)

# The format this leashd reads, as a policy's `version` may spell it. Every built-in says "1"
# and every policy leashd 0.x shipped says "1.0".
FORMAT_VERSIONS = (1, "1", "1.0")


def read_source(path: Path) -> str:
    """A policy file's text, refused when it is larger than the limit, unreadable, or not
    UTF-8. Reads no more than one byte past the limit, whatever the file claims its size is."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise PolicyError(f"cannot read policy: {exc.strerror or exc}", str(path), 0, 0) from None
    if len(data) > MAX_FILE_BYTES:
        raise PolicyError(
            f"the policy file is larger than the limit of {MAX_FILE_BYTES >> 20} MiB",
            str(path),
            0,
            0,
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyError(f"the policy is not UTF-8: {exc.reason}", str(path), 1, 1) from None


def check_text_size(text: str, file: str) -> None:
    """The same limit for policy text given as a string (no file to read)."""
    # a character is at most 4 bytes: only long text needs encoding to be measured
    if len(text) * 4 > MAX_FILE_BYTES and len(text.encode("utf-8", "surrogatepass")) > (
        MAX_FILE_BYTES
    ):
        raise PolicyError(
            f"the policy is larger than the limit of {MAX_FILE_BYTES >> 20} MiB", file, 0, 0
        )


def long_strings(root: Node | None) -> Iterator[ScalarNode]:
    """Every scalar (a key or a value) longer than the limit. Walked without recursion: the
    nodes may nest as deep as the parser let them."""
    stack = [root] if root is not None else []
    seen: set[int] = set()
    while stack:
        node = stack.pop()
        if id(node) in seen:  # an alias is the same node again
            continue
        seen.add(id(node))
        if isinstance(node, ScalarNode):
            if isinstance(node.value, str) and len(node.value) > MAX_STRING_CHARS:
                yield node
        elif isinstance(node, SequenceNode):
            stack.extend(reversed(node.value))
        elif isinstance(node, MappingNode):
            for k, v in reversed(node.value):
                stack.extend((v, k))


def too_long(what: str = "a string") -> str:
    return f"{what} is longer than the limit of {MAX_STRING_CHARS:,} characters"


def is_format_version(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, float):
        return value == 1.0
    return value in FORMAT_VERSIONS


def check_not_empty(policy: Policy, file: str) -> None:
    """A policy with no rules and no settings says nothing: it is what an emptied, truncated or
    half-written file looks like, and taking it for a policy turns every deny into the default
    action. A file with settings only (an overlay that changes the default action) says
    something, and loads."""
    if not policy.rules and not policy.settings.model_fields_set:
        raise PolicyError(
            "the policy is empty: it has no rules and no settings (an emptied or unfinished "
            "file is refused, never taken for a policy that denies nothing)",
            file,
            1,
            1,
        )
