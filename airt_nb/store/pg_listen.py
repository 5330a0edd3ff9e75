"""A PostgreSQL store's listener: wake-ups by LISTEN/NOTIFY, and the engine's session lock.

One connection per store, on a thread of its own, does two things:

* ``LISTEN airt``: another engine that needs this one to act (a decision, a
  cancel, work released) sends ``NOTIFY airt, '<owner id>'`` (or ``'*'`` for
  every engine) in the transaction that records it, so the wake-up is
  delivered only once the change is committed.  An engine's own checkpoints
  never notify anyone.
* it holds the engine's **session advisory lock** (a 64-bit hash of its owner
  id): the server drops it the moment the session ends — the process was
  killed, the machine vanished (TCP keepalives), the connection was cut —
  so any engine can tell in one query which engines live (``pg_locks``).

When the connection is lost (a server restart, a network cut) the thread
reconnects with back-off, listens again, takes the lock again and calls the
callback once: a notification may have been missed, so the engine sweeps.
The engine's periodic sweep is the slow fallback while it cannot reconnect.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import psycopg

from ..errors import StoreError

if TYPE_CHECKING:
    from .postgres import PostgresStore

__all__ = ["CHANNEL", "Listener"]

log = logging.getLogger("airt_nb")

CHANNEL = "airt"
TICK = 1.0  # seconds a wait for notifications lasts before the thread looks at its stop flag again
_LOCK = "SELECT pg_try_advisory_lock(hashtextextended(%s, 7301))"


class Listener:
    """The listener connection of one :class:`~.postgres.PostgresStore` (see the module docstring)."""

    def __init__(self, store: PostgresStore):
        self._store = store
        self._conn: Any = None
        self._lock = threading.Lock()  # the connection, until the thread owns it
        self._owner: str | None = None  # whose session lock this connection holds
        self._locked = False
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._stop_channel = f"airt_stop_{secrets.token_hex(8)}"
        self.reconnects = 0  # how often the connection was opened again (tests read it)

    def _connection(self) -> Any:
        if self._conn is None or self._conn.closed or self._conn.broken:
            if self._conn is not None:
                with contextlib.suppress(Exception):
                    self._conn.close()
            self._conn = None
            self._locked = False
            self._conn = self._store.raw_connect("listen")
        return self._conn

    def _relock(self, conn: Any) -> bool:
        if self._owner is None or self._locked:
            return True
        self._locked = bool(conn.execute(_LOCK, (self._owner,)).fetchone()[0])
        return self._locked

    def hold(self, owner: str) -> None:
        """Take ``owner``'s session lock now (before the engine registers: it never looks dead)."""
        with self._lock:
            self._owner = owner
            try:
                got = self._relock(self._connection())
            except psycopg.Error as exc:
                raise self._store.store_error(exc, "take the engine's lock") from exc
        if not got:
            raise StoreError(
                f"database {self._store.path}: the lock of engine {owner} is held by another session; "
                "an engine id is used once, so another process runs with this id",
                path=self._store.path,
            )

    def start(self, owner: str, callback: Callable[[], None]) -> None:
        if self._thread is not None:
            raise StoreError("this store already has a listener", path=self._store.path)
        with self._lock:
            try:
                self._listen(self._connection())
            except psycopg.Error as exc:
                raise self._store.store_error(exc, "listen for wake-ups") from exc
        self._thread = threading.Thread(target=self._loop, args=(owner, callback), name="airt-listen", daemon=True)
        self._thread.start()

    def _listen(self, conn: Any) -> None:
        conn.execute(f"LISTEN {CHANNEL}")
        conn.execute(f"LISTEN {self._stop_channel}")

    def _loop(self, owner: str, callback: Callable[[], None]) -> None:
        delay = 0.05
        lost = waiting = False
        while not self._stop.is_set():
            try:
                conn = self._connection()
                if lost:
                    self._listen(conn)
                    self.reconnects += 1
                if not self._relock(conn) and not waiting:
                    # Our previous session still holds it (the server has not noticed it is gone yet).
                    log.warning("airt_nb: engine %s waits for its old session's lock to be released", owner)
                waiting = not self._locked
                if lost:
                    lost = False
                    delay = 0.05
                    _call(callback)  # a notification may have come while the connection was down
                for note in conn.notifies(timeout=TICK):
                    if self._stop.is_set():
                        return
                    if note.channel == CHANNEL and note.payload in (owner, "*"):
                        _call(callback)
            except psycopg.Error as exc:
                if self._stop.is_set():
                    return
                if not lost:
                    log.warning(
                        "airt_nb: lost the wake-up connection to %s (%s); reconnecting",
                        self._store.path,
                        self._store.scrub(" ".join(str(exc).split())),
                    )
                lost = True
                with contextlib.suppress(Exception):
                    if self._conn is not None:
                        self._conn.close()
                self._stop.wait(delay)
                delay = min(delay * 2, 2.0)

    def stop(self) -> None:
        """End the thread (a NOTIFY on its private channel wakes it at once)."""
        self._stop.set()
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return
        with contextlib.suppress(Exception):
            self._store.notify_now(self._stop_channel)
        thread.join(timeout=TICK + 1)

    def close(self) -> None:
        """Close the connection: the engine's lock is released, its LISTEN ends."""
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(Exception):
                    self._conn.close()
                self._conn = None


def _call(callback: Callable[[], None]) -> None:
    try:
        callback()
    except Exception:  # an observer never stops the listener
        log.exception("airt_nb wake-up callback failed")
