"""The limits and their small checks, on their own."""

from __future__ import annotations

import pytest

from airt_nb import ActionError, SpecError
from airt_nb import limits as L


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(90, 90.0), ("90s", 90.0), ("1.5h", 5400.0), ("500ms", 0.5), (".5s", 0.5), ("366d", L.MAX_DURATION)],
)
def test_durations_within_the_limits(value: object, seconds: float) -> None:
    assert L.duration(value) == seconds


@pytest.mark.parametrize(
    ("value", "says"),
    [
        (float("inf"), "inf is not a finite duration"),
        (float("nan"), "nan is not a finite duration"),
        ("99999999d", "longer than the limit of 366d (MAX_DURATION)"),
        (-1, "-1 is negative"),
        (0, "0 is zero"),
        (True, "True is not a duration"),
        (None, "None is not a duration"),
        ("1 week", "'1 week' is not a duration"),
    ],
)
def test_bad_durations_say_the_allowed_range(value: object, says: str) -> None:
    with pytest.raises(ValueError, match="use a duration from 1ms to 366d") as info:
        L.duration(value)
    assert says in str(info.value)


def test_zero_and_a_smaller_maximum_when_asked() -> None:
    assert L.duration(0, zero=True) == 0.0
    with pytest.raises(ValueError, match=r"limit of 1h \(MAX_HTTP_TIMEOUT\); use a duration from 1ms to 1h"):
        L.duration("2h", maximum=L.MAX_HTTP_TIMEOUT)


@pytest.mark.parametrize(
    ("value", "ok"), [(1, True), (100, True), (0, False), (True, False), (2.0, False), ("3", False)]
)
def test_whole_numbers(value: object, ok: bool) -> None:
    if ok:
        assert L.number(value, low=1, high=100, integer=True) == value
    else:
        with pytest.raises(ValueError, match="use a whole number from 1 to 100"):
            L.number(value, low=1, high=100, integer=True)


def test_format_seconds() -> None:
    assert [L.format_seconds(s) for s in (86400, 7200, 90, 0.5, 1.5)] == ["1d", "2h", "90s", "500ms", "1.5s"]


def test_depth_is_measured_without_recursion_and_names_the_place() -> None:
    deep: object = 1
    for _ in range(100_000):
        deep = {"k": deep}
    with pytest.raises(SpecError) as info:
        L.check_depth({"inputs": deep}, what="spec")
    assert info.value.problems[0][1] == "spec.inputs.k.k.k..."
    L.check_depth(_nest(L.MAX_DEPTH), what="x")  # exactly at the limit is fine


def test_a_shared_value_is_walked_once_per_depth_not_once_per_path() -> None:
    shared: list = ["leaf"]
    for _ in range(90):
        shared = [shared, shared]  # 2**90 paths, 91 distinct lists
    L.check_depth(shared, what="outputs", error=ActionError)  # returns at once
    with pytest.raises(SpecError, match="MAX_VALUE_NODES"):
        L.check_value(shared, what="inputs", max_nodes=10_000)  # expanded, it is far too big: refused after the budget


def test_a_value_that_contains_itself_is_refused() -> None:
    loop: list = []
    loop.append(loop)
    with pytest.raises(ActionError, match="MAX_DEPTH"):
        L.check_depth(loop, what="outputs", error=ActionError)


def test_check_inputs_gives_back_a_plain_dict() -> None:
    assert L.check_inputs({"a": [1, 2.5, None, True, {"b": "c"}]}) == {"a": [1, 2.5, None, True, {"b": "c"}]}
    with pytest.raises(SpecError, match=r"inputs.a\[1\]: key 1 is not text"):
        L.check_inputs({"a": {1: 2}}, workflow="w")


def _nest(n: int) -> object:
    value: object = 0
    for _ in range(n):
        value = [value]
    return value
