"""Load awareness: how much of the machine other programs took while a run (or a probe) measured.
The parent process watches its own process tree (itself, train.py, the evaluator) and counts all
else the CPUs did as "others": a wall-clock run's step count depends on it, so a run disturbed
beyond a threshold is `noisy` and a probe taken under load is not cached."""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import psutil

from autoresearch_portable.fsutil import atomic_write_json, read_json

from autoresearch_portable.detect.load_gpu import GPU_EVERY, GpuWatch

# Others using a twentieth of the cores the run may use: a CPU run wants every core and torch's
# threads wait for the slowest one, so each share of the CPU others take costs a wall-mode run
# 1.8 times that share of its steps and, at 30 s on a 2-core EPYC, 0.010 bpb per 1 % of the CPU
# (benchmarks/load_threshold.py: 6 % cost 4 % of the steps, 12 % cost 20 %, 20 % cost 39 %). At
# 5 % that is ~9 % of the steps (the spread of quiet runs there) and ~+0.05 bpb (1.3 sigma of a
# run); quiet runs saw others use 0-2 %. Below it a run may still be slowed a little: work mode
# is immune.
OTHERS_CPU_SHARE = 0.05
# A run whose accelerator does the work needs the CPU only to feed it: disturbed when the CPUs
# are saturated (others plus the run's own use at 90 % of the cores) and others take their share.
SATURATED_SHARE = 0.90
# Steady tokens/s below 3/4 of the expected rate: steps of one train.py cost the same all run
# (the LR schedule does not change the work), so a 25 % drop is load or throttling, not the code.
SLOW_RATIO = 0.75
GPU_OTHERS_UTIL = 10.0  # % of the GPU's SMs others used (mean): time the run's kernels wait
# the fastest core below half its max (Linux cpufreq, median over the run) is a power or thermal
CPUFREQ_LOW = 0.5  # cap: all-core turbo sits well above half of the single-core maximum
TREE_EVERY = 3  # find the tree's members every 3rd sample: it reads all processes (~40 us each)
# Linux adds a reaped child's CPU time to its parent's children times: a child that ran and ended
# between samples stays the tree's own. Elsewhere a gone process keeps its last seen time.
REAPED_TIMES = sys.platform.startswith("linux")
PROBE_MIN_SECONDS = 0.25  # a probe's load window: long enough for the 10 ms CPU-time ticks
PROBE_RETRY_WAIT = 0.5  # skips a burst (a git command); longer load outlasts any wait we can afford


@dataclass
class LoadReport:
    seconds: float = 0.0  # wall time watched
    samples: int = 0  # sampling intervals (plus the final partial one)
    cpus: int = 0  # logical CPUs the run may use (its affinity set): the shares are of these
    logical_cpus: int = 0  # all logical CPUs of the machine
    others_share_mean: float | None = None  # others' share of `cpus`, over the whole window
    others_share_max: float | None = None  # the busiest sampling interval
    own_cores_mean: float | None = None  # cores the watched tree used on average
    load_avg_max: float | None = None  # 1-minute load average; counts the run's own threads too
    throttled: bool | None = None  # None: the OS told nothing
    throttling: list[str] = field(default_factory=list)  # what the OS told, when it was throttling
    cpu_freq_ratio: float | None = None  # Linux: median of (fastest core / its max frequency)
    gpu_others: list[dict] = field(default_factory=list)  # other processes on the GPU(s)
    gpu_others_util_mean: float | None = None  # their SM utilisation, % (None: driver did not say)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def cpu_figure(self) -> str:
        share = self.others_share_mean or 0.0
        return f"other processes used {share:.0%} of the CPU ({share * self.cpus:.2f} of {self.cpus} cores)"


def _busy_seconds(t) -> float:
    """A CPU's busy time: everything but idle and I/O wait (steal, time the hypervisor gave to
    other guests, counts as busy: the run did not get it either). Guest time is inside user."""
    total = sum(t) - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)
    return total - t.idle - getattr(t, "iowait", 0.0)


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def parse_pmset_therm(text: str) -> int | None:
    """macOS `pmset -g therm`: CPU_Speed_Limit (100 = not throttled), None when absent."""
    for line in text.splitlines():
        name, _, value = line.partition("=")
        if name.strip() == "CPU_Speed_Limit" and value.strip().isdigit():
            return int(value)
    return None


