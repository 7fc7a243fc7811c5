"""The seed paper's headline, reproduced by planning ``scenarios/paper-14b.yaml`` with its own prices.

Seed 000 (shared/seeds/000_*.txt) benchmarks DeepSeek-R1-Distill-Qwen-14B with vLLM 0.8.5 on one H100
PCIe and on a 2x RTX 4090 box (Table 2, 200 ShareGPT prompts per run, Poisson arrivals at 1-32 QPS, at
$2.00 per H100-hour and $0.25 per 4090-hour) and concludes: H100s for tight latency SLOs (sub-55 ms
p99 TTFT), 4090 pools for latency-tolerant traffic at a much lower cost per token.

1. Table 2, replayed: one replica of each configuration simulated under the paper's protocol (200
   requests, Poisson at the run's QPS, duration = first arrival to last completion, cost per run =
   price x duration, $/1M tokens = cost per run / prompt+output tokens), averaged over seeds, must land
   within :data:`REL_TOL` of the paper's token throughput and cost per million tokens.  Known
   differences, not fitted away: the paper's runs reused vLLM's prefix cache (same prompts at every
   QPS) and drew one arrival sequence; our lengths are ShareGPT-like lognormals, not the 200 prompts.
2. The headline: with the catalogue ``alternative-2025-05`` (seed 000 Table 1), a tight TTFT SLO
   makes the planner pick H100s only, a loose one 4090 boxes only, and the 4090 answer is cheaper per
   token even though the H100 fleet would meet the loose SLO too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import ROOT

from planner.pricing import gpu_cost
from planner.search import plan_fleet
from planner.variants import Candidate, candidate_scenario, scaled_traffic
from planner.verify import pool_runs, run_once
from scenarios.loader import LoadedScenario, load_scenario, scenario_from_dict
from sim.simulation import simulate

SCENARIO = ROOT / "scenarios" / "paper-14b.yaml"
H100, RTX = "1xH100-PCIe", "2xRTX-4090"

#: seed 000 Table 2 rows for the two configurations of paper-14b.yaml:
#: (configuration, QPS) -> (row #, token throughput tok/s, $ per 1M tokens, TTFT p90 ms)
TABLE_2: dict[tuple[str, int], tuple[int, float, float, float]] = {
    (H100, 1): (1, 433.76, 1.281, 43.12),
    (H100, 4): (5, 1411.84, 0.393, 44.95),
    (H100, 8): (9, 2240.95, 0.248, 46.65),
    (H100, 16): (13, 3011.13, 0.185, 50.38),
    (H100, 32): (17, 3097.79, 0.179, 152.56),
    (RTX, 1): (2, 430.51, 0.323, 649.22),
    (RTX, 4): (6, 1250.59, 0.111, 463.89),
    (RTX, 8): (10, 1500.34, 0.093, 571.83),
    (RTX, 16): (14, 1619.37, 0.086, 1571.76),
    (RTX, 32): (18, 1543.35, 0.090, 9049.16),
}
#: tolerance on each row's throughput and cost per token.  Observed when written: throughput 1-16% low,
#: cost per token 1-19% high (worst: #6); the simulator is fitted on these runs among ~50 others, and
#: lengths, prefix caching and the paper's single arrival draw (its QPS-1 runs took 192 s where 200
#: Poisson arrivals at 1/s take ~209 s on average) explain most of the rest.
REL_TOL = 0.25
PAPER_RUN_REQUESTS = 200
SEEDS = range(12)
#: the paper's SLO regimes: H100 holds p90 TTFT near 50 ms; 4090 boxes sit at 200-650 ms
TIGHT_TTFT_MS, LOOSE_TTFT_MS = 100.0, 2000.0


def paper_scenario(ttft_ms: float | None = None) -> LoadedScenario:
    """paper-14b.yaml with seed 000's prices and, optionally, another p90 TTFT bound; a small plan."""
    base = load_scenario(SCENARIO)
    data = base.scenario.model_dump(mode="json", exclude_none=True, exclude_unset=True)
    data["pricing"] = {"catalogue": "alternative-2025-05"}
    if ttft_ms is not None:
        data["traffic"]["classes"][0]["slo"] = {"ttft_ms": ttft_ms, "percentile": 90}
    data["plan"] = {"max_total_replicas": 4, "seeds": 2, "requests": 1500, "verify_top": 2}
    return scenario_from_dict(data, path=SCENARIO)


