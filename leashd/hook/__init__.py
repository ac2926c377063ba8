"""leashd in interactive Claude Code: a `PreToolUse` hook that sends a developer's own
`claude` sessions through the same policies and the same audit log as the daemon
(docs/hook.md).

- `settings.py`: adding the hook to Claude Code's settings and removing it again;
- `run.py`: the hook command itself (stdlib only until it must decide in-process);
- `server.py`: keeps the policies loaded between calls; `decide.py`: the decision and its record;
- `protocol.py`, `place.py`: the hook's input and answers, where the server listens;
- `cli.py`: the `leashd hook` commands.

Nothing is imported here: the hook command imports this package on every call.
"""
