"""Leases and homes: who may run a workflow now, and who should take up one that nobody runs.

Leases belong to engines.  Each engine has a row in ``engines`` whose
``expires_at`` is renewed every third of the lease time by a
:class:`LeaseKeeper` thread of its own; every workflow whose
``lease_owner`` names a live engine is leased to it.  Renewing is one row
however many workflows an engine runs, and it never waits for the engine's
housekeeping, its timers or an idle write path: it joins the store's group
commit like any checkpoint, so a busy run cannot starve it.  On PostgreSQL
the expiry is computed by the server's clock.

A workflow also has a *home*: the engine that started or last ran it, in
the notebook session (``JPY_SESSION_NAME``, else the working directory) it
was started from.  :func:`should_take` decides who takes up a workflow whose
lease is free or whose owner is dead:

* its home, if alive, always (a decision made elsewhere wakes the home: it
  never moves the workflow);
* while its home lives, nobody else;
* once the home is gone, an engine of the same session at once (a restarted
  kernel gets its own workflows back), any other engine that takes up work
  only after a grace period counted from when the home went.

Imports nothing of the engine; the store is the only thing it talks to.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .errors import StoreError
from .store.protocol import Store
from .store.records import EngineRecord

__all__ = ["Candidate", "LeaseKeeper", "fair_share", "should_take"]

log = logging.getLogger("airt_nb")


@dataclass(frozen=True, slots=True)
class Candidate:
    """A workflow whose lease is free or held by a dead engine."""

    workflow_id: str
    status: str
    waiting_for: str | None
    lease_owner: str | None
    home: str | None
    session: str | None
    workdir: str | None


def should_take(
    candidate: Candidate,
    home: EngineRecord | None,
    *,
    me: str,
    session: str,
    now: str,
    grace_cutoff: str,
    takes_work: bool,
    home_alive: bool,
) -> bool:
    """Whether the engine ``me`` (of notebook ``session``) should take up ``candidate`` now.

    ``home`` is the record of the candidate's home engine (None if unknown),
    ``home_alive`` whether it lives, ``grace_cutoff`` is ``now`` minus the grace
    period.  ``takes_work`` is False for engines that run only their own
    workflows (``recover=False``, the ``airt`` command).

    >>> c = Candidate("w1", "RUNNING", None, None, "A", "a.ipynb", "/a")
    >>> should_take(c, None, me="B", session="b.ipynb", now="2026-01-01T00:00:06",
    ...             grace_cutoff="2026-01-01T00:00:01", takes_work=True, home_alive=True)
    False
    >>> should_take(c, None, me="A2", session="a.ipynb", now="2026-01-01T00:00:06",
    ...             grace_cutoff="2026-01-01T00:00:01", takes_work=True, home_alive=False)
    True
    """
    if candidate.home == me:
        return True
    if not takes_work:
        return False
    if candidate.home is None:
        return True  # nobody's home (a database from before homes): first come
    if home_alive:
        return False  # its home lives: it is woken there, never moved
    if candidate.session is not None and candidate.session == session:
        return True  # the same notebook after a restart
    if home is None:
        return True  # a home the database has forgotten: long gone
    gone = home.gone_at(now) or now  # found dead just now: its grace starts now
    return gone <= grace_cutoff


def fair_share(unowned: int, live_takers: int) -> int:
    """How many workflows one engine claims in a sweep so that live engines share the work evenly.

    >>> fair_share(3000, 3)
    1000
    >>> fair_share(2, 3)
    1
    """
    takers = max(live_takers, 1)
    return max(-(-unowned // takers), 1 if unowned else 0)


class LeaseKeeper:
    """Renews ``owner``'s lease every ``ttl / 3`` seconds on a thread of its own.

    A failed renewal (a locked database) is logged and tried again after a
    short pause; a lease that ran out meanwhile is caught by the fence of the
    next checkpoint, never silently.  ``on_lost`` is called when the renewal
    finds the engine marked gone by another engine (it was frozen longer than
    its lease): its workflows may have been taken over.
    """

    def __init__(self, store: Store, owner: str, ttl: float, *, on_lost: Callable[[], None] | None = None):
        self._store = store
        self._owner = owner
        self._ttl = ttl
        self._interval = max(ttl / 3, 0.05)
        self._on_lost = on_lost
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="airt-leases", daemon=True)
        self.renewals = 0  # how many renewals committed (tests and benchmarks read it)
        self.longest_gap = 0.0  # the longest time between two renewals, in seconds
        self._last = time.monotonic()

    def start(self) -> None:
        self._thread.start()

    def renew_now(self) -> None:
        ttl, owner = self._ttl, self._owner
        alive = self._store.write(lambda tx: tx.renew(owner, ttl, self._store.now()))
        self.renewals += 1
        now = time.monotonic()
        self.longest_gap = max(self.longest_gap, now - self._last)
        self._last = now
        if not alive:
            log.warning(
                "airt_nb: engine %s was taken for dead (its lease ran out); its workflows may run elsewhere now",
                owner,
            )
            if self._on_lost is not None:
                self._on_lost()

    def _loop(self) -> None:
        pause = self._interval
        while not self._stop.wait(pause):
            try:
                self.renew_now()
                pause = self._interval
            except StoreError as exc:
                pause = min(self._interval, 0.5)
                log.warning("airt_nb: could not renew the lease of %s (%s); trying again", self._owner, exc)
            except Exception:
                pause = self._interval
                log.exception("airt_nb: lease renewal failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)
