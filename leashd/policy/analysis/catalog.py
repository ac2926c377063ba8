"""The lint's findings: a stable code, a name, a default severity and a page of documentation.

`leashd policy rule CODE` prints a page; `docs/lint-rules.md` is generated from this
catalogue (`leashd policy rule --all`), and a test keeps the two the same.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LintRule:
    code: str
    kind: str
    severity: str  # the default; `conflict` and `unanalyzable` also have an info form
    summary: str
    why: str
    example: str
    fix: str
    title: str = ""  # one line: SARIF's shortDescription, a code-scanning alert's headline

    @property
    def description(self) -> str:
        """The whole story in one paragraph (SARIF's fullDescription)."""
        return f"{self.summary} {self.why}"

    def page(self) -> str:
        return (
            f"# {self.code} {self.kind} ({self.severity})\n\n{self.summary}\n\n"
            f"## Why it matters\n{self.why}\n\n## Example\n```yaml\n{self.example.strip()}\n```\n\n"
            f"## How to fix it\n{self.fix}\n"
        )


CATALOG: tuple[LintRule, ...] = (
    LintRule(
        "L101",
        "shadowed",
        "error",
        "A rule can never fire: earlier rules, one or several together, already match every "
        "call it matches, and at least one of them has a different action.",
        "Rules are tried in order and the first that matches decides. A shadowed rule is dead "
        "code that looks alive: a reader believes it decides its calls, but an earlier rule "
        "does. A shadowed deny is the worst case: the calls it was written to stop get the "
        "earlier rule's action instead.",
        """
- name: git-reads
  commands: ["git"]
  action: allow
- name: git-force-push          # L101: every `git push --force` is allowed by git-reads first
  commands: ["git push ** --force"]
  action: deny
""",
        "Move the shadowed rule before the rules that cover it (the finding names them), or "
        "narrow those rules so they no longer match its calls. If the rule is not needed, "
        "remove it.",
        title="Rule can never fire: earlier rules decide every call it matches",
    ),
    LintRule(
        "L102",
        "redundant",
        "warning",
        "A rule never decides anything: earlier rules with the same action already match "
        "every call it matches.",
        "It can be removed without changing any decision. Left in place it misleads: editing "
        "it changes nothing, and a later change to the covering rule silently hands its calls "
        "to it.",
        """
- name: read-only
  commands: ["cat", "ls", "head"]
  action: allow
- name: listing                 # L102: `ls` is already allowed by read-only
  commands: ["ls"]
  action: allow
""",
        "Remove the redundant rule, or move it before the covering rule if it is meant to "
        "give its calls its own name and reason in the audit log.",
        title="Rule never decides anything: earlier rules with its action cover it",
    ),
    LintRule(
        "L103",
        "conflict",
        "warning",
        "Two rules with different actions overlap partially: some call matches both, neither "
        "contains the other, and their order decides that call. A warning when the earlier "
        "rule is the looser one (the overlap gets the looser action, which the later, "
        "stricter rule did not intend); info when the stricter rule comes first, the usual "
        "layering of denies before allows, where the overlap is decided safely. A question "
        "to the AI approver (`approver: ai`) counts as looser than a question to a human: "
        "an AI-asking rule before an overlapping human-asking one is a warning too.",
        "The decision on the overlap depends on an order nobody may have thought about. The "
        "finding gives a concrete call from the overlap, checked by the evaluator, so you can "
        "see what order decides.",
        """
- name: git-config-read
  commands: ["git config --get"]
  action: allow
- name: write-outside-project   # L103: `git config --get x > /srv/a` is allowed first
  paths: {access: write, where: outside}
  action: deny
""",
        "Put the stricter rule first when the overlap must get its action (denies before "
        "allows), or narrow one rule so the two no longer overlap.",
        title="Rules overlap and their order decides the shared calls",
    ),
    LintRule(
        "L104",
        "exception",
        "info",
        "An earlier rule matches a strict subset of what a later rule matches, with a "
        "different action: it carves an exception out of the later rule.",
        "This is usually intended (deny `git push --force` before allowing `git push`). It is "
        "reported so that an unintended exception, such as an allow carved out of a deny, is "
        "visible.",
        """
- name: git-force-push          # L104: an exception to git-network
  commands: ["git push ** --force"]
  action: deny
- name: git-network
  commands: ["git push", "git fetch"]
  action: require_approval
""",
        "Nothing, when the exception is meant. Otherwise reorder or narrow the rules.",
        title="An earlier rule carves an exception out of a later one",
    ),
    LintRule(
        "L105",
        "vacuous",
        "error",
        "A rule matches nothing: its conditions contradict each other (a command condition "
        "on a tool that has no command), a pattern's language is empty, or its tool set is "
        "empty.",
        "A rule that matches nothing protects nothing; it was certainly meant to match something.",
        """
- name: no-secret-reads         # L105: `commands` only holds for Bash, never for Read
  tools: [Read]
  commands: ["cat .env"]
  action: deny
""",
        "Fix the contradiction: use `paths` for file tools, `commands`/`argv` for shell "
        "commands, and check the pattern can match at all.",
        title="Rule matches nothing",
    ),
    LintRule(
        "L201",
        "unknown-tool",
        "warning",
        "A tool name is neither a Claude Code tool nor an MCP tool name (`mcp__server__tool`).",
        "A misspelt tool name matches nothing, so the rule silently does not apply to the "
        "tool that was meant.",
        """
- name: file-writes             # L201: 'Wirte' is not a tool; did you mean 'Write'?
  tools: [Wirte, Edit]
  action: require_approval
""",
        "Use the name the finding suggests, or a wildcard (`mcp__github__*`).",
        title="Unknown tool name",
    ),
    LintRule(
        "L202",
        "approver-ignored",
        "warning",
        "A rule names `approver: ai` but does not ask (its action is allow or deny).",
        "Only a question can be answered by the AI approver: on a deny the field means nothing "
        "(a deny is never overridable), on an allow nobody is asked. Its author may believe "
        "calls are put to the AI that are in fact refused or let through.",
        """
- name: deploys                # L202: a deny is never put to the AI approver
  commands: ["make deploy"]
  action: deny
  approver: ai
""",
        "Make the rule ask (`action: require_approval`) if the AI should answer, or remove "
        "`approver`.",
        title="An approver on a rule that does not ask",
    ),
    LintRule(
        "L203",
        "whole-command-allow",
        "warning",
        "An allow rule whose `input` condition reads a command field (`input: {command: …}`): "
        "the command line as sent, whole, not each simple command of it.",
        "An `input` condition sees the call's field as one string, and a rule that matches it "
        "decides every command of the line. `^git status` also matches `git status; rm -rf ~`, "
        "and the rule allows the `rm` with it. `commands`, `argv` and `command_patterns` are "
        "matched against each simple command (and what wrappers and `bash -c` run) on its own.",
        """
- name: status                 # L203: allows `git status && curl … | sh` too
  tools: [Bash]
  input: {command: "^git status"}
  action: allow
""",
        'Say it per command: `commands: ["git status"]` (or `command_patterns` for a '
        "regex). Keep `input` for fields that are not a shell command.",
        title="An allow rule matches a whole command line",
    ),
    LintRule(
        "L301",
        "invalid-pattern",
        "error",
        "A pattern that loads but cannot mean what it says: a glob with an unclosed `[`, an "
        "empty alternative in an argv token (`a||b`), a regex with `^` or `\\A` after a "
        "character, or `\\Z` before one, where it can never match.",
        "The pattern is read literally or matches nothing, so the rule does not do what its "
        "author wrote.",
        """
- name: keys
  paths: {match: ["*.[pem"]}    # L301: unclosed [ is a literal [
  action: deny
""",
        "Close the class, remove the empty alternative, or move the anchor.",
        title="Pattern cannot mean what it says",
    ),
    LintRule(
        "L302",
        "example-failed",
        "error",
        "A rule's example (`examples.match` or `examples.not_match`) does not do what it "
        "says: the rule, evaluated for real, does not match a call it should, or matches one "
        "it should not.",
        "Examples are the rule's own tests. A failing example means the rule or its "
        "documentation is wrong. The runtime refuses to load such a policy; the lint lists "
        "every failure instead of stopping at the first.",
        """
- name: force-push
  commands: ["git push --force"]
  action: deny
  examples:
    match: ["git push -f"]      # L302: -f is not --force to this rule
""",
        "Fix the rule (add the missing spelling) or the example.",
        title="A rule's example does not do what it says",
    ),
    LintRule(
        "L303",
        "backtracking-pattern",
        "warning",
        "A `command_patterns` regex that only a backtracking engine can run (a backreference, "
        "a lookaround, `\\Z`, a POSIX class) in a rule that names no program: it runs with "
        "Python's `re` on the text of every command the rule can reach.",
        "Every other regex runs on RE2, whose time grows linearly with the text. A "
        "backtracking engine's time can grow with a power of it (`s(.).*\\1.*\\1` is cubic), "
        "so leashd runs such a pattern only for rules a unit still reaches and refuses a call "
        "whose text it would have to search past 8,192 characters. With no program named, that "
        "is every command: long commands of any program are refused because of this rule.",
        """
- name: doubled-words
  command_patterns: ["\\b(\\w+) \\1\\b"]   # L303: a backreference, on every command
  action: deny
""",
        "Name the programs the rule is about (`commands: [sed]`), so the pattern only runs on "
        "their units, or rewrite it without the construct (a lookahead can often be spelled "
        "out as the alternatives it allows).",
        title="Regex needs a backtracking engine and runs on every command",
    ),
    LintRule(
        "L401",
        "unanalyzable",
        "warning",
        "The analysis could not decide something and says so instead of guessing. A "
        "warning: a looser rule before a stricter one where no call matching both was found "
        "and no condition proves they are disjoint (order may loosen calls nobody has seen). "
        "Info: a condition it cannot turn into an automaton (a lookaround or backreference "
        "in a regex, or an automaton too large); nothing is claimed from that condition.",
        "Findings are proofs. Where there is no proof the lint neither claims an anomaly nor "
        "assumes there is none; it tells you which question is open.",
        """
- name: env-dumps
  command_patterns: ["env(?!\\\\s+-i)"]   # L401: a lookahead cannot be analysed
  action: deny
""",
        "Rewrite the condition without lookarounds (often as `argv` tokens or `flags`), or "
        "check the pair by hand and keep the finding ignored (`--ignore L401`).",
        title="The analysis could not decide a question",
    ),
)

BY_CODE = {r.code: r for r in CATALOG}
BY_KIND = {r.kind: r for r in CATALOG}


def lookup(code_or_kind: str) -> LintRule | None:
    key = code_or_kind.strip()
    return BY_CODE.get(key.upper()) or BY_KIND.get(key.lower())


def selected(code: str, select: list[str], ignore: list[str]) -> bool:
    """ruff-style selection: codes, code prefixes (`L1`) or names (`conflict`)."""

    def hit(items: list[str]) -> bool:
        kind = BY_CODE[code].kind
        return any(code.startswith(x.upper()) or x.lower() == kind for x in items)

    return (not select or hit(select)) and not hit(ignore)


def document() -> str:
    """docs/lint-rules.md."""
    head = (
        "# Lint rules\n\n"
        "Every finding of `leashd policy lint` has a stable code. `leashd policy rule CODE` "
        "prints its page; this file collects them (generated by `leashd policy rule --all`).\n\n"
        "The lint keeps what it found (`$LEASHD_CACHE_DIR`, else `~/.cache/leashd`): an "
        "unchanged policy is answered from its last result, and after an edit only the "
        "rules and pairs of rules the edit touched are analysed again. The findings are "
        "the same as without the cache; `--no-cache` analyses afresh. The example calls of "
        "findings are searched for in several processes at once, one per core (at most 8; "
        "`LEASHD_LINT_JOBS=1` keeps the lint in one process): the findings are the same.\n\n"
        "| code | name | severity |\n|---|---|---|\n"
        + "".join(f"| {r.code} | {r.kind} | {r.severity} |\n" for r in CATALOG)
    )
    pages = (r.page().replace("\n## ", "\n### ").replace("# ", "## ", 1) for r in CATALOG)
    return head + "\n" + "\n".join(pages)


def names_of(codes: tuple[str, ...]) -> list[str]:
    """Lint codes as their names (L103 -> conflict), for printing a rule's `lint_ignore`."""
    return [(rule.kind if (rule := lookup(c)) is not None else c) for c in codes]
