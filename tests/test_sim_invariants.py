"""Invariants and metamorphic relations of the simulator, beyond test_replica_invariants' end-state checks.

Every engine step is checked as it is planned (KV room, ``max_num_seqs``, the token budget, chunks no
larger than what is left of a prompt); macro steps must give what stepping one decode at a time gives;
the ITL histogram must sum to the gaps between tokens; scaling arrivals and step times together must
scale every time; and the fleet's latencies must move the right way with replicas, speed and load.
All runs use fixed seeds (hypothesis derandomized), so a failure is a bug, never chance.
"""

from __future__ import annotations

import heapq
import itertools
import math
from typing import Any

import numpy as np
import pytest
import simpy
from conftest import make_scenario, run_arrivals
from hypothesis import given, settings
from hypothesis import strategies as st

from scenarios.catalog import GPUS, MODELS
from scenarios.loader import LoadedScenario, scenario_from_dict
from sim.replica import ITL_BINS, ITL_OFFSET, ITL_SCALE, MACRO, MIXED, Replica
from sim.requests import RequestTable
from sim.results import class_summary, itl_percentiles
from sim.service import ConstantStepModel, HardwareProfile, StepTimeModel, causal_pairs
from sim.simulation import simulate

MODEL = StepTimeModel(MODELS["meta-llama/Meta-Llama-3-8B-Instruct"], GPUS["RTX-4090"], HardwareProfile("RTX-4090"), 1)


class CheckedReplica(Replica):
    """A replica that checks every step it plans against the engine's limits (first violation kept)."""

    violation: str | None = None

    def _schedule(self, dur: float, callback: object) -> None:
        t = self.table
        problems = []
        if len(self.running) > self.max_seqs:
            problems.append(f"{len(self.running)} running > max_num_seqs {self.max_seqs}")
        if self.state == MIXED:
            chunked = sum(c for _, c in self._chunks)
            if chunked + self.n_dec > self.budget:
                problems.append(f"{chunked + self.n_dec} tokens > max_num_batched_tokens {self.budget}")
            problems += [f"chunk {c} of request {rid} outside 1..{t.pf_total[rid] - t.pf_done[rid]} (left)"
                         for rid, c in self._chunks if not 1 <= c <= t.pf_total[rid] - t.pf_done[rid]]
            kv_end = self.kv_used + chunked + self.n_dec
        else:
            assert self.state == MACRO
            kv_end = self.kv_used + self._n * self.n_dec
        if kv_end > self.kv_tokens:
            problems.append(f"KV in use at the step's end {kv_end} > capacity {self.kv_tokens}")
        if not dur > 0:
            problems.append(f"step of {dur} s")
        if problems and self.violation is None:
            self.violation = f"t={self.env.now:.6f}: " + "; ".join(problems)
        super()._schedule(dur, callback)


class StepwiseReplica(CheckedReplica):
    """The same engine, one decode step per event: what the macro steps must reproduce."""

    def _macro(self) -> None:
        heap, epoch = self.heap, self.table.epoch
        while heap[0][2] != epoch[heap[0][1]]:
            heapq.heappop(heap)
        first = self.model.base(self.n_dec, self.n_dec) + self.model.kv_coef * self.ctx_sum
        self._first, self._n, self.state = first, 1, MACRO
        self._schedule(first, self._end_macro)


def run_replica(arrival: Any, prompt: Any, output: Any, cached: Any, *, kv_tokens: int = 10**6, max_seqs: int = 16,
                budget: int = 512, model: StepTimeModel = MODEL, cls: type[Replica] = CheckedReplica,
                block_size: int = 16) -> tuple[Any, RequestTable, list[list[float]]]:
    n = len(arrival)
    table = RequestTable(np.asarray(arrival, np.float64), np.zeros(n, np.int32), np.asarray(prompt, np.int64),
                         np.asarray(output, np.int64), np.asarray(cached, np.int64), ("x",))
    env = simpy.Environment()
    hist = [[0.0] * ITL_BINS]
    rep = cls(env, 0, 0, model, table, kv_tokens=kv_tokens, max_num_seqs=max_seqs,
              max_num_batched_tokens=max(budget, max_seqs), max_model_len=10**6, block_size=block_size,
              itl_hist=hist, outs=[0])
    run_arrivals(env, rep.arrive, np.asarray(arrival, np.float64))
    return rep, table, hist


@st.composite
def workloads(draw: st.DrawFn) -> tuple[np.ndarray, ...]:
    n = draw(st.integers(1, 30))
    gaps = draw(st.lists(st.floats(0, 0.3), min_size=n, max_size=n))
    prompt = np.asarray(draw(st.lists(st.integers(1, 900), min_size=n, max_size=n)), np.int64)
    output = np.asarray(draw(st.lists(st.integers(1, 300), min_size=n, max_size=n)), np.int64)
    hit = draw(st.sampled_from([0.0, 0.5, 0.9]))
    return np.cumsum(gaps), prompt, output, (prompt * hit).astype(np.int64)


