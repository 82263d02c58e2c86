"""Hardware detection as data: `probe()` reads the machine into a `DeviceProbe` record,
`make_plan()` turns a record into a `Plan` (a pure function, tested with recorded probes).
Importing this package imports neither torch nor mlx; `probe()` does, lazily."""

from autoresearch_portable.detect.doctor import doctor_report, format_doctor
from autoresearch_portable.detect.peaks import datasheet_peak, lookup_peak
from autoresearch_portable.detect.plan import BACKENDS, Plan, PlanError, make_plan, resolve_backend
from autoresearch_portable.detect.probe import DeviceProbe, GpuInfo, probe
from autoresearch_portable.detect.probe_cache import probe_this_boot

__all__ = [
    "BACKENDS", "DeviceProbe", "GpuInfo", "Plan", "PlanError", "datasheet_peak", "doctor_report",
    "format_doctor", "lookup_peak", "make_plan", "probe", "probe_this_boot", "resolve_backend",
]
