"""The harness side of train.py: what `rt = Runtime()` gives the agent's script.

`arp train` starts train.py in a child process with ARP_RUN_CONFIG pointing at a JSON file
(plan, dataset, budget, where to write its report and hand over the model). This code runs inside
train.py's process, so nothing it reports is trusted for the score: it runs the budget clock that
tells train.py when to stop, reports what training did, and at `rt.finish(model)` exports the
model (graph + weights) for the evaluator, a separate process the parent starts once this one has
ended. Run directly (`python train.py`), the runtime configures itself for this machine, the
bundled corpus and a 300 s budget, scores the exported model itself and prints the summary
(marked not verified; ARP_BUDGET and ARP_DATASET override budget and dataset; no ledger)."""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from autoresearch_portable import HARNESS_VERSION
from autoresearch_portable.data.common import DEFAULT_DATASET
from autoresearch_portable.detect.plan import device_name
from autoresearch_portable.fsutil import atomic_write_json
from autoresearch_portable.harness.run.budget import BudgetClock, eval_rows
from autoresearch_portable.harness.score.passes import MAX_BATCH_ROWS, rows_per_pass

# exit codes the parent reads when the child could not write a result itself
EXIT_DIVERGED = 3


def run_config(probe: dict, plan: dict, dataset: str, budget_seconds: float, **settings) -> dict[str, Any]:
    """What train.py's process is told (the ARP_RUN_CONFIG file), with every field's default:
    wall-clock budget, seed 0, no result file or hand-over folder (run directly), the eval size
    from the measured throughput (budget.eval_rows), the clock started now."""
    config = dict(
        probe=probe, plan=plan, dataset=dataset, budget_seconds=budget_seconds,
        budget_mode="wall", flop_budget=None, result_path=None, handover_dir=None, seed=0,
        probe_steps=None, eval_rows=None, peak=None, t0=time.time(),
    )
    unknown = sorted(set(settings) - set(config))
    if unknown:
        raise TypeError(f"unknown run settings {unknown}")
    config.update(settings)
    return config


