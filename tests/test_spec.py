"""Specs: what is accepted, and every refusal naming its YAML line and field."""

from __future__ import annotations

import textwrap

import pytest

import airt_nb
from airt_nb import Registry, SpecError, load_spec
from airt_nb.spec import parse_duration


def _registry() -> Registry:
    reg = Registry()

    @reg.action("count")
    def count(n: int, label: str = "x") -> dict:
        return {"n": n}

    return reg


GOOD = """\
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
    timeout: 2h
  - name: write_b
    action: file.write
    inputs:
      path: "${{ inputs.target }}/b.txt"
      content: "${{ steps.write_a.outputs.bytes }}"
    retry: {max_attempts: 3, backoff: exponential, initial_delay: 0.5, max_delay: 30}
    depends_on: [review]
"""


def test_design_example_is_accepted() -> None:
    spec = load_spec(GOOD)
    assert [s.name for s in spec.steps] == ["write_a", "review", "write_b"]
    assert spec.steps[1].timeout == 7200.0
    assert spec.steps[1].on_timeout == "reject"
    assert spec.steps[2].retry is not None
    assert spec.steps[2].retry.max_attempts == 3
    assert spec.max_parallel == 4
    assert spec.dependencies() == {"write_a": (), "review": ("write_a",), "write_b": ("review",)}


def test_a_dict_spec_is_accepted_too() -> None:
    spec = load_spec(
        {"name": "d", "steps": [{"name": "a", "action": "count", "inputs": {"n": 1}}]}, registry=_registry()
    )
    assert spec.name == "d"


