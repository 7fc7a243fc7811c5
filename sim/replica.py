"""One replica: a vLLM V1 server simulated between events, not token by token.

The engine follows ``vllm/v1/core/sched/scheduler.py``: each step first serves running requests
(one token per decoding sequence, a chunk for a prompt still being prefilled), then admits waiting
requests FCFS while the step's token budget (``max_num_batched_tokens``), ``max_num_seqs`` and the
KV cache allow.  Prompts are prefilled in chunks mixed with decodes (chunked prefill).  When the KV
cache cannot hold the next tokens of the running sequences, the most recently admitted request is
preempted: its blocks are freed and it goes back to the head of the waiting queue, to recompute its
prompt and generated tokens when readmitted.  A request that can never fit is rejected on arrival.

Speed: while no prefill is pending, every step is a decode step of the same batch whose time is
affine in the growing context (:class:`~sim.service.StepTimeModel`), so the replica jumps straight
to the next completion or KV exhaustion in one SimPy event ("macro step").  An arrival that could
be admitted cuts the macro step at the step boundary in progress.  Per-request decode progress is
implicit: a global decode-step counter, plus a heap of the counter values at which requests finish.
Cost thus grows with requests, not tokens.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable

import simpy

from sim.events import Wake
from sim.requests import RequestTable
from sim.service import StepTimeModel, causal_pairs

IDLE, MIXED, MACRO = 0, 1, 2
#: ITL histogram resolution: bin = floor(ln(seconds) * ITL_SCALE) + ITL_OFFSET (centre: bin + 0.5)
ITL_SCALE = 200.0
ITL_OFFSET = 2400
ITL_BINS = 3400


class Replica:
    """A simulated vLLM server; the router calls :meth:`arrive`, SimPy drives the rest."""

    def __init__(
        self,
        env: simpy.Environment,
        index: int,
        pool: int,
        model: StepTimeModel,
        table: RequestTable,
        *,
        kv_tokens: int,
        max_num_seqs: int,
        max_num_batched_tokens: int,
        max_model_len: int,
        block_size: int,
        itl_hist: list[list[float]],
        outs: list[int],
        on_finish: Callable[[int], object] | None = None,
    ) -> None:
        if kv_tokens < block_size:
            raise ValueError(f"kv_tokens(={kv_tokens}) must be >= block_size(={block_size})")
        if max_num_seqs < 1:
            raise ValueError(f"max_num_seqs(={max_num_seqs}) must be >= 1")
        if max_num_batched_tokens < max_num_seqs:
            raise ValueError(
                f"max_num_batched_tokens(={max_num_batched_tokens}) must be >= max_num_seqs(={max_num_seqs})"
            )
        self.env = env
        self.index = index
        self.pool = pool
        self.model = model
        self.table = table
        self.kv_tokens = kv_tokens
        self.max_seqs = max_num_seqs
        self.budget = max_num_batched_tokens
        self.half_block = block_size // 2
        self.max_len = min(max_model_len, kv_tokens - block_size)
        self.itl_hist = itl_hist
        self.waiting: deque[int] = deque()
        self.running: dict[int, None] = {}  # admission order; last = preemption victim
        self.prefilling: list[int] = []
        self.heap: list[tuple[int, int, int]] = []  # (finish counter, rid, epoch)
        self.dec_cls = [0] * len(itl_hist)
        self.counter = 0
        self.n_dec = 0
        self.ctx_sum = 0
        self.pf_sum = 0
        self.outs = outs
        """Outstanding (waiting + running) requests of every replica, shared with the router."""
        self.on_finish = on_finish
        """Called with each finished request's id (a closed-loop client waits on it)."""
        self.state = IDLE
        self._ev: simpy.Event | None = None
        self._start = 0.0
        self._dur = 0.0
        self._n = 0
        self._first = 0.0
        self._kv_start = 0
        self._chunks: list[tuple[int, int]] = []
        # statistics
        self.busy_time = 0.0
        self.kv_area = 0.0
        self.queue_area = 0.0
        self._q_t = 0.0
        self.steps = 0
        self.preemptions = 0
        self.rejections = 0
        self.completed = 0
        self.tokens_out = 0

    # ------------------------------------------------------------------ state the router reads
    @property
    def outstanding(self) -> int:
        return self.outs[self.index]

    @property
    def kv_used(self) -> int:
        return self.ctx_sum + self.pf_sum + self.half_block * len(self.running)

    def kv_load(self) -> float:
        """KV demand (in use plus queued prompts) as a fraction of capacity."""
        t = self.table
        queued = sum(t.pf_total[r] for r in self.waiting)
        return (self.kv_used + queued) / self.kv_tokens

    # ------------------------------------------------------------------ arrivals
    def arrive(self, rid: int) -> None:
        t = self.table
        t.replica[rid] = self.index
        prompt = t.prompt[rid]
        if prompt + t.output[rid] > self.max_len:
            t.rejected[rid] = True
            self.rejections += 1
            return
        t.pf_total[rid] = prompt
        t.pf_done[rid] = t.cached[rid]
        now = self.env.now
        self.queue_area += len(self.waiting) * (now - self._q_t)
        self._q_t = now
        self.waiting.append(rid)
        self.outs[self.index] += 1
        if self.state == IDLE:
            self._plan()
        elif self.state == MACRO and len(self.waiting) == 1 and self._head_admissible():
            self._cut_macro()

    def _head_admissible(self) -> bool:
        if len(self.running) >= self.max_seqs:
            return False
        left = self.budget - self.n_dec
        if left <= 0:
            return False
        rid = self.waiting[0]
        t = self.table
        chunk = min(t.pf_total[rid] - t.pf_done[rid], left)
        used = self.ctx_sum + self.pf_sum + self.half_block * (len(self.running) + 1) + t.pf_done[rid]
        return used + self.n_dec + chunk <= self.kv_tokens

    # ------------------------------------------------------------------ planning
    def _schedule(self, dur: float, callback: Callable[[simpy.Event], None]) -> None:
        self._ev = Wake(self.env, dur, callback)
        self._start = self.env.now
        self._dur = dur

    def _plan(self) -> None:
        while True:
            n_dec = self.n_dec
            if (
                n_dec
                and self.ctx_sum + self.pf_sum + self.half_block * len(self.running) + n_dec > self.kv_tokens
            ):
                self._preempt_until(self.n_dec)
            if (self.prefilling or self.waiting) and self._mixed():
                return
            if self.n_dec:
                self._macro()
                return
            if self.prefilling:  # prompts stuck without KV room and nothing decoding: free some
                self._preempt_last()
                continue
            self.state = IDLE
            self._ev = None
            return

    def _mixed(self) -> bool:
        """Plan one step of prefill chunks (running prompts first, then admissions) plus all decodes."""
        t = self.table
        left = self.budget - self.n_dec
        kv_used = self.ctx_sum + self.pf_sum + self.half_block * len(self.running)
        free = self.kv_tokens - kv_used - self.n_dec
        chunks: list[tuple[int, int]] = []
        tokens = 0
        ctx = self.ctx_sum
        pairs = 0.0  # causal attention pairs of the chunks (query x key positions)
        for rid in self.prefilling:
            if left <= 0 or free <= 0:
                break
            c = min(t.pf_total[rid] - t.pf_done[rid], left, free)
            chunks.append((rid, c))
            ctx += t.pf_done[rid]
            pairs += causal_pairs(c, t.pf_done[rid])
            left -= c
            free -= c
            tokens += c
        waiting = self.waiting
        if waiting and left > 0:
            now = self.env.now
            self.queue_area += len(waiting) * (now - self._q_t)
            self._q_t = now
            running = self.running
            while waiting and left > 0 and len(running) < self.max_seqs:  # admissions, FCFS
                rid = waiting[0]
                c = min(t.pf_total[rid] - t.pf_done[rid], left)
                held = t.pf_done[rid] + self.half_block  # its prefix-cached tokens take KV room too
                if c + held > free:
                    break
                waiting.popleft()
                running[rid] = None
                self.prefilling.append(rid)
                self.pf_sum += t.pf_done[rid]
                chunks.append((rid, c))
                ctx += t.pf_done[rid]
                pairs += causal_pairs(c, t.pf_done[rid])
                left -= c
                free -= c + held
                tokens += c
        if not chunks:
            return False
        self._chunks = chunks
        self._kv_start = kv_used
        self.state = MIXED
        n_dec = self.n_dec
        self._schedule(self.model.step(tokens + n_dec, n_dec + len(chunks), ctx, pairs), self._end_mixed)
        return True

    def _macro(self) -> None:
        heap = self.heap
        epoch = self.table.epoch
        while heap[0][2] != epoch[heap[0][1]]:
            heapq.heappop(heap)
        n_dec = self.n_dec
        k_fin = heap[0][0] - self.counter
        kv_used = self.ctx_sum + self.pf_sum + self.half_block * len(self.running)
        k_kv = (self.kv_tokens - kv_used) // n_dec
        n = k_fin if k_fin < k_kv else k_kv
        if n < 1:
            n = 1
        first = self.model.decode_base(n_dec) + self.model.kv_coef * self.ctx_sum
        dur = n * first + self.model.kv_coef * n_dec * n * (n - 1) / 2.0
        self._first = first
        self._n = n
        self.state = MACRO
        self._schedule(dur, self._end_macro)

    def _cut_macro(self) -> None:
        """An admissible request arrived: shorten the macro step to the step boundary in progress,
        where :meth:`_end_macro` plans the next step, admitting every request waiting by then."""
        now = self.env.now
        n = self.model.decode_steps_within(self.n_dec, self.ctx_sum, now - self._start) + 1
        if n >= self._n:
            return  # the macro step ends at this boundary anyway
        self._n = n
        self._dur = self.model.decode_span(self.n_dec, self.ctx_sum, n)
        if self._ev is not None:  # SimPy cannot unschedule it: it fires later with nothing to call
            self._ev.callbacks.clear()
        self._ev = Wake(self.env, self._start + self._dur - now, self._end_macro)

    # ------------------------------------------------------------------ step completions
    def _record_itl(self, first: float, last: float, steps: int) -> None:
        """Count the decoding requests' tokens of ``steps`` steps lasting ``first`` .. ``last`` seconds: at the
        mean step, or (a span whose steps grow) half the steps in each of two bins."""
        if steps == 1 or last - first < first * 0.01:
            spots: tuple[float, ...] = (first if first == last else (first + last) / 2,)
            n: float = steps
        else:
            quarter = (last - first) / 4
            spots = (first + quarter, last - quarter)
            n = steps / 2
        hist = self.itl_hist
        for seconds in spots:  # steps beyond the histogram's range (6 us .. 148 s) land in its end bins
            b = math.floor(math.log(seconds) * ITL_SCALE) + ITL_OFFSET
            b = 0 if b < 0 else b if b < ITL_BINS else ITL_BINS - 1
            for c, k in enumerate(self.dec_cls):
                if k:
                    hist[c][b] += k * n

    def _end_mixed(self, ev: simpy.Event) -> None:
        if ev is not self._ev:
            return
        now = self.env.now
        dur = self._dur
        self.busy_time += dur
        self.kv_area += self._kv_start * dur
        self.steps += 1
        t = self.table
        n_dec = self.n_dec
        if n_dec:
            self._record_itl(dur, dur, 1)
            self.counter += 1
            self.ctx_sum += n_dec
        counter = self.counter
        for rid, c in self._chunks:
            done = t.pf_done[rid] + c
            t.pf_done[rid] = done
            self.pf_sum += c
            if done < t.pf_total[rid]:
                continue
            self.prefilling.remove(rid)
            self.pf_sum -= done
            g = t.gen[rid]
            if g == 0:
                t.first[rid] = now
            g += 1
            t.gen[rid] = g
            out = t.output[rid]
            if g >= out:
                self._finish(rid, now)
                continue
            t.join[rid] = counter
            heapq.heappush(self.heap, (counter + out - g, rid, t.epoch[rid]))
            self.n_dec += 1
            self.ctx_sum += t.prompt[rid] + g
            self.dec_cls[t.cls[rid]] += 1
        self._chunks = []
        if self.heap and self.heap[0][0] <= counter:
            self._complete(now)
        self._plan()

    def _end_macro(self, ev: simpy.Event) -> None:
        if ev is not self._ev:
            return
        # account for the macro step's ``self._n`` decode steps
        n = self._n
        n_dec = self.n_dec
        dur = self._dur
        self.busy_time += dur
        self.steps += n
        self.kv_area += (self.ctx_sum + self.pf_sum + self.half_block * len(self.running) + n_dec * n / 2) * dur
        first = self._first
        self._record_itl(first, first + self.model.kv_coef * n_dec * (n - 1), n)
        counter = self.counter = self.counter + n
        self.ctx_sum += n * n_dec
        if self.heap and self.heap[0][0] <= counter:
            self._complete(self.env.now)
        self._plan()

    def _complete(self, now: float) -> None:
        heap = self.heap
        counter = self.counter
        t = self.table
        epoch = t.epoch
        while heap and heap[0][0] <= counter:
            _, rid, ep = heapq.heappop(heap)
            if ep != epoch[rid]:
                continue
            self.n_dec -= 1
            self.ctx_sum -= t.prompt[rid] + t.output[rid]
            self.dec_cls[t.cls[rid]] -= 1
            t.gen[rid] = t.output[rid]
            self._finish(rid, now)

    def _finish(self, rid: int, now: float) -> None:
        self.table.finish[rid] = now
        del self.running[rid]
        self.outs[self.index] -= 1
        self.completed += 1
        self.tokens_out += self.table.output[rid]
        if self.on_finish is not None:
            self.on_finish(rid)

    # ------------------------------------------------------------------ preemption
    def _preempt_until(self, extra: int) -> None:
        while self.running and self.kv_used + extra > self.kv_tokens:
            self._preempt_last()
            extra = self.n_dec

    def _preempt_last(self) -> None:
        rid = next(reversed(self.running))
        del self.running[rid]
        t = self.table
        if rid in self.prefilling:
            self.prefilling.remove(rid)
            self.pf_sum -= t.pf_done[rid]
        else:
            g = t.gen[rid] + self.counter - t.join[rid]
            t.gen[rid] = g
            self.ctx_sum -= t.prompt[rid] + g
            self.n_dec -= 1
            self.dec_cls[t.cls[rid]] -= 1
            t.epoch[rid] += 1
        t.pf_total[rid] = t.prompt[rid] + t.gen[rid]
        t.pf_done[rid] = t.cached[rid]
        t.preempt[rid] += 1
        self.preemptions += 1
        now = self.env.now
        self.queue_area += len(self.waiting) * (now - self._q_t)
        self._q_t = now
        self.waiting.appendleft(rid)
