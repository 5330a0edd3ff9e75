"""``airt worker``: a headless engine for a server or a container.

A worker is an :class:`~airt_nb.Engine` that takes up work (``recover=True``)
under a session of its own (``worker:<host>:<pid>``), so it continues the
workflows nobody else runs: those of a notebook whose kernel is gone (after
the home grace period), those released by a decision made where nothing
runs them, those a dead machine left.  It fires the schedules that are due
(:class:`~airt_nb.schedules.Scheduler`: each slot once, however many workers
tick).  With ``AIRT_WEBHOOK_URL`` set it delivers the approval webhooks, also
those queued by engines that stopped before sending them.  ``imports`` are
modules imported first, whose ``@action`` functions the workflows it runs
use; ``once`` fires what is due, runs it until it pauses or ends, and exits.

It logs to stderr, prints a health line every ``health_every`` seconds, and
stops gracefully on SIGTERM or SIGINT: no new step starts, the steps in
flight finish and are checkpointed (for at most ``drain_timeout`` seconds),
every lease is released, and the process exits 0; another engine continues
what was left.  A second signal during the drain stops waiting.

On SQLite, run one worker per machine (the database lives on one machine);
on PostgreSQL, as many as you like, anywhere.

Imports no IPython, ipywidgets or pandas.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from .engine import Engine
from .errors import AirtError, WorkflowStateError
from .schedules import Scheduler
from .store.records import SETTLED

__all__ = ["Worker", "main"]

log = logging.getLogger("airt_nb.worker")

HEALTH_EVERY = 60.0
DRAIN_TIMEOUT = 60.0


class Worker:
    """One headless engine and its life cycle (see the module docstring).

    >>> Worker("postgresql://worker@db/airt").run()  # doctest: +SKIP
    0
    """

    def __init__(
        self,
        db: str | None = None,
        *,
        health_every: float = HEALTH_EVERY,
        drain_timeout: float = DRAIN_TIMEOUT,
        session: str | None = None,
        imports: Sequence[str] = (),
        poll: float = 1.0,
        once: bool = False,
        **engine_options: Any,
    ):
        self.db = db
        self.imports = list(imports)
        self.poll = poll
        self.once = once
        self.health_every = health_every
        self.drain_timeout = drain_timeout
        self.session = session or f"worker:{socket.gethostname()}:{os.getpid()}"
        self.engine_options = engine_options
        self.engine: Engine | None = None
        self._stop = threading.Event()
        self._signals = 0

    def stop(self) -> None:
        """Ask the worker to drain and exit (what SIGTERM does)."""
        self._stop.set()

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self._signals += 1
        name = signal.Signals(signum).name
        if self._signals == 1:
            log.info("airt worker: %s received: finishing the steps in flight, then stopping", name)
            self._stop.set()
        else:
            # Leases run out and engine locks vanish with the process: others continue its workflows.
            log.warning("airt worker: %s received again: exiting without waiting for the steps in flight", name)
            _exit(1)

    def run(self) -> int:
        """Open the engine, serve until stopped, drain; returns the exit status."""
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, self._on_signal)
        try:
            for module in self.imports:
                importlib.import_module(module)  # modules whose @action the workflows it runs use
            self.engine = Engine(self.db, recover=True, session=self.session, **self.engine_options)
        except ImportError as exc:
            log.error("airt worker: cannot import %s (%s); check --import and PYTHONPATH", exc.name, exc)
            return 1
        except AirtError as exc:
            log.error("airt worker: %s", " ".join(str(exc).split()))
            return 1
        engine = self.engine
        scheduler = Scheduler(engine)
        summary = engine.last_recovery
        log.info(
            "airt worker: serving %s as %s (session %s); at start: %s",
            engine.db,
            engine.owner_id,
            self.session,
            summary,
        )
        next_health = time.monotonic()
        while not self._stop.is_set():
            if time.monotonic() >= next_health:
                self.health()
                next_health = time.monotonic() + self.health_every
            started = self.run_schedules(scheduler)
            if self.once:
                self.run_here(started)
                break
            self._stop.wait(max(0.0, min(next_health - time.monotonic(), self.poll)))
        began = time.monotonic()
        engine.close(timeout=self.drain_timeout)
        log.info("airt worker: stopped after draining for %.1f s; leases released", time.monotonic() - began)
        stuck = [t for t in threading.enumerate() if t.name.startswith("airt-worker")]
        for t in stuck:
            t.join(0.2)  # idle pool threads are on their way out
        stuck = [t for t in stuck if t.is_alive()]
        if stuck:
            log.warning(
                "airt worker: %d steps still running after %.0f s; exiting without them (they run again elsewhere)",
                len(stuck),
                self.drain_timeout,
            )
            _exit(0)  # the interpreter would wait for those threads forever
        return 0

    def health(self) -> str:
        """Log (and return) one line: what this worker runs and what waits."""
        assert self.engine is not None
        store = self.engine.store
        try:
            line = (
                f"airt worker: {len(store.owned_by(self.engine.owner_id))} running here, "
                f"{store.count_unowned()} waiting for an engine, {store.count_approvals('PENDING')} pending "
                f"approvals, {store.count_deliveries()} webhook deliveries waiting"
            )
        except AirtError as exc:
            line = f"airt worker: cannot read the database ({' '.join(str(exc).split())})"
        log.info(line)
        return line

    def run_schedules(self, scheduler: Scheduler) -> list[str]:
        """Fire the schedules that are due; returns the ids of the workflows this worker started."""
        try:
            return scheduler.tick()
        except AirtError as exc:  # the database is away for a moment: the next tick fires what is due
            log.warning("airt worker: cannot fire schedules (%s)", " ".join(str(exc).split()))
            return []

    def run_here(self, workflow_ids: Sequence[str]) -> None:
        """Run these workflows until each pauses, ends, or is taken elsewhere (``once``)."""
        assert self.engine is not None
        for workflow_id in workflow_ids:
            with contextlib.suppress(WorkflowStateError):  # its sweep may have run it already
                self.engine.resume(workflow_id)
            run = self.engine.get(workflow_id)
            while self.engine.is_local(workflow_id) and run.status not in SETTLED and not self._stop.is_set():
                with contextlib.suppress(TimeoutError):
                    run.wait(timeout=0.2)


def _exit(code: int) -> None:
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main(args: Any) -> int:
    """``airt worker``: logging to stderr, then :meth:`Worker.run`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    options: dict[str, Any] = {}
    if args.max_workers:
        options["max_workers"] = args.max_workers
    worker = Worker(
        getattr(args, "db", None),
        health_every=args.health_every,
        drain_timeout=args.drain_timeout,
        session=args.session,
        imports=args.imports,
        poll=args.poll,
        once=args.once,
        **options,
    )
    return worker.run()