BAD = [
    # (yaml, line, field, words in the message)
    # an unclosed bracket is marked where it opens, not past the last line
    (
        "name: x\nsteps:\n  - name: a\n    action: count\n    inputs: {n: 1\n",
        5,
        "",
        "YAML syntax error: the '{' at column 13 is never closed; add the closing '}'",
    ),
    (
        "name: x\nsteps:\n  - name: a\n    action: count\n    inputs: {n: 1}\n    retries: 3\n",
        6,
        "steps[0].retries",
        "unknown key 'retries'",
    ),
    (
        "name: x\nbogus: 1\nsteps:\n  - name: a\n    action: count\n    inputs: {n: 1}\n",
        2,
        "bogus",
        "unknown key 'bogus'",
    ),
    ("name: bad name!\nsteps:\n  - name: a\n    action: count\n    inputs: {n: 1}\n", 1, "name", "letters, digits"),
    ("name: x\nsteps:\n  - name: a b\n    action: count\n    inputs: {n: 1}\n", 3, "steps[0].name", "letters, digits"),
    (
        "name: x\nsteps:\n  - name: a\n    action: count\n    inputs: {n: 1}\n  - name: a\n    action: count\n    inputs: {n: 2}\n",
        6,
        "steps[1].name",
        "duplicate step name 'a'",
    ),
    (
        "name: x\nsteps:\n  - name: a\n    action: count\n    inputs: {n: 1}\n    depends_on: [ghost]\n",
        6,
        "steps[0].depends_on[0]",
        "no step named 'ghost'",
    ),
    (
        "name: x\nsteps:\n  - name: a\n    action: count\n    inputs: {n: 1}\n    depends_on: [b]\n  - name: b\n    action: count\n    inputs: {n: 1}\n    depends_on: [a]\n",
        6,
        "steps[0].depends_on",
        "dependency cycle",
    ),
    ("name: x\nsteps:\n  - name: a\n    action: nope\n", 4, "steps[0].action", "unknown action 'nope'"),
    (
        "name: x\nsteps:\n  - name: a\n    action: count\n    inputs: {n: not-a-number}\n",
        5,
        "steps[0].inputs.n",
        "valid integer",
    ),
    (
        "name: x\nsteps:\n  - name: a\n    action: count\n    inputs: {n: 1, colour: red}\n",
        5,
        "steps[0].inputs.colour",
        "takes no input 'colour'",
    ),
    ("name: x\nsteps:\n  - name: a\n    action: count\n", 3, "steps[0].inputs", "needs input 'n'"),
    (
        "name: x\nsteps:\n  - name: a\n    action: count\n    inputs: {n: '${{ steps.b.outputs.n }}'}\n  - name: b\n    action: count\n    inputs: {n: 1}\n",
        5,
        "steps[0].inputs.n",
        "step 'b' comes later",
    ),
    (
        "name: x\nsteps:\n  - name: a\n    action: count\n    inputs: {n: '${{ steps.zz.outputs.n }}'}\n",
        5,
        "steps[0].inputs.n",
        "no step named 'zz'",
    ),
    (
        "name: x\nsteps:\n  - name: a\n    action: count\n    inputs: {n: '${{ inputs.missing }}'}\n",
        5,
        "steps[0].inputs.n",
        "no workflow input 'missing'",
    ),
    (
        "name: x\nsteps:\n  - name: a\n    action: count\n    inputs: {n: '${{ __import__(\"os\") }}'}\n",
        5,
        "steps[0].inputs",
        "not a lookup",
    ),
    (
        "name: x\nsteps:\n  - name: a\n    action: count\n    inputs: {n: 1}\n    retry: {max_attempts: 0}\n",
        6,
        "steps[0].retry.max_attempts",
        "out of range; use a whole number from 1 to 100",
    ),
    (
        "name: x\nsteps:\n  - name: a\n    action: count\n    inputs: {n: 1}\n    retry: {backoff: wobbly}\n",
        6,
        "steps[0].retry.backoff",
        "'exponential', 'linear' or 'fixed'",
    ),
    (
        "name: x\nsteps:\n  - name: r\n    type: human_approval\n    timeout: soon\n",
        5,
        "steps[0].timeout",
        "not a duration",
    ),
    (
        "name: x\nsteps:\n  - name: r\n    type: human_approval\n    on_timeout: shrug\n",
        5,
        "steps[0].on_timeout",
        "'reject' or 'approve'",
    ),
    (
        "name: x\nsteps:\n  - name: r\n    type: manual\n",
        4,
        "steps[0].type",
        "'human_approval', 'wait_event' or 'workflow'",
    ),
    (  # a type that is not text: the field's message, not a crash while looking up its defaults
        "name: x\nsteps:\n  - name: r\n    type: [human_approval]\n",
        4,
        "steps[0].type",
        "'human_approval', 'wait_event' or 'workflow'",
    ),
    ("name: x\nsteps: []\n", 2, "steps", "at least 1 item"),
    (  # YAML reads yes as a boolean: say how to keep it as text
        "name: yes\nsteps:\n  - name: a\n    action: count\n    inputs: {n: 1}\n",
        1,
        "name",
        "must be text, got True; put the value in quotes to keep it as text",
    ),
    ("name: x\nsteps: {a: 1}\n", 2, "steps", "must be a list, got dict"),
    (
        "name: x\nsteps:\n  - name: a\n    action: count\n    inputs: {n: 1}\n    retry: {jitter: 'yes'}\n",
        6,
        "steps[0].retry.jitter",
        "must be true or false, got 'yes'",
    ),
    ("steps:\n  - name: a\n    action: count\n    inputs: {n: 1}\n", 1, "name", "'name' is required"),
    ("name: x\nname: y\nsteps: []\n", 2, "name", "appears twice"),
    ("- just\n- a list\n", 1, "", "a workflow spec is a mapping"),
    (
        "name: x\nsteps:\n  - name: a\n    action: count\n    inputs: {n: 1}\n    message: hi\n",
        6,
        "steps[0].message",
        "human_approval steps only",
    ),
    (
        "name: x\nsteps:\n  - name: a\n    action: count\n    inputs: {n: 1}\n    depends_on: [a]\n",
        6,
        "steps[0].depends_on[0]",
        "cannot depend on itself",
    ),
    (
        "name: x\nsteps:\n  - name: a\n    action: count\n    inputs: {n: 1}\n  - name: b\n    action: count\n"
        "    inputs: {n: 1}\n    depends_on: []\n  - name: c\n    action: count\n    inputs: {n: '${{ steps.b.outputs.n }}'}\n"
        "    depends_on: [a]\n",
        12,
        "steps[2].inputs.n",
        "not one of its dependencies",
    ),
]


@pytest.mark.parametrize(("text", "line", "field", "words"), BAD, ids=[b[3][:30] for b in BAD])
def test_bad_spec_names_the_line_and_field(text: str, line: int | None, field: str, words: str) -> None:
    with pytest.raises(SpecError) as info:
        load_spec(text, registry=_registry())
    err = info.value
    assert any(p[0] == line and p[1] == field and words in p[2] for p in err.problems), err.problems
    if line is not None:
        assert f"line {line}" in str(err)


_STEP = "name: p\nsteps:\n  - {name: r, type: human_approval, message: %s}\n"

