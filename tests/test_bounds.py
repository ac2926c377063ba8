"""No call makes a decision slow: every stage's work is bounded, patterns that need `re`'s
backtracking run only where their rule can still decide, a call past a bound is refused with
the bound named (never allowed, never hung), and the gate decides off the event loop."""

from __future__ import annotations

import asyncio
import os
import posixpath
import re
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leashd import limits
from leashd.gate.audit import AuditLog, records
from leashd.gate.gate import Gate, Session
from leashd.policy import Evaluator, compile_policy, matchers
from leashd.policy.facts import RESOLVER, Context
from leashd.policy.yaml_frontend import parse_yaml

from .conftest import WORLD

WORLD_CTX = Context.create(**WORLD)


def evaluator_of(yaml_text: str, use_re2: bool = True) -> Evaluator:
    return Evaluator(compile_policy(parse_yaml(yaml_text), use_re2=use_re2), WORLD_CTX)


# --- patterns only `re` can run --------------------------------------------------------------


class _Recording:
    """A compiled stdlib pattern that remembers every subject it was searched in."""

    def __init__(self, pattern: re.Pattern[str], seen: list[str]) -> None:
        self._pattern = pattern
        self._seen = seen

    def search(self, text: str, *args: object) -> re.Match[str] | None:
        self._seen.append(text)
        return self._pattern.search(text, *args)

    def __getattr__(self, name: str) -> object:
        return getattr(self._pattern, name)


BACKREF_POLICY = """
rules:
  - name: sed-doubled
    commands: ["sed"]
    command_patterns: ['(x)\\1']
    action: deny
  - name: reads
    commands: ["ls|git|cat"]
    action: allow
settings: {default_action: require_approval}
"""


def test_a_backtracking_pattern_runs_only_on_the_units_of_its_program(monkeypatch):
    # `(x)\1` needs `re`. It belongs to a rule about sed, so a long command of other programs
    # must never be searched with it: a backreference pattern on whole command text is what
    # made a 1 MB command take minutes.
    seen: list[str] = []
    real_compile = matchers.re.compile

    def recording_compile(pattern, flags=0):
        compiled = real_compile(pattern, flags)
        return _Recording(compiled, seen) if "\\1" in str(pattern) else compiled

    monkeypatch.setattr(matchers.re, "compile", recording_compile)
    ev = evaluator_of(BACKREF_POLICY)
    assert ev.evaluate("Bash", {"command": "ls src | cat -n && git status"}).action == "allow"
    assert seen == []
    d = ev.evaluate("Bash", {"command": "ls src | sed -n xx"})
    assert d.action == "deny" and d.rule_name == "sed-doubled"
    # the sed unit's text, and (a deny rule's extra reach) the pipeline it is in
    assert seen and all("sed -n xx" in s for s in seen)


