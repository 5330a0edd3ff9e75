"""``make demo``: a short headless tour that prints the result tables.

Runs in a temporary folder: writes a file, pauses for an approval, approves
it, runs a second workflow that is rejected and rolled back, and a third
whose step fails and is compensated; then prints runs, steps, approvals and
compensations.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

SPEC = """
name: publish-report
description: Write A, ask, then write B
inputs:
  target: out/report
steps:
  - name: write_a
    action: file.write
    inputs:
      path: "${{ inputs.target }}/a.txt"
      content: hello
  - name: review
    type: human_approval
    message: "Publish B next to ${{ steps.write_a.outputs.path }}?"
    approvers: [reviewer]
  - name: write_b
    action: file.write
    inputs:
      path: "${{ inputs.target }}/b.txt"
      content: "${{ steps.write_a.outputs.bytes }}"
"""

FAILING = """
name: flaky-deploy
steps:
  - name: stage
    action: file.write
    inputs: {path: out/deploy/staged.txt, content: v2}
  - name: deploy
    action: python.call
    inputs: {function: "json:loads", args: ["not json"]}
    retry: {max_attempts: 2, initial_delay: 0.05}
"""


def main() -> None:
    import pandas as pd

    import airt_nb

    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 12)
    pd.set_option("display.max_colwidth", 40)
    with tempfile.TemporaryDirectory(prefix="airt-demo-") as folder:
        os.chdir(folder)
        db = Path(folder) / "demo.db"
        with airt_nb.Engine(db, user="demo") as eng:
            approved = eng.start(SPEC, inputs={"target": "out/approved"})
            print(f"1. {approved.name} {approved.id}: {approved.wait(timeout=30)}")
            approved.approve(by="reviewer", reason="looks good")
            print(
                f"   approved by reviewer -> {approved.wait(timeout=30)}; files: {sorted(os.listdir('out/approved'))}"
            )

            rejected = eng.start(SPEC, inputs={"target": "out/rejected"})
            rejected.wait(timeout=30)
            rejected.reject(by="reviewer", reason="not this week")
            print(
                f"2. {rejected.name} {rejected.id}: rejected -> {rejected.wait(timeout=30)}; "
                f"out/rejected exists: {Path('out/rejected').exists()}"
            )

            failing = eng.start(FAILING)
            print(f"3. {failing.name} {failing.id} (its deploy step fails on purpose): {failing.wait(timeout=30)}")
            print(f"   {failing.error}; its staged file was undone: {not Path('out/deploy/staged.txt').exists()}")

        cols = ["workflow_id", "name", "status", "started_by", "duration", "error"]
        print("\nruns()\n", airt_nb.runs(db)[cols].to_string(index=False), sep="")
        cols = ["workflow_id", "step_name", "status", "attempt", "duration", "error"]
        print("\nsteps()\n", airt_nb.steps(db)[cols].to_string(index=False), sep="")
        cols = ["workflow_id", "step_name", "status", "decided_by", "reason", "waited"]
        print("\napprovals()\n", airt_nb.approvals(db)[cols].to_string(index=False), sep="")
        cols = ["workflow_id", "step_name", "action", "status", "error"]
        print("\ncompensations()\n", airt_nb.compensations(db)[cols].to_string(index=False), sep="")


if __name__ == "__main__":
    main()
