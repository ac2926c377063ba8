"""The coverage of policy test suites as HTML: `leashd policy test --coverage --html DIR`.

DIR/index.html gives the whole picture: how many rules some case decided, a table of the
policy files, a map with a square per rule (coloured by how many cases it decided, each a
link to the rule's source), and the rules no case decided. Each policy file gets a page of
its own: its rules, each with the cases it decided, then its source with line numbers and an
anchor per line (`default.yaml.html#L21`), each rule's lines coloured.

Self-contained: inline CSS, no script, nothing fetched; written with the standard library.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from html import escape
from pathlib import Path

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from leashd.policy.ir import Rule
from leashd.policy.testsuite import CaseResult, Coverage, shown_path

MAX_CASES_SHOWN = 50  # per rule, on its file's page


def plural(count: int, noun: str) -> str:
    return f"{count:,} {noun if count == 1 else noun + 's'}"


@dataclass(frozen=True)
class _RuleView:
    rule: Rule
    cases: tuple[CaseResult, ...]
    first: int  # the lines the rule is written on (0: unknown)
    last: int

    @property
    def covered(self) -> bool:
        return bool(self.cases)

    @property
    def state(self) -> str:
        return "covered" if self.cases else "uncovered"

    @property
    def heat(self) -> str:
        n = len(self.cases)
        return "h0" if n == 0 else "h1" if n == 1 else "h2" if n < 10 else "h3"

    @property
    def row_id(self) -> str:
        return "rule-" + re.sub(r"\s", "_", self.rule.name)

    @property
    def anchor(self) -> str:
        """Where a link to the rule goes: its first line, or its row without a source."""
        return f"L{self.first}" if self.first > 0 else self.row_id

    def title(self) -> str:
        n = len(self.cases)
        decided = plural(n, "case") if n else "no case"
        return f"{self.rule.name} · {self.rule.action} · line {self.rule.span.line} · {decided}"


@dataclass(frozen=True)
class _FileView:
    file: str  # as the rules' spans name it
    shown: str
    page: str  # the page's file name in DIR
    lines: list[str] | None  # None: the source cannot be read
    rules: list[_RuleView]

    @property
    def decided(self) -> int:
        return sum(r.covered for r in self.rules)

    @property
    def percent(self) -> float:
        return 100.0 * self.decided / max(len(self.rules), 1)


def write_html(cov: Coverage, directory: str | Path) -> Path:
    """Write the report into `directory` (made if missing); returns its index.html."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    files = _files(cov)
    for f in files:
        (out / f.page).write_text(_file_page(cov, f), encoding="utf-8")
    index = out / "index.html"
    index.write_text(_index_page(cov, files), encoding="utf-8")
    return index


# --- what the pages show ----------------------------------------------------------------------


def _files(cov: Coverage) -> list[_FileView]:
    by_file: dict[str, list[Rule]] = {}
    for rule in cov.rules:
        by_file.setdefault(rule.span.file, []).append(rule)
    shown = {f: shown_path(f, mark_builtin=True) for f in by_file}
    pages = _page_names(sorted(by_file, key=lambda f: shown[f]))
    views = []
    for file in sorted(by_file, key=lambda f: shown[f]):
        rules = sorted(by_file[file], key=lambda r: (r.span.line, r.span.column))
        lines = _read_lines(file)
        extents = _extents(file, lines, rules) if lines is not None else {}
        views.append(
            _FileView(
                file=file,
                shown=shown[file],
                page=pages[file],
                lines=lines,
                rules=[_RuleView(r, cov.cases_of(r), *extents.get(id(r), (0, 0))) for r in rules],
            )
        )
    return views


def _page_names(files: list[str]) -> dict[str, str]:
    """`default.yaml.html`; a second file of the same name gets `default.yaml-2.html`."""
    taken: set[str] = {"index.html"}
    out = {}
    for file in files:
        base = re.sub(r"[^A-Za-z0-9._-]", "_", os.path.basename(file)) or "policy"
        name, n = f"{base}.html", 1
        while name in taken:
            n += 1
            name = f"{base}-{n}.html"
        taken.add(name)
        out[file] = name
    return out


def _read_lines(file: str) -> list[str] | None:
    if file.startswith("<"):
        return None
    try:
        return Path(file).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None


