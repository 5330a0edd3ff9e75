"""Make a large airt_nb database quickly, by direct inserts instead of running workflows.

``python benchmarks/gen_db.py PATH [WORKFLOWS] [STEPS_PER_WORKFLOW]`` writes
100,000 workflows of 10 steps (1,000,000 step rows) by default, with the
schema of this checkout (opened once through ``SQLiteStore`` so the migrations
run), rows shaped like the engine's own (ISO times, JSON inputs and outputs, a
shared spec), and a mix of statuses: mostly COMPLETED, some FAILED, ROLLED_BACK,
PAUSED and RUNNING.  Takes a few seconds; used by the "views" benchmark.
"""

from __future__ import annotations

import json
import random
import sqlite3
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

STATUSES = [("COMPLETED", 0.90), ("FAILED", 0.04), ("ROLLED_BACK", 0.03), ("PAUSED", 0.02), ("RUNNING", 0.01)]


def _status(rng: random.Random) -> str:
    x = rng.random()
    for status, share in STATUSES:
        if x < share:
            return status
        x -= share
    return "COMPLETED"


def generate(path: str | Path, workflows: int = 100_000, steps: int = 10, seed: int = 7) -> Path:
    from airt_nb.store.sqlite import SQLiteStore
    from airt_nb.timeutil import iso

    path = Path(path)
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    SQLiteStore(path).close()  # creates the schema through the real migrations
    spec = {
        "name": "bench",
        "steps": [{"name": f"step_{j}", "action": "noop", "inputs": {"n": j}} for j in range(steps)],
    }
    spec_json = json.dumps(spec, sort_keys=True)
    rng = random.Random(seed)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = OFF")  # a generated file: nothing to lose
    start = datetime(2025, 1, 1, tzinfo=UTC).timestamp()
    wf_cols = (
        "workflow_id, name, status, spec, spec_hash, inputs, created_at, updated_at, finished_at, error, "
        "started_by, total_steps, done_steps"
    )
    step_cols = (
        "workflow_id, step_name, position, type, action, status, attempt, started_at, finished_at, inputs, "
        "outputs, error, fingerprint"
    )
    has_specs = bool(
        conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'workflow_specs'").fetchone()
    )
    if has_specs:
        conn.execute(
            "INSERT OR IGNORE INTO workflow_specs (spec_hash, spec) VALUES ('bench0000000000', ?)", (spec_json,)
        )
    stored_spec = "" if has_specs else spec_json
    conn.execute("BEGIN")
    batch_wf, batch_steps = [], []
    for i in range(workflows):
        created = start + i * 0.5
        status = _status(rng)
        done = steps if status == "COMPLETED" else rng.randrange(steps)
        finished = iso(created + 0.01 * steps) if status in ("COMPLETED", "FAILED", "ROLLED_BACK") else None
        error = "step 'step_3' failed: ValueError: boom" if status in ("FAILED", "ROLLED_BACK") else None
        wid = f"{rng.getrandbits(64):016x}"
        batch_wf.append(
            (wid, "bench", status, stored_spec, "bench0000000000", '{"n": 1}', iso(created), iso(created + 0.01 * done),
             finished, error, "bench", steps, done)
        )  # fmt: skip
        for j in range(steps):
            if j < done:
                st, out = "COMPLETED", json.dumps({"n": j, "ok": True})
            elif j == done and status in ("FAILED", "ROLLED_BACK"):
                st, out = "FAILED", None
            elif j == done and status == "PAUSED":
                st, out = "WAITING", None
            elif j == done and status == "RUNNING":
                st, out = "RUNNING", None
            else:
                st, out = "PENDING", None
            started = iso(created + 0.01 * j) if st != "PENDING" else None
            ended = iso(created + 0.01 * (j + 1)) if st in ("COMPLETED", "FAILED") else None
            batch_steps.append(
                (wid, f"step_{j}", j, "action", "noop", st, 1 if started else 0, started, ended,
                 json.dumps({"n": j}) if started else None, out, "ValueError: boom" if st == "FAILED" else None,
                 "0123456789abcdef" if st == "COMPLETED" else None)
            )  # fmt: skip
        if len(batch_wf) >= 5000:
            conn.executemany(f"INSERT INTO workflows ({wf_cols}) VALUES ({','.join('?' * 13)})", batch_wf)
            conn.executemany(f"INSERT INTO workflow_steps ({step_cols}) VALUES ({','.join('?' * 13)})", batch_steps)
            batch_wf, batch_steps = [], []
    if batch_wf:
        conn.executemany(f"INSERT INTO workflows ({wf_cols}) VALUES ({','.join('?' * 13)})", batch_wf)
        conn.executemany(f"INSERT INTO workflow_steps ({step_cols}) VALUES ({','.join('?' * 13)})", batch_steps)
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("ANALYZE")
    conn.close()
    return path


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else "bench-views.db"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
    k = int(sys.argv[3]) if len(sys.argv) > 3 else 10
    t0 = time.perf_counter()
    generate(target, n, k)
    print(f"{target}: {n} workflows, {n * k} steps in {time.perf_counter() - t0:.1f} s")
