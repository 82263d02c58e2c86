"""`arp results --plot FILE.png`: the progress plot of the original's analysis notebook, from the
ledger. val_bpb per experiment (run number): runs the agent kept highlighted, the others faint,
the running best of the ok runs as a step line, and the noise band (±2σ) around it. Needs
matplotlib (the `plot` extra); without it, one line says so. The PNG's metadata (`Description`)
says what was plotted, so a reader (or a test) can check the file itself."""

from __future__ import annotations

import math
from pathlib import Path

from autoresearch_portable.errors import UserError
from autoresearch_portable.harness.records import ledger


def plot_data(records: list[dict], kept: set[int], sigma: float | None) -> dict:
    """What the plot shows, as numbers (pure): every trusted ok run's (run, val_bpb), which were
    kept, the running best after each of them, and the band's half width."""
    points, best, running = [], math.inf, []
    for i, rec in enumerate(records, 1):
        v = (rec.get("metrics") or {}).get("val_bpb")
        if rec.get("status") != "ok" or rec.get(ledger.UNTRUSTED) or not isinstance(v, (int, float)) or not math.isfinite(v):
            continue
        points.append((i, float(v)))
        best = min(best, float(v))
        running.append(best)
    return dict(points=points, kept=[p for p in points if p[0] in kept], running_best=running,
                band=2 * sigma if sigma is not None else None, runs=len(records))


def write_plot(data: dict, out: str | Path) -> str:
    """Draw `plot_data`'s numbers into a PNG. Returns a one-line message."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    out = Path(out)
    if out.suffix.lower() != ".png":
        raise UserError(f"--plot writes a PNG: give a file name ending in .png (got {out.name})")
    pts, kept = data["points"], data["kept"]
    fig, ax = plt.subplots(figsize=(10, 5))
    keptset = {p[0] for p in kept}
    others = [p for p in pts if p[0] not in keptset]
    if others:
        ax.scatter([p[0] for p in others], [p[1] for p in others], s=16, color="#bbbbbb", label="discarded", zorder=2)
    if kept:
        ax.scatter([p[0] for p in kept], [p[1] for p in kept], s=36, color="#2ca02c", edgecolors="black",
                   linewidths=0.5, label="kept", zorder=3)
    if pts:
        xs = [p[0] for p in pts]
        ax.step(xs, data["running_best"], where="post", color="#2ca02c", linewidth=1.5, label="running best", zorder=2)
        if data["band"]:
            lo = [b - data["band"] for b in data["running_best"]]
            hi = [b + data["band"] for b in data["running_best"]]
            ax.fill_between(xs, lo, hi, step="post", color="#2ca02c", alpha=0.12, label="noise band (±2σ)")
    ax.set_xlabel("experiment (run number)")
    ax.set_ylabel("val_bpb (lower is better)")
    ax.set_title(f"autoresearch progress: {len(pts)} scored runs of {data['runs']}, {len(kept)} kept")
    ax.grid(alpha=0.3)
    if pts:
        ax.legend(fontsize=8)
    fig.tight_layout()
    try:
        fig.savefig(out, dpi=100, metadata={"Description": f"points={len(pts)} kept={len(kept)} runs={data['runs']}"})
    except OSError as e:
        raise UserError(f"cannot write the plot {out}: {e.strerror or e}") from None
    finally:
        plt.close(fig)
    return f"plot written: {out} ({len(pts)} scored runs, {len(kept)} kept)"
