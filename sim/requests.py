"""The request table: per-request inputs, engine state and outcomes, in flat Python lists.

The simulator keeps one row per request.  Inputs (arrival time, class, prompt/output/cached
tokens) are copied from the :class:`~sim.traffic.Workload`; the replica engine writes the
outcomes (replica, first-token time, finish time, preemptions, rejection) and its own scratch
state (prefill progress, tokens generated, decode bookkeeping).  Flat lists are used instead of
objects because a million-request run touches them millions of times; :meth:`RequestTable.frame`
turns the outcomes into one typed record per request in a pandas DataFrame.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

NAN = math.nan
#: second key of the generator that draws the request-path latencies (the first is the run's seed): a
#: stream of its own, so the workload's draws stay the same whatever the latency spread
LATENCY_STREAM = 1


class RequestTable:
    """Column store of all requests of one simulation."""

    def __init__(
        self,
        arrival: np.ndarray,
        cls: np.ndarray,
        prompt: np.ndarray,
        output: np.ndarray,
        cached: np.ndarray,
        class_names: tuple[str, ...],
    ) -> None:
        n = len(arrival)
        for name, arr in (("cls", cls), ("prompt", prompt), ("output", output), ("cached", cached)):
            if len(arr) != n:
                raise ValueError(f"len({name})(={len(arr)}) must equal len(arrival)(={n})")
        if n and (int(np.min(prompt)) < 1 or int(np.min(output)) < 1):
            raise ValueError("prompt and output token counts must be >= 1")
        self.n = n
        self.class_names = class_names
        self.arrival: list[float] = arrival.tolist()
        self.cls: list[int] = cls.tolist()
        self.prompt: list[int] = prompt.tolist()
        self.output: list[int] = output.tolist()
        self.cached: list[int] = np.minimum(cached, prompt - 1).tolist()
        # outcomes
        self.replica: list[int] = [-1] * n
        self.first: list[float] = [NAN] * n
        self.finish: list[float] = [NAN] * n
        self.preempt: list[int] = [0] * n
        self.rejected: list[bool] = [False] * n
        # engine scratch state
        self.pf_total: list[int] = [0] * n
        self.pf_done: list[int] = [0] * n
        self.gen: list[int] = [0] * n
        self.join: list[int] = [0] * n
        self.epoch: list[int] = [0] * n

    def frame(self, pool_of_replica: list[str], class_names: tuple[str, ...] | None = None,
              latency: np.ndarray | None = None) -> pd.DataFrame:
        """One row per request: inputs, outcomes and derived latencies (seconds).

        ``latency``: each request's request-path latency outside the engine steps (HTTP, tokenisation,
        IPC, streaming: :func:`client_latency`).  The client sees the first token and the last that much
        after the engine produced them, so ``first_token`` and ``finish`` (and with them TTFT and E2E)
        include it, as in a replayed run (:func:`calibrate.replay.client_metrics`)."""
        names = list(class_names or self.class_names)
        replica = np.asarray(self.replica, dtype=np.int32)
        pool_names = list(dict.fromkeys(pool_of_replica))
        pool_code = np.array([*(pool_names.index(p) for p in pool_of_replica), -1], dtype=np.int32)
        arrival = np.asarray(self.arrival)
        first = np.asarray(self.first)
        finish = np.asarray(self.finish)
        if latency is not None:
            first = first + latency
            finish = finish + latency
        output = np.asarray(self.output, dtype=np.int64)
        ttft = first - arrival
        with np.errstate(invalid="ignore", divide="ignore"):
            tpot = np.where(output > 1, (finish - first) / np.maximum(output - 1, 1), np.nan)
        return pd.DataFrame(
            {
                "arrival": arrival,
                "cls": pd.Categorical.from_codes(np.asarray(self.cls), categories=names),
                "pool": pd.Categorical.from_codes(pool_code[replica], categories=pool_names),
                "replica": replica,
                "prompt_tokens": np.asarray(self.prompt, dtype=np.int64),
                "output_tokens": output,
                "cached_tokens": np.asarray(self.cached, dtype=np.int64),
                "first_token": first,
                "finish": finish,
                "ttft": ttft,
                "tpot": tpot,
                "e2e": finish - arrival,
                "preemptions": np.asarray(self.preempt, dtype=np.int32),
                "rejected": np.asarray(self.rejected, dtype=bool),
            }
        )


def client_latency(replica: Sequence[int] | np.ndarray, median: Sequence[float], spread: Sequence[float],
                   rng: np.random.Generator | None = None) -> np.ndarray:
    """Each request's request-path latency (seconds): its replica's profile's ``frontend_s`` (``median``,
    per replica) times ``exp(frontend_spread * z)`` with ``z`` standard normal, one draw per request from
    ``rng`` (needed only where a spread is not 0).  A rejected request (replica -1) gets 0."""
    idx = np.asarray(replica, dtype=np.int64)
    med = np.array([*median, 0.0])[idx]
    sd = np.array([*spread, 0.0])[idx]
    if not sd.any():
        return med
    if rng is None:
        raise ValueError("rng(=None): a request-path latency spread needs a random generator")
    return med * np.exp(sd * rng.standard_normal(len(idx)))
