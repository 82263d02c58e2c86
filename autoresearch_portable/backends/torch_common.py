"""The torch backend, shared by cpu, cuda and mps; those subclasses only change device services.

Attention: full-causal layers use SDPA's fused causal kernel everywhere. Sliding-window layers
use flex_attention with a block-sparse mask where the plan says so (CUDA), otherwise SDPA with a
cached boolean mask (dense, but correct on every device)."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from autoresearch_portable.backends import torch_flops
from autoresearch_portable.backends.base import Backend, peak_rss_bytes
from autoresearch_portable.detect.plan import Plan

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


def window_mask(seq_len: int, window: int | None, device: Any = "cpu") -> torch.Tensor:
    """Boolean (T, T) mask, True where query i may attend key j: 0 <= i - j <= window."""
    i = torch.arange(seq_len, device=device)[:, None]
    j = torch.arange(seq_len, device=device)[None, :]
    d = i - j
    allowed = d >= 0
    if window is not None:
        allowed &= d <= window
    return allowed


class TorchBackend(Backend):
    def __init__(self, plan: Plan):
        self.plan = plan
        self.name = plan.backend
        self.device = torch.device(plan.device)
        self.dtype = DTYPES[plan.dtype]
        self._masks: dict[tuple[int, int], torch.Tensor] = {}
        self._block_masks: dict[tuple[int, int], Any] = {}
        self._flex: Callable | None = None
        self._rotary: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}
        self.exporting = False
        self._counting = False  # FLOP counting sees scaled_dot_product_attention calls only

    # --- kernels ---------------------------------------------------------------------------
    def attention(self, q, k, v, window):
        T = q.size(-2)
        if window is None or window >= T - 1:
            return F.scaled_dot_product_attention(q, k, v, is_causal=True)
        if self.plan.attention == "flex" and not (self.exporting or self._counting):
            return self._flex_attention(q, k, v, window)
        key = (T, window)
        mask = self._masks.get(key)
        if mask is None:
            mask = self._masks[key] = window_mask(T, window, self.device)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)

    def _flex_attention(self, q, k, v, window):
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention

        T = q.size(-2)
        key = (T, window)
        block_mask = self._block_masks.get(key)
        if block_mask is None:
            def sliding_causal(b, h, qi, ki):
                return (qi >= ki) & (qi - ki <= window)

            block_mask = create_block_mask(sliding_causal, None, None, T, T, device=self.device)
            self._block_masks[key] = block_mask
        if self._flex is None:
            # flex_attention is only fast compiled; eager it materialises the scores.
            self._flex = torch.compile(flex_attention, dynamic=False) if self.plan.compile else flex_attention
        return self._flex(q, k, v, block_mask=block_mask)

    def rms_norm(self, x):
        return F.rms_norm(x, (x.size(-1),))

    def rotary(self, x, base: float):
        T, D = x.size(-2), x.size(-1)
        key = (T, D, float(base), x.dtype, x.device)
        if key not in self._rotary:
            inv_freq = 1.0 / (base ** (torch.arange(0, D, 2, dtype=torch.float32, device=x.device) / D))
            angles = torch.outer(torch.arange(T, dtype=torch.float32, device=x.device), inv_freq)
            self._rotary[key] = (angles.cos().to(x.dtype), angles.sin().to(x.dtype))
        cos, sin = self._rotary[key]
        x1, x2 = x[..., : D // 2], x[..., D // 2 :]
        return torch.cat([x1 * cos + x2 * sin, x2 * cos - x1 * sin], dim=-1)

    def autocast(self):
        if self.plan.dtype_mode == "autocast":
            return torch.autocast(device_type=self.device.type, dtype=self.dtype)
        return contextlib.nullcontext()

    def compile(self, fn):
        return torch.compile(fn, dynamic=False) if self.plan.compile else fn

    def grad_scaler(self):
        """Enabled when the plan computes in float16 (no bf16 on this GPU), else a pass-through."""
        return torch.amp.GradScaler(self.device.type, enabled=bool(self.plan.grad_scaler))

    # --- device services -------------------------------------------------------------------
    def synchronize(self):
        pass

    def reset_peak_memory(self):
        pass

    def peak_memory_bytes(self) -> int:
        return peak_rss_bytes()

    def to_device(self, rows: np.ndarray):
        t = torch.from_numpy(np.ascontiguousarray(rows)).to(torch.long)
        if self.plan.pin_memory:
            t = t.pin_memory()
        t = t.to(self.device, non_blocking=self.plan.pin_memory)
        return t[:, :-1], t[:, 1:]

    # --- harness services ------------------------------------------------------------------
    @torch.no_grad()
    def forward_logits(self, model, inputs: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(inputs)).to(torch.long).to(self.device)
        with self.autocast():
            logits = model(x)
        return logits.float().cpu().numpy()

    @torch.no_grad()
    def score_rows(self, model, rows, token_bytes, max_logit_bytes, perturbed=None, cuts=None):
        # token byte lengths as int32: MPS's int64 kernels are incomplete (a row's bytes fit easily)
        tb = torch.as_tensor(np.asarray(token_bytes), dtype=torch.int32, device=self.device)
        B, T1 = rows.shape
        T, vocab = T1 - 1, int(tb.numel())
        nats = np.zeros(B, dtype=np.float64)
        nbytes = np.zeros(B, dtype=np.int64)
        change = None if perturbed is None else np.zeros(B, dtype=np.float64)
        buffers = 1 if perturbed is None else 2  # a chunk's logits are kept while its copies' are made
        # rows per chunk so the float32 logits alive at once stay under the bound
        per_chunk = max(1, int(max_logit_bytes // (buffers * T * vocab * 4)))
        for s in range(0, B, per_chunk):
            x, y = self.to_device(rows[s : s + per_chunk])
            n = x.size(0)
            own = self._logits(model, x.clone(), T, vocab)  # a graph that wrote to its input cannot reach y
            loss = F.cross_entropy(own.reshape(-1, vocab), y.reshape(-1), reduction="none").view_as(y)
            yb = tb[y]
            loss = torch.where(yb > 0, loss, torch.zeros_like(loss))
            # summed on the device in float32 (MPS has no float64), widened on the host
            nats[s : s + n] = loss.sum(1).cpu().numpy()
            nbytes[s : s + n] = yb.sum(1, dtype=torch.int32).cpu().numpy()
            if perturbed is not None:
                xp = torch.from_numpy(np.ascontiguousarray(perturbed[s : s + n])).to(torch.long).to(self.device)
                copy = self._logits(model, xp, T, vocab)  # a pass of its own: the row is not in it
                cut = torch.as_tensor(np.asarray(cuts[s : s + n]), device=self.device)
                before = torch.arange(T, device=self.device)[None, :] < cut[:, None]  # (n, T)
                moved = (own - copy).abs().amax(-1)
                size = own.abs().amax(-1)
                zero = torch.zeros_like(moved)
                ratio = torch.where(before, moved, zero).amax(-1) / (1 + torch.where(before, size, zero).amax(-1))
                change[s : s + n] = ratio.cpu().numpy()
                del copy
            del own, loss
        return nats, nbytes, change

    def _logits(self, model, x, T: int, vocab: int):
        with self.autocast():
            logits = model(x)
        if tuple(logits.shape) != (x.size(0), T, vocab):
            raise ValueError(f"the model returned logits of shape {tuple(logits.shape)}, expected {(x.size(0), T, vocab)}")
        return logits.float()

    # --- hand-over -------------------------------------------------------------------------
    def export_model(self, model, folder, seq_len, rows):
        folder = Path(folder)
        # Tracing must not leave fake tensors in the kernel caches the live model still uses,
        # and flex_attention (a compiled kernel) is swapped for SDPA with a mask, the same
        # function, so the graph runs on any device without a compiler. The batch is fixed: the
        # evaluator's passes all hold `rows` rows, and a dynamic batch makes export reason about
        # symbolic shapes, which costs seconds on every run.
        masks, block_masks = dict(self._masks), dict(self._block_masks)
        self.exporting = True
        if hasattr(model, "eval"):
            model.eval()
        x = torch.zeros((rows, seq_len), dtype=torch.long, device=self.device)
        try:
            with torch.no_grad():
                program = torch.export.export(_WithAutocast(model, self), (x,))
            torch.export.save(program, str(folder / "model.pt2"))
        finally:
            self.exporting = False
            self._masks, self._block_masks = masks, block_masks
        info = dict(format="torch.export", batch=rows)
        (folder / "model.json").write_text(json.dumps(info))
        return info

    @staticmethod
    def warm_up() -> None:
        # torch.export.load's first call imports its serializer and dynamo: a few seconds on a
        # 2-core CPU. A round trip of a tiny CPU graph pays that while the run trains instead of
        # after it.
        import io

        tiny, x = torch.nn.Embedding(4, 2), torch.zeros((2, 3), dtype=torch.long)
        buffer = io.BytesIO()
        torch.export.save(torch.export.export(tiny, (x,)), buffer)
        buffer.seek(0)
        torch.export.load(buffer).module()(x)

    def load_model(self, folder):
        info = json.loads((Path(folder) / "model.json").read_text())
        program = torch.export.load(str(Path(folder) / "model.pt2"))
        return _Exported(program, int(info["batch"]))

    def graph_params(self, model) -> int:
        # a tied weight is one tensor listed under two names (its storage is shared once loaded)
        seen = {}
        for _, p in model.module.named_parameters(remove_duplicate=False):
            seen[(p.untyped_storage().data_ptr(), p.storage_offset(), tuple(p.shape))] = p.numel()
        return int(sum(seen.values()))

    def graph_matmul_flops_per_token(self, model, seq_len: int, vocab_size: int) -> float | None:
        return torch_flops.forward_matmul_flops_per_token(model, self.device, seq_len, vocab_size, model.static_batch or 1)

    def graph_writes(self, model) -> list[str]:
        program = model.program
        if not any(isinstance(n.target, torch._ops.OpOverload) and n.target._schema.is_mutable
                   for n in program.graph.nodes):
            return []  # no operator that writes anywhere: nothing to look into (the common case)
        # An in-place operator may only write to a temporary; functionalizing the graph (what
        # run_decompositions does, a few seconds) lifts every write that outlives the call into
        # an output of its own: a buffer, a parameter or an input mutation, or an effect token.
        specs = program.run_decompositions({}).graph_signature.output_specs
        user = torch.export.graph_signature.OutputKind.USER_OUTPUT
        return [f"{spec.kind.name.lower()} {spec.target or spec.arg}" for spec in specs if spec.kind != user]

    def train_flops_per_token(self, model, seq_len: int, vocab_size: int) -> dict:
        self._counting = True
        try:
            return torch_flops.train_flops_per_token(model, self.device, seq_len, vocab_size)
        finally:
            self._counting = False

    def count_params(self, model) -> int:
        return int(sum(p.numel() for p in model.parameters()))

    def matmul_flops(self, n: int, dtype: str) -> float:
        dt = DTYPES[dtype]
        a = torch.randn(n, n, device=self.device, dtype=dt)
        b = torch.randn(n, n, device=self.device, dtype=dt)
        for _ in range(2):  # warm-up: thread pools, kernel selection
            a @ b
        self.synchronize()
        reps, elapsed = 0, 0.0
        t0 = time.perf_counter()
        while elapsed < 0.15 or reps < 3:
            a @ b
            reps += 1
            self.synchronize()
            elapsed = time.perf_counter() - t0
        return 2 * n**3 * reps / elapsed


class _WithAutocast(torch.nn.Module):
    """The model's forward with the backend's autocast inside, so the exported graph carries the
    compute dtype (autocast around torch.export is not recorded)."""

    def __init__(self, model, backend):
        super().__init__()
        self.model = model
        self.backend = backend

    def forward(self, idx):
        with self.backend.autocast():
            return self.model(idx)


class _Exported:
    """An exported model as a callable: the graph runs a fixed batch, so its input is split and
    padded to it (the evaluator passes whole multiples of it: see Backend.load_model)."""

    def __init__(self, program, static_batch: int):
        self.program = program
        self.module = program.module()
        self.static_batch = static_batch

    def __call__(self, x):
        outs = []
        for s in range(0, x.size(0), self.static_batch):
            part = x[s : s + self.static_batch]
            pad = self.static_batch - part.size(0)
            if pad:
                part = torch.cat([part, part[:1].expand(pad, -1)])
            outs.append(self.module(part)[: self.static_batch - pad])
        return torch.cat(outs)

    def parameters(self):
        return self.module.parameters()
