"""Example calls from the overlap of two rules, checked by the compiled evaluator.

A finding's example must be real: a call that, evaluated for real (shell parse, facts,
compiled matchers), gives a unit both rules match. Candidates come from the rules' own
`examples.match` and from strings drawn from the intersection of their languages (argv
words, flags, a path both path conditions accept, a host, input fields); the first candidate
the evaluator confirms is the example.

Calls are evaluated in a fixed world (HOME /home/dev, project /home/dev/project), the one
the built-in suites and corpora use; nothing there needs to exist on this machine.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from typing import Any, NamedTuple

from leashd.policy.analysis.regions import Region, Regions
from leashd.policy.compiler import CompiledPolicy
from leashd.policy.evaluator import Evaluator
from leashd.policy.facts import Context, extract
from leashd.policy.patterns import DYN, SEP

HOME = "/home/dev"
PROJECT = "/home/dev/project"
# Path spellings for each `where`, as regexes over glob subjects (absolute or ~/...).
WHERE_SHAPES = {
    "inside": [r"^/home/dev/project/[^\x00\n/]", r"^~/project/[^\x00\n/]"],
    "outside": [r"^~/[^p\x00\n]", r"^/srv/[^\x00\n]", r"^/etc/[^\x00\n]", r"^/home/[^d\x00\n]"],
    "temp": [r"^/tmp/[^\x00\n]"],
    "system": [r"^/usr/[^\x00\n]"],
    "unknown": [],
}
_PATH_CHARS = r"^[^\x00\x01\n\"'$`\\]*\Z"
# Extra regexes the witness search needs in the shared partitions.
EXTRA = {
    "globs": [(r, False) for shapes in WHERE_SHAPES.values() for r in shapes]
    + [(_PATH_CHARS, False)],
}
_TOOL_PATH_FIELDS = {
    "Read": "file_path",
    "Write": "file_path",
    "Edit": "file_path",
    "MultiEdit": "file_path",
    "NotebookEdit": "notebook_path",
    "NotebookRead": "notebook_path",
    "LS": "path",
}


_MORE = 6


class Witness(NamedTuple):
    call: dict[str, Any]
    decider: int  # the rule that decides the unit both rules match
    whole: bool  # the whole call gets the decider's action


class Witnesses:
    def __init__(self, compiled: CompiledPolicy, regions: Regions):
        self.compiled = compiled
        self.regions = regions
        self.ctx = Context.create(cwd=PROJECT, home=HOME, approved_dirs=[PROJECT])
        self.evaluator = Evaluator(compiled, self.ctx)

    def deciders(self, call: dict[str, Any], a: int, b: int) -> list[int]:
        """For each unit of `call` both rules match, the rule that decides it (the first
        that matches, which is `a` or an earlier one); empty when no unit is matched by both."""
        try:
            facts = extract(call["tool"], call["input"], self.ctx)
        except Exception:
            return []
        if facts.error is not None:
            return []
        out = []
        for u in facts.units:
            if self.compiled.matches(a, u, self.ctx) and self.compiled.matches(b, u, self.ctx):
                # the first rule of all that matches: `a`, `b` or an earlier one
                decider = self.compiled.first_match(u, self.ctx)
                assert decider is not None and decider <= min(a, b)
                out.append(decider)
        return out

    def common(
        self, ra: Region, rb: Region, rel, texts: Iterable[str] | None = None
    ) -> Witness | None:
        """A call both rules match, and the rule that decides it; one decided by the earlier
        of the two where there is one, and then one whose decision is that rule's (no other
        unit of the call is decided more strictly, so the finding's "`X` gets allow" holds
        for the whole call: `whole`). None if no such call was found. `texts`: try only
        these commands (relations.TextAnswer.examples)."""
        first = min(ra.index, rb.index)
        fallback = None
        more = _MORE  # candidates tried for a whole call once one the earlier rule decides
        for call in self._candidates(ra, rb, rel, texts):
            deciders = self.deciders(call, ra.index, rb.index)
            if first in deciders:
                if self._decided_by(call, first):
                    return Witness(call, first, True)
                if fallback is None or fallback.decider != first:
                    fallback = Witness(call, first, False)
            elif deciders and fallback is None:
                fallback = Witness(call, min(deciders), False)
            if fallback is not None and fallback.decider == first:
                more -= 1
                if more < 0:
                    break
        return fallback

    def _decided_by(self, call: dict[str, Any], index: int) -> bool:
        """Does the whole call get rule `index`'s action (the strictest of its units')?"""
        if self.compiled.rules[index].action == "deny":
            return True  # nothing is stricter
        try:
            decision = self.evaluator.evaluate(call["tool"], call["input"])
        except Exception:
            return False
        return decision.action == self.compiled.rules[index].action

    # --- candidates -----------------------------------------------------------------------

    def _candidates(self, ra: Region, rb: Region, rel, texts: Iterable[str] | None = None):
        if texts is not None:
            flags = self._one("flags", ra, rb, rel)
            extra = [w for w in (flags or "").split(SEP) if w]
            for text in texts:
                yield {"tool": "Bash", "input": {"command": text}}
                if extra:  # a flag condition the text question left out
                    yield {"tool": "Bash", "input": {"command": " ".join([text, *extra])}}
            return
        for r in (ra, rb):
            for ex in r.rule.examples_match:
                yield {"tool": ex.tool, "input": dict(ex.input)}
        tool = rel.common("tools", ra.tools, rb.tools)
        if tool is None:
            return
        inputs = self._input_fields(ra, rb, rel)
        paths = self._paths(ra, rb, rel)
        host = self._one("hosts", ra, rb, rel)
        if tool == "Bash":
            yield from self._commands(ra, rb, rel, paths, host, inputs)
            return
        if tool in _TOOL_PATH_FIELDS:
            for p in paths or ["/home/dev/project/a"]:
                yield {"tool": tool, "input": {_TOOL_PATH_FIELDS[tool]: p, **inputs}}
        elif tool in ("Glob", "Grep"):
            for p in paths or ["/home/dev/project"]:
                yield {"tool": tool, "input": {"pattern": "a", "path": p, **inputs}}
        elif tool == "WebFetch":
            yield {"tool": tool, "input": {"url": f"https://{host or 'example.com'}/", **inputs}}
        elif tool == "SandboxNetworkAccess":
            yield {"tool": tool, "input": {"host": host or "example.com", **inputs}}
        else:
            base = dict(inputs)
            if host:
                base.setdefault("url", f"https://{host}/")
            for p in paths:
                yield {"tool": tool, "input": {"path": p, **base}}
            yield {"tool": tool, "input": base}

    def _one(self, kind: str, ra: Region, rb: Region, rel) -> str | None:
        la, lb = ra.langs.get(kind), rb.langs.get(kind)
        if la is None and lb is None:
            return None
        return rel.common(kind, la or (), lb or ())

    def _input_fields(self, ra: Region, rb: Region, rel) -> dict[str, str]:
        out = {}
        for key in sorted({*ra.input, *rb.input}):  # sorted: the same example every run
            got = rel.common("input", ra.input.get(key, ()), rb.input.get(key, ()))
            if got is not None:
                out[key] = got
        return out

    def _paths(self, ra: Region, rb: Region, rel) -> list[str]:
        conds = [p for p in (ra.paths, rb.paths) if p is not None]
        if not conds:
            return []
        wheres = set.intersection(*(set(p.where) for p in conds))
        out = []
        chars = self.regions.kinds["globs"].dfa((_PATH_CHARS, False))
        for where in sorted(wheres):
            for shape in WHERE_SHAPES[where]:
                lang = [(chars,), (self.regions.kinds["globs"].dfa((shape, False)),)]
                for p in conds:
                    lang.extend(p.globs or ())
                got = rel.common("globs", tuple(lang[:1]), tuple(lang[1:]))
                if got:  # "" is "too large to decide", not a path
                    out.append(got)
        return out[:4]

    def _commands(self, ra, rb, rel, paths, host, inputs):
        words: list[str] | None = None
        if ra.argv is not None or rb.argv is not None:
            if ra.argv is not None and rb.argv is not None:
                words = rel.argv_example(ra, rb)
            else:
                one = ra.argv or rb.argv
                words = rel.argv_meet(one, one)
            words = [w.replace(DYN, "x") for w in words or ()]
        flags_text = self._one("flags", ra, rb, rel)
        if flags_text is not None:
            words = words or ["cat"]
            words += [w for w in flags_text.split(SEP) if w and w not in words[1:]]
        if words is None:
            words = ["cat"]
        base = " ".join(shlex.quote(w) for w in words)
        prefixes = [""]
        name = self._one("env", ra, rb, rel)
        if name:
            prefixes.append(f"{name}=x ")
        feeder = self._one("fed_by", ra, rb, rel)
        if feeder:
            prefixes.append(f"{shlex.quote(feeder)} https://example.com/x | ")
        if not words:  # `$`: a unit of assignments only
            base, prefixes = ("", [f"{name}=x"]) if name else ("X=1", [""])
        if True in (ra.wrapper, rb.wrapper) and words:
            # a wrapper unit: the words as the command a wrapper runs
            prefixes += [p + "timeout 5 " for p in prefixes]
        tails = [""]
        access = {p.cond.access for p in (ra.paths, rb.paths) if p is not None}
        for p in paths:
            if "write" in access:
                tails.append(" > " + shlex.quote(p))
                tails.append(" | tee " + shlex.quote(p))
            else:
                tails.append(" " + shlex.quote(p))
                tails.append(" < " + shlex.quote(p))
        urls = [f" https://{host}/"] if host else []
        if host is None:
            # hosts no one host satisfies both: a unit has several (one each)
            each = [
                rel.common("hosts", lang, ()) for r in (ra, rb) if (lang := r.langs.get("hosts"))
            ]
            if len(each) == 2 and all(each):
                urls.append("".join(f" https://{h}/" for h in each))
        path_tails = tails[1:]
        tails.extend(urls)
        tails.extend(p + url for p in path_tails for url in urls)  # a path and a host
        for prefix in prefixes:
            for tail in tails:
                command = (prefix + base).strip() + tail
                yield {"tool": "Bash", "input": {"command": command, **inputs}}
        text = self._one("command", ra, rb, rel)
        if text:
            yield {"tool": "Bash", "input": {"command": text, **inputs}}
            # the text a command regex wants, as an argument of the words argv wants
            yield {"tool": "Bash", "input": {"command": base + " " + text, **inputs}}
            yield {"tool": "Bash", "input": {"command": base + " " + shlex.quote(text), **inputs}}
            for tail in tails[1:]:
                yield {"tool": "Bash", "input": {"command": text + tail, **inputs}}
