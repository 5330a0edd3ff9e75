"""The engine's one housekeeping thread: timers plus a periodic tick.

Timers (retry back-offs, approval deadlines) are also stored in the database
as deadlines; this heap only holds what this engine has scheduled, and is
rebuilt from the database on recovery.  Callbacks must be quick: they hand
real work to the engine's worker pool.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

__all__ = ["Timers"]

log = logging.getLogger("airt_nb")


class Timers:
    def __init__(self, tick: Callable[[], None], interval: float, name: str = "airt-timers"):
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._cv = threading.Condition()
        self._tick = tick
        self._interval = interval
        self._stopped = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def at(self, due: float, fn: Callable[[], None]) -> None:
        """Call ``fn`` on the timer thread at epoch time ``due`` (at once if past)."""
        with self._cv:
            heapq.heappush(self._heap, (due, next(self._seq), fn))
            self._cv.notify()

    def wake(self) -> None:
        """Run the periodic tick now."""
        with self._cv:
            self._wake = True
            self._cv.notify()

    _wake = False

    def stop(self) -> None:
        with self._cv:
            self._stopped = True
            self._cv.notify()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        next_tick = time.monotonic()
        while True:
            due_now: list[Callable[[], None]] = []
            with self._cv:
                while not self._stopped:
                    now = time.time()
                    if self._heap and self._heap[0][0] <= now:
                        break
                    if self._wake or time.monotonic() >= next_tick:
                        break
                    wait = next_tick - time.monotonic()
                    if self._heap:
                        wait = min(wait, self._heap[0][0] - now)
                    self._cv.wait(max(wait, 0.0))
                if self._stopped:
                    return
                now = time.time()
                while self._heap and self._heap[0][0] <= now:
                    due_now.append(heapq.heappop(self._heap)[2])
                run_tick = self._wake or time.monotonic() >= next_tick
                self._wake = False
            for fn in due_now:
                try:
                    fn()
                except Exception:
                    log.exception("airt_nb timer callback failed")
            if run_tick:
                next_tick = time.monotonic() + self._interval
                try:
                    self._tick()
                except Exception:
                    log.exception("airt_nb housekeeping failed; trying again in %.1f s", self._interval)
