"""The harness side of train.py: what `rt = Runtime()` gives the agent's script.

`arp train` starts train.py in a child process with ARP_RUN_CONFIG pointing at a JSON file
(plan, dataset, budget, where to write the result). Run directly (`python train.py`), the
runtime configures itself for this machine, the bundled corpus and a 300 s budget, and prints the
summary itself (ARP_BUDGET and ARP_DATASET override the budget and dataset there; no ledger)."""

from __future__ import annotations

import json
import math
import os
import sys
import time
from typing import Any


from autoresearch_portable import HARNESS_VERSION
from autoresearch_portable.fsutil import atomic_write_json
from autoresearch_portable.harness.budget import BudgetClock, eval_rows
from autoresearch_portable.harness.evaluate import causality_probe, evaluate_bpb

# exit codes the parent reads when the child could not write a result itself
EXIT_DIVERGED = 3
EXIT_INVALID = 4


def default_config(backend: str | None = None) -> dict[str, Any]:
    from autoresearch_portable.detect import make_plan, probe

    pr = probe()
    plan = make_plan(pr, backend)
    return dict(
        probe=pr.to_dict(), plan=plan.to_dict(), dataset=os.environ.get("ARP_DATASET", "bundled"),
        budget_seconds=float(os.environ.get("ARP_BUDGET", 300)),
        budget_mode="wall", flop_budget=None, result_path=None, seed=0, probe_steps=None,
        eval_fraction=0.1, t0=time.time(),
    )


