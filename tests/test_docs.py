"""The docs keep their promises: the tutorial runs as written, and every link leads somewhere.

docs/tutorial.md is replayed in a scratch directory, in the order of the page: a fenced block
whose first line is `# file: PATH` is written to PATH, and every command of a ```console
block (`$ COMMAND`, its output below it until the next `$`) is run with bash. What the page
shows a command print must be what it prints, line for line, where a line `…` stands for
lines left out (at the start, in the middle or at the end). Then the outcomes the tutorial
states are checked by name: the stacked lint finds the shadowed deny before the fix and
nothing after, the suite finds the hole and then passes, the review diff fails on the looser
change, and the CI workflow's policy commands pass on the finished files.

docs/conditions.md is replayed the same way (its examples are policies and calls in a
simulated world, so they need nothing from this machine), and each of its `.leash` forms must
compile to the IR of the YAML policy before it; so is docs/testing.md's runnable example.

Run as a script to see what each command of a page prints (for writing a page):

    .venv/bin/python tests/test_docs.py docs/tutorial.md
"""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
BIN = Path(sys.executable).parent  # where this leashd's console script is
GAP = "…"

_FENCE = re.compile(r"^(`{3,})([^\n`]*)\n(.*?)^\1[ \t]*$", re.M | re.S)
_FILE = re.compile(r"^#\s*file:\s*(\S+)\s*$")
_HEREDOC = re.compile(r"<<-?\s*['\"]?(\w+)['\"]?")


# --- reading a page ---------------------------------------------------------------------------


@dataclass(frozen=True)
class File:
    path: str  # relative to where the commands run
    text: str


@dataclass(frozen=True)
class Command:
    text: str  # what bash runs: continuation lines and a heredoc's body included
    shown: list[str]  # the output the page shows
    line: int  # the command's line on the page


def read_page(path: Path) -> list[File | Command]:
    """The page's files and commands, in its order."""
    text = path.read_text(encoding="utf-8")
    steps: list[File | Command] = []
    for m in _FENCE.finditer(text):
        info, body = m.group(2).strip(), m.group(3)
        first_line = text.count("\n", 0, m.start()) + 2
        lines = body.split("\n")[:-1]  # the body ends with the newline before the fence
        marker = _FILE.match(lines[0]) if lines else None
        if marker:
            steps.append(File(marker.group(1), body))
        elif info.split()[:1] == ["console"]:
            steps.extend(_commands(lines, first_line))
    return steps


def _commands(lines: list[str], first_line: int) -> Iterator[Command]:
    i = 0
    while i < len(lines):
        if not lines[i].startswith("$ "):
            i += 1
            continue
        line = first_line + i
        parts = [lines[i][2:]]
        i += 1
        while parts[-1].endswith("\\") and i < len(lines):  # continued on the next line
            parts.append(lines[i])
            i += 1
        heredoc = _HEREDOC.search(parts[0])
        while heredoc and i < len(lines):  # its body, up to the word that ends it
            parts.append(lines[i])
            i += 1
            if parts[-1].strip() == heredoc.group(1):
                break
        shown = []
        while i < len(lines) and not lines[i].startswith("$ "):
            shown.append(lines[i])
            i += 1
        yield Command("\n".join(parts), shown, line)


# --- running it -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ran:
    command: Command
    rc: int
    output: list[str]


def environment(scratch: Path) -> dict[str, str]:
    """A world of the scratch directory's own: its home, leashd home and lint cache."""
    for d in ("home", "leashd", "cache"):
        (scratch / d).mkdir(exist_ok=True)
    return {
        "PATH": f"{BIN}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(scratch / "home"),
        "LEASHD_HOME": str(scratch / "leashd"),
        "LEASHD_CACHE_DIR": str(scratch / "cache"),
        "PYTHONUNBUFFERED": "1",  # stdout and stderr in the order they are written
        "LANG": "C.UTF-8",
        "TERM": "dumb",
    }


def replay(steps: list[File | Command], workdir: Path, env: dict[str, str]) -> list[Ran]:
    """Write the files and run the commands, in order, from `workdir`; a `cd` carries over
    to the next command, as in a terminal."""
    cwd = workdir
    where = workdir.parent / ".cwd"
    ran: list[Ran] = []
    for step in steps:
        if isinstance(step, File):
            target = cwd / step.path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(step.text, encoding="utf-8")
            continue
        script = f"{step.text}\n__rc=$?\npwd > {where}\nexit $__rc\n"
        done = subprocess.run(
            ["bash", "-c", script], cwd=cwd, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, timeout=300,
        )  # fmt: skip
        if where.exists():
            cwd = Path(where.read_text().strip())
        ran.append(Ran(step, done.returncode, done.stdout.rstrip("\n").split("\n")))
    return ran


