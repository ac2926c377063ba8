"""Policy test suites as a user reads them: a failing case at its own line with the deciding
rule's place, suite mistakes at theirs (with a did-you-mean, every one at once), the same in
JUnit, and an HTML coverage report of every rule, linked to its source."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest

from leashd.policy.coverage_html import write_html
from leashd.policy.errors import PolicyError
from leashd.policy.loader import BUILTIN_NAMES, builtin_path
from leashd.policy.testsuite import (
    builtin_suites,
    coverage,
    format_failure,
    junit_xml,
    read_suite,
    run_suite,
    run_suites,
)

POLICY = """\
rules:
  - name: git-any
    commands: ["git"]
    action: allow
  - {name: no-push, commands: ["git push"], action: deny}
  - name: never-used
    commands: ["frobnicate"]
    action: deny
"""

SUITE = """\
# the first case passes, the next two fail
policies: [p.yaml]
cases:
  - {command: "git status", expect: allow, rule: git-any}

  - command: git push origin main
    expect: deny
    rule: no-push
  - {command: "ls", expect: allow}
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def failing_suite(tmp_path: Path) -> Path:
    write(tmp_path, "p.yaml", POLICY)
    return write(tmp_path, "suite.yaml", SUITE)


# --- failures: the case's own line, the deciding rule's place ---------------------------------


def test_a_failing_case_names_its_line_and_the_deciding_rule_with_its_line(tmp_path):
    suite = failing_suite(tmp_path)
    results = run_suite(suite)
    assert [r.line for r in results] == [4, 6, 9]  # the lines the cases are written on
    failed = [r for r in results if not r.passed]
    assert [format_failure(r).splitlines()[0] for r in failed] == [
        f"{suite}:6: expected deny by no-push, got allow by git-any ({tmp_path}/p.yaml:2)",
        f"{suite}:9: expected allow, got require_approval by the default action",
    ]


def test_places_are_relative_to_the_current_directory(tmp_path, monkeypatch):
    suite = failing_suite(tmp_path)
    monkeypatch.chdir(tmp_path)
    failed = [r for r in run_suite(suite) if not r.passed]
    head = format_failure(failed[0]).splitlines()[0]
    assert head == "suite.yaml:6: expected deny by no-push, got allow by git-any (p.yaml:2)"


def test_a_failure_says_the_reason_and_what_was_called(tmp_path):
    suite = failing_suite(tmp_path)
    failed = [r for r in run_suite(suite) if not r.passed]
    text = format_failure(failed[0])
    assert "git push origin main" in text.splitlines()[1]


def test_an_expected_default_decision_is_named_as_such(tmp_path):
    write(tmp_path, "p.yaml", POLICY)
    suite = write(
        tmp_path,
        "s.yaml",
        "policies: [p.yaml]\ncases:\n  - {command: git log, expect: allow, rule: null}\n",
    )
    (r,) = run_suite(suite)
    assert format_failure(r).splitlines()[0] == (
        f"{suite}:3: expected allow by no rule, got allow by git-any ({tmp_path}/p.yaml:2)"
    )


def test_junit_says_the_same_with_file_and_line(tmp_path):
    suite = failing_suite(tmp_path)
    results = run_suite(suite)
    root = ET.fromstring(junit_xml(results))
    assert root.tag == "testsuites"
    assert root.get("tests") == "3" and root.get("failures") == "2"
    (ts,) = root.findall("testsuite")
    assert ts.get("name") == str(suite) and ts.get("failures") == "2"
    cases = ts.findall("testcase")
    assert [c.get("line") for c in cases] == ["4", "6", "9"]
    assert {c.get("file") for c in cases} == {str(suite)}
    failures = [c.find("failure") for c in cases]
    assert failures[0] is None
    for result, failure in zip(results[1:], failures[1:], strict=True):
        assert failure is not None
        head = format_failure(result).splitlines()[0]
        assert failure.get("message") == head
        assert head in (failure.text or "")


