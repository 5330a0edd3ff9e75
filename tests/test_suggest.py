"""Suggestions for misspelt names: close typos suggest, unrelated names do not."""

from __future__ import annotations

import pytest

from airt_nb.suggest import did_you_mean, nearest

ACTIONS = ["file.write", "file.delete", "file.copy", "http.request", "python.call", "wait"]
STEP_KEYS = ["name", "type", "description", "action", "inputs", "depends_on", "retry", "message", "approvers"]


@pytest.mark.parametrize(
    ("typo", "known", "expected"),
    [
        ("file.wrte", ACTIONS, ["file.write"]),  # a letter missing
        ("file.wirte", ACTIONS, ["file.write"]),  # two swapped
        ("File.Write", ACTIONS, ["file.write"]),  # case only
        ("htp.request", ACTIONS, ["http.request"]),
        ("acton", STEP_KEYS, ["action"]),
        ("dependson", STEP_KEYS, ["depends_on"]),
        ("approver", STEP_KEYS, ["approvers"]),
        ("deploy", ACTIONS, []),  # nothing like it
        ("x", ACTIONS, []),
        ("file.write", ACTIONS, []),  # a known name suggests nothing else
    ],
)
def test_nearest_names_are_what_a_typo_would_give(typo: str, known: list[str], expected: list[str]) -> None:
    assert nearest(typo, known) == expected


def test_did_you_mean_reads_as_a_hint() -> None:
    assert did_you_mean("file.wrte", ACTIONS) == "did you mean `file.write`?"
    assert did_you_mean("wirte", ["write", "wire"]) == "did you mean `wire` or `write`?"  # closest first
    assert did_you_mean("deploy", ACTIONS) == ""
