"""YAML text with line numbers: what workflow specs and policy files share.

:func:`parse` loads YAML (safe loader only) and remembers the 1-based line
of every key and list item, so that a validation error found later, on the
plain data, can still name the line it came from (:func:`line_of`).  Keys
that appear twice are refused instead of silently keeping the last one: in
a spec or a policy a repeated key is almost always a mistake.

Imports only PyYAML.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

__all__ = ["Lines", "YamlTextError", "field_path", "line_of", "parse"]

Lines = dict[tuple[Any, ...], int]


class YamlTextError(Exception):
    """The text is not YAML (or repeats a key): ``line``, ``field`` and ``message``."""

    def __init__(self, line: int | None, field: str, message: str):
        self.line, self.field, self.message = line, field, message
        super().__init__(f"line {line}, {field or '(top level)'}: {message}")


class _LineLoader(yaml.SafeLoader):
    pass


class _DuplicateKey(Exception):
    def __init__(self, line: int, path: tuple[Any, ...], message: str):
        self.line, self.path, self.message = line, path, message


def _compose(text: str) -> tuple[Any, Lines]:
    loader = _LineLoader(text)
    try:
        node = loader.get_single_node()
        lines: Lines = {}

        def build(n: yaml.Node, path: tuple[Any, ...]) -> Any:
            lines.setdefault(path, n.start_mark.line + 1)
            if isinstance(n, yaml.MappingNode):
                loader.flatten_mapping(n)
                result: dict[Any, Any] = {}
                for key_node, value_node in n.value:
                    key = loader.construct_object(key_node, deep=True)
                    if not isinstance(key, str | int | float | bool) and key is not None:
                        raise _DuplicateKey(key_node.start_mark.line + 1, path, "keys must be plain text")
                    if key in result:
                        raise _DuplicateKey(key_node.start_mark.line + 1, (*path, key), f"{key!r} appears twice")
                    lines[(*path, key)] = key_node.start_mark.line + 1
                    result[key] = build(value_node, (*path, key))
                return result
            if isinstance(n, yaml.SequenceNode):
                return [build(item, (*path, i)) for i, item in enumerate(n.value)]
            return loader.construct_object(n, deep=True)

        data = build(node, ()) if node is not None else None
        return data, lines
    finally:
        loader.dispose()


def parse(text: str) -> tuple[Any, Lines]:
    """Load YAML ``text``; return the data and the line of every key and item.

    Raises :class:`YamlTextError` for a syntax error or a repeated key.

    >>> data, lines = parse("name: x\\nsteps:\\n  - a\\n")
    >>> lines[("steps", 0)]
    3
    """
    try:
        return _compose(text)
    except _DuplicateKey as exc:
        raise YamlTextError(exc.line, field_path(exc.path), exc.message + "; keep one") from None
    except yaml.MarkedYAMLError as exc:
        line, message = _syntax_error(exc)
        raise YamlTextError(line, "", message) from None
    except yaml.YAMLError as exc:
        raise YamlTextError(None, "", f"YAML error: {exc}") from None


# What was left open, when the parser reached the end (or a line it could not fit in) before it closed.
_UNCLOSED = {
    "while scanning a quoted scalar": ("quote", "close the quote"),
    "while parsing a flow mapping": ("'{'", "add the closing '}'"),
    "while parsing a flow sequence": ("'['", "add the closing ']'"),
}


def _syntax_error(exc: yaml.MarkedYAMLError) -> tuple[int | None, str]:
    """The line to mark and the message: an unclosed quote or bracket is marked where it opens (the
    parser notices only at the end of the text, past the last line), with its column."""
    unclosed = _UNCLOSED.get(exc.context or "")
    if unclosed is not None and exc.context_mark is not None:
        mark = exc.context_mark
        what, fix = unclosed
        return mark.line + 1, f"YAML syntax error: the {what} at column {mark.column + 1} is never closed; {fix}"
    mark = exc.problem_mark or exc.context_mark
    if mark is None:
        return None, f"YAML syntax error: {exc.problem or exc}; check indentation and quoting"
    return mark.line + 1, (
        f"YAML syntax error at column {mark.column + 1}: {exc.problem or exc}; check indentation and quoting"
    )


def field_path(path: tuple[Any, ...]) -> str:
    """``("steps", 1, "inputs")`` -> ``"steps[1].inputs"``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def line_of(lines: Mapping[tuple[Any, ...], int], path: tuple[Any, ...]) -> int | None:
    """The line of ``path``, or of its nearest parent that has one."""
    while True:
        if path in lines:
            return lines[path]
        if not path:
            return None
        path = path[:-1]