def test_junit_escapes_what_a_case_says(tmp_path):
    write(tmp_path, "p.yaml", POLICY)
    suite = write(
        tmp_path,
        "s.yaml",
        "policies: [p.yaml]\ncases:\n"
        '  - {command: "git push <x> & \'y\' \\"z\\"", expect: allow}\n',
    )
    root = ET.fromstring(junit_xml(run_suite(suite)))
    case = root.find("testsuite/testcase")
    assert case is not None and case.get("name") == "git push <x> & 'y' \"z\""


# --- suite file errors: every one at once, at its own line, with a did-you-mean ---------------


BAD = """\
policies: [p.yaml]
context: {cwd: project, approved_dir: [/x], mode: yolo}
cases:
  - {command: ls, exepct: allow}
  - {tool: Read, expect: deny}
  - {command: ls, expect: denied}
  - {command: ls, expect: ask}
  - just a string
  - {command: ls, input: {command: ls}, expect: allow}
"""


def suite_errors(tmp_path: Path, text: str) -> list[PolicyError]:
    write(tmp_path, "p.yaml", POLICY)
    path = write(tmp_path, "suite.yaml", text)
    with pytest.raises(PolicyError) as info:
        read_suite(path)
    errors = getattr(info.value, "errors", [info.value])
    assert all(e.file == str(path) for e in errors)
    return errors


def test_every_error_of_a_suite_at_once_each_at_its_place(tmp_path):
    errors = suite_errors(tmp_path, BAD)
    where = [(e.line, e.column) for e in errors]
    assert where == sorted(where)
    said = {(e.line, e.column): e.message for e in errors}
    assert "absolute" in said[(2, 16)]  # cwd: project
    assert (
        said[(2, 25)] == "unknown key 'approved_dir' in the context (did you mean 'approved_dirs'?)"
    )
    assert "'yolo'" in said[(2, 51)] and "default, plan or auto" in said[(2, 51)]
    assert said[(4, 19)] == "unknown key 'exepct' in a case (did you mean 'expect'?)"
    assert not any(line == 4 and "needs `expect`" in m for (line, _), m in said.items())
    assert "needs `input`" in said[(5, 5)]
    assert said[(6, 27)].endswith("not 'denied' (did you mean 'deny'?)")
    assert said[(7, 27)].endswith("not 'ask' (did you mean 'require_approval'?)")
    assert "a case is a mapping" in said[(8, 5)]
    assert "not both" in said[(9, 19)]
    assert len(errors) == 9


def test_an_error_shows_the_line_and_a_caret(tmp_path):
    (err,) = suite_errors(tmp_path, "cases:\n  - {command: ls, exepct: allow}\n")
    head, src, caret = str(err).split("\n")
    assert head.endswith(":2:19: unknown key 'exepct' in a case (did you mean 'expect'?)")
    assert src == "      - {command: ls, exepct: allow}"
    assert caret == "    " + " " * 18 + "^"


@pytest.mark.parametrize(
    ("text", "line", "column", "said"),
    [
        ("casez: []\n", 1, 1, "unknown key 'casez' in the suite (did you mean 'cases'?)"),
        ("policies: [p.yaml]\n", 1, 1, "a suite needs `cases`"),
        ("cases: {a: 1}\n", 1, 8, "`cases` takes a list of cases, not a mapping"),
        ("- a\n", 1, 1, "a test suite is a mapping"),
        ("sandbox: maybe\ncases: []\n", 1, 10, "`sandbox` takes true/false, not a string"),
        ("policies: []\ncases: []\n", 1, 11, "`policies` is empty"),
        ("policies: [nope.yaml]\ncases: []\n", 1, 12, "no such policy file"),
        ("policies: [defualt]\ncases: []\n", 1, 12, "did you mean 'default'?"),
        ("context: [a]\ncases: []\n", 1, 10, "`context` takes a mapping"),
        ("context: {home: ~/x}\ncases: []\n", 1, 17, "`home` takes an absolute path"),
        ("context: {approved_dirs: [5]}\ncases: []\n", 1, 27, "a string, not a number"),
        ("cases:\n  - {command: yes, expect: allow}\n", 2, 15, "true/false (quote it"),
        ("cases:\n  - {command: ls, expect: allow, rule: [a]}\n", 2, 40, "`rule` takes"),
        ("cases:\n  - {expect: allow}\n", 2, 5, "needs `command`"),
        (
            "cases:\n  - {tool: Read, input: x.py, expect: allow}\n",
            2,
            25,
            "`input` takes a mapping",
        ),
        ("cases:\n  - {tool: Read, command: ls, expect: allow}\n", 2, 18, "`command` is for Bash"),
        (
            "cases:\n  - {command: ls, expect: allow, expect: deny}\n",
            2,
            34,
            "duplicate key 'expect'",
        ),
        ("cases: [\n", 1, 9, "the file ends inside a list"),
    ],
)
def test_suite_mistakes(tmp_path, text, line, column, said):
    errors = suite_errors(tmp_path, text)
    assert len(errors) == 1, "\n".join(map(str, errors))
    (err,) = errors
    assert said in err.message, str(err)
    assert (err.line, err.column) == (line, column), str(err)


