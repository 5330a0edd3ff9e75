"""Judge a change: the code of another commit and the current code, in alternating fresh processes.

The machine's speed drifts from minute to minute, so two figures taken an hour
apart say little about a change.  This runs the same workloads
(``workloads.py``) of a commit (checked out in a temporary worktree) and of the
working tree, alternating which goes first, and prints the median (min–max)
of each side.

    python benchmarks/ab.py --before 6e44e8b "steps normal" "steps full" "recovery {crashed_db}"
    python benchmarks/ab.py --before HEAD~3 --rounds 8 "workflows sequential"

``{crashed_db}`` is a database of 10,000 workflows crashed after their first
step, made once with the code of ``--before`` (the newer code migrates it on
open) and copied by each run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from workloads import child_env, make_crashed_db  # noqa: E402


def run(script: Path, args: list[str]) -> dict:
    proc = subprocess.run(
        [sys.executable, str(script), *args], env=child_env(), capture_output=True, text=True, timeout=900
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"{script} {' '.join(args)} failed:\n{proc.stderr[-2000:]}")
    return json.loads(lines[-1])


def num(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def fmt(values: list[float]) -> str:
    return f"{num(statistics.median(values))} ({num(min(values))}–{num(max(values))})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", required=True, help="the commit to compare with (any git revision)")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("workloads", nargs="+", help='a workload and its arguments, quoted: "steps normal"')
    opts = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="airt-ab-"))
    tree = work / "before"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), opts.before], check=True)
    try:
        paths = {}
        if any("{crashed_db}" in w for w in opts.workloads):
            # Written by the older code: the newer one migrates it when it opens it (not the other way).
            make_crashed_db(work / "crashed.db", 10_000, script=tree / "benchmarks" / "workloads.py")
            paths["crashed_db"] = str(work / "crashed.db")
        sides = {"before": tree / "benchmarks" / "workloads.py", "after": HERE / "workloads.py"}
        samples: dict[tuple[str, str], list[dict]] = {}
        for r in range(opts.rounds):
            for workload in opts.workloads:
                args = workload.format(**paths).split()
                order = ("before", "after") if r % 2 == 0 else ("after", "before")
                for side in order:
                    samples.setdefault((workload, side), []).append(run(sides[side], args))
            print(f"round {r + 1}/{opts.rounds} done", flush=True)
        print(f"\n{opts.rounds} rounds, alternating; before = {opts.before}, after = the working tree")
        for workload in opts.workloads:
            print(f"\n## {workload}")
            before, after = samples[(workload, "before")], samples[(workload, "after")]
            keys = [k for k in after[0] if k in before[0] and isinstance(after[0][k], int | float)]
            width = max(len(k) for k in keys)
            for key in keys:
                b = [s[key] for s in before if key in s]
                a = [s[key] for s in after if key in s]
                print(f"  {key.ljust(width)}  before {fmt(b):<32} after {fmt(a)}")
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
