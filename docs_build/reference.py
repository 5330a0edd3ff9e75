"""Reference tables generated from the code, so that they cannot drift from it.

Each generator reads the thing itself (the ``airt`` command's argparse
parser, the magics' usage text and parser, the spec's pydantic models, the
frames of a real database, the package's source for environment variables)
and joins it with the one-line meanings in ``docs/reference/descriptions.yml``.
Anything the code has and the descriptions lack, or the other way round, is
returned as a problem: the build (strict) fails and names the line to add.

Each function returns ``(markdown, problems)``.
"""

from __future__ import annotations

import argparse
import re
import types
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

Result = tuple[str, list[str]]

DESCRIPTIONS = "docs/reference/descriptions.yml"


def _cell(text: Any) -> str:
    """Text safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _code(text: Any) -> str:
    text = str(text)
    fence = "``" if "`" in text else "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return _cell(f"{fence}{pad}{text}{pad}{fence}")


def _table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _described(kind: str, names: list[str], meanings: Mapping[str, str]) -> list[str]:
    """Problems: names without a meaning, meanings of names that do not exist (any more)."""
    problems = [
        f"{kind} {name!r} has no description: add it to {DESCRIPTIONS}" for name in names if name not in meanings
    ]
    problems += [
        f"{kind} {name!r} is described in {DESCRIPTIONS} but the code has no such thing; remove it"
        for name in meanings
        if name not in names
    ]
    return problems


# -- the airt command ------------------------------------------------------------------------------


def _subcommands(parser: argparse.ArgumentParser, prefix: str) -> Iterator[tuple[str, str, argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, sub in action.choices.items():
                yield f"{prefix} {name}", helps.get(name, ""), sub
                yield from _subcommands(sub, f"{prefix} {name}")


def _arguments(parser: argparse.ArgumentParser, skip: set[str]) -> list[argparse.Action]:
    return [
        a
        for a in parser._actions
        if not isinstance(a, argparse._HelpAction | argparse._SubParsersAction) and not (set(a.option_strings) & skip)
    ]


def _argument_row(action: argparse.Action) -> list[str]:
    if action.option_strings:
        flags = ", ".join(action.option_strings)
        if action.nargs != 0:
            flags += f" {action.metavar or action.dest.upper()}"
    else:
        flags = str(action.metavar or action.dest)
    notes = []
    if action.choices:
        notes.append("one of " + ", ".join(f"`{c}`" for c in action.choices))
    meaning = action.help or ""
    if action.default not in (None, False, argparse.SUPPRESS) and action.nargs != 0 and "default" not in meaning:
        notes.append(f"default `{action.default}`")
    meaning = meaning[:1].upper() + meaning[1:]
    return [_code(flags), _cell(meaning + (f" ({'; '.join(notes)})" if notes else ""))]


def _wide(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = lambda prog: argparse.HelpFormatter(prog, width=100, max_help_position=40)


def cli_markdown() -> Result:
    """Every ``airt`` command: its usage, its arguments and what they mean, from the parser itself."""
    from airt_nb.cliargs import build_parser

    parser = build_parser()
    _wide(parser)
    problems: list[str] = []
    out = ["```text", parser.format_usage().strip(), "```", "", "Options every command takes:", ""]
    common = _arguments(parser, set())
    out.append(_table(["option", "meaning"], [_argument_row(a) for a in common]))
    skip = {s for a in common for s in a.option_strings}
    for name, summary, sub in _subcommands(parser, "airt"):
        _wide(sub)
        out += ["", f"## `{name}`", "", (summary[:1].upper() + summary[1:] + ".") if summary else "", ""]
        out += ["```text", sub.format_usage().strip().removeprefix("usage: "), "```", ""]
        rows = [_argument_row(a) for a in _arguments(sub, skip)]
        for a in _arguments(sub, skip):
            if not a.help:
                problems.append(
                    f"`{name}` argument {a.option_strings or a.metavar or a.dest} has no help text in cli.py"
                )
        if rows:
            out.append(_table(["argument", "meaning"], rows))
        if not summary:
            problems.append(f"`{name}` has no help text in cli.py")
    return "\n".join(out) + "\n", problems


# -- the magics --------------------------------------------------------------------------------------


def _usage_options(usage: str) -> list[str]:
    """``[-o VAR] [--wait]`` -> ``["-o VAR", "--wait"]``."""
    return re.findall(r"\[([^\[\]]+)\]", usage)


def magics_markdown(meanings: Mapping[str, Any]) -> Result:
    """``%%workflow`` options and ``%workflow`` commands, from ``airt_nb.commands``."""
    from airt_nb import commands

    problems: list[str] = []
    cell_meanings = meanings.get("cell", {})
    options = _usage_options(commands.CELL_USAGE)
    problems += _described("%%workflow option", options, cell_meanings)
    out = ["## `%%workflow`", "", "```text", commands.CELL_USAGE + "\n<YAML spec>", "```", ""]
    out.append(_table(["option", "meaning"], [[_code(o), _cell(cell_meanings.get(o, ""))] for o in options]))

    line_meanings = meanings.get("line", {})
    parser = commands.line_parser()
    names = [name for name, _, _ in _subcommands(parser, "")]
    names = [n.strip() for n in names]
    problems += _described("%workflow command", names, line_meanings)
    rows = []
    for name, _, sub in _subcommands(parser, "%workflow"):
        usage = " ".join(sub.format_usage().split()).removeprefix("usage: ")
        rows.append([_code(usage), _cell(line_meanings.get(name.split()[-1], ""))])
    out += ["", "## `%workflow`", "", "`%workflow help` prints:", "", "```text", commands.LINE_USAGE, "```", ""]
    out.append(_table(["command", "meaning"], rows))
    return "\n".join(out) + "\n", problems


# -- the spec -----------------------------------------------------------------------------------------


def _type_text(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin in (typing.Union, types.UnionType):
        shown = [_type_text(a) for a in args if a is not type(None)]
        return " \\| ".join(shown) + (" or null" if type(None) in args else "")
    if origin is list:
        return f"list of {_type_text(args[0])}" if args else "list"
    if origin is dict:
        return "mapping"
    if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
        return "mapping (below)"
    names = {str: "text", int: "whole number", float: "seconds", bool: "true / false"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _default_text(field: Any) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        return f"`{field.default_factory()!r}`".replace("'", "")
    if field.default is None:
        return "none"
    value = field.default
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


def spec_markdown(meanings: Mapping[str, Any]) -> Result:
    """Every key of a workflow spec, from the pydantic models that validate it."""
    from airt_nb.spec import RetrySpec, StepSpec, WorkflowSpec

    problems: list[str] = []
    out: list[str] = []
    for model, section, title in (
        (WorkflowSpec, "workflow", "Top level"),
        (StepSpec, "step", "A step (each item of `steps:`)"),
        (RetrySpec, "retry", "`retry:` (of an action step)"),
    ):
        # The keys as a spec writes them (a field's alias, e.g. ``schema``, where it has one).
        fields = {f.alias or name: f for name, f in model.model_fields.items()}
        section_meanings = meanings.get(section, {})
        problems += _described(f"spec key {section}.", list(fields), section_meanings)
        rows = [
            [_code(name), _type_text(f.annotation), _default_text(f), _cell(section_meanings.get(name, ""))]
            for name, f in fields.items()
        ]
        out += [f"### {title}", "", _table(["key", "type", "default", "meaning"], rows), ""]
    return "\n".join(out), problems


# -- frames --------------------------------------------------------------------------------------------


def _example(series: Any) -> str:
    import pandas as pd

    for value in series:
        if value is None or (not isinstance(value, list | dict) and pd.isna(value)):
            continue
        if isinstance(value, pd.Timestamp):
            text = value.strftime("%Y-%m-%d %H:%M:%S") + " UTC"
        elif isinstance(value, pd.Timedelta):
            text = f"{value.total_seconds():.2f} s"
        else:
            text = str(value)
        if isinstance(value, list | dict) and not value:
            continue
        return _code(text if len(text) <= 42 else text[:40] + "…")
    return ""


def frames_markdown(meanings: Mapping[str, Any], frames: Mapping[str, Any]) -> Result:
    """One table per frame: every column, its dtype and an example, from a real database."""
    problems: list[str] = []
    common = meanings.get("common", {})
    out: list[str] = []
    used_common: set[str] = set()
    for name, df in frames.items():
        own = meanings.get(name, {})
        for col in df.columns:
            if col not in own and col not in common:
                problems.append(f"column {col!r} of {name}() has no description: add it to {DESCRIPTIONS}")
            elif col not in own:
                used_common.add(col)
        problems += [
            f"column {col!r} of {name}() is described in {DESCRIPTIONS} but the frame has no such column; remove it"
            for col in own
            if col not in df.columns
        ]
        rows = [
            [_code(col), _code(str(df[col].dtype)), _example(df[col]), _cell(own.get(col, common.get(col, "")))]
            for col in df.columns
        ]
        out += [f"### `{name}()`", "", _table(["column", "dtype", "example", "meaning"], rows), ""]
    problems += [
        f"common column {col!r} in {DESCRIPTIONS} is in no frame; remove it" for col in common if col not in used_common
    ]
    return "\n".join(out), problems


def frame_names() -> list[str]:
    return ["runs", "steps", "attempts", "approvals", "compensations", "deliveries", "audit", "history"]


# -- environment ----------------------------------------------------------------------------------------


def environment_read(package: Path) -> dict[str, list[str]]:
    """``{variable: [modules that name it]}`` for every ``AIRT_*`` string literal in the package."""
    found: dict[str, set[str]] = {}
    for path in sorted(package.rglob("*.py")):
        module = ".".join(path.relative_to(package.parent).with_suffix("").parts).removesuffix(".__init__")
        for var in re.findall(r"""["'](AIRT_[A-Z0-9_]+)["']""", path.read_text(encoding="utf-8")):
            found.setdefault(var, set()).add(module)
    return {var: sorted(mods) for var, mods in sorted(found.items())}


def environment_markdown(meanings: Mapping[str, Any], package: Path) -> Result:
    read = environment_read(package)
    ours = meanings.get("airt", {})
    problems = _described("environment variable", list(read), ours)
    rows = [[_code(var), _cell(ours.get(var, "")), ", ".join(f"`{m}`" for m in mods)] for var, mods in read.items()]
    out = [_table(["variable", "meaning", "read in"], rows), ""]
    others = meanings.get("other", {})
    if others:
        text = "\n".join(p.read_text(encoding="utf-8") for p in package.rglob("*.py"))
        problems += [
            f"environment variable {v!r} is described but never named in the package" for v in others if v not in text
        ]
        out += [
            "Set by Jupyter or JupyterHub, and read by airt_nb:",
            "",
            _table(["variable", "meaning"], [[_code(v), _cell(m)] for v, m in others.items()]),
            "",
        ]
    return "\n".join(out), problems


# -- the public API ----------------------------------------------------------------------------------------

DIRECTIVE = re.compile(r"^:::\s+([\w.]+)", re.M)


def documented_objects(reference_dir: Path) -> dict[str, str]:
    """``{object path: page}`` of every ``::: path`` entry in the reference pages."""
    found = {}
    for page in sorted(reference_dir.glob("*.md")):
        for path in DIRECTIVE.findall(page.read_text(encoding="utf-8")):
            found[path] = page.name
    return found


def _resolve(path: str) -> Any:
    import importlib

    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(path)


def missing_reference_entries(reference_dir: Path) -> list[str]:
    """Names of ``airt_nb.__all__`` that no ``::: ...`` entry of the reference documents."""
    import airt_nb

    documented = documented_objects(reference_dir)
    entries = {}
    for path in documented:
        try:
            entries[path] = _resolve(path)
        except (ImportError, AttributeError):
            continue
    missing = []
    for name in airt_nb.__all__:
        obj = getattr(airt_nb, name)
        if f"airt_nb.{name}" in documented:
            continue
        if isinstance(obj, str) or not any(obj is e for e in entries.values()):
            missing.append(name)
    return missing


def api_index_markdown(reference_dir: Path) -> Result:
    """Every public name with its one-line summary, linked to its entry (an unresolved link fails the build)."""
    import inspect

    import airt_nb

    documented = documented_objects(reference_dir)
    rows = []
    for name in sorted(airt_nb.__all__, key=lambda n: (n.startswith("_"), n.lower())):
        obj = getattr(airt_nb, name)
        doc = inspect.getdoc(obj) if not isinstance(obj, str) else "The package's version."
        summary = (doc or "").strip().split("\n\n")[0].replace("\n", " ")
        target = f"airt_nb.{name}"
        if target not in documented:
            target = next((p for p in documented if p.endswith(f".{name}")), target)
        rows.append([f"[`{name}`][{target}]", _cell(summary)])
    problems = [
        f"airt_nb.{name} is exported but has no `::: airt_nb.{name}` entry in docs/reference/*.md"
        for name in missing_reference_entries(reference_dir)
    ]
    return _table(["name", "what it is"], rows) + "\n", problems
