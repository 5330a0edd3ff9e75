"""``make demo``: the headless tour runs and prints what the README says it does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_demo_tour_approves_rolls_back_compensates_and_prints_its_tables(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-m", "airt_nb.demo"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120
    )
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "approved by reviewer -> COMPLETED; files: ['a.txt', 'b.txt']" in text
    assert "rejected -> ROLLED_BACK; out/rejected exists: False" in text
    assert "(its deploy step fails on purpose): FAILED" in text
    assert "its staged file was undone: True" in text
    for table in ("runs()", "steps()", "approvals()", "compensations()"):
        assert f"\n{table}\n" in text
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == []  # its files went with its folder