def _extents(file: str, lines: list[str], rules: list[Rule]) -> dict[int, tuple[int, int]]:
    """The first and last line (1-based) of each rule (by id), as written in the file."""
    found: dict[tuple[int, int], tuple[int, int]] = {}
    if file.endswith((".yaml", ".yml")):
        found = _yaml_extents("\n".join(lines))
    out: dict[int, tuple[int, int]] = {}
    starts = sorted({r.span.line for r in rules if r.span.line > 0})
    for r in rules:
        line = r.span.line
        if not 1 <= line <= len(lines):
            continue
        exact = found.get((line, r.span.column))
        last = exact[1] if exact else _statement_end(lines, line, starts)
        out[id(r)] = (line, _trimmed(lines, line, last))
    return out


def _yaml_extents(text: str) -> dict[tuple[int, int], tuple[int, int]]:
    """(line, column) where each rule of a YAML policy starts -> its first and last line."""
    from leashd.policy import yaml_fast

    try:
        root = yaml_fast.compose(text)
    except Exception:  # it loaded once; if it no longer composes, the lines are guessed
        return {}
    rules = None
    if isinstance(root, MappingNode):
        rules = next((v for k, v in root.value if getattr(k, "value", None) == "rules"), None)
    if not isinstance(rules, SequenceNode):
        return {}
    out = {}
    for node in rules.value:
        start = (node.start_mark.line + 1, node.start_mark.column + 1)
        out[start] = (start[0], _last_line(node) + 1)
    return out


def _last_line(node: Node, floor: int = -1) -> int:
    """The last line (0-based) holding the node's own text; an alias (a node written
    before `floor`, elsewhere) counts for nothing."""
    if node.start_mark.index < floor:
        return -1
    if isinstance(node, ScalarNode):
        end = node.end_mark
        return end.line if end.column > 0 else end.line - 1  # a block scalar ends at col 0
    children: list[int] = []
    if isinstance(node, SequenceNode):
        children = [_last_line(n, node.start_mark.index) for n in node.value]
    elif isinstance(node, MappingNode):
        children = [_last_line(v, k.start_mark.index) for k, v in node.value]
    if node.flow_style:  # the closing bracket
        children.append(node.end_mark.line)
    return max([node.start_mark.line, *children])


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _blank_or_comment(line: str) -> bool:
    s = line.strip()
    return not s or s.startswith("#")


def _statement_end(lines: list[str], first: int, starts: list[int]) -> int:
    """A rule's last line where no parser says (.leash): up to the next line written at
    the rule's own indentation or less (the next statement), or the next rule."""
    following = [s for s in starts if s > first]
    limit = following[0] - 1 if following else len(lines)
    own = _indent(lines[first - 1])
    for n in range(first + 1, limit + 1):
        text = lines[n - 1]
        if not _blank_or_comment(text) and _indent(text) <= own:
            return n - 1
    return limit


def _trimmed(lines: list[str], first: int, last: int) -> int:
    """Without the blank lines and comments at its end (they go with what follows)."""
    last = min(last, len(lines))
    while last > first and _blank_or_comment(lines[last - 1]):
        last -= 1
    return max(last, first)


# --- HTML -------------------------------------------------------------------------------------


def _e(s: object) -> str:
    return escape(str(s), quote=True)


def _pct(p: float) -> str:
    return f"{p:.1f}%"


def _meter(percent: float, small: bool = False) -> str:
    cls = "meter small" if small else "meter"
    return (
        f'<div class="{cls}" role="img" aria-label="{_pct(percent)} covered">'
        f'<span style="width:{percent:.2f}%"></span></div>'
    )


def _action(action: str) -> str:
    label = "ask" if action == "require_approval" else action
    return f'<span class="act {_e(action)}" title="{_e(action)}">{_e(label)}</span>'


def _document(title: str, crumbs: str, body: str) -> str:
    return (
        "<!doctype html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f'<header class="bar"><span class="brand">leashd</span> {crumbs}</header>\n'
        f"<main>\n{body}\n</main>\n</body>\n</html>\n"
    )


def _legend() -> str:
    return (
        '<p class="legend">'
        '<span class="cell h3"></span> decided 10 cases or more '
        '<span class="cell h2"></span> 2–9 '
        '<span class="cell h1"></span> 1 '
        '<span class="cell h0"></span> no case decided it</p>'
    )


def _hero(percent: float, decided: int, total: int, extra: str = "") -> str:
    return (
        '<section class="hero">'
        f'<div class="big {"good" if percent >= 90 else "fair" if percent >= 70 else "poor"}">'
        f"{_pct(percent)}</div>"
        f'<div class="summary">{_meter(percent)}'
        f"<p><strong>{decided:,}</strong> of <strong>{plural(total, 'rule')}</strong> decided"
        f" at least one case{extra}</p></div></section>"
    )


