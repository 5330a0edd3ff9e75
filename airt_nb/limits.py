"""How big, deep and long the things airt_nb accepts may be, and small checks that enforce it.

Every limit is a named constant, so an error can name the one it hit and
the docs can list them.  The checks walk values iteratively and stop as soon
as a limit is passed: a value nested 5,000 deep or an alias bomb of a
billion nodes is refused in microseconds, before anything recursive (pydantic,
``json.dumps``, the YAML composer) would get a chance to blow the stack or
the memory.

::

    check_depth(value, what=..., limit=MAX_DEPTH)      nesting only
    check_value(value, what=...)                       JSON types, finite numbers,
                                                       text keys, depth and size
    check_inputs(inputs, workflow=...)                 start(inputs=...) as a whole
    duration(value)                                    '30s', 90, '2h' -> seconds, bounded
    number(value, low=..., high=...)                   a bounded int or float

Imports only the errors.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from .errors import ActionError, AirtError, SpecError

__all__ = [
    "MAX_APPROVALS",
    "MAX_DEPTH",
    "MAX_DURATION",
    "MAX_FIELDS",
    "MAX_FIELD_NUMBER",
    "MAX_FIELD_OPTIONS",
    "MAX_FIELD_TEXT",
    "MAX_HTTP_TIMEOUT",
    "MAX_PREVIEW_BYTES",
    "MAX_PREVIEW_STEPS",
    "MAX_RETRY_DELAY",
    "MAX_SPEC_CHARS",
    "MAX_SPEC_NODES",
    "MAX_STEPS",
    "MAX_VALUE_NODES",
    "MAX_YAML_ALIASES",
    "check_depth",
    "check_inputs",
    "check_value",
    "duration",
    "format_seconds",
    "number",
]

#: Characters of YAML text in one spec or policy file (1 MB of ASCII).
MAX_SPEC_CHARS = 1_000_000
#: ``*alias`` uses in one YAML document; anchors are for sharing a retry block, not for data.
MAX_YAML_ALIASES = 100
#: Values (keys included) in one YAML document or dict spec once aliases are expanded.
MAX_SPEC_NODES = 200_000
#: Nesting of mappings and lists: a spec from its top level, a workflow input, a step's outputs.
MAX_DEPTH = 100
#: Values in the inputs given to one ``start`` (or one step's outputs, if the engine checks them).
MAX_VALUE_NODES = 1_000_000
#: Steps in one workflow.
MAX_STEPS = 100_000
#: Longest duration anywhere in a spec (approval timeouts, ``wait``): 366 days.
MAX_DURATION = 366 * 86400.0
#: Longest delay between two attempts of a retried step: one day.
MAX_RETRY_DELAY = 86400.0
#: Longest timeout of one HTTP request of ``http.request``: one hour.
MAX_HTTP_TIMEOUT = 3600.0
#: Typed fields of one approval step, options of one ``choice`` field, characters of one text value.
MAX_FIELDS = 50
MAX_FIELD_OPTIONS = 100
MAX_FIELD_TEXT = 10_000
#: Largest magnitude of a number field's value, bounds and default (beyond it floats lose whole numbers).
MAX_FIELD_NUMBER = 1e15
#: People an approval may need (``min_approvals``).
MAX_APPROVALS = 100
#: Gated steps one approval previews (and checks before they run), nearest first.
MAX_PREVIEW_STEPS = 100
#: Bytes of a file read to show its diff in a preview (larger files are summarised).
MAX_PREVIEW_BYTES = 1_000_000

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_CONTAINERS = (Mapping, list, tuple)


def format_seconds(seconds: float) -> str:
    """``86400.0`` -> ``'1d'``; ``90`` -> ``'90s'``: how limits are shown in messages."""
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    return f"{seconds:g}s"


def duration(value: Any, *, zero: bool = False, maximum: float = MAX_DURATION) -> float:
    """Seconds from ``90``, ``"90s"``, ``"15m"``, ``"2h"``, ``"1d"`` or ``"500ms"``, within limits.

    Refuses with a ``ValueError`` saying the allowed range: booleans, ``inf``
    and ``nan``, negative values, zero unless ``zero`` is true, and anything
    longer than ``maximum`` seconds (default :data:`MAX_DURATION`).

    >>> duration("2h")
    7200.0
    >>> duration("99999999d")
    Traceback (most recent call last):
    ...
    ValueError: '99999999d' is longer than the limit of 366d (MAX_DURATION); use a duration from 1ms to 366d
    """
    low = "0" if zero else "1ms"
    allowed = f"use a duration from {low} to {format_seconds(maximum)}"
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{value!r} is not a duration; write a number of seconds or e.g. 30s, 15m, 2h ({allowed})")
    if isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            raise ValueError(f"{value!r} is not a duration; write e.g. 30s, 15m, 2h or 1d ({allowed})")
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    else:
        seconds = float(value)
    if not math.isfinite(seconds):
        raise ValueError(f"{value!r} is not a finite duration; {allowed}")
    if seconds > maximum:  # also inf
        name = {MAX_DURATION: "MAX_DURATION", MAX_RETRY_DELAY: "MAX_RETRY_DELAY", MAX_HTTP_TIMEOUT: "MAX_HTTP_TIMEOUT"}
        limit = f" ({name[maximum]})" if maximum in name else ""
        raise ValueError(f"{value!r} is longer than the limit of {format_seconds(maximum)}{limit}; {allowed}")
    if seconds < 0 or (seconds == 0 and not zero):
        raise ValueError(f"{value!r} is {'negative' if seconds < 0 else 'zero'}; {allowed}")
    return seconds


def number(value: Any, *, low: float, high: float, integer: bool = False) -> Any:
    """``value`` if it is a finite number (an int when ``integer``) from ``low`` to ``high``.

    Booleans are refused (YAML's ``yes`` is not ``1``).  Raises ``ValueError``
    saying the allowed range.

    >>> number(3, low=1, high=100, integer=True)
    3
    >>> number(True, low=1, high=100, integer=True)
    Traceback (most recent call last):
    ...
    ValueError: True is not a whole number; use a whole number from 1 to 100
    """
    kind = "a whole number" if integer else "a number"
    allowed = f"use {kind} from {low:g} to {high:g}"
    ok_type = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not ok_type:
        raise ValueError(f"{value!r} is not {kind}; {allowed}")
    if math.isnan(value) or not low <= value <= high:
        raise ValueError(f"{value!r} is out of range; {allowed}")
    return value


# -- values ------------------------------------------------------------------------------------------


def _path_text(path: tuple[Any, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out


def _raise(error: type[AirtError], what: str, path: tuple[Any, ...], message: str) -> None:
    shown = _path_text(path[:4]) + ("..." if len(path) > 4 else "")
    where = what + ("." if path and not isinstance(path[0], int) else "") + shown
    if error is SpecError:
        raise SpecError([(None, where, message)])
    if error is ActionError:
        raise ActionError(f"{where}: {message}")
    raise error(f"{where}: {message}")


def depth_problem(value: Any, limit: int = MAX_DEPTH) -> tuple[tuple[Any, ...], str] | None:
    """``(path, message)`` where ``value`` nests deeper than ``limit``, or ``None``.

    A scalar has depth 0, ``[]`` and ``{}`` depth 1.  Iterative; a value that
    contains itself is reported as too deep.  Shared sub-values (YAML aliases,
    the same list put twice) are walked once per depth, so this stays cheap.
    """
    if not isinstance(value, _CONTAINERS):
        return None
    deepest: dict[int, int] = {}
    stack: list[tuple[Any, int, tuple[Any, ...]]] = [(value, 1, ())]
    while stack:
        item, depth, path = stack.pop()
        if depth > limit:
            return path, f"nests more than {limit} levels deep (MAX_DEPTH); flatten it"
        if deepest.get(id(item), 0) >= depth:
            continue
        deepest[id(item)] = depth
        children = item.items() if isinstance(item, Mapping) else enumerate(item)
        for key, child in children:
            if isinstance(child, _CONTAINERS):
                stack.append((child, depth + 1, (*path, key)))
    return None


def check_depth(value: Any, *, what: str, limit: int = MAX_DEPTH, error: type[AirtError] = SpecError) -> None:
    """Refuse ``value`` if it nests deeper than ``limit`` (default :data:`MAX_DEPTH`).

    ``what`` names the value in the message (``"inputs"``, ``"outputs of step
    'load'"``); ``error`` is the :class:`~airt_nb.AirtError` class to raise
    (``SpecError`` for what a caller gave, ``ActionError`` for what an action
    returned).

    >>> deep = []
    >>> for _ in range(500):
    ...     deep = [deep]
    >>> check_depth(deep, what="outputs of step 'x'", error=ActionError)
    Traceback (most recent call last):
    ...
    airt_nb.errors.ActionError: outputs of step 'x'[0][0][0][0]...: nests more than 100 levels deep (MAX_DEPTH); flatten it
    """
    found = depth_problem(value, limit)
    if found is not None:
        _raise(error, what, *found)


def is_digit_limit(exc: BaseException) -> bool:
    """Whether ``exc`` is Python refusing to turn an integer of more than 4,300 digits into text
    (``sys.int_max_str_digits``): the value's fault, not a limit to raise.

    >>> try:
    ...     str(10**5000)
    ... except ValueError as exc:
    ...     is_digit_limit(exc)
    True
    """
    return isinstance(exc, ValueError) and "integer string conversion" in str(exc)


_PLAIN_SCALARS = frozenset({str, int, bool, type(None)})


def is_plain(value: Any, *, max_depth: int = MAX_DEPTH, max_nodes: int = MAX_VALUE_NODES) -> bool:
    """True if ``value`` is certainly plain, bounded JSON: exact dicts with text keys, lists, text,
    finite numbers, booleans and ``None``, within the limits.

    The quick look every spec and input gets; anything unusual (a tuple, a subclass, a
    non-finite number, a limit reached) answers False, and :func:`value_problem` then
    says what and where.

    >>> is_plain({"a": [1, 2.5, None]}), is_plain({"a": float("nan")})
    (True, False)
    """
    count = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    pop, push = stack.pop, stack.append
    scalars = _PLAIN_SCALARS
    while stack:
        item, depth = pop()
        count += 1
        kind = type(item)
        if kind in scalars:
            continue
        if kind is float:
            if item - item != 0.0:  # inf - inf and nan - nan are nan
                return False
            continue
        if count > max_nodes or depth >= max_depth:
            return False
        if kind is dict:
            for key, child in item.items():
                if type(key) is not str:
                    return False
                push((child, depth + 1))
        elif kind is list:
            for child in item:
                push((child, depth + 1))
        else:
            return False
    return count <= max_nodes


def value_problem(
    value: Any, *, max_depth: int = MAX_DEPTH, max_nodes: int = MAX_VALUE_NODES, finite: bool = True
) -> tuple[tuple[Any, ...], str] | None:
    """``(path, message)`` of the first thing in ``value`` that is not plain, bounded JSON, or ``None``.

    Plain JSON: mappings with text keys, lists (tuples too), text, finite
    numbers, booleans and ``None``.  Aliased sub-values count once per use,
    so a "billion laughs" value is refused after ``max_nodes`` steps.
    ``finite=False`` lets ``inf`` and ``nan`` through (for a caller that
    checks its numbers field by field, with better messages).
    """
    count = 0
    stack: list[tuple[Any, int, tuple[Any, ...]]] = [(value, 0, ())]
    while stack:
        item, depth, path = stack.pop()
        count += 1
        if count > max_nodes:
            return (), f"has more than {max_nodes:,} values (MAX_VALUE_NODES); pass large data as a file instead"
        if item is None or isinstance(item, str | bool | int):
            continue
        if isinstance(item, float):
            if finite and not math.isfinite(item):
                return path, f"{item!r} is not a JSON number; use a finite number or text"
            continue
        if not isinstance(item, _CONTAINERS):
            return path, f"a value of type {type(item).__name__} is not JSON; use text, a number, a list or a mapping"
        if depth + 1 > max_depth:
            return path, f"nests more than {max_depth} levels deep (MAX_DEPTH); flatten it"
        if isinstance(item, Mapping):
            for key, child in reversed(list(item.items())):
                if not isinstance(key, str):
                    hint = " (YAML reads yes, no, on and off as booleans)" if isinstance(key, bool) else ""
                    return (
                        *path,
                        key,
                    ), f"key {key!r} is not text ({type(key).__name__}){hint}; keys must be text: quote it"
                stack.append((child, depth + 1, (*path, key)))
        else:
            stack.extend((child, depth + 1, (*path, i)) for i, child in reversed(list(enumerate(item))))
    return None


def check_value(
    value: Any,
    *,
    what: str,
    max_depth: int = MAX_DEPTH,
    max_nodes: int = MAX_VALUE_NODES,
    error: type[AirtError] = SpecError,
) -> None:
    """Refuse ``value`` unless it is plain JSON within :data:`MAX_DEPTH` and :data:`MAX_VALUE_NODES`.

    >>> check_value({"n": float("nan")}, what="inputs")
    Traceback (most recent call last):
    ...
    airt_nb.errors.SpecError: invalid workflow spec: inputs.n: nan is not a JSON number; use a finite number or text
    """
    if is_plain(value, max_depth=max_depth, max_nodes=max_nodes):
        return
    found = value_problem(value, max_depth=max_depth, max_nodes=max_nodes)
    if found is not None:
        _raise(error, what, *found)


def check_inputs(inputs: Any, *, workflow: str | None = None) -> dict[str, Any]:
    """The inputs given to ``start``, as a dict, or :class:`~airt_nb.SpecError` saying what is wrong.

    ``None`` means no inputs.  Anything else must be a mapping of text keys to
    plain JSON values (see :func:`check_value`).

    >>> check_inputs(None)
    {}
    >>> check_inputs("x")
    Traceback (most recent call last):
    ...
    airt_nb.errors.SpecError: invalid workflow spec: inputs: inputs must be a mapping of input names to values, got str 'x'; pass e.g. inputs={"target": "out/r"}
    """
    if inputs is None:
        return {}
    if not isinstance(inputs, Mapping):
        shown = repr(inputs)
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        raise SpecError(
            [
                (
                    None,
                    "inputs",
                    f"inputs must be a mapping of input names to values, got {type(inputs).__name__} {shown}; "
                    'pass e.g. inputs={"target": "out/r"}',
                )
            ],
            workflow=workflow,
        )
    try:
        check_value(inputs, what="inputs")
    except SpecError as exc:
        raise SpecError(exc.problems, workflow=workflow) from None
    return dict(inputs)