def test_a_backtracking_pattern_is_never_run_on_more_than_its_bound():
    ev = evaluator_of(BACKREF_POLICY)
    long_script = "s/a/b/;" * (limits.BACKTRACK_SUBJECT // 7 + 1)
    d = ev.evaluate("Bash", {"command": f"sed -e '{long_script}' notes.txt"})
    assert d.action == "deny" and d.layer == "limit"
    assert "backtracking" in d.reason and f"{limits.BACKTRACK_SUBJECT:,}" in d.reason
    # The same length is no problem where no such pattern can decide.
    assert ev.evaluate("Bash", {"command": "cat " + "a.txt " * 1500}).action == "allow"


@pytest.mark.parametrize("filler", ["http://", "/", "a"])
def test_a_text_only_re_can_read_is_bounded_like_a_backtracking_pattern(evaluator, filler):
    # Outside ASCII, RE2 and `re` read `\\w`, `\\s` and `\\b` differently, so every pattern runs
    # with `re`, and the built-in credential-URL pattern is quadratic there (a 200 KB line of
    # `http://` after an `é` took 263 s). Such text gets the same bound.
    small = evaluator.evaluate("Bash", {"command": "echo 'é " + filler * 100 + "'"})
    assert small.layer != "limit"
    big = evaluator.evaluate("Bash", {"command": "echo 'é" + filler * 30000 + "'"})
    assert (big.action, big.layer) == ("deny", "limit")
    assert "outside ASCII" in big.reason and "Write tool" in big.reason


def test_a_class_holding_brace_and_comma_is_not_taken_for_a_counted_repeat():
    # `[{,}]` is three characters to both engines; only `{,n}` outside a class reads
    # differently. The built-in credential-search pattern has such a class and went to `re`.
    assert not matchers.needs_re(r"\.env($|[\s\"'*?\[{,}/|;)])")
    for pattern in (r"a{,3}", r"(.)\1", r"(?=x)", r"[[:alpha:]]", r"\Z", r"x{02}", r"\B"):
        assert matchers.needs_re(pattern), pattern


def test_the_builtin_policies_run_no_backtracking_pattern_on_every_command():
    # The default policy (and its overlay) needs `re` for nothing; the others only for rules
    # scoped to programs, so a long command of any other program never meets one.
    from leashd.policy.loader import BUILTIN_NAMES, load_compiled

    for name in BUILTIN_NAMES:
        compiled = load_compiled([name])
        slow = [
            compiled.rules[bit.bit_length() - 1]
            for matcher in (compiled._commands, compiled._path_regexes)
            for bit, _ in matcher._backtracking
        ]
        if name in ("default", "dev-tools"):
            assert slow == [], name
        assert all(rule.argv is not None for rule in slow), name


# --- sed: the `e` and `w` flags of `s`, for any delimiter ------------------------------------

DELIMITERS = st.characters(
    min_codepoint=33,
    max_codepoint=0x2FF,
    blacklist_characters="\\'\"`$!",
    blacklist_categories=("Cs",),
)


@settings(max_examples=150, deadline=None)
@given(DELIMITERS)
def test_sed_s_with_the_e_flag_is_never_allowed_whatever_the_delimiter(evaluator, d):
    d_ = d if d not in "xide" else "/"  # a delimiter also in the script reads differently
    command = f"sed '1s{d_}x{d_}id{d_}e' notes.txt"
    assert evaluator.evaluate("Bash", {"command": command}).action == "deny", command


@settings(max_examples=150, deadline=None)
@given(DELIMITERS)
def test_sed_s_with_the_w_flag_writes_where_it_says_whatever_the_delimiter(evaluator, d):
    d_ = d if d not in "abw/" else "|"
    command = f"sed -n 's{d_}a{d_}b{d_}w /home/dev/.bashrc' notes.txt"
    assert evaluator.evaluate("Bash", {"command": command}).action == "deny", command


# What a script can put before the `s` that runs or writes: an address holding an `s`, a
# `y` command, another `s`, a bracket expression holding the delimiter, spaces among flags.
SED_DECOYS = st.sampled_from(["", "/s/", "y/s/t/;", "s/a/b/;", "1,/sx/", "$!", "2~3 "])


@settings(max_examples=200, deadline=None)
@given(
    SED_DECOYS,
    st.sampled_from(["x", "[/]", "a\\/b"]),
    st.sampled_from(["e", "ge", " e", " g e", "2e"]),
)
def test_sed_s_that_runs_commands_is_found_behind_any_decoy(evaluator, before, regex, flags):
    command = f"sed '{before}s/{regex}/id/{flags}' notes.txt"
    assert evaluator.evaluate("Bash", {"command": command}).action == "deny", command


@settings(max_examples=200, deadline=None)
@given(
    SED_DECOYS, st.sampled_from(["x", "[/]", "a\\/b"]), st.sampled_from(["w", "gw", " gw", " p w"])
)
def test_sed_s_that_writes_is_found_behind_any_decoy(evaluator, before, regex, flags):
    command = f"sed -n '{before}s/{regex}/y/{flags} /home/dev/.bashrc' notes.txt"
    assert evaluator.evaluate("Bash", {"command": command}).action == "deny", command


@pytest.mark.parametrize(
    "script",
    ["s/a/b/g", "s/foo/bar/p", "s#/usr#/opt#g", "/^$/d; s/x/y/", 's/v = "\\(.*\\)"/\\1/p'],
)
def test_ordinary_sed_scripts_neither_run_nor_write(script):
    from leashd.shell import sed

    assert not sed.runs_commands(script)
    assert sed.written_files(script) == []


def test_sed_scripts_with_many_delimiters_are_read_as_running_commands():
    from leashd.shell import sed

    script = ";".join(f"s{chr(0x100 + k)}a{chr(0x100 + k)}b{chr(0x100 + k)}" for k in range(40))
    assert sed.runs_commands(script) and sed.written_files(script) is None
    assert not sed.runs_commands("s/a/b/g;s|c|d|p")
    assert sed.runs_commands("s/a/b/ge")


# --- bounds: past them, refused and said ----------------------------------------------------


@pytest.mark.parametrize(
    ("tool", "tool_input", "bound"),
    [
        ("Bash", {"command": "echo " + "x" * limits.COMMAND_CHARS}, "a command of"),
        ("Read", {"file_path": "/home/dev/project/" + "a" * limits.PATH_CHARS}, "a path of"),
        ("Bash", {"command": "cat " + "a/" * limits.PATH_CHARS}, "a path of"),
        ("Bash", {"command": "ls " + "x " * (limits.PATHS + 1)}, "naming"),
        ("Bash", {"command": "ls|" * 500 + "ls"}, "more than 400 commands"),
        # a long pipeline that ends in an error: tree-sitter's recovery is quadratic in it
        ("Bash", {"command": "ls|" * (limits.PIPES + 1)}, "'|' (the limit is 2,000)"),
        ("Bash", {"command": "ls && " * 2000 + "ls"}, "too deeply"),
        ("Glob", {"pattern": "*" * (limits.FIELD_CHARS + 1)}, "a Glob pattern of"),
        # tree-sitter's error recovery is quadratic here: 120 KB would take half a minute
        ("Bash", {"command": "echo " + "))a//e" * 20_000}, "could not be parsed within 0.5 s"),
        ("Bash", {"command": "echo " + "[[ " * 20_000}, "more than 50,000 syntax nodes"),
        # each substitution's text is in every command around it: 30 MB to read
        ("Bash", {"command": "echo " + "$(echo " * 150 + "x" * 200_000 + ")" * 150},
         "texts add up to"),
        # tree-sitter reads one heredoc line's expansions in time quadratic in their number
        ("Bash", {"command": "cat <<E\n" + "$x/" * 3000 + "\nE"}, "a line with 3,000 '$'"),
        ("mcp__fs__read", {"path": ["a.txt"] * (limits.PATHS + 1)}, "naming more than"),
        ("mcp__sh__run", {"command": ["sudo " * 50000] * 4}, "characters of text"),
        ("mcp__sh__run", {"command": ["ls"] * 500}, "more than 400 commands"),
        ("WebFetch", {"url": "https://a.example/" + "x" * limits.FIELD_CHARS, "prompt": "p"},
         "a URL of"),
    ],
)  # fmt: skip
def test_a_call_past_a_bound_is_refused_with_the_bound_named(evaluator, tool, tool_input, bound):
    d = evaluator.evaluate(tool, tool_input)
    assert d.action == "deny" and d.layer == "limit", d
    assert bound in d.reason and "too large for leashd to analyse" in d.reason


ALLOW_ALL = "rules: []\nsettings: {default_action: allow}\n"


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(
        [
            ("Bash", "command", "ls|", limits.PIPES + 1),
            ("Bash", "command", "echo $x", limits.LINE_EXPANSIONS + 1),
            ("Bash", "command", "ls x ", limits.PATHS + 1),
            ("Bash", "command", "x", limits.COMMAND_CHARS + 1),
            ("Read", "file_path", "a/", limits.PATH_CHARS),
            ("Glob", "pattern", "*", limits.FIELD_CHARS + 1),
        ]
    ),
    st.integers(min_value=0, max_value=2000),
)
def test_past_a_bound_even_a_policy_that_allows_everything_refuses(shape, extra):
    # The bounds come before any rule: a call leashd did not analyse whole is never allowed.
    tool, field, piece, count = shape
    ev = Evaluator(compile_policy(parse_yaml(ALLOW_ALL)), WORLD_CTX)
    d = ev.evaluate(tool, {field: piece * (count + extra)})
    assert (d.action, d.layer) == ("deny", "limit"), d.reason