def mismatch(shown: list[str], printed: list[str]) -> str | None:
    """Why `shown` is not what was printed, or None. Each run of lines between `…` lines must
    be printed whole, in order; without a `…` at an end, the output starts (ends) there."""
    shown = [s.rstrip() for s in shown]
    while shown and not shown[-1]:
        shown.pop()
    if not shown:
        return None  # the page shows no output: nothing to compare
    printed = [p.rstrip() for p in printed]
    chunks = [list(g) for gap, g in itertools.groupby(shown, key=lambda s: s == GAP) if not gap]
    pos = 0
    for k, chunk in enumerate(chunks):
        n = len(chunk)
        starts = range(pos, len(printed) - n + 1)
        at = next((i for i in starts if printed[i : i + n] == chunk), None)
        if at is None or (k == 0 and shown[0] != GAP and at != 0):
            return f"not printed as shown: {chunk[0]!r}"
        pos = at + n
    if shown[-1] != GAP and pos != len(printed):
        return f"more is printed after {shown[-1]!r} (a last line {GAP} leaves it out)"
    return None


def check_outputs(ran: list[Ran], page: str) -> None:
    wrong = []
    for r in ran:
        why = mismatch(r.command.shown, r.output)
        if why:
            printed = "\n".join(r.output)
            wrong.append(f"{page}:{r.command.line}: $ {r.command.text}\n  {why}\n{printed}")
    assert not wrong, "\n\n".join(wrong)


def runs_of(ran: list[Ran], pattern: str) -> list[Ran]:
    return [r for r in ran if re.search(pattern, r.command.text, re.S)]


def test_the_output_check_catches_what_a_page_gets_wrong():
    printed = ["a", "b", "c", "d"]
    assert mismatch(["a", "b", "c", "d"], printed) is None
    assert mismatch(["a", GAP, "d"], printed) is None
    assert mismatch([GAP, "c", GAP], printed) is None
    assert mismatch([], printed) is None  # nothing shown: nothing claimed
    assert mismatch(["a", "c", "d"], printed)  # a line left out without saying so
    assert mismatch(["a", "b"], printed)  # the end cut without a `…`
    assert mismatch(["b", "c", "d"], printed)  # the start cut without a `…`
    assert mismatch(["a", GAP, "x"], printed)  # a line never printed
    assert mismatch(["c", GAP, "b"], printed)  # out of order


def test_the_link_check_sees_a_broken_link_and_a_missing_heading(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "# Title\n## Second part\n[ok](#second-part) [bad](#third) [gone](nowhere.md)\n"
        "`[in code](nowhere.md)`\n```\n[in a block](nowhere.md)\n```\n",
        encoding="utf-8",
    )
    assert anchors(page) == {"title", "second-part"}
    assert [t for _, t in relative_links(page)] == ["#second-part", "#third", "nowhere.md"]


# --- the tutorial -------------------------------------------------------------------------------


Replayed = tuple[list[File | Command], list[Ran], Path]


@pytest.fixture(scope="module")
def tutorial(tmp_path_factory: pytest.TempPathFactory) -> Replayed:
    scratch = tmp_path_factory.mktemp("tutorial")
    work = scratch / "work"
    work.mkdir()
    steps = read_page(DOCS / "tutorial.md")
    return steps, replay(steps, work, environment(scratch)), work


def test_the_tutorial_prints_what_it_shows(tutorial):
    _, ran, _ = tutorial
    assert len(ran) > 10, "the tutorial's commands were not found"
    check_outputs(ran, "docs/tutorial.md")


def test_the_tutorials_lint_finds_the_shadowed_deny_and_is_clean_after_the_fix(tutorial):
    _, ran, _ = tutorial
    lints = runs_of(ran, r"^leashd policy lint")
    shadowed = [r for r in lints if any("L101" in x and "no-push-to-main" in x for x in r.output)]
    assert shadowed and all(r.rc == 1 for r in shadowed), "the draft's stack must fail on L101"
    final = lints[-1]
    assert final not in shadowed
    assert final.rc == 0 and "0 errors, 0 warnings" in final.output[-1], final.output


def test_the_tutorials_suite_finds_the_hole_then_passes(tutorial):
    _, ran, _ = tutorial
    tests = runs_of(ran, r"^leashd policy test")
    assert tests[0].rc == 1 and any("1 failed" in line for line in tests[0].output)
    assert tests[-1].rc == 0 and any(" 0 failed" in line for line in tests[-1].output)


def test_the_tutorials_review_fails_on_the_looser_change(tutorial):
    _, ran, _ = tutorial
    diffs = runs_of(ran, r"^leashd policy diff .*--fail-on-looser")
    assert diffs and diffs[-1].rc == 1
    assert any("1 looser" in line for line in diffs[-1].output)


