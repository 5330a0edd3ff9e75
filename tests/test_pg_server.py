"""The PostgreSQL fixtures: a real server, a fresh database per test, roles with their own passwords, no orphans."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import IN_CI, poll_until, require_tool
from pg_server import PgServer

# Outside CI a machine without psycopg skips; under CI it must be there.
psycopg = importlib.import_module("psycopg") if IN_CI else pytest.importorskip("psycopg")

ROOT = Path(__file__).resolve().parents[1]


def postgres_alive(pid: int) -> bool:
    """A live (not zombie) process ``pid`` that is a postgres process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state != "Z" and comm == "postgres"


def children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int(entry.joinpath("stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                out.append(int(entry.name))
    return out


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def with_password(url: str, password: str) -> str:
    scheme, rest = url.split("://", 1)
    auth, host = rest.split("@", 1)
    return f"{scheme}://{auth.split(':', 1)[0]}:{password}@{host}"


def test_pg_url_is_a_fresh_empty_database_that_wants_the_password(pg_url: str) -> None:
    with psycopg.connect(pg_url) as conn:
        db, user, superuser = conn.execute(
            "SELECT current_database(), session_user, current_setting('is_superuser')"
        ).fetchone()
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()[0]

    assert pg_url.startswith("postgresql://postgres:")
    assert "@127.0.0.1:" in pg_url
    assert (db, user, superuser, tables) == (pg_url.rsplit("/", 1)[1], "postgres", "on", 0)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(with_password(pg_url, "wrong")).close()


def test_two_databases_are_isolated(pg_server: PgServer, pg_url: str) -> None:
    other_url = pg_server.create_database("airt_isolation_other")
    try:
        with psycopg.connect(pg_url, autocommit=True) as a, psycopg.connect(other_url, autocommit=True) as b:
            a.execute("CREATE TABLE t (x int)")
            a.execute("INSERT INTO t VALUES (1)")
            with pytest.raises(psycopg.errors.UndefinedTable):
                b.execute("SELECT * FROM t")
            b.execute("CREATE TABLE t (x int)")  # same name, another database

            assert a.execute("SELECT count(*) FROM t").fetchone()[0] == 1
            assert b.execute("SELECT count(*) FROM t").fetchone()[0] == 0
    finally:
        pg_server.drop_database("airt_isolation_other")


def test_a_role_logs_in_with_its_own_password_and_only_gets_what_is_granted(pg_url: str, pg_role) -> None:
    alice = pg_role("alice")
    bob = pg_role("bob", password="bob's secret")
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute("CREATE TABLE approvals (decided_by text)")

    with psycopg.connect(alice, autocommit=True) as conn:
        who = conn.execute("SELECT session_user, current_setting('is_superuser'), current_database()").fetchone()
        assert who == ("alice", "off", pg_url.rsplit("/", 1)[1])
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO approvals VALUES (session_user)")
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute("GRANT INSERT ON approvals TO bob")
    with psycopg.connect(bob, autocommit=True) as conn:
        conn.execute("INSERT INTO approvals VALUES (session_user)")
    with psycopg.connect(pg_url) as admin:
        assert admin.execute("SELECT decided_by FROM approvals").fetchall() == [("bob",)]

    assert ":bob%27s%20secret@" in bob
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(with_password(alice, "guess")).close()


def test_durable_server_restarts_on_the_same_url_and_is_gone_after_stop(pg_server: PgServer) -> None:
    server = PgServer(durable=True, binaries=pg_server.binaries)
    try:
        server.start()
        url = server.create_database("keep")
        settings_sql = "SELECT current_setting('fsync'), current_setting('full_page_writes')"
        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.execute(settings_sql).fetchone() == ("on", "on")
            conn.execute("CREATE TABLE t AS SELECT 42 AS x")
            conn.execute("CHECKPOINT")
        assert not str(server.dir).startswith("/dev/shm")  # fsync on tmpfs would measure nothing
        old_pid = server.pid

        server.restart()

        assert server.pid != old_pid
        assert not postgres_alive(old_pid)
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT x FROM t").fetchone() == (42,)
        pid, port, directory, kids = server.pid, server.port, server.dir, children(server.pid)
        assert kids  # checkpointer, walwriter, ...
    finally:
        server.stop()

    assert server.pid is None
    assert not postgres_alive(pid)
    assert not [k for k in kids if postgres_alive(k)]
    assert not port_open(port)
    assert not directory.exists()


# -- the fixtures' life cycle, seen from outside a pytest session -------------------------------

INNER_TESTS = """
import json, os, time
from pathlib import Path

INFO = Path(os.environ["PG_INFO"])

def record(**facts):
    INFO.write_text(INFO.read_text() + json.dumps(facts) + "\\n" if INFO.exists() else json.dumps(facts) + "\\n")

def test_first(pg_server, pg_url, pg_role):
    pg_role("carol")
    with pg_server.connect() as conn:
        kids = [r[0] for r in conn.execute("SELECT pid FROM pg_stat_activity WHERE pid <> pg_backend_pid()")]
    record(pid=pg_server.pid, port=pg_server.port, dir=str(pg_server.dir), url=pg_url, kids=kids)
    if os.environ.get("PG_HANG"):
        time.sleep(120)

def test_second(pg_server, pg_url):
    with pg_server.connect() as conn:
        dbs = [r[0] for r in conn.execute("SELECT datname FROM pg_database")]
        roles = [r[0] for r in conn.execute("SELECT rolname FROM pg_roles")]
    record(url=pg_url, dbs=dbs, roles=roles)
"""


def run_inner(tmp_path: Path, hang: str = "") -> subprocess.Popen[str]:
    (tmp_path / "test_inner.py").write_text(INNER_TESTS)
    # Only our conftest as a plugin: the suite's other plugins (nbval, ...) would triple the start-up time.
    env = dict(os.environ, PG_INFO=str(tmp_path / "info.jsonl"), PG_HANG=hang, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "tests"), str(ROOT), env.get("PYTHONPATH", "")])
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "conftest", "-p", "no:cacheprovider", "test_inner.py"]
    cmd += ["-c", os.devnull, "--rootdir", str(tmp_path)]
    return subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def read_info(tmp_path: Path) -> list[dict]:
    path = tmp_path / "info.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def assert_server_gone(first: dict) -> None:
    assert poll_until(lambda: not postgres_alive(first["pid"]), timeout=10)
    assert poll_until(lambda: not [k for k in first["kids"] if postgres_alive(k)], timeout=10)
    assert not port_open(first["port"])


