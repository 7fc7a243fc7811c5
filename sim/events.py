"""Events: how the simulator uses SimPy's event queue.

A run is a chain of timeouts, each with one callback: the arrival chain routes the requests due and
schedules the next arrival; a replica schedules the end of its step in progress (a mixed step, or a
macro step of many decode steps), whose callback plans the next.  No process is resumed per request
or step (only the sampler's, a few hundred times a run).  A million-request run processes ~4 million
events, so their bookkeeping matters: :class:`Wake`
is SimPy's ``Timeout`` without the checks and list operations those events do not need.

SimPy cannot unschedule an event.  A replica whose macro step is cut short by an arrival schedules
the new end and empties the callbacks of the old one, which then fires with nothing to call; the
replica also ignores any event that is not its current one.
"""

from __future__ import annotations

from collections.abc import Callable

import simpy
from simpy.events import NORMAL


class Wake(simpy.Event):
    """A timeout of ``delay`` seconds that calls ``callback`` with itself: SimPy's ``Timeout`` less its check
    of the delay (never negative here) and the append of its callback.  It sets the event up as ``Timeout``
    does (value None, ok) and schedules it through :meth:`simpy.Environment.schedule`."""

    def __init__(self, env: simpy.Environment, delay: float, callback: Callable[[simpy.Event], None]) -> None:
        self.env = env
        self.callbacks = [callback]
        self._value = None
        self._ok = True
        env.schedule(self, NORMAL, delay)