def test_the_tutorials_ci_workflow_passes_on_the_finished_policy(tutorial):
    """The workflow's policy commands pass in the tutorial's final state (the steps that need
    GitHub, checkout and the base branch for the diff, are not run here)."""
    steps, _, work = tutorial
    (workflow,) = [s.text for s in steps if isinstance(s, File) and s.path.startswith(".github/")]
    jobs = yaml.safe_load(workflow)["jobs"]["policies"]["steps"]
    commands = [s["run"] for s in jobs if str(s.get("run", "")).startswith("leashd policy")]
    assert len(commands) >= 3
    env = environment(work.parent)
    for c in commands:
        done = subprocess.run(
            ["bash", "-c", c], cwd=work / "acme", env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, f"{c}\n{done.stdout}{done.stderr}"


# --- the conditions reference ------------------------------------------------------------------


def test_the_conditions_reference_prints_what_it_shows(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    ran = replay(read_page(DOCS / "conditions.md"), work, environment(tmp_path))
    assert len(ran) > 10
    check_outputs(ran, "docs/conditions.md")


def _meaning(value: object) -> object:
    """A policy's IR without where it was written."""
    if isinstance(value, dict):
        return {k: _meaning(v) for k, v in value.items() if k not in ("span", "sources")}
    if isinstance(value, list | tuple):
        return [_meaning(v) for v in value]
    return value


def test_the_conditions_leash_forms_mean_what_their_yaml_says():
    """Each example policy is followed by its `.leash` form: the two compile to one IR."""
    from leashd.policy.leash_frontend import parse_leash
    from leashd.policy.yaml_frontend import parse_yaml

    text = (DOCS / "conditions.md").read_text(encoding="utf-8")
    blocks = [(m.group(2).strip(), m.group(3)) for m in _FENCE.finditer(text)]
    pairs = 0
    for (lang, yaml_text), (next_lang, leash_text) in itertools.pairwise(blocks):
        marker = _FILE.match(yaml_text.split("\n")[0])
        if lang != "yaml" or next_lang != "leash" or marker is None:
            continue
        name = marker.group(1)
        yaml_ir = _meaning(parse_yaml(yaml_text, name).model_dump())
        leash_ir = _meaning(parse_leash(leash_text, name + ".leash").model_dump())
        assert yaml_ir == leash_ir, f"{name}: the .leash form says something else"
        pairs += 1
    assert pairs >= 12


# --- the testing page ---------------------------------------------------------------------------


def test_the_testing_pages_approver_example_prints_what_it_shows(tmp_path):
    """docs/testing.md's `expect_approver` example: the suite fails on its wrong case only."""
    work = tmp_path / "work"
    work.mkdir()
    ran = replay(read_page(DOCS / "testing.md"), work, environment(tmp_path))
    check_outputs(ran, "docs/testing.md")
    (run,) = runs_of(ran, r"^leashd policy test approvers\.yaml")
    assert run.rc == 1 and run.output[-1] == "2 passed, 1 failed (1 suite)"


# --- links ----------------------------------------------------------------------------------------

_LINK = re.compile(r"(?<!!)\[[^\]\n]*\]\(([^)\s]+)\)")
_CODE = re.compile(r"`[^`\n]*`")
_FENCE_LINE = re.compile(r"^\s*(`{3,}|~{3,})")


def prose(path: Path) -> Iterator[tuple[int, str]]:
    """The page's lines outside fenced code blocks, with their numbers."""
    fence = None
    for n, line in enumerate(path.read_text(encoding="utf-8").split("\n"), 1):
        m = _FENCE_LINE.match(line)
        if m and (fence is None or (m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence))):
            fence = None if fence else m.group(1)
        elif fence is None:
            yield n, line


def anchors(path: Path) -> set[str]:
    """The anchors of a page's headings, as GitHub makes them."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for _, line in prose(path):
        m = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            text = re.sub(r"[`*]", "", m.group(1).lower())
            slug = re.sub(r"[^\w\- ]", "", text).replace(" ", "-")
            n = seen.get(slug, 0)
            seen[slug] = n + 1
            found.add(slug if n == 0 else f"{slug}-{n}")
    return found


def relative_links(path: Path) -> list[tuple[int, str]]:
    out = []
    for n, line in prose(path):
        for link in _LINK.finditer(_CODE.sub("", line)):
            target = link.group(1)
            if not re.match(r"[a-zA-Z][a-zA-Z0-9+.-]*:|//", target):  # http:, mailto:, …
                out.append((n, target))
    return out


PAGES = [*sorted(DOCS.glob("*.md")), ROOT / "README.md"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_leads_to_a_file_and_its_heading(page):
    broken = []
    for line, target in relative_links(page):
        file_part, _, anchor = target.partition("#")
        dest = (page.parent / file_part).resolve() if file_part else page
        if not dest.exists():
            broken.append(f"{page.name}:{line}: {target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{page.name}:{line}: {target}: {dest.name} has no heading #{anchor}")
    assert not broken, "\n".join(broken)


if __name__ == "__main__":  # what each command of a page prints, and whether the page says so
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        scratch = Path(d)
        (scratch / "work").mkdir()
        for r in replay(read_page(Path(sys.argv[1])), scratch / "work", environment(scratch)):
            print(f"$ {r.command.text}    [exit {r.rc}, line {r.command.line}]")
            print("\n".join(r.output))
            why = mismatch(r.command.shown, r.output)
            print(f"!!! {why}" if why else "    (as shown)", end="\n\n")
