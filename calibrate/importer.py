"""Importing measurements: vLLM benchmark result files and calibration bundles as :class:`MeasuredRun`.

Two sources describe a measured run of a vLLM server under load:

* result files of vLLM's own client (``vllm bench serve`` / ``benchmarks/benchmark_serving.py``
  with ``--save-result``): one JSON object per run, a JSON list of them, or JSON Lines (one run per
  line, e.g. repeats of a point).  Summary fields (``request_rate``, ``duration``, ``completed``,
  ``total_input_tokens``, ``median_ttft_ms`` ...) are always there; the per-request arrays
  (``input_lens``, ``output_lens``, ``ttfts``, ``itls``) only with ``--save-detailed``.  The hardware
  is named by ``--metadata`` keys ``gpu_name`` / ``gpu_count`` (or given on the command line).
* bundles written by ``calibrate run`` (a directory, read with :func:`calibrate.bundle.load_bundle`):
  every point carries the client's result JSON plus what the server reported (KV-cache size, engine
  limits in its command line, GPU names, the model's config.json fields).

Either way a run becomes one :class:`MeasuredRun`: the offered load (rate, burstiness, prompts), the
token totals or per-request lengths, the measured metrics under vLLM's own field names, and what is
known about the server (engine limits, KV capacity, prefix caching).  Runs of one server session are
linked (:attr:`MeasuredRun.session`, :attr:`MeasuredRun.order`): the published sweeps ran rates from
high to low against one server with the same prompts, so every run but the first met a warm prefix
cache.  A bad file, a missing/ill-typed field, or fields no run can have together (fewer tokens than completed
requests, a rate too low for the duration) raise :class:`ImportFailed` naming file, line and field
(``file: line N: field ...``).  A run given twice (the same record again, in one file or two) counts once.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from calibrate.datasets import dataset_hint
from calibrate.repeats import Repeats
from calibrate.resultfields import (
    GPU_RANGE,
    ImportFailed,
    check_pace,
    check_totals,
    clip,
    count_field,
    gpu_count_field,
    gpus_in_range,
    int_list,
    metrics_from_arrays,
    num_field,
    place_of,
    send_times,
)
from scenarios.catalog import normalise_gpu_name
from scenarios.traffic import MAX_REQUESTS

#: metric fields as vLLM's client writes them (ms, or per second for throughputs)
METRICS = (
    "request_throughput", "output_throughput", "total_token_throughput",
    "mean_ttft_ms", "median_ttft_ms", "p90_ttft_ms", "p99_ttft_ms",
    "mean_tpot_ms", "median_tpot_ms", "p90_tpot_ms", "p99_tpot_ms",
    "mean_itl_ms", "median_itl_ms", "p90_itl_ms", "p99_itl_ms",
)
#: per-request arrays of ``--save-detailed`` (seconds / tokens)
ARRAYS = ("input_lens", "output_lens", "ttfts", "itls")


@dataclass(frozen=True)
class MeasuredRun:
    """One measured run (one load point) of one vLLM server."""

    file: str
    """File (or bundle point file) it came from."""
    where: str
    """File and line (``file:N``) or list index (``file:[i]``) it came from: the run's name, which also seeds
    its replay's random streams (:mod:`calibrate.workload`); messages write it as :attr:`place`."""
    model_id: str
    gpu_name: str
    """As written in the file (e.g. ``NVIDIA-H100-PCIe``)."""
    gpu: str
    """Catalogue name (``H100-PCIe``), or ``gpu_name`` unchanged when it is not in the catalogue."""
    gpu_count: int
    request_rate: float
    """Offered rate, requests/s (``inf``: all at once)."""
    burstiness: float
    num_prompts: int
    completed: int
    duration: float
    total_input_tokens: int
    total_output_tokens: int
    metrics: dict[str, float]
    input_lens: tuple[int, ...] | None = None
    output_lens: tuple[int, ...] | None = None
    date: str = ""
    max_concurrency: int | None = None
    prefix_caching: str = "auto"
    """``auto`` (infer from the session), ``off`` (server ran without it) or ``fresh`` (new prompts)."""
    engine: dict[str, Any] = field(default_factory=dict)
    """Known server settings: max_num_seqs, max_num_batched_tokens, gpu_memory_utilization,
    max_model_len, kv_cache_tokens, gpu_memory_bytes."""
    model_config: dict[str, Any] | None = None
    session: str = ""
    """Runs with the same session ran one after another against one server with the same prompts."""
    order: int = 0
    """Position in the session (0: the first, cold-cache run)."""
    client_seed: int | None = None
    """``--seed`` of vLLM's client when known: its arrival times can then be reconstructed exactly."""
    send_times: tuple[float, ...] | None = None
    """When the client sent each request, seconds from the first send (newer ``vllm bench serve``
    writes ``start_times`` with ``--save-detailed``): the measured schedule, replayed as it was."""
    dataset: str = "auto"
    """Where the prompts came from (:mod:`calibrate.datasets`): how a totals-only run's lengths are spread."""

    @property
    def place(self) -> str:
        """Where it came from as messages name it: ``file: line N``, ``file: [i]`` or the file."""
        return place_of(self.where, self.file)

    @property
    def hardware_key(self) -> tuple[str, int]:
        return (self.gpu, self.gpu_count)

    @property
    def short_model(self) -> str:
        return self.model_id.rstrip("/").split("/")[-1]

    def label(self) -> str:
        return f"{self.short_model} {self.gpu_count}x{self.gpu} @{self.request_rate:g}/s"


