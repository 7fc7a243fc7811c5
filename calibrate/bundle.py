"""Measurement bundles: what ``calibrate run`` writes and what profile fitting reads.

A bundle is a directory::

    bundle/
      manifest.json          # what was measured, how, on what, and which points are done
      points/rate-<r>.json   # one finished sweep point each (``<r>`` is the rate as written by ``%g``)
      server.log             # the vLLM server's stdout+stderr (appended on every resumed run)
      bench.log              # the stdout+stderr of every ``vllm bench serve`` run
      .work/                 # scratch space for a point in flight (safe to delete)

Every JSON file is written atomically (written to a temporary file, then ``os.replace``), so a crash or
Ctrl-C never leaves a half-written file: a point file exists only once its point finished.

``manifest.json`` (``format`` = :data:`FORMAT`, ``format_version`` = :data:`FORMAT_VERSION`):

``identity``
    everything that makes two runs comparable: model, tp, dtype, max_model_len, gpu_memory_utilization,
    prefix_caching (``"off"``: server started with ``--no-enable-prefix-caching``; ``"fresh-prompts"``:
    prefix caching on, every point drawn with its own seed), the dataset and arrival settings, the
    sweep settings and the extra server arguments.  Resuming into a bundle whose identity differs is
    refused.
``status``
    ``"running"``, ``"interrupted"``, ``"failed"`` or ``"complete"``.
``points``
    the finished points in the order they were run: ``{"index", "rate", "seed", "file"}``.
``server``
    ``command`` (the full ``vllm serve`` argv), ``env`` (the variables set for it), ``port``,
    ``kv_cache`` (what the engine reported: ``tokens``, ``blocks``, ``block_size``, where found).
``env``
    ``gpus`` (NVML names, count, driver, or ``"cpu"``), ``versions`` (vllm, flashinfer, torch, ...),
    ``python``, ``platform``, ``model_config`` (the architecture fields of config.json for a local model).
``sweep``
    ``knee`` (the rate bracket found, if any) and the plan settings.
``created``, ``updated``
    UTC ISO-8601 times.

``points/rate-<r>.json``:

``index``, ``rate``, ``seed``, ``burstiness``, ``num_prompts``
    the point's settings (``rate`` in requests/s of the Poisson or gamma arrival process).
``result``
    the JSON that ``vllm bench serve --save-result --save-detailed`` wrote, unchanged: request_rate,
    duration, completed, request_throughput, output_throughput, mean/median/p99 of ttft_ms, tpot_ms,
    itl_ms, e2el_ms, and the per-request arrays (input_lens, output_lens, ttfts, itls, ...).
``power``
    ``{"available": false, "reason": ...}`` or ``{"available": true, "method": "counter"|"integrated",
    "energy_j", "mean_w", "max_w", "samples", "duration_s", "gpus": [...]}``.
``metrics``
    summaries of the server's Prometheus gauges over the point (``{"mean", "max", "samples"}`` per
    gauge) and counter increases (preemptions, prefix-cache hits/queries, tokens).
``started``, ``finished``, ``wall_s``
    wall-clock bounds of the bench process.

:func:`load_bundle` reads a bundle for fitting; any missing or malformed file or field raises
:class:`BundleError` naming the file and the field.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scenarios.errors import FleetPlannerError

FORMAT = "fleet-planner/calibration-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
POINTS_DIR = "points"

_POINT_FIELDS = ("index", "rate", "seed", "result", "power", "metrics")
_RESULT_FIELDS = ("completed", "duration", "request_throughput")


class BundleError(FleetPlannerError):
    """A bundle file is missing or malformed, or a resume does not match the bundle."""


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def rate_label(rate: float) -> str:
    """The text used for ``rate`` in point file names (``rate-<label>.json``)."""
    if not rate > 0:
        raise ValueError(f"rate(={rate}) must be > 0")
    return f"{rate:g}"


def point_filename(rate: float) -> str:
    return f"{POINTS_DIR}/rate-{rate_label(rate)}.json"


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` through a temporary file and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1, sort_keys=False)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BundleError(f"{path}: file not found") from None
    except OSError as exc:
        raise BundleError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise BundleError(f"{path}: cannot read: not UTF-8 text (byte {exc.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BundleError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    except RecursionError:
        raise BundleError(f"{path}: JSON nested too deeply") from None


@dataclass
class Bundle:
    """A loaded bundle: the manifest and the finished points, in the order they were run."""

    path: Path
    manifest: dict[str, Any]
    points: list[dict[str, Any]] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.manifest.get("status") == "complete"


def _require(data: Any, key: str, where: str, kind: type | tuple[type, ...]) -> Any:
    if not isinstance(data, dict) or key not in data:
        raise BundleError(f"{where}: missing field '{key}'")
    value = data[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise BundleError(f"{where}: field '{key}' has the wrong type ({type(value).__name__})")
    return value


def validate_manifest(manifest: Any, where: str) -> dict[str, Any]:
    if not isinstance(manifest, dict):
        raise BundleError(f"{where}: expected a JSON object")
    fmt = _require(manifest, "format", where, str)
    if fmt != FORMAT:
        raise BundleError(f"{where}: field 'format' is {fmt!r}, expected {FORMAT!r}")
    version = _require(manifest, "format_version", where, int)
    if version > FORMAT_VERSION:
        raise BundleError(
            f"{where}: field 'format_version' is {version}; this fleet-planner reads up to {FORMAT_VERSION}"
        )
    _require(manifest, "identity", where, dict)
    _require(manifest, "status", where, str)
    points = _require(manifest, "points", where, list)
    for i, entry in enumerate(points):
        for key, kind in (("index", int), ("rate", (int, float)), ("seed", int), ("file", str)):
            _require(entry, key, f"{where}: points[{i}]", kind)
    return manifest


def validate_point(point: Any, where: str) -> dict[str, Any]:
    if not isinstance(point, dict):
        raise BundleError(f"{where}: expected a JSON object")
    for key in _POINT_FIELDS:
        if key not in point:
            raise BundleError(f"{where}: missing field '{key}'")
    _require(point, "rate", where, (int, float))
    result = _require(point, "result", where, dict)
    for key in _RESULT_FIELDS:
        _require(result, key, f"{where}: result", (int, float))
    power = _require(point, "power", where, dict)
    _require(power, "available", f"{where}: power", bool)
    _require(point, "metrics", where, dict)
    return point


def load_manifest(path: Path) -> dict[str, Any]:
    file = Path(path) / MANIFEST
    return validate_manifest(read_json(file), str(file))


def load_bundle(path: str | os.PathLike[str]) -> Bundle:
    """Read and check a bundle directory; raises :class:`BundleError` naming the bad file and field."""
    root = Path(path)
    if not root.is_dir():
        raise BundleError(f"{root}: not a bundle directory")
    manifest = load_manifest(root)
    points = []
    for entry in manifest["points"]:
        file = root / entry["file"]
        points.append(validate_point(read_json(file), str(file)))
    return Bundle(path=root, manifest=manifest, points=points)


class BundleWriter:
    """Creates or resumes a bundle directory and writes its files atomically.

    ``identity`` is compared with an existing manifest's: a mismatch raises :class:`BundleError` listing
    the fields that differ, so a resume never mixes two different measurements.
    """

    def __init__(self, root: str | os.PathLike[str], identity: dict[str, Any]) -> None:
        self.root = Path(root)
        self.identity = json.loads(json.dumps(identity))  # normalise tuples etc. to JSON types
        if self.root.exists() and not self.root.is_dir():
            raise BundleError(f"{self.root}: exists and is not a directory")
        self.manifest: dict[str, Any]
        self.points: list[dict[str, Any]] = []
        if (self.root / MANIFEST).exists():
            bundle = load_bundle(self.root)
            self._check_identity(bundle.manifest["identity"])
            self.manifest = bundle.manifest
            self.points = bundle.points
        else:
            if self.root.is_dir() and any(p.name not in (".work",) for p in self.root.iterdir()):
                raise BundleError(f"{self.root}: directory is not empty and holds no {MANIFEST}")
            now = utc_now()
            self.manifest = {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "identity": self.identity,
                "status": "new",
                "created": now,
                "updated": now,
                "points": [],
            }

    @property
    def resumed(self) -> bool:
        return bool(self.points) or self.manifest.get("status") != "new"

    def _check_identity(self, old: dict[str, Any]) -> None:
        keys = sorted(set(old) | set(self.identity))
        diffs = [
            f"{k}: bundle has {old.get(k)!r}, this run has {self.identity.get(k)!r}"
            for k in keys
            if old.get(k) != self.identity.get(k)
        ]
        if diffs:
            raise BundleError(
                f"{self.root / MANIFEST}: bundle was made with different settings; use another --out "
                "or repeat the original command. Differences: " + "; ".join(diffs)
            )

    @property
    def work_dir(self) -> Path:
        return self.root / ".work"

    def update(self, **fields: Any) -> None:
        """Set top-level manifest fields and rewrite the manifest."""
        self.manifest.update(fields)
        self.save()

    def save(self) -> None:
        self.manifest["updated"] = utc_now()
        write_json_atomic(self.root / MANIFEST, self.manifest)

    def add_point(self, point: dict[str, Any]) -> Path:
        """Write one finished point's file, then record it in the manifest."""
        validate_point(point, f"point at rate {point.get('rate')}")
        rel = point_filename(float(point["rate"]))
        if any(p["file"] == rel for p in self.manifest["points"]):
            raise BundleError(f"{self.root / rel}: a point at this rate is already in the bundle")
        write_json_atomic(self.root / rel, point)
        self.points.append(point)
        self.manifest["points"].append(
            {"index": point["index"], "rate": point["rate"], "seed": point["seed"], "file": rel}
        )
        self.save()
        return self.root / rel
