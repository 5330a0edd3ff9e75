"""${{ }} lookups: typed values, text formatting, and refusals of anything that is not a lookup."""

from __future__ import annotations

import pytest

from airt_nb.expressions import ExpressionError, compile_value, parse_reference

CTX = {
    "inputs": {"n": 3, "name": "ann"},
    "steps": {"a": {"outputs": {"items": [10, 20], "m": {"k": True}}}},
    "workflow": {"id": "w1", "name": "wf"},
}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("${{ inputs.n }}", 3),
        ("${{inputs.n}}", 3),
        ("${{ steps.a.outputs.items }}", [10, 20]),
        ("${{ steps.a.outputs.items[1] }}", 20),
        ("${{ steps.a.outputs.items.0 }}", 10),
        ("${{ steps.a.outputs.m.k }}", True),
        ("${{ steps.a.outputs }}", {"items": [10, 20], "m": {"k": True}}),
        ("n=${{ inputs.n }}, m=${{ steps.a.outputs.m }}", 'n=3, m={"k":true}'),
        ("${{ workflow.id }}-${{ workflow.name }}", "w1-wf"),
        ({"deep": ["${{ inputs.name }}", 1]}, {"deep": ["ann", 1]}),
    ],
)
def test_lookups_resolve(value, expected) -> None:
    resolver = compile_value(value)
    assert resolver is not None
    assert resolver(CTX) == expected


def test_constant_values_compile_to_nothing() -> None:
    assert compile_value({"a": [1, "text"]}) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("os.system('x')", "is not a lookup"),
        ("inputs.n + 1", "is not a lookup"),
        ("secrets.key", "starts with 'secrets'"),
        ("steps.a.items", "write steps.<step name>.outputs"),
        ("workflow.owner", "only workflow.id and workflow.name"),
        ("", "empty expression"),
    ],
)
def test_anything_but_a_lookup_is_refused(text, message) -> None:
    with pytest.raises(ExpressionError, match=message):
        parse_reference(text)


def test_missing_keys_say_what_is_there() -> None:
    resolver = compile_value("${{ steps.a.outputs.nope }}")
    with pytest.raises(ExpressionError, match=r"steps\.a\.outputs has no 'nope' \(it has: items, m\)"):
        resolver(CTX)
