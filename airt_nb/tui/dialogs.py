"""The dashboard's two questions: a reason for a decision, a confirmation for a rollback or cancel."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label

__all__ = ["ConfirmDialog", "ReasonDialog"]

CSS = """
ReasonDialog, ConfirmDialog { align: center middle; }
#dialog { width: 76; height: auto; border: thick $accent; background: $surface; padding: 1 2; }
#dialog Label { width: 100%; margin-bottom: 1; }
#dialog Horizontal { height: auto; align-horizontal: right; }
#dialog Button { margin-left: 2; }
"""


class ReasonDialog(ModalScreen[str | None]):
    """Asks why; ``enter`` answers with the reason (may be empty), ``escape`` with ``None``."""

    DEFAULT_CSS = CSS
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss_none", "Back")]

    def __init__(self, question: str | Text):
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(self.question)
            yield Input(placeholder="reason (recorded with the decision); enter to confirm, escape to go back")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip())

    def action_dismiss_none(self) -> None:
        self.dismiss(None)


class ConfirmDialog(ModalScreen[bool]):
    """Asks yes or no; ``y`` / ``enter`` on Yes confirm, ``n`` / ``escape`` refuse."""

    DEFAULT_CSS = CSS
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n", "answer(False)", "No"),
        Binding("escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str):
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(self.question)
            with Horizontal():
                yield Button("No", id="no")
                yield Button("Yes", id="yes", variant="error")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