def test_a_block_case_is_placed_at_its_first_key(tmp_path):
    errors = suite_errors(tmp_path, "cases:\n  - command: ls\n    expect: allw\n")
    assert [(e.line, e.column) for e in errors] == [(3, 13)]
    assert "did you mean 'allow'?" in errors[0].message


def test_run_suites_reports_the_errors_of_every_file(tmp_path):
    write(tmp_path, "p.yaml", POLICY)
    a = write(tmp_path, "a.yaml", "cases:\n  - {command: ls, exepct: allow}\n")
    b = write(tmp_path, "b.yaml", "cases:\n  - {command: ls, expect: permit}\n")
    with pytest.raises(PolicyError) as info:
        run_suites([a, b])
    assert {e.file for e in info.value.errors} == {str(a), str(b)}


def test_a_broken_policy_is_reported_in_the_policy_file(tmp_path):
    write(tmp_path, "p.yaml", "rules:\n  - {name: a, action: allow, comands: [ls]}\n")
    suite = write(tmp_path, "s.yaml", "policies: [p.yaml]\ncases: []\n")
    with pytest.raises(PolicyError) as info:
        run_suite(suite)
    assert info.value.file == str(tmp_path / "p.yaml") and "did you mean 'commands'" in str(
        info.value
    )


# --- expect_approver: who is asked -----------------------------------------------------------

ROUTED = """\
rules:
  - name: feature-push
    commands: ["git push origin feature/*"]
    action: require_approval
    approver: ai
  - {name: pushes, commands: ["git push"], action: require_approval}
  - {name: reads, commands: ["cat"], action: allow}
"""

ROUTED_SUITE = """\
policies: [r.yaml]
cases:
  - {command: git push origin feature/x, expect: require_approval, expect_approver: ai}
  - {command: git push origin dev, expect: require_approval, expect_approver: human, rule: pushes}
  - {command: git push origin dev && git push origin feature/x, expect: require_approval}
  - command: git push origin feature/x && git push origin dev
    expect: require_approval
    expect_approver: ai
    rule: feature-push
  - {command: git push origin dev, expect: require_approval, expect_approver: ai, rule: x}
  - {command: cat a.txt, expect: require_approval, expect_approver: human}
  - {tool: Read, input: {file_path: /etc/hosts}, expect: require_approval, expect_approver: ai}
"""


def routed_results(tmp_path: Path):
    write(tmp_path, "r.yaml", ROUTED)
    suite = write(tmp_path, "suite.yaml", ROUTED_SUITE)
    return suite, run_suite(suite)


def test_expect_approver_passes_when_the_gate_asks_whom_the_case_says(tmp_path):
    _, results = routed_results(tmp_path)
    assert [r.expect_approver for r in results[:3]] == ["ai", "human", None]
    assert [r.approver for r in results[:3]] == ["ai", "human", "human"]
    assert all(r.passed for r in results[:3])