FLOW_ERRORS = [
    # (yaml, line, message): a { } or [ ] that is closed is never said to be open; what it cannot hold is
    # named and marked where it is, with the column of the bracket it is inside
    (
        _STEP % "ok?",
        3,
        "YAML syntax error: unexpected '?' at column 48 inside the { } opened at column 5; "
        'put the value in quotes ("...")',
    ),
    (
        _STEP % "Deploy v2: ok",
        3,
        "YAML syntax error: unexpected ':' at column 55 inside the { } opened at column 5; "
        'put a value that holds ": " in quotes ("..."), or add the "," missing before this key',
    ),
    (
        _STEP % '"done" now',
        3,
        "YAML syntax error: unexpected 'now' at column 53 inside the { } opened at column 5; "
        'write the whole value in one pair of quotes (\'"done" now\'), or add the missing ","',
    ),
    (
        "name: p\nsteps:\n  - name: a\n    depends_on: [a, 'b' c]\n",
        4,
        "YAML syntax error: unexpected 'c' at column 25 inside the [ ] opened at column 17; "
        'write the whole value in one pair of quotes ("\'b\' c"), or add the missing ","',
    ),
    (  # a { } over several lines: no line number (a cell counts its %%workflow line), how far above
        "name: p\nsteps:\n  - name: a\n    inputs: {a: 1,\n      b: 2 c: 3}\n",
        5,
        "YAML syntax error: unexpected ':' at column 13 inside the { } opened 1 line above, at column 13; "
        'put a value that holds ": " in quotes ("..."), or add the "," missing before this key; '
        "if the { } should end on the line it opens, add the '}' there",
    ),
    # really unclosed: at the end of the text, before the next item, behind a comment, inside another bracket
    (
        "name: p\nsteps:\n  - {name: r, type: human_approval, message: ok\n",
        3,
        "YAML syntax error: the '{' at column 5 is never closed; add the closing '}'",
    ),
    (
        "name: p\nsteps:\n  - {name: r, type: human_approval\n  - name: s\n    type: human_approval\n",
        3,
        "YAML syntax error: the '{' at column 5 is never closed; add the closing '}'",
    ),
    (
        "name: p\nsteps:\n  - {name: r, type: human_approval  # }\n",
        3,
        "YAML syntax error: the '{' at column 5 is never closed; add the closing '}'",
    ),
    (
        "name: p\nsteps:\n  - name: a\n    inputs: {a: [1, 2}\n",
        4,
        "YAML syntax error: the '[' at column 17 is never closed; add the closing ']'",
    ),
    (
        "name: p\nsteps:\n  - name: a\n    inputs: {a: [1, 2]\n  - name: b\n    inputs: {b: 1}\n",
        4,
        "YAML syntax error: the '{' at column 13 is never closed; add the closing '}'",
    ),
    (  # the quote in it's is text, not a quote left open
        "name: p\nsteps:\n  - {name: r, type: human_approval, message: it's fine\n",
        3,
        "YAML syntax error: the '{' at column 5 is never closed; add the closing '}'",
    ),
]


@pytest.mark.parametrize(("text", "line", "message"), FLOW_ERRORS, ids=[f[2][19:60] for f in FLOW_ERRORS])
def test_yaml_errors_inside_brackets_name_the_culprit_or_the_unclosed_bracket(
    text: str, line: int, message: str
) -> None:
    with pytest.raises(SpecError) as info:
        load_spec(text, registry=_registry())
    assert info.value.problems == [(line, "", message)]


@pytest.mark.parametrize(("text", "line", "field", "words"), BAD[:16], ids=[b[3][:30] for b in BAD[:16]])
def test_bad_spec_writes_nothing_to_the_database(db_path, text, line, field, words) -> None:
    reg = _registry()
    with airt_nb.Engine(db_path, registry=reg) as eng:
        with pytest.raises(SpecError):
            eng.start(text)
        assert eng.list() == []
        assert eng.store.query("SELECT COUNT(*) FROM workflow_steps") == [(0,)]


def test_all_problems_are_reported_at_once() -> None:
    text = textwrap.dedent(
        """\
        name: x
        steps:
          - name: a
            action: nope
          - name: a
            action: count
            inputs: {n: '${{ steps.zz.outputs.q }}'}
        """
    )
    with pytest.raises(SpecError) as info:
        load_spec(text, registry=_registry())
    assert [p[0] for p in info.value.problems] == [4, 5, 7]
    assert str(info.value) == (
        "workflow 'x': invalid workflow spec (3 problems):\n"
        "  line 4, steps[0].action: unknown action 'nope'; define it with @action before starting "
        "(registered: count, file.copy, file.delete, file.write, http.request, python.call, wait)\n"
        "  line 5, steps[1].name: duplicate step name 'a' (also steps[0]); rename one\n"
        "  line 7, steps[1].inputs.n: ${{ steps.zz.outputs.q }}: no step named 'zz'"
    )


def test_unknown_key_message_lists_the_allowed_keys() -> None:
    with pytest.raises(SpecError) as info:
        load_spec(
            "name: x\nsteps:\n  - name: a\n    action: count\n    inputs: {n: 1}\n    retries: 3\n",
            registry=_registry(),
        )
    assert str(info.value) == (
        "workflow 'x': invalid workflow spec: line 6, steps[0].retries: unknown key 'retries'; allowed here: "
        "name, type, description, action, inputs, depends_on, retry, message, approvers, timeout, on_timeout, "
        "fields, min_approvals, exclude_requester, authenticated, remind_every, escalate, when, event, schema, uses"
    )