# ------------------------------------------------------------------ every step within the engine's limits
@settings(max_examples=150, deadline=None, derandomize=True)
@given(w=workloads(), kv_tokens=st.integers(600, 6000), max_seqs=st.integers(1, 12), budget=st.integers(16, 700),
       block_size=st.sampled_from([1, 16, 32]))
def test_every_step_respects_kv_capacity_seq_limit_and_token_budget(
    w: tuple[np.ndarray, ...], kv_tokens: int, max_seqs: int, budget: int, block_size: int
) -> None:
    arrival, prompt, output, cached = w
    rep, table, _ = run_replica(arrival, prompt, output, cached, kv_tokens=kv_tokens, max_seqs=max_seqs,
                                budget=budget, block_size=block_size)
    assert rep.violation is None
    assert rep.kv_used == 0 and rep.outstanding == 0
    done = np.isfinite(np.asarray(table.finish))
    assert np.array_equal(done, ~np.asarray(table.rejected))
    assert rep.completed == done.sum() and rep.tokens_out == int(output[done].sum())


def test_prefix_cached_tokens_take_kv_room_when_a_request_is_admitted() -> None:
    # A decodes, holding 600+ of 1000 KV tokens; B's prompt is 450 tokens, 400 of them prefix-cached, so it
    # needs 450+ tokens of KV and cannot fit beside A.  (It was admitted as if it needed only its 50
    # uncached ones, went over capacity, was preempted, readmitted, ... once per decode step of A, and got
    # its "first token" long before it could have had one.)
    rep, table, _ = run_replica([0.0, 0.5], [600, 450], [200, 10], [0, 400], kv_tokens=1000, max_seqs=4)
    assert rep.violation is None
    assert rep.preemptions == 0
    assert table.first[1] >= table.finish[0]


# ------------------------------------------------------------------ macro steps = single steps
@settings(max_examples=60, deadline=None, derandomize=True)
@given(w=workloads(), kv_tokens=st.integers(1500, 20_000), max_seqs=st.integers(1, 12), budget=st.integers(16, 900))
def test_macro_steps_give_what_single_decode_steps_give(
    w: tuple[np.ndarray, ...], kv_tokens: int, max_seqs: int, budget: int
) -> None:
    arrival, prompt, output, cached = w
    kw: dict[str, Any] = {"kv_tokens": kv_tokens, "max_seqs": max_seqs, "budget": budget}
    macro, a, _ = run_replica(arrival, prompt, output, cached, **kw)
    single, b, _ = run_replica(arrival, prompt, output, cached, cls=StepwiseReplica, **kw)
    np.testing.assert_allclose(a.first, b.first, rtol=0, atol=1e-9)
    np.testing.assert_allclose(a.finish, b.finish, rtol=0, atol=1e-9)
    assert (macro.steps, macro.preemptions) == (single.steps, single.preemptions)
    assert macro.busy_time == pytest.approx(single.busy_time, abs=1e-9)


# ------------------------------------------------------------------ a request alone, by hand
@pytest.mark.parametrize(("prompt", "output", "cached", "budget"),
                         [(100, 50, 0, 512), (1500, 30, 0, 512), (1500, 30, 700, 512), (5, 1, 0, 16),
                          (2000, 200, 1999, 64), (700, 1, 300, 128)])
def test_a_lone_request_takes_its_chunked_prefill_then_one_step_per_token(
    prompt: int, output: int, cached: int, budget: int
) -> None:
    rep, table, _ = run_replica([0.0], [prompt], [output], [cached], budget=budget)
    now, done, steps = 0.0, cached, 0
    while done < prompt:  # chunks of at most the budget, after the prefix-cached tokens
        chunk = min(prompt - done, budget)
        now += MODEL.step(chunk, 1, done, causal_pairs(chunk, done))
        done, steps = done + chunk, steps + 1
    assert table.first[0] == pytest.approx(now, rel=1e-12)
    for k in range(output - 1):
        now += MODEL.step(1, 1, prompt + 1 + k)
    assert table.finish[0] == pytest.approx(now, rel=1e-12)
    assert rep.steps == steps + output - 1 == math.ceil((prompt - cached) / budget) + output - 1


# ------------------------------------------------------------------ the ITL histogram
def test_itl_percentiles_of_a_constant_step_are_that_step() -> None:
    # every gap between tokens is 20 ms: the histogram's percentiles are within half a bin (0.25 %) of it
    n = 20
    _, _, hist = run_replica(np.arange(n) * 0.5, np.full(n, 10), np.full(n, 30), np.zeros(n),
                             model=ConstantStepModel(0.02))
    h = np.asarray(hist[0])
    assert h.sum() == n * 29
    half_bin = math.exp(0.5 / ITL_SCALE) - 1
    for key in ("mean", "p50", "p99"):
        assert itl_percentiles(h)[key] == pytest.approx(20.0, rel=half_bin)