def test_expect_approver_fails_with_who_on_both_sides_at_the_cases_line(tmp_path):
    suite, results = routed_results(tmp_path)
    failed = [r for r in results if not r.passed]
    assert [r.line for r in failed] == [6, 10, 11, 12]
    assert [format_failure(r).splitlines()[0] for r in failed] == [
        # the first push is the deciding rule's, but the second asks a human: a human answers
        f"{suite}:6: expected require_approval (ai) by feature-push, got require_approval "
        f"(human) by feature-push ({tmp_path}/r.yaml:2)",
        # the rule and who is asked both differ: both are said
        f"{suite}:10: expected require_approval (ai) by x, got require_approval (human) by "
        f"pushes ({tmp_path}/r.yaml:6)",
        # a call that is not a question has nobody on its side
        f"{suite}:11: expected require_approval (human), got allow by reads ({tmp_path}/r.yaml:7)",
        f"{suite}:12: expected require_approval (ai), got deny by the sandbox",
    ]
    assert [r.failed_on for r in failed] == ["approver", "rule", "decision", "decision"]
    assert format_failure(failed[0]).splitlines()[3] == "    why a human: pushes asks a human"
    assert "why a human" not in format_failure(failed[2])


def test_expect_approver_in_junit_and_json(tmp_path):
    from click.testing import CliRunner

    from leashd.cli import main

    suite, results = routed_results(tmp_path)
    root = ET.fromstring(junit_xml(results))
    failure = root.find("testsuite/testcase[@line='6']/failure")
    assert failure is not None and failure.get("type") == "approver"
    assert failure.get("message") == format_failure(results[3]).splitlines()[0]
    out = CliRunner().invoke(main, ["policy", "test", str(suite), "--format", "json"]).output
    cases = json.loads(out)["cases"]
    assert [(c.get("expect_approver"), c["approver"]) for c in cases[:4]] == [
        ("ai", "ai"),
        ("human", "human"),
        (None, "human"),
        ("ai", "human"),
    ]


def test_the_gates_floor_says_who_is_asked_not_the_rules_field(tmp_path):
    """The gate's floor decides, not the rule's field: outside the approved directories the
    AI is never asked, whatever the rule names."""
    write(
        tmp_path,
        "r.yaml",
        "rules:\n  - {name: r, tools: [Read], action: require_approval, approver: ai}\n",
    )
    suite = write(
        tmp_path,
        "s.yaml",
        "policies: [r.yaml]\nsandbox: false\ncases:\n"
        "  - {tool: Read, input: {file_path: a.py}, expect: require_approval,"
        " expect_approver: ai}\n"
        "  - {tool: Read, input: {file_path: /srv/b.py}, expect: require_approval,"
        " expect_approver: human}\n",
    )
    assert [(r.approver, r.passed) for r in run_suite(suite)] == [("ai", True), ("human", True)]


@pytest.mark.parametrize(
    ("text", "line", "column", "said"),
    [
        (
            "cases:\n  - {command: ls, expect: require_approval, expect_approver: AI}\n",
            2,
            62,
            "`expect_approver` takes human or ai, not 'AI' (did you mean 'ai'?)",
        ),
        (
            "cases:\n  - {command: ls, expect: require_approval, expect_approver: humna}\n",
            2,
            62,
            "`expect_approver` takes human or ai, not 'humna' (did you mean 'human'?)",
        ),
        (
            "cases:\n  - {command: ls, expect: require_approval, expect_approver: [ai]}\n",
            2,
            62,
            "`expect_approver` takes human or ai, not a list",
        ),
        (
            "cases:\n  - {command: ls, expect: require_approval, approver: ai}\n",
            2,
            45,
            "unknown key 'approver' in a case (did you mean 'expect_approver'?)",
        ),
        (
            "cases:\n  - {command: ls, expect: allow, expect_approver: human}\n",
            2,
            34,
            "`expect_approver` says who is asked, so it goes with `expect: require_approval` "
            "only: a call that gets allow asks nobody",
        ),
        (
            "cases:\n  - command: ls\n    expect: deny\n    expect_approver: ai\n",
            4,
            5,
            "a call that gets deny asks nobody",
        ),
    ],
)
def test_expect_approver_mistakes(tmp_path, text, line, column, said):
    errors = suite_errors(tmp_path, text)
    assert len(errors) == 1, "\n".join(map(str, errors))
    (err,) = errors
    assert said in err.message, str(err)
    assert (err.line, err.column) == (line, column), str(err)


