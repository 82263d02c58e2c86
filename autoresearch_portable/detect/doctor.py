"""`arp doctor`: the probe, the plan with its reasons, the cache paths and calibration state."""

from __future__ import annotations

from autoresearch_portable import HARNESS_VERSION, __version__, paths
from autoresearch_portable.detect.plan import make_plan, resolve_backend
from autoresearch_portable.detect.probe import DeviceProbe, probe
from autoresearch_portable.detect.plan import memory_cap


def doctor_report(backend: str | None = None) -> dict:
    """Everything `arp doctor` shows, as JSON-plain data. Raises PlanError (a UserError) for a
    bad or unavailable backend; the name is checked before the (slower) probe."""
    resolve_backend(backend)
    found = probe(measure=True)
    plan = make_plan(found, backend)
    profiles = paths.profiles_dir()
    return {
        "version": __version__,
        "harness_version": HARNESS_VERSION,
        "probe": found.to_dict(),
        "plan": plan.to_dict(),
        "paths": {
            "cache": str(paths.cache_dir()),
            "data": str(paths.data_dir("_").parent),
            "downloads": str(paths.downloads_dir("_").parent),
            "profiles": str(profiles),
            "probes": str(paths.probes_dir()),
        },
        "calibration": {
            "profiles": sorted(f.name for f in profiles.glob("*.json")) if profiles.is_dir() else [],
        },
    }


def _gib(n: int | None) -> str:
    return f"{n / 2**30:.1f} GiB" if n else "?"


def _hardware_lines(p: DeviceProbe) -> list[str]:
    osv = " ".join(x for x in (p.os, p.os_version) if x)
    if p.kernel and p.os == "Linux":
        osv += f" (kernel {p.kernel})"
    cores = f"{p.logical_cores} logical cores" if p.logical_cores else "? cores"
    if p.usable_cores and p.logical_cores and p.usable_cores != p.logical_cores:
        cores += f", {p.usable_cores} usable"
    rows = [
        ("os", f"{osv}, {p.machine}"),
        ("python", p.python_version),
        ("cpu", f"{p.cpu_model or 'unknown'}, {cores}, {_gib(p.memory_bytes)} memory"),
        ("cpu flags", " ".join(p.cpu_flags) or "none of interest found"),
    ]
    if p.torch_version is None:
        rows.append(("torch", "not installed"))
    else:
        build = (f"CUDA {p.torch_cuda}" if p.torch_cuda else f"ROCm {p.torch_hip}" if p.torch_hip
                 else "MPS build" if p.mps_built else "CPU-only build")
        rows.append(("torch", f"{p.torch_version} ({build}; cpu capability {p.torch_cpu_capability or '?'})"))
        if p.gpus:
            # identical GPUs (the usual 8-GPU node) on one line
            groups: dict[tuple, int] = {}
            for g in p.gpus:
                key = (g.name, g.total_memory, g.compute_capability)
                groups[key] = groups.get(key, 0) + 1
            for (name, mem, cc), n in groups.items():
                cc_text = f", compute capability {cc}" if cc else ""
                rows.append(("gpu", f"{n}x {name}, {_gib(mem)}{cc_text}"))
            rows.append(("gpu bf16", {True: "yes", False: "no", None: "?"}[p.cuda_bf16]))
        else:
            rows.append(("cuda", "no GPU visible to torch"))
        if p.os == "Darwin":
            rows.append(("mps", "available" if p.mps_available else "built, not available" if p.mps_built else "not built"))
    if p.mlx_version is None:
        rows.append(("mlx", "not installed"))
    else:
        rows.append(("mlx", f"{p.mlx_version}, Metal {'available' if p.mlx_metal else 'not available'}"))
    if p.cpu_matmul_gflops:
        m = p.cpu_matmul_gflops
        rows.append(("cpu matmul", ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in m.items())))
    notes = p.notes + ([p.cpu_matmul_load] if p.cpu_matmul_load else [])
    return [f"  {k + ':':<12} {v}" for k, v in rows] + [f"  note: {n}" for n in notes]


def format_doctor(report: dict) -> str:
    p = DeviceProbe.from_dict(report["probe"])
    plan = report["plan"]
    reasons = plan.get("reasons", {})
    lines = [f"autoresearch-portable {report['version']} (harness {report['harness_version']})", "", "hardware"]
    lines += _hardware_lines(p)
    lines += ["", "plan"]
    for key in ("backend", "device", "dtype", "dtype_mode", "grad_scaler", "attention", "compile", "pin_memory", "peak_flops",
                "window_pattern"):
        value = plan.get(key)
        if key == "peak_flops":
            value = f"{value / 1e12:g} TFLOP/s" if value else "measure"
        why = reasons.get(key)
        lines.append(f"  {key + ':':<12} {str(value):<14}" + (f" {why}" if why else ""))
    cap, source = memory_cap(report["probe"], plan)
    lines.append(f"  {'memory cap:':<12} {_gib(int(cap) if cap else None):<14} {source}: the most that sizing and the batch autotune let a run use")
    lines += ["", "paths"]
    for k, v in report["paths"].items():
        lines.append(f"  {k + ':':<12} {v}")
    profiles = report["calibration"]["profiles"]
    lines += ["", "calibration"]
    lines.append(f"  {len(profiles)} profile(s): " + ", ".join(profiles) if profiles else "  not calibrated yet (run `arp calibrate`)")
    return "\n".join(lines)
