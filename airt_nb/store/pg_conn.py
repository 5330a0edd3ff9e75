"""A PostgreSQL store's connections: how they are opened, lent, and what their errors mean.

:class:`Connections` opens autocommit connections (keepalives on, the
write connection's ``synchronous_commit`` set by the durability), tells
transient errors (a lost connection, a server restarting, serialization
failures, deadlocks) from the others, and turns psycopg's errors into
:class:`~airt_nb.StoreError` messages that name the database without its
password.  :class:`Readers` lends a few read-only connections, one query at a
time; :class:`Cursor` lets the shared SQL (``?`` / ``:name`` placeholders) run
on psycopg.
"""

from __future__ import annotations

import contextlib
import functools
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from ..errors import StoreError
from .base import to_pyformat

__all__ = ["Connections", "Cursor", "Readers", "password_of", "sql_for"]

sql_for = functools.lru_cache(maxsize=2048)(to_pyformat)


class Cursor:
    """What :class:`Tx` and the reads expect of a cursor, on psycopg: ``?`` / ``:name`` placeholders."""

    __slots__ = ("_cur",)

    def __init__(self, cur: Any):
        self._cur = cur

    def execute(self, sql: str, params: Any = (), *, prepare: bool | None = None) -> Any:
        return self._cur.execute(sql_for(sql), params, prepare=prepare)

    def executemany(self, sql: str, rows: Any) -> Any:
        self._cur.executemany(sql_for(sql), list(rows))
        return self._cur


class Readers:
    """A few read-only connections, lent to one query at a time; broken ones are dropped."""

    def __init__(self, connect: Callable[[], Any], size: int):
        self._connect = connect
        self._size = size
        self._idle: list[Any] = []
        self._count = 0
        self._cv = threading.Condition()
        self.closed = False

    @contextlib.contextmanager
    def take(self) -> Iterator[Any]:
        with self._cv:
            while not self._idle and self._count >= self._size:
                self._cv.wait()
            conn = self._idle.pop() if self._idle else None
            if conn is None:
                self._count += 1
        if conn is None:
            try:
                conn = self._connect()
            except BaseException:
                with self._cv:
                    self._count -= 1
                    self._cv.notify()
                raise
        try:
            yield conn
        finally:
            with self._cv:
                if conn.broken or conn.closed or self.closed:
                    self._count -= 1
                    with contextlib.suppress(Exception):
                        conn.close()
                else:
                    self._idle.append(conn)
                self._cv.notify()

    def close(self) -> None:
        with self._cv:
            self.closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            with contextlib.suppress(Exception):
                conn.close()


class Connections:
    """Opening connections and translating errors, for one database URL (see the module docstring)."""

    url: str
    path: str
    durability: str
    _busy: float
    _secret: str | None

    def raw_connect(self, purpose: str, *, read_only: bool = False, **extra: Any) -> Any:
        """A new autocommit connection (psycopg errors are the caller's to translate)."""
        # Keepalives: a machine that vanished without closing its connection loses its lock (and
        # looks dead) within about half a minute, instead of the kernel's two hours.
        options = "-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3"
        if purpose == "write" and self.durability == "normal":
            # Checkpoints commit without waiting for the disk; what others rely on (decisions, requests,
            # claims, new workflows, engines' leases: Tx.synchronous) waits for it, per transaction.
            options += " -c synchronous_commit=off"
        if read_only:
            options += " -c default_transaction_read_only=on"
        kwargs: dict[str, Any] = {
            "autocommit": True,
            "connect_timeout": max(2, int(self._busy)),
            "keepalives": 1,
            "keepalives_idle": 10,
            "keepalives_interval": 5,
            "keepalives_count": 3,
            "options": options,
        }
        from psycopg.conninfo import conninfo_to_dict

        given = conninfo_to_dict(self.url)
        if "application_name" not in given:
            kwargs["application_name"] = f"airt_nb {purpose}"
        if "options" in given:
            kwargs["options"] = f"{given['options']} {options}"
        kwargs.update(extra)
        return psycopg.connect(self.url, **kwargs)

    def _connect(self, purpose: str, *, read_only: bool = False) -> Any:
        try:
            return self.raw_connect(purpose, read_only=read_only)
        except psycopg.Error as exc:
            raise self.store_error(exc, "connect") from exc

    def scrub(self, text: str) -> str:
        """``text`` without the password (psycopg's messages never carry it; ours must not either)."""
        return text.replace(self._secret, "***") if self._secret else text

    def store_error(self, exc: BaseException, doing: str) -> StoreError:
        """The :class:`StoreError` that says what ``exc`` means while ``doing`` (password removed)."""
        text = self.scrub(" ".join(str(exc).split()))
        state = getattr(exc, "sqlstate", None)
        if doing == "connect":
            msg = (
                f"cannot connect to database {self.path} ({text}); check the host, port, database name, "
                "user and password in the URL (AIRT_DB), and that the server accepts connections"
            )
        elif state == "42501":
            msg = (
                f"database {self.path}: permission denied ({text}) while trying to {doing}; the owner of the "
                "database can give this role access with: airt --db OWNER_URL db grant USER"
            )
        elif state == "25006" or (state or "").startswith("25"):
            msg = f"database {self.path} is read-only here ({text}); point AIRT_DB at the primary server"
        elif state == "53300":
            msg = f"database {self.path} has no connection slot left ({text}); raise max_connections or close idle clients"
        elif self._lost(exc, None):
            msg = (
                f"lost the connection to database {self.path} ({text}) while trying to {doing}, for more than "
                f"{self._busy:.0f} s; check that the server runs and is reachable"
            )
        else:
            msg = f"database {self.path}: {text} while trying to {doing}"
        return StoreError(msg, path=self.path)

    @staticmethod
    def _lost(exc: BaseException, conn: Any) -> bool:
        if isinstance(exc, pg_errors.AdminShutdown | pg_errors.CrashShutdown | pg_errors.CannotConnectNow):
            return True
        if conn is not None and (conn.broken or conn.closed):
            return True
        return type(exc) is psycopg.OperationalError  # connection failures carry no sqlstate

    def _transient(self, exc: BaseException, conn: Any) -> str | None:
        """``"retry"`` (run the transaction again), ``"lost"`` (reconnect first) or None."""
        if isinstance(exc, pg_errors.SerializationFailure | pg_errors.DeadlockDetected):
            return "retry"
        if self._lost(exc, conn):
            return "lost"
        return None

    def _pause(self, began: float, delay: float) -> float:
        """Sleep before another try; returns the next delay."""
        time.sleep(min(delay * (1 + random.random()), max(0.0, began + self._busy - time.monotonic())))
        return min(delay * 2, 1.0)

    def _closed_error(self) -> StoreError:
        return StoreError(f"database {self.path} is closed", path=self.path)


def password_of(url: str) -> str | None:
    try:
        from psycopg.conninfo import conninfo_to_dict

        value = conninfo_to_dict(url).get("password")
    except Exception:
        return None
    return str(value) if value else None
