"""The SQLite store: one file in WAL mode, for one machine.

One write connection, shared by all threads, with group commit
(:class:`~.base.GroupCommit`); readers use one connection per thread and, in
WAL mode, never block the writer nor wait for it.  Every statement is in
:mod:`.writes` and :mod:`.reads`; what is SQLite's own lives here: the
pragmas, the file's permissions, the migration runner, error translation and
the wake-ups.

Wake-ups: another engine that needs this one to act (a decision, a cancel)
bumps this engine's ``engines.wake`` counter, and work nobody runs bumps the
``work`` counter of ``airt_signals``; a listener thread reads both every
50 ms on its own connection (a read, never the write lock).  An engine's own
checkpoints never wake anything.

Never call user code or HTTP inside an op: ops run while the write lock is held.
"""

from __future__ import annotations

import contextlib
import os
import random
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from ..errors import StoreError
from ..timeutil import now_iso
from .base import Completion, GroupCommit, LeaseLostError, _Pending
from .migrations import LATEST, MIGRATIONS
from .protocol import Store
from .writes import Tx

__all__ = ["LeaseLostError", "SQLiteStore", "Tx"]

T = TypeVar("T")

SIGNAL_POLL = 0.05  # seconds between two looks at the wake-up counters


class _Reader:
    """One thread's read connection: closed when that thread ends (its thread-local goes away)
    or when the store closes, so threads that come and go do not pile up connections."""

    __slots__ = ("__weakref__", "conn")

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.conn.close()

    def __del__(self) -> None:
        self.close()