def replay_table_2_run(loaded: LoadedScenario, config: str, qps: int) -> dict[str, float]:
    """One Table 2 run simulated: one replica, 200 requests at ``qps``, averaged over :data:`SEEDS`."""
    one = candidate_scenario(loaded, Candidate(((config, 1),), "least_outstanding"))
    run = scaled_traffic(one, qps / loaded.scenario.traffic.classes[0].rate)
    cfg = loaded.scenario.config_by_key()[config]
    price = gpu_cost(loaded.scenario, cfg.gpu, loaded.base_dir).usd_per_hour * cfg.gpus
    durations, tokens, ttft_p90 = [], [], []
    for seed in SEEDS:
        res = simulate(run, seed=seed, requests=PAPER_RUN_REQUESTS, samples=0)
        done = res.requests[res.requests["finish"].notna() & ~res.requests["rejected"]]
        assert len(done) == PAPER_RUN_REQUESTS
        durations.append(res.makespan)
        tokens.append(float(done["prompt_tokens"].sum() + done["output_tokens"].sum()))
        ttft_p90.append(float(np.percentile(done["ttft"] * 1000, 90)))
    duration, toks = float(np.mean(durations)), float(np.mean(tokens))
    return {
        "tps": toks / duration,
        "usd_per_mtok": price * duration / 3600 / toks * 1e6,
        "ttft_p90_ms": float(np.mean(ttft_p90)),
    }


@pytest.fixture(scope="module")
def replayed() -> dict[tuple[str, int], dict[str, float]]:
    loaded = paper_scenario()
    return {key: replay_table_2_run(loaded, *key) for key in TABLE_2}


def test_seed_prices_are_the_papers() -> None:
    s = paper_scenario().scenario
    assert gpu_cost(s, "H100-PCIe", Path(".")).usd_per_hour == 2.00
    assert gpu_cost(s, "RTX-4090", Path(".")).usd_per_hour == 0.25


@pytest.mark.parametrize("key", list(TABLE_2), ids=[f"#{v[0]}-{k[0]}-qps{k[1]}" for k, v in TABLE_2.items()])
def test_table_2_throughput_and_cost_per_token(replayed: dict[tuple[str, int], dict[str, float]],
                                               key: tuple[str, int]) -> None:
    row, tps, usd, _ = TABLE_2[key]
    got = replayed[key]
    assert got["tps"] == pytest.approx(tps, rel=REL_TOL), f"Table 2 #{row} tok/s"
    assert got["usd_per_mtok"] == pytest.approx(usd, rel=REL_TOL), f"Table 2 #{row} $/1M tokens"


def test_table_2_shape(replayed: dict[tuple[str, int], dict[str, float]]) -> None:
    for qps in (1, 4, 8, 16, 32):
        h100, rtx = replayed[(H100, qps)], replayed[(RTX, qps)]
        # the 4090 box is cheaper per token at every load (paper: 2-4x) ...
        assert rtx["usd_per_mtok"] < 0.75 * h100["usd_per_mtok"], qps
        # ... and slower to the first token (paper: 464-9049 ms vs 43-153 ms p90)
        assert rtx["ttft_p90_ms"] > 2 * h100["ttft_p90_ms"], qps
        if qps <= 16:
            assert h100["ttft_p90_ms"] < TIGHT_TTFT_MS < rtx["ttft_p90_ms"], qps
    # the H100 carries about twice the 4090 box's tokens at saturation (paper: 3098 vs 1543 at QPS 32)
    ratio = replayed[(H100, 32)]["tps"] / replayed[(RTX, 32)]["tps"]
    assert ratio == pytest.approx(3097.79 / 1543.35, rel=REL_TOL)


def _only(verdict: Any, config: str) -> bool:
    return verdict.candidate.replicas() > 0 and verdict.candidate.replicas() == verdict.candidate.count(config)


def test_tight_slo_picks_h100_loose_slo_picks_4090_and_is_cheaper_per_token() -> None:
    tight_s, loose_s = paper_scenario(TIGHT_TTFT_MS), paper_scenario(LOOSE_TTFT_MS)
    tight, loose = plan_fleet(tight_s), plan_fleet(loose_s)
    assert tight.recommended is not None and loose.recommended is not None
    assert _only(tight.recommended, H100), tight.message()
    assert _only(loose.recommended, RTX), loose.message()
    # the 4090 fleets were cheaper and were simulated under the tight SLO: they missed it
    cheaper = [v for v in tight.verified if _only(v, RTX)]
    assert cheaper and not any(v.feasible for v in cheaper)
    # the H100 answer would meet the loose SLO as well, at a higher cost per token than the 4090 answer
    seeds = [loose_s.scenario.simulation.seed + i for i in range(2)]
    h100_loose = pool_runs(tight.recommended.candidate,
                           [run_once(loose_s, tight.recommended.candidate, s, 1500) for s in seeds], 0.95)
    assert h100_loose.feasible
    usd_rtx = loose.recommended.economics["total"]["usd_per_mtok"]
    usd_h100 = h100_loose.economics["total"]["usd_per_mtok"]
    assert usd_rtx < 0.75 * usd_h100
    # per-token costs at the planned loads sit near the paper's chosen operating points (#13, #6)
    assert tight.recommended.economics["total"]["usd_per_mtok"] == pytest.approx(0.185, rel=0.3)
    assert usd_rtx == pytest.approx(0.111, rel=0.3)