# ------------------------------------------------------------------------------------ parsing
def parse_result(
    data: Any,
    where: str,
    *,
    file: str | None = None,
    gpu_name: str | None = None,
    gpu_count: int | None = None,
    model_id: str | None = None,
    dataset: str | None = None,
) -> MeasuredRun:
    """One vLLM result object as a :class:`MeasuredRun` (``gpu_name`` etc. override/fill the file's).

    ``where``: the file, with ``:N`` for a line of JSON Lines or ``:[i]`` for a list item (messages name it
    as ``file: line N`` / ``file: [i]``, :func:`calibrate.resultfields.place_of`)."""
    at = place_of(where, file or where)
    if not isinstance(data, dict):
        raise ImportFailed(f"{at}: expected a JSON object (a vLLM benchmark result)")
    rate = num_field(data, "request_rate", at, finite=False) or 0.0  # vLLM writes inf for "all at once"
    if not rate > 0:
        raise ImportFailed(f"{at}: field 'request_rate' must be > 0 (got {rate})")
    completed = count_field(data, "completed", at) or 0
    duration = num_field(data, "duration", at) or 0.0
    if completed < 1 or not duration > 0:
        raise ImportFailed(f"{at}: fields 'completed'(={completed}) and 'duration'(={duration}) must be > 0")
    inputs = int_list(data, "input_lens", at)
    outputs = int_list(data, "output_lens", at)
    if inputs is not None and outputs is not None and len(inputs) != len(outputs):
        raise ImportFailed(f"{at}: fields 'input_lens' and 'output_lens' must have one entry per request "
                           f"(got {len(inputs)} and {len(outputs)})")
    for key in ("ttfts", "itls"):
        if inputs is not None and isinstance(data.get(key), list) and len(data[key]) != len(inputs):
            raise ImportFailed(f"{at}: field '{key}' has {len(data[key])} entries but 'input_lens' has "
                               f"{len(inputs)}")
    tin = count_field(data, "total_input_tokens", at, required=inputs is None)
    tout = count_field(data, "total_output_tokens", at, required=outputs is None)
    total_in = tin if tin is not None else sum(inputs or ())
    total_out = tout if tout is not None else sum(outputs or ())
    num_prompts = count_field(data, "num_prompts", at, required=False, least=1) or len(inputs or ()) or completed
    if max(num_prompts, completed) > MAX_REQUESTS:  # a replay draws every request: beyond this, no memory holds it
        raise ImportFailed(f"{at}: fields 'num_prompts'(={num_prompts}) and 'completed'(={completed}) must be "
                           f"<= {MAX_REQUESTS:,}")
    if completed > num_prompts:
        raise ImportFailed(f"{at}: field 'completed'(={completed}) must be <= the requests sent "
                           f"('num_prompts'={num_prompts})")
    check_totals(at, completed, {"total_input_tokens" if tin is not None else "input_lens": total_in,
                                 "total_output_tokens" if tout is not None else "output_lens": total_out})
    name = gpu_name or data.get("gpu_name")
    for key in ("gpu_name", "model_id", "date"):  # the date orders a server session's runs (prefix cache)
        if data.get(key) is not None and not isinstance(data[key], str):
            raise ImportFailed(f"{at}: field '{key}' must be text (got {clip(data[key])})")
    if not isinstance(name, str) or not name.strip():
        raise ImportFailed(f"{at}: missing field 'gpu_name' (add --metadata gpu_name=... when "
                           "benchmarking, or give --gpu)")
    count = gpu_count if gpu_count is not None else gpu_count_field(data, "gpu_count", at)
    if count is None:
        count = gpu_count_field(data, "tensor_parallel_size", at) or 1
    if not gpus_in_range(count):  # (given on the command line or by a bundle; a file's own is checked above)
        raise ImportFailed(f"{at}: field 'gpu_count' must be {GPU_RANGE} (got {count})")
    model = model_id or data.get("model_id") or data.get("model")
    if not isinstance(model, str) or not model:
        raise ImportFailed(f"{at}: missing field 'model_id'")
    metrics = metrics_from_arrays(data, at)
    for key in METRICS:
        value = num_field(data, key, at, required=False, finite=False)
        if value is not None and value < 0:
            raise ImportFailed(f"{at}: field '{key}' must be >= 0 (got {clip(data[key])})")
        if value is not None and math.isfinite(value):  # a NaN percentile (no samples) is no measurement
            metrics[key] = value
    if "request_throughput" not in metrics:
        metrics["request_throughput"] = completed / duration
    burst = num_field(data, "burstiness", at, required=False)
    if burst is not None and not burst > 0:
        raise ImportFailed(f"{at}: field 'burstiness' must be > 0 (got {clip(data['burstiness'])}; 1 is Poisson)")
    check_pace(at, rate, burst or 1.0, num_prompts, duration)
    conc = count_field(data, "max_concurrency", at, required=False, least=1)
    return MeasuredRun(
        file=file or where, where=where, model_id=model, gpu_name=name, gpu=normalise_gpu_name(name),
        gpu_count=int(count),
        request_rate=rate, burstiness=burst or 1.0, num_prompts=num_prompts, completed=completed,
        duration=duration, total_input_tokens=total_in, total_output_tokens=total_out, metrics=metrics,
        input_lens=inputs, output_lens=outputs, date=str(data.get("date") or ""),
        send_times=send_times(data, at, len(inputs) if inputs is not None else None, duration),
        max_concurrency=conc,
        dataset=dataset or dataset_hint(data, file or where),
    )


