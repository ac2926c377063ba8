"""`python -m leashd`: the same as the `leashd` console script."""

from leashd.cli import main

if __name__ == "__main__":
    main(prog_name="leashd")