def test_expressions_inside_inputs_are_not_type_checked_before_run() -> None:
    spec = load_spec(
        "name: x\ninputs: {n: 3}\nsteps:\n  - name: a\n    action: count\n    inputs: {n: '${{ inputs.n }}'}\n",
        registry=_registry(),
    )
    assert spec.steps[0].inputs == {"n": "${{ inputs.n }}"}


@pytest.mark.parametrize(
    ("value", "seconds"), [(90, 90.0), ("90s", 90.0), ("15m", 900.0), ("2h", 7200.0), ("1d", 86400.0), ("500ms", 0.5)]
)
def test_durations(value, seconds) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["soon", "-1s", 0, True, "2 weeks"])
def test_bad_durations_are_refused(value) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)


def test_a_long_chain_written_backwards_validates_and_plans_without_recursion() -> None:
    from airt_nb.plan import Plan

    n = 3000
    steps = [
        {"name": f"s{i}", "action": "wait", "inputs": {"seconds": 0}, "depends_on": [f"s{i + 1}"] if i < n - 1 else []}
        for i in range(n)
    ]
    spec = load_spec({"name": "backwards", "steps": steps})
    order = [s.name for s in Plan.compile(spec).steps_in_dependency_order()]
    assert order == [f"s{i}" for i in reversed(range(n))]
    steps[-1]["depends_on"] = ["s0"]
    with pytest.raises(SpecError, match=r"dependency cycle s0 -> s1 -> .* -> s2999 -> s0"):
        load_spec({"name": "backwards", "steps": steps})


@pytest.mark.parametrize(
    "extra",
    [
        "approvers: [ann]",
        "message: hello",
        "timeout: 1h",
        "on_timeout: reject",
        "event: go",
        "schema: {type: object}",
        "uses: child.yaml",
        "min_approvals: 2",
        "exclude_requester: true",
        "authenticated: true",
        "remind_every: 1h",
    ],
)
def test_a_key_of_another_kind_of_step_on_an_action_step_is_refused(extra: str) -> None:
    text = f"name: w\nsteps:\n  - name: a\n    action: count\n    inputs: {{n: 1}}\n    {extra}\n"
    with pytest.raises(SpecError) as err:
        load_spec(text, registry=_registry())
    key = extra.split(":")[0]
    assert f"{key!r} applies to" in str(err.value)
    assert "steps[0]" in str(err.value)


def test_the_stored_json_leaves_out_defaults_and_validates_to_the_same_spec() -> None:
    from airt_nb.spec import WorkflowSpec

    spec = load_spec(
        {
            "name": "w",
            "inputs": {"x": None},
            "steps": [
                {"name": "a", "action": "count", "inputs": {"n": 1}},
                {
                    "name": "r",
                    "type": "human_approval",
                    "message": "go?",
                    "timeout": "2h",
                    "fields": {"n": {"type": "integer", "default": 3, "minimum": 1}},
                    "min_approvals": 2,
                    "escalate": {"after": "1h", "to": ["bob"]},
                },
                {
                    "name": "b",
                    "action": "count",
                    "inputs": {"n": 2},
                    "depends_on": ["r"],
                    "retry": {"max_attempts": 5},
                    "when": {"value": "${{ steps.r.outputs.values.n }}", "equals": None},
                },
                {"name": "e", "type": "wait_event", "event": "x", "schema": {"type": "object"}},
            ],
        },
        registry=_registry(),
    )
    text = spec.to_json()
    assert '"min_approvals":2' in text
    assert '"max_parallel"' not in text
    assert '"approvers"' not in text
    assert '"equals":null' in text  # a comparison with null is not a default to leave out
    assert WorkflowSpec.model_validate_json(text) == spec
    assert WorkflowSpec.model_validate_json(text).to_json() == text


def test_problems_of_shape_and_of_meaning_are_said_in_one_round() -> None:
    """A field of the wrong type does not hide the unknown action, the missing dependency or the
    duplicate name beside it: one round of fixes is enough."""
    text = (
        "name: x\nsteps:\n  - name: a\n    action: cuont\n    inputs: {n: 1}\n"
        "  - name: b\n    action: count\n    inputs: {n: 1}\n    retry: {max_attempts: lots}\n    depends_on: [c]\n"
        "  - name: a\n    action: count\n    inputs: {n: 1}\n"
    )
    with pytest.raises(SpecError) as info:
        load_spec(text, registry=_registry())
    assert [(line, field) for line, field, _ in info.value.problems] == [
        (4, "steps[0].action"),
        (9, "steps[1].retry.max_attempts"),
        (10, "steps[1].depends_on[0]"),
        (11, "steps[2].name"),
    ]
    assert "unknown action 'cuont'; did you mean `count`?" in str(info.value)
