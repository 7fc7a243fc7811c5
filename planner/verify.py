"""Verifying a candidate fleet by simulation, with several seeds and a confidence interval.

Each (candidate, seed) run yields, per traffic class and SLO bound, the share of requests within
the bound and the percentile the SLO names.  A candidate is *feasible* when, pooled over its
seeds, every share reaches its target (``slo.percentile``), and the fleet keeps up with the load: where
the runs are long enough to tell (:func:`sim.stability.backlog_growth`), the requests in the fleet must
not grow by more than :data:`sim.stability.GROWTH_LIMIT` of the arrival rate over the seeds' mean, or a
short run could pass a fleet whose queue grows without end.  The confidence interval on each
class's attainment (all bounds met) is the wider of a Student-t interval over seeds and a Wilson
interval over the pooled requests.

Runs are cached in a JSON Lines state file as soon as they finish, keyed by a hash of the scenario and
the profiles, GPU specs, measured power and price list it resolves to, so an interrupted ``planner plan``
resumes where it stopped and nothing is recomputed, while a changed profile (or price list) is.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from planner.costing import Economics, fleet_economics
from planner.footprint import power_kind
from planner.measured import measured_power
from planner.pricing import load_catalogue
from planner.variants import Candidate, candidate_scenario
from scenarios.errors import FleetPlannerError
from scenarios.loader import LoadedScenario
from sim.profiles import resolve_profile
from sim.results import class_summary
from sim.service import profile_gpu
from sim.simulation import simulate
from sim.stability import GROWTH_LIMIT, scenario_growth, stationary

#: bumped when a run record's content changes, so state files written by older code are not reused
#: (3: simulated TTFT and E2E include the profiles' request-path latency; all-reduce latency x log2 TP;
#: 4: per-class rejected counts)
RECORD_VERSION = 4


def _price_list(loaded: LoadedScenario) -> Any:
    """The price list the scenario names, as data (None where it cannot be read: no rented GPU needs it)."""
    try:
        return asdict(load_catalogue(loaded.scenario.pricing.catalogue, loaded.base_dir))
    except FleetPlannerError:
        return None


def scenario_hash(loaded: LoadedScenario, requests: int | None) -> str:
    """Key of a state file's records: the scenario (all fields, defaults included), the GPU specs (with the
    memory the simulator sizes each KV cache from), step-time profiles and measured power its serving
    configurations resolve to and the prices of its price list (so a refitted profile file, an edited
    hardware or price-list file or upgraded bundled profiles do not reuse runs simulated or priced under
    the old ones), run length, model."""
    scenario = loaded.scenario
    gpus = scenario.gpu_catalogue()
    measured = power_kind(scenario) == "measured"
    resolved = []
    for c in scenario.configs:
        prof = resolve_profile(c.gpu, c.gpus, c.profile, loaded.base_dir)
        power = measured_power(c, loaded.base_dir) if measured else None
        # the GPU as simulated: with the memory its KV cache is sized from (the profile's, else its driver's)
        resolved.append([asdict(profile_gpu(gpus[c.gpu], prof)), prof.to_dict(), asdict(power) if power else None])
    text = (json.dumps([scenario.model_dump(mode="json"), resolved, _price_list(loaded)], sort_keys=True)
            + f"|{requests}|{loaded.model}|record-v{RECORD_VERSION}")
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class StateFile:
    """Append-only JSON Lines cache of simulation runs (one line per candidate and seed)."""

    def __init__(self, path: Path | None, digest: str) -> None:
        self.path = path
        self.digest = digest
        self.runs: dict[tuple[str, int], dict[str, Any]] = {}
        self._torn = False
        """Whether the file ends in a line a kill cut short: the next run starts a line of its own."""
        if path is not None and path.exists():
            text = path.read_text(errors="replace")
            self._torn = bool(text) and not text.endswith("\n")
            for line in text.splitlines():
                try:
                    rec = json.loads(line)
                    if isinstance(rec, dict) and rec.get("scenario") == digest:
                        self.runs[(str(rec["key"]), int(rec["seed"]))] = rec
                except (ValueError, KeyError, TypeError):
                    continue  # a line cut short by a kill, or not a run of this file's: recomputed

    def get(self, key: str, seed: int) -> dict[str, Any] | None:
        return self.runs.get((key, seed))

    def put(self, rec: dict[str, Any]) -> None:
        rec = {"scenario": self.digest, **rec}
        self.runs[(rec["key"], int(rec["seed"]))] = rec
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a") as fh:
                fh.write(("\n" if self._torn else "") + json.dumps(rec) + "\n")
                self._torn = False
                fh.flush()
                os.fsync(fh.fileno())


def run_once(loaded: LoadedScenario, cand: Candidate, seed: int, requests: int | None) -> dict[str, Any]:
    """Simulate a candidate with one seed; return the JSON-ready record the planner needs."""
    variant = candidate_scenario(loaded, cand)
    result = simulate(variant, seed=seed, requests=requests, samples=0)
    classes = class_summary(result)
    econ = fleet_economics(result, variant)
    rec_classes: dict[str, Any] = {}
    df = result.requests[~result.requests["warmup"]]  # as class_summary: warm-up requests left out
    for row in classes.to_dict("records"):
        name = str(row["class"])
        if name == "ALL":
            continue
        slo = variant.scenario.traffic.classes[[c.name for c in variant.scenario.traffic.classes].index(name)].slo
        g = df[df["cls"] == name]
        metrics = {}
        for metric, bound in (("ttft", slo.ttft_ms), ("tpot", slo.tpot_ms), ("e2e", slo.e2e_ms)):
            if bound is None:
                continue
            vals = g[metric].to_numpy() * 1000.0
            vals = np.where(
                g["rejected"].to_numpy(), np.inf, np.nan_to_num(vals, nan=0.0 if metric == "tpot" else np.inf)
            )
            with np.errstate(invalid="ignore"):  # between two unbounded values (inf - inf): unbounded
                value = float(np.percentile(vals, slo.percentile)) if len(vals) else math.inf
            metrics[metric] = {
                "bound_ms": bound,
                "share": float(np.mean(vals <= bound)) if len(vals) else 0.0,
                "value_ms": math.inf if math.isnan(value) else value,
            }
        rec_classes[name] = {
            "n": int(row["requests"]),
            "rejected": int(row["rejected"]),
            "attainment": float(row["slo_attainment"]),
            "target": slo.percentile / 100.0,
            "metrics": metrics,
            "ttft_p50_ms": row["ttft_p50_ms"],
            "ttft_p99_ms": row["ttft_p99_ms"],
            "tpot_p50_ms": row["tpot_p50_ms"],
            "e2e_p99_ms": row["e2e_p99_ms"],
        }
    growth = scenario_growth(result.requests, variant.scenario)
    return {
        "key": cand.key,
        "seed": seed,
        "classes": rec_classes,
        "growth": None if growth is None else growth.share,
        "growth_unjudged": None if growth else "short" if stationary(variant.scenario) else "trace",
        "economics": econ.to_dict(),
        "utilisation": {p: float(u) for p, u in result.replicas.groupby("pool")["utilisation"].mean().items()},
        "kv_use": {p: float(u) for p, u in result.replicas.groupby("pool")["mean_kv_frac"].mean().items()},
    }


@dataclass
class Verdict:
    """Pooled outcome of a candidate's runs."""

    candidate: Candidate
    runs: list[dict[str, Any]]
    feasible: bool
    margin: float
    """Smallest (share - target) over all classes and bounds: >= 0 when feasible."""
    worst: str
    """The bound that is missed by most (or met most narrowly)."""
    attainment: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    """Class -> (mean, low, high) share of requests meeting all its bounds."""
    overshoot: float = 0.0
    """Largest achieved / bound ratio over all classes and bounds (inf: unbounded): which of two fleets
    that meet no request's bound (the same margin) comes closer."""
    unverified: list[str] = field(default_factory=list)
    """Classes that had no request in any of the runs (a share too small for the run length): their SLOs
    were not judged, and the verdict holds for the other classes only."""
    growth: float | None = None
    """Growth of the requests in the fleet over the second half of the arrivals, as a share of the arrival
    rate, mean over the seeds whose runs were long enough to tell (None: none was); over
    :data:`sim.stability.GROWTH_LIMIT` the fleet does not keep up and is not feasible."""

    @property
    def keeps_up(self) -> bool:
        return self.growth is None or self.growth <= GROWTH_LIMIT

    @property
    def growth_unjudged(self) -> str | None:
        """Why no run judged whether the fleet keeps up: ``"short"`` (too few requests, or requests too long,
        for the window :func:`sim.stability.backlog_growth` needs), ``"trace"`` (arrivals replayed from a
        trace); None where some run judged it."""
        if self.growth is not None:
            return None
        reasons = [r.get("growth_unjudged") for r in self.runs]
        return "trace" if "trace" in reasons else "short" if "short" in reasons else None

    @property
    def rejected(self) -> dict[str, tuple[int, int]]:
        """Class -> (requests rejected, requests) over all runs, for the classes with rejections (prompts
        longer than a replica's max_model_len or its KV cache can hold: never served)."""
        out = {}
        for name in self.runs[0]["classes"]:
            per = [r["classes"][name] for r in self.runs]
            if (n := sum(int(p.get("rejected", 0)) for p in per)) > 0:
                out[name] = (n, sum(int(p["n"]) for p in per))
        return out

    @property
    def economics(self) -> dict[str, Any]:
        return _mean_economics([r["economics"] for r in self.runs])


