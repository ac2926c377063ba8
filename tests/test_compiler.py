"""The bitset compiler against the reference interpreter on random policies and calls.

The corpora exercise the built-in policies; these properties exercise the pattern languages
themselves: argv prefixes with alternatives and wildcards, flags in every spelling, globs,
legacy regexes, dynamic words, with RE2 and with the stdlib fallback.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from leashd.policy.compiler import CompiledPolicy
from leashd.policy.evaluator import Evaluator
from leashd.policy.facts import Context, extract
from leashd.policy.ir import ArgvPattern, PathCondition, Policy, Regex, Rule
from leashd.policy.reference import evaluate as reference_evaluate

WORLD = Context(cwd="/home/dev/project", home="/home/dev", approved_dirs=("/home/dev/project",))

CMD_WORDS = [
    "git",
    "push",
    "-f",
    "--force",
    "--force-with-lease=main",
    "--",
    "-rf",
    "-fr",
    "-r",
    "rm",
    "a.txt",
    "~/.ssh/id_rsa",
    ".env",
    "$X",
    "x=1",
    "--out=f",
    "-o",
    "npm",
    "run",
    "test",
    "-C",
    "dir",
    "|",
    "&&",
    ";",
    ">",
    "out.pem",
    "sh",
    "-c",
    "--a=b=c",
    "-",
    "-x1",
    "tee",
    "../up",
    "/etc/hosts",
    "xargs",
    "cat",
    "LD_PRELOAD=/tmp/a.so",
    "A_TOKEN=1",
    "https://a.example.com/x",
    "http://169.254.169.254/",
    "curl",
    "'rm\x0b-rf'",
    "'ü.PEM'",
    "ſecret",
    "'x\n'",
    '"$(id)"',
    "'rm -rf /'",
]
TOKENS = [
    "git",
    "rm",
    "npm",
    "cat",
    "sh",
    "tee",
    "push",
    "run",
    "test",
    "*",
    "**",
    "$",
    "-*",
    "push|pull",
    "r?",
    "[gr]*",
    "{npm,git}",
    "*.txt",
    "--force*",
    "-f",
    "a.txt",
    "[!a]*",
    "[!]x]*",
    "[!a-z_-]*",
]
FLAGS = [
    "-f",
    "-r",
    "-x",
    "--force",
    "--force*",
    "--out",
    "-o",
    "--a=b",
    "--a*c",
    "*",
    "-?",
    "-[rf]",
    "--*",
    "?-f",
    "-1",
    "--fast-x",
]
ENVS = ["LD_*", "PATH", "X", "*_TOKEN", "[A-Z]*"]
HOSTS = ["*.example.com", "localhost", "169.254.*", "EXAMPLE.COM", "[a-c]*"]
FEEDERS = ["curl", "wget", "c*", "cat"]
GLOBS = ["*.pem", "~/.ssh", ".env*", "/etc/**", "**/out*", "*.txt", "~/**/id_*", "up"]
REGEXES = [
    r"^git\s+push",
    r"rm\s+-rf",
    r"\|\s*sh\b",
    r"(?i)PUSH",
    r"\.env",
    r"a(?=\.txt)",
    r"rm\s-rf'$",
    r"(?i)s\w+t\b",
    r"\d",
    r"^ls [[:alnum:]]+$",
    r"rm.{,3}-rf",
]


@st.composite
def rules(draw, index: int) -> Rule:
    fields: dict = {}
    if draw(st.booleans()):
        fields["argv"] = tuple(
            ArgvPattern(tokens=tuple((t,) if "|" not in t else tuple(t.split("|")) for t in toks))
            for toks in draw(
                st.lists(
                    st.lists(st.sampled_from(TOKENS), min_size=1, max_size=4),
                    min_size=1,
                    max_size=2,
                )
            )
        )
    if draw(st.booleans()):
        fields["flags"] = tuple(draw(st.lists(st.sampled_from(FLAGS), min_size=1, max_size=3)))
    if draw(st.integers(0, 3)) == 0:
        fields["command_patterns"] = tuple(
            Regex(pattern=p)
            for p in draw(st.lists(st.sampled_from(REGEXES), min_size=1, max_size=2))
        )
    if draw(st.integers(0, 2)) == 0:
        fields["paths"] = PathCondition(
            globs=tuple(draw(st.lists(st.sampled_from(GLOBS), max_size=2))),
            except_globs=tuple(draw(st.lists(st.sampled_from(GLOBS), max_size=1))),
            access=draw(st.sampled_from(["any", "read", "write"])),
            where=draw(st.sampled_from(["anywhere", "inside", "outside", "temp", "system"])),
            ignore_case=draw(st.booleans()),
            via=draw(st.sampled_from(["any", "redirect"])),
        )
    if draw(st.integers(0, 4)) == 0:
        fields["opaque"] = draw(st.booleans())
    if draw(st.integers(0, 4)) == 0:
        fields["wrapper"] = draw(st.booleans())
    if draw(st.integers(0, 3)) == 0:
        fields["env"] = tuple(draw(st.lists(st.sampled_from(ENVS), min_size=1, max_size=2)))
    if draw(st.integers(0, 3)) == 0:
        fields["hosts"] = tuple(draw(st.lists(st.sampled_from(HOSTS), min_size=1, max_size=2)))
    if draw(st.integers(0, 3)) == 0:
        fields["fed_by"] = tuple(draw(st.lists(st.sampled_from(FEEDERS), min_size=1, max_size=2)))
    if draw(st.integers(0, 4)) == 0:
        fields["tools"] = ("Read",) if draw(st.booleans()) else ("Bash", "Write")
    action = draw(st.sampled_from(["allow", "deny", "require_approval"]))
    return Rule(name=f"r{index}", action=action, **fields)


@st.composite
def policies(draw) -> Policy:
    n = draw(st.integers(1, 12))
    return Policy(rules=tuple(draw(rules(i)) for i in range(n)))


commands = st.lists(st.sampled_from(CMD_WORDS), min_size=1, max_size=8).map(" ".join)
file_calls = st.tuples(
    st.sampled_from(["Read", "Write"]),
    st.sampled_from(["a.txt", ".ENV", "/etc/ssl/x.pem", "~/.ssh/config", "../up", "/tmp/o"]),
)


def _agree(policy: Policy, tool: str, tool_input: dict) -> None:
    want = reference_evaluate(policy, extract(tool, tool_input, WORLD), WORLD)
    for use_re2 in (True, False):
        got = Evaluator(CompiledPolicy(policy, use_re2), WORLD).evaluate(tool, tool_input)
        assert (got.action, got.rule_name) == (want.action, want.rule_name), (use_re2, policy)


@settings(max_examples=400, deadline=None)
@given(policies(), commands)
def test_compiled_equals_reference_on_random_policies_and_commands(policy, command):
    _agree(policy, "Bash", {"command": command})


@settings(max_examples=200, deadline=None)
@given(policies(), file_calls)
def test_compiled_equals_reference_on_random_policies_and_file_tools(policy, call):
    tool, path = call
    _agree(policy, tool, {"file_path": path, "content": "x"})


@settings(max_examples=200, deadline=None)
@given(policies(), commands)
def test_explain_trace_ends_with_the_deciding_rule(policy, command):
    ev = Evaluator(CompiledPolicy(policy), WORLD)
    decision = ev.evaluate("Bash", {"command": command}, trace=True)
    plain = ev.evaluate("Bash", {"command": command})
    assert (decision.action, decision.rule_name) == (plain.action, plain.rule_name)
    for unit in decision.units:
        matched = [s for s in unit.steps if s.matched]
        assert len(matched) <= 1
        if unit.rule is not None:  # decided by a rule (perhaps clamped because opaque)
            assert unit.steps[-1].matched and unit.steps[-1].rule == unit.rule
        else:
            assert not matched