def test_session_gives_each_test_its_own_database_cleans_up_and_stops_the_server(
    pg_server: PgServer, tmp_path: Path
) -> None:
    proc = run_inner(tmp_path)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    first, second = read_info(tmp_path)

    assert first["url"] != second["url"]
    assert first["url"].rsplit("/", 1)[1] not in second["dbs"]  # dropped after the first test
    assert "carol" not in second["roles"]
    assert first["kids"]
    assert_server_gone(first)
    assert not Path(first["dir"]).exists()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_an_interrupted_session_leaves_no_server_behind(
    pg_server: PgServer, tmp_path: Path, sig: signal.Signals
) -> None:
    proc = run_inner(tmp_path, hang="1")
    try:
        assert poll_until(lambda: read_info(tmp_path), timeout=60), "the inner session never started its server"
        (first,) = read_info(tmp_path)
        assert postgres_alive(first["pid"])
        proc.send_signal(sig)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    assert_server_gone(first)
    assert not Path(first["dir"]).exists()


def test_a_killed_session_takes_its_server_down_with_it(pg_server: PgServer, tmp_path: Path) -> None:
    require_tool("setpriv", "to have the kernel stop the server when the session is SIGKILLed")
    proc = run_inner(tmp_path, hang="1")
    first: dict = {}
    try:
        assert poll_until(lambda: read_info(tmp_path), timeout=60), "the inner session never started its server"
        (first,) = read_info(tmp_path)
        proc.kill()  # no finaliser runs: the kernel's parent-death signal stops the postmaster
        proc.wait()
        assert_server_gone(first)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if first:
            shutil.rmtree(first["dir"], ignore_errors=True)  # nobody was left to remove it