def test_itl_histogram_sums_to_the_gaps_between_tokens() -> None:
    # without preemption every gap of every request is one engine step it decoded in: the histogram
    # (macro steps spread over two bins) must add up to sum(finish - first token) within its resolution
    rng = np.random.default_rng(4)
    n = 200
    arrival = np.cumsum(rng.exponential(0.03, n))
    prompt, output = rng.integers(1, 1500, n), rng.integers(1, 400, n)
    rep, table, hist = run_replica(arrival, prompt, output, np.zeros(n), max_seqs=32, budget=2048)
    assert rep.preemptions == 0
    h = np.asarray(hist[0])
    centres = np.exp((np.arange(ITL_BINS) - ITL_OFFSET + 0.5) / ITL_SCALE)
    gaps = float(np.sum(np.asarray(table.finish) - np.asarray(table.first)))
    assert h.sum() == int((output - 1).sum())
    assert float((h * centres).sum()) == pytest.approx(gaps, rel=0.001)


# ------------------------------------------------------------------ queueing theory: M/D/1
def test_md1_waiting_time_matches_pollaczek_khinchine() -> None:
    # one slot, constant step, every request 1 prompt token + 40 output tokens: deterministic service of
    # 40 steps, so the mean wait is lambda S^2 / (2 (1 - rho)), half that of M/M/1 (CV^2 = 0)
    step, tokens, rho, n = 0.001, 40, 0.7, 40_000
    service = tokens * step
    lam = rho / service
    arrival = np.cumsum(np.random.default_rng(8).exponential(1 / lam, n))
    _, table, _ = run_replica(arrival, np.ones(n), np.full(n, tokens), np.zeros(n), max_seqs=1, budget=16,
                              model=ConstantStepModel(step))
    first, finish = np.asarray(table.first), np.asarray(table.finish)
    wait = first - step - arrival
    np.testing.assert_allclose(finish - first, (tokens - 1) * step, rtol=1e-9)
    assert wait.min() >= -1e-9
    assert wait.mean() == pytest.approx(lam * service**2 / (2 * (1 - rho)), rel=0.05)


# ------------------------------------------------------------------ whole simulations
def scenario(*, count: int = 2, rate: float = 10.0, routing: str = "least_outstanding", scale: float = 1.0,
             rtx: int = 0, arrival: dict[str, Any] | None = None, hit: float = 0.0) -> LoadedScenario:
    cls = {"name": "chat", "rate": rate, "prefix_cache_hit": hit, "arrival": arrival or {"type": "poisson"},
           "prompt_tokens": {"type": "lognormal", "mean": 400, "sigma": 0.8, "min": 1, "max": 4000},
           "output_tokens": {"type": "lognormal", "mean": 200, "sigma": 0.8, "min": 1, "max": 2000},
           "slo": {"ttft_ms": 500, "percentile": 90}}
    pools = [{"config": "1xH100-PCIe", "count": count, "name": "h100"}]
    if rtx:
        pools.append({"config": "1xRTX-4090", "count": rtx, "name": "rtx"})
    return make_scenario(traffic={"classes": [cls]}, routing={"type": routing}, fleet={"pools": pools},
                         configs=[{"gpu": "H100-PCIe", "step_time_scale": scale},
                                  {"gpu": "RTX-4090", "max_model_len": 4096, "step_time_scale": scale}])


ARRIVAL_TYPES = [{"type": "gamma", "burstiness": 0.3},
                 {"type": "diurnal", "amplitude": 0.8, "period_s": 60.0, "peak_s": 10.0},
                 {"type": "piecewise", "steps": [{"start_s": 0, "factor": 1.0}, {"start_s": 10, "factor": 3.0}],
                  "period_s": 30.0}]


@pytest.mark.parametrize("routing", ["round_robin", "least_outstanding", "least_kv_load", "cost_aware",
                                     "carbon_aware"])
def test_same_seed_same_numbers_under_every_policy_and_the_workload_ignores_the_policy(routing: str) -> None:
    a = simulate(scenario(routing=routing, rtx=1, hit=0.3), seed=9, requests=300).requests
    b = simulate(scenario(routing=routing, rtx=1, hit=0.3), seed=9, requests=300).requests
    ref = simulate(scenario(rtx=1, hit=0.3), seed=9, requests=300).requests
    assert a.equals(b)
    for col in ("arrival", "prompt_tokens", "output_tokens", "cached_tokens"):
        np.testing.assert_array_equal(a[col].to_numpy(), ref[col].to_numpy())


