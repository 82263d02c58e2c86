"""Out-of-memory recognition (harness/run/oom.py) against the real messages of each backend, as users
reported them in the torch, mlx and llama.cpp issue trackers (none can be produced here), and the
autotune halving on an MPS hard abort through a real child process."""

from __future__ import annotations

import pytest

from autoresearch_portable.harness.run.autotune import largest_fitting_batch
from autoresearch_portable.harness.run.oom import OOM_PATTERN
from autoresearch_portable.harness.run.launch import run_training

MPS_NDARRAY_ABORT = (
    "/AppleInternal/Library/BuildRoots/b11baf73-9ee0-11ef-b7b4-7aebe1f78c73/Library/Caches/com.apple.xbs/"
    "Sources/MetalPerformanceShaders/MPSCore/Types/MPSNDArray.mm:850: failed assertion "
    "`[MPSNDArray initWithDevice:descriptor:isTextureBacked:] Error: total bytes of NDArray > 2**32'"
)

OOM = {
    # torch on MPS: hard aborts of Metal Performance Shaders (pytorch #143859, #84039)
    "mps ndarray > 4 GiB": MPS_NDARRAY_ABORT,
    "mps dimension sizes": (
        "/AppleInternal/Library/BuildRoots/20d6c351-ee94-11ec-bcaf-7247572f23b4/Library/Caches/com.apple.xbs/"
        "Sources/MetalPerformanceShaders/MPSCore/Types/MPSNDArray.mm:705: failed assertion "
        "'[MPSNDArray initWithDevice:descriptor:] Error: product of dimension sizes > 2**31 '"
    ),
    # torch on MPS: the allocator's own errors
    "mps allocator": (
        "RuntimeError: MPS backend out of memory (MPS allocated: 17.56 GB, other allocations: 1.07 MB, "
        "max allowed: 18.13 GB). Tried to allocate 256.00 MB on private pool. Use "
        "PYTORCH_MPS_HIGH_WATERMARK_RATIO=0.0 to disable upper limit for memory allocations (may cause system failure)."
    ),
    "mps buffer size": "RuntimeError: Invalid buffer size: 8.21 GB",
    "mps command buffer": "\tInsufficient Memory (00000008:kIOGPUCommandBufferCallbackErrorOutOfMemory)",
    # mlx on Metal (mlx #479, #63, lmstudio-bug-tracker #2240)
    "mlx command buffer": (
        "libc++abi: terminating due to uncaught exception of type std::runtime_error: [METAL] Command "
        "buffer execution failed: Insufficient Memory (00000008:kIOGPUCommandBufferCallbackErrorOutOfMemory)"
    ),
    "mlx max buffer": (
        "RuntimeError: [metal::malloc] Attempting to allocate 48736917632 bytes which is greater than "
        "the maximum allowed buffer size of 30150672384 bytes."
    ),
    "mlx malloc_or_wait": (
        "libc++abi: terminating due to uncaught exception of type std::runtime_error: "
        "[malloc_or_wait] Unable to allocate 9663676416 bytes."
    ),
    # CUDA and CPU
    "cuda": "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 GiB. GPU 0 has a total capacity of 79.10 GiB",
    "cpu": ("RuntimeError: [enforce fail at alloc_cpu.cpp:75] err == 0. DefaultCPUAllocator: can't allocate "
            "memory: you tried to allocate 132426121216 bytes. Error code 12 (Cannot allocate memory)"),
}

NOT_OOM = {
    # Metal errors that a smaller batch does not fix (pytorch #125442, #77886)
    "metal internal error": "\tInternal Error (0000000e:Internal Error)",
    "mps buffer not large enough": (
        "failed assertion `[MPSNDArray, initWithBuffer:descriptor:] Error: buffer is not large enough. Must be 432 bytes"
    ),
    "diverged": "FAIL: training loss diverged (nan)",
    "crash": "NameError: name 'modle' is not defined",
}


@pytest.mark.parametrize("name", sorted(OOM))
def test_real_out_of_memory_messages_are_oom(name):
    assert OOM_PATTERN.search(f"step 00012 | loss 4.1\n{OOM[name]}\n")


@pytest.mark.parametrize("name", sorted(NOT_OOM))
def test_other_failures_are_not_oom(name):
    assert not OOM_PATTERN.search(NOT_OOM[name])


FAKE_TRAIN = """\
import json, os, sys
if {batch} > {fits}:
    sys.stderr.write({message!r} + "\\n")
    sys.stderr.flush()
    os.abort()  # what the Metal assertion does: SIGABRT, no Python exception, no result file
config = json.load(open(os.environ["ARP_RUN_CONFIG"]))
json.dump(dict(status="ok"), open(config["result_path"], "w"))
"""


def test_autotune_halves_on_the_mps_ndarray_abort(tmp_path):
    """The child dies by SIGABRT with only the MPS assertion on stderr: the runner calls that
    'oom', so the autotune halves instead of giving up on a crash."""
    statuses = []

    def trial(batch: int) -> str:
        path = tmp_path / f"train_{batch}.py"
        path.write_text(FAKE_TRAIN.format(batch=batch, fits=8, message=MPS_NDARRAY_ABORT))
        # as init's throughput probes call it: a few steps, no evaluation
        result = run_training(path, probe={}, plan={"backend": "mps"}, dataset="bundled",
                              budget_seconds=1, probe_steps=3, quiet=True, timeout=60)
        statuses.append(result["status"])
        return result["status"]

    assert largest_fitting_batch(trial, 32) == 8
    assert statuses == ["oom", "oom", "ok"]
