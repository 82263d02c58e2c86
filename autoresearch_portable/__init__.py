"""autoresearch-portable: the autoresearch loop on any hardware, with comparable results."""

__version__ = "0.1.0"

# Bumped whenever the harness changes what a number means (eval, FLOP counting, budget clock):
# calibration profiles and ledger lines carry it, and a profile from another version is not used.
# 2: the evaluator process scores fresh whole documents (version 1 scored the cached validation
# split, packed and cropped); on one trained model the two differ by ~0.03 bpb
# (benchmarks/eval_shift.py, numbers in benchmarks/README.md).
# 3: train.py runs with the evaluator's allocator settings (harness/run/launch.py: MALLOC_SETTINGS),
# which doubled the CPU baseline's throughput (benchmarks/README.md, "The allocator"): every
# wall-clock baseline measured before is slower than the same code runs now.
HARNESS_VERSION = "3"