def _index_page(cov: Coverage, files: list[_FileView]) -> str:
    total = sum(len(f.rules) for f in files)
    decided = sum(f.decided for f in files)
    failed = f", <strong class='bad'>{cov.failed:,} failed</strong>" if cov.failed else ""
    extra = (
        f" · {plural(cov.cases, 'case')} in {plural(len(cov.suites), 'suite')}{failed}"
        if cov.suites
        else ""
    )
    parts = [_hero(100.0 * decided / max(total, 1), decided, total, extra)]

    rows = "".join(
        f'<tr><td><a href="{_e(f.page)}">{_e(f.shown)}</a></td>'
        f'<td class="num">{len(f.rules):,}</td><td class="num">{f.decided:,}</td>'
        f'<td class="num">{len(f.rules) - f.decided:,}</td>'
        f'<td class="cov">{_meter(f.percent, small=True)}<span>{_pct(f.percent)}</span></td></tr>'
        for f in files
    )
    parts.append(
        '<section><h2>Policy files</h2><table class="files"><thead><tr><th>file</th>'
        '<th class="num">rules</th><th class="num">decided</th><th class="num">not decided</th>'
        f"<th>coverage</th></tr></thead><tbody>{rows}</tbody></table></section>"
    )

    maps = []
    for f in files:
        cells = "".join(
            f'<a class="cell {r.heat}" href="{_e(f.page)}#{_e(r.anchor)}" '
            f'title="{_e(r.title())}"><span>{_e(r.rule.name)}</span></a>'
            for r in f.rules
        )
        maps.append(
            f'<h3><a href="{_e(f.page)}">{_e(f.shown)}</a> '
            f'<span class="muted">{f.decided:,}/{len(f.rules):,}</span></h3>'
            f'<div class="map">{cells}</div>'
        )
    parts.append(
        '<section><h2>Rule map</h2><p class="muted">A square per rule, in the order the '
        "rules are tried; each links to the rule's source.</p>"
        f"{_legend()}{''.join(maps)}</section>"
    )

    missed = []
    for f in files:
        items = "".join(
            f'<li class="rule uncovered"><a href="{_e(f.page)}#{_e(r.anchor)}">'
            f"{_e(r.rule.name)}</a> {_action(r.rule.action)} "
            f'<span class="loc">line {r.rule.span.line}</span>'
            f'<span class="why">{_e(r.rule.explain_reason())}</span></li>'
            for r in f.rules
            if not r.covered
        )
        if items:
            missed.append(f'<h3>{_e(f.shown)}</h3><ul class="missed">{items}</ul>')
    count = total - decided
    parts.append(
        f'<section><h2>Rules no case decided <span class="muted">{count:,}</span></h2>'
        + ("".join(missed) if missed else '<p class="good">Every rule decided some case.</p>')
        + "</section>"
    )
    if cov.suites:
        suites = "".join(f"<li><code>{_e(shown_path(s))}</code></li>" for s in cov.suites)
        parts.append(f'<section><h2>Suites</h2><ul class="suites">{suites}</ul></section>')
    return _document("leashd policy coverage", "policy coverage", "\n".join(parts))


def _case_item(r: CaseResult) -> str:
    state = "" if r.passed else ' <span class="bad">failing</span>'
    return f'<li><code>{_e(r.call())}</code> <span class="loc">{_e(r.where)}</span>{state}</li>'


def _cases_cell(view: _RuleView) -> str:
    if not view.cases:
        return '<span class="none">no case</span>'
    shown = "".join(_case_item(c) for c in view.cases[:MAX_CASES_SHOWN])
    more = len(view.cases) - MAX_CASES_SHOWN
    if more > 0:
        shown += f'<li class="muted">and {plural(more, "more case")}</li>'
    return (
        f"<details><summary>{plural(len(view.cases), 'case')}</summary><ol>{shown}</ol></details>"
    )