class SQLiteStore(Store):
    """All of airt_nb's state in one SQLite file (WAL mode).

    ``durability="normal"`` (``synchronous=NORMAL``): a committed checkpoint
    survives the process being killed at any instant; the last few commits
    may be lost if the machine loses power.  ``durability="full"``
    (``synchronous=FULL``) fsyncs every commit and survives power loss too.

    A new database file is created readable and writable by its owner only
    (0600); its ``-wal`` and ``-shm`` files follow the main file's mode, so
    ``chmod g+rw airt.db`` shares a database with a group.
    """

    dialect = "sqlite"

    def __init__(self, path: str | os.PathLike[str], *, durability: str = "normal", busy_timeout: float = 10.0):
        if durability not in ("normal", "full"):
            raise StoreError(f"durability must be 'normal' or 'full', got {durability!r}", path=str(path))
        self.path = str(path)
        self.durability = durability
        self._busy_ms = int(busy_timeout * 1000)
        self._local = threading.local()
        self._readers: weakref.WeakSet[_Reader] = weakref.WeakSet()
        self._readers_lock = threading.Lock()
        self._closed = False
        self._listener: threading.Thread | None = None
        self._stop_listening = threading.Event()
        self._check_path()
        if os.path.exists(self.path):
            self.check_writable()  # before connecting: a refused database gets no -wal/-shm files and no open file
        self._create_private()
        self._conn = self._connect()
        try:
            self._tx = Tx(self._conn, "sqlite")
            self._gc = GroupCommit(self._run_batch, self._closed_error)
            self._migrate()
        except BaseException:
            self._conn.close()  # a refused database leaves no open file behind
            raise

    # -- opening ----------------------------------------------------------------------------------

    def _check_path(self) -> None:
        if self.path == ":memory:":
            raise StoreError(
                "an in-memory database cannot be shared between threads and is lost on exit; give a file path",
                path=self.path,
            )
        folder = Path(self.path).resolve().parent
        if not folder.is_dir():
            raise StoreError(
                f"cannot open database {self.path}: folder {folder} does not exist; create it or set AIRT_DB "
                "to a path in an existing folder",
                path=self.path,
            )
        if Path(self.path).is_dir():
            raise StoreError(f"cannot open database {self.path}: it is a folder; give a file path", path=self.path)

    def _create_private(self) -> None:
        """Create a missing database file 0600: it holds inputs, outputs and approvals."""
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            return
        except OSError as exc:
            raise StoreError(
                f"cannot create database {self.path} ({exc.strerror}); check the folder's permissions",
                path=self.path,
            ) from None
        os.close(fd)

    def _connect(self, *, reader: bool = False) -> sqlite3.Connection:
        conn = None
        try:
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=self._busy_ms / 1000
            )
            # WAL: readers (frames, dashboards, other kernels) never block the writer nor wait for it.
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal" and not reader:
                raise StoreError(
                    f"database {self.path} cannot use WAL mode (got {mode}); put it on a local disk",
                    path=self.path,
                )
            # NORMAL survives a process crash in WAL mode; FULL also survives power loss (fsync per commit).
            conn.execute(f"PRAGMA synchronous = {'FULL' if self.durability == 'full' else 'NORMAL'}")
            # Wait for another writer instead of failing at once with "database is locked".
            conn.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
            # Steps, compensations and approvals must belong to an existing workflow.
            conn.execute("PRAGMA foreign_keys = ON")
            if reader:
                # A reader never writes by accident.
                conn.execute("PRAGMA query_only = ON")
            return conn
        except sqlite3.DatabaseError as exc:
            if conn is not None:
                conn.close()
            raise self.store_error(exc, "open") from exc
        except BaseException:
            if conn is not None:
                conn.close()
            raise

    def store_error(self, exc: sqlite3.Error, doing: str, *, waited: float | None = None) -> StoreError:
        """The :class:`StoreError` that says what ``exc`` means while ``doing`` and what to do about it."""
        text = str(exc)
        low = text.lower()
        if "not a database" in low or "malformed" in low or "corrupt" in low:
            msg = (
                f"database {self.path} is not a valid SQLite database or is corrupted ({text}); "
                "restore it from a backup, or move it away to start a new one"
            )
        elif "readonly" in low or "read-only" in low:
            msg = (
                f"database {self.path} is read-only ({text}); make the file and its folder writable "
                "(the -wal and -shm files live next to it), or point AIRT_DB elsewhere"
            )
        elif "locked" in low or "busy" in low:
            seconds = self._busy_ms / 1000 if waited is None else waited
            msg = (
                f"database {self.path} stayed locked by another process for more than "
                f"{seconds:.1f} s while trying to {doing}; close the process holding it "
                "(a long transaction in another tool?) and try again"
            )
        elif "unable to open" in low:
            msg = f"cannot open database {self.path} ({text}); check the path and its permissions"
        elif "disk" in low and "full" in low:
            msg = f"database {self.path}: the disk is full ({text}); free some space and try again"
        else:
            msg = f"database {self.path}: {text} while trying to {doing}"
        return StoreError(msg, path=self.path)

    def _migrate(self) -> None:
        conn = self._conn
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise self.store_error(exc, "read the schema version") from exc
        if version > LATEST:
            raise StoreError(
                f"database {self.path} was written by a newer airt_nb (schema version {version}, this one "
                f"knows up to {LATEST}); upgrade airt_nb (pip install -U airt_nb) to use it",
                path=self.path,
            )
        if version == LATEST:
            return
        # Table rebuilds must not cascade deletes into the rows that refer to the rebuilt table;
        # foreign keys can only be switched outside a transaction.
        conn.execute("PRAGMA foreign_keys = OFF")
        try:
            for m in MIGRATIONS:
                if m.number <= version:
                    continue
                try:
                    self._begin()
                    current = conn.execute("PRAGMA user_version").fetchone()[0]
                    if current >= m.number:  # another process migrated meanwhile
                        conn.execute("ROLLBACK")
                        continue
                    for statement in _split_sql(m.sqlite):
                        conn.execute(statement)
                    broken = conn.execute("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise sqlite3.IntegrityError(f"migration {m.number} broke foreign keys: {broken[:3]}")
                    conn.execute(
                        "INSERT INTO airt_meta (key, value) VALUES ('schema_version', ?) "
                        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                        (str(m.number),),
                    )
                    conn.execute(f"PRAGMA user_version = {int(m.number)}")
                    conn.execute("COMMIT")
                except sqlite3.DatabaseError as exc:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise self.store_error(exc, f"apply migration {m.number} ({m.title})") from exc
        finally:
            conn.execute("PRAGMA foreign_keys = ON")

    def check_writable(self) -> None:
        """Raise now if this database cannot be written, rather than at the first checkpoint.

        SQLite opens a file it may not write read-only without complaint, so an
        engine would only fail when a workflow first records something.  Checked
        with ``os.access`` on the file and its WAL companions: an SQL write probe
        would wait for any other process's write lock.
        """
        paths = [self.path, f"{self.path}-wal", f"{self.path}-shm"]
        if not all(os.path.exists(p) for p in paths[1:]):
            paths.append(str(Path(self.path).resolve().parent))  # where SQLite must create them
        for path in paths:
            if os.path.exists(path) and not os.access(path, os.W_OK):
                raise StoreError(
                    f"database {self.path} is read-only (no permission to write {path}); make the file and its "
                    "folder writable (the -wal and -shm files live next to it), or point AIRT_DB elsewhere",
                    path=self.path,
                )

    @property
    def schema_version(self) -> int:
        return int(self._read().execute("PRAGMA user_version").fetchone()[0])

    # -- writing ------------------------------------------------------------------------------------

    def write(self, op: Callable[[Tx], T]) -> T:
        """Run ``op(tx)`` in a transaction and commit it (possibly together with others)."""
        return self._gc.write(op)

    def complete(self, completion: Completion) -> str | None:
        """Commit a step's completion (one row, fenced); returns the workflow's pending request."""
        # Without an intent or further ops the completion is one UPDATE: alone, it commits by itself,
        # with no BEGIN and COMMIT around it.
        return self._gc.write(completion.apply, single=completion.intent is None and not completion.more)

    def _closed_error(self) -> StoreError:
        return StoreError(f"database {self.path} is closed", path=self.path)

    def _begin(self) -> None:
        delay = 0.01
        began = time.monotonic()
        for attempt in range(6):
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if ("locked" not in str(exc).lower() and "busy" not in str(exc).lower()) or attempt == 5:
                    raise self.store_error(exc, "start a transaction", waited=time.monotonic() - began) from exc
                time.sleep(delay * (1 + random.random()))
                delay *= 2
            except sqlite3.DatabaseError as exc:
                raise self.store_error(exc, "start a transaction") from exc

    def _run_batch(self, batch: list[_Pending]) -> None:
        conn = self._conn
        if len(batch) == 1 and batch[0].single:
            item = batch[0]
            try:
                item.result = item.op(self._tx)
                return
            except sqlite3.OperationalError as exc:
                text = str(exc).lower()
                if "locked" not in text and "busy" not in text:
                    item.error = self._op_error(exc)
                    return
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                # busy beyond busy_timeout: once more in a transaction, whose start waits with back-off
            except BaseException as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                item.error = self._op_error(exc)
                return
        try:
            self._begin()
        except StoreError as exc:
            for item in batch:
                item.error = exc
            return
        try:
            if len(batch) == 1:
                item = batch[0]
                try:
                    item.result = item.op(self._tx)
                except BaseException as exc:
                    conn.execute("ROLLBACK")
                    item.error = self._op_error(exc)
                    return
            else:
                for item in batch:
                    if item.single:  # one statement: a failed statement undoes itself, no savepoint needed
                        try:
                            item.result = item.op(self._tx)
                        except BaseException as exc:
                            item.error = self._op_error(exc)
                        continue
                    conn.execute("SAVEPOINT op")
                    try:
                        item.result = item.op(self._tx)
                        conn.execute("RELEASE op")
                    except BaseException as exc:
                        conn.execute("ROLLBACK TO op")
                        conn.execute("RELEASE op")
                        item.error = self._op_error(exc)
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            error = self.store_error(exc, "commit")
            for item in batch:
                if item.error is None:
                    item.error = error

    def _op_error(self, exc: BaseException) -> BaseException:
        """What a failed op raises to its caller: SQLite's own errors become a StoreError naming the file."""
        if isinstance(exc, sqlite3.Error):
            error = self.store_error(exc, "write")
            error.__cause__ = exc
            return error
        return exc

    # -- clocks and wake-ups --------------------------------------------------------------------------

    def now(self) -> str:
        """This machine's clock: a SQLite database is only ever used from one machine."""
        return now_iso()

    def engines_alive(self, owners: Sequence[str]) -> set[str] | None:
        return None  # SQLite cannot tell; the engine checks the process and the lease

    def listen(self, owner: str, callback: Callable[[], None]) -> None:
        """Call ``callback()`` when another engine bumps ``owner``'s wake-up counter or announces work."""
        if self._listener is not None:
            raise StoreError("this store already has a listener", path=self.path)

        def loop() -> None:
            last: tuple[int, int] | None = None
            while not self._stop_listening.wait(SIGNAL_POLL):
                try:
                    token = self.signals(owner)
                except StoreError:
                    continue  # a locked or closing database: look again next time
                if token != last:
                    if last is not None:
                        try:
                            callback()
                        except Exception:  # an observer never stops the listener
                            import logging

                            logging.getLogger("airt_nb").exception("airt_nb wake-up callback failed")
                    last = token

        self._listener = threading.Thread(target=loop, name="airt-signals", daemon=True)
        self._listener.start()

    def data_version(self) -> int:
        """Changes whenever any connection (this process or another) commits."""
        return int(self.query("PRAGMA data_version")[0][0])

    # -- reading -------------------------------------------------------------------------------------

    def _read(self) -> sqlite3.Connection:
        reader: _Reader | None = getattr(self._local, "reader", None)
        if reader is None:
            if self._closed:
                raise self._closed_error()
            reader = _Reader(self._connect(reader=True))
            self._local.reader = reader
            with self._readers_lock:
                self._readers.add(reader)
        return reader.conn

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[tuple[Any, ...]]:
        """Run one read-only statement of the store's and return all rows."""
        try:
            return self._read().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise self.store_error(exc, "read") from exc

    def columns_and_rows(self, sql: str, params: Sequence[Any]) -> tuple[list[str], list[tuple[Any, ...]]]:
        try:
            cur = self._read().execute(sql, params)
            return [d[0] for d in cur.description], cur.fetchall()
        except sqlite3.Error as exc:
            raise self.store_error(exc, "read") from exc

    # -- closing ----------------------------------------------------------------------------------------

    def close(self) -> None:
        self._stop_listening.set()
        listener = self._listener
        if listener is not None and listener is not threading.current_thread():
            listener.join(timeout=2)
        if self._closed:
            return
        self._gc.close()
        self._closed = True
        with self._readers_lock:
            readers = list(self._readers)
            self._readers = weakref.WeakSet()
        for reader in readers:
            reader.close()
        with contextlib.suppress(sqlite3.Error):
            self._conn.close()


def _split_sql(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]
