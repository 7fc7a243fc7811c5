"""Summaries of a simulation: latency percentiles, throughput, goodput, SLO attainment, utilisation.

Metric definitions follow ``vllm bench serve``, as its client sees them (the first and last token reach
it a replica's request-path latency, its profile's ``frontend_s``, after the engine made them; see
:meth:`sim.requests.RequestTable.frame`): TTFT = first token - arrival; TPOT = (finish - first
token) / (output tokens - 1); ITL = the gaps between successive tokens of a request, pooled over
requests (here from the engine's step-duration histogram, weighted by the sequences in each
step, 0.5% bin resolution); E2E = finish - arrival; request throughput = completed / duration,
duration running from the first arrival to the last completion.  With ``simulation.warmup_s`` the
requests arriving before it are left out (their ``warmup`` column is true) and the duration runs from the
first arrival after it; the ITL histogram, kept by the engine, still holds them.  Goodput counts requests
that met every SLO bound of their class.  A class *passes* when, for each bound, the share of requests
within it is at least the SLO's percentile.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from sim.replica import ITL_OFFSET, ITL_SCALE
from sim.simulation import SimResult

PCTS = (50, 90, 95, 99)


def _pcts(values: np.ndarray, scale: float = 1000.0) -> dict[str, float]:
    v = values[np.isfinite(values)]
    out: dict[str, float] = {}
    if len(v) == 0:
        out["mean"] = math.nan
        out.update({f"p{p}": math.nan for p in PCTS})
        return out
    out["mean"] = float(np.mean(v)) * scale
    qs = np.percentile(v, PCTS)
    out.update({f"p{p}": float(q) * scale for p, q in zip(PCTS, qs, strict=True)})
    return out


def itl_percentiles(hist: np.ndarray) -> dict[str, float]:
    """Mean and percentiles (ms) of an ITL histogram (see :mod:`sim.replica`)."""
    total = float(hist.sum())
    if total <= 0:
        return _pcts(np.array([]))
    centres = np.exp((np.arange(len(hist)) - ITL_OFFSET + 0.5) / ITL_SCALE)
    cdf = np.cumsum(hist) / total
    out = {"mean": float((hist * centres).sum() / total) * 1000.0}
    for p in PCTS:
        out[f"p{p}"] = float(centres[int(np.searchsorted(cdf, p / 100.0))]) * 1000.0
    return out


def _slo_columns(df: pd.DataFrame, slo: Any) -> tuple[np.ndarray, dict[str, float], bool]:
    ok = ~df["rejected"].to_numpy() & np.isfinite(df["finish"].to_numpy())
    shares: dict[str, float] = {}
    passed = True
    n = max(len(df), 1)
    for metric, bound in (("ttft", slo.ttft_ms), ("tpot", slo.tpot_ms), ("e2e", slo.e2e_ms)):
        if bound is None:
            continue
        values = df[metric].to_numpy() * 1000.0
        within = np.nan_to_num(values, nan=0.0 if metric == "tpot" else math.inf) <= bound
        within &= ~df["rejected"].to_numpy()
        share = float(within.sum()) / n
        shares[metric] = share
        passed &= share >= slo.percentile / 100.0
        ok &= within
    return ok, shares, passed


def class_summary(result: SimResult) -> pd.DataFrame:
    """One row per traffic class (and one for all traffic)."""
    df = result.requests
    duration = result.makespan
    if result.warmup_s > 0:  # measure from the first request after the warm-up to the last completion
        df = df[df["arrival"] >= result.warmup_s]
        finish = df["finish"].to_numpy()
        ended = finish[np.isfinite(finish)]
        duration = float(ended.max() - df["arrival"].min()) if len(ended) else 0.0
    duration = max(duration, 1e-9)
    rows: list[dict[str, Any]] = []
    groups: list[tuple[str, pd.DataFrame, int | None]] = [
        (name, df[df["cls"] == name], i) for i, name in enumerate(result.class_names)
    ]
    groups.append(("ALL", df, None))
    for name, g, ci in groups:
        done = g[~g["rejected"] & g["finish"].notna()]
        row: dict[str, Any] = {
            "class": name,
            "requests": len(g),
            "completed": len(done),
            "rejected": int(g["rejected"].sum()),
        }
        for metric in ("ttft", "tpot", "e2e"):
            for k, v in _pcts(done[metric].to_numpy()).items():
                row[f"{metric}_{k}_ms"] = v
        hist = result.itl_hist[ci] if ci is not None else result.itl_hist.sum(axis=0)
        for k, v in itl_percentiles(hist).items():
            row[f"itl_{k}_ms"] = v
        row["request_throughput"] = len(done) / duration
        row["output_throughput"] = float(done["output_tokens"].sum()) / duration
        row["total_token_throughput"] = (
            float(done["output_tokens"].sum() + done["prompt_tokens"].sum()) / duration
        )
        if ci is not None:
            slo = result.slos[name]
            good, shares, passed = _slo_columns(g, slo)
            row["goodput"] = float(good.sum()) / duration
            row["slo_attainment"] = float(good.sum()) / max(len(g), 1)
            for metric, share in shares.items():
                row[f"slo_{metric}_share"] = share
            row["slo_percentile"] = slo.percentile
            row["slo_pass"] = passed if shares and len(g) else None  # no requests: nothing to judge
        else:
            sub = list(rows)
            row["goodput"] = sum(r["goodput"] for r in sub)
            row["slo_attainment"] = sum(r["slo_attainment"] * r["requests"] for r in sub) / max(len(g), 1)
            judged = [r["slo_pass"] for r in sub if r["slo_pass"] is not None]
            row["slo_pass"] = all(judged) if judged else None
        rows.append(row)
    return pd.DataFrame(rows)


def window_s(result: SimResult) -> float:
    """Simulated time the fleet stood, seconds: to the last event (the makespan where not recorded)."""
    return float(result.extra.get("end_time", result.makespan))


def pool_summary(result: SimResult) -> pd.DataFrame:
    """One row per pool: traffic served, latency, utilisation, KV, queue, GPU-hours, energy."""
    df = result.requests
    end = window_s(result) or 1e-9
    rows = []
    for pool in result.pools:
        g = df[(df["pool"] == pool.name) & ~df["rejected"]]
        r = result.replicas[result.replicas["pool"] == pool.name]
        plan = pool.replica
        gpus = plan.config.gpus
        gpu_hours = pool.count * gpus * end / 3600.0
        busy = float(r["busy_s"].sum())
        idle_w, tdp = plan.gpu.idle_w, plan.gpu.tdp_w
        energy_kwh = gpus * (idle_w * pool.count * end + (tdp - idle_w) * busy) / 3.6e6
        row: dict[str, Any] = {
            "pool": pool.name,
            "config": plan.config.key,
            "replicas": pool.count,
            "requests": len(g),
            "request_throughput": len(g) / max(result.makespan, 1e-9),
            "utilisation": float(r["utilisation"].mean()) if len(r) else 0.0,
            "mean_kv_frac": float(r["mean_kv_frac"].mean()) if len(r) else 0.0,
            "mean_queue": float(r["mean_queue"].sum()),
            "preemptions": int(r["preemptions"].sum()),
            "kv_tokens_per_replica": plan.kv_tokens,
            "gpu_hours": gpu_hours,
            "cost_usd": pool.count * plan.price_per_hour * end / 3600.0,
            "energy_kwh": energy_kwh,
            "carbon_g": energy_kwh * pool.grid_g_per_kwh,
            "profile": plan.profile.source,
        }
        for metric in ("ttft", "tpot", "e2e"):
            p = _pcts(g[metric].to_numpy())
            row[f"{metric}_p50_ms"] = p["p50"]
            row[f"{metric}_p99_ms"] = p["p99"]
        rows.append(row)
    return pd.DataFrame(rows)


def summary_dict(result: SimResult, pools: pd.DataFrame | None = None) -> dict[str, Any]:
    """Everything a script needs, JSON-ready (``pools``: a per-pool table to use instead of
    :func:`pool_summary`'s, e.g. one priced by the planner)."""
    return {
        "scenario": result.scenario,
        "seed": result.seed,
        "requests": len(result.requests),
        "makespan_s": result.makespan,
        "wall_s": result.wall_s,
        "classes": jsonable(class_summary(result).to_dict("records")),
        "pools": jsonable((pool_summary(result) if pools is None else pools).to_dict("records")),
    }


def jsonable(value: Any) -> Any:
    """``value`` (dicts and lists, recursively) with numpy scalars as Python ones and figures that are not
    finite as None: JSON has no Infinity or NaN."""
    if hasattr(value, "item") and not isinstance(value, float | int):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value
