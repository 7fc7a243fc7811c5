"""Checks of the runs ``calibrate fit`` and ``planner validate`` are about to replay, and of a fit's outcome.

Before any replay starts, every run must be replayable as its file describes it: the server settings it
replays with (its file's or bundle's, ``--engine``, else vLLM 0.8.5's defaults) must be settings a server
can have, its dataset must allow its token totals, and its requests must fit the context the replayed server
takes (the model's ``max_position_embeddings`` or the server's ``max_model_len``) where the measured server
completed them: a replay that refuses them predicts no throughput, a number with no meaning (``planner
validate`` checks the settings here and reports the others per run, as runs it could not replay).  After a fit,
a configuration none of whose runs replays under the fitted profile (a KV cache of no blocks, say) is an
error naming why, rather than a profile file of NaN residuals.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from calibrate.fit import FitPoint
from calibrate.fitplan import FitInputError
from calibrate.replay import context_error, engine_settings, replay
from calibrate.workload import LengthModel, run_workload
from sim.profiles import profile_fields
from sim.service import HardwareProfile


def check_replayable(points: Sequence[FitPoint], seed: int, lengths: LengthModel, *, runs_too: bool = True) -> None:
    """Refuse, naming the run, one whose server settings cannot be replayed; with ``runs_too`` also one whose
    lengths its dataset cannot have or whose requests do not fit the context (``planner validate`` reports
    those per run, as runs it could not replay)."""
    for p in points:
        run = p.run
        try:
            settings = engine_settings(run)
        except ValueError as exc:
            raise FitInputError(f"{run.place}: server settings: {exc} (as the file records them, else --engine, "
                                "else vLLM 0.8.5's defaults for the GPU)") from None
        if not runs_too:
            continue
        try:
            _, prompt, output = run_workload(run, seed, lengths)
        except ValueError as exc:
            raise FitInputError(f"{run.place}: {exc}") from None
        if why := context_error(run, p.model, settings, prompt, output):
            raise FitInputError(f"{run.place}: {why}")


def unreplayable(entry: dict[str, Any], group: Sequence[FitPoint], seeds: Sequence[int],
                 lengths: LengthModel) -> str | None:
    """Why no run of ``group`` replays under the profile ``entry`` holds (its fit's error figures are all
    missing), or None where one does."""
    mape = (entry.get("fit") or {}).get("mape_pct") or {}
    if any(isinstance(v, int | float) and math.isfinite(v) for v in mape.values()):
        return None
    profile = HardwareProfile.from_dict(profile_fields(entry))
    for p in group:
        try:
            replay(p.run, p.model, p.gpu, profile, seeds=seeds[:1], lengths=lengths)
        except (ValueError, RuntimeError) as exc:
            return str(exc)
    return None
