"""Calibration bundles (``calibrate run`` output) as :class:`~calibrate.importer.MeasuredRun` lists.

Every finished point of a bundle carries the client's result JSON; the manifest adds what the server
reported: its command line (engine limits, tensor-parallel size, dtype, prefix caching), from its log the
KV-cache size, the block size and the largest step replayed from a CUDA graph (else as its command line
implies), the GPUs' names and memory from NVML, and the model's config.json.  Those become the run's
``engine`` settings, so a replay uses the limits the server really ran with.
"""

from __future__ import annotations

import itertools
import json
import shlex
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from calibrate.importer import MeasuredRun, parse_result
from calibrate.resultfields import GPU_RANGE, ImportFailed, count_field, gpus_in_range, num_field
from calibrate.server import parse_cuda_graphs


def _graph_limit(args: Sequence[str]) -> int | None:
    """The largest step a server replays from a CUDA graph, as its command line sets it (None: the default):
    ``--enforce-eager`` (0), ``--cuda-graph-sizes N...``, ``--max-cudagraph-capture-size N`` or the
    ``--compilation-config`` JSON (``cudagraph_mode: NONE``, ``cudagraph_capture_sizes``, ``max_capture_size``)."""
    limit: int | None = None
    for i, arg in enumerate(args):
        key, eq, value = arg.partition("=")
        if key == "--enforce-eager":
            return 0
        if key not in ("--cuda-graph-sizes", "--max-cudagraph-capture-size", "--compilation-config", "-O"):
            continue
        values = [value] if eq else list(itertools.takewhile(lambda a: not a.startswith("-"), args[i + 1:]))
        if key in ("--cuda-graph-sizes", "--max-cudagraph-capture-size"):
            sizes = [int(v) for text in values for v in text.replace(",", " ").split() if v.isdigit()]
            limit = max(sizes) if sizes else limit
            continue
        try:
            conf = json.loads(values[0]) if values else None
        except ValueError:
            continue
        if not isinstance(conf, dict):
            continue
        if str(conf.get("cudagraph_mode", "")).upper() == "NONE":
            return 0
        caps = conf.get("cudagraph_capture_sizes")
        if isinstance(caps, list) and caps and all(isinstance(c, int) for c in caps):
            limit = max(caps)
        for name in ("max_cudagraph_capture_size", "max_capture_size"):
            if isinstance(conf.get(name), int):
                limit = conf[name]
    return limit


def _server_settings(command: Sequence[str]) -> dict[str, Any]:
    flags = {"--max-num-seqs": "max_num_seqs", "--max-num-batched-tokens": "max_num_batched_tokens",
             "--gpu-memory-utilization": "gpu_memory_utilization", "--max-model-len": "max_model_len",
             "--block-size": "block_size", "--tensor-parallel-size": "tp"}
    out: dict[str, Any] = {}
    args = list(command)
    for i, arg in enumerate(args):
        key, _, value = arg.partition("=")
        text = value or (args[i + 1] if i + 1 < len(args) else "")
        if key in flags:
            try:
                out[flags[key]] = float(text) if "." in text else int(text)
            except ValueError:
                continue
        if key == "--dtype" and text:
            out["dtype"] = text
        if key in ("--quantization", "-q") and text:
            out["quantization"] = text.lower()
        if key == "--kv-cache-dtype" and text:
            out["kv_cache_dtype"] = text.lower()
        if arg == "--no-enable-prefix-caching":
            out["prefix_caching"] = False
    graphs = _graph_limit(args)
    if graphs is not None:
        out["cuda_graph_max_tokens"] = graphs
    return out


def _logged_graphs(root: Path, server: dict[str, Any]) -> int | None:
    # the server's CUDA-graph limit as its log reported it: recorded in the manifest by calibrate run,
    # else read from the bundle's server.log (bundles written before the manifest recorded it)
    logged = server.get("cuda_graph_max_tokens")
    if isinstance(logged, int) and not isinstance(logged, bool):
        return logged
    log = root / "server.log"
    return parse_cuda_graphs(log.read_text(errors="replace")) if log.is_file() else None


