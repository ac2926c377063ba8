"""Tool calls to try policies on: from test suites, corpora, audit logs and JSON Lines files.

`policy diff` decides these calls under two policies. A call is `(tool, input)`; each keeps
where it came from (`FILE:LINE`) so a report can point at it. Duplicates are dropped, first
occurrence kept.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from leashd.policy.errors import PolicyError
from leashd.resources import data_dir


@dataclass(frozen=True)
class Call:
    tool: str
    input: dict[str, Any]
    origin: str  # FILE:LINE (a suite case: FILE#N)

    def key(self) -> str:
        # default=str: a suite's YAML may hold dates and such in an input
        return json.dumps([self.tool, self.input], sort_keys=True, default=str)

    def short(self, width: int = 100) -> str:
        """How a report shows it: the command for Bash, else the input as JSON."""
        if self.tool == "Bash" and isinstance(self.input.get("command"), str):
            text = self.input["command"]
        else:
            text = json.dumps(self.input, sort_keys=True, default=str)
        # lone surrogates (JSON allows them) cannot be printed: shown escaped
        text = " ".join(text.split()).encode("utf-8", "backslashreplace").decode("utf-8")
        if len(text) > width:
            text = text[: width - 1] + "…"
        return f"{self.tool} {text}"


def from_jsonl(path: Path) -> list[Call]:
    """Lines that are JSON objects with `tool` and `input` (corpora, `policy eval` input,
    audit log decision records); other records (approval events) are skipped. A line that
    is not JSON is an error: a call silently lost would make a diff look cleaner than it is."""
    out: list[Call] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"cannot read calls: {exc}", str(path)) from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as exc:
            raise PolicyError(f"not a JSON line: {exc.args[0]}", str(path), n, 1) from None
        if not isinstance(obj, dict) or "tool" not in obj:
            continue
        tool, tool_input = obj.get("tool"), obj.get("input")
        if not isinstance(tool, str) or not isinstance(tool_input, dict):
            raise PolicyError("a call needs a string 'tool' and an object 'input'", str(path), n, 1)
        out.append(Call(tool, tool_input, f"{path}:{n}"))
    return out


# A line longer than this is refused unread (its call could not be decided in reasonable time
# anyway); the rest of the stream goes on.
MAX_LINE_BYTES = 16 << 20


@dataclass(frozen=True)
class Line:
    """One non-blank line of a JSON Lines stream: the call it holds, or why it holds none."""

    number: int
    tool: Any = None
    input: Any = None
    error: str | None = None


def read_lines(stream: IO[bytes]) -> Iterator[Line]:
    """Each non-blank line of a stream of bytes, as it comes: read, decoded and parsed on its
    own, so that a bad line (not UTF-8, not JSON, nested too deeply, too long) is one bad line
    and never stops the others. Never raises on what the stream holds."""
    number = 0
    while True:
        raw = stream.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        number += 1
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            while (rest := stream.readline(1 << 20)) and not rest.endswith(b"\n"):
                pass  # the rest of the line, skipped a piece at a time
            yield Line(number, error=f"the line is longer than {MAX_LINE_BYTES >> 20} MiB")
            continue
        if not raw.strip():
            continue
        yield parse_line(raw, number)


def parse_line(raw: bytes, number: int = 0) -> Line:
    """One JSON Lines line of bytes -> the call it holds ({"tool": ..., "input": ...})."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Line(number, error=f"not UTF-8: {exc.reason} at byte {exc.start}")
    try:
        obj = json.loads(text)
    except ValueError as exc:
        return Line(number, error=f"not JSON: {exc}")
    except RecursionError:
        return Line(number, error="not a call: JSON nested too deeply to read")
    if not isinstance(obj, dict):
        return Line(number, error="a call must be a JSON object")
    return Line(number, obj.get("tool"), obj.get("input"))


def from_suite(path: Path) -> list[Call]:
    """The cases of a policy test suite (`policies/tests/*.yaml`)."""
    import yaml  # here: `policy eval` reads JSON Lines only, and starts without PyYAML

    from leashd.policy import yaml_fast

    try:
        doc = yaml_fast.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise PolicyError(f"cannot read test suite: {exc}", str(path)) from None
    cases = doc.get("cases") if isinstance(doc, dict) else None
    if not isinstance(cases, list):
        raise PolicyError("a test suite is a mapping with a 'cases' list", str(path))
    out: list[Call] = []
    for i, case in enumerate(cases, 1):
        if isinstance(case, dict) and "command" in case:
            tool, tool_input = "Bash", {"command": case["command"]}
        elif isinstance(case, dict):
            tool, tool_input = case.get("tool", "Bash"), case.get("input")
        else:
            tool, tool_input = None, None
        if not isinstance(tool, str) or not isinstance(tool_input, dict):
            # as for JSON Lines: a case left out would make a diff look cleaner than it is
            raise PolicyError(f"case {i}: needs a 'command', or a 'tool' and an 'input' object",
                              str(path))  # fmt: skip
        out.append(Call(tool, tool_input, f"{path}#{i}"))
    return out


def from_file(path: Path) -> list[Call]:
    """A test suite (.yaml/.yml) or JSON Lines (anything else)."""
    return from_suite(path) if path.suffix in (".yaml", ".yml") else from_jsonl(path)


def corpus_files() -> list[Path]:
    """The shipped tool-call corpora (package data, or `tests/corpus` in a checkout)."""
    try:
        directory = data_dir("corpus")
    except FileNotFoundError:
        directory = Path(__file__).resolve().parents[2] / "tests" / "corpus"
    return sorted(directory.glob("*.jsonl")) if directory.is_dir() else []


def builtin_calls() -> list[Call]:
    """Every built-in suite's cases and every shipped corpus call."""
    from leashd.policy.testsuite import builtin_suites

    return unique([c for p in builtin_suites() for c in from_suite(p)] + load(corpus_files()))


def load(paths: list[Path]) -> list[Call]:
    return unique([c for p in paths for c in from_file(p)])


def unique(calls: list[Call]) -> list[Call]:
    seen: set[str] = set()
    out = []
    for c in calls:
        k = c.key()
        if k not in seen:
            seen.add(k)
            out.append(c)
    return out
