"""The honest fidelity test: leave-one-model-out on the published vLLM runs (../shared/measurements).

For every single-GPU configuration with two or more models, a profile is fitted on all other models
and predicts the held-out model's runs from its config.json alone.  Three seeds and a smaller evaluation
budget than ``scripts/fidelity_table.py`` (four seeds) keep it near four minutes on two cores; the
script's figures are the ones the README reports.  (Two seeds proved too few: the 1.5B fold's TPOT moved
between 13 % and 23 % with the seeds, and the six-model figure across the 8 % line.)

What holds and what does not (README "Fidelity"):

* 1xH100-PCIe, six models: request throughput and median TPOT <= 8 %, median and p90 TTFT <= 15 %
  MAPE.  Median TPOT holds since a step streams every weight but the input embedding table (counting
  it put the fold at ~9 %).  The 1.5B is the documented gap: without it in the fit nothing pins the
  host's per-layer cost that makes its decode step launch-bound, so its held-out TPOT is 13-25 % low;
  the other five models are within ~6 %.  (p90 TTFT holds at 16-32 req/s too since the
  fitted runtime reserve no longer goes below the CUDA context's 0.25 GB: QwQ-32B's context then does
  not fit at gpu_memory_utilization 0.9 in its fold either, so the replay raises it as the published
  server must have.)
* 1xRTX-4090, two models whose runs disagree on the host: the 1.5B's 11.4 ms step needs a host
  launch cost that the 8B's 19.5 ms step (about all weight streaming) hides completely, so a fit on
  the 8B alone cannot tell it for the 1.5B (TPOT ~56 % low).  The other way round the firm prior on
  achieved weight bandwidth carries the 8B's TPOT within ~10 % below saturation, and the 1.5B's
  cold-cache runs, whose big steps run without CUDA graphs (``eager_factor``), no longer drag the
  compute efficiency down to half (0.62 against 0.87 with both models; 0.48 before; 0.67 while the
  simulator's ITL read 0.5 % high: the 1.5B barely pins it).  The 1.5B's runs
  hardly pin it at all (fits with it held at 0.55 or 0.87 match them as well; ``fit.spread``: +-30 %
  or more), and the 8B's prefills, which it sets, decide its saturation.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from calibrate import fidelity
from calibrate.fitplan import FitOptions, resolve_points
from calibrate.importer import load_runs
from calibrate.validation import mape

pytestmark = pytest.mark.slow

_CACHE: dict[str, list[dict]] = {}


@pytest.fixture
def lomo_records(shared_measurements: Path) -> list[dict]:
    """The held-out predictions (computed once per session; the fixture skips without ../shared)."""
    if "records" not in _CACHE:
        points = resolve_points(load_runs([shared_measurements], client_seed=42))
        points = [p for p in points if p.run.gpu_count == 1]
        _CACHE["records"] = fidelity.lomo(points, FitOptions(seeds=(0, 1, 2), max_nfev=20), workers=2)
    return _CACHE["records"]


def _subset(records: list[dict], config: str) -> list[dict]:
    return [r for r in records if fidelity.config_of(r) == config]


def test_lomo_h100_meets_targets(lomo_records: list[dict]) -> None:
    h100 = _subset(lomo_records, "1xH100-PCIe")
    assert len({r["model_id"] for r in h100}) == 6 and len(h100) == 35
    assert mape(h100, "request_throughput") <= 8.0
    assert mape(h100, "median_ttft_ms") <= 15.0
    assert mape(h100, "p90_ttft_ms") <= 15.0
    below_saturation = [r for r in h100 if r["request_rate"] <= 8]
    assert mape(below_saturation, "median_tpot_ms") <= 8.0
    assert mape(h100, "median_tpot_ms") <= 8.0


def test_lomo_h100_documented_gaps(lomo_records: list[dict]) -> None:
    h100 = _subset(lomo_records, "1xH100-PCIe")
    small = [r for r in h100 if "1.5B" in r["model_id"]]
    assert mape(small, "median_tpot_ms") <= 25.0  # the 1.5B fold (see module docstring)
    others = [r for r in h100 if "1.5B" not in r["model_id"]]
    assert mape(others, "median_tpot_ms") <= 6.0


def test_lomo_rtx4090_documented_gap(lomo_records: list[dict]) -> None:
    rtx = _subset(lomo_records, "1xRTX-4090")
    assert len({r["model_id"] for r in rtx}) == 2
    assert mape(rtx, "request_throughput") <= 22.0
    assert mape(rtx, "median_tpot_ms") <= 56.0
    eight_b = [r for r in rtx if "8B" in r["model_id"] and r["request_rate"] <= 8]
    assert mape(eight_b, "median_tpot_ms") <= 18.0  # weight streaming, from the bandwidth prior
    low = [r for r in rtx if r["request_rate"] <= 8]
    assert mape(low, "median_ttft_ms") <= 15.0
