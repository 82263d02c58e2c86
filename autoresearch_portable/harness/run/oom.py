"""Recognising "out of memory" in the last lines a crashed train.py wrote.

A run that dies for lack of memory gets status "oom" (not "crash"), and the device-batch
autotune halves the batch and tries again only on that status. Each backend says it differently,
and on Apple Silicon some of them are hard aborts with no Python exception at all, so the
patterns below are the real messages, as users reported them:

* CUDA: "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 GiB ..."
* CPU: "DefaultCPUAllocator: can't allocate memory: you tried to allocate ... (Cannot allocate
  memory)", Python's MemoryError.
* MPS (torch): "MPS backend out of memory (MPS allocated: ..., max allowed: ...)";
  "Invalid buffer size: 8.21 GB" (one buffer above the device's maxBufferLength); and the
  Metal Performance Shaders assertion that aborts the process when a single array passes
  4 GiB, e.g. dense attention scores (B, H, T, T) in fp32 at seq 2048, 8 heads, batch 32:
  "failed assertion `[MPSNDArray initWithDevice:descriptor:isTextureBacked:] Error: total
  bytes of NDArray > 2**32'" (pytorch issue #143859), or its element-count twin "product of
  dimension sizes > 2**31" (#84039). A smaller batch fixes those too, so they count as OOM.
* MLX (Metal): "[metal::malloc] Attempting to allocate N bytes which is greater than the
  maximum allowed buffer size of M bytes."; older mlx "[malloc_or_wait] Unable to allocate N
  bytes." (mlx #63); and a command buffer the GPU gave up on: "[METAL] Command buffer execution
  failed: Insufficient Memory (00000008:kIOGPUCommandBufferCallbackErrorOutOfMemory)" (mlx #479;
  MPS prints the same kIOGPU... code).

Not OOM, and deliberately not matched: Metal's "Internal Error (0000000e:Internal Error)" and
MPS's "buffer is not large enough" (bugs, not memory), which a smaller batch does not fix."""

from __future__ import annotations

import re

OOM_PATTERN = re.compile(
    r"out of memory|OutOfMemoryError|MemoryError|Cannot allocate memory"
    r"|\[metal::malloc\]|maximum allowed buffer size|\[malloc(?:_or_wait)?\] Unable to allocate"
    r"|\[METAL\].*memory|Insufficient Memory|kIOGPUCommandBufferCallbackErrorOutOfMemory"
    r"|Invalid buffer size|total bytes of NDArray > 2\*\*32|product of dimension sizes > 2\*\*31",
    re.I,
)
