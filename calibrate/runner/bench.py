"""One load point: vLLM's own client, ``vllm bench serve``, at one request rate.

The client is the one behind vLLM's published numbers, so a point here means the same as a point
there.  :class:`BenchConfig` holds the dataset and arrival settings shared by every point;
:meth:`BenchConfig.command` builds the argv for one (rate, seed) with ``--save-result
--save-detailed`` into a scratch file, and :func:`run_bench` runs it in its own process group (killed
with the group on Ctrl-C) and returns the result JSON.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from calibrate.server import HOST, LAUNCHER
from scenarios.errors import FleetPlannerError

DATASETS = ("random", "sharegpt")


class BenchError(FleetPlannerError):
    """``vllm bench serve`` failed or wrote no result."""


@dataclass(frozen=True)
class BenchConfig:
    model: str
    tokenizer: str | None = None
    dataset: str = "random"
    dataset_path: str | None = None
    input_len: int = 512
    output_len: int = 128
    range_ratio: float = 0.0
    num_prompts: int = 200
    burstiness: float = 1.0
    ignore_eos: bool | None = None  # None: on for the random dataset, off otherwise
    temperature: float | None = 0.0
    num_warmups: int = 0
    extra_args: tuple[str, ...] = ()
    python: str = sys.executable

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset(={self.dataset!r}) must be one of {', '.join(DATASETS)}")
        if self.dataset == "sharegpt" and not self.dataset_path:
            raise ValueError(f"dataset_path(={self.dataset_path!r}) is required for the sharegpt dataset")
        if self.input_len < 1:
            raise ValueError(f"input_len(={self.input_len}) must be >= 1")
        if self.output_len < 1:
            raise ValueError(f"output_len(={self.output_len}) must be >= 1")
        if not 0 <= self.range_ratio < 1:
            raise ValueError(f"range_ratio(={self.range_ratio}) must be in [0, 1)")
        if self.num_prompts < 1:
            raise ValueError(f"num_prompts(={self.num_prompts}) must be >= 1")
        if not self.burstiness > 0:
            raise ValueError(f"burstiness(={self.burstiness}) must be > 0")
        if self.num_warmups < 0:
            raise ValueError(f"num_warmups(={self.num_warmups}) must be >= 0")
        if self.temperature is not None and not 0 <= self.temperature < math.inf:
            raise ValueError(f"temperature(={self.temperature}) must be a finite number >= 0")

    @property
    def effective_ignore_eos(self) -> bool:
        return self.dataset == "random" if self.ignore_eos is None else self.ignore_eos

    def command(self, base_url: str, rate: float, seed: int, result_dir: Path, result_file: str) -> list[str]:
        """The argv of ``vllm bench serve`` for one point."""
        if not base_url.startswith(f"http://{HOST}:"):
            raise ValueError(f"base_url(={base_url!r}) must point at {HOST}")
        if not rate > 0:
            raise ValueError(f"rate(={rate}) must be > 0")
        cmd = [self.python, "-m", LAUNCHER, "bench", "serve", "--backend", "vllm", "--base-url", base_url]
        cmd += ["--model", self.model, "--tokenizer", self.tokenizer or self.model]
        cmd += ["--dataset-name", self.dataset]
        if self.dataset == "random":
            cmd += ["--random-input-len", str(self.input_len), "--random-output-len", str(self.output_len)]
            cmd += ["--random-range-ratio", f"{self.range_ratio:g}"]
        else:
            cmd += ["--dataset-path", str(self.dataset_path)]
        cmd += ["--num-prompts", str(self.num_prompts), "--request-rate", f"{rate:g}"]
        cmd += ["--burstiness", f"{self.burstiness:g}", "--seed", str(seed)]
        if self.effective_ignore_eos:
            cmd.append("--ignore-eos")
        if self.temperature is not None:
            cmd += ["--temperature", f"{self.temperature:g}"]
        if self.num_warmups:
            cmd += ["--num-warmups", str(self.num_warmups)]
        cmd += ["--percentile-metrics", "ttft,tpot,itl,e2el", "--metric-percentiles", "50,90,95,99"]
        cmd += ["--save-result", "--save-detailed", "--result-dir", str(result_dir)]
        cmd += ["--result-filename", result_file, "--disable-tqdm"]
        return cmd + list(self.extra_args)

    def describe(self) -> dict[str, Any]:
        """The settings recorded in the bundle identity."""
        return {
            "dataset": self.dataset,
            "dataset_path": self.dataset_path,
            "input_len": self.input_len if self.dataset == "random" else None,
            "output_len": self.output_len if self.dataset == "random" else None,
            "range_ratio": self.range_ratio if self.dataset == "random" else None,
            "num_prompts": self.num_prompts,
            "burstiness": self.burstiness,
            "ignore_eos": self.effective_ignore_eos,
            "temperature": self.temperature,
            "num_warmups": self.num_warmups,
            "tokenizer": self.tokenizer,
            "extra_args": list(self.extra_args),
        }


def run_bench(
    cmd: list[str], log_path: Path, result_path: Path, timeout_s: float | None = None
) -> dict[str, Any]:
    """Run ``cmd`` (appending its output to ``log_path``) and return the JSON it saved."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    result_path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        result_path.unlink()
    with open(log_path, "ab") as log:
        log.write(f"\n===== calibrate run: {' '.join(cmd)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
        try:
            code = proc.wait(timeout=timeout_s)
        except BaseException:  # Ctrl-C, SIGTERM turned into an exception, or the timeout
            _kill_group(proc)
            raise
    if code != 0:
        raise BenchError(f"vllm bench serve exited with status {code}; see {log_path}")
    if not result_path.is_file():
        raise BenchError(f"vllm bench serve wrote no result file {result_path}; see {log_path}")
    try:
        data = json.loads(result_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise BenchError(f"{result_path}: unreadable bench result ({exc})") from None
    if not isinstance(data, dict):
        raise BenchError(f"{result_path}: bench result is not a JSON object")
    return data


def _kill_group(proc: subprocess.Popen[bytes], grace_s: float = 10.0) -> None:
    for sig in (signal.SIGINT, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=grace_s)
            return
        except subprocess.TimeoutExpired:
            continue
