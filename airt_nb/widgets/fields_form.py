"""The form of an approval's typed fields: one ipywidgets input per field, defaults filled in.

=========  ==============================================================
string     ``Text`` (a description is its placeholder)
integer    ``BoundedIntText`` / ``IntText`` with a default; without one an
           empty ``Text`` (the approver must type it: a pre-filled 0 would
           be approved by accident)
number     ``BoundedFloatText`` / ``FloatText``, or an empty ``Text``
boolean    ``Checkbox``
choice     ``Dropdown`` of the options (none picked without a default)
=========  ==============================================================

Once someone approved an approval that needs several people, the form
shows the values they approved: a later approval confirms them.
:meth:`FieldsForm.values` reads the inputs; the engine checks them
(a value that does not fit is refused there, with the field's rule).

Each input has the CSS classes ``airt-field`` and ``airt-field-NAME``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ipywidgets as widgets

from ..fields import FieldSpec, describe_field
from ..views.text import esc
from .base import html, show

__all__ = ["FieldsForm"]

_WIDTH = "220px"


def _input(name: str, spec: FieldSpec, value: Any) -> widgets.Widget:
    layout = widgets.Layout(width=_WIDTH)
    kind = spec.type
    css = ("airt-field", f"airt-field-{name}")
    if kind == "boolean":
        return widgets.Checkbox(value=bool(value), indent=False, layout=widgets.Layout(width="auto"), _dom_classes=css)
    if kind == "choice":
        options = [(str(o), o) for o in spec.options or ()]
        picked = next((o for _, o in options if o == value and type(o) is type(value)), None)
        return widgets.Dropdown(options=options, value=picked, layout=layout, _dom_classes=css)
    if kind in ("integer", "number") and value is not None:
        integer = kind == "integer"
        bounds = {k: v for k, v in (("min", spec.minimum), ("max", spec.maximum)) if v is not None}
        if bounds:
            cls: Any = widgets.BoundedIntText if integer else widgets.BoundedFloatText
            bounds.setdefault("min", -(10**15))
            bounds.setdefault("max", 10**15)
            if integer:
                bounds = {k: int(v) for k, v in bounds.items()}
            return cls(value=value, **bounds, layout=layout, _dom_classes=css)
        cls = widgets.IntText if integer else widgets.FloatText
        return cls(value=value, layout=layout, _dom_classes=css)
    placeholder = spec.description or ("optional" if not spec.required else describe_field(spec))
    return widgets.Text(
        value="" if value is None else str(value), placeholder=placeholder, layout=layout, _dom_classes=css
    )


class FieldsForm(widgets.VBox):
    """Inputs for an approval's fields (empty, and hidden, for an approval without fields).

    >>> form = FieldsForm()
    >>> form.build({"replicas": {"type": "integer", "default": 2, "minimum": 1, "maximum": 10}})
    >>> form.inputs["replicas"].value = 3
    >>> form.values()
    {'replicas': 3}
    """

    def __init__(self) -> None:
        self.specs: dict[str, FieldSpec] = {}
        self.inputs: dict[str, widgets.Widget] = {}
        self.note_html = html("", "airt-fields-note")
        super().__init__([], _dom_classes=("airt-fields",))
        show(self, False)

    def build(self, fields: Mapping[str, Any], approved: Mapping[str, Any] | None = None) -> None:
        """One input per field, holding its default (or the value already approved)."""
        self.specs = {name: FieldSpec.model_validate(spec) for name, spec in fields.items()}
        self.inputs = {}
        rows: list[widgets.Widget] = []
        for name, spec in self.specs.items():
            value = approved.get(name) if approved is not None else spec.default
            box = _input(name, spec, value)
            self.inputs[name] = box
            optional = "" if spec.required else ' <span class="airt-muted">(optional)</span>'
            about = f' <span class="airt-muted">{esc(describe_field(spec))}</span>'
            label = html(f"<code>{esc(name)}</code>{optional}", "airt-field-label", width="150px", flex="0 0 auto")
            rows.append(widgets.HBox([label, box, html(about, "airt-field-about")]))
        self.note_html.value = (
            '<div class="airt-muted">The values approved so far: approving confirms them.</div>'
            if approved is not None and self.specs
            else ""
        )
        self.children = (self.note_html, *rows) if rows else ()
        show(self, bool(rows))

    def enable(self, on: bool) -> None:
        for box in self.inputs.values():
            box.disabled = not on

    def values(self) -> dict[str, Any]:
        """The values as typed.  An emptied box of an optional field gives ``None``; of a required one,
        a ``ValueError`` naming the field: its default would run, a value the approver did not see.

        Raises ``ValueError`` for a number that does not read as one.
        """
        out: dict[str, Any] = {}
        for name, box in self.inputs.items():
            spec = self.specs[name]
            value = box.value
            if isinstance(box, widgets.Text):
                text = value.strip() if spec.type != "string" else value
                if text == "":
                    if spec.type == "string" and spec.default == "":
                        out[name] = ""  # the default the approver saw, untouched
                        continue
                    if spec.required:
                        raise ValueError(f"{name}: a value is required (it is not optional); {describe_field(spec)}")
                    out[name] = None
                    continue
                if spec.type == "integer":
                    try:
                        value = int(text)
                    except ValueError:
                        raise ValueError(f"{name}: {text!r} is not a whole number") from None
                elif spec.type == "number":
                    try:
                        value = float(text)
                    except ValueError:
                        raise ValueError(f"{name}: {text!r} is not a number") from None
            elif isinstance(box, widgets.Dropdown) and value is None:
                continue
            out[name] = value
        return out