@pytest.mark.parametrize("arrival", ARRIVAL_TYPES, ids=lambda a: a["type"])
def test_same_seed_same_numbers_for_every_arrival_process(arrival: dict[str, Any]) -> None:
    a = simulate(scenario(arrival=arrival), seed=4, requests=300)
    b = simulate(scenario(arrival=arrival), seed=4, requests=300)
    assert a.requests.equals(b.requests) and a.replicas.equals(b.replicas)
    np.testing.assert_array_equal(a.itl_hist, b.itl_hist)


def test_trace_replay_is_deterministic_and_keeps_the_traces_times(tmp_path: Any) -> None:
    times = np.round(np.cumsum(np.random.default_rng(2).exponential(0.1, 200)), 6)
    (tmp_path / "t.csv").write_text("timestamp,prompt,output\n" + "".join(
        f"{t},{100 + i % 7},{1 + i % 50}\n" for i, t in enumerate(times)))
    cls = {"name": "chat", "arrival": {"type": "trace", "path": str(tmp_path / "t.csv"), "time_column": "timestamp",
                                       "prompt_column": "prompt", "output_column": "output"},
           "prompt_tokens": {"type": "trace"}, "output_tokens": {"type": "trace"}, "slo": {"ttft_ms": 500}}
    loaded = make_scenario(traffic={"classes": [cls]})
    a, b = simulate(loaded, seed=1, requests=200).requests, simulate(loaded, seed=2, requests=200).requests
    assert a.equals(b)  # nothing random left: the seed does not matter
    np.testing.assert_allclose(a["arrival"], times - times[0])
    assert list(a["output_tokens"]) == [1 + i % 50 for i in range(200)]


def test_arrivals_and_step_times_scaled_together_scale_every_time() -> None:
    # twice the step time (and request-path latency) at half the rate: the same run in slow motion
    fast = simulate(scenario(rate=12.0, rtx=1), seed=6, requests=600).requests
    slow = simulate(scenario(rate=6.0, rtx=1, scale=2.0), seed=6, requests=600).requests
    np.testing.assert_array_equal(fast["replica"], slow["replica"])
    for col in ("arrival", "first_token", "finish"):
        np.testing.assert_allclose(2 * fast[col].to_numpy(), slow[col].to_numpy(), rtol=1e-9)


def latencies(loaded: LoadedScenario, requests: int = 1200) -> tuple[float, float, float]:
    """p90 TTFT, p50 TPOT and p50 end-to-end latency (ms) at seed 1."""
    s = class_summary(simulate(loaded, seed=1, requests=requests)).iloc[0]
    return s["ttft_p90_ms"], s["tpot_p50_ms"], s["e2e_p50_ms"]


@pytest.mark.parametrize("routing", ["round_robin", "least_outstanding", "least_kv_load"])
def test_more_replicas_never_make_latency_much_worse(routing: str) -> None:
    runs = [latencies(scenario(count=c, rate=25.0, routing=routing)) for c in (1, 2, 3)]
    for fewer, more in itertools.pairwise(runs):
        assert all(m <= f * 1.05 for f, m in zip(fewer, more, strict=True)), runs


def test_slower_hardware_never_makes_latency_better() -> None:
    runs = [latencies(scenario(rate=15.0, scale=s)) for s in (1.0, 1.3, 2.0)]
    for faster, slower in itertools.pairwise(runs):
        assert all(s >= f for f, s in zip(faster, slower, strict=True)), runs


def test_lower_load_never_raises_p90_ttft_much() -> None:
    runs = [latencies(scenario(count=1, rate=r))[0] for r in (30.0, 20.0, 10.0, 5.0)]
    assert all(low <= high * 1.05 for high, low in itertools.pairwise(runs)), runs


# ------------------------------------------------------------------ routing
def test_policies_only_use_replicas_that_exist_and_affinity_never_spills_below_its_threshold() -> None:
    base = scenario(count=2, rtx=2, rate=30.0).scenario.model_dump(mode="json", exclude_none=True)
    base["fleet"]["pools"].append({"config": "1xRTX-4090", "count": 0, "name": "idle"})
    for routing in ({"type": "round_robin"}, {"type": "least_kv_load"}, {"type": "cost_aware", "headroom": 1e6},
                    {"type": "class_affinity", "affinity": {"chat": ["idle", "rtx"]}, "spill_threshold": 1e6}):
        df = simulate(scenario_from_dict(dict(base, routing=routing)), seed=2, requests=400).requests
        assert set(df["replica"]) <= {0, 1, 2, 3} and "idle" not in set(df["pool"]), routing
        if routing["type"] == "class_affinity":  # never full below 1e6 x max_num_seqs: all on rtx
            assert set(df["pool"]) == {"rtx"}
        if routing["type"] == "cost_aware":  # never out of headroom: all on the cheapest per capacity
            assert df["pool"].nunique() == 1
