"""autoresearch-portable: the autoresearch loop on any hardware, with comparable results."""

__version__ = "0.1.0"

# Bumped whenever the harness changes what a number means (eval, FLOP counting, budget clock):
# calibration profiles and ledger lines carry it, and a profile from another version is not used.
HARNESS_VERSION = "1"
