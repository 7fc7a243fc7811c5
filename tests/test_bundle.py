"""Bundle format: atomic writes, loading with file/field errors, and resume (identity checks)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from calibrate.bundle import MANIFEST, BundleError, BundleWriter, load_bundle, point_filename
from calibrate.runner.orchestrate import outcomes
from calibrate.sweep import SweepConfig, next_rate

IDENTITY = {"model": "/models/tiny", "tp": 1, "prefix_caching": "off", "load": {"num_prompts": 30}}


def point(index: int, rate: float, throughput: float | None = None) -> dict[str, Any]:
    n = 30
    return {
        "index": index,
        "rate": rate,
        "seed": 1000 + index,
        "result": {"num_prompts": n, "completed": n, "duration": n / rate,
                   "request_throughput": throughput if throughput is not None else n / ((n - 1) / rate + 0.5),
                   "median_ttft_ms": 20.0, "median_e2el_ms": 500.0, "ttfts": [0.02] * n},
        "power": {"available": False, "reason": "no NVML"},
        "metrics": {"available": True, "gauges": {}, "counters": {}},
    }


def test_write_and_load_roundtrip(tmp_path: Path) -> None:
    w = BundleWriter(tmp_path / "b", IDENTITY)
    assert not w.resumed
    w.update(status="running")
    w.add_point(point(0, 1.0))
    w.add_point(point(1, 2.0))
    w.update(status="complete")
    b = load_bundle(tmp_path / "b")
    assert b.complete and [p["rate"] for p in b.points] == [1.0, 2.0]
    assert b.manifest["points"][1] == {"index": 1, "rate": 2.0, "seed": 1001, "file": "points/rate-2.json"}
    assert (tmp_path / "b" / "points" / "rate-2.json").is_file()
    assert not list((tmp_path / "b").rglob("*.tmp"))  # no temporary files left behind


def test_resume_continues_the_sweep_without_redoing_points(tmp_path: Path) -> None:
    cfg = SweepConfig(start_rate=1, refine=1)
    w = BundleWriter(tmp_path, IDENTITY)
    w.update(status="running")
    for i, r in enumerate([1.0, 2.0]):
        w.add_point(point(i, r))
    w.update(status="interrupted")  # as after Ctrl-C

    again = BundleWriter(tmp_path, IDENTITY)
    assert again.resumed and [p["rate"] for p in again.points] == [1.0, 2.0]
    state = next_rate(outcomes(again.points), cfg)
    assert state.next_rate == 4.0  # the next rate, not 1 again
    with pytest.raises(BundleError, match="already in the bundle"):
        again.add_point(point(2, 2.0))


def test_resume_with_different_settings_is_refused(tmp_path: Path) -> None:
    BundleWriter(tmp_path, IDENTITY).update(status="interrupted")
    with pytest.raises(BundleError) as err:
        BundleWriter(tmp_path, {**IDENTITY, "tp": 2})
    assert "different settings" in str(err.value) and "tp: bundle has 1, this run has 2" in str(err.value)


def test_non_bundle_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(BundleError, match="not empty"):
        BundleWriter(tmp_path, IDENTITY)


def test_load_errors_name_file_and_field(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="not a bundle directory"):
        load_bundle(tmp_path / "missing")
    with pytest.raises(BundleError, match=r"manifest\.json: file not found"):
        load_bundle(tmp_path)
    w = BundleWriter(tmp_path, IDENTITY)
    w.add_point(point(0, 1.0))
    pfile = tmp_path / "points" / "rate-1.json"
    data = json.loads(pfile.read_text())
    del data["result"]["request_throughput"]
    pfile.write_text(json.dumps(data))
    with pytest.raises(BundleError, match=r"rate-1\.json: result: missing field 'request_throughput'"):
        load_bundle(tmp_path)
    pfile.write_text("{broken")
    with pytest.raises(BundleError, match=r"rate-1\.json: not valid JSON"):
        load_bundle(tmp_path)
    pfile.unlink()
    with pytest.raises(BundleError, match=r"rate-1\.json: file not found"):
        load_bundle(tmp_path)
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    del manifest["identity"]
    (tmp_path / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=r"manifest\.json: missing field 'identity'"):
        load_bundle(tmp_path)


def test_newer_format_version_is_refused(tmp_path: Path) -> None:
    w = BundleWriter(tmp_path, IDENTITY)
    w.update(format_version=99)
    with pytest.raises(BundleError, match="format_version"):
        load_bundle(tmp_path)


def test_point_file_names() -> None:
    assert point_filename(4.0) == "points/rate-4.json"
    assert point_filename(11.3) == "points/rate-11.3.json"
    with pytest.raises(ValueError, match=r"rate\(=0\)"):
        point_filename(0)