def _file_page(cov: Coverage, f: _FileView) -> str:
    crumbs = f'<a href="index.html">policy coverage</a> › {_e(f.shown)}'
    parts = [f"<h1>{_e(f.shown)}</h1>", _hero(f.percent, f.decided, len(f.rules))]
    jumps = [f'<a href="#rules">{plural(len(f.rules), "rule")}</a>']
    if f.lines is not None:
        jumps.append(f'<a href="#source">the source ({plural(len(f.lines), "line")})</a>')
    parts.append(f'<nav class="jump">{" · ".join(jumps)}</nav>')
    rows = "".join(
        f'<tr id="{_e(r.row_id)}" class="rule {r.state} {r.heat}">'
        f'<td class="num"><a href="#{_e(r.anchor)}">{r.rule.span.line}</a></td>'
        f'<td><a class="name" href="#{_e(r.anchor)}">{_e(r.rule.name)}</a>'
        f'<div class="why">{_e(r.rule.explain_reason())}</div></td>'
        f"<td>{_action(r.rule.action)}</td><td>{_cases_cell(r)}</td></tr>"
        for r in f.rules
    )
    parts.append(
        f'<section id="rules"><h2>Rules</h2>{_legend()}<table class="rules"><thead><tr>'
        '<th class="num">line</th><th>rule</th><th>action</th><th>cases that it decided</th>'
        f"</tr></thead><tbody>{rows}</tbody></table></section>"
    )
    if f.lines is None:
        parts.append(
            '<section><p class="muted">The source of this file cannot be read.</p></section>'
        )
    else:
        parts.append(
            '<section id="source"><h2>Source</h2><div class="src-wrap"><table class="src"><tbody>'
            + "".join(_source_rows(f))
            + "</tbody></table></div></section>"
        )
    return _document(f"{f.shown} · leashd policy coverage", crumbs, "\n".join(parts))


def _source_rows(f: _FileView) -> Iterable[str]:
    assert f.lines is not None
    owner: dict[int, _RuleView] = {}
    starts: dict[int, _RuleView] = {}
    for r in f.rules:
        if r.first <= 0:
            continue
        starts.setdefault(r.first, r)
        for n in range(r.first, r.last + 1):
            owner.setdefault(n, r)
    for n, text in enumerate(f.lines, 1):
        r = owner.get(n)
        cls = f"line {r.state}" if r is not None else "line"
        gutter = ""
        start = starts.get(n)
        if start is not None:
            count = len(start.cases)
            gutter = (
                f'<a class="hits {start.heat}" href="#{_e(start.row_id)}" '
                f'title="{_e(start.title())}">{count:,}</a>'
            )
        yield (
            f'<tr id="L{n}" class="{cls}"><td class="ln"><a href="#L{n}">{n}</a></td>'
            f'<td class="gut">{gutter}</td><td class="code">{_e(text) or " "}</td></tr>\n'
        )