def _mean_economics(items: list[dict[str, Any]]) -> dict[str, Any]:
    first = items[0]

    def avg(dicts: list[dict[str, Any]]) -> dict[str, Any]:
        """Mean hourly rates; the per-million-token figures from them (all seeds' cost over all their tokens,
        as the rates beside them say, not a mean of each seed's ratio), where any tokens were served."""
        out = dict(dicts[0])
        for k, v in dicts[0].items():
            if isinstance(v, float):
                vals = [d[k] for d in dicts if d.get(k) is not None]
                out[k] = sum(vals) / len(vals) if vals else None
        rates = {f.name: out[f.name] for f in fields(Economics) if f.name in out}
        return {**out, **Economics(**rates).to_dict()} if len(rates) == len(fields(Economics)) else out

    return {
        "pools": [avg([it["pools"][i] for it in items]) for i in range(len(first["pools"]))],
        "total": avg([it["total"] for it in items]),
    }


def _interval(values: list[float], n_total: int, confidence: float) -> tuple[float, float, float]:
    mean = float(np.mean(values))
    z = stats.norm.ppf(0.5 + confidence / 2)
    denom = 1 + z * z / max(n_total, 1)
    centre = (mean + z * z / (2 * max(n_total, 1))) / denom
    half = z * math.sqrt(mean * (1 - mean) / max(n_total, 1) + z * z / (4 * max(n_total, 1) ** 2)) / denom
    lo, hi = centre - half, centre + half
    if len(values) > 1:
        t = stats.t.ppf(0.5 + confidence / 2, len(values) - 1) * float(np.std(values, ddof=1)) / math.sqrt(len(values))
        lo, hi = min(lo, mean - t), max(hi, mean + t)
    return mean, max(lo, 0.0), min(hi, 1.0)