def read_result_file(path: Path, **overrides: Any) -> list[MeasuredRun]:
    """All runs of one result file (JSON object, JSON list or JSON Lines), repeated records included."""
    return _parse_all(result_items(path), path, overrides)


def _parse_all(items: list[tuple[str, Any]], path: Path, overrides: dict[str, Any]) -> list[MeasuredRun]:
    return [parse_result(obj, where, file=str(path), **overrides) for where, obj in items]


def result_items(path: Path) -> list[tuple[str, Any]]:
    """The records of one result file, each with where it came from (``file``, ``file:[i]``, ``file:N``)."""
    try:
        text = path.read_text(encoding="utf-8-sig")  # a leading byte-order mark is no part of the JSON
    except FileNotFoundError:
        raise ImportFailed(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ImportFailed(f"{path}: cannot read ({exc})") from None
    if not text.strip():
        raise ImportFailed(f"{path}: empty file (expected vLLM benchmark results)")
    try:
        whole = json.loads(text)
        items = [(f"{path}", whole)] if isinstance(whole, dict) else None
        if isinstance(whole, list):
            items = [(f"{path}:[{i}]", obj) for i, obj in enumerate(whole)]
        if items is None:
            raise ImportFailed(f"{path}: expected a JSON object, a list of them, or JSON Lines")
    except RecursionError:
        raise ImportFailed(f"{path}: JSON nested too deeply") from None
    except json.JSONDecodeError:
        items = _json_lines(path, text)
    except ValueError:  # Python's limit on an int's digits (sys.get_int_max_str_digits), no position given
        raise ImportFailed(f"{path}: line {_long_number_line(text)}: not valid JSON ({LONG_NUMBER})") from None
    if not items:
        raise ImportFailed(f"{path}: holds no runs (an empty list; expected vLLM benchmark results)")
    return items


#: most digits Python reads as an int (``sys.set_int_max_str_digits``), and a number past it in messages
INT_DIGITS = sys.get_int_max_str_digits() or 4300
LONG_NUMBER = f"a number with more than {INT_DIGITS} digits"


def _long_number_line(text: str) -> int:
    """The line of the first number :data:`LONG_NUMBER` describes (1 where none is found)."""
    m = re.search(rf"\d{{{INT_DIGITS + 1},}}", text)
    return text.count("\n", 0, m.start()) + 1 if m else 1


def _json_lines(path: Path, text: str) -> list[tuple[str, Any]]:
    """The objects of a JSON Lines text, each with where it came from; errors name the line."""
    items: list[tuple[str, Any]] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            items.append((f"{path}:{n}", json.loads(line)))
        except json.JSONDecodeError as exc:
            raise ImportFailed(f"{path}: line {n}: not valid JSON ({exc.msg})") from None
        except RecursionError:
            raise ImportFailed(f"{path}: line {n}: JSON nested too deeply") from None
        except ValueError:  # an int past Python's digit limit
            raise ImportFailed(f"{path}: line {n}: not valid JSON ({LONG_NUMBER})") from None
    return items


# ------------------------------------------------------------------------------------------ sessions
def assign_sessions(runs: Iterable[MeasuredRun]) -> list[MeasuredRun]:
    """Link runs of one server session (same model, hardware and prompts, one sweep).

    A sweep of the published kind ran its rates from high to low against one server with the same
    prompts; a run at a rate not below the previous one's (in time order) starts a new server.  Runs
    without a date, or with prefix caching off or fresh prompts, are sessions of their own.
    """
    runs = list(runs)
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i, r in enumerate(runs):
        if r.prefix_caching != "auto" or not r.date:
            if not r.session:
                runs[i] = replace(r, session=f"{r.where}", order=0)
            continue
        key = (r.model_id, r.gpu, r.gpu_count, r.num_prompts, r.total_input_tokens,
               str(Path(r.file).parent))
        groups.setdefault(key, []).append(i)
    for key, members in groups.items():
        members.sort(key=lambda i: runs[i].date)
        session, order, prev = 0, 0, math.inf
        for i in members:
            r = runs[i]
            if r.request_rate >= prev:
                session, order = session + 1, 0
            runs[i] = replace(r, session=f"{key[0]}|{key[2]}x{key[1]}|{key[4]}|{session}", order=order)
            order += 1
            prev = r.request_rate
    return runs


def lone_cached_runs(runs: Sequence[MeasuredRun]) -> list[MeasuredRun]:
    """Runs served with vLLM's prefix caching on (its default) that are the only run of their server
    session among ``runs`` (:func:`assign_sessions`): they are replayed with a cold prefix cache, which
    holds only if that server had not served their prompts before."""
    sizes = Counter(r.session for r in runs)
    return [r for r in runs if r.prefix_caching == "auto" and sizes[r.session] == 1]


def lone_runs_note(runs: Sequence[MeasuredRun]) -> str | None:
    """What ``calibrate fit`` and ``planner validate`` say about :func:`lone_cached_runs`, or None."""
    lone = lone_cached_runs(runs)
    if not lone:
        return None
    named = ", ".join(f"{Path(r.file).name} at {r.request_rate:g} req/s" for r in lone[:3])
    named += f" (+{len(lone) - 3} more)" if len(lone) > 3 else ""
    one = len(lone) == 1
    return (f"{len(lone)} {'run is the only one of its' if one else 'runs are each the only one of their'} server "
            f"session among the files given ({named}), so {'it is' if one else 'they are'} replayed with a cold "
            f"prefix cache. A sweep that ran its rates in turn against one server "
            f"with the same prompts (as the published ones did, 32 down to 1 req/s) warmed the cache for all but "
            f"its first run: give a sweep's files together.")


def load_runs(paths: Sequence[str | Path], *, client_seed: int | None = None, engine: dict[str, Any] | None = None,
              notes: list[str] | None = None, **overrides: Any) -> list[MeasuredRun]:
    """Read result files and bundle directories (a directory without a manifest: its *.json/*.jsonl).

    A run given twice counts once (:mod:`calibrate.repeats`): a record with the same content as one read
    before, in the same file or another, and a file or bundle read before are dropped, each with a note:
    appended to ``notes``, or (without that list) printed to stderr once all is read.

    ``client_seed``: the ``--seed`` the client ran with, where the files do not say (see
    :func:`calibrate.replay.client_arrival_times`); ``engine``: server settings for runs whose files do
    not record them (a bundle's own settings win); ``overrides``: gpu_name, gpu_count, model_id, dataset.
    """
    runs: list[MeasuredRun] = []
    if not paths:
        raise ImportFailed("no measurement files given")
    seen = Repeats()
    for raw in paths:
        p = Path(raw)
        if not seen.first_time(p):
            continue
        if p.is_dir():
            if (p / "manifest.json").exists():
                from calibrate.bundle_runs import read_bundle  # it builds on parse_result

                runs += read_bundle(p, **dict(overrides))
                continue
            files = sorted([*p.glob("*.json"), *p.glob("*.jsonl")])
            if not files:
                raise ImportFailed(f"{p}: directory holds no manifest.json and no *.json/*.jsonl results")
            for f in files:
                if seen.first_time(f):
                    runs += _parse_all(seen.fresh(str(f), result_items(f)), f, overrides)
        else:
            runs += _parse_all(seen.fresh(str(p), result_items(p)), p, overrides)
    if not runs:  # a bundle whose sweep finished no point yet
        raise ImportFailed(f"{', '.join(str(p) for p in paths)}: no finished runs")
    if client_seed is not None:
        runs = [replace(r, client_seed=client_seed) for r in runs]
    if engine:
        runs = [replace(r, engine={**engine, **r.engine}) for r in runs]
    if notes is None:
        for note in seen.notes():
            print(f"note: {note}", file=sys.stderr)
    else:
        notes += seen.notes()
    return assign_sessions(runs)


def summarise(runs: Sequence[MeasuredRun]) -> list[dict[str, Any]]:
    """Runs per (model, hardware): counts, rates, whether per-request arrays are present, datasets."""
    groups: dict[tuple[str, str, int], list[MeasuredRun]] = {}
    for r in runs:
        groups.setdefault((r.model_id, r.gpu, r.gpu_count), []).append(r)
    out = []
    for (model, gpu, count), rs in sorted(groups.items()):
        out.append({
            "model_id": model, "gpu": gpu, "gpu_name": rs[0].gpu_name, "gpu_count": count, "runs": len(rs),
            "rates": sorted({r.request_rate for r in rs}), "sessions": len({r.session for r in rs}),
            "per_request_arrays": all(r.input_lens is not None for r in rs),
            "files": sorted({r.file for r in rs}), "datasets": sorted({r.dataset for r in rs}),
        })
    return out
