"""Storage: the :class:`Store` protocol, its SQLite and PostgreSQL backends, migrations and records.

:func:`open_store` picks the backend from what names the database: a file
path (or ``sqlite:///path``) opens :class:`SQLiteStore`; a
``postgresql://`` URL opens :class:`~.postgres.PostgresStore` (psycopg 3,
imported only then).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import AirtError, StoreError
from .base import Completion, LeaseLostError, redact
from .protocol import Store
from .records import (
    ApprovalRecord,
    CompensationRecord,
    DeliveryRecord,
    EngineRecord,
    EventRecord,
    StepRecord,
    WorkflowRecord,
)
from .sqlite import SQLiteStore
from .writes import Tx

__all__ = [
    "ApprovalRecord",
    "CompensationRecord",
    "Completion",
    "DeliveryRecord",
    "EngineRecord",
    "EventRecord",
    "LeaseLostError",
    "SQLiteStore",
    "StepRecord",
    "Store",
    "Tx",
    "WorkflowRecord",
    "default_db",
    "is_postgres_url",
    "open_store",
    "opened",
    "redact",
]


def default_db() -> str:
    """``$AIRT_DB``, else ``./airt.db``."""
    return os.environ.get("AIRT_DB") or "airt.db"


def is_postgres_url(db: str) -> bool:
    return db.startswith(("postgresql://", "postgres://"))


def open_store(
    db: str | os.PathLike[str] | None = None, *, durability: str = "normal", busy_timeout: float = 10.0, **options: Any
) -> Store:
    """Open (and migrate) the database named by ``db``, ``$AIRT_DB`` or ``./airt.db``.

    >>> store = open_store(tmp_path / "airt.db")         # doctest: +SKIP
    >>> store = open_store("postgresql://ann@db/airt")   # doctest: +SKIP
    """
    text = os.fspath(db) if db is not None else default_db()
    if is_postgres_url(text):
        try:
            from .postgres import PostgresStore
        except ImportError as exc:
            raise StoreError(
                f"{redact(text)} is a PostgreSQL database, which needs psycopg 3 ({exc}); "
                'install it with: pip install "airt_nb[postgres]"',
                path=redact(text),
            ) from None
        return PostgresStore(text, durability=durability, busy_timeout=busy_timeout, **options)
    if text.startswith("sqlite:///"):
        text = text[len("sqlite:///") :]
    elif "://" in text:
        raise StoreError(
            f"{redact(text)}: unknown kind of database; give a SQLite file path or a postgresql:// URL",
            path=redact(text),
        )
    return SQLiteStore(text, durability=durability, busy_timeout=busy_timeout)


@contextlib.contextmanager
def opened(db: Any = None, *, must_exist: bool = True) -> Iterator[Store]:
    """The store ``db`` names, for reading: a store itself, an engine's, or one opened (and closed) here.

    ``db`` may be a store, anything with a ``store`` attribute (an engine), a
    path or URL, or None (``$AIRT_DB`` or ``./airt.db``).  A SQLite file that does not exist is a
    :class:`~airt_nb.StoreError` when ``must_exist`` (a typo must not create
    an empty database).
    """
    if db is not None and hasattr(db, "write") and hasattr(db, "query"):
        yield db
        return
    inner = getattr(db, "store", None) if db is not None else None
    if inner is not None:
        yield inner
        return
    if db is not None and not isinstance(db, str | os.PathLike):
        raise AirtError(
            f"db= is an Engine, a database's path or URL, or None for $AIRT_DB / ./airt.db; not {type(db).__name__}"
        )
    text = os.fspath(db) if db is not None else default_db()
    if must_exist and not is_postgres_url(text):
        path = text[len("sqlite:///") :] if text.startswith("sqlite:///") else text
        if not Path(path).exists():
            raise StoreError(
                f"no airt_nb database at {path}; pass db= (or set AIRT_DB) to the file your engine uses",
                path=path,
            )
    store = open_store(text)
    try:
        yield store
    finally:
        store.close()
