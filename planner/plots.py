"""PNG plots of a plan (matplotlib, headless): latency vs load, the cost-carbon plane, utilisation per pool.

- ``latency_vs_load.png``: for each traffic class, the latency its SLO bounds (p90 TTFT, else p90
  end-to-end) of one replica of every configuration against the load offered to it (screening runs),
  with the SLO bound as a dashed line;
- ``cost_carbon.png``: every simulated fleet in the $/hour x kg CO2e/hour plane, feasible or not, the
  Pareto front of the feasible ones and the recommended fleet;
- ``utilisation.png``: per pool of the recommended (or closest) fleet, the share of time its engines
  were busy and the mean KV-cache occupancy.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from planner.outcome import PlanResult
from planner.verify import Verdict


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt: Any, fig: Any, path: Path) -> Path:
    """Lay out, write the PNG and free the figure."""
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _carbon_kg(v: Verdict) -> float:
    t = v.economics["total"]
    return float(t["carbon_g_per_hour"] + t["embodied_g_per_hour"]) / 1000.0


def latency_vs_load(result: PlanResult, path: Path) -> Path:
    plt = _plt()
    classes = list(result.slos) or ["ALL"]
    fig, axes = plt.subplots(1, len(classes), figsize=(5.2 * len(classes), 4.2), squeeze=False)
    for ax, cls in zip(axes[0], classes, strict=True):
        slo = result.slos.get(cls, {})
        metric, bound = ("ttft", slo.get("ttft_ms")) if slo.get("ttft_ms") or not slo.get("e2e_ms") else (
            "e2e", slo.get("e2e_ms"))
        key = f"{metric}_p90_ms"
        for name, curve in result.curves.items():
            xs = [p["rate"] for p in curve.points]
            ys = [p["classes"].get(cls, {}).get(key, math.nan) for p in curve.points]
            ax.plot(xs, ys, marker="o", label=f"{name} (saturates at {curve.capacity_rps:.1f} req/s)")
        if bound:
            ax.axhline(bound, color="tab:red", linestyle="--", linewidth=1,
                       label=f"SLO: p{slo.get('percentile', 90):g} <= {bound:,.0f} ms")
        ax.set_xlabel("load offered to one replica (req/s, all classes)")
        ax.set_ylabel(f"{cls}: p90 {metric.upper()} (ms)")
        ax.set_yscale("log")
        ax.set_title(f"latency vs load: {cls}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    return _save(plt, fig, path)


def cost_carbon(result: PlanResult, path: Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.8))
    bad = [v for v in result.verified if not v.feasible]
    good = [v for v in result.verified if v.feasible]
    if bad:
        ax.scatter([v.economics["total"]["usd_per_hour"] for v in bad], [_carbon_kg(v) for v in bad],
                   marker="x", c="tab:gray", s=30, label=f"misses an SLO ({len(bad)})")
    if good:
        ax.scatter([v.economics["total"]["usd_per_hour"] for v in good], [_carbon_kg(v) for v in good],
                   marker="o", c="tab:green", s=36, label=f"meets all SLOs ({len(good)})")
    if result.pareto:
        pts = sorted((v.economics["total"]["usd_per_hour"], _carbon_kg(v)) for v in result.pareto)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "-", color="darkgreen", marker="D", markersize=6,
                markerfacecolor="none", label=f"Pareto front ({len(pts)})")
    best = result.recommended
    if best is not None:
        x, y = best.economics["total"]["usd_per_hour"], _carbon_kg(best)
        ax.scatter([x], [y], marker="*", s=260, c="gold", edgecolors="black", zorder=5, label="recommended")
        ax.annotate(best.candidate.fleet, (x, y), textcoords="offset points", xytext=(8, 8), fontsize=8)
    ax.set_xlabel("cost ($/hour)")
    ax.set_ylabel("carbon (kg CO2e/hour, operational + embodied)")
    ax.set_title(f"simulated fleets ({result.objective} objective)")
    ax.grid(True, alpha=0.3)
    if result.verified:
        ax.legend(fontsize=8)
    return _save(plt, fig, path)


def utilisation(best: Verdict, path: Path) -> Path:
    plt = _plt()
    pools = list(best.runs[0].get("utilisation", {}))
    busy = [100 * sum(r["utilisation"].get(p, 0.0) for r in best.runs) / len(best.runs) for p in pools]
    kv = [100 * sum(r.get("kv_use", {}).get(p, 0.0) for r in best.runs) / len(best.runs) for p in pools]
    fig, ax = plt.subplots(figsize=(max(5.0, 1.8 * len(pools) + 2.5), 3.8))
    xs = list(range(len(pools)))
    width = 0.38
    b1 = ax.bar([x - width / 2 for x in xs], busy, width, color="tab:blue", label="engine busy (share of time)")
    b2 = ax.bar([x + width / 2 for x in xs], kv, width, color="tab:orange", label="mean KV-cache use")
    for bars in (b1, b2):
        ax.bar_label(bars, fmt="%.0f%%", fontsize=8)
    ax.set_xticks(xs, pools)
    ax.set_ylabel("%")
    ax.set_ylim(0, 112)
    ax.set_title(f"per pool: {best.candidate.fleet} ({len(best.runs)} seeds)", fontsize=10)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2)
    return _save(plt, fig, path)
