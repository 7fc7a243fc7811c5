"""``calibrate show``: print a profile file readably — parameters, fit record, residuals."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from calibrate.bands import entry_axes
from calibrate.fitplan import read_profile_entries
from scenarios.cliutil import refuse_empty_paths
from scenarios.errors import FleetPlannerError
from sim.profiles import BUNDLED_DIR

#: profile field -> (unit scale, unit, meaning)
FIELDS: dict[str, tuple[float, str, str]] = {
    "mem_eff": (100.0, "%", "achieved share of peak memory bandwidth (weights)"),
    "compute_eff": (100.0, "%", "achieved share of peak FP16 throughput (prefill)"),
    "attn_eff": (100.0, "%", "achieved share of peak bandwidth reading KV cache"),
    "step_overhead_s": (1e3, "ms", "fixed cost per engine step"),
    "per_layer_s": (1e6, "us", "host launch time per layer and step (overlaps GPU work)"),
    "eager_factor": (1.0, "x", "host launch time per layer in steps beyond CUDA graphs (> 512 tokens by default)"),
    "per_seq_s": (1e6, "us", "cost per sequence in a step"),
    "comm_latency_s": (1e6, "us", "latency of one all-reduce between 2 GPUs (x log2 TP size)"),
    "comm_eff": (100.0, "%", "achieved share of the GPU link bandwidth in all-reduce"),
    "frontend_s": (1e3, "ms", "API-server latency added to TTFT (median)"),
    "frontend_spread": (1.0, "", "spread (log sigma) of that latency from request to request"),
    "memory_gb": (1.0, "GB", "memory per GPU as CUDA reports it"),
    "runtime_reserve_gb": (1.0, "GB", "memory per GPU kept out of the KV cache besides weights and activations"),
    "prefix_hit": (100.0, "%", "prefix-cache hit share in the fitted runs (information)"),
}

RESIDUAL_COLUMNS = (("request_throughput", "thr"), ("median_ttft_ms", "TTFT p50"), ("p90_ttft_ms", "TTFT p90"),
                    ("median_tpot_ms", "TPOT p50"), ("p90_tpot_ms", "TPOT p90"), ("median_itl_ms", "ITL p50"),
                    ("p99_itl_ms", "ITL p99"))

EPILOG = """\
examples:
  calibrate show profiles.yaml
  calibrate show h100-pcie            # a bundled profile (sim/profiles/h100-pcie.yaml)
  calibrate show profiles.yaml --no-residuals
"""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "show",
        help="print a fitted profile file: parameters, fit record, residuals",
        description="Print a hardware profile file (written by `calibrate fit`) readably.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("profile", metavar="PROFILE", help="profile YAML file, or the stem of a bundled one")
    p.add_argument("--no-residuals", action="store_true", help="leave out the per-run residual tables")
    p.set_defaults(func=run)


def locate(name: str) -> Path:
    p = Path(name)
    if p.exists():
        return p
    bundled = BUNDLED_DIR / f"{name}.yaml"
    if bundled.exists():
        return bundled
    have = ", ".join(sorted(f.stem for f in BUNDLED_DIR.glob("*.yaml")))
    raise FleetPlannerError(f"{name}: no such profile file, nor a bundled profile (bundled: {have or 'none'})")


def _fmt(v: Any, scale: float = 1.0) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else ""
    if isinstance(v, float):
        x = v * scale
        return f"{x:.3g}" if abs(x) < 100 else f"{x:,.0f}"
    return str(v)


#: data share below which a parameter is reported as set by its prior (:func:`calibrate.spread.parameter_spread`)
PRIOR_LED = 0.5


def _set_by_prior(v: Any) -> bool:
    share = v.get("data_share") if isinstance(v, dict) else None  # null reads as absent, as in check_record
    return isinstance(share, int | float) and share < PRIOR_LED


def _spread(v: Any) -> str:
    if not isinstance(v, dict) or not isinstance(v.get("pm_pct"), (int, float)):
        return ""
    if v.get("at_bound"):
        return "bound"
    if _set_by_prior(v):
        return "prior"
    x = float(v["pm_pct"])
    if math.isnan(x):
        return "-"
    return f"{x:.2g}%" if x < 10 else f"{x:.0f}%" if x < 999 else ">999%"


def _num(v: Any) -> str:
    """A record's number as written, "-" where null or NaN (what check_record lets through as absent)."""
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)


def _pct(v: Any) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    colour = "green" if abs(v) <= 10 else ("yellow" if abs(v) <= 25 else "red")
    return f"[{colour}]{v:+.1f}%[/]"


def _factor(move: float) -> str:
    # a log-space move as a factor; one beyond a thousandfold spans any parameter's bounds
    if abs(move) > math.log(1000.0):
        return "×>1000" if move > 0 else "×<1/1000"
    return f"×{math.exp(move):.3g}"


