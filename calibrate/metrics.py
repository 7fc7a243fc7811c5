"""The server's own view of a load point: its Prometheus ``/metrics``, sampled while the point runs.

vLLM exports gauges (requests running and waiting, KV-cache usage) and counters (preemptions,
prefix-cache hits and queries, prompt and generation tokens).  :class:`MetricsScraper` polls the
endpoint in a background thread; :meth:`MetricsScraper.summary` reduces the gauges to mean/max and the
counters to their increase over the point.  Names changed across vLLM releases (``kv_cache_usage_perc``
was ``gpu_cache_usage_perc``), so each quantity lists the names it accepts; values of the same name with
different labels (one per engine) are summed.
"""

from __future__ import annotations

import re
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: gauge summaries: quantity -> accepted metric names, first found wins
GAUGES: dict[str, tuple[str, ...]] = {
    "num_requests_running": ("vllm:num_requests_running",),
    "num_requests_waiting": ("vllm:num_requests_waiting",),
    "kv_cache_usage_perc": ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"),
}
#: counter increases over the point
COUNTERS: dict[str, tuple[str, ...]] = {
    "num_preemptions": ("vllm:num_preemptions_total", "vllm:num_preemptions"),
    "prefix_cache_queries": ("vllm:prefix_cache_queries_total", "vllm:gpu_prefix_cache_queries_total"),
    "prefix_cache_hits": ("vllm:prefix_cache_hits_total", "vllm:gpu_prefix_cache_hits_total"),
    "prompt_tokens": ("vllm:prompt_tokens_total",),
    "generation_tokens": ("vllm:generation_tokens_total",),
}

_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\S+)?$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

Samples = dict[str, list[tuple[dict[str, str], float]]]


def parse_prometheus(text: str) -> Samples:
    """Parse Prometheus text exposition format into ``name -> [(labels, value), ...]``."""
    out: Samples = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line)
        if not m:
            continue
        try:
            value = float(m.group(4))
        except ValueError:
            continue
        labels = {k: v.replace('\\"', '"').replace("\\\\", "\\") for k, v in _LABEL.findall(m.group(3) or "")}
        out.setdefault(m.group(1), []).append((labels, value))
    return out


def pick(samples: Samples, names: tuple[str, ...]) -> float | None:
    """Sum over label sets of the first of ``names`` present, or None."""
    for name in names:
        if name in samples:
            return sum(v for _, v in samples[name])
    return None


def cache_config(samples: Samples) -> dict[str, Any]:
    """KV-cache facts from ``vllm:cache_config_info`` labels (block size, blocks, tokens)."""
    info = samples.get("vllm:cache_config_info")
    if not info:
        return {}
    labels = info[0][0]
    out: dict[str, Any] = {"source": "metrics"}
    for key, label in (
        ("block_size", "block_size"),
        ("blocks", "num_gpu_blocks"),
        ("cpu_blocks", "num_cpu_blocks"),
        ("tokens", "kv_cache_size_tokens"),
        ("memory_bytes", "kv_cache_memory_bytes"),
    ):
        text = labels.get(label)
        if text is not None and text.isdigit():
            out[key] = int(text)
    for key in ("enable_prefix_caching", "gpu_memory_utilization"):
        if key in labels:
            out[key] = labels[key]
    return out


@dataclass
class _Series:
    values: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        if not self.values:
            return {"mean": None, "max": None, "samples": 0}
        return {
            "mean": sum(self.values) / len(self.values),
            "max": max(self.values),
            "samples": len(self.values),
        }


def fetch_metrics(base_url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(f"{base_url}/metrics", timeout=timeout) as resp:
        return str(resp.read().decode("utf-8", "replace"))


class MetricsScraper:
    """Polls ``/metrics`` every ``interval_s`` in a daemon thread between :meth:`start` and :meth:`stop`."""

    def __init__(
        self,
        base_url: str,
        interval_s: float = 1.0,
        fetch: Callable[[str], str] | None = None,
    ) -> None:
        if not interval_s > 0:
            raise ValueError(f"interval_s(={interval_s}) must be > 0")
        self.base_url = base_url
        self.interval_s = interval_s
        self._fetch = fetch or fetch_metrics
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.gauges: dict[str, _Series] = {k: _Series() for k in GAUGES}
        self.first: dict[str, float] = {}
        self.last: dict[str, float] = {}
        self.errors = 0
        self.scrapes = 0
        self.cache: dict[str, Any] = {}

    def scrape_once(self) -> None:
        try:
            samples = parse_prometheus(self._fetch(self.base_url))
        except Exception:  # the server may be busy or gone; count and go on
            self.errors += 1
            return
        self.scrapes += 1
        for key, names in GAUGES.items():
            value = pick(samples, names)
            if value is not None:
                self.gauges[key].values.append(value)
        for key, names in COUNTERS.items():
            value = pick(samples, names)
            if value is not None:
                self.first.setdefault(key, value)
                self.last[key] = value
        if not self.cache:
            self.cache = cache_config(samples)

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            self.scrape_once()
            self._stop.wait(max(0.0, self.interval_s - (time.monotonic() - started)))

    def start(self) -> None:
        self.scrape_once()  # counters' baseline before the load starts
        self._thread = threading.Thread(target=self._loop, name="metrics-scraper", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.scrape_once()  # counters' final value after the load ended

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "available": self.scrapes > 0,
            "interval_s": self.interval_s,
            "scrapes": self.scrapes,
            "errors": self.errors,
            "gauges": {k: s.summary() for k, s in self.gauges.items()},
            "counters": {k: self.last[k] - self.first[k] for k in self.last},
        }
        queries = out["counters"].get("prefix_cache_queries")
        hits = out["counters"].get("prefix_cache_hits")
        if queries:
            out["prefix_cache_hit_rate"] = (hits or 0.0) / queries
        return out
