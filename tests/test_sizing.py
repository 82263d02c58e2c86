from autoresearch_portable.harness import sizing
from autoresearch_portable.harness.workspace import render_template


def test_h100_class_throughput_gets_the_originals_size():
    # ~400 TFLOP/s effective for 300 s on climbmix (vocab 8192, seq 2048) -> depth 8, width 512,
    # 2^19 tokens per step: the original autoresearch baseline
    s = sizing.choose_baseline(4.0e14, 300, 2048, 8192, memory_bytes=80e9)
    assert (s["DEPTH"], s["MODEL_DIM"]) == (8, 512)
    assert s["TOTAL_BATCH_SIZE"] == 2**19
    assert 500 <= s["expected_steps"] <= 2000
    assert s["TOTAL_BATCH_SIZE"] % (s["DEVICE_BATCH_SIZE"] * 2048) == 0


def test_cpu_throughput_gets_a_small_model_with_hundreds_of_steps():
    s = sizing.choose_baseline(4.0e10, 300, 1024, 4096, memory_bytes=24e9)
    assert s["DEPTH"] <= 4 and s["MODEL_DIM"] <= 256
    assert s["expected_steps"] >= 300
    assert s["TOTAL_BATCH_SIZE"] >= 1024


def test_memory_limits_the_device_batch():
    big = sizing.choose_baseline(4.0e14, 300, 2048, 8192, memory_bytes=80e9)
    small = sizing.choose_baseline(4.0e14, 300, 2048, 8192, memory_bytes=8e9)
    assert small["DEVICE_BATCH_SIZE"] < big["DEVICE_BATCH_SIZE"]
    assert small["TOTAL_BATCH_SIZE"] == big["TOTAL_BATCH_SIZE"]  # accumulation makes up the rest


def test_render_template_replaces_constants_and_keeps_comments():
    text = "DEPTH = 4  # blocks\nMODEL_DIM = 256\nX = DEPTH\n"
    out = render_template(text, {"DEPTH": 6, "MODEL_DIM": 384})
    assert out == "DEPTH = 6  # blocks\nMODEL_DIM = 384\nX = DEPTH\n"
