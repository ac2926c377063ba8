"""leashd: a safety gate between an AI coding agent and the machine it works on."""

# The one place the version is written: both distributions built from this tree (leashd, and
# leashd-policy in packaging/) read it, so they cannot disagree.
__version__ = "0.7.0.dev0"
