"""Schedules: ``Engine.schedule``, ``airt schedule``, and ``airt worker`` firing each slot exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from crashlib import db_rows

import airt_nb
from airt_nb import SpecError
from airt_nb.schedules import Scheduler, next_slot, slots_between

ROOT = Path(__file__).resolve().parents[1]
QUICK = "name: tick\ninputs: {n: 0}\nsteps:\n  - name: w\n    action: wait\n    inputs: {seconds: 0}\n"


def test_a_schedule_is_checked_and_listed(engine: airt_nb.Engine) -> None:
    record = engine.schedule(QUICK, cron="0 6 * * 1", inputs={"n": 3})

    assert record.name == "tick"
    assert record.cron == "0 6 * * 1"
    assert record.timezone == "UTC"
    assert json.loads(record.inputs) == {"n": 3}
    assert record.next_fire_at > engine.store.now()
    assert record.next_fire_at[11:19] == "06:00:00"
    assert [s.schedule_id for s in engine.schedules()] == [record.schedule_id]
    with pytest.raises(SpecError, match="'every monday' is not a cron expression"):
        engine.schedule(QUICK, cron="every monday")
    with pytest.raises(SpecError, match="unknown time zone 'Mars/Olympus'"):
        engine.schedule(QUICK, cron="0 6 * * 1", timezone="Mars/Olympus")
    with pytest.raises(SpecError, match="declares no input 'm'"):
        engine.schedule(QUICK, cron="0 6 * * 1", inputs={"m": 1})
    with pytest.raises(SpecError, match=r"'0 0 31 2 \*' never fires"):
        engine.schedule(QUICK, cron="0 0 31 2 *")
    for other in ("* * * * * * *", "@daily"):  # what the docs do not offer is refused, not guessed at
        with pytest.raises(SpecError, match="is not a cron expression; use five fields"):
            engine.schedule(QUICK, cron=other)
    with pytest.raises(SpecError, match="a time zone is a name such as UTC or Europe/Paris, not None"):
        engine.schedule(QUICK, cron="0 6 * * 1", timezone=None)  # type: ignore[arg-type]
    with pytest.raises(SpecError, match=r"unknown time zone 'xxx.*\.\.\.'"):
        engine.schedule(QUICK, cron="0 6 * * 1", timezone="x" * 10_000)
    assert engine.schedules() == [record]

    engine.unschedule(record.schedule_id[:6])
    assert engine.schedules() == []
    with pytest.raises(airt_nb.NotFoundError):
        engine.unschedule(record.schedule_id)


def test_cron_in_a_time_zone_follows_its_summer_time() -> None:
    winter = next_slot("0 6 * * *", "Europe/Paris", "2025-01-10T12:00:00+00:00")
    summer = next_slot("0 6 * * *", "Europe/Paris", "2025-07-10T12:00:00+00:00")
    assert (winter[11:16], summer[11:16]) == ("05:00", "04:00")  # 06:00 in Paris, as UTC


def test_missed_slots_fire_once_for_the_latest() -> None:
    latest, missed = slots_between("0 * * * *", "UTC", "2025-01-01T00:00:00+00:00", "2025-01-01T05:30:00+00:00")
    assert (latest[:19], missed) == ("2025-01-01T05:00:00", 5)
    latest, missed = slots_between("* * * * * *", "UTC", "2025-01-01T00:00:00+00:00", "2025-01-02T00:00:00+00:00")
    assert latest[:19] == "2025-01-02T00:00:00"
    assert missed >= 10_000


def test_a_due_slot_fires_once_however_often_it_is_ticked(engine: airt_nb.Engine) -> None:
    record = engine.schedule(QUICK, cron="* * * * * *")
    time.sleep(1.1)
    scheduler = Scheduler(engine)

    fired = scheduler.tick()
    later = [wid for _ in range(5) for wid in scheduler.tick()]  # a new second may come meanwhile: its own slot

    assert len(fired) == 1
    slots = [r[0] for r in db_rows(engine.db, "SELECT slot FROM schedule_firings")]
    assert len(slots) == len(set(slots)) == 1 + len(later)
    run = engine.get(fired[0])
    assert run.wait(timeout=10) == "COMPLETED"
    assert run.record.started_by == "tester"
    history = airt_nb.history(engine, workflow_id=run.id)
    assert history.iloc[0]["detail"].startswith(f"by schedule {record.schedule_id} (* * * * * *) for ")


def worker(db: Path, *extra: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("AIRT_RECOVER", None)
    return subprocess.Popen(
        [sys.executable, "-m", "airt_nb.cli", "--db", str(db), "worker", "--poll", "0.05", *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@pytest.mark.slow
def test_two_workers_racing_fire_each_slot_exactly_once(db_path: Path, tmp_path: Path) -> None:
    eng = airt_nb.Engine(db_path, recover=False)
    record = eng.schedule(QUICK, cron="* * * * * *")  # every second
    eng.close()

    workers = [worker(db_path), worker(db_path)]
    time.sleep(4.5)
    for w in workers:
        w.send_signal(signal.SIGTERM)
    for w in workers:
        _out, err = w.communicate(timeout=30)
        assert w.returncode == 0, err.decode()
        assert b"airt worker: serving" in err

    firings = db_rows(db_path, "SELECT slot, workflow_id, fired_by FROM schedule_firings")
    slots = [f[0] for f in firings]
    assert len(firings) >= 3
    assert len(set(slots)) == len(slots)  # one firing per slot
    runs = db_rows(
        db_path,
        "SELECT w.workflow_id, e.detail FROM workflows w JOIN workflow_events e ON e.workflow_id = w.workflow_id "
        "AND e.event = 'started'",
    )
    assert sorted(r[0] for r in runs) == sorted(f[1] for f in firings)  # one workflow per firing, no other
    fired_slots = [r[1].split(" for ")[1].split(";")[0] for r in runs]
    assert len(set(fired_slots)) == len(fired_slots)
    assert len({f[2] for f in firings}) in (1, 2)  # either worker may win a slot
    statuses = {r[0] for r in db_rows(db_path, "SELECT status FROM workflows")}
    assert statuses <= {"COMPLETED", "RUNNING"}  # run by the workers (the last may still be starting)
    assert record.schedule_id in {r[0] for r in db_rows(db_path, "SELECT schedule_id FROM schedule_firings")}


@pytest.mark.slow
def test_slots_missed_while_no_worker_ran_fire_once_for_the_latest(db_path: Path) -> None:
    eng = airt_nb.Engine(db_path, recover=False)
    eng.schedule(QUICK, cron="* * * * * *")
    eng.close()
    time.sleep(3.5)  # the downtime: three or four slots pass

    w = worker(db_path, "--once")
    _out, err = w.communicate(timeout=60)

    assert w.returncode == 0, err.decode()
    ((slot, _workflow_id, missed),) = db_rows(db_path, "SELECT slot, workflow_id, missed FROM schedule_firings")
    assert missed >= 2
    ((status, detail),) = db_rows(
        db_path,
        "SELECT w.status, e.detail FROM workflows w JOIN workflow_events e ON e.workflow_id = w.workflow_id "
        "AND e.event = 'started'",
    )
    assert status == "COMPLETED"
    assert detail.endswith(f"for {slot}; {missed} earlier slots missed while no worker ran")
    ((next_fire_at,),) = db_rows(db_path, "SELECT next_fire_at FROM schedules")
    assert next_fire_at > slot


def test_airt_schedule_add_list_remove(db_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from airt_nb.cli import main

    airt_nb.Engine(db_path, recover=False).close()
    spec = tmp_path / "weekly.yaml"
    spec.write_text(QUICK.replace("action: wait", "action: my_report"))  # an action the worker imports

    assert (
        main(
            [
                "--db",
                str(db_path),
                "--json",
                "schedule",
                "add",
                str(spec),
                "--cron",
                "0 6 * * 1",
                "--tz",
                "Europe/Paris",
            ]
        )
        == 0
    )
    added = json.loads(capsys.readouterr().out)
    assert added["cron"] == "0 6 * * 1"
    assert added["timezone"] == "Europe/Paris"
    assert main(["--db", str(db_path), "schedule", "list"]) == 0
    listing = capsys.readouterr().out
    assert added["schedule_id"] in listing
    assert "Europe/Paris" in listing
    with pytest.raises(SystemExit) as usage:  # a bad --cron is a usage error, like any bad option
        main(["--db", str(db_path), "schedule", "add", str(spec), "--cron", "soon"])
    assert usage.value.code == 2
    assert "'soon' is not a cron expression" in capsys.readouterr().err
    assert main(["--db", str(db_path), "schedule", "remove", added["schedule_id"]]) == 0
    capsys.readouterr()
    assert main(["--db", str(db_path), "schedule", "list"]) == 0
    assert capsys.readouterr().out.strip() == "no schedules"
