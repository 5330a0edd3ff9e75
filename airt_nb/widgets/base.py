"""What every panel shares: one throttled refresh path, the stylesheet, snapshots, safe clicks.

Panels render from the database, the source of truth, so a panel looks the
same whichever kernel runs its workflow.  Nothing renders on an engine
thread: engine events (one ``Engine.subscribe`` per engine, routed by
``workflow_id``) only mark panels *dirty*, and one daemon thread, the
:class:`Refresher`, renders the dirty ones in passes at least ``interval``
(0.1 s) apart: at most ten updates per second per panel, however fast the
steps run.  Between events the same thread reads each database's
``PRAGMA data_version`` (free) and lets panels whose workflows run in
another process decide whether to re-read.

Widget updates made on that thread do reach the browser; nothing here
prints (output from a thread lands in whatever cell ran last).  Clicks go
through :meth:`LivePanel.safely`, which shows an error in the panel, never
a traceback in the log.

Whoever displays a panel may give it a ``snapshot_sink``: a function that
replaces a static HTML output next to the widget (through its display id).
The panel sends its :meth:`~LivePanel.snapshot_html` there when what it shows
changed, at most every ``snapshot_interval`` seconds and at once when its run
pauses or ends, so a saved notebook keeps the last state the widget showed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from ..errors import AirtError, StoreError
from ..views.theme import stylesheet

if TYPE_CHECKING:
    from ..engine import Engine
    from ..events import Event

__all__ = ["STYLE", "LivePanel", "Refresher", "refresher"]

log = logging.getLogger("airt_nb.widgets")

STYLE = stylesheet()


def style_widget() -> widgets.HTML:
    """The stylesheet as an invisible widget (a ``<style>`` applies even when not displayed)."""
    w = widgets.HTML(STYLE, layout=widgets.Layout(display="none"))
    return w


# Classes and layouts are given to constructors, not set afterwards: set in the constructor they
# travel with the widget's first message; set afterwards, each is one more comm message.


def html(value: str = "", *classes: str, **layout: Any) -> widgets.HTML:
    return widgets.HTML(value, layout=widgets.Layout(**layout), _dom_classes=classes)


def button(description: str, css: str, *, style: str = "", tooltip: str = "", width: str = "auto") -> widgets.Button:
    # No icons: an icon font's glyph becomes part of the button's accessible name, and a
    # button's name must be exactly its text ("Approve", "Reject").
    return widgets.Button(
        description=description,
        button_style=style,
        tooltip=tooltip,
        layout=widgets.Layout(width=width, flex="0 0 auto"),
        _dom_classes=(css,),
    )


def cells(values: list[str], widths: list[int], *, head: bool = False) -> str:
    """One line of fixed-width cells (the rows of the dashboard and the inbox); the last one takes the rest.

    A too narrow output clips the last cell instead of wrapping the line.
    """
    spans = []
    for i, (value, width) in enumerate(zip(values, widths, strict=True)):
        size = f"width:{width}px;" if i < len(widths) - 1 else f"min-width:{width}px;flex:1 1 auto;"
        spans.append(
            f'<span style="{size}overflow:hidden;white-space:nowrap;text-overflow:ellipsis;padding-right:8px;'
            f'box-sizing:border-box">{value}</span>'
        )
    css = "airt-muted" if head else ""
    return f'<div class="{css}" style="display:flex;align-items:center;white-space:nowrap">{"".join(spans)}</div>'


def set_html(widget: widgets.HTML, value: str) -> None:
    """Set an HTML widget's value; an empty one takes no room (an HTML widget is a line high even when empty)."""
    widget.value = value
    show(widget, bool(value))


def show(widget: widgets.Widget, visible: bool) -> None:
    display = None if visible else "none"
    if widget.layout.display != display:
        widget.layout.display = display