def test_a_path_of_thousands_of_components_resolves_as_realpath_does(tmp_path):
    deep = str(tmp_path) + "/" + "/".join(["d"] * 1800) + "/f"
    assert RESOLVER.realpath(deep) == os.path.realpath(deep)
    dotted = str(tmp_path) + "/" + "/".join(["d", "..", "e"] * 600)
    assert RESOLVER.realpath(dotted) == posixpath.normpath(os.path.realpath(dotted))


# --- the gate decides off the event loop ------------------------------------------------------


def test_a_slow_decision_leaves_the_event_loop_free(tmp_path):
    audit = AuditLog(tmp_path / "audit.jsonl", fsync="never")
    gate = Gate.from_specs(["default"], audit, approved_dirs=[str(tmp_path)], temp_dirs=())
    release = threading.Event()
    entered = threading.Event()
    real = gate.decide

    def slow_decide(session, tool, tool_input):
        entered.set()
        release.wait(5)  # a decision that takes as long as the loop lets it
        return real(session, tool, tool_input)

    gate.decide = slow_decide  # type: ignore[method-assign]

    async def scenario() -> list[str]:
        order: list[str] = []
        check = asyncio.create_task(
            gate.check(Session("s", "c", str(tmp_path)), "Bash", {"command": "ls"})
        )
        while not entered.is_set():  # the decision has started ...
            await asyncio.sleep(0.001)
        # ... and the loop goes on while it is still being made (on the loop, the decision
        # would have blocked until its wait ran out, and be over by now)
        order.append("deciding" if not check.done() else "the loop was blocked")
        release.set()
        verdict = await check
        order.append(verdict.action)
        return order

    try:
        assert asyncio.run(scenario()) == ["deciding", "allow"]
    finally:
        release.set()
        audit.close()
    assert [r["decision"] for r in records(audit.path) if r["kind"] == "decision"] == ["allow"]


