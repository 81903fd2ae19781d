#!/usr/bin/env python3
"""Draws the reconnect storms of `storm --csv DIR` (storm/, BENCHMARKS.md).

    python3 scripts/storm-plot.py DIR [OUT_DIR]

Attempts (Hellos that reach the collector, and connects refused while it is
down) and Accepts per 100 ms over time, one panel per strategy, for N =
10,000 (or the largest fleet in DIR), R = 500/s, two restarts:

* OUT_DIR/storm.png: the 10-s outage;
* OUT_DIR/storm-60s.png: the 60-s outage.

OUT_DIR defaults to docs/. matplotlib is installed with pip if missing.
"""

import csv
import os
import subprocess
import sys

try:
    import matplotlib
except ImportError:
    subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", "matplotlib==3.9.2"])
    import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PANELS = [
    ("agent", "paced", "ours: agent + paced collector"),
    ("agent", "unpaced", "agent + unpaced collector (before issue 10)"),
    ("no-jitter", "paced", "no jitter (500 ms doubling to 60 s) + paced"),
    ("fixed-5s", "paced", "fixed 5 s + paced"),
    ("decorrelated", "paced", "decorrelated jitter + paced"),
    ("equal-jitter", "paced", "equal jitter + paced"),
]
RATE = 500


def load(directory):
    with open(os.path.join(directory, "index.csv")) as f:
        return list(csv.DictReader(f))


def series(directory, name):
    t, attempts, accepts = [], [], []
    with open(os.path.join(directory, name)) as f:
        for row in csv.DictReader(f):
            t.append(int(row["t_ms"]) / 1000)
            attempts.append(int(row["attempts"]))
            accepts.append(int(row["accepts"]))
    return t, attempts, accepts


def figure(directory, index, agents, outage_s, path):
    runs = {
        (r["strategy"], r["server"]): r
        for r in index
        if int(r["agents"]) == agents and int(r["rate"]) == RATE and int(r["outage_s"]) == outage_s and r["restarts"] == "2"
    }
    panels = [p for p in PANELS if (p[0], p[1]) in runs]
    if not panels:
        print(f"storm-plot: no runs for N={agents}, R={RATE}, outage {outage_s} s in {directory}; skipped {path}")
        return
    first = runs[(panels[0][0], panels[0][1])]
    down1, up2 = int(first["down1_ms"]) / 1000, int(first["up2_ms"]) / 1000
    lo, hi = down1 - 5, up2 + 100
    fig, axes = plt.subplots(len(panels), 1, figsize=(11, 2.0 * len(panels)), sharex=True)
    if len(panels) == 1:
        axes = [axes]
    # One y range for every panel, set by ours, so that they compare; taller
    # peaks are clipped and named in the panel's title.
    ours = runs.get(("agent", "paced"))
    ours_peak = max(series(directory, ours["file"])[1]) if ours else RATE / 10
    top = max(ours_peak, RATE / 10) * 2.5
    for ax, (strategy, server, title) in zip(axes, panels):
        r = runs[(strategy, server)]
        t, attempts, accepts = series(directory, r["file"])
        window = [i for i, x in enumerate(t) if lo <= x <= hi]
        tt = [t[i] for i in window]
        peak = max((attempts[i] for i in window), default=0)
        ax.fill_between(tt, [attempts[i] for i in window], step="post", color="tab:red", alpha=0.45, lw=0, label="attempts")
        ax.step(tt, [accepts[i] for i in window], where="post", color="tab:blue", lw=0.8, label="accepts")
        ax.axhline(RATE / 10, color="black", ls="--", lw=0.8, label=f"R = {RATE}/s")
        for k in (1, 2):
            d, u = int(r[f"down{k}_ms"]) / 1000, int(r[f"up{k}_ms"]) / 1000
            ax.axvspan(d, u, color="grey", alpha=0.2, lw=0)
        ax.set_ylim(0, top)
        ax.set_xlim(lo, hi)
        clipped = " (clipped)" if peak > top else ""
        ax.set_title(f"{title}: peak {peak:,} attempts / 100 ms{clipped}", fontsize=9, loc="left")
        ax.set_ylabel("per 100 ms", fontsize=8)
        ax.tick_params(labelsize=8)
    axes[0].legend(loc="upper right", fontsize=7, ncol=3)
    axes[-1].set_xlabel("time, s (grey: collector down)")
    fig.suptitle(f"Reconnect storm: N = {agents:,}, R = {RATE}/s, {outage_s}-s outages at {down1:.0f} s and {int(first['down2_ms']) / 1000:.0f} s", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"storm-plot: wrote {path}")


def main():
    if len(sys.argv) < 2:
        print(__doc__.strip())
        sys.exit(2)
    directory = sys.argv[1]
    out = sys.argv[2] if len(sys.argv) > 2 else "docs"
    os.makedirs(out, exist_ok=True)
    index = load(directory)
    agents = 10_000 if any(int(r["agents"]) == 10_000 for r in index) else max(int(r["agents"]) for r in index)
    figure(directory, index, agents, 10, os.path.join(out, "storm.png"))
    figure(directory, index, agents, 60, os.path.join(out, "storm-60s.png"))


if __name__ == "__main__":
    main()