@pytest.mark.parametrize("suite", builtin_suites(), ids=lambda p: p.stem)
def test_every_built_in_suite_reads(suite):
    assert read_suite(suite).cases


# --- the HTML coverage report -----------------------------------------------------------------


class Page(HTMLParser):
    def __init__(self, text: str):
        super().__init__()
        self.ids: set[str] = set()
        self.hrefs: list[str] = []
        self.classes: list[tuple[str, str]] = []  # (class, id)
        self.tags: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if a.get("id"):
            self.ids.add(a["id"])
        if tag == "a" and a.get("href"):
            self.hrefs.append(a["href"])
        if a.get("class"):
            self.classes.append((a["class"], a.get("id") or ""))


def pages(directory: Path) -> dict[str, tuple[str, Page]]:
    return {
        p.name: (p.read_text(encoding="utf-8"), Page(p.read_text(encoding="utf-8")))
        for p in directory.glob("*.html")
    }


def check_links(directory: Path) -> None:
    """Every link goes to a page of the report, and to an anchor that page has."""
    found = pages(directory)
    for name, (_, page) in found.items():
        for href in page.hrefs:
            target, _, anchor = href.partition("#")
            assert "://" not in href and not href.startswith("//"), href
            target = target or name
            assert target in found, f"{name}: link to a missing page {href}"
            if anchor:
                assert anchor in found[target][1].ids, f"{name}: link to a missing anchor {href}"


LEASH = (
    'deny no-rm cmd "rm"\n    reason "no deletes"\n\n# status only\nallow status cmd "git status"\n'
)


def small_report(tmp_path: Path) -> tuple[Path, Path]:
    write(tmp_path, "p.yaml", POLICY)
    write(tmp_path, "q.leash", LEASH)
    suite = write(
        tmp_path,
        "suite.yaml",
        "policies: [q.leash, p.yaml]\ncases:\n"
        "  - {command: git status, expect: allow, rule: status}\n"
        "  - {command: git log, expect: allow, rule: git-any}\n"
        "  - {command: git diff, expect: allow, rule: git-any}\n",
    )
    rules: list = []
    results = run_suite(suite, rules)
    out = tmp_path / "html"
    index = write_html(coverage(results, rules), out)
    assert index == out / "index.html"
    return out, suite


def rule_rows(page: Page) -> dict[str, str]:
    """The rule rows of a page: id `rule-NAME` -> its class."""
    return {i[len("rule-") :]: c for c, i in page.classes if i.startswith("rule-")}


def test_html_report_has_every_rule_coloured_and_linked_to_its_line(tmp_path):
    out, _ = small_report(tmp_path)
    found = pages(out)
    text, _ = found["index.html"]
    for name in ("git-any", "no-push", "never-used", "no-rm", "status"):
        assert name in text
    # one page per policy file, each rule a row coloured by whether a case decided it
    (yaml_page,) = [n for n in found if n.startswith("p.yaml")]
    (leash_page,) = [n for n in found if n.startswith("q.leash")]
    rows = rule_rows(found[yaml_page][1])
    assert rows.keys() == {"git-any", "no-push", "never-used"}
    assert "covered" in rows["git-any"].split() and "uncovered" in rows["no-push"].split()
    assert "uncovered" in rows["never-used"].split()
    assert "covered" in rule_rows(found[leash_page][1])["status"].split()
    assert "uncovered" in rule_rows(found[leash_page][1])["no-rm"].split()
    # the rule's lines are marked in the source, line by line
    page_text, page = found[yaml_page]
    assert {"L1", "L2", "L5", "L8"} <= page.ids
    assert ("line covered", "L2") in page.classes and ("line covered", "L4") in page.classes
    assert ("line uncovered", "L5") in page.classes and ("line uncovered", "L8") in page.classes
    assert ("line", "L1") in page.classes  # `rules:` belongs to no rule
    assert f'href="{yaml_page}#L2"' in text and f'href="{yaml_page}#L6"' in text
    assert f'href="{leash_page}#L5"' in text
    assert "2 cases" in page_text  # git-any decided two
    # in the .leash file a rule runs to its last clause, not into the comment above the next
    _, leash = found[leash_page]
    assert ("line uncovered", "L2") in leash.classes and ("line", "L4") in leash.classes
    check_links(out)