def _mean(values: list[Any]) -> float | None:
    vals = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    return sum(vals) / len(vals) if vals else None


def pooled_classes(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per class, a fleet's runs pooled as its verdict and the report judge them: requests and rejections summed over
    the seeds, each bound's share within and achieved percentile (and the class's attainment) their mean."""
    out = {}
    for name, first in runs[0]["classes"].items():
        per = [r["classes"][name] for r in runs]
        out[name] = {
            **{k: _mean([p.get(k) for p in per]) for k in first if k not in ("n", "rejected", "target", "metrics")},
            "n": sum(int(p["n"]) for p in per),
            "rejected": sum(int(p.get("rejected", 0)) for p in per),
            "target": first["target"],
            "metrics": {m: {"bound_ms": b["bound_ms"],
                            "share": float(np.mean([p["metrics"][m]["share"] for p in per])),
                            "value_ms": float(np.mean([p["metrics"][m]["value_ms"] for p in per]))}
                        for m, b in first["metrics"].items()},
        }
    return out


def pool_runs(cand: Candidate, runs: list[dict[str, Any]], confidence: float) -> Verdict:
    """Combine a candidate's per-seed runs into a :class:`Verdict` (each bound judged on
    :func:`pooled_classes`)."""
    margin, worst, overshoot = math.inf, "no SLO bounds", 0.0
    attainment, unverified = {}, []
    for name, cls in pooled_classes(runs).items():
        if cls["n"] == 0:
            unverified.append(name)
            continue
        attainment[name] = _interval([r["classes"][name]["attainment"] for r in runs], cls["n"], confidence)
        for metric, m in cls["metrics"].items():
            share, value = m["share"], m["value_ms"]
            overshoot = max(overshoot, value / float(m["bound_ms"]))
            if share - cls["target"] < margin:
                margin = share - cls["target"]
                worst = describe_bound(name, metric, cls["target"], share, value, float(m["bound_ms"]))
    judged = [float(r["growth"]) for r in runs if r.get("growth") is not None]
    growth = float(np.mean(judged)) if judged else None
    verdict = Verdict(cand, runs, margin >= 0, margin, worst, attainment, overshoot, unverified, growth)
    if not verdict.keeps_up:
        verdict.feasible = False
        verdict.worst = (f"a steady state (the requests in the fleet grew by {growth:.0%} of the arrival rate over "
                         f"the runs' second halves: the fleet does not keep up, and its latencies keep rising past "
                         f"what these runs show)")
    return verdict


def describe_bound(cls: str, metric: str, target: float, share: float, value_ms: float, bound_ms: float) -> str:
    """One SLO bound in words; a missed one says by how much (``chat p90 TTFT by 53 ms (...)``)."""
    pct = round(target * 100, 2)
    what = f"{cls} p{pct:g} {metric.upper()}"
    value = f"{value_ms:,.0f} ms" if math.isfinite(value_ms) else "unbounded (requests rejected or unfinished)"
    detail = f"{value} vs bound {bound_ms:,.0f} ms; {share * 100:.1f}% of requests within, target {pct:g}%"
    if share >= target:
        return f"{what} {detail}"
    if math.isfinite(value_ms) and value_ms > bound_ms:
        gap = f"{value_ms - bound_ms:,.0f} ms"
    else:
        gap = f"{(target - share) * 100:.1f} percentage points of requests"
    return f"{what} by {gap} ({detail})"
