"""sim.events.Wake: a timeout with one callback, ordered among SimPy's own events as a Timeout is."""

from __future__ import annotations

import pytest
import simpy

from sim.events import Wake


def test_wake_calls_its_callback_once_at_its_time_with_itself() -> None:
    env = simpy.Environment()
    seen: list[tuple[float, simpy.Event]] = []
    ev = Wake(env, 2.5, lambda e: seen.append((env.now, e)))
    env.run()
    assert seen == [(2.5, ev)]
    assert ev.processed and ev.ok and ev.value is None


def test_wakes_and_timeouts_at_one_time_fire_in_the_order_scheduled() -> None:
    """Same priority as a Timeout: events due at the same time keep their scheduling order, so replacing
    Timeouts by Wakes leaves a run's event order (and numbers) as they were."""
    env = simpy.Environment()
    order: list[str] = []
    for i in range(6):
        if i % 2:
            Wake(env, 1.0, lambda _e, i=i: order.append(f"wake{i}"))
        else:
            env.timeout(1.0).callbacks.append(lambda _e, i=i: order.append(f"timeout{i}"))
    Wake(env, 0.5, lambda _e: order.append("early"))
    env.run()
    assert order == ["early", "timeout0", "wake1", "timeout2", "wake3", "timeout4", "wake5"]


def test_a_wake_whose_callbacks_were_emptied_fires_with_nothing_to_call() -> None:
    """How a replica drops the end of a macro step an arrival cut short (SimPy cannot unschedule it)."""
    env = simpy.Environment()
    calls: list[float] = []
    ev = Wake(env, 3.0, lambda _e: calls.append(env.now))
    Wake(env, 1.0, lambda _e: ev.callbacks.clear())
    env.run()
    assert calls == [] and env.now == pytest.approx(3.0)
