from autoresearch_portable.detect import plan as plan_mod
from autoresearch_portable.harness.baseline import sizing
from autoresearch_portable.harness.baseline.template import render_template


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


# --- memory: the cap, and attention that is built in full -----------------------------------

import json  # noqa: E402
from pathlib import Path  # noqa: E402

from autoresearch_portable.detect.plan import make_plan  # noqa: E402
from autoresearch_portable.detect.probe import DeviceProbe  # noqa: E402

PROBES = Path(__file__).parent / "probes"


def probe_and_plan(name: str, backend: str | None = None) -> tuple[dict, dict]:
    probe = json.loads((PROBES / f"{name}.json").read_text())
    return probe, make_plan(DeviceProbe.from_dict(probe), backend, {}).to_dict()


def test_memory_cap_is_metals_recommended_working_set_on_a_mac():
    probe, plan = probe_and_plan("m1_mlx")  # mlx on Metal
    assert plan_mod.memory_cap(probe, plan) == (11453251584, "Metal's recommended working set (mlx)")
    probe, plan = probe_and_plan("m1_nomlx")  # torch MPS
    cap, source = plan_mod.memory_cap(probe, plan)
    assert cap == probe["mps_recommended_max_memory"] == 11453251584 and "torch.mps" in source
    assert cap < probe["memory_bytes"]


def test_memory_cap_of_a_cuda_gpu_is_its_memory():
    # the probe's field is total_memory (an earlier version read a missing memory_bytes: no cap)
    probe, plan = probe_and_plan("h100_sxm")
    assert plan_mod.memory_cap(probe, plan)[0] == 85029158912


def test_memory_cap_of_a_cpu_is_the_ram():
    probe, plan = probe_and_plan("cpu_epyc_ci")
    assert plan_mod.memory_cap(probe, plan) == (probe["memory_bytes"], "total RAM")
    probe, plan = probe_and_plan("m1_mlx", "cpu")
    assert plan_mod.memory_cap(probe, plan)[1] == "total RAM"


def test_memory_per_row_grows_with_t_squared_where_attention_is_materialized():
    def ratio(materialized):
        return (sizing.approx_memory_per_row(8, 512, 8192, 4096, 4, materialized)
                / sizing.approx_memory_per_row(8, 512, 8192, 2048, 4, materialized))
    assert ratio(False) == 2.0  # per token: linear in T
    assert ratio(True) > 3.5  # the (T, T) scores dominate at long sequences
    assert plan_mod.attention_materialized({"backend": "mps"}) and plan_mod.attention_materialized({"backend": "mlx"})
    assert not plan_mod.attention_materialized({"backend": "cuda"})


def test_mps_device_batch_keeps_every_scores_array_under_4_gib():
    # width 512 (8 heads), seq 2048, fp32: one row's scores of one layer are 128 MiB, so batch 32
    # would build a 4 GiB array, which MPS refuses with a hard abort
    probe, plan = probe_and_plan("m4_max_nomlx")
    cap, _ = plan_mod.memory_cap(probe, plan)
    s = sizing.choose_baseline(4.0e14, 300, 2048, 8192, cap, dtype_bytes=4, materialized_attention=True,
                               max_array_bytes=plan_mod.largest_array_bytes(probe, plan))
    assert (s["DEPTH"], s["MODEL_DIM"]) == (8, 512)
    assert s["DEVICE_BATCH_SIZE"] * sizing.attention_scores_bytes(512, 2048, 4) < 2**32
    unlimited = sizing.choose_baseline(4.0e14, 300, 2048, 8192, cap, dtype_bytes=4)
    assert s["DEVICE_BATCH_SIZE"] < unlimited["DEVICE_BATCH_SIZE"]
    assert s["TOTAL_BATCH_SIZE"] == unlimited["TOTAL_BATCH_SIZE"]


def test_a_trial_that_runs_past_the_cap_counts_as_out_of_memory(small_bundled, monkeypatch):
    """A Mac swaps instead of failing: a trial batch whose measured peak passes the working set
    'runs', slowly. The sizing treats it as an OOM and halves."""
    from autoresearch_portable.harness.baseline import template

    probe, plan = probe_and_plan("m1_nomlx")
    cap = probe["mps_recommended_max_memory"]
    tried = []

    def fake_probe(probe, plan, dataset, depth, dim, batch, log=print):
        tried.append(batch)
        return dict(status="ok", depth=depth, model_dim=dim, device_batch=batch, tokens_per_second=1e5,
                    flops_per_second=1e12, peak_memory_mb=batch * 1.5 * 2**30 / 2**20)

    monkeypatch.setattr(template, "throughput_probe", fake_probe)
    sizes = template.size_for_device(probe, plan, "bundled", 300, log=lambda m: None)
    assert tried[0] == 8 and 8 * 1.5 * 2**30 > cap  # the first trial ran past the cap ...
    assert sizes["DEVICE_BATCH_SIZE"] * 1.5 * 2**30 <= cap  # ... and was not kept


def test_the_baseline_of_an_apple_gpu_plan_is_all_full_causal_everywhere_it_is_written():
    from autoresearch_portable.harness.baseline.calibrate import baseline_source
    from autoresearch_portable.harness.baseline.template import baseline_text

    sizes = dict(DEPTH=4, MODEL_DIM=256, DEVICE_BATCH_SIZE=8, TOTAL_BATCH_SIZE=8 * 1024)
    for name in ("m1_nomlx", "m4_max_mlx"):
        _, plan = probe_and_plan(name)
        text = baseline_text(plan, sizes)  # what init's probes measure and `arp init` writes
        assert "\nWINDOW_PATTERN = 'L'" in text and "\nDEPTH = 4" in text
        assert baseline_source(plan, sizes) == text  # what `arp calibrate` trains
    _, plan = probe_and_plan("cpu_epyc_ci")
    assert "\nWINDOW_PATTERN = 'SSSL'" in baseline_text(plan, sizes)
