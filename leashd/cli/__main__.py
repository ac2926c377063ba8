"""`python -m leashd.cli`: the same as the `leashd` console script (the daemon starts
itself in the background this way)."""

from leashd.cli import main

if __name__ == "__main__":
    main(prog_name="leashd")
