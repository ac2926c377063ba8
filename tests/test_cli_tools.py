"""The tools the bundled Claude Code CLI announces are tools leashd knows: the lint does not
call them unknown (L201), and a tool no built-in policy names is asked about, never allowed
(closed world). The CLI is run for real, against an API address where nothing listens: it
announces its tools before it asks the model anything."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from leashd.claude import bundled_cli
from leashd.policy import load_policies
from leashd.policy.compiler import compile_policy
from leashd.policy.evaluator import Evaluator
from leashd.policy.examples import EXAMPLE_CONTEXT
from leashd.policy.facts import BUILTIN_TOOLS

CLI = bundled_cli()
pytestmark = pytest.mark.skipif(CLI is None, reason="claude-agent-sdk bundles no CLI here")


@pytest.fixture(scope="module")
def announced(tmp_path_factory) -> list[str]:
    home = tmp_path_factory.mktemp("home")
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "ANTHROPIC_API_KEY": "test",
        "ANTHROPIC_BASE_URL": "http://127.0.0.1:9",  # the discard port: nothing answers
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",  # no other network
        "CLAUDE_CODE_MAX_RETRIES": "0",
    }
    run = subprocess.Popen(
        [CLI, "-p", "--output-format", "stream-json", "--verbose", "hi"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=home,
    )
    try:
        assert run.stdout is not None
        for line in run.stdout:
            event = json.loads(line)
            if event.get("type") == "system" and event.get("subtype") == "init":
                return list(event["tools"])
        pytest.fail("the CLI announced no tools")
    finally:
        run.kill()
        run.wait()


def test_every_tool_the_cli_announces_is_one_leashd_knows(announced):
    assert "Bash" in announced and "Write" in announced  # the list is the real one
    assert sorted(set(announced) - BUILTIN_TOOLS) == []


@pytest.mark.parametrize("specs", [["default", "dev-tools"], ["strict"], ["autonomous"]])
def test_a_tool_no_built_in_policy_names_is_asked_about(announced, specs):
    policy = load_policies(specs)
    named = {t for r in policy.rules for t in r.tools or ()}
    evaluator = Evaluator(compile_policy(policy), EXAMPLE_CONTEXT)
    unnamed = [t for t in announced if t not in named]
    assert unnamed  # (the CLI has tools the policies leave to the default)
    for tool in unnamed:
        decision = evaluator.evaluate(tool, {"prompt": "anything"})
        assert decision.action in ("require_approval", "deny"), (tool, decision.reason)
