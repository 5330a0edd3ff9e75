"""YAML text with line numbers: what workflow specs and policy files share.

:func:`parse` loads YAML (safe loader only) and remembers the 1-based line
of every key and list item, so that a validation error found later, on the
plain data, can still name the line it came from (:func:`line_of`).  Keys
that appear twice are refused instead of silently keeping the last one: in
a spec or a policy a repeated key is almost always a mistake.

Only plain YAML is accepted: unsupported tags, alias bombs, deep nesting and
huge documents are refused (:mod:`airt_nb.limits`) while the text is
composed, before any value is built.

Imports only PyYAML and the limits.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from . import limits

__all__ = ["Lines", "YamlTextError", "field_path", "line_of", "parse"]

Lines = dict[tuple[Any, ...], int]


class YamlTextError(Exception):
    """The text is not YAML (or repeats a key): ``line``, ``field`` and ``message``."""

    def __init__(self, line: int | None, field: str, message: str):
        self.line, self.field, self.message = line, field, message
        super().__init__(f"line {line}, {field or '(top level)'}: {message}")


_CORE = "tag:yaml.org,2002:"
#: Explicit tags a spec may carry: they only restate what plain YAML already means.
_ALLOWED_TAGS = frozenset(_CORE + t for t in ("str", "int", "float", "bool", "null", "seq", "map"))
# Dates stay text (a spec's values are JSON) and '=' is just a string, not the 'value' type.
_IMPLICIT = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_CORE + "timestamp", _CORE + "value")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class _Refused(Exception):
    """The text is YAML but not something we accept: a tag, a limit, a repeated key."""

    def __init__(self, line: int, path: tuple[Any, ...], message: str):
        self.line, self.path, self.message = line, path, message


def _shown_tag(tag: str) -> str:
    return "!!" + tag[len(_CORE) :] if tag.startswith(_CORE) else tag


class _LineLoader(yaml.SafeLoader):
    """The safe loader, refusing unsupported tags and counting depth, aliases and values as it composes.

    The counts are taken on the event stream, before any value is built: an
    alias bomb is refused after at most ``MAX_SPEC_NODES`` counted values,
    deep nesting at ``MAX_DEPTH`` levels (the composer recurses per level).
    """

    yaml_implicit_resolvers = _IMPLICIT

    def __init__(self, text: str):
        super().__init__(text)
        self._depth = 0
        self._aliases = 0
        self._nodes = 0
        self._sizes: dict[str, int] = {}  # anchor -> values it stands for, aliases inside expanded
        self._open: set[str] = set()  # anchors whose value is being composed
        self._path: list[Any] = []  # where the node being composed sits, for messages

    def _here(self, parent: Any, index: Any) -> tuple[Any, ...]:
        if isinstance(parent, yaml.SequenceNode):
            return (*self._path, index)
        if isinstance(parent, yaml.MappingNode) and isinstance(index, yaml.ScalarNode):
            return (*self._path, index.value)
        return tuple(self._path)  # the top level, or a mapping key: named by its mapping

    def _count(self, n: int, event: yaml.Event, path: tuple[Any, ...]) -> None:
        self._nodes += n
        if self._nodes > limits.MAX_SPEC_NODES:
            raise _Refused(
                event.start_mark.line + 1,
                path,
                f"the document expands to more than {limits.MAX_SPEC_NODES:,} values (MAX_SPEC_NODES); "
                "write the values out or make the spec smaller (aliases count once per use)",
            )

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        line = event.start_mark.line + 1
        path = self._here(parent, index)
        if isinstance(event, yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > limits.MAX_YAML_ALIASES:
                raise _Refused(
                    line,
                    path,
                    f"more than {limits.MAX_YAML_ALIASES} aliases (*name) in one document (MAX_YAML_ALIASES); "
                    "write the values out instead",
                )
            if event.anchor in self._open:
                raise _Refused(line, path, f"alias *{event.anchor} is inside the value it names; remove it")
            self._count(self._sizes.get(event.anchor, 1), event, path)
            return super().compose_node(parent, index)
        tag = event.tag
        if tag is not None and tag != "!" and tag not in _ALLOWED_TAGS:
            raise _Refused(
                line,
                path,
                f"tag {_shown_tag(tag)} is not supported; a spec holds only text, numbers, booleans, null, "
                "lists and mappings: remove the tag",
            )
        self._count(1, event, path)
        nested = isinstance(event, yaml.CollectionStartEvent)
        if nested:
            self._depth += 1
            if self._depth > limits.MAX_DEPTH:
                raise _Refused(
                    line,
                    path[:4],
                    f"nested more than {limits.MAX_DEPTH} levels deep (MAX_DEPTH); flatten the structure",
                )
        anchor, before = event.anchor, self._nodes - 1
        if anchor is not None:
            self._open.add(anchor)
        outer, self._path = self._path, list(path)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._path = outer
        if anchor is not None:
            self._open.discard(anchor)
            self._sizes[anchor] = self._nodes - before
        if nested:
            self._depth -= 1
        return node


def _construct(loader: _LineLoader, n: yaml.Node, path: tuple[Any, ...]) -> Any:
    try:
        return loader.construct_object(n, deep=True)
    except yaml.YAMLError:
        raise
    except Exception as exc:  # e.g. an int of 5,000 digits, !!bool maybe
        what = _shown_tag(n.tag) if n.tag else "a value"
        raise _Refused(n.start_mark.line + 1, path, f"cannot read {str(n.value)[:40]!r} as {what} ({exc})") from None


def _compose(text: str) -> tuple[Any, Lines]:
    loader = _LineLoader(text)
    try:
        node = loader.get_single_node()
        lines: Lines = {}

        # Recursive, but composing refused anything deeper than MAX_DEPTH already.
        def build(n: yaml.Node, path: tuple[Any, ...]) -> Any:
            lines.setdefault(path, n.start_mark.line + 1)
            if isinstance(n, yaml.MappingNode):
                loader.flatten_mapping(n)
                result: dict[Any, Any] = {}
                for key_node, value_node in n.value:
                    if not isinstance(key_node, yaml.ScalarNode):
                        raise _Refused(key_node.start_mark.line + 1, path, "keys must be plain text")
                    key = _construct(loader, key_node, path)
                    if not isinstance(key, str | int | float | bool) and key is not None:
                        raise _Refused(key_node.start_mark.line + 1, path, "keys must be plain text")
                    if key in result:
                        raise _Refused(key_node.start_mark.line + 1, (*path, key), f"{key!r} appears twice; keep one")
                    lines[(*path, key)] = key_node.start_mark.line + 1
                    result[key] = build(value_node, (*path, key))
                return result
            if isinstance(n, yaml.SequenceNode):
                return [build(item, (*path, i)) for i, item in enumerate(n.value)]
            return _construct(loader, n, path)

        data = build(node, ()) if node is not None else None
        return data, lines
    finally:
        loader.dispose()


def parse(text: str) -> tuple[Any, Lines]:
    """Load YAML ``text``; return the data and the line of every key and item.

    Raises :class:`YamlTextError` for a syntax error, a repeated key, a tag
    other than the plain ones (``!!str``, ``!!int``, ...: no ``!!python/...``,
    ``!!binary``, ``!!timestamp`` or custom tags) or text past the limits of
    :mod:`airt_nb.limits` (size, aliases, depth, values).

    >>> data, lines = parse("name: x\\nsteps:\\n  - a\\n")
    >>> lines[("steps", 0)]
    3
    """
    if len(text) > limits.MAX_SPEC_CHARS:
        raise YamlTextError(
            None,
            "",
            f"the text is {len(text):,} characters, more than the limit of {limits.MAX_SPEC_CHARS:,} "
            "(MAX_SPEC_CHARS); keep data out of the spec (pass it as inputs or files)",
        )
    try:
        return _compose(text)
    except _Refused as exc:
        raise YamlTextError(exc.line, field_path(exc.path), exc.message) from None
    except yaml.MarkedYAMLError as exc:
        line, message = _syntax_error(exc, text)
        raise YamlTextError(line, "", message) from None
    except yaml.YAMLError as exc:
        raise YamlTextError(None, "", f"YAML error: {exc}") from None
    except RecursionError:  # a regression guard: limits above should make this unreachable
        raise YamlTextError(None, "", "the YAML nests too deeply; flatten the structure") from None


# What was left open, when the parser reached the end (or a line it could not fit in) before it closed.
_UNCLOSED = {
    "while scanning a quoted scalar": ("quote", "close the quote"),
    "while parsing a flow mapping": ("'{'", "add the closing '}'"),
    "while parsing a flow sequence": ("'['", "add the closing ']'"),
}
_FLOW = {"while parsing a flow mapping": "{ }", "while parsing a flow sequence": "[ ]"}
_CLOSER = {"{": "}", "[": "]"}
# Where plain text ends inside { } or [ ]: at a flow indicator, a comment or the end of the line.
_PLAIN_END = frozenset(",[]{}#\n")


def _quote_end(text: str, start: int) -> int | None:
    """The index of the quote that closes the one at ``start`` ('' and \\" do not close), or None."""
    quote, i = text[start], start + 1
    while i < len(text):
        if text[i] == "\\" and quote == '"':
            i += 2
            continue
        if text[i] == quote:
            if quote == "'" and text[i + 1 : i + 2] == "'":
                i += 2
                continue
            return i
        i += 1
    return None


def _flow_scan(text: str, start: int) -> tuple[int | None, list[tuple[int, int]]]:
    """Where the bracket at ``start`` is closed (None: the text ends, or an enclosing bracket closes,
    first) and the quoted texts met on the way, as ``(first, last)`` indexes.

    A quote opens quoted text only where a value or key can begin (after a bracket, ',' or ':'):
    inside plain text, as in ``it's``, it is a character like any other.
    """
    stack: list[str] = []
    quoted: list[tuple[int, int]] = []
    previous = ""  # the last character that was not a space
    i = start
    while i < len(text):
        ch = text[i]
        if ch in _CLOSER:
            stack.append(_CLOSER[ch])
        elif ch in "}]":
            if ch != stack.pop():
                return None, quoted
            if not stack:
                return i, quoted
        elif ch == "#" and text[i - 1] in " \t\n":
            newline = text.find("\n", i)
            i = len(text) if newline < 0 else newline
            continue
        elif ch in "'\"" and previous in "{[,:?":
            end = _quote_end(text, i)
            if end is None:
                return None, quoted
            quoted.append((i, end))
            i, previous = end + 1, ch
            continue
        if not ch.isspace():
            previous = ch
        i += 1
    return None, quoted


def _plain_word(text: str, start: int) -> str:
    end = start
    while end < len(text) and text[end] not in _PLAIN_END and text[end : end + 2] not in (": ", ":\n"):
        end += 1
    return text[start:end].strip()


def _quoted(value: str) -> str:
    """``value`` in the quotes that need no escaping inside it."""
    if '"' not in value:
        return f'"{value}"'
    return "'" + value.replace("'", "''") + "'"


def _unexpected(
    kind: str, mark: yaml.Mark, opened: yaml.Mark, text: str, quoted: list[tuple[int, int]]
) -> tuple[int, str]:
    """A closed ``kind`` (``{ }`` or ``[ ]``) holding what it cannot: what, where, and the likely fix."""
    at = mark.index
    ch = text[at]
    if ch in "'\"":
        end = _quote_end(text, at)
        word = text[at : end + 1] if end is not None else ch
    else:
        word = ch if ch in "?:{}[]" else _plain_word(text, at) or ch
    after = next((q for q in quoted if q[1] < at and not text[q[1] + 1 : at].strip()), None)
    if ch == "?":
        fix = 'put the value in quotes ("...")'
    elif ch == ":":
        fix = 'put a value that holds ": " in quotes ("..."), or add the "," missing before this key'
    elif ch in "{[":
        fix = 'add the "," missing before it'
    elif after is not None and len(value := text[after[0] : at] + word) <= 60:
        fix = f'write the whole value in one pair of quotes ({_quoted(value)}), or add the missing ","'
    else:
        fix = 'put the value in quotes ("..."), or add the missing ","'
    above = mark.line - opened.line
    where = f"opened at column {opened.column + 1}"
    if above:
        # Lines of the message would be the YAML's, not the cell's (which counts the %%workflow line):
        # "above" is right in both.
        where = f"opened {above} line{'s' if above > 1 else ''} above, at column {opened.column + 1}"
        # It closes after the problem, so not on its own line: maybe that is where it should have.
        fix += f"; if the {kind} should end on the line it opens, add the '{kind[-1]}' there"
    shown = word if len(word) <= 40 else word[:37] + "..."
    shown = shown if shown[0] in "'\"" else f"'{shown}'"
    return (
        mark.line + 1,
        f"YAML syntax error: unexpected {shown} at column {mark.column + 1} inside the {kind} {where}; {fix}",
    )


def _syntax_error(exc: yaml.MarkedYAMLError, text: str) -> tuple[int | None, str]:
    """The line to mark and the message: an unclosed quote or bracket is marked where it opens (the
    parser notices only at the end of the text, past the last line), with its column; a closed
    bracket holding something it cannot is marked at that thing."""
    unclosed = _UNCLOSED.get(exc.context or "")
    opened, mark = exc.context_mark, exc.problem_mark
    if unclosed is not None and opened is not None:
        if exc.context in _FLOW and mark is not None and text[opened.index : opened.index + 1] in _CLOSER:
            # PyYAML blames the bracket for anything it cannot fit inside it: ask the text whether
            # the bracket really stays open.
            closed_at, quoted = _flow_scan(text, opened.index)
            if closed_at is not None and closed_at >= mark.index:
                return _unexpected(_FLOW[exc.context], mark, opened, text, quoted)
        what, fix = unclosed
        return opened.line + 1, f"YAML syntax error: the {what} at column {opened.column + 1} is never closed; {fix}"
    mark = mark or opened
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
