"""How fast the dashboard pages, filters and checks for changes with 100,000 workflows.

    python benchmarks/dashboard_paging.py [N]

Fills a temporary database with N workflows (default 100,000; rows written
directly, no steps run), then times one dashboard render (a page query, a
count and the status counts) for the first and the last page and for each
filter, and the cheap "anything changed?" check the dashboard polls with.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import airt_nb
from airt_nb.timeutil import iso
from airt_nb.widgets import DashboardPanel


def timed(fn: Callable[[], object], repeat: int = 7) -> float:
    """Median milliseconds of ``fn()``."""
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def fill(engine: airt_nb.Engine, count: int) -> None:
    # No RUNNING rows: an engine would try to resume them (these rows have no real spec).
    statuses = ["COMPLETED"] * 8 + ["FAILED", "PAUSED", "ROLLED_BACK", "CANCELLED"]
    base = time.time() - count

    def op(tx: object) -> None:
        for i in range(count):
            at = iso(base + i)
            tx.insert_workflow(  # type: ignore[attr-defined]
                {
                    "workflow_id": uuid.uuid4().hex[:16],
                    "name": f"job-{i % 37}",
                    "status": statuses[i % len(statuses)],
                    "spec": "{}",
                    "spec_hash": "bench",
                    "inputs": "{}",
                    "created_at": at,
                    "updated_at": at,
                    "started_by": "bench",
                    "total_steps": 3,
                    "lease_owner": None,
                    "lease_expires": None,
                }
            )

    engine.store.write(op)


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    with tempfile.TemporaryDirectory() as folder:
        engine = airt_nb.Engine(Path(folder) / "bench.db", recover=False)
        started = time.perf_counter()
        fill(engine, count)
        print(f"{count:,} workflows written in {time.perf_counter() - started:.1f} s")
        board = DashboardPanel(engine, page_size=20)
        board.stop_live()  # timed by hand, not by the refresher
        last_page = (count - 1) // board.page_size

        cases: list[tuple[str, dict[str, object]]] = [
            ("first page", {}),
            ("last page (deep offset)", {"page": last_page}),
            ("status = FAILED, page 50", {"page": 50, "status": "FAILED"}),
            ("name contains 'job-3'", {"name": "job-3"}),
            ("created in the last hour", {"since": 3600}),
        ]
        print(f"{'dashboard operation':<32} median ms")
        for label, case in cases:
            board.status_filter.value = case.get("status", "")
            board.name_filter.value = case.get("name", "")
            board.range_filter.value = case.get("since", 0)

            def render(page: int = int(case.get("page", 0))) -> None:  # type: ignore[call-overload]
                board.page = page
                board.refresh()

            print(f"{label:<32} {timed(render):8.2f}")
        for label, check in (
            ("poll: anything changed?", engine.store.last_change),
            ("poll: data_version", engine.store.data_version),
        ):
            print(f"{label:<32} {timed(check):8.2f}")
        engine.close()


if __name__ == "__main__":
    main()