class LivePanel:
    """Mixin of the panels the :class:`Refresher` keeps up to date.

    A panel implements :meth:`_render` (read the store, set widget values)
    and may override :meth:`poll_due` (whether a database change, or the
    passing of time, calls for a render).
    """

    engine: Engine
    live_workflow: str | None = None  # events of this workflow mark it dirty
    render_count = 0
    #: Seconds between two renders of this panel. A render changes a few widgets, each one
    #: comm message: 0.3 s keeps a busy panel at about ten messages a second.
    min_interval = 0.3
    last_render = 0.0

    @property
    def lock(self) -> threading.RLock:
        """Held while rendering and while a click changes the panel: the two never interleave."""
        found: threading.RLock | None = self.__dict__.get("_render_lock")
        if found is None:
            found = self.__dict__.setdefault("_render_lock", threading.RLock())
        return found

    def _live_start(self, engine: Engine, workflow_id: str | None = None) -> None:
        self.engine = engine
        self.live_workflow = workflow_id
        self.refresh()
        refresher().add(self)

    #: Set by whoever displays the panel: sends ``{"text/html": ...}`` to the panel's static output.
    snapshot_sink: Callable[[dict[str, Any]], Any] | None = None
    #: Seconds between two snapshots while what the panel shows keeps changing.
    snapshot_interval = 5.0
    snapshot_count = 0
    _snapshot_token: Any = None
    _snapshot_at = 0.0

    def refresh(self) -> None:
        """Render now, on the calling thread."""
        with self.lock:
            try:
                self._render()
            except StoreError as exc:
                self._show_error(f"cannot read the database: {exc}")
            self.render_count += 1
            self.last_render = time.monotonic()
            if self.snapshot_sink is not None:
                self._snapshot_after_render()

    # -- the static snapshot --------------------------------------------------------------------------

    def snapshot_html(self, *, stopped_at: str | None = None) -> str:
        """The panel as static HTML (what a saved notebook shows); read from the database now."""
        raise NotImplementedError

    def _snapshot_state(self) -> tuple[Any, bool]:
        """``(token, settled)`` of what the last render showed: a new token calls for a new snapshot,
        ``settled`` (paused, finished) for one at once."""
        return None, True

    def attach_snapshot(self, sink: Callable[[dict[str, Any]], Any]) -> None:
        """From now on send snapshots to ``sink``; the snapshot shown last is the current one."""
        with self.lock:
            self.snapshot_sink = sink
            self._snapshot_token = self._snapshot_state()[0]
            self._snapshot_at = time.monotonic()

    def _snapshot_after_render(self) -> None:
        token, settled = self._snapshot_state()
        if token == self._snapshot_token:
            return
        if not settled and time.monotonic() - self._snapshot_at < self.snapshot_interval:
            return  # still changing: the next render after the interval sends it
        self.publish_snapshot(token=token)

    def publish_snapshot(self, *, token: Any = None, stopped_at: str | None = None) -> bool:
        """Send the snapshot to the sink now; ``False`` if the panel has none or it failed."""
        sink = self.snapshot_sink
        if sink is None:
            return False
        with self.lock:
            try:
                html = self.snapshot_html(stopped_at=stopped_at)
                sink({"text/html": html})
            except Exception:  # a snapshot is a courtesy: it must never break the panel
                log.debug("snapshot failed", exc_info=True)
                return False
            self._snapshot_token = token if token is not None else self._snapshot_state()[0]
            self._snapshot_at = time.monotonic()
            self.snapshot_count += 1
        return True

    def _quick_token(self) -> Any:
        """A cheap token of what the panel shows (one small query), or ``None``: unchanged since the
        last sync means nothing to do."""
        return None

    def sync_snapshot(self) -> bool:
        """Bring the snapshot up to date if the database moved on since the last one (end of a cell)."""
        if self.snapshot_sink is None:
            return False
        with self.lock:
            quick = self._quick_token()
            if quick is not None and quick == self.__dict__.get("_synced"):
                return False
            self.__dict__["_synced"] = quick
            try:
                self._render()
            except StoreError:
                return False
            token, _ = self._snapshot_state()
            if token == self._snapshot_token:
                return False
            return self.publish_snapshot(token=token)

    def _render(self) -> None:
        raise NotImplementedError

    def wants(self, event: Event) -> bool:
        """Whether an engine event concerns this panel (called on engine threads: keep it trivial)."""
        return event.workflow_id == self.live_workflow

    def poll_due(self, changed: bool, now: float) -> bool:
        """Whether to render at this poll: ``changed`` says the database changed since the last one."""
        return changed

    def _show_error(self, text: str) -> None:
        log.warning("%s", text)

    def mark_dirty(self) -> None:
        refresher().mark(self)

    def safely(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a click's work; refusals and failures are shown in the panel, not raised."""
        try:
            with self.lock:
                return fn(*args, **kwargs)
        except AirtError as exc:
            self._show_error(str(exc))
        except Exception as exc:  # a click must never leave a traceback in the kernel log
            log.debug("panel action failed", exc_info=True)
            self._show_error(f"{type(exc).__name__}: {exc}")
        return None

    def _ipython_display_(self) -> None:
        """In IPython, a panel shows as its widget followed by a static snapshot of it."""
        from ..magics import display_panel

        display_panel(self)

    def on_detached(self) -> None:
        """The engine this panel reads was closed; the panel stops updating (override to say so)."""

    def stop_live(self) -> None:
        """Stop updating this panel (it keeps showing its last state)."""
        refresher().remove(self)


class Refresher:
    """The one thread that renders panels: throttled, and polling databases for other processes' changes."""

    def __init__(self, interval: float = 0.1, poll_interval: float = 0.25):
        self.interval = interval
        self.poll_interval = poll_interval
        self.passes = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._panels: set[LivePanel] = set()
        self._dirty: set[LivePanel] = set()
        self._subscriptions: dict[Engine, Callable[[], None]] = {}
        self._versions: dict[int, int] = {}
        self._thread: threading.Thread | None = None

    # -- registration ---------------------------------------------------------------------------------

    def add(self, panel: LivePanel) -> None:
        with self._lock:
            self._panels.add(panel)
            engine = panel.engine
            if engine not in self._subscriptions:

                def route(event: Event, engine: Engine = engine) -> None:
                    self._on_event(engine, event)

                self._subscriptions[engine] = engine.subscribe(route)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="airt-refresh", daemon=True)
                self._thread.start()
        self._wake.set()

    def remove(self, panel: LivePanel) -> None:
        with self._lock:
            self._panels.discard(panel)
            self._dirty.discard(panel)
            engine = panel.engine
            if not any(p.engine is engine for p in self._panels):
                unsubscribe = self._subscriptions.pop(engine, None)
                if unsubscribe is not None:
                    unsubscribe()

    def panels(self) -> list[LivePanel]:
        with self._lock:
            return list(self._panels)

    def mark(self, panel: LivePanel) -> None:
        with self._lock:
            if panel in self._panels:
                self._dirty.add(panel)
        self._wake.set()

    def _on_event(self, engine: Engine, event: Event) -> None:
        # Runs on engine threads: only bookkeeping, never rendering.
        with self._lock:
            hit = [p for p in self._panels if p.engine is engine and p.wants(event)]
            self._dirty.update(hit)
        if hit:
            self._wake.set()

    # -- the thread ---------------------------------------------------------------------------------------

    def flush(self) -> int:
        """Render every dirty panel now, on the calling thread (tests, scripts); returns how many."""
        with self._lock:
            dirty, self._dirty = self._dirty, set()
        for panel in dirty:
            panel.refresh()
        return len(dirty)

    def _loop(self) -> None:
        last_poll = 0.0
        while True:
            waiting: list[float] = []
            with self._lock:
                idle = not self._panels
            self._wake.wait(None if idle else self.poll_interval)
            self._wake.clear()
            started = time.monotonic()
            try:
                if started - last_poll >= self.poll_interval:
                    last_poll = started
                    self._poll(time.time())
                now = time.monotonic()
                with self._lock:
                    due = {p for p in self._dirty if now - p.last_render >= p.min_interval}
                    self._dirty -= due
                    waiting = [p.last_render + p.min_interval - now for p in self._dirty]
                for panel in due:
                    panel.refresh()
                if due:
                    self.passes += 1
                if waiting:  # panels rendered too recently: come back when the first is due
                    self._wake.set()
            except Exception:  # the refresher must outlive any one panel's failure
                log.debug("panel refresh failed", exc_info=True)
            rest = self.interval - (time.monotonic() - started)
            if waiting:
                rest = max(rest, min(waiting))
            if rest > 0:
                time.sleep(rest)

    def _poll(self, now: float) -> None:
        by_store: dict[int, list[LivePanel]] = {}
        for panel in self.panels():
            by_store.setdefault(id(panel.engine.store), []).append(panel)
        wanted: list[LivePanel] = []
        for key in [k for k in self._versions if k not in by_store]:
            del self._versions[key]  # a store no panel shows any more
        for key, panels in by_store.items():
            try:
                version = panels[0].engine.store.data_version()
            except StoreError:  # the engine was closed: these panels show their last state, and say so
                for panel in panels:
                    self.remove(panel)
                    try:
                        panel.on_detached()
                    except Exception:
                        log.debug("detaching a panel failed", exc_info=True)
                continue
            changed = self._versions.get(key) != version
            self._versions[key] = version
            wanted += [p for p in panels if p.poll_due(changed, now)]
        if wanted:
            with self._lock:
                self._dirty.update(p for p in wanted if p in self._panels)


_refresher: Refresher | None = None
_refresher_lock = threading.Lock()


def refresher() -> Refresher:
    """The process's refresher (created on first use)."""
    global _refresher
    with _refresher_lock:
        if _refresher is None:
            _refresher = Refresher()
        return _refresher
