"""The user's `/git` suite: git run by leashd itself, as the user's own action (audited
`by: user`), in the session's directory. Not the agent's: nothing here goes through the gate,
so each subcommand takes only the options listed for it."""