class LoadMonitor:
    """Samples the machine every `interval` seconds in a background thread between start() and
    stop(). `pid` is the root of the run's own process tree (default: this process, so that a
    parent started before its child counts the child, and the child's children, as its own)."""

    def __init__(self, pid: int | None = None, *, interval: float = 1.0, watch_gpu: bool = False):
        self.root = psutil.Process(pid or os.getpid())
        self.interval = interval
        self.logical_cpus = psutil.cpu_count() or 1
        try:
            affinity = self.root.cpu_affinity()  # Linux, Windows; not macOS
        except (AttributeError, psutil.Error):
            affinity = []
        self.cpu_ids = [i for i in affinity if i < self.logical_cpus] or list(range(self.logical_cpus))
        self.report = LoadReport(cpus=len(self.cpu_ids), logical_cpus=self.logical_cpus)
        self.gpu = GpuWatch() if watch_gpu else None
        self._seen: dict[tuple, float] = {}  # (pid, create time) -> last CPU seconds seen
        self._shares, self._freq = [], []  # per interval: others' share; fastest core / its max
        self._stop, self._thread = threading.Event(), None

    def __enter__(self) -> "LoadMonitor":
        return self.start()

    def __exit__(self, *exc) -> None:  # the report stays in .report
        self.stop()

    def start(self, background: bool = True) -> "LoadMonitor":
        self._max_freq = {i: _read(f"/sys/devices/system/cpu/cpu{i}/cpufreq/cpuinfo_max_freq") for i in self.cpu_ids}
        self._throttle0 = self._throttle_count()
        self._first = self._last = self._snapshot()
        if background:
            self._thread = threading.Thread(target=self._loop, name="arp-load", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> LoadReport:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._guarded_sample(final=True)  # the last partial interval
        r = self.report
        t0, _, own0 = self._first
        t1, _, own1 = self._last
        r.seconds = t1 - t0
        if r.seconds > 0:
            r.others_share_mean = self.others_share_so_far()
            r.own_cores_mean = max(0.0, (own1 - own0) / r.seconds)
            r.others_share_max = max(self._shares, default=r.others_share_mean)
        self._finish_throttle()
        if self.gpu is not None:
            answered, throttle = self.gpu.finish(r)
            if answered:
                self._throttled(bool(throttle), "the GPU reported " + ", ".join(throttle))
        return r

    def others_share_so_far(self) -> float | None:
        """Others' share of the CPUs from start() to the latest sample (None before the first):
        read while the monitor runs, e.g. by the early-abandonment watcher."""
        t0, busy0, own0 = self._first
        t1, busy1, own1 = self._last
        if t1 - t0 <= 0:
            return None
        return min(1.0, max(0.0, (busy1 - busy0 - (own1 - own0)) / ((t1 - t0) * self.report.cpus)))

    def busy_so_far(self, others_cpu_share: float = OTHERS_CPU_SHARE) -> str | None:
        """Why the machine counts as busy so far (the same threshold that makes a run noisy), or None."""
        share = self.others_share_so_far()
        if share is None or share < others_cpu_share:
            return None
        return f"other processes used {share:.0%} of the CPU so far"

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._guarded_sample()

    def _guarded_sample(self, final: bool = False) -> None:
        try:
            self._sample(final)
        except Exception as e:  # a failing query must never stop the run it watches
            note = f"load sample failed: {type(e).__name__}: {e}"[:200]
            self.report.notes += [] if note in self.report.notes else [note]

    def _snapshot(self, rescan: bool = True) -> tuple[float, float, float]:
        per_cpu = psutil.cpu_times(percpu=True)
        busy = sum(_busy_seconds(per_cpu[i]) for i in self.cpu_ids if i < len(per_cpu))
        if rescan:
            try:
                self._procs = [self.root, *self.root.children(recursive=True)]
            except psutil.Error:
                self._procs = [self.root]
        if REAPED_TIMES:  # a process gone since is in its parent's children times: only the live count
            self._seen.clear()
        for p in self._procs:
            try:  # children times: 0 outside Linux
                t = p.cpu_times()
                self._seen[(p.pid, p.create_time())] = t.user + t.system + t.children_user + t.children_system
            except psutil.Error:
                pass
        return time.monotonic(), busy, sum(self._seen.values())

    def _sample(self, final: bool = False) -> None:
        t_prev, busy_prev, own_prev = self._last
        r = self.report
        self._last = t, busy, own = self._snapshot(rescan=final or r.samples % TREE_EVERY == TREE_EVERY - 1)
        if t - t_prev > 0.05:
            self._shares.append(min(1.0, max(0.0, (busy - busy_prev - (own - own_prev)) / ((t - t_prev) * r.cpus))))
        r.samples += 1
        if hasattr(os, "getloadavg"):  # not on Windows
            r.load_avg_max = max(r.load_avg_max or 0.0, os.getloadavg()[0])
        ratios = []
        for i, top in self._max_freq.items():
            cur = _read(f"/sys/devices/system/cpu/cpu{i}/cpufreq/scaling_cur_freq")
            if top and cur and top.isdigit() and cur.isdigit() and int(top) > 0:
                ratios.append(int(cur) / int(top))
        if ratios:
            self._freq.append(max(ratios))
        if sys.platform == "darwin" and r.samples % 10 == 1:  # a subprocess: every 10th sample
            out = subprocess.run(["pmset", "-g", "therm"], capture_output=True, text=True, timeout=5).stdout
            limit = parse_pmset_therm(out)
            if limit is not None:
                self._throttled(limit < 100, f"macOS limited the CPU speed to {limit} %")
        if self.gpu is not None and r.samples % GPU_EVERY == 1:
            self.gpu.sample({p.pid for p in self._procs})

    def _throttle_count(self) -> int | None:
        """Linux (Intel): thermal throttle events counted by the kernel, all CPUs together."""
        files = glob.glob("/sys/devices/system/cpu/cpu*/thermal_throttle/*_throttle_count")
        counts = [int(v) for v in map(_read, files) if v and v.isdigit()]
        return sum(counts) if counts else None

    def _throttled(self, seen: bool, what: str) -> None:
        """A source of throttling information spoke: known (False) from now on, True once seen."""
        r = self.report
        r.throttled = bool(r.throttled) or seen
        if seen and what not in r.throttling:
            r.throttling.append(what)

    def _finish_throttle(self) -> None:
        end = self._throttle_count()
        if end is not None and self._throttle0 is not None:
            self._throttled(end > self._throttle0, f"the CPU reported {end - self._throttle0} thermal throttle events")
        if self._freq:
            ratio = self.report.cpu_freq_ratio = sorted(self._freq)[len(self._freq) // 2]
            self._throttled(ratio < CPUFREQ_LOW, f"the fastest core ran at {ratio:.0%} of its maximum frequency (median)")


def judge(report: LoadReport | None, *, tokens_per_second: float | None = None,
          first_steps_tokens_per_second: float | None = None, expected_tokens_per_second: float | None = None,
          run_on_cpu: bool = True, others_cpu_share: float = OTHERS_CPU_SHARE, slow_ratio: float = SLOW_RATIO,
          gpu_others_util: float = GPU_OTHERS_UTIL) -> tuple[bool, str, dict]:
    """Was this run disturbed? Pure: decides from the report and the run's throughput figures.
    `run_on_cpu`: the run computes on the CPU (else the CPU only feeds an accelerator).
    `expected_tokens_per_second`: the rate this same train.py reached before on this device (pass
    it only when it applies: harness/experiment.py expected_rate, the unmodified baseline's earlier
    runs). Returns (noisy, reason, figures): the reason names the measured figures, for a quiet run
    too."""
    reasons, figures = [], {}
    notes = list(report.notes) if report else []
    if report is None or report.others_share_mean is None:
        notes.append("machine load was not measured")
    else:
        share, cpus = report.others_share_mean, report.cpus
        own_share = (report.own_cores_mean or 0.0) / max(cpus, 1)
        figures.update(others_cpu_share=round(share, 3), others_cpu_share_max=round(report.others_share_max or 0.0, 3),
                       others_cores=round(share * cpus, 2), cpus=cpus, own_cores=round(own_share * cpus, 2),
                       load_avg_max=report.load_avg_max)
        if run_on_cpu and share >= others_cpu_share:
            reasons.append(f"{report.cpu_figure()} on average")
        elif not run_on_cpu and share >= others_cpu_share and share + own_share >= SATURATED_SHARE:
            reasons.append(f"the CPU was saturated ({share + own_share:.0%} busy): {report.cpu_figure()} on average")
    if report is not None and report.throttled:
        reasons.append("throttling: " + ("; ".join(report.throttling) or "reported by the OS"))
    figures["throttled"] = report.throttled if report else None
    if report is not None and report.gpu_others_util_mean is not None:
        figures["gpu_others_util"] = round(report.gpu_others_util_mean, 1)
        if report.gpu_others_util_mean >= gpu_others_util:
            names = ", ".join(f"{p['name']} ({p['pid']})" for p in report.gpu_others[:3])
            reasons.append(f"other processes used {report.gpu_others_util_mean:.0f} % of the GPU on average ({names})")
    elif report is not None and report.gpu_others:
        mem = sum(p["memory_mb"] for p in report.gpu_others)
        notes.append(f"{len(report.gpu_others)} other process(es) held {mem:.0f} MiB on the GPU; their use is unknown")
    for key, name, ref in (("tokens_per_second_vs_first_steps", "its first timed steps", first_steps_tokens_per_second),
                           ("tokens_per_second_vs_expected", "the same code's earlier runs", expected_tokens_per_second)):
        if tokens_per_second and ref:
            figures[key] = ratio = round(tokens_per_second / ref, 3)
            if ratio < slow_ratio:
                reasons.append(f"steady throughput {tokens_per_second:,.0f} tokens/s was {ratio:.0%} of "
                               f"{name} ({ref:,.0f} tokens/s)")
    figures["notes"] = notes
    if reasons:
        return True, "; ".join(reasons), figures
    return False, (f"{report.cpu_figure()} on average" if "others_cpu_share" in figures else "load not measured"), figures


def busy_from(report: LoadReport, others_cpu_share: float = OTHERS_CPU_SHARE) -> tuple[bool, str]:
    """A probe's view of a report: busy when others took their threshold share or the OS throttled."""
    figure = report.cpu_figure()
    if report.throttled:
        return True, figure + "; throttling: " + "; ".join(report.throttling)
    return (report.others_share_mean or 0.0) >= others_cpu_share, figure


def measure_quietly(measure: Callable[[], object], what: str, *, log: Callable[[str], None] | None = None,
                    load_matters: Callable[[object], bool] = lambda value: True) -> tuple[object, bool]:
    """Run a probe's `measure()` while watching the load: (value, cacheable). Busy during it: wait a
    moment and measure once more; still busy: the value serves this run only, with one line why.
    `load_matters(value)` is False for results load cannot change (an out-of-memory status)."""
    for attempt in (1, 2):
        mon = LoadMonitor().start(background=False)
        t0 = time.monotonic()
        value = measure()
        time.sleep(max(0.0, PROBE_MIN_SECONDS - (time.monotonic() - t0)))
        busy, figure = busy_from(mon.stop())
        if not busy or not load_matters(value):
            return value, True
        if attempt == 1:
            time.sleep(PROBE_RETRY_WAIT)
    (log or (lambda m: print(m, file=sys.stderr, flush=True)))(
        f"{what}: not cached, the machine was busy while measuring ({figure}); it is measured again next time")
    return value, False


def cached_measurement(path: Path, measure: Callable[[dict | None], dict | None], what: str, *,
                       log: Callable[[str], None] | None = None,
                       fresh: Callable[[dict], bool] = lambda record: True) -> dict | None:
    """A measurement of this machine kept in a JSON file (the matmul rates, measured once): the
    stored record when there is one and `fresh(record)` accepts it; otherwise `measure(the stored
    record or None)`, run by measure_quietly and stored unless other processes loaded the
    machine meanwhile (or it measured nothing: None)."""
    old = read_json(path)
    try:
        if old is not None and fresh(old):
            return old
    except (KeyError, TypeError, ValueError):
        pass
    record, cacheable = measure_quietly(lambda: measure(old), what, log=log)
    if record and cacheable:
        atomic_write_json(path, record)
    return record