_CSS = """
:root {
  --bg: #ffffff; --fg: #1f2328; --muted: #656d76; --line: #d0d7de; --panel: #f6f8fa;
  --accent: #0969da;
  --cov-bg: #dafbe1; --cov-edge: #1a7f37; --miss-bg: #ffebe9; --miss-edge: #cf222e;
  --h1: #aceebb; --h2: #4ac26b; --h3: #1a7f37; --h0: #ff8182;
  --allow: #0969da; --ask: #9a6700; --deny: #8250df;
  --mono: ui-monospace, SFMono-Regular, "SF Mono", Menlo, Consolas, "Liberation Mono", monospace;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #0d1117; --fg: #e6edf3; --muted: #8d96a0; --line: #30363d; --panel: #161b22;
    --accent: #4493f8;
    --cov-bg: #12261e; --cov-edge: #3fb950; --miss-bg: #2d1517; --miss-edge: #f85149;
    --h1: #1b4721; --h2: #2ea043; --h3: #56d364; --h0: #da3633;
    --allow: #4493f8; --ask: #d29922; --deny: #ab7df8;
  }
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg);
  font: 15px/1.5 -apple-system, BlinkMacSystemFont, "Segoe UI", Helvetica, Arial, sans-serif; }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
.bar { position: sticky; top: 0; z-index: 2; padding: 10px 24px; background: var(--panel);
  border-bottom: 1px solid var(--line); }
.brand { font-weight: 700; margin-right: 6px; }
main { max-width: 1200px; margin: 0 auto; padding: 8px 24px 48px; }
h1 { font-size: 22px; margin: 20px 0 4px; font-family: var(--mono); word-break: break-all; }
h2 { font-size: 18px; margin: 32px 0 10px; padding-bottom: 6px;
  border-bottom: 1px solid var(--line); }
h3 { font-size: 15px; margin: 20px 0 8px; font-family: var(--mono); }
.muted, .loc, .none { color: var(--muted); font-weight: normal; }
.bad { color: var(--miss-edge); }
.good { color: var(--cov-edge); }
.hero { display: flex; align-items: center; gap: 24px; margin: 20px 0; }
.big { font-size: 44px; font-weight: 700; letter-spacing: -1px; min-width: 150px; }
.big.good { color: var(--cov-edge); } .big.fair { color: var(--ask); }
.big.poor { color: var(--miss-edge); }
.summary { flex: 1; }
.summary p { margin: 8px 0 0; }
.meter { height: 12px; border-radius: 6px; background: var(--miss-bg); overflow: hidden;
  border: 1px solid var(--line); }
.meter span { display: block; height: 100%; background: var(--cov-edge); }
.meter.small { display: inline-block; width: 120px; height: 8px; vertical-align: middle;
  margin-right: 8px; }
table { border-collapse: collapse; width: 100%; }
th { text-align: left; font-weight: 600; color: var(--muted); font-size: 13px; }
th, td { padding: 6px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
.files td.cov { white-space: nowrap; }
.legend { color: var(--muted); font-size: 13px; }
.legend .cell { width: 12px; height: 12px; margin: 0 4px 0 12px; vertical-align: -1px; }
.legend .cell:first-child { margin-left: 0; }
.cell { display: inline-block; width: 16px; height: 16px; border-radius: 3px; }
.cell span { display: none; }
.cell.h0 { background: var(--h0); } .cell.h1 { background: var(--h1); }
.cell.h2 { background: var(--h2); } .cell.h3 { background: var(--h3); }
.map { display: flex; flex-wrap: wrap; gap: 3px; }
.map .cell:hover { outline: 2px solid var(--fg); }
.act { display: inline-block; padding: 0 7px; border-radius: 10px; font-size: 12px;
  font-weight: 600; border: 1px solid currentColor; }
.act.allow { color: var(--allow); } .act.require_approval { color: var(--ask); }
.act.deny { color: var(--deny); }
.why { color: var(--muted); font-size: 13px; }
ul.missed { list-style: none; padding: 0; margin: 0; }
ul.missed li { padding: 5px 10px; margin: 3px 0; border-left: 3px solid var(--miss-edge);
  background: var(--miss-bg); border-radius: 0 4px 4px 0; }
ul.missed li .loc { margin: 0 8px; font-size: 13px; }
ul.missed .why { display: inline; }
tr.rule td:first-child { border-left: 4px solid transparent; }
tr.rule.covered td:first-child { border-left-color: var(--cov-edge); }
tr.rule.uncovered td:first-child { border-left-color: var(--miss-edge); }
tr.rule.uncovered { background: var(--miss-bg); }
tr.rule .name { font-family: var(--mono); font-weight: 600; }
details summary { cursor: pointer; color: var(--accent); }
details ol { margin: 6px 0; padding-left: 22px; font-size: 13px; }
details code { font-family: var(--mono); }
tr:target, tr:target td { outline: 2px solid var(--accent); outline-offset: -2px; }
tr[id] { scroll-margin-top: 60px; }
.src-wrap { overflow-x: auto; border: 1px solid var(--line); border-radius: 6px; }
table.src { font: 12.5px/1.45 var(--mono); width: auto; min-width: 100%; }
table.src td { border: 0; padding: 0 8px; }
table.src td.ln { text-align: right; color: var(--muted); user-select: none;
  background: var(--panel); border-right: 1px solid var(--line); }
table.src td.ln a { color: inherit; }
table.src td.gut { width: 44px; text-align: right; padding: 0 4px; }
table.src td.code { white-space: pre; }
tr.line.covered td.code { background: var(--cov-bg); box-shadow: inset 3px 0 var(--cov-edge); }
tr.line.uncovered td.code { background: var(--miss-bg); box-shadow: inset 3px 0 var(--miss-edge); }
.hits { display: inline-block; min-width: 26px; padding: 0 5px; border-radius: 8px; font-size: 11px;
  text-align: center; color: #fff; font-weight: 700; }
.hits.h0 { background: var(--miss-edge); }
.hits.h1, .hits.h2, .hits.h3 { background: var(--cov-edge); }
ul.suites { padding-left: 20px; }
nav.jump { font-size: 14px; margin: -8px 0 8px; }
table.rules td { padding: 4px 10px; }
section[id] { scroll-margin-top: 50px; }
"""
