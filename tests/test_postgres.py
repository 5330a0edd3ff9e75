"""What only the PostgreSQL store has: one-statement checkpoints, migrations under a lock, engine
locks, LISTEN/NOTIFY wake-ups, server restarts, retries after a lost connection, and passwords
kept out of every message.

The suites that run on both backends (engine, recovery, approvals, CLI, frames, homes, crash)
cover the rest; authenticated decisions are in test_pg_auth.py.
"""

from __future__ import annotations

import itertools
import logging
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import crashlib
import pytest
from conftest import poll_until
from crashlib import Child, chain_spec, config, db_rows
from pg_server import PgServer

import airt_nb
from airt_nb import Engine, Registry, StoreError
from airt_nb.store.migrations import LATEST, MIGRATIONS
from airt_nb.store.pg_roles import FUNCTIONS
from airt_nb.store.postgres import PostgresStore

STEPS = [f"s{i}" for i in range(1, 6)]


def ticking(n: int, name: str = "ticks") -> dict[str, Any]:
    return {"name": name, "steps": [{"name": f"t{i}", "action": "tick"} for i in range(n)]}


@pytest.fixture
def reg() -> Registry:
    registry = Registry()

    @registry.action("tick")
    def tick() -> dict:
        return {"ok": True}

    return registry


@pytest.fixture
def own_server(pg_server: PgServer) -> Iterator[PgServer]:
    """A server of this test's own (to restart it, or to log every statement)."""
    server = PgServer(binaries=pg_server.binaries, settings={"log_statement": "all", "log_line_prefix": "%p %a| "})
    server.start()
    yield server
    server.stop()


# -- the checkpoint ------------------------------------------------------------------------------------


def write_statements(server: PgServer) -> list[str]:
    """The statements the engines' write connections sent, in order (from the server's log)."""
    out = []
    for line in server.log_path.read_text(errors="replace").splitlines():
        m = re.match(r"(\d+) airt_nb write\| LOG:  (?:statement|execute [^:]*): (.*)", line)
        if m:
            out.append(m.group(2))
    return out


@pytest.mark.parametrize("durability", ["normal", "full"])
def test_a_checkpoint_is_one_statement_and_only_what_others_rely_on_waits_for_the_disk(
    own_server: PgServer, reg: Registry, durability: str
) -> None:
    url = own_server.create_database("checkpoints")
    with Engine(url, registry=reg, durability=durability) as eng:
        assert eng.start(ticking(30)).wait(timeout=30) == "COMPLETED"
        session = eng.store._conn.execute("SHOW synchronous_commit").fetchone()[0]
    sent = write_statements(own_server)
    completions = [i for i, s in enumerate(sent) if s.startswith("WITH w AS (SELECT requested FROM workflows")]
    assert len(completions) == 30
    # Each is alone: no BEGIN before it, nothing between it and the next one but what another thread
    # (the lease keeper, the progress writer) may have committed meanwhile.  The last one settles the
    # workflow in the same transaction.
    assert [sent[i - 1] == "BEGIN" for i in completions] == [False] * 29 + [True]
    between = [s for a, b in itertools.pairwise(completions) for s in sent[a + 1 : b]]
    assert len(between) <= 10, between
    # "normal": checkpoints commit asynchronously (the session's default); the start of the workflow,
    # which another engine may rely on, waits for the disk.  "full": everything waits.
    assert session == ("off" if durability == "normal" else "on")
    start = sent.index(next(s for s in sent if s.startswith("WITH spec AS (INSERT INTO workflow_specs")))
    commit = sent.index("COMMIT", start)
    waits = "SET LOCAL synchronous_commit = on" in sent[start:commit]
    assert waits == (durability == "normal")


# -- migrations ------------------------------------------------------------------------------------------


def test_engines_opening_an_empty_database_at_once_migrate_it_once(pg_url: str) -> None:
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            PostgresStore(pg_url).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    store = PostgresStore(pg_url)
    try:
        assert store.schema_version == LATEST
        assert store.query("SELECT count(*) FROM airt_meta") == [(1,)]
        functions = {r[0] for r in store.query("SELECT proname FROM pg_proc WHERE proname LIKE 'airt_%'")}
        assert {fn.split("(")[0] for fn in FUNCTIONS} <= functions
    finally:
        store.close()


