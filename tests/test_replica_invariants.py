"""Invariants of the replica engine under arbitrary small workloads (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
import simpy
from conftest import run_arrivals
from hypothesis import given, settings
from hypothesis import strategies as st

from scenarios.catalog import GPUS, MODELS
from sim.replica import ITL_BINS, Replica
from sim.requests import RequestTable
from sim.service import ConstantStepModel, HardwareProfile, StepTimeModel

MODEL = StepTimeModel(MODELS["meta-llama/Meta-Llama-3-8B-Instruct"], GPUS["RTX-4090"], HardwareProfile("RTX-4090"), 1)


@st.composite
def workloads(draw: st.DrawFn) -> tuple[np.ndarray, ...]:
    n = draw(st.integers(1, 40))
    gaps = draw(st.lists(st.floats(0, 0.5), min_size=n, max_size=n))
    prompt = draw(st.lists(st.integers(1, 600), min_size=n, max_size=n))
    output = draw(st.lists(st.integers(1, 300), min_size=n, max_size=n))
    hit = draw(st.floats(0, 0.9))
    p = np.asarray(prompt, dtype=np.int64)
    return (np.cumsum(gaps), p, np.asarray(output, dtype=np.int64), (p * hit).astype(np.int64))


@settings(max_examples=60, deadline=None)
@given(
    w=workloads(),
    kv_tokens=st.integers(700, 20_000),
    max_seqs=st.integers(1, 16),
    budget=st.integers(16, 1024),
)
def test_engine_invariants(w: tuple[np.ndarray, ...], kv_tokens: int, max_seqs: int, budget: int) -> None:
    arrival, prompt, output, cached = w
    n = len(arrival)
    table = RequestTable(arrival, np.zeros(n, np.int32), prompt, output, cached, ("x",))
    env = simpy.Environment()
    hist = [[0.0] * ITL_BINS]
    rep = Replica(
        env,
        0,
        0,
        MODEL,
        table,
        kv_tokens=kv_tokens,
        max_num_seqs=max_seqs,
        max_num_batched_tokens=max(budget, max_seqs),
        max_model_len=10_000,
        block_size=16,
        itl_hist=hist,
        outs=[0],
    )

    run_arrivals(env, rep.arrive, arrival)
    first, finish = np.asarray(table.first), np.asarray(table.finish)
    rejected = np.asarray(table.rejected)
    # every request either finishes or is rejected, never both; nothing is left inside the replica
    assert np.all(np.isfinite(finish) != rejected)
    assert rep.outstanding == 0 and not rep.running and not rep.waiting and rep.n_dec == 0
    assert rep.ctx_sum == 0 and rep.pf_sum == 0
    # rejection is exactly "can never fit"
    assert np.array_equal(rejected, prompt + output > rep.max_len)
    ok = ~rejected
    assert np.all(first[ok] >= arrival[ok]) and np.all(finish[ok] >= first[ok])
    # tokens out equal tokens requested; ITL histogram counts every decode token exactly once
    assert rep.tokens_out == int(output[ok].sum())
    decode_tokens = int((output[ok] - 1).sum())
    preempted = int(np.asarray(table.preempt).sum())
    # (a resumed request's recompute step yields one token outside the decode steps)
    assert decode_tokens - preempted - 1e-6 <= sum(hist[0]) <= decode_tokens + 1e-6
    assert rep.completed == int(ok.sum())


@pytest.mark.parametrize(("seconds", "end"), [(200.0, -1), (1e-6, 0)])
def test_steps_beyond_the_itl_histograms_range_land_in_its_end_bins(seconds: float, end: int) -> None:
    # the histogram spans 6 us .. 148 s per step; a what-if far slower (or faster) must not fall off it
    from calibrate.replay import EngineSettings, run_engine

    n = 3
    _, hist, _ = run_engine(ConstantStepModel(seconds), np.zeros(n), np.ones(n, np.int64), np.full(n, 5, np.int64),
                            np.zeros(n, np.int64), kv_tokens=10**6, settings=EngineSettings(256, 4096),
                            max_model_len=10**6)
    h = np.asarray(hist).reshape(-1, ITL_BINS)
    assert h.sum() == n * 4 and h[:, end].sum() == n * 4
