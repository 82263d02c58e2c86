"""How large a generated corpus's training split should be on this device, and preparing a
generated corpus when a command needs it and finds it missing (arp prepare, init, train,
calibrate, bench, a cluster worker).

bundled-v2's training split holds what the device's baseline consumes in the budget, with a
margin (sizing.train_tokens_needed). Before `arp init` has measured anything, the rate is the
device's peak FLOP/s (the datasheet figure of a known GPU, else the measured matmul peak,
cached: harness/run/peak.py), which no training run exceeds, run through the same choice of
baseline `arp init` makes (sizing.choose_baseline): an upper bound on the tokens it consumes,
so the split never runs short because of the estimate (only because of the cap)."""

from __future__ import annotations

from autoresearch_portable import data
from autoresearch_portable.data.common import DATASETS, GENERATED, resolve
from autoresearch_portable.detect import plan as plan_mod
from autoresearch_portable.harness.baseline import sizing


def baseline_tokens(peak_flops: float, budget_seconds: float, seq_len: int, vocab_size: int,
                    memory: float | None) -> int:
    """The tokens the baseline sized for `peak_flops` consumes in the budget."""
    return int(sizing.choose_baseline(peak_flops, budget_seconds, seq_len, vocab_size, memory)["expected_tokens"])


def device_train_tokens(probe: dict, plan: dict, budget_seconds: float, log=print) -> tuple[int, str]:
    """(training tokens for bundled-v2 on this device, why: one line)."""
    from autoresearch_portable.backends import load_backend
    from autoresearch_portable.detect.plan import Plan
    from autoresearch_portable.harness.run.peak import peak_flops

    spec = DATASETS["bundled-v2"]
    backend = None if plan.get("peak_flops") else load_backend(Plan.from_dict(plan))
    peak, source = peak_flops(backend, probe, plan, log=log)
    memory, _ = plan_mod.memory_cap(probe, plan)
    consumed = baseline_tokens(peak, budget_seconds, spec["seq_len"], spec["vocab_size"], memory)
    n = sizing.train_tokens_needed(consumed, spec["train_tokens"])
    why = (f"bundled-v2: {n / 1e6:.0f}M training tokens: at this device's peak {peak / 1e12:.3g} TFLOP/s ({source}) "
           f"the baseline would train on {consumed / 1e6:.1f}M tokens in {budget_seconds:g} s; x{sizing.TRAIN_TOKENS_MARGIN:g} "
           f"margin, rounded up to a power of two, at least {spec['train_tokens'] / 1e6:.1f}M, "
           f"at most {sizing.MAX_SIZED_TRAIN_TOKENS / 1e6:.0f}M")
    return n, why


def prepare_generated(dataset: str, probe: dict, plan: dict, budget_seconds: float, force: bool = False,
                      log=print, **overrides) -> dict:
    """`prepare` for a generated dataset, bundled-v2 sized to this device unless train_tokens is
    given (a split prepared earlier that is larger is kept)."""
    if resolve(dataset)[1] == "bundled-v2" and "train_tokens" not in overrides:
        need, why = device_train_tokens(probe, plan, budget_seconds, log=log)
        log(why)
        return data.prepare(dataset, force=force, log=log, min_train_tokens=need, **overrides)
    return data.prepare(dataset, force=force, log=log, **overrides)


def ensure_prepared(dataset: str, probe: dict, plan: dict, budget_seconds: float, log=print) -> bool:
    """Prepare a generated dataset that is missing or stale (offline); True if it was prepared
    here. Any other dataset raises its DataError (one line saying what to run)."""
    try:
        data.load(dataset)
        return False
    except data.DataError:
        if resolve(dataset)[1] not in GENERATED:
            raise
    log(f"{dataset} corpus not prepared yet: preparing it now (offline)")
    prepare_generated(dataset, probe, plan, budget_seconds, log=log)
    return True