def test_opening_a_migrated_database_again_changes_nothing(pg_db: str) -> None:
    def schema() -> list[tuple[Any, ...]]:
        return db_rows(
            pg_db,
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = current_schema() ORDER BY 1, 2",
        )

    before = schema()
    PostgresStore(pg_db).close()
    assert schema() == before
    crashlib.close_readers()


def test_a_version_3_database_upgrades_with_its_runs_steps_and_deliveries_intact(pg_url: str) -> None:
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        for m in MIGRATIONS[:3]:
            conn.execute(m.postgres)
        conn.execute("INSERT INTO airt_meta (key, value) VALUES ('schema_version', '3')")
        conn.execute(
            "INSERT INTO workflows (workflow_id, name, status, spec, spec_hash, inputs, created_at, updated_at, "
            "total_steps, lease_owner) VALUES ('w1', 'old', 'PAUSED', '{}', 'h', '{}', "
            "'2026-01-01T00:00:00.000000+00:00', '2026-01-01T00:00:00.000000+00:00', 2, 'old-engine')"
        )
        conn.execute(
            "INSERT INTO workflow_steps (workflow_id, step_name, position, type, status) VALUES "
            "('w1', 'a', 0, 'action', 'COMPLETED'), ('w1', 'b', 1, 'human_approval', 'WAITING')"
        )
        conn.execute(
            "INSERT INTO webhook_deliveries (delivery_id, workflow_id, event, payload, status, created_at) VALUES "
            "('d1', 'w1', 'approval.requested', '{}', 'DELIVERED', '2026-01-01T00:00:00.000000+00:00')"
        )
    store = PostgresStore(pg_url)
    try:
        assert store.schema_version == LATEST
        record = store.workflow("w1")
        assert record is not None
        assert (record.status, record.home, record.lease_owner) == ("PAUSED", "old-engine", None)
        steps = store.steps("w1")
        assert [(s.step_name, s.status) for s in steps] == [("a", "COMPLETED"), ("b", "WAITING")]
        assert all(s.step_id > 0 for s in steps)
        assert steps[0].step_id != steps[1].step_id
        [delivery] = store.deliveries(workflow_id="w1")
        assert delivery.status == "DELIVERED"
    finally:
        store.close()


def test_a_database_of_a_newer_version_is_refused_with_what_to_do(pg_db: str) -> None:
    import psycopg

    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute("UPDATE airt_meta SET value = %s WHERE key = 'schema_version'", (str(LATEST + 1),))
    with pytest.raises(StoreError) as info:
        Engine(pg_db)
    assert str(info.value) == (
        f"database {airt_nb.store.redact(pg_db)} was written by a newer airt_nb (schema version {LATEST + 1}, "
        f"this one knows up to {LATEST}); upgrade airt_nb (pip install -U airt_nb) to use it"
    )


# -- passwords ---------------------------------------------------------------------------------------------