def test_html_report_is_self_contained(tmp_path):
    out, _ = small_report(tmp_path)
    for text, page in pages(out).values():
        assert not {"script", "link", "img", "iframe"} & set(page.tags)
        assert "<style>" in text and "http" not in text.replace("http-equiv", "")


def test_html_report_escapes_the_source(tmp_path):
    write(tmp_path, "p.yaml", POLICY + '  - {name: "<b>x</b>", commands: ["a<b"], action: deny}\n')
    suite = write(tmp_path, "s.yaml", "policies: [p.yaml]\ncases: []\n")
    rules: list = []
    out = tmp_path / "html"
    write_html(coverage(run_suite(suite, rules), rules), out)
    for text, page in pages(out).values():
        assert "<b>" not in text and "b" not in page.tags
    check_links(out)


def test_html_report_of_the_built_in_suites_covers_every_rule(tmp_path):
    rules: list = []
    (suite,) = [p for p in builtin_suites() if p.stem == "default"]
    results = run_suite(suite, rules)  # default + dev-tools
    cov = coverage(results, rules)
    out = tmp_path / "html"
    write_html(cov, out)
    found = pages(out)
    names = {n: rule_rows(p) for n, (_, p) in found.items() if n != "index.html"}
    for name in ("default", "dev-tools"):
        text = builtin_path(name).read_text(encoding="utf-8")
        written = set(re.findall(r"^  - name: (\S+)$", text, re.M))
        (page,) = [rows for n, rows in names.items() if n.startswith(f"{name}.yaml")]
        assert written == page.keys()
    missed = {r.name for r in cov.missed}
    for rows in names.values():
        for rule, cls in rows.items():
            assert ("uncovered" in cls.split()) == (rule in missed), rule
    check_links(out)
    assert BUILTIN_NAMES  # the report names built-ins by their file


def test_a_built_in_rule_is_named_by_its_file_when_leashd_is_elsewhere(tmp_path, monkeypatch):
    suite = write(
        tmp_path, "s.yaml", "policies: [default]\ncases:\n  - {command: git status, expect: deny}\n"
    )
    monkeypatch.chdir(tmp_path)
    (r,) = run_suite(suite)
    line = builtin_path("default").read_text().splitlines().index("  - name: read-only-git") + 1
    assert r.failure() == (
        f"expected deny, got allow by read-only-git (built-in default.yaml:{line})"
    )


def test_a_team_suite_on_the_built_ins_covers_the_teams_own_rules(tmp_path):
    """Stacked on `default`, a team's coverage is of its own rules: the default's hundreds
    (tested by their own suites) would make any team's --min-coverage unusable."""
    write(tmp_path, "team.yaml", POLICY)
    suite = write(
        tmp_path,
        "suite.yaml",
        "policies: [default, team.yaml]\ncases:\n  - {command: git log, expect: allow}\n",
    )
    rules: list = []
    cov = coverage(run_suite(suite, rules), rules)
    own = {r.name for r in cov.rules}
    assert own and all(not str(r.span.file).endswith("default.yaml") for r in cov.rules)
    assert len(rules) > len(cov.rules) + 100  # the default's rules were loaded, not counted
    # the built-ins' own suites still count every built-in rule
    builtin: list = []
    results = run_suites(builtin_suites(), builtin)
    assert len(coverage(results, builtin).rules) > 400