# --- lint: a backtracking pattern on every command's text -----------------------------------


def test_lint_reports_a_backtracking_pattern_that_names_no_program():
    from leashd.policy.analysis.lint import lint

    policy = parse_yaml(
        """
rules:
  - name: doubled-anywhere
    command_patterns: ['\\b(\\w+) \\1\\b']
    action: deny
  - name: doubled-in-sed
    commands: ["sed"]
    command_patterns: ['(x)\\1']
    action: deny
  - name: linear-anywhere
    command_patterns: ['rm\\s+-rf']
    action: deny
""",
        "team.yaml",
    )
    found = [f for f in lint(policy) if f.kind == "backtracking-pattern"]
    assert [(f.rule, f.severity, f.location.line) for f in found] == [
        ("doubled-anywhere", "warning", 4)
    ]
    assert "names no program" in found[0].message


def test_a_variable_that_doubles_at_each_step_is_refused_not_built(evaluator):
    # Tracked literally, `a=$a$a` twenty-four times would hold 33 million characters (and
    # thirty, two billion): the walker stops at the bound and the call is refused.
    command = "a=xy; " + "a=$a$a; " * 24 + "echo $a"
    d = evaluator.evaluate("Bash", {"command": command})
    assert d.action == "deny" and d.layer == "limit"
    assert f"grows past {limits.COMMAND_CHARS:,} characters" in d.reason
    word = "b=" + "x" * 2000 + "; echo " + "$b" * 200
    d = evaluator.evaluate("Bash", {"command": word})
    assert d.action == "deny" and "a word grows past" in d.reason


# --- malformed inputs reach the gate as malformed ---------------------------------------------


def test_the_gate_denies_a_call_whose_fields_have_the_wrong_type(tmp_path):
    audit = AuditLog(tmp_path / "audit.jsonl", fsync="never")
    gate = Gate.from_specs(["default"], audit, approved_dirs=[str(tmp_path)], temp_dirs=())
    session = Session("s", "c", str(tmp_path))
    target = str(tmp_path / "notes.txt")
    try:
        assert gate.decide(session, "Read", {"file_path": target}).action == "allow"
        # the same path again, now with a bad field: not the remembered allow
        d = gate.decide(session, "Read", {"file_path": target, "limit": "ten"})
        assert (d.action, d.layer) == ("deny", "input") and "limit" in d.reason
        d = gate.decide(session, "WebFetch", {"url": "https://example.com"})
        assert (d.action, d.layer) == ("deny", "input") and "prompt" in d.reason
    finally:
        audit.close()


def test_a_remembered_decision_answered_on_the_loop_is_the_one_the_thread_made(tmp_path):
    # The second check of the same call is answered from the evaluator's memo on the event
    # loop; a wrong-typed field must still go to the thread and be denied, never remembered.
    audit = AuditLog(tmp_path / "audit.jsonl", fsync="never")
    gate = Gate.from_specs(["default"], audit, approved_dirs=[str(tmp_path)], temp_dirs=())
    session = Session("s", "c", str(tmp_path))
    target = str(tmp_path / "notes.txt")

    async def checks() -> list[tuple[str, str]]:
        out = []
        for tool_input in ({"file_path": target}, {"file_path": target},
                           {"file_path": target, "limit": "ten"}):  # fmt: skip
            v = await gate.check(session, "Read", tool_input)
            out.append((v.action, v.layer))
        return out

    try:
        assert gate._remembered(session, "Read", {"file_path": target}) is None  # not yet
        assert asyncio.run(checks()) == [("allow", "policy"), ("allow", "policy"),
                                         ("deny", "input")]  # fmt: skip
        kept, decision = gate._remembered(session, "Read", {"file_path": target})
        assert decision.action == "allow" and kept["input"] == {"file_path": target}
    finally:
        audit.close()
    assert [r["decision"] for r in records(audit.path) if r["kind"] == "decision"] == [
        "allow", "allow", "deny"]  # fmt: skip