def test_passwords_never_appear_in_errors_logs_banners_or_frames(
    pg_server: PgServer, pg_db: str, reg: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    from airt_nb.commands import banner

    password = pg_server.password
    wrong = pg_db.replace(f":{password}@", ":Wr0ng-s3cret@")
    with pytest.raises(StoreError) as info:
        Engine(wrong)
    assert "Wr0ng-s3cret" not in str(info.value)
    assert str(info.value).startswith(f"cannot connect to database {pg_db.replace(password, '***')} (")
    assert 'password authentication failed for user "postgres"' in str(info.value)
    with pytest.raises(StoreError) as info:
        Engine("postgresql://ann:Unreach4ble@127.0.0.1:1/airt", busy_timeout=2)
    assert "Unreach4ble" not in str(info.value)
    assert "postgresql://ann:***@127.0.0.1:1/airt" in str(info.value)

    caplog.set_level(logging.DEBUG)
    with Engine(pg_db, registry=reg) as eng:
        run = eng.start(ticking(3))
        assert run.wait(timeout=10) == "COMPLETED"
        shown = [
            repr(eng),
            eng.db,
            repr(banner(eng)),
            banner(eng)._repr_html_(),
            airt_nb.runs(eng).to_csv(),
            airt_nb.history(eng).to_csv(),
            str(eng.store.engines()),
        ]
        with pytest.raises(airt_nb.NotFoundError) as missing:
            eng.get("nope")
        shown.append(str(missing.value))
    shown.append(caplog.text)
    for text in shown:
        assert password not in text
    assert "***" in eng.db


# -- engines' locks --------------------------------------------------------------------------------------


def test_engines_alive_are_those_holding_their_lock(pg_db: str) -> None:
    one, two = Engine(pg_db, recover=False), Engine(pg_db, recover=False)
    try:
        owners = [one.owner_id, two.owner_id, "host|1|2|machine|gone"]
        assert one.store.engines_alive(owners) == {one.owner_id, two.owner_id}
        two.close()  # its session ends: the server releases the lock as the backend exits
        assert poll_until(lambda: one.store.engines_alive(owners) == {one.owner_id}, timeout=5)
    finally:
        one.close()
        two.close()


def test_a_killed_engine_on_another_machine_is_noticed_by_its_lock_long_before_its_lease_runs_out(
    tmp_path: Path, pg_db: str
) -> None:
    effects = tmp_path / "effects.jsonl"
    stop = {"at": "before", "step": "s3"}
    child = Child(tmp_path, config(pg_db, effects, start=[{"spec": chain_spec()}], stop=stop, lease_ttl=3600))
    try:
        child.expect("stopped before s3")
        [(owner,)] = db_rows(pg_db, "SELECT lease_owner FROM workflows")
        with Engine(pg_db, registry=crashlib.registry(effects), lease_ttl=3600, poll_interval=0.1, home_grace=0) as eng:
            time.sleep(0.5)  # several sweeps: the live engine's workflow is left alone
            [(wf, still)] = db_rows(pg_db, "SELECT workflow_id, lease_owner FROM workflows")
            assert still == owner
            assert eng.store.engines_alive([owner]) == {owner}
            killed_at = time.monotonic()
            child.kill()
            assert poll_until(lambda: eng.is_local(wf) or eng.get(wf).status == "COMPLETED", timeout=10)
            noticed = time.monotonic() - killed_at
            assert eng.get(wf).wait(timeout=30) == "COMPLETED"
        assert noticed < 10  # its lease had an hour to run
        does = crashlib.effects_by_step(crashlib.read_effects(effects))
        assert [len(does[(wf, s)]) for s in STEPS] == [1, 1, 1, 1, 1]
        assert does[(wf, "s3")][0]["pid"] != child.pid
    finally:
        crashlib.kill_leftovers()


# -- wake-ups --------------------------------------------------------------------------------------------


def test_checkpoints_never_notify_and_a_decision_wakes_the_workflows_home(pg_db: str, reg: Registry) -> None:
    import psycopg

    heard: list[str] = []
    with psycopg.connect(pg_db, autocommit=True) as ear:
        ear.execute("LISTEN airt")

        def drain() -> None:
            heard.extend(n.payload for n in ear.notifies(timeout=0.3))

        with Engine(pg_db, registry=reg, user="ann") as home, Engine(pg_db, recover=False, user="bob") as other:
            assert home.start(ticking(50)).wait(timeout=30) == "COMPLETED"
            drain()
            assert heard == []  # fifty checkpoints, nobody else to wake
            gated = {"name": "gated", "steps": [{"name": "ok", "type": "human_approval", "message": "go?"}]}
            run = home.start(gated)
            assert run.wait(timeout=10) == "PAUSED"
            other.approve(run.id, by="bob")
            assert home.get(run.id).wait(timeout=10) == "COMPLETED"
            drain()
        assert heard[:2] == [home.owner_id, "*"]


def test_the_listener_reconnects_after_its_connection_is_cut_and_wake_ups_still_arrive(
    pg_db: str, reg: Registry
) -> None:
    import psycopg

    with Engine(pg_db, registry=reg, poll_interval=3600) as home, Engine(pg_db, recover=False) as other:
        listener = home.store._listener
        with psycopg.connect(pg_db, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'airt_nb listen' "
                "AND pid <> pg_backend_pid()"
            )
        assert poll_until(lambda: listener.reconnects == 1, timeout=10)
        assert other.store.engines_alive([home.owner_id]) == {home.owner_id}  # its lock is taken again
        gated = {"name": "gated", "steps": [{"name": "ok", "type": "human_approval", "message": "go?"}]}
        run = home.start(gated)
        assert run.wait(timeout=10) == "PAUSED"
        other.approve(run.id, by="ann")
        # No sweep for an hour: only the NOTIFY can make the home carry it on.
        assert home.get(run.id).wait(timeout=10) == "COMPLETED"


# -- connections lost, servers restarted -------------------------------------------------------------------


def test_a_write_and_a_read_after_their_connections_were_cut_reconnect_and_succeed(pg_db: str, reg: Registry) -> None:
    import psycopg

    with Engine(pg_db, registry=reg) as eng:
        assert eng.start(ticking(2)).wait(timeout=10) == "COMPLETED"
        with psycopg.connect(pg_db, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name IN ('airt_nb write', 'airt_nb read') AND pid <> pg_backend_pid()"
            )
        assert len(eng.workflows()) == 1
        assert eng.start(ticking(5)).wait(timeout=10) == "COMPLETED"


def test_a_server_restart_does_not_make_live_engines_look_dead(own_server: PgServer) -> None:
    url = own_server.create_database("restart")
    gate = threading.Event()
    ran: list[str] = []
    reg = Registry()

    @reg.action("step")
    def step(ctx: airt_nb.StepContext) -> dict:
        ran.append(ctx.idempotency_key)
        if ctx.step_name == "s2":
            gate.wait(30)
        return {}

    spec = {"name": "long", "steps": [{"name": f"s{i}", "action": "step"} for i in range(1, 5)]}
    with (
        Engine(url, registry=reg, lease_ttl=3600, session="a") as owner,
        Engine(url, registry=Registry(), poll_interval=0.05, home_grace=0, session="b") as other,
    ):
        run = owner.start(spec)
        assert poll_until(lambda: len(ran) == 2, timeout=10)
        own_server.restart()  # every lock is dropped at once; the step in flight goes on
        time.sleep(1.0)  # many sweeps of the other engine while the owner takes its lock again
        assert poll_until(lambda: other.store.engines_alive([owner.owner_id]) == {owner.owner_id}, timeout=10)
        gate.set()
        assert run.wait(timeout=30) == "COMPLETED"
        assert not other.is_local(run.id)
        assert owner.store._listener.reconnects >= 1
    assert ran == [f"{run.id}/s{i}/1" for i in range(1, 5)]  # nothing ran twice, nothing elsewhere
    with airt_nb.store.opened(url) as store:
        assert [e.event for e in store.history(run.id)] == ["started", "completed"]


def test_an_error_inside_a_write_is_a_store_error_naming_the_database(pg_db: str) -> None:
    with Engine(pg_db) as eng:
        bad_row = [("a", 0, "action", "effect")]
        with pytest.raises(StoreError) as info:
            eng.store.write(lambda tx: tx.insert_steps("nope", bad_row))
        text = str(info.value)
        assert text.startswith(f'database {eng.db}: insert or update on table "workflow_steps" violates foreign key')
        assert text.endswith("while trying to write")
        assert type(info.value.__cause__).__name__ == "ForeignKeyViolation"
        assert eng.store.write(lambda tx: tx.holds("nope", eng.owner_id)) is False  # the connection goes on


def test_without_psycopg_a_postgresql_url_names_the_extra_to_install(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['psycopg'] = None\n"  # as if psycopg were not installed
        "import airt_nb\n"
        "try:\n"
        "    airt_nb.Engine('postgresql://ann:s3cret-pw@db.example/airt')\n"
        "except airt_nb.StoreError as exc:\n"
        "    print(exc)\n"
    )
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env={"PYTHONPATH": str(root)}
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(
        "postgresql://ann:***@db.example/airt is a PostgreSQL database, which needs psycopg 3"
    )
    assert 'pip install "airt_nb[postgres]"' in done.stdout
    assert "s3cret-pw" not in done.stdout + done.stderr