def default_config(backend: str | None = None) -> dict[str, Any]:
    """train.py run directly: this machine; ARP_DATASET and ARP_BUDGET (seconds), else the
    workspace's (harness/run/settings.py: the .arp.json beside the script), else the defaults."""
    from autoresearch_portable.detect import make_plan, probe_this_boot
    from autoresearch_portable.harness.run.settings import DEFAULT_BUDGET_SECONDS, Workspace

    workspace = Workspace.load(Path(sys.argv[0]).resolve().parent)
    dataset = os.environ.get("ARP_DATASET") or workspace.dataset or DEFAULT_DATASET
    budget = float(os.environ.get("ARP_BUDGET") or workspace.budget_seconds or DEFAULT_BUDGET_SECONDS)
    pr = probe_this_boot()
    return run_config(pr.to_dict(), make_plan(pr, backend).to_dict(), dataset, budget)


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
        # the training split only: the scored rows are not reachable through rt
        self._data = data.load(c["dataset"])
        self.seq_len = self._data.seq_len
        self.vocab_size = self._data.vocab_size
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
        # the parent's progress channel (harness/run/abandon.py): a pipe, never stdout
        fd = os.environ.get("ARP_PROGRESS_FD", "")
        self._progress_fd = int(fd) if fd.isdigit() and not self.standalone else None
        if not self.standalone:
            _exit_with_parent()

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
        self._loader = self._data.train_batches(batch_size, seed=int(self.config.get("seed", 0)))

        def batches():
            for rows in self._loader:
                self._rows_fetched += rows.shape[0]
                yield self.backend.to_device(rows)

        return batches()

    def start(self, model, config: dict | None = None) -> None:
        """Count the model's training FLOPs per token, then start the clock."""
        self._model_config = dict(config or {})
        self.flops = self.backend.train_flops_per_token(model, self.seq_len, self.vocab_size)
        self.num_params = self.backend.count_params(model)
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
        self._event("start")  # the parent's clock: start-up ends, training begins (harness/run/phases.py)

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
        self._report_progress(loss)
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

    def _report_progress(self, loss: float) -> None:
        """One `progress loss` line to the parent, which decides early abandonment from them."""
        if self._progress_fd is None:
            return
        try:
            os.write(self._progress_fd, f"{self.clock.progress:.5f} {float(loss):.6g}\n".encode())
        except (OSError, TypeError, ValueError):
            self._progress_fd = None  # the parent stopped listening: train on

    def _event(self, name: str) -> None:
        """`event NAME` to the parent, which times the run's phases by when these arrive."""
        if self._progress_fd is not None:
            try:
                os.write(self._progress_fd, f"event {name}\n".encode())
            except OSError:
                self._progress_fd = None

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
        """Hand the trained model over and end the run: export it (graph + weights) for the
        evaluator and report what training did. val_bpb is computed outside this process."""
        self._event("finish")  # the parent's clock: training ends, hand-over begins
        self.backend.synchronize()
        result = self._train_metrics(model)
        t = time.perf_counter()
        folder = self.config.get("handover_dir") or tempfile.mkdtemp(prefix="arp-handover-")
        try:
            rows = rows_per_pass(self._model_config.get("device_batch_size"), self._eval_rows(),
                                 self.seq_len, self.vocab_size)  # the evaluator's pass, as it will size it
            result["handover"] = self.backend.export_model(model, folder, self.seq_len, rows)
            exported = self._check_export(model, folder)
            result["status"] = "handed_over"
        except Exception as e:  # noqa: BLE001 - any failure to export means: score here, unverified
            why = f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:300]}"
            print(f"harness: the model could not be exported ({why}); scoring it inside train.py's "
                  f"process, so the result is unverified (see README: exporting the model)", flush=True)
            result.update(status="unverified", reason=f"not exported: {why}")
        result["export_seconds"] = time.perf_counter() - t
        if self.probe_steps is not None:  # throughput probe for `arp init`: no eval
            result.update(status="ok", reason="throughput probe", forward_tokens_per_second=self._forward_rate(model))
        elif result["status"] == "unverified" or self.standalone:
            from autoresearch_portable.harness.score.evaluator import score_model

            scored_model = model if result["status"] == "unverified" else exported
            result.update(score_model(self.backend, scored_model, self._data, self._eval_rows(), self._batch_size))
            result.update(verified=False, num_params=self.num_params)
            if result.get("status") == "ok":  # a good score from inside this process is not verified
                result.update(status="unverified", reason=result.get("reason") or "run directly, not under arp train")
        result["total_seconds"] = time.time() - self.t0
        if not self.config.get("handover_dir"):  # standalone: our own temporary folder
            shutil.rmtree(folder, ignore_errors=True)
        return self._emit(result)

    def _check_export(self, model, folder: str):
        """The exported graph must compute what the trained model computes (a forward that
        depends on state outside the model's weights would not survive export). Returns the
        loaded graph."""
        rows = self._data.train_batches(2, seed=12345).__next__()[:, :-1]
        live = self.backend.forward_logits(model, rows)
        exported = self.backend.load_model(folder)
        diff = float(np.abs(live - self.backend.forward_logits(exported, rows)).max())
        if not diff <= 1e-3 * (1 + float(np.abs(live).max())):
            raise ValueError(f"the exported model's logits differ from the trained model's by {diff:.3g}")
        return exported

    def _forward_rate(self, model) -> float:
        """Tokens per second of a forward pass over a batch of rows the size the evaluator scores
        in (the device batch): what `arp init` sizes the evaluation by (budget.eval_rows). The
        second of two passes is timed: the first may still set up kernels."""
        batch = getattr(self, "_batch_size", None) or 1  # set by train_loader
        rows = next(self._data.train_batches(min(MAX_BATCH_ROWS, batch), seed=54321))[:, :-1]
        self.backend.forward_logits(model, rows)
        t = time.perf_counter()
        self.backend.forward_logits(model, rows)
        return rows.size / max(time.perf_counter() - t, 1e-9)

    def _eval_rows(self) -> int:
        n = self.config.get("eval_rows")
        if n:
            return int(n)
        return eval_rows(self.clock.budget_seconds, self.clock.tokens_per_second, self.seq_len)

    # --- internals ------------------------------------------------------------------------
    def _train_metrics(self, model) -> dict:
        # the peak comes from the parent (datasheet, or measured once per device in a process of
        # its own: harness/run/peak.py peak_for_run): confined, this process cannot write the cache
        peak, peak_source = self.config.get("peak") or (None, None)
        if peak is None and self.standalone:
            from autoresearch_portable.harness.run.peak import peak_flops

            peak, peak_source = peak_flops(self.backend, self.config["probe"], self.config["plan"],
                                           at_least=self.clock.flops_per_second)
        c = self.clock
        mfu = 100 * c.flops_per_second / peak if peak else None
        return dict(
            harness_version=HARNESS_VERSION,
            backend=self.plan.backend,
            device=device_name(self.config["probe"], self.plan.backend),
            dtype=self.plan.dtype,
            dataset=self._data.name,
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
            first_steps_tokens_per_second=c.first_tokens_per_second,
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
            dataset_floor_bpb=self._data.floor_bpb,
        )

    def _write_result(self, result: dict) -> None:
        path = self.config.get("result_path")
        if path:
            atomic_write_json(path, result)

    def _emit(self, result: dict) -> dict:
        self._write_result(result)
        if self.standalone:
            from autoresearch_portable.harness.run.summary import format_summary

            print(format_summary(result), flush=True)
        return result


def _exit_with_parent() -> None:
    """If `arp train` dies (kill -9), this process must not train on with nobody listening. Linux
    kills it through the parent-death signal the runner sets; elsewhere this thread notices that
    the parent is gone (the process is re-parented) and ends the process."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="arp-parent-watch", daemon=True).start()
