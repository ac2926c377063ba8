"""The `leashd` command line. Thin: parsing arguments and printing; the library does the work.

Each command lives in the module of its concern and is imported only when it runs or shows
its help (lazy.py): `leashd --help` imports none of them, and `leashd policy …` never imports
the daemon, Telegram or the agent SDK (tests/test_cli_start.py holds it to that).
"""

from __future__ import annotations

import click

from leashd import __version__
from leashd.cli.lazy import CONTEXT, LazyGroup, examples

_DAEMON = "leashd.daemon.commands"

# name -> (where the command is, its short help in `leashd --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "policy": (
        "leashd.cli.policy:policy",
        "Policies: lint, rule, explain, eval, test, diff, compile, fmt, convert, schema.",
    ),
    "demo": ("leashd.cli.demo:demo", "Test the built-in policies, then explain a command."),
    "audit": ("leashd.cli.audit:audit", "Read, verify and repair the audit log."),
    "init": (f"{_DAEMON}:init_cmd", "Write ~/.leashd/config.yaml, asking what flags omit."),
    "config": (f"{_DAEMON}:config_cmd", "Every setting as resolved, and where it came from."),
    "doctor": (f"{_DAEMON}:doctor_cmd", "Check everything a run needs, one line each."),
    "run": (f"{_DAEMON}:run_cmd", "Run one turn of the agent and print its answer."),
    "start": (f"{_DAEMON}:start_cmd", "Start the daemon (Telegram, or -f: this terminal)."),
    "stop": (f"{_DAEMON}:stop_cmd", "Stop the daemon gracefully."),
    "restart": (f"{_DAEMON}:restart_cmd", "Stop the daemon and start it again."),
    "status": (f"{_DAEMON}:status_cmd", "Whether the daemon runs; whether the sandbox is on."),
    "add-dir": (f"{_DAEMON}:add_dir_cmd", "Approve a directory for the agent to work in."),
    "remove-dir": (f"{_DAEMON}:remove_dir_cmd", "Withdraw a directory's approval."),
    "dirs": (f"{_DAEMON}:dirs_cmd", "The approved directories, from every configuration."),
    "service": (f"{_DAEMON}:service_group", "Run the daemon as a systemd user service."),
    "ws": (
        "leashd.daemon.workspace_commands:ws_group",
        "Workspaces: named groups of directories.",
    ),
    "hook": ("leashd.hook.cli:hook", "leashd's policies in your own Claude Code sessions."),
    "task": (
        "leashd.daemon.task_commands:task_cmd",
        "Run a task unattended: spec, plan, implement, test, pull request.",
    ),
    "tasks": (
        "leashd.daemon.task_commands:tasks_group",
        "The tasks: status, phase, time, cost; `show ID` for one.",
    ),
}


# The commands that run the agent, checked for it before they start (leashd-policy lacks it).
NEEDS_AGENT = dict.fromkeys(
    ("run", "task", "start", "restart", "doctor", "service"), "claude_agent_sdk"
)


@click.group(
    cls=LazyGroup,
    lazy=COMMANDS,
    requires=NEEDS_AGENT,
    context_settings=CONTEXT,
    epilog=examples(
        "leashd policy explain -- 'git push --force'",
        "leashd init && leashd start",
        "leashd COMMAND -h",
    ),
)
@click.version_option(version=__version__, prog_name="leashd")
def main() -> None:
    """leashd: a safety gate between an AI coding agent and your machine."""