def show_entry(console: Console, entry: dict[str, Any], residuals: bool = True, source: str = "profile") -> None:
    """Print one profile entry (``source``: its file, for errors)."""
    fit = entry.get("fit") or {}
    title = f"{entry.get('gpus', 1)}x{entry.get('gpu')}"
    axes = entry_axes(entry, f"{source}: {title}")  # a malformed record fails before anything is printed
    console.rule(f"[bold]{title}[/]  {entry.get('source', '')}")
    spread = fit.get("spread") or {}
    t = Table(show_header=True, header_style="bold", title="parameters")
    for c in ("parameter", "value", "±1σ", "unit", "meaning"):
        t.add_column(c, justify="right" if c in ("value", "±1σ") else "left")
    for name, (scale, unit, meaning) in FIELDS.items():
        if name in entry:
            fitted = name in (fit.get("fitted") or [])
            t.add_row(f"{name}{' *' if fitted else ''}", _fmt(entry[name], scale), _spread(spread.get(name)),
                      unit, meaning)
    console.print(t)
    if fit:
        runs = fit.get("runs")
        console.print(f"fitted (*) on {'' if runs is None else f'{runs} '}runs of {', '.join(fit.get('models') or [])}")
        w = entry.get("fitted_weights_gb")
        if isinstance(w, list) and len(w) == 2:
            console.print(f"models' weights per GPU: {w[0]:g}-{w[1]:g} GB (predictions for models under half or "
                          f"over twice that range are extrapolations; `planner validate` says so)")
        if fit.get("derived_from"):
            console.print(f"derived from {fit['derived_from']}")
        unpinned = fit.get("unpinned") or []
        if unpinned:
            console.print(f"not pinned by any run (prior kept): {', '.join(unpinned)}")
        led = [str(k) for k, v in spread.items() if _set_by_prior(v) and k not in unpinned]
        if led:
            console.print(f"set by their priors, not by the runs (the data remove under {PRIOR_LED:.0%} of "
                          f"their spread; runs that exercise them would pin them): {', '.join(led)}")
        if spread:
            console.print("±1σ: approximate spread from the fit's Jacobian (runs' residual scatter only; "
                          "not model error)")
        if axes:
            moves = sorted(axes[0].moves.items(), key=lambda kv: -abs(kv[1]))
            longest = ", ".join(f"{k} {_factor(v)}" for k, v in moves if abs(v) >= 0.02)
            minus, plus = axes[0].reach
            console.print(f"{len(axes)} uncertainty axes (`planner validate --band` replays along them); the longest "
                          f"moves together (and the other way): {longest}; the runs allow {plus:.0%} of it this way, "
                          f"{minus:.0%} the other")
        eng = fit.get("engine") or {}
        console.print("engine limits replayed: " + ", ".join(f"{k}={v}" for k, v in eng.items()))
        names = fit.get("file_names") or []
        console.print(f"sources: {len(names)} file(s) in {', '.join(fit.get('files') or [])}: "
                      + ", ".join(names[:3]) + (f" (+{len(names) - 3} more)" if len(names) > 3 else ""))
        m = fit.get("mape_pct") or {}
        console.print("MAPE (outliers excluded): " + ", ".join(f"{k} {_num(v)}%" for k, v in m.items()))
        if fit.get("reserve_scan"):
            console.print("KV reserve scan (objective by GB): "
                          + ", ".join(f"{k}: {_num(v)}" for k, v in fit["reserve_scan"].items()))
    rows = entry.get("residuals") or []
    if residuals and rows:
        r = Table(title="residuals (predicted / measured - 1)", header_style="bold")
        for c in ("model", "rate", "hit", "out", *(label for _, label in RESIDUAL_COLUMNS)):
            r.add_column(c, justify="left" if c == "model" else "right")
        for row in sorted(rows, key=lambda x: (x.get("model", ""), -(x.get("rate") or 0))):
            r.add_row(str(row.get("model")), _fmt(row.get("rate")), _fmt(row.get("cache_hit")),
                      "[red]outlier[/]" if row.get("outlier") else "",
                      *(_pct(row.get(k)) for k, _ in RESIDUAL_COLUMNS))
        console.print(r)


def run(args: argparse.Namespace) -> int:
    refuse_empty_paths([("PROFILE", args.profile, "a profile .yaml file or a bundled profile's name")])
    path = locate(args.profile)
    entries = read_profile_entries(path)
    console = Console()
    console.print(f"[bold]{path}[/]: {len(entries)} profile(s)")
    for key in sorted(entries):
        show_entry(console, entries[key], residuals=not args.no_residuals, source=str(path))
    return 0