class Runtime:
    def __init__(self) -> None:
        from autoresearch_portable import data
        from autoresearch_portable.backends import load_backend
        from autoresearch_portable.detect.plan import Plan

        path = os.environ.get("ARP_RUN_CONFIG")
        self.standalone = not path
        self.config = default_config() if self.standalone else json.loads(open(path).read())
        c = self.config
        self.t0 = float(c.get("t0") or time.time())
        self.plan = Plan.from_dict(c["plan"])
        self.backend = load_backend(self.plan)
        self.dataset = data.load(c["dataset"])
        self.seq_len = self.dataset.seq_len
        self.vocab_size = self.dataset.vocab_size
        self.clock = BudgetClock(float(c["budget_seconds"]), c["budget_mode"], c.get("flop_budget"))
        self.probe_steps = c.get("probe_steps")
        self._loader = None
        self._model_config: dict = {}
        self.flops: dict = {}
        self._last_t: float | None = None
        self._last_tokens = 0
        self._rows_fetched = 0
        self._last_print = 0.0
        self._loss = float("nan")
        self.startup_seconds: float | None = None

    # --- what train.py calls --------------------------------------------------------------
    @property
    def progress(self) -> float:
        return self.clock.progress

    @property
    def done(self) -> bool:
        if self.probe_steps is not None:
            return self.clock.steps - self.clock.warmup_steps >= self.probe_steps and not self.clock.in_warmup
        return self.clock.done

    def train_loader(self, batch_size: int):
        """(inputs, targets) batches on the device, packed from the training split."""
        self._batch_size = batch_size
        self._loader = self.dataset.train_batches(batch_size, seed=int(self.config.get("seed", 0)))

        def batches():
            for rows in self._loader:
                self._rows_fetched += rows.shape[0]
                yield self.backend.to_device(rows)

        return batches()

    def start(self, model, config: dict | None = None) -> None:
        """Count the model's training FLOPs per token, then start the clock."""
        self._model_config = dict(config or {})
        if self.plan.backend == "mlx":
            from autoresearch_portable.backends.mlx import train_flops_per_token
        else:
            from autoresearch_portable.harness.flops import train_flops_per_token
        self.flops = train_flops_per_token(model, self.backend, self.seq_len, self.vocab_size)
        self.num_params = _count_params(model)
        self.backend.reset_peak_memory()
        self.backend.synchronize()
        self.startup_seconds = time.time() - self.t0
        print(
            f"harness: {self.plan.backend} ({self.plan.device}, {self.plan.dtype}), "
            f"{self.num_params / 1e6:.2f}M params, {self.flops['flops_per_token'] / 1e6:.1f} MFLOP/token, "
            f"budget {self.clock.budget_seconds:g}s {self.clock.mode}, start-up {self.startup_seconds:.1f}s",
            flush=True,
        )
        self._last_t = time.perf_counter()
        self._last_tokens = 0

    def step(self, loss: float) -> None:
        """Called once per optimizer step, after the step's loss is known (the device is synced)."""
        now = time.perf_counter()
        trained = self._trained_tokens()
        tokens = trained - self._last_tokens
        self._last_tokens = trained
        seconds = now - self._last_t
        self._last_t = now
        self.clock.step(seconds, tokens, tokens * self.flops["flops_per_token"])
        self._loss = loss
        if not math.isfinite(loss):
            self.fail(f"training loss is {loss}")
        if now - self._last_print >= max(1.0, self.clock.budget_seconds / 30) or self.done:
            self._last_print = now
            c = self.clock
            phase = "warm-up" if c.in_warmup else f"{100 * c.progress:5.1f}%"
            print(
                f"step {c.steps:05d} | loss {loss:.4f} | {phase} | {c.tokens_per_second:,.0f} tok/s "
                f"| epoch {getattr(self._loader, 'epoch', 0)} | elapsed {time.time() - self.t0:.0f}s",
                flush=True,
            )

    def _trained_tokens(self) -> int:
        """Input tokens the model has trained on: every row fetched except the latest batch,
        which train.py fetches ahead while the device still works on the one before."""
        if self._loader is None:
            return 0
        return max(0, self._rows_fetched - self._batch_size) * self.seq_len

    def fail(self, reason: str) -> None:
        """End the run now: the loss diverged (NaN, Inf or exploding)."""
        print(f"FAIL: {reason}", flush=True)
        self._write_result(dict(status="diverged", reason=reason))
        sys.exit(EXIT_DIVERGED)

    def finish(self, model) -> dict:
        """Causality probe, then val_bpb from the model's logits; write the result."""
        self.backend.synchronize()
        training_end = time.time()
        result = self._train_metrics(model)
        if self.probe_steps is not None:  # throughput probe for `arp init`: no eval
            result.update(status="ok", reason="throughput probe")
            return self._emit(result)
        val = self.dataset.val_rows(1)
        probe = causality_probe(self.backend, model, val[0, :-1], self.vocab_size)
        result["causality"] = probe
        if not probe["causal"]:
            result.update(status="invalid", reason=(
                f"model looks at later tokens: earlier logits moved by {probe['max_earlier_change']:.3g} "
                f"(tolerance {probe['tolerance']:.3g}) when later tokens changed"))
            self._emit(result)
            sys.exit(EXIT_INVALID)
        n_rows = eval_rows(self.clock.budget_seconds, self.clock.tokens_per_second, self.seq_len,
                           self.dataset.max_val_rows, float(self.config.get("eval_fraction", 0.1)))
        rows = self.dataset.val_rows(n_rows)
        ev = evaluate_bpb(self.backend, model, rows, self.dataset.token_bytes, max(1, self._batch_size))
        result.update(ev)
        result.update(status="ok", total_seconds=time.time() - self.t0, eval_wall_seconds=time.time() - training_end)
        return self._emit(result)

    # --- internals ------------------------------------------------------------------------
    def _train_metrics(self, model) -> dict:
        from autoresearch_portable.harness.peak import peak_flops

        c = self.clock
        peak, peak_source = peak_flops(self.backend, self.config["probe"], self.config["plan"],
                                       at_least=c.flops_per_second)
        mfu = 100 * c.flops_per_second / peak if peak else None
        return dict(
            harness_version=HARNESS_VERSION,
            backend=self.plan.backend,
            device=_device_name(self.config["probe"], self.plan),
            dtype=self.plan.dtype,
            dataset=self.dataset.name,
            budget_seconds=c.budget_seconds,
            budget_mode=c.mode,
            flop_budget=c.flop_budget,
            training_seconds=c.training_seconds,
            warmup_seconds=c.warmup_seconds,
            warmup_steps=c.warmup_steps,
            startup_seconds=self.startup_seconds,
            total_seconds=time.time() - self.t0,
            num_steps=c.steps,
            total_tokens=c.total_tokens,
            tokens_per_second=c.tokens_per_second,
            train_flops=c.total_flops,
            flops_per_token=self.flops.get("flops_per_token"),
            flops_detail=self.flops,
            mfu_percent=mfu,
            peak_flops=peak,
            peak_flops_source=peak_source,
            peak_memory_mb=self.backend.peak_memory_bytes() / 2**20,
            num_params=self.num_params,
            depth=self._model_config.get("depth"),
            model_config=self._model_config,
            final_train_loss=self._loss,
            epoch=getattr(self._loader, "epoch", None),
            floor_bpb=self.dataset.floor_bpb,
        )

    def _write_result(self, result: dict) -> None:
        path = self.config.get("result_path")
        if path:
            atomic_write_json(path, result)

    def _emit(self, result: dict) -> dict:
        self._write_result(result)
        if self.standalone:
            from autoresearch_portable.harness.summary import format_summary

            print(format_summary(result), flush=True)
        return result


def _count_params(model) -> int:
    if hasattr(model, "parameters") and callable(model.parameters):
        params = model.parameters()
        if isinstance(params, dict):  # mlx: nested dict of arrays
            from mlx.utils import tree_flatten

            return int(sum(v.size for _, v in tree_flatten(params)))
        return int(sum(p.numel() for p in params))
    return 0


def _device_name(probe: dict, plan) -> str:
    gpus = probe.get("gpus") or []
    if plan.backend == "cuda" and gpus:
        return gpus[0].get("name", "cuda")
    if plan.backend in ("mps", "mlx") and probe.get("os") == "Darwin":
        return probe.get("cpu_model") or "Apple Silicon"
    return probe.get("cpu_model") or "cpu"
