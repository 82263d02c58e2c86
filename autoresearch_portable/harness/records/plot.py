"""The progress plots: `arp results --plot FILE.png`, the plot of the original's analysis
notebook, from the ledger (val_bpb per experiment, by run number: runs the agent kept highlighted,
the others faint, the running best of the ok runs as a step line, and the noise band (±2σ) around
it), and `arp compare --plot`, one such series per ledger (normalized_bpb where every device was
calibrated). Needs matplotlib (the `plot` extra); without it, one line says so. The PNG's metadata
(`Description`) says what was plotted, so a reader (or a test) can check the file itself."""

from __future__ import annotations

import math
from pathlib import Path

from autoresearch_portable.errors import UserError
from autoresearch_portable.harness.records import ledger


def plot_data(records: list[dict], kept: set[int], sigma: float | None, key: str = "val_bpb") -> dict:
    """What the plot shows, as numbers (pure): every trusted ok run's (run, `key` of its
    metrics), which were kept, the running best after each of them, and the band's half width."""
    points, best, running = [], math.inf, []
    for i, rec in enumerate(records, 1):
        v = (rec.get("metrics") or {}).get(key)
        if rec.get("status") != "ok" or rec.get(ledger.UNTRUSTED) or not isinstance(v, (int, float)) or not math.isfinite(v):
            continue
        points.append((i, float(v)))
        best = min(best, float(v))
        running.append(best)
    return dict(points=points, kept=[p for p in points if p[0] in kept], running_best=running,
                band=2 * sigma if sigma is not None else None, runs=len(records))


def write_plot(series: dict[str, dict], out: str | Path, ylabel: str = "val_bpb") -> str:
    """Draw `plot_data`'s numbers, one series per name (one ledger: no legend names), into a PNG.
    Returns a one-line message."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    out = Path(out)
    if out.suffix.lower() != ".png":
        raise UserError(f"--plot writes a PNG: give a file name ending in .png (got {out.name})")
    fig, ax = plt.subplots(figsize=(10, 5))
    for name, data in series.items():
        pts, keptset = data["points"], {p[0] for p in data["kept"]}
        color = "#2ca02c" if len(series) == 1 else None
        others = [p for p in pts if p[0] not in keptset]
        if others:
            dots = ax.scatter([p[0] for p in others], [p[1] for p in others], s=16, zorder=2,
                              color="#bbbbbb" if color else None, label=f"{name or 'discarded'}")
            color = color or dots.get_facecolor()[0]
        if keptset:
            ax.scatter([p[0] for p in data["kept"]], [p[1] for p in data["kept"]], s=36, color=color, edgecolors="black",
                       linewidths=0.5, label=f"{name} kept".strip(), zorder=3)
        if pts:
            xs = [p[0] for p in pts]
            ax.step(xs, data["running_best"], where="post", color=color, linewidth=1.5, label=f"{name} running best".strip(),
                    zorder=2)
            if data["band"]:
                lo = [b - data["band"] for b in data["running_best"]]
                hi = [b + data["band"] for b in data["running_best"]]
                ax.fill_between(xs, lo, hi, step="post", color=color, alpha=0.12, label="noise band (±2σ)")
    n_pts, n_kept = sum(len(d["points"]) for d in series.values()), sum(len(d["kept"]) for d in series.values())
    runs = sum(d["runs"] for d in series.values())
    ax.set_xlabel("experiment (run number)")
    ax.set_ylabel(f"{ylabel} (lower is better)")
    ax.set_title(f"autoresearch progress: {n_pts} scored runs of {runs}" + (f", {n_kept} kept" if len(series) == 1 else ""))
    ax.grid(alpha=0.3)
    if n_pts:
        ax.legend(fontsize=8)
    fig.tight_layout()
    try:
        fig.savefig(out, dpi=100, metadata={"Description": f"points={n_pts} kept={n_kept} runs={runs}"})
    except OSError as e:
        raise UserError(f"cannot write the plot {out}: {e.strerror or e}") from None
    finally:
        plt.close(fig)
    return f"plot written: {out} ({n_pts} scored runs, {n_kept} kept, {ylabel})"
