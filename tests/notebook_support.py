"""Helpers shared by the notebook-layer tests (panels, magics, kernels, browser)."""

from __future__ import annotations

import time
from collections.abc import Callable

APPROVAL_SPEC = """
name: publish-report
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
    timeout: 2h
  - name: write_b
    action: file.write
    inputs:
      path: "${{ inputs.target }}/b.txt"
      content: "${{ steps.write_a.outputs.bytes }}"
"""


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.02) -> None:
    """Poll a condition another thread or process brings about (the refresher renders on its own clock)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached within {timeout} s")
        time.sleep(interval)