def _section(data: dict[str, Any], key: str, where: str, path: str = "") -> dict[str, Any]:
    """The object under ``key`` ({} when absent); anything else is refused, naming its field path."""
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ImportFailed(f"{where}: field '{path}{key}' must be an object (got {type(value).__name__})")
    return value


def _listed(data: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str, path: str) -> list[Any]:
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, kind) and not isinstance(v, bool) for v in value):
        what = "names" if kind is str else "numbers"
        raise ImportFailed(f"{where}: field '{path}{key}' must be a list of {what} (got {value!r:.60})")
    return value


def _command(server: dict[str, Any], where: str) -> list[str]:
    command = server.get("command")
    if isinstance(command, str):
        try:
            return shlex.split(command)
        except ValueError as exc:
            raise ImportFailed(f"{where}: field 'server.command' is not a command line ({exc})") from None
    return _listed(server, "command", str, where, "server.")


def read_bundle(path: Path, **overrides: Any) -> list[MeasuredRun]:
    """All finished points of a ``calibrate run`` bundle."""
    from calibrate.bundle import load_bundle

    bundle = load_bundle(path)
    man = bundle.manifest
    mf = str(path / "manifest.json")
    ident = _section(man, "identity", mf)
    server = _section(man, "server", mf)
    env = _section(man, "env", mf)
    gpus = _section(env, "gpus", mf, "env.")
    engine = _server_settings(_command(server, mf))
    graphs = _logged_graphs(bundle.path, server)
    if graphs is not None:  # what the engine resolved beats what its command line implies
        engine["cuda_graph_max_tokens"] = graphs
    for key in ("gpu_memory_utilization", "max_model_len"):
        if ident.get(key) is not None:
            engine[key] = num_field(ident, key, mf, label=f"identity.{key}")
    kv = _section(server, "kv_cache", mf, "server.")
    if isinstance(kv.get("tokens"), int):
        engine["kv_cache_tokens"] = kv["tokens"]
    if isinstance(kv.get("block_size"), int) and "block_size" not in engine:
        engine["block_size"] = kv["block_size"]  # as the engine reported it (128 on vLLM's CPU build)
    if "cuda_graph_max_tokens" not in engine and ident.get("device") == "cpu":
        engine["cuda_graph_max_tokens"] = 0  # vLLM's CPU build captures no CUDA graphs: every step is eager
    mem = _listed(gpus, "memory_bytes", (int, float), mf, "env.gpus.")
    if mem:
        engine["gpu_memory_bytes"] = int(mem[0])
    names = _listed(gpus, "names", str, mf, "env.gpus.")
    tp = count_field(ident, "tp", mf, required=False, least=1, label="identity.tp") or int(engine.get("tp") or 1)
    if not gpus_in_range(tp):  # as a result file's gpu_count
        named = "'identity.tp'" if ident.get("tp") is not None else "'server.command' (--tensor-parallel-size)"
        raise ImportFailed(f"{mf}: field {named} must be {GPU_RANGE} (got {tp})")
    gpu_name = overrides.pop("gpu_name", None) or (names[0] if names else None)
    if not gpu_name:
        raise ImportFailed(f"{mf}: missing field 'env.gpus.names' (give --gpu)")
    caching = "off" if (ident.get("prefix_caching") == "off" or engine.get("prefix_caching") is False) \
        else "fresh"
    model_cfg = env.get("model_config") if isinstance(env.get("model_config"), dict) else None
    runs = []
    for entry, point in zip(man["points"], bundle.points, strict=True):
        where = str(path / entry["file"])
        result = dict(point["result"])
        result.setdefault("request_rate", point["rate"])
        result.setdefault("burstiness", point.get("burstiness", 1.0))
        result.setdefault("num_prompts", point.get("num_prompts"))
        result.setdefault("model_id", ident.get("model"))
        run = parse_result(result, where, file=where, gpu_name=gpu_name, gpu_count=overrides.get("gpu_count") or tp,
                           model_id=overrides.get("model_id"))
        runs.append(replace(run, prefix_caching=caching, engine=dict(engine), model_config=model_cfg,
                            date=str(point.get("started") or run.date), session=f"{path}#{entry['index']}"))
    return runs
