"""`python -m leashd.hook ...`: the `leashd hook` commands."""

from leashd.hook.cli import hook

if __name__ == "__main__":
    hook(prog_name="leashd hook")
